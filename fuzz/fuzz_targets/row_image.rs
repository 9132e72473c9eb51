//! Row images: any bytes, with any column layout, decode to values or a clean error.
#![no_main]
use dbtrail_binlog::rows::{ColumnCodec, RowReader};
use dbtrail_core::{ColumnDef, ColumnType};
use libfuzzer_sys::fuzz_target;

const TYPES: [(u8, ColumnType); 12] = [
    (1, ColumnType::TinyInt),
    (8, ColumnType::BigInt),
    (246, ColumnType::Decimal { precision: 20, scale: 6 }),
    (19, ColumnType::Time { fsp: 3 }),
    (18, ColumnType::DateTime { fsp: 6 }),
    (17, ColumnType::Timestamp { fsp: 2 }),
    (254, ColumnType::Char),
    (15, ColumnType::VarChar),
    (252, ColumnType::Blob),
    (245, ColumnType::Json),
    (16, ColumnType::Bit { bits: 13 }),
    (248, ColumnType::Set),
];

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 8) + 1;
    if rest.len() < n * 3 {
        return;
    }
    let (layout, body) = rest.split_at(n * 3);
    let mut cols = Vec::new();
    let mut codecs = Vec::new();
    for c in layout.chunks(3) {
        let (ty, def) = &TYPES[usize::from(c[0]) % TYPES.len()];
        cols.push(ColumnDef::new("c", def.clone()));
        let meta = match def {
            ColumnType::Decimal { precision, scale } => vec![*precision, *scale],
            _ => vec![c[1], c[2]],
        };
        codecs.push(ColumnCodec { ty: *ty, meta });
    }
    let present = vec![true; n];
    let mut r = RowReader::new(body);
    for _ in 0..4 {
        if r.is_empty() || r.read_row(&cols, &codecs, &present).is_err() {
            break;
        }
    }
});
