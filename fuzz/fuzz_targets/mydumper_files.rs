//! mydumper input (metadata files and data files are outside bytes): parsing never panics.
#![no_main]
use dbtrail_core::{ColumnDef, ColumnType, TableRef, TableSchema};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = dbtrail_replay::mydumper::Metadata::parse(text);
    }
    let mut e = ColumnDef::new("e", ColumnType::Enum);
    e.members = vec![b"a".to_vec(), b"b".to_vec()];
    let schema = TableSchema {
        table: TableRef::new("d", "t"),
        version: 0,
        columns: vec![
            ColumnDef::new("i", ColumnType::Int),
            ColumnDef::new("d", ColumnType::Decimal { precision: 10, scale: 2 }),
            ColumnDef::new("dt", ColumnType::DateTime { fsp: 6 }),
            ColumnDef::new("tm", ColumnType::Time { fsp: 3 }),
            ColumnDef::new("s", ColumnType::VarChar),
            e,
        ],
        primary_key: vec![0],
        foreign_keys: Vec::new(),
    };
    let _ = dbtrail_replay::mydumper::read_rows(
        std::io::Cursor::new(data),
        "fuzz.sql",
        &schema,
        |_| -> Result<(), dbtrail_replay::mydumper::MydumperError> { Ok(()) },
    );
});
