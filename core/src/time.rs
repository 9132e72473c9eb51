//! Parsing points in time given by people (`--since`, `--at`).
//!
//! Accepted: `YYYY-MM-DD HH:MM:SS` or with `T`, optionally `.f` to `.ffffff`, optionally a
//! `Z` or `±HH:MM` offset; without an offset the time is UTC. The result keeps how many
//! fractional digits were given, because PITR compares commit times truncated to the
//! target's precision.
use crate::value::days_from_civil;

/// A parsed point in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimePoint {
    /// Microseconds since the Unix epoch, UTC.
    pub micros: i64,
    /// Fractional digits given (0 = whole seconds, 6 = microseconds).
    pub digits: u8,
}

impl TimePoint {
    /// The last microsecond this point covers at its precision: `14:30:00` covers
    /// 14:30:00.000000 ..= 14:30:00.999999.
    pub fn end_inclusive(&self) -> i64 {
        let unit = 10i64.pow(6 - u32::from(self.digits.min(6)));
        self.micros + unit - 1
    }
}

/// Parses a time; the error says what form is expected.
pub fn parse_time(input: &str) -> Result<TimePoint, String> {
    let bad = || {
        format!(
            "invalid time {input:?}: expected YYYY-MM-DD HH:MM:SS[.ffffff] (UTC) or RFC 3339 \
             with an offset, e.g. 2026-11-24T14:30:00.250000+02:00"
        )
    };
    let s = input.trim();
    if s.len() < 19 {
        return Err(bad());
    }
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        let part = s.get(r).ok_or_else(bad)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse::<i64>().map_err(|_| bad())
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b' ' || b[10] == b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 59 {
        return Err(bad());
    }
    let mut rest = &s[19..];
    let mut micros = 0i64;
    let mut digits = 0u8;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 6 {
            return Err(bad());
        }
        let frac: i64 = r[..n].parse().map_err(|_| bad())?;
        micros = frac * 10i64.pow(6 - n as u32);
        digits = n as u8;
        rest = &r[n..];
    }
    let offset_secs = match rest {
        "" | "Z" | "z" => 0,
        o if (o.starts_with('+') || o.starts_with('-'))
            && o.len() == 6
            && o.is_ascii()
            && &o[3..4] == ":" =>
        {
            let oh: i64 = o[1..3].parse().map_err(|_| bad())?;
            let om: i64 = o[4..6].parse().map_err(|_| bad())?;
            let v = oh * 3600 + om * 60;
            if o.starts_with('-') { -v } else { v }
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(y, mo as u8, d as u8);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    Ok(TimePoint {
        micros: secs * 1_000_000 + micros,
        digits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_offsets_are_errors_not_panics() {
        // Found by the api_request fuzz target: slicing inside a multi-byte character.
        assert!(parse_time("2001-10-15 08:02:10-+\u{43d}1-").is_err());
        assert!(parse_time("2001-10-15 08:02:10+é:00").is_err());
        assert!(parse_time("2001-10-15 08:02:10.5+\u{43d}\u{43d}").is_err());
    }

    #[test]
    fn parses_forms() {
        let p = parse_time("1970-01-01 00:00:01").expect("ok");
        assert_eq!(
            p,
            TimePoint {
                micros: 1_000_000,
                digits: 0
            }
        );
        assert_eq!(p.end_inclusive(), 1_999_999);
        let p = parse_time("1970-01-01T00:00:01.25Z").expect("ok");
        assert_eq!(
            p,
            TimePoint {
                micros: 1_250_000,
                digits: 2
            }
        );
        assert_eq!(p.end_inclusive(), 1_259_999);
        let p = parse_time("1970-01-01T02:00:00.000001+02:00").expect("ok");
        assert_eq!(
            p,
            TimePoint {
                micros: 1,
                digits: 6
            }
        );
        assert_eq!(p.end_inclusive(), 1);
        for bad in [
            "",
            "yesterday",
            "2026-13-01 00:00:00",
            "2026-01-01 00:00:00.1234567",
            "2026-01-01 00:00:00+2",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
