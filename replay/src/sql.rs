//! SQL text for values and rows, byte-exact.
//!
//! Dump files begin with `SET NAMES binary` and `SET TIME_ZONE='+00:00'`, so every literal
//! below is read back as the exact bytes written:
//! - character and binary strings are quoted with MySQL's escapes (`\0 \' \\ \n \r \Z`) when
//!   they are valid UTF-8, else written as hex literals `X'..'`; nothing is transcoded;
//! - FLOAT is written as the exact decimal of its binary value (so it parses back to the same
//!   float), DOUBLE as its shortest round-trip form, DECIMAL as its text;
//! - TIMESTAMP is written in UTC; DATE/DATETIME/TIME with all six fractional digits;
//! - ENUM and SET are written as their index / bitmask numbers; YEAR as a number (0 = 0000);
//! - JSON is a `_utf8mb4` literal (a binary string cannot become JSON).
use dbtrail_core::schema::quote_ident;
use dbtrail_core::value::{time_to_mysql_string, timestamp_to_utc_string};
use dbtrail_core::{ColumnDef, TableSchema, Value};
use std::io::Write;

/// Appends `bytes` as a quoted MySQL string literal.
pub fn quote_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 2);
    out.push(b'\'');
    // Runs of bytes that need no escape are copied at once.
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            0 => b"\\0",
            b'\'' => b"\\'",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            0x1a => b"\\Z",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'\'');
}

fn hex_literal(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if bytes.is_empty() {
        out.extend_from_slice(b"''");
        return;
    }
    out.reserve(bytes.len() * 2 + 3);
    out.extend_from_slice(b"X'");
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0x0f)]);
    }
    out.push(b'\'');
}

/// Appends the literal for value `v` of column `col`.
pub fn write_value(out: &mut Vec<u8>, col: &ColumnDef, v: &Value) {
    let _ = match v {
        Value::Null => write!(out, "NULL"),
        Value::Int(i) => {
            out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes());
            Ok(())
        }
        Value::UInt(u) | Value::Bit(u) | Value::Set(u) => {
            out.extend_from_slice(itoa::Buffer::new().format(*u).as_bytes());
            Ok(())
        }
        Value::Enum(i) => write!(out, "{i}"),
        Value::Year(y) => write!(out, "{y}"),
        Value::Decimal(s) => {
            out.extend_from_slice(s.as_bytes());
            Ok(())
        }
        Value::Float(f) => write!(out, "{:?}", f64::from(*f)),
        Value::Double(d) => write!(out, "{d:?}"),
        Value::Str(b) if std::str::from_utf8(b).is_ok() => {
            quote_bytes(out, b);
            Ok(())
        }
        Value::Str(b) | Value::Bytes(b) | Value::Geometry(b) => {
            hex_literal(out, b);
            Ok(())
        }
        Value::Json(s) => {
            out.extend_from_slice(b"_utf8mb4");
            quote_bytes(out, s.as_bytes());
            Ok(())
        }
        Value::Date(d) => write!(out, "'{d}'"),
        Value::DateTime(dt) => write!(out, "'{}'", dt.to_mysql_string(6)),
        Value::Timestamp(us) => write!(out, "'{}'", timestamp_to_utc_string(*us, 6)),
        Value::Time(us) => write!(out, "'{}'", time_to_mysql_string(*us, 6)),
    };
    let _ = col;
}

/// Columns an INSERT names: every column except generated ones (invisible ones included).
pub fn insert_columns(schema: &TableSchema) -> Vec<usize> {
    (0..schema.columns.len())
        .filter(|i| !schema.columns[*i].generated)
        .collect()
}

/// `INSERT INTO `db`.`t` (`a`,`b`) VALUES` (without rows).
pub fn insert_prefix(schema: &TableSchema, qualified: bool) -> Vec<u8> {
    let cols: Vec<String> = insert_columns(schema)
        .into_iter()
        .map(|i| quote_ident(&schema.columns[i].name))
        .collect();
    let name = if qualified {
        schema.table.quoted()
    } else {
        quote_ident(&schema.table.table)
    };
    format!("INSERT INTO {name} ({}) VALUES", cols.join(",")).into_bytes()
}

/// Appends `(v1,v2,...)` for one full row image.
pub fn write_row(out: &mut Vec<u8>, schema: &TableSchema, row: &[Value]) {
    out.push(b'(');
    for (n, i) in insert_columns(schema).into_iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        match row.get(i) {
            Some(v) => write_value(out, &schema.columns[i], v),
            None => out.extend_from_slice(b"NULL"),
        }
    }
    out.push(b')');
}

/// The session settings every data file starts with.
pub const DATA_FILE_HEADER: &str = "/*!40101 SET NAMES binary*/;\n\
/*!40014 SET FOREIGN_KEY_CHECKS=0*/;\n\
/*!40103 SET TIME_ZONE='+00:00' */;\n\
/*!40101 SET SQL_MODE='NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'*/;\n";

#[cfg(test)]
mod tests {
    use super::*;
    use dbtrail_core::{ColumnType, TableRef};

    fn lit(v: Value) -> String {
        let mut out = Vec::new();
        write_value(&mut out, &ColumnDef::new("c", ColumnType::VarChar), &v);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn literals() {
        assert_eq!(
            lit(Value::Str(b"a'b\\c\0\n\x1a".to_vec())),
            "'a\\'b\\\\c\\0\\n\\Z'"
        );
        assert_eq!(lit(Value::Str(vec![0xe9, 0xff])), "X'E9FF'");
        assert_eq!(lit(Value::Bytes(vec![])), "''");
        assert_eq!(lit(Value::Float(0.1)), "0.10000000149011612");
        assert_eq!(lit(Value::Double(1e300)), "1e300");
        assert_eq!(lit(Value::Time(-500_000)), "'-00:00:00.500000'");
        assert_eq!(lit(Value::Timestamp(0)), "'0000-00-00 00:00:00.000000'");
        assert_eq!(
            lit(Value::Json("{\"a\": \"x'y\"}".into())),
            "_utf8mb4'{\"a\": \"x\\'y\"}'"
        );
        assert_eq!(lit(Value::UInt(u64::MAX)), "18446744073709551615");
    }

    #[test]
    fn inserts_skip_generated_columns() {
        let mut g = ColumnDef::new("g`x", ColumnType::Int);
        g.generated = true;
        let s = TableSchema {
            table: TableRef::new("d", "t"),
            version: 1,
            columns: vec![
                ColumnDef::new("a", ColumnType::Int),
                g,
                ColumnDef::new("b", ColumnType::Int),
            ],
            primary_key: vec![0],
            foreign_keys: Vec::new(),
        };
        assert_eq!(
            String::from_utf8_lossy(&insert_prefix(&s, true)),
            "INSERT INTO `d`.`t` (`a`,`b`) VALUES"
        );
        let mut out = Vec::new();
        write_row(&mut out, &s, &[Value::Int(1), Value::Int(2), Value::Null]);
        assert_eq!(out, b"(1,NULL)");
    }
}
