//! Rendering values as JSON for people and the events API.
//!
//! Each value is rendered as the text the server itself prints for it over the text
//! protocol with `time_zone='+00:00'`, with these exceptions: integers and BIT are JSON
//! numbers (exact for all 64-bit values), FLOAT/DOUBLE are JSON numbers, NULL is `null`,
//! and bytes that are binary (or not valid UTF-8) are `{"hex":"..."}`.
use crate::schema::{ColumnDef, ColumnType};
use crate::value::{Value, time_to_mysql_string, timestamp_to_utc_string};
use serde_json::{Value as Json, json};

/// Renders one value of `col`.
pub fn render_value(col: &ColumnDef, v: &Value) -> Json {
    let fsp = col.ty.fsp();
    match v {
        Value::Null => Json::Null,
        Value::Int(i) => json!(i),
        Value::UInt(u) | Value::Bit(u) => json!(u),
        Value::Float(f) => f
            .to_string()
            .parse::<f64>()
            .map(|d| json!(d))
            .unwrap_or(Json::Null),
        Value::Double(d) => json!(d),
        Value::Decimal(s) | Value::Json(s) => json!(s),
        Value::Str(b) if !col.is_binary() => match std::str::from_utf8(b) {
            Ok(s) => json!(s),
            Err(_) => hex(b),
        },
        Value::Str(b) | Value::Bytes(b) | Value::Geometry(b) => hex(b),
        Value::Year(y) => json!(format!("{y:04}")),
        Value::Date(d) => json!(d.to_string()),
        Value::DateTime(dt) => json!(dt.to_mysql_string(fsp)),
        Value::Timestamp(us) => json!(timestamp_to_utc_string(*us, fsp)),
        Value::Time(us) => json!(time_to_mysql_string(*us, fsp)),
        Value::Enum(i) => {
            if *i == 0 {
                json!("")
            } else {
                member(col, usize::from(*i) - 1)
            }
        }
        Value::Set(mask) => {
            let mut parts: Vec<String> = Vec::new();
            for i in 0..64 {
                if mask & (1u64 << i) != 0 {
                    match col.members.get(i) {
                        Some(m) => parts.push(String::from_utf8_lossy(m).into_owned()),
                        None => parts.push(format!("#{}", i + 1)),
                    }
                }
            }
            json!(parts.join(","))
        }
    }
}

fn member(col: &ColumnDef, idx: usize) -> Json {
    match col.members.get(idx) {
        Some(m) => match std::str::from_utf8(m) {
            Ok(s) => json!(s),
            Err(_) => hex(m),
        },
        None => json!(format!("#{}", idx + 1)),
    }
}

fn hex(b: &[u8]) -> Json {
    json!({ "hex": hex::encode(b) })
}

/// Formats epoch microseconds as RFC 3339 in UTC with microseconds.
pub fn rfc3339_micros(us: i64) -> String {
    let dt = crate::value::utc_datetime(us);
    format!(
        "{}T{:02}:{:02}:{:02}.{:06}Z",
        dt.date, dt.hour, dt.minute, dt.second, dt.micros
    )
}

/// Is `ty` rendered as a JSON number?
pub fn is_numeric(ty: &ColumnType) -> bool {
    ty.is_integer()
        || matches!(
            ty,
            ColumnType::Float | ColumnType::Double | ColumnType::Bit { .. }
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ColumnDef;

    #[test]
    fn renders_enum_set_and_bytes() {
        let mut c = ColumnDef::new("s", ColumnType::Set);
        c.members = vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()];
        assert_eq!(render_value(&c, &Value::Set(0b101)), json!("a,c"));
        let mut e = ColumnDef::new("e", ColumnType::Enum);
        e.members = c.members.clone();
        assert_eq!(render_value(&e, &Value::Enum(2)), json!("b"));
        assert_eq!(render_value(&e, &Value::Enum(0)), json!(""));
        let mut b = ColumnDef::new("b", ColumnType::VarChar);
        b.collation = Some(63);
        assert_eq!(
            render_value(&b, &Value::Str(vec![0xff, 0])),
            json!({"hex":"ff00"})
        );
        assert_eq!(render_value(&b, &Value::UInt(u64::MAX)), json!(u64::MAX));
        assert_eq!(rfc3339_micros(1_500_000), "1970-01-01T00:00:01.500000Z");
    }
}
