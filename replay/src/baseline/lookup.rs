//! Point lookups in a baseline file: the rows with one key, reading only the pages that can
//! hold it.
//!
//! Parquet keeps min/max statistics per row group and per data page (the page index) of every
//! column. A row whose first key column has value `v` lies in a page whose `[min, max]`
//! contains `v`, so every other page is skipped (the other columns' pages are aligned by the
//! offset index: the reader fetches only the rows selected). Statistics are bounds even where
//! the writer truncated them (a truncated min is a prefix, so not greater; a truncated max is
//! rounded up), so skipping never loses a row. Where a value type has no order we can compare
//! (or a file has no page index), nothing is skipped and the lookup reads the file: slower,
//! never wrong. Every row read is then matched exactly ([`Key::matches`]).
//!
//! Images are written in primary-key order, so the first key column's pages are narrow and a
//! lookup reads about one page per column: milliseconds on a multi-million-row table.
use super::{BaselineError, stored_schema, value_at};
use crate::keys::{Key, KeySpec};
use arrow_array::Array;
use dbtrail_core::{Row, TableSchema, Value};
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::file::metadata::PageIndexPolicy;
use std::cmp::Ordering;

/// How `a` orders against `b` as Parquet statistics order them, where that is known.
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    use Value::*;
    Some(match (a, b) {
        (Int(x), Int(y)) => x.cmp(y),
        (UInt(x), UInt(y)) | (Bit(x), Bit(y)) | (Set(x), Set(y)) => x.cmp(y),
        (Str(x), Str(y)) | (Bytes(x), Bytes(y)) => x.cmp(y),
        (Date(x), Date(y)) => x.cmp(y),
        (DateTime(x), DateTime(y)) => x.cmp(y),
        (Timestamp(x), Timestamp(y)) | (Time(x), Time(y)) => x.cmp(y),
        (Year(x), Year(y)) | (Enum(x), Enum(y)) => x.cmp(y),
        _ => return None,
    })
}

/// Whether statistics `min ..= max` (either unknown) may hold `v`.
fn may_hold(min: Option<Value>, max: Option<Value>, v: &Value) -> bool {
    let above_min = min.is_none_or(|m| order(&m, v) != Some(Ordering::Greater));
    let below_max = max.is_none_or(|m| order(&m, v) != Some(Ordering::Less));
    above_min && below_max
}

fn stat(schema: &TableSchema, col: usize, a: &dyn Array, i: usize) -> Option<Value> {
    if i >= a.len() || a.is_null(i) {
        return None;
    }
    value_at(&schema.columns[col], a, i).ok()
}

/// What a lookup read, for the caller's report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupStats {
    /// Rows of the file.
    pub rows: u64,
    /// Rows read (the pages that may hold the key).
    pub read: u64,
}

/// The file's rows with key `spec` (resolved against the file's own schema), reading only the
/// pages that may hold it (module doc); returns the rows, the schema and what was read.
pub fn lookup<R: parquet::file::reader::ChunkReader + 'static>(
    file: R,
    spec: &KeySpec,
) -> Result<(Vec<Row>, TableSchema, LookupStats), BaselineError> {
    let fmt = |e: String| BaselineError::Format {
        table: "(unknown)".into(),
        detail: e,
    };
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)
        .map_err(|e| fmt(e.to_string()))?;
    let schema = stored_schema(builder.metadata())?;
    let key: Key = spec
        .resolve(&schema)
        .map_err(|detail| BaselineError::Format {
            table: schema.table.to_string(),
            detail,
        })?;
    let md = builder.metadata().clone();
    let total: u64 = md
        .row_groups()
        .iter()
        .map(|g| g.num_rows().max(0) as u64)
        .sum();
    let Some((col, v)) = key.columns.first().cloned() else {
        return Ok((Vec::new(), schema, LookupStats::default()));
    };
    let conv = StatisticsConverter::try_new(
        &schema.columns[col].name,
        builder.schema(),
        builder.parquet_schema(),
    )
    .map_err(|e| fmt(e.to_string()))?;
    let groups = md.row_groups();
    let mins = conv
        .row_group_mins(groups.iter())
        .map_err(|e| fmt(e.to_string()))?;
    let maxes = conv
        .row_group_maxes(groups.iter())
        .map_err(|e| fmt(e.to_string()))?;
    let keep: Vec<usize> = (0..groups.len())
        .filter(|&g| {
            may_hold(
                stat(&schema, col, mins.as_ref(), g),
                stat(&schema, col, maxes.as_ref(), g),
                &v,
            )
        })
        .collect();
    let mut selectors: Vec<RowSelector> = Vec::new();
    let mut read = 0u64;
    let mut paged = false;
    if let Some(index) = md.page_index() {
        let index = index.as_ref();
        let page_mins = conv.data_page_mins(index, keep.iter());
        let page_maxes = conv.data_page_maxes(index, keep.iter());
        let counts = conv.data_page_row_counts(index, groups, keep.iter());
        if let (Ok(lo), Ok(hi), Ok(Some(counts))) = (page_mins, page_maxes, counts)
            && counts.len() == lo.len()
            && counts.null_count() == 0
        {
            paged = true;
            for p in 0..counts.len() {
                let n = counts.value(p) as usize;
                if may_hold(
                    stat(&schema, col, lo.as_ref(), p),
                    stat(&schema, col, hi.as_ref(), p),
                    &v,
                ) {
                    read += n as u64;
                    selectors.push(RowSelector::select(n));
                } else {
                    selectors.push(RowSelector::skip(n));
                }
            }
        }
    }
    if !paged {
        read = keep
            .iter()
            .map(|&g| groups[g].num_rows().max(0) as u64)
            .sum();
    }
    let mut rows = Vec::new();
    if !keep.is_empty() && (read > 0) {
        let mut b = builder.with_row_groups(keep).with_batch_size(1024);
        if paged {
            b = b.with_row_selection(RowSelection::from(selectors));
        }
        let reader = b.build().map_err(|e| fmt(e.to_string()))?;
        for batch in reader {
            let batch = batch.map_err(|e| fmt(e.to_string()))?;
            for i in 0..batch.num_rows() {
                // The first key column decides most rows without decoding the rest.
                let first = value_at(&schema.columns[col], batch.column(col).as_ref(), i).map_err(
                    |detail| BaselineError::Value {
                        table: schema.table.to_string(),
                        column: schema.columns[col].name.clone(),
                        detail,
                    },
                )?;
                if order(&first, &v).is_some_and(|o| o != Ordering::Equal) {
                    continue;
                }
                let mut row = Vec::with_capacity(schema.columns.len());
                for (c, a) in schema.columns.iter().zip(batch.columns()) {
                    row.push(value_at(c, a.as_ref(), i).map_err(|detail| {
                        BaselineError::Value {
                            table: schema.table.to_string(),
                            column: c.name.clone(),
                            detail,
                        }
                    })?);
                }
                if key.matches(&row) {
                    rows.push(row);
                }
            }
        }
    }
    Ok((rows, schema, LookupStats { rows: total, read }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::BaselineWriter;
    use dbtrail_core::{ColumnDef, ColumnType, TableRef};

    fn table(pk: Vec<usize>) -> TableSchema {
        TableSchema {
            table: TableRef::new("shop", "orders"),
            version: 1,
            columns: vec![
                ColumnDef::new("id", ColumnType::Int),
                ColumnDef::new("region", ColumnType::VarChar),
                ColumnDef::new("note", ColumnType::VarChar),
            ],
            primary_key: pk,
            foreign_keys: Vec::new(),
        }
    }

    fn file(schema: &TableSchema, rows: u64, group: usize) -> bytes::Bytes {
        let mut out = Vec::new();
        let mut w = BaselineWriter::new(&mut out, schema, Vec::new(), group).expect("writer");
        for i in 0..rows {
            let row = vec![
                Value::Int(i as i64 * 2),
                Value::Str(format!("r{}", i % 3).into_bytes()),
                Value::Str(format!("note {i} {}", "x".repeat(40)).into_bytes()),
            ];
            w.push(&row).expect("push");
        }
        w.finish().expect("finish");
        bytes::Bytes::from(out)
    }

    #[test]
    fn finds_a_key_reading_a_few_pages() {
        let s = table(vec![0, 1]);
        let f = file(&s, 200_000, 50_000);
        let spec = KeySpec::parse("id=123456, region=r0").expect("spec");
        let (rows, _, stats) = lookup(f.clone(), &spec).expect("lookup");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0][0], Value::Int(123_456));
        assert_eq!(stats.rows, 200_000);
        assert!(stats.read < 20_000, "read {} rows", stats.read);
        // Absent keys: between two stored ones, below and above them all.
        for absent in [
            "id=123457, region=r1",
            "id=-1, region=r0",
            "id=400001, region=r0",
        ] {
            let spec = KeySpec::parse(absent).expect("spec");
            let (rows, _, stats) = lookup(f.clone(), &spec).expect("lookup");
            assert!(rows.is_empty(), "{absent}");
            assert!(stats.read < 20_000, "{absent}: read {}", stats.read);
        }
        // The right key but another region: the exact match decides.
        let spec = KeySpec::parse("id=123456, region=r1").expect("spec");
        assert!(lookup(f, &spec).expect("lookup").0.is_empty());
    }

    #[test]
    fn key_less_tables_match_on_the_named_columns() {
        let s = table(vec![]);
        let f = file(&s, 3_000, 1_000);
        let spec = KeySpec::parse("region=r2").expect("spec");
        let (rows, _, stats) = lookup(f, &spec).expect("lookup");
        assert_eq!(rows.len(), 1_000);
        assert!(rows.iter().all(|r| r[1] == Value::Str(b"r2".to_vec())));
        assert_eq!(stats.read, 3_000);
    }
}
