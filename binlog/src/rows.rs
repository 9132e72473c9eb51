//! Row images: the bytes of WRITE/UPDATE/DELETE_ROWS events decoded into [`Value`]s.
//!
//! Written here rather than taken from mysql_common because exactness needs control of every
//! type: mysql_common reads YEAR 0000 as 1900 and mis-decodes negative TIME(1)/TIME(2) with a
//! fraction. Formats: MySQL `Field_*::pack` / `my_*_packed_from_binary` (sql/field.cc,
//! mysys/my_time.cc) and the "Rows event" section of the MySQL internals manual
//! (<https://dev.mysql.com/doc/dev/mysql-server/latest/classmysql_1_1binlog_1_1event_1_1Rows__event.html>).
use crate::jsonb;
use dbtrail_core::value::{Date, DateTime, write_fraction};
use dbtrail_core::{ColumnDef, Row, Value};

/// How to read one column of a table's row images: the binlog type byte (the real type for
/// MYSQL_TYPE_STRING) and its table-map metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnCodec {
    /// The real MySQL field type.
    pub ty: u8,
    /// Table-map metadata bytes of the column.
    pub meta: Vec<u8>,
}

/// Result of decoding one row image.
pub struct DecodedRow {
    /// Full image, one value per table column (absent columns are an error under FULL images).
    pub row: Row,
    /// Some value was decoded with a documented loss (JSON opaque scalars).
    pub lossy: bool,
}

/// A reader over a rows event's data.
pub struct RowReader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> RowReader<'a> {
    /// Reads rows from `rows_data`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, at: 0 }
    }

    /// True when all rows were read.
    pub fn is_empty(&self) -> bool {
        self.at >= self.buf.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let s = self
            .buf
            .get(self.at..self.at + n)
            .ok_or_else(|| format!("row data truncated: need {n} bytes at offset {}", self.at))?;
        self.at += n;
        Ok(s)
    }

    fn uint_le(&mut self, n: usize) -> Result<u64, String> {
        Ok(le(self.take(n)?))
    }

    fn uint_be(&mut self, n: usize) -> Result<u64, String> {
        Ok(be(self.take(n)?))
    }

    /// Reads one row image covering the columns set in `present` (a bitmap over all columns).
    pub fn read_row(
        &mut self,
        cols: &[ColumnDef],
        codecs: &[ColumnCodec],
        present: &[bool],
    ) -> Result<DecodedRow, String> {
        let n_present = present.iter().filter(|p| **p).count();
        let nulls = self.take(n_present.div_ceil(8))?;
        let mut row = Vec::with_capacity(cols.len());
        let mut lossy = false;
        // Every column must be present (FULL images), so the null-bitmap index is the column's.
        for (i, col) in cols.iter().enumerate() {
            if !present.get(i).copied().unwrap_or(false) {
                return Err(format!(
                    "column {} is missing from the row image (is binlog_row_image FULL?)",
                    col.name
                ));
            }
            let is_null = nulls[i / 8] & (1 << (i % 8)) != 0;
            if is_null {
                row.push(Value::Null);
                continue;
            }
            let codec = codecs
                .get(i)
                .ok_or_else(|| format!("no codec for column {}", col.name))?;
            let v = self
                .value(col, codec, &mut lossy)
                .map_err(|e| format!("column {}: {e}", col.name))?;
            row.push(v);
        }
        Ok(DecodedRow { row, lossy })
    }

    fn value(
        &mut self,
        col: &ColumnDef,
        c: &ColumnCodec,
        lossy: &mut bool,
    ) -> Result<Value, String> {
        let m = |i: usize| usize::from(c.meta.get(i).copied().unwrap_or(0));
        let signed = !col.unsigned;
        let int = |u: u64, bytes: u32| -> Value {
            if signed {
                let shift = 64 - 8 * bytes;
                Value::Int(((u << shift) as i64) >> shift)
            } else {
                Value::UInt(u)
            }
        };
        Ok(match c.ty {
            1 => int(self.uint_le(1)?, 1),
            2 => int(self.uint_le(2)?, 2),
            9 => int(self.uint_le(3)?, 3),
            3 => int(self.uint_le(4)?, 4),
            8 => int(self.uint_le(8)?, 8),
            4 => Value::Float(f32::from_bits(self.uint_le(4)? as u32)),
            5 => Value::Double(f64::from_bits(self.uint_le(8)?)),
            246 => {
                let (p, s) = (m(0) as u8, m(1) as u8);
                let size = decimal_size(p, s);
                let (text, _) = decimal(self.take(size)?, p, s)?;
                Value::Decimal(text)
            }
            13 => {
                let y = self.uint_le(1)? as u16;
                Value::Year(if y == 0 { 0 } else { 1900 + y })
            }
            10 | 14 => {
                let v = self.uint_le(3)?;
                Value::Date(Date {
                    year: (v >> 9) as u16,
                    month: ((v >> 5) & 15) as u8,
                    day: (v & 31) as u8,
                })
            }
            11 => {
                // Old TIME: signed HHMMSS as a 3-byte integer.
                let raw = self.uint_le(3)?;
                let v = ((raw << 40) as i64) >> 40;
                let a = v.unsigned_abs() as i64;
                let secs = (a / 10000) * 3600 + ((a / 100) % 100) * 60 + a % 100;
                Value::Time(if v < 0 { -secs } else { secs } * 1_000_000)
            }
            19 => {
                let fsp = m(0);
                let packed = self.time2(fsp)?;
                Value::Time(packed_time_micros(packed))
            }
            12 => {
                let v = self.uint_le(8)?;
                let (d, t) = (v / 1_000_000, v % 1_000_000);
                Value::DateTime(DateTime {
                    date: Date::from_yyyymmdd(d),
                    hour: (t / 10000) as u8,
                    minute: ((t / 100) % 100) as u8,
                    second: (t % 100) as u8,
                    micros: 0,
                })
            }
            18 => {
                let fsp = m(0);
                let int = self.uint_be(5)? as i64 - 0x80_0000_0000;
                let frac = self.frac(fsp)?;
                Value::DateTime(datetime_from_int(int, frac))
            }
            7 => Value::Timestamp(self.uint_le(4)? as i64 * 1_000_000),
            17 => {
                let fsp = m(0);
                let secs = self.uint_be(4)? as i64;
                let frac = self.frac(fsp)?;
                Value::Timestamp(secs * 1_000_000 + frac)
            }
            247 => {
                let n = m(1);
                Value::Enum(self.uint_le(n)? as u16)
            }
            248 => {
                let n = m(1);
                if n > 8 {
                    return Err(format!("SET of {n} bytes"));
                }
                Value::Set(self.uint_le(n)?)
            }
            16 => {
                let bytes = m(1) + usize::from(m(0) > 0);
                if bytes > 8 {
                    return Err(format!("BIT of {bytes} bytes"));
                }
                Value::Bit(self.uint_be(bytes)?)
            }
            254 => {
                let max_len = (((m(0) & 0x30) ^ 0x30) << 4) | m(1);
                let len = if max_len < 256 {
                    self.uint_le(1)?
                } else {
                    self.uint_le(2)?
                } as usize;
                let mut b = self.take(len)?.to_vec();
                // BINARY(n) is stored without its trailing 0x00 padding (MariaDB); the
                // column value is always n bytes.
                if col.is_binary() && b.len() < max_len {
                    b.resize(max_len, 0);
                }
                string_value(col, b)
            }
            15 | 253 => {
                let max_len = m(0) | (m(1) << 8);
                let len = if max_len < 256 {
                    self.uint_le(1)?
                } else {
                    self.uint_le(2)?
                } as usize;
                let b = self.take(len)?.to_vec();
                string_value(col, b)
            }
            249..=252 | 255 | 245 | 242 => {
                let pack = m(0);
                if !(1..=4).contains(&pack) {
                    return Err(format!("bad length size {pack}"));
                }
                let len = self.uint_le(pack)? as usize;
                let b = self.take(len)?;
                match c.ty {
                    255 => Value::Geometry(b.to_vec()),
                    242 => Value::Bytes(b.to_vec()),
                    245 => {
                        let r = jsonb::to_text(b)?;
                        *lossy |= r.lossy;
                        Value::Json(r.text)
                    }
                    _ if matches!(col.ty, dbtrail_core::ColumnType::Json) => {
                        // MariaDB JSON is LONGTEXT.
                        Value::Json(
                            String::from_utf8(b.to_vec()).map_err(|_| "JSON text is not UTF-8")?,
                        )
                    }
                    _ => string_value(col, b.to_vec()),
                }
            }
            t => return Err(format!("unsupported binlog field type {t}")),
        })
    }

    fn frac(&mut self, fsp: usize) -> Result<i64, String> {
        Ok(match fsp {
            0 => 0,
            1 | 2 => self.uint_be(1)? as i64 * 10_000,
            3 | 4 => self.uint_be(2)? as i64 * 100,
            5 | 6 => self.uint_be(3)? as i64,
            _ => return Err(format!("bad fractional precision {fsp}")),
        })
    }

    /// TIME2 -> MySQL "packed" time (intpart << 24 | micros, signed).
    fn time2(&mut self, fsp: usize) -> Result<i64, String> {
        const INT_OFS: i64 = 0x80_0000;
        Ok(match fsp {
            0 => (self.uint_be(3)? as i64 - INT_OFS) << 24,
            1 | 2 => {
                let mut int = self.uint_be(3)? as i64 - INT_OFS;
                let mut frac = self.uint_be(1)? as i64;
                if int < 0 && frac != 0 {
                    int += 1;
                    frac -= 0x100;
                }
                (int << 24) + frac * 10_000
            }
            3 | 4 => {
                let mut int = self.uint_be(3)? as i64 - INT_OFS;
                let mut frac = self.uint_be(2)? as i64;
                if int < 0 && frac != 0 {
                    int += 1;
                    frac -= 0x10000;
                }
                (int << 24) + frac * 100
            }
            5 | 6 => self.uint_be(6)? as i64 - 0x8000_0000_0000,
            _ => return Err(format!("bad fractional precision {fsp}")),
        })
    }
}

fn string_value(col: &ColumnDef, b: Vec<u8>) -> Value {
    if col.is_binary() {
        Value::Bytes(b)
    } else {
        Value::Str(b)
    }
}

fn le(b: &[u8]) -> u64 {
    b.iter()
        .rev()
        .fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
}

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
}

/// Signed microseconds of a packed TIME.
pub fn packed_time_micros(packed: i64) -> i64 {
    let neg = packed < 0;
    let p = packed.unsigned_abs() as i64;
    let hms = p >> 24;
    let us = p & 0xff_ffff;
    let h = (hms >> 12) & 0x3ff;
    let mi = (hms >> 6) & 0x3f;
    let s = hms & 0x3f;
    let total = (h * 3600 + mi * 60 + s) * 1_000_000 + us;
    if neg { -total } else { total }
}

fn datetime_from_int(int: i64, micros: i64) -> DateTime {
    let ymd = int >> 17;
    let hms = int & 0x1ffff;
    let ym = ymd >> 5;
    DateTime {
        date: Date {
            year: (ym / 13) as u16,
            month: (ym % 13) as u8,
            day: (ymd & 31) as u8,
        },
        hour: (hms >> 12) as u8,
        minute: ((hms >> 6) & 63) as u8,
        second: (hms & 63) as u8,
        micros: micros as u32,
    }
}

/// Text of a packed temporal value inside binary JSON (DATE=10, TIME=11, DATETIME=12,
/// TIMESTAMP=7), as MySQL prints JSON temporal scalars (6 fractional digits).
pub fn packed_temporal_text(field_type: u8, packed: i64) -> String {
    if field_type == 11 {
        return dbtrail_core::value::time_to_mysql_string(packed_time_micros(packed), 6);
    }
    let dt = datetime_from_int(packed >> 24, packed & 0xff_ffff);
    if field_type == 10 {
        return dt.date.to_string();
    }
    let mut s = dt.to_mysql_string(0);
    let _ = write_fraction(&mut s, dt.micros, 6);
    s
}

const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

/// Bytes of a binary DECIMAL(p, s).
pub fn decimal_size(p: u8, s: u8) -> usize {
    let intg = usize::from(p.saturating_sub(s));
    let s = usize::from(s);
    (intg / 9) * 4 + DIG2BYTES[intg % 9] + (s / 9) * 4 + DIG2BYTES[s % 9]
}

/// Decodes a binary DECIMAL(p, s) (MySQL `bin2decimal`) into canonical text with exactly
/// `s` fractional digits, returning the text and the bytes consumed.
pub fn decimal(b: &[u8], p: u8, s: u8) -> Result<(String, usize), String> {
    let size = decimal_size(p, s);
    let raw = b
        .get(..size)
        .ok_or_else(|| format!("DECIMAL({p},{s}) truncated"))?;
    if raw.is_empty() {
        return Err(format!("DECIMAL({p},{s}) has no bytes"));
    }
    let negative = raw[0] & 0x80 == 0;
    let mut d: Vec<u8> = raw.to_vec();
    d[0] ^= 0x80;
    if negative {
        for x in d.iter_mut() {
            *x = !*x;
        }
    }
    let intg = usize::from(p.saturating_sub(s));
    let scale = usize::from(s);
    let mut at = 0;
    let mut int_digits = String::new();
    let lead = intg % 9;
    if lead > 0 {
        let n = DIG2BYTES[lead];
        let _ = std::fmt::Write::write_fmt(
            &mut int_digits,
            format_args!("{:0w$}", be(&d[at..at + n]), w = lead),
        );
        at += n;
    }
    for _ in 0..intg / 9 {
        let _ =
            std::fmt::Write::write_fmt(&mut int_digits, format_args!("{:09}", be(&d[at..at + 4])));
        at += 4;
    }
    let mut frac_digits = String::new();
    for _ in 0..scale / 9 {
        let _ =
            std::fmt::Write::write_fmt(&mut frac_digits, format_args!("{:09}", be(&d[at..at + 4])));
        at += 4;
    }
    let trail = scale % 9;
    if trail > 0 {
        let n = DIG2BYTES[trail];
        let _ = std::fmt::Write::write_fmt(
            &mut frac_digits,
            format_args!("{:0w$}", be(&d[at..at + n]), w = trail),
        );
        at += n;
    }
    if int_digits.len() > intg || frac_digits.len() > scale {
        return Err(format!("DECIMAL({p},{s}) digit group out of range"));
    }
    let int_trimmed = int_digits.trim_start_matches('0');
    let mut out = String::new();
    let is_zero = int_trimmed.is_empty() && frac_digits.bytes().all(|c| c == b'0');
    if negative && !is_zero {
        out.push('-');
    }
    out.push_str(if int_trimmed.is_empty() {
        "0"
    } else {
        int_trimmed
    });
    if scale > 0 {
        out.push('.');
        out.push_str(&frac_digits);
    }
    Ok((out, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_examples_from_the_manual() {
        // MySQL manual (precision-math-decimal-characteristics): 1234567890.1234 as DECIMAL(14,4)
        // is 0x810DFB38D204D2.
        let b = [0x81, 0x0D, 0xFB, 0x38, 0xD2, 0x04, 0xD2];
        assert_eq!(
            decimal(&b, 14, 4).expect("ok"),
            ("1234567890.1234".to_string(), 7)
        );
        let neg: Vec<u8> = b.iter().map(|x| !x).collect();
        assert_eq!(decimal(&neg, 14, 4).expect("ok").0, "-1234567890.1234");
        assert_eq!(decimal_size(65, 30), 30);
    }

    #[test]
    fn packed_times() {
        // -00:00:00.5 as TIME(1): intpart -1 -> 0x7FFFFF, frac 0x100-50=0xCE
        let mut r = RowReader::new(&[0x7f, 0xff, 0xff, 0xce]);
        let p = r.time2(1).expect("ok");
        assert_eq!(packed_time_micros(p), -500_000);
    }
}
