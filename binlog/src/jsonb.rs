//! MySQL's binary JSON format to JSON text.
//!
//! Format: `sql/json_binary.h` in the MySQL server ("JSON binary format"): a type byte, then
//! objects/arrays (small: 2-byte counts/offsets, large: 4-byte) with key and value entries,
//! inlined small scalars, variable-length strings, and "opaque" values carrying a MySQL field
//! type (DECIMAL, DATE, DATETIME, TIME, ...). Output uses MySQL's own separators
//! (`{"a": 1, "b": [1, 2]}`). Opaque DECIMAL/temporal scalars are printed as MySQL prints them
//! (numbers / quoted strings) and reported as `lossy`: JSON text cannot say "this is a DATE",
//! so re-importing them yields a number or string scalar instead.
use std::fmt::Write;

/// The rendered document, and whether it contained opaque scalars (see module docs).
pub struct Rendered {
    /// JSON text.
    pub text: String,
    /// True when an opaque scalar was rendered as its text form.
    pub lossy: bool,
}

/// Renders a binary JSON value. An empty input is the JSON null MySQL writes for
/// empty values.
pub fn to_text(bytes: &[u8]) -> Result<Rendered, String> {
    let mut r = Rendered {
        text: String::new(),
        lossy: false,
    };
    if bytes.is_empty() {
        r.text.push_str("null");
        return Ok(r);
    }
    let t = bytes[0];
    value(&mut r, t, &bytes[1..], 0)?;
    Ok(r)
}

fn get(b: &[u8], at: usize, n: usize) -> Result<&[u8], String> {
    b.get(at..at + n).ok_or_else(|| {
        format!(
            "binary JSON truncated (need {n} bytes at {at} of {})",
            b.len()
        )
    })
}

fn uint(b: &[u8], at: usize, n: usize) -> Result<u64, String> {
    Ok(get(b, at, n)?
        .iter()
        .rev()
        .fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
}

fn varlen(b: &[u8], at: usize) -> Result<(usize, usize), String> {
    let mut len = 0usize;
    for i in 0..5 {
        let byte = *b.get(at + i).ok_or("binary JSON truncated in a length")?;
        len |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((len, i + 1));
        }
    }
    Err("binary JSON length too long".into())
}

/// Writes a JSON string literal the way MySQL escapes it.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn value(r: &mut Rendered, t: u8, b: &[u8], depth: usize) -> Result<(), String> {
    if depth > 150 {
        return Err("binary JSON nested too deeply".into());
    }
    match t {
        0x00 | 0x01 => container(r, b, t == 0x01, true, depth),
        0x02 | 0x03 => container(r, b, t == 0x03, false, depth),
        0x04 => {
            r.text.push_str(match get(b, 0, 1)?[0] {
                0x00 => "null",
                0x01 => "true",
                0x02 => "false",
                x => return Err(format!("bad JSON literal {x:#x}")),
            });
            Ok(())
        }
        0x05 => {
            let _ = write!(r.text, "{}", uint(b, 0, 2)? as u16 as i16);
            Ok(())
        }
        0x06 => {
            let _ = write!(r.text, "{}", uint(b, 0, 2)?);
            Ok(())
        }
        0x07 => {
            let _ = write!(r.text, "{}", uint(b, 0, 4)? as u32 as i32);
            Ok(())
        }
        0x08 => {
            let _ = write!(r.text, "{}", uint(b, 0, 4)?);
            Ok(())
        }
        0x09 => {
            let _ = write!(r.text, "{}", uint(b, 0, 8)? as i64);
            Ok(())
        }
        0x0a => {
            let _ = write!(r.text, "{}", uint(b, 0, 8)?);
            Ok(())
        }
        0x0b => {
            let d = f64::from_bits(uint(b, 0, 8)?);
            if !d.is_finite() {
                return Err("non-finite double in JSON".into());
            }
            let _ = write!(r.text, "{d:?}");
            Ok(())
        }
        0x0c => {
            let (len, n) = varlen(b, 0)?;
            let s = std::str::from_utf8(get(b, n, len)?)
                .map_err(|_| "JSON string is not UTF-8".to_string())?;
            write_str(&mut r.text, s);
            Ok(())
        }
        0x0f => opaque(r, b),
        x => Err(format!("unknown binary JSON type {x:#x}")),
    }
}

fn container(
    r: &mut Rendered,
    b: &[u8],
    large: bool,
    object: bool,
    depth: usize,
) -> Result<(), String> {
    let w = if large { 4 } else { 2 };
    let count = uint(b, 0, w)? as usize;
    let size = uint(b, w, w)? as usize;
    if size > b.len() {
        return Err("binary JSON container larger than its value".into());
    }
    let key_entry = w + 2;
    let value_entry = 1 + w;
    let header = 2 * w;
    let values_at = header + if object { count * key_entry } else { 0 };
    r.text.push(if object { '{' } else { '[' });
    for i in 0..count {
        if i > 0 {
            r.text.push_str(", ");
        }
        if object {
            let ke = header + i * key_entry;
            let off = uint(b, ke, w)? as usize;
            let len = uint(b, ke + w, 2)? as usize;
            let key = std::str::from_utf8(get(b, off, len)?)
                .map_err(|_| "JSON key is not UTF-8".to_string())?;
            write_str(&mut r.text, key);
            r.text.push_str(": ");
        }
        let ve = values_at + i * value_entry;
        let vt = get(b, ve, 1)?[0];
        let inlined = matches!(vt, 0x04..=0x06) || (large && matches!(vt, 0x07 | 0x08));
        if inlined {
            value(r, vt, get(b, ve + 1, w)?, depth + 1)?;
        } else {
            let off = uint(b, ve + 1, w)? as usize;
            let inner = b.get(off..size).ok_or("binary JSON offset out of range")?;
            value(r, vt, inner, depth + 1)?;
        }
    }
    r.text.push(if object { '}' } else { ']' });
    Ok(())
}

fn opaque(r: &mut Rendered, b: &[u8]) -> Result<(), String> {
    let field_type = get(b, 0, 1)?[0];
    let (len, n) = varlen(b, 1)?;
    let data = get(b, 1 + n, len)?;
    r.lossy = true;
    match field_type {
        246 => {
            // NEWDECIMAL: precision, scale, binary decimal.
            let p = *data.first().ok_or("opaque decimal truncated")?;
            let s = *data.get(1).ok_or("opaque decimal truncated")?;
            let (text, _) = crate::rows::decimal(&data[2..], p, s)?;
            r.text.push_str(&text);
        }
        10 | 11 | 12 | 7 => {
            let packed = uint(data, 0, 8)? as i64;
            let text = crate::rows::packed_temporal_text(field_type, packed);
            write_str(&mut r.text, &text);
        }
        _ => {
            let _ = write!(r.text, "\"base64:type{field_type}:{}\"", base64(data));
        }
    }
    Ok(())
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, x)| acc | (u32::from(*x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_scalars_and_containers() {
        assert_eq!(to_text(&[0x04, 0x01]).expect("ok").text, "true");
        assert_eq!(to_text(&[0x05, 0xff, 0xff]).expect("ok").text, "-1");
        // small array [1, "a"]: count 2, size, entries (type, inline/offset)
        let arr = [0x02, 2, 0, 12, 0, 0x05, 1, 0, 0x0c, 10, 0, 1, b'a'];
        assert_eq!(to_text(&arr).expect("ok").text, "[1, \"a\"]");
        assert!(to_text(&[0x02, 9, 0]).is_err());
        assert_eq!(base64(b"hi!"), "aGkh");
        assert_eq!(base64(b"h"), "aA==");
    }
}
