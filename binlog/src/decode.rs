//! Decoding TABLE_MAP metadata into [`TableSchema`]s and binlog values into [`Value`]s.
//!
//! Signedness, column names, charsets, ENUM/SET members, visibility and the primary key come
//! from the table map's optional metadata (`binlog_row_metadata=FULL`); without it integers
//! would read as signed (docs/correctness.md, C6), so the capture task refuses tables whose
//! map lacks it unless a schema from information_schema is supplied. The real type of
//! MYSQL_TYPE_STRING columns (CHAR, ENUM, SET) is taken from the metadata bytes.
use crate::rows::ColumnCodec;
use dbtrail_core::{ColumnDef, ColumnType, TableRef, TableSchema};
use mysql_async::binlog::events::{OptionalMetaExtractor, OptionalMetadataField, TableMapEvent};
use mysql_async::consts::ColumnType as MyType;

/// Builds the schema a TABLE_MAP event describes (version 0: storage assigns versions), and
/// the per-column codecs to read its row images.
pub fn schema_from_tme(tme: &TableMapEvent<'_>) -> Result<(TableSchema, Vec<ColumnCodec>), String> {
    let n = tme.columns_count() as usize;
    let meta = OptionalMetaExtractor::new(tme.iter_optional_meta())
        .map_err(|e| format!("bad optional metadata: {e}"))?;
    let mut signedness = meta.iter_signedness();
    let mut charsets = meta.iter_charset();
    let mut enum_set_charsets = meta.iter_enum_and_set_charset();
    let mut names = meta.iter_column_name();
    let mut enum_values: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut set_values: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut visibility: Option<Vec<bool>> = None;
    for field in tme.iter_optional_meta() {
        match field.map_err(|e| format!("bad optional metadata: {e}"))? {
            OptionalMetadataField::EnumStrValue(v) => {
                for e in v.iter_values() {
                    let e = e.map_err(|e| format!("bad ENUM metadata: {e}"))?;
                    enum_values.push(e.values().iter().map(|x| x.value_raw().to_vec()).collect());
                }
            }
            OptionalMetadataField::SetStrValue(v) => {
                for s in v.iter_values() {
                    let s = s.map_err(|e| format!("bad SET metadata: {e}"))?;
                    set_values.push(s.values().iter().map(|x| x.value_raw().to_vec()).collect());
                }
            }
            OptionalMetadataField::ColumnVisibility(bits) => {
                visibility = Some(bits.iter().by_vals().collect());
            }
            _ => {}
        }
    }
    let mut enum_iter = enum_values.into_iter();
    let mut set_iter = set_values.into_iter();
    let mut columns = Vec::with_capacity(n);
    let mut codecs = Vec::with_capacity(n);
    for i in 0..n {
        let my = tme
            .get_column_type(i)
            .map_err(|e| format!("column {i}: {e}"))?
            .ok_or_else(|| format!("column {i}: no type"))?;
        let m = tme.get_column_metadata(i).unwrap_or(&[]);
        let unsigned = if my.is_numeric_type() {
            signedness.next().unwrap_or(false)
        } else {
            false
        };
        let collation = if my.is_character_type() {
            charsets.next().transpose().map_err(|e| e.to_string())?
        } else if my.is_enum_or_set_type() {
            enum_set_charsets
                .next()
                .transpose()
                .map_err(|e| e.to_string())?
        } else {
            None
        };
        let name = match names.next().transpose().map_err(|e| e.to_string())? {
            Some(n) => String::from_utf8_lossy(n.name_raw()).into_owned(),
            None => format!("@{}", i + 1),
        };
        let ty = column_type(my, m).ok_or_else(|| {
            format!("column {name}: unsupported binlog column type {my:?} (metadata {m:?})")
        })?;
        let mut col = ColumnDef::new(name, ty.clone());
        col.unsigned = unsigned;
        col.collation = collation;
        col.nullable = tme.null_bitmask().get(i).is_some_and(|b| *b);
        match ty {
            ColumnType::Enum => col.members = enum_iter.next().unwrap_or_default(),
            ColumnType::Set => col.members = set_iter.next().unwrap_or_default(),
            _ => {}
        }
        if let Some(v) = &visibility {
            col.invisible = !v.get(i).copied().unwrap_or(true);
        }
        columns.push(col);
        codecs.push(ColumnCodec {
            ty: my as u8,
            meta: m.to_vec(),
        });
    }
    let primary_key = meta
        .iter_primary_key()
        .map(|r| r.map(|i| i as usize))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad primary key metadata: {e}"))?;
    Ok((
        TableSchema {
            table: TableRef::new(tme.database_name(), tme.table_name()),
            version: 0,
            columns,
            primary_key,
            foreign_keys: Vec::new(),
        },
        codecs,
    ))
}

fn column_type(my: MyType, m: &[u8]) -> Option<ColumnType> {
    use MyType::*;
    let b = |i: usize| m.get(i).copied().unwrap_or(0);
    Some(match my {
        MYSQL_TYPE_TINY => ColumnType::TinyInt,
        MYSQL_TYPE_SHORT => ColumnType::SmallInt,
        MYSQL_TYPE_INT24 => ColumnType::MediumInt,
        MYSQL_TYPE_LONG => ColumnType::Int,
        MYSQL_TYPE_LONGLONG => ColumnType::BigInt,
        MYSQL_TYPE_FLOAT => ColumnType::Float,
        MYSQL_TYPE_DOUBLE => ColumnType::Double,
        MYSQL_TYPE_NEWDECIMAL => ColumnType::Decimal {
            precision: b(0),
            scale: b(1),
        },
        MYSQL_TYPE_YEAR => ColumnType::Year,
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => ColumnType::Date,
        MYSQL_TYPE_TIME => ColumnType::Time { fsp: 0 },
        MYSQL_TYPE_TIME2 => ColumnType::Time { fsp: b(0) },
        MYSQL_TYPE_DATETIME => ColumnType::DateTime { fsp: 0 },
        MYSQL_TYPE_DATETIME2 => ColumnType::DateTime { fsp: b(0) },
        MYSQL_TYPE_TIMESTAMP => ColumnType::Timestamp { fsp: 0 },
        MYSQL_TYPE_TIMESTAMP2 => ColumnType::Timestamp { fsp: b(0) },
        MYSQL_TYPE_STRING => ColumnType::Char,
        MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING => ColumnType::VarChar,
        MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB | MYSQL_TYPE_BLOB => {
            ColumnType::Blob
        }
        MYSQL_TYPE_ENUM => ColumnType::Enum,
        MYSQL_TYPE_SET => ColumnType::Set,
        MYSQL_TYPE_BIT => ColumnType::Bit {
            bits: b(1) * 8 + b(0),
        },
        MYSQL_TYPE_JSON => ColumnType::Json,
        MYSQL_TYPE_GEOMETRY => ColumnType::Geometry,
        MYSQL_TYPE_VECTOR => ColumnType::Vector,
        _ => return None,
    })
}
