//! Column values, exactly as the server holds them.
//!
//! Every MySQL/MariaDB column value has one [`Value`] form that loses nothing:
//! - integers keep their signedness (`Int` vs `UInt`), so BIGINT UNSIGNED above 2^63 stays exact;
//! - DECIMAL is its canonical decimal text (up to 65 digits), never a float;
//! - character data is the raw bytes in the column's charset (`Str`), binary data is `Bytes`:
//!   nothing is transcoded, so latin1 or invalid UTF-8 survives (docs/correctness.md, C7);
//! - TIMESTAMP is UTC epoch microseconds, independent of any time zone
//!   (docs/correctness.md, C2);
//!   DATETIME/DATE/TIME keep their calendar fields and microseconds; zero dates are representable;
//! - ENUM is the 1-based member index (0 = the empty error value) and SET the member bitmask,
//!   both exactly what the binlog carries; the member names live in the column schema;
//! - JSON is text; GEOMETRY is the server's internal form (4-byte SRID + WKB).
use serde::{Deserialize, Serialize};
use std::fmt;

/// One column value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A signed integer column (TINYINT .. BIGINT).
    Int(i64),
    /// An UNSIGNED integer column.
    UInt(u64),
    /// FLOAT (single precision).
    Float(f32),
    /// DOUBLE.
    Double(f64),
    /// DECIMAL as canonical text with exactly the column's scale, e.g. `-12.3400`.
    Decimal(String),
    /// CHAR/VARCHAR/TEXT: raw bytes in the column's character set.
    Str(Vec<u8>),
    /// BINARY/VARBINARY/BLOB and other byte strings (VECTOR, MariaDB UUID/INET6 raw forms).
    Bytes(Vec<u8>),
    /// BIT(M) as an unsigned integer of M bits.
    Bit(u64),
    /// YEAR (0 is the zero year).
    Year(u16),
    /// DATE; zero dates and zero parts allowed.
    Date(Date),
    /// DATETIME with microseconds; zero dates allowed.
    DateTime(DateTime),
    /// TIMESTAMP as microseconds since the Unix epoch in UTC; `0` is the zero timestamp.
    Timestamp(i64),
    /// TIME as signed microseconds (range -838:59:59.999999 ..= 838:59:59.999999).
    Time(i64),
    /// ENUM member index, 1-based; 0 is the empty error value.
    Enum(u16),
    /// SET member bitmask (bit i set = member i+1 present).
    Set(u64),
    /// JSON document as text.
    Json(String),
    /// GEOMETRY in the server's internal form (SRID, little-endian u32, then WKB).
    Geometry(Vec<u8>),
}

/// A calendar date as MySQL stores it (zero parts allowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Date {
    /// 0..=9999
    pub year: u16,
    /// 0..=12
    pub month: u8,
    /// 0..=31
    pub day: u8,
}

/// A DATETIME value: date, time of day and microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DateTime {
    /// The date part.
    pub date: Date,
    /// 0..=23
    pub hour: u8,
    /// 0..=59
    pub minute: u8,
    /// 0..=59
    pub second: u8,
    /// 0..=999_999
    pub micros: u32,
}

impl Date {
    /// The date as the number `YYYYMMDD` (zero dates are 0).
    pub fn yyyymmdd(&self) -> u32 {
        u32::from(self.year) * 10_000 + u32::from(self.month) * 100 + u32::from(self.day)
    }

    /// Inverse of [`Date::yyyymmdd`].
    pub fn from_yyyymmdd(n: u64) -> Date {
        Date {
            year: (n / 10_000) as u16,
            month: ((n / 100) % 100) as u8,
            day: (n % 100) as u8,
        }
    }
}

impl DateTime {
    /// `0000-00-00 00:00:00.000000`.
    pub const ZERO: DateTime = DateTime {
        date: Date {
            year: 0,
            month: 0,
            day: 0,
        },
        hour: 0,
        minute: 0,
        second: 0,
        micros: 0,
    };
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Writes `.ffffff` truncated to `fsp` digits (nothing for fsp 0).
pub fn write_fraction(f: &mut impl fmt::Write, micros: u32, fsp: u8) -> fmt::Result {
    if fsp == 0 {
        return Ok(());
    }
    let fsp = fsp.min(6) as usize;
    let digits = format!("{micros:06}");
    write!(f, ".{}", &digits[..fsp])
}

impl DateTime {
    /// Formats as MySQL prints the value of a column with `fsp` fractional digits.
    pub fn to_mysql_string(&self, fsp: u8) -> String {
        let mut s = format!(
            "{} {:02}:{:02}:{:02}",
            self.date, self.hour, self.minute, self.second
        );
        let _ = write_fraction(&mut s, self.micros, fsp);
        s
    }
}

/// Formats signed TIME microseconds as MySQL prints them (`-838:59:59.000000`).
pub fn time_to_mysql_string(micros: i64, fsp: u8) -> String {
    let neg = micros < 0;
    let abs = micros.unsigned_abs();
    let secs = abs / 1_000_000;
    let frac = (abs % 1_000_000) as u32;
    let mut s = format!(
        "{}{:02}:{:02}:{:02}",
        if neg { "-" } else { "" },
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
    let _ = write_fraction(&mut s, frac, fsp);
    s
}

/// Converts days since 1970-01-01 to a civil (year, month, day) (proleptic Gregorian).
pub fn civil_from_days(days: i64) -> (i64, u8, u8) {
    // Howard Hinnant's algorithm, public domain description.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Converts a civil date to days since 1970-01-01 (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u8, d: u8) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats UTC epoch microseconds as `YYYY-MM-DD HH:MM:SS[.ffffff]` (in UTC).
pub fn timestamp_to_utc_string(micros: i64, fsp: u8) -> String {
    if micros == 0 {
        let mut s = "0000-00-00 00:00:00".to_string();
        let _ = write_fraction(&mut s, 0, fsp);
        return s;
    }
    utc_datetime(micros).to_mysql_string(fsp)
}

/// Splits UTC epoch microseconds into calendar fields.
pub fn utc_datetime(micros: i64) -> DateTime {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    DateTime {
        date: Date {
            year: y.clamp(0, 9999) as u16,
            month: m,
            day: d,
        },
        hour: (sod / 3600) as u8,
        minute: ((sod / 60) % 60) as u8,
        second: (sod % 60) as u8,
        micros: frac,
    }
}

impl Value {
    /// True for SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in [-719_468i64, -1, 0, 1, 11_016, 19_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn formats_like_mysql() {
        assert_eq!(
            time_to_mysql_string(-(838 * 3600 + 59 * 60 + 59) * 1_000_000, 0),
            "-838:59:59"
        );
        assert_eq!(time_to_mysql_string(-500_000, 3), "-00:00:00.500");
        assert_eq!(time_to_mysql_string(90_000_123_456, 6), "25:00:00.123456");
        assert_eq!(
            timestamp_to_utc_string(1_000_123, 3),
            "1970-01-01 00:00:01.000"
        );
        assert_eq!(timestamp_to_utc_string(0, 2), "0000-00-00 00:00:00.00");
        assert_eq!(
            timestamp_to_utc_string(2_147_483_647_999_999, 6),
            "2038-01-19 03:14:07.999999"
        );
        assert_eq!(DateTime::ZERO.to_mysql_string(0), "0000-00-00 00:00:00");
        let d = Date::from_yyyymmdd(99_991_231);
        assert_eq!(
            (d.to_string(), d.yyyymmdd()),
            ("9999-12-31".to_string(), 99_991_231)
        );
    }
}
