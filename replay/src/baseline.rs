//! Baseline tables as Parquet, losslessly.
//!
//! One Parquet file per table (snapshots write rows in primary-key order, baselines from the
//! log in the order the restore engine emits them; no reader relies on the order), zstd,
//! written in row groups of
//! bounded size (memory stays bounded whatever the table size). The file's key-value metadata
//! holds the caller's entries (GTID set, binlog position, ...) and `dbtrail.schema`: the exact
//! [`TableSchema`] as JSON, so reading needs nothing else. The Arrow type of each column keeps
//! every value exact:
//!
//! | MySQL | Arrow |
//! |---|---|
//! | signed integers / UNSIGNED | Int64 / UInt64 |
//! | FLOAT / DOUBLE | Float32 / Float64 |
//! | DECIMAL(p,s) | Decimal256(p,s) |
//! | YEAR, ENUM (index) | UInt16 |
//! | BIT, SET (bitmask) | UInt64 |
//! | DATE | UInt32 `YYYYMMDD` (zero dates allowed) |
//! | DATETIME | UInt64 `YYYYMMDD` × 86 400 000 000 + µs of the day (zero dates allowed) |
//! | TIMESTAMP | Timestamp(µs, UTC); 0 is the zero timestamp |
//! | TIME | Duration(µs), signed |
//! | CHAR/VARCHAR/TEXT, BINARY/BLOB, GEOMETRY, VECTOR | Binary (raw bytes; collation in the schema) |
//! | JSON | Utf8 |
use arrow_array::builder::{
    BinaryBuilder, Decimal256Builder, DurationMicrosecondBuilder, Float32Builder, Float64Builder,
    Int64Builder, StringBuilder, TimestampMicrosecondBuilder, UInt16Builder, UInt32Builder,
    UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Decimal256Type, DurationMicrosecondType, Float32Type, Float64Type, Int64Type,
    TimestampMicrosecondType, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_buffer::i256;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use dbtrail_core::value::{Date, DateTime};
use dbtrail_core::{ColumnDef, ColumnType, Row, TableSchema, Value};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use std::io::Write;
use std::sync::Arc;

pub mod lookup;

/// A row group is closed once its encoded size in memory passes this.
const MAX_ROW_GROUP_BYTES: usize = 64 * 1024 * 1024;

/// The metadata key holding the table schema.
pub const SCHEMA_KEY: &str = "dbtrail.schema";

/// Errors writing or reading a baseline file.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// Parquet or Arrow failed.
    #[error("baseline parquet for {table}: {detail}")]
    Format {
        /// Which table.
        table: String,
        /// What failed.
        detail: String,
    },
    /// A value does not fit its column's type.
    #[error("baseline value for {table}.{column}: {detail}")]
    Value {
        /// Which table.
        table: String,
        /// Which column.
        column: String,
        /// What is wrong.
        detail: String,
    },
}

fn data_type(c: &ColumnDef) -> DataType {
    match &c.ty {
        t if t.is_integer() => {
            if c.unsigned {
                DataType::UInt64
            } else {
                DataType::Int64
            }
        }
        ColumnType::Float => DataType::Float32,
        ColumnType::Double => DataType::Float64,
        ColumnType::Decimal { precision, scale } => {
            DataType::Decimal256((*precision).max(1), *scale as i8)
        }
        ColumnType::Year | ColumnType::Enum => DataType::UInt16,
        ColumnType::Bit { .. } | ColumnType::Set => DataType::UInt64,
        ColumnType::Date => DataType::UInt32,
        ColumnType::DateTime { .. } => DataType::UInt64,
        ColumnType::Timestamp { .. } => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        ColumnType::Time { .. } => DataType::Duration(TimeUnit::Microsecond),
        ColumnType::Json => DataType::Utf8,
        _ => DataType::Binary,
    }
}

/// The Arrow schema of a table's baseline.
pub fn arrow_schema(schema: &TableSchema) -> Schema {
    Schema::new(
        schema
            .columns
            .iter()
            .map(|c| {
                let mut meta = std::collections::HashMap::new();
                if let Some(t) = &c.sql_type {
                    meta.insert("mysql.type".to_string(), t.clone());
                }
                Field::new(c.name.clone(), data_type(c), true).with_metadata(meta)
            })
            .collect::<Vec<_>>(),
    )
}

enum Builder {
    I64(Int64Builder),
    U64(UInt64Builder),
    U32(UInt32Builder),
    U16(UInt16Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Dec(Decimal256Builder),
    Ts(TimestampMicrosecondBuilder),
    Dur(DurationMicrosecondBuilder),
    Bin(BinaryBuilder),
    Utf8(StringBuilder),
}

fn builder(c: &ColumnDef) -> Builder {
    match data_type(c) {
        DataType::Int64 => Builder::I64(Int64Builder::new()),
        DataType::UInt64 => Builder::U64(UInt64Builder::new()),
        DataType::UInt32 => Builder::U32(UInt32Builder::new()),
        DataType::UInt16 => Builder::U16(UInt16Builder::new()),
        DataType::Float32 => Builder::F32(Float32Builder::new()),
        DataType::Float64 => Builder::F64(Float64Builder::new()),
        DataType::Decimal256(p, s) => Builder::Dec(
            Decimal256Builder::new()
                .with_precision_and_scale(p, s)
                .unwrap_or_else(|_| Decimal256Builder::new()),
        ),
        DataType::Timestamp(..) => {
            Builder::Ts(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
        }
        DataType::Duration(_) => Builder::Dur(DurationMicrosecondBuilder::new()),
        DataType::Utf8 => Builder::Utf8(StringBuilder::new()),
        _ => Builder::Bin(BinaryBuilder::new()),
    }
}

const DAY_US: u64 = 86_400_000_000;

fn datetime_key(dt: &DateTime) -> u64 {
    let of_day = (u64::from(dt.hour) * 3600 + u64::from(dt.minute) * 60 + u64::from(dt.second))
        * 1_000_000
        + u64::from(dt.micros);
    u64::from(dt.date.yyyymmdd()) * DAY_US + of_day
}

fn decimal_to_i256(text: &str, scale: u8) -> Option<i256> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if frac.len() != usize::from(scale) {
        return None;
    }
    let v = i256::from_string(&format!("{int}{frac}"))?;
    Some(if neg { v.wrapping_neg() } else { v })
}

fn i256_to_decimal(v: i256, scale: u8) -> String {
    let neg = v < i256::ZERO;
    let digits = if neg { v.wrapping_neg() } else { v }.to_string();
    let scale = usize::from(scale);
    let padded = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
    } else {
        digits
    };
    let (int, frac) = padded.split_at(padded.len() - scale);
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push_str(int);
    if scale > 0 {
        out.push('.');
        out.push_str(frac);
    }
    out
}

impl Builder {
    fn push(&mut self, c: &ColumnDef, v: &Value) -> Result<(), String> {
        let bad = || format!("value {v:?} does not fit {:?}", c.ty);
        match (self, v) {
            (Builder::I64(b), Value::Null) => b.append_null(),
            (Builder::U64(b), Value::Null) => b.append_null(),
            (Builder::U32(b), Value::Null) => b.append_null(),
            (Builder::U16(b), Value::Null) => b.append_null(),
            (Builder::F32(b), Value::Null) => b.append_null(),
            (Builder::F64(b), Value::Null) => b.append_null(),
            (Builder::Dec(b), Value::Null) => b.append_null(),
            (Builder::Ts(b), Value::Null) => b.append_null(),
            (Builder::Dur(b), Value::Null) => b.append_null(),
            (Builder::Bin(b), Value::Null) => b.append_null(),
            (Builder::Utf8(b), Value::Null) => b.append_null(),
            (Builder::I64(b), Value::Int(i)) => b.append_value(*i),
            (Builder::U64(b), Value::UInt(u) | Value::Bit(u) | Value::Set(u)) => b.append_value(*u),
            (Builder::U64(b), Value::DateTime(dt)) => b.append_value(datetime_key(dt)),
            (Builder::U32(b), Value::Date(d)) => b.append_value(d.yyyymmdd()),
            (Builder::U16(b), Value::Year(y) | Value::Enum(y)) => b.append_value(*y),
            (Builder::F32(b), Value::Float(f)) => b.append_value(*f),
            (Builder::F64(b), Value::Double(d)) => b.append_value(*d),
            (Builder::Dec(b), Value::Decimal(t)) => {
                let scale = match c.ty {
                    ColumnType::Decimal { scale, .. } => scale,
                    _ => 0,
                };
                b.append_value(decimal_to_i256(t, scale).ok_or_else(bad)?)
            }
            (Builder::Ts(b), Value::Timestamp(us)) => b.append_value(*us),
            (Builder::Dur(b), Value::Time(us)) => b.append_value(*us),
            (Builder::Bin(b), Value::Str(x) | Value::Bytes(x) | Value::Geometry(x)) => {
                b.append_value(x)
            }
            (Builder::Utf8(b), Value::Json(s)) => b.append_value(s),
            _ => return Err(bad()),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::I64(b) => Arc::new(b.finish()),
            Builder::U64(b) => Arc::new(b.finish()),
            Builder::U32(b) => Arc::new(b.finish()),
            Builder::U16(b) => Arc::new(b.finish()),
            Builder::F32(b) => Arc::new(b.finish()),
            Builder::F64(b) => Arc::new(b.finish()),
            Builder::Dec(b) => Arc::new(b.finish()),
            Builder::Ts(b) => Arc::new(b.finish()),
            Builder::Dur(b) => Arc::new(b.finish()),
            Builder::Bin(b) => Arc::new(b.finish()),
            Builder::Utf8(b) => Arc::new(b.finish()),
        }
    }
}

/// Bytes of a data page (about: the writer closes a page once it reaches this).
const DATA_PAGE_BYTES: usize = 96 * 1024;

/// Streams rows into a Parquet file; memory holds one batch of rows at a time.
pub struct BaselineWriter<W: Write + Send> {
    schema: TableSchema,
    arrow: Arc<Schema>,
    builders: Vec<Builder>,
    pending: usize,
    batch_rows: usize,
    writer: ArrowWriter<W>,
    rows: u64,
}

impl<W: Write + Send> BaselineWriter<W> {
    /// Starts a file for `schema`'s table with extra key-value `metadata`; row groups hold at
    /// most `row_group_rows` rows.
    pub fn new(
        out: W,
        schema: &TableSchema,
        metadata: Vec<(String, String)>,
        row_group_rows: usize,
    ) -> Result<Self, BaselineError> {
        let fmt = |e: String| BaselineError::Format {
            table: schema.table.to_string(),
            detail: e,
        };
        let arrow = Arc::new(arrow_schema(schema));
        let mut kv: Vec<KeyValue> = metadata
            .into_iter()
            .map(|(k, v)| KeyValue::new(k, v))
            .collect();
        kv.push(KeyValue::new(
            SCHEMA_KEY.to_string(),
            serde_json::to_string(schema).map_err(|e| fmt(e.to_string()))?,
        ));
        let mut props =
            WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default()));
        // Dictionaries pay for low-cardinality columns; strings, blobs and wide integers are
        // mostly distinct (keys, counters, times), and trying a dictionary on them (hashing
        // every value until the dictionary overflows, in every row group) costs more than it
        // saves: zstd compresses repeated plain values too. Only the types that are
        // low-cardinality by construction keep one.
        for (c, _) in schema.columns.iter().zip(arrow.fields()) {
            if !matches!(
                c.ty,
                ColumnType::Enum
                    | ColumnType::Set
                    | ColumnType::TinyInt
                    | ColumnType::Year
                    | ColumnType::Bit { .. }
            ) {
                props = props.set_column_dictionary_enabled(
                    parquet::schema::types::ColumnPath::from(c.name.as_str()),
                    false,
                );
            }
        }
        let props = props
            // Pages below glibc's mmap threshold (128 KiB), so each page's compression buffer
            // comes from the heap instead of being mapped, faulted in and unmapped again
            // (with 1 MiB pages, page faults and unmaps were about a tenth of a backup's CPU;
            // benches/README.md, backup_bench).
            .set_data_page_size_limit(DATA_PAGE_BYTES)
            .set_max_row_group_row_count(Some(row_group_rows.max(1)))
            .set_key_value_metadata(Some(kv))
            .build();
        let writer = ArrowWriter::try_new(out, arrow.clone(), Some(props))
            .map_err(|e| fmt(e.to_string()))?;
        Ok(BaselineWriter {
            builders: schema.columns.iter().map(builder).collect(),
            schema: schema.clone(),
            arrow,
            pending: 0,
            batch_rows: 8192.min(row_group_rows.max(1)),
            writer,
            rows: 0,
        })
    }

    /// Appends one full row.
    pub fn push(&mut self, row: &Row) -> Result<(), BaselineError> {
        if row.len() != self.schema.columns.len() {
            return Err(BaselineError::Format {
                table: self.schema.table.to_string(),
                detail: format!(
                    "row has {} values, the table {} columns",
                    row.len(),
                    self.schema.columns.len()
                ),
            });
        }
        for ((b, c), v) in self.builders.iter_mut().zip(&self.schema.columns).zip(row) {
            b.push(c, v).map_err(|detail| BaselineError::Value {
                table: self.schema.table.to_string(),
                column: c.name.clone(),
                detail,
            })?;
        }
        self.pending += 1;
        self.rows += 1;
        if self.pending >= self.batch_rows {
            self.write_batch()?;
        }
        Ok(())
    }

    fn write_batch(&mut self) -> Result<(), BaselineError> {
        if self.pending == 0 {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        let table = self.schema.table.to_string();
        let batch = RecordBatch::try_new(self.arrow.clone(), columns).map_err(|e| {
            BaselineError::Format {
                table: table.clone(),
                detail: e.to_string(),
            }
        })?;
        self.writer
            .write(&batch)
            .map_err(|e| BaselineError::Format {
                table: table.clone(),
                detail: e.to_string(),
            })?;
        // Bound memory by bytes too: wide rows close a row group before its row count.
        if self.writer.in_progress_size() > MAX_ROW_GROUP_BYTES {
            self.writer.flush().map_err(|e| BaselineError::Format {
                table,
                detail: e.to_string(),
            })?;
        }
        self.pending = 0;
        Ok(())
    }

    /// Writes the footer; returns the number of rows.
    pub fn finish(mut self) -> Result<u64, BaselineError> {
        self.write_batch()?;
        let table = self.schema.table.to_string();
        self.writer.close().map_err(|e| BaselineError::Format {
            table,
            detail: e.to_string(),
        })?;
        Ok(self.rows)
    }
}

fn value_at(c: &ColumnDef, a: &dyn Array, i: usize) -> Result<Value, String> {
    if a.is_null(i) {
        return Ok(Value::Null);
    }
    let wrong = || {
        format!(
            "column {} has an unexpected Arrow type {:?}",
            c.name,
            a.data_type()
        )
    };
    Ok(match (&c.ty, a.data_type()) {
        (t, DataType::Int64) if t.is_integer() => {
            Value::Int(a.as_primitive::<Int64Type>().value(i))
        }
        (t, DataType::UInt64) if t.is_integer() => {
            Value::UInt(a.as_primitive::<UInt64Type>().value(i))
        }
        (ColumnType::Bit { .. }, DataType::UInt64) => {
            Value::Bit(a.as_primitive::<UInt64Type>().value(i))
        }
        (ColumnType::Set, DataType::UInt64) => Value::Set(a.as_primitive::<UInt64Type>().value(i)),
        (ColumnType::DateTime { .. }, DataType::UInt64) => {
            let v = a.as_primitive::<UInt64Type>().value(i);
            let (d, of_day) = (v / DAY_US, v % DAY_US);
            let secs = of_day / 1_000_000;
            Value::DateTime(DateTime {
                date: Date::from_yyyymmdd(d),
                hour: (secs / 3600) as u8,
                minute: ((secs / 60) % 60) as u8,
                second: (secs % 60) as u8,
                micros: (of_day % 1_000_000) as u32,
            })
        }
        (ColumnType::Date, DataType::UInt32) => Value::Date(Date::from_yyyymmdd(u64::from(
            a.as_primitive::<UInt32Type>().value(i),
        ))),
        (ColumnType::Year, DataType::UInt16) => {
            Value::Year(a.as_primitive::<UInt16Type>().value(i))
        }
        (ColumnType::Enum, DataType::UInt16) => {
            Value::Enum(a.as_primitive::<UInt16Type>().value(i))
        }
        (ColumnType::Float, DataType::Float32) => {
            Value::Float(a.as_primitive::<Float32Type>().value(i))
        }
        (ColumnType::Double, DataType::Float64) => {
            Value::Double(a.as_primitive::<Float64Type>().value(i))
        }
        (ColumnType::Decimal { scale, .. }, DataType::Decimal256(..)) => Value::Decimal(
            i256_to_decimal(a.as_primitive::<Decimal256Type>().value(i), *scale),
        ),
        (ColumnType::Timestamp { .. }, DataType::Timestamp(..)) => {
            Value::Timestamp(a.as_primitive::<TimestampMicrosecondType>().value(i))
        }
        (ColumnType::Time { .. }, DataType::Duration(_)) => {
            Value::Time(a.as_primitive::<DurationMicrosecondType>().value(i))
        }
        (ColumnType::Json, DataType::Utf8) => {
            Value::Json(a.as_string::<i32>().value(i).to_string())
        }
        (ColumnType::Geometry, DataType::Binary) => {
            Value::Geometry(a.as_binary::<i32>().value(i).to_vec())
        }
        (_, DataType::Binary) => {
            let b = a.as_binary::<i32>().value(i).to_vec();
            if c.is_binary() || matches!(c.ty, ColumnType::Vector) {
                Value::Bytes(b)
            } else {
                Value::Str(b)
            }
        }
        _ => return Err(wrong()),
    })
}

/// The table schema of a baseline file, from its footer (no rows read).
pub fn schema_of(file: &std::fs::File) -> Result<TableSchema, BaselineError> {
    let fmt = |e: String| BaselineError::Format {
        table: "(unknown)".into(),
        detail: e,
    };
    let f = file.try_clone().map_err(|e| fmt(e.to_string()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| fmt(e.to_string()))?;
    stored_schema(builder.metadata())
}

/// The table schema a file's footer holds (`dbtrail.schema`).
fn stored_schema(
    md: &parquet::file::metadata::ParquetMetaData,
) -> Result<TableSchema, BaselineError> {
    let fmt = |e: String| BaselineError::Format {
        table: "(unknown)".into(),
        detail: e,
    };
    let json = md
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == SCHEMA_KEY))
        .and_then(|k| k.value.clone())
        .ok_or_else(|| fmt(format!("no {SCHEMA_KEY} metadata: not a dbtrail baseline")))?;
    serde_json::from_str(&json).map_err(|e| fmt(e.to_string()))
}

/// Reads a baseline file (a `File`, or bytes in memory): its table schema, its key-value metadata, and every row (in file
/// order) passed to `visit`, one batch in memory at a time.
pub fn read<R: parquet::file::reader::ChunkReader + 'static>(
    file: R,
    mut visit: impl FnMut(Row) -> Result<(), BaselineError>,
) -> Result<(TableSchema, Vec<(String, String)>), BaselineError> {
    let fmt = |e: String| BaselineError::Format {
        table: "(unknown)".into(),
        detail: e,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| fmt(e.to_string()))?;
    let kv: Vec<(String, String)> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let schema_json = kv
        .iter()
        .find(|(k, _)| k == SCHEMA_KEY)
        .map(|(_, v)| v.clone())
        .ok_or_else(|| fmt(format!("no {SCHEMA_KEY} metadata: not a dbtrail baseline")))?;
    let schema: TableSchema = serde_json::from_str(&schema_json).map_err(|e| fmt(e.to_string()))?;
    let reader = builder
        .with_batch_size(8192)
        .build()
        .map_err(|e| fmt(e.to_string()))?;
    for batch in reader {
        let batch = batch.map_err(|e| fmt(e.to_string()))?;
        if batch.num_columns() != schema.columns.len() {
            return Err(fmt("column count differs from the stored schema".into()));
        }
        for i in 0..batch.num_rows() {
            let mut row = Vec::with_capacity(schema.columns.len());
            for (c, a) in schema.columns.iter().zip(batch.columns()) {
                row.push(
                    value_at(c, a.as_ref(), i).map_err(|detail| BaselineError::Value {
                        table: schema.table.to_string(),
                        column: c.name.clone(),
                        detail,
                    })?,
                );
            }
            visit(row)?;
        }
    }
    Ok((schema, kv))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbtrail_core::TableRef;

    fn col(name: &str, ty: ColumnType, unsigned: bool, collation: Option<u16>) -> ColumnDef {
        let mut c = ColumnDef::new(name, ty);
        c.unsigned = unsigned;
        c.collation = collation;
        c
    }

    #[test]
    fn every_type_round_trips_exactly() {
        let schema = TableSchema {
            table: TableRef::new("d", "t"),
            version: 2,
            columns: vec![
                col("i", ColumnType::BigInt, false, None),
                col("u", ColumnType::BigInt, true, None),
                col("f", ColumnType::Float, false, None),
                col("d", ColumnType::Double, false, None),
                col(
                    "dec",
                    ColumnType::Decimal {
                        precision: 65,
                        scale: 30,
                    },
                    false,
                    None,
                ),
                col(
                    "dec0",
                    ColumnType::Decimal {
                        precision: 5,
                        scale: 0,
                    },
                    false,
                    None,
                ),
                col("y", ColumnType::Year, false, None),
                col("e", ColumnType::Enum, false, None),
                col("b", ColumnType::Bit { bits: 64 }, false, None),
                col("s", ColumnType::Set, false, None),
                col("dt", ColumnType::Date, false, None),
                col("dtm", ColumnType::DateTime { fsp: 6 }, false, None),
                col("ts", ColumnType::Timestamp { fsp: 6 }, false, None),
                col("tm", ColumnType::Time { fsp: 6 }, false, None),
                col("txt", ColumnType::VarChar, false, Some(8)),
                col("bin", ColumnType::Blob, false, Some(63)),
                col("j", ColumnType::Json, false, None),
                col("g", ColumnType::Geometry, false, Some(63)),
            ],
            primary_key: vec![0],
            foreign_keys: Vec::new(),
        };
        let zero_dt = DateTime::ZERO;
        let max_dt = DateTime {
            date: Date {
                year: 9999,
                month: 12,
                day: 31,
            },
            hour: 23,
            minute: 59,
            second: 59,
            micros: 999_999,
        };
        let rows: Vec<Row> = vec![
            vec![
                Value::Int(i64::MIN),
                Value::UInt(u64::MAX),
                Value::Float(f32::MAX),
                Value::Double(-2.2250738585072014e-308),
                Value::Decimal(
                    "-99999999999999999999999999999999999.999999999999999999999999999999".into(),
                ),
                Value::Decimal("-99999".into()),
                Value::Year(0),
                Value::Enum(0),
                Value::Bit(u64::MAX),
                Value::Set(u64::MAX),
                Value::Date(Date {
                    year: 0,
                    month: 0,
                    day: 0,
                }),
                Value::DateTime(zero_dt),
                Value::Timestamp(0),
                Value::Time(-(838 * 3600 + 59 * 60 + 59) * 1_000_000),
                Value::Str(vec![0xe9, 0xff, 0x00]),
                Value::Bytes(vec![]),
                Value::Json("{\"a\": [1, 2.5]}".into()),
                Value::Geometry(vec![0, 0, 0, 0, 1, 1, 0, 0, 0]),
            ],
            vec![
                Value::Int(i64::MAX),
                Value::UInt(0),
                Value::Float(0.1),
                Value::Double(1e300),
                Value::Decimal("0.000000000000000000000000000001".into()),
                Value::Decimal("0".into()),
                Value::Year(2155),
                Value::Enum(65535),
                Value::Bit(0),
                Value::Set(0),
                Value::Date(Date {
                    year: 9999,
                    month: 12,
                    day: 31,
                }),
                Value::DateTime(max_dt),
                Value::Timestamp(2_147_483_647_999_999),
                Value::Time(-500_000),
                Value::Str("😀".as_bytes().to_vec()),
                Value::Bytes(vec![0; 70_000]),
                Value::Json("null".into()),
                Value::Geometry(vec![]),
            ],
            vec![Value::Int(0)]
                .into_iter()
                .chain(std::iter::repeat_n(Value::Null, 17))
                .collect(),
        ];
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("t.parquet");
        let mut w = BaselineWriter::new(
            std::fs::File::create(&path).expect("create"),
            &schema,
            vec![("dbtrail.gtid_set".into(), "uuid:1-5".into())],
            2,
        )
        .expect("writer");
        for r in &rows {
            w.push(r).expect("push");
        }
        assert_eq!(w.finish().expect("finish"), 3);
        let mut back = Vec::new();
        let (s, kv) = read(std::fs::File::open(&path).expect("open"), |r| {
            back.push(r);
            Ok(())
        })
        .expect("read");
        assert_eq!(s, schema);
        assert!(kv.contains(&("dbtrail.gtid_set".to_string(), "uuid:1-5".to_string())));
        assert_eq!(back, rows);
    }

    #[test]
    fn decimal_text_conversion() {
        for (t, s) in [
            ("0.00", 2),
            ("-1.50", 2),
            ("123", 0),
            ("-0.001", 3),
            ("10.10", 2),
        ] {
            let v = decimal_to_i256(t, s).expect(t);
            assert_eq!(i256_to_decimal(v, s), t);
        }
        assert!(decimal_to_i256("1.5", 2).is_none(), "scale must match");
    }
}
