//! Reading XA transaction ids from the binlog (docs/correctness.md, C13).
//!
//! The rows of an XA transaction are written at `XA PREPARE`, in a transaction that ends with
//! an XA_PREPARE event (type 38) holding the xid in binary. `XA COMMIT` and `XA ROLLBACK` come
//! later as query events of their own transaction (their own GTID), naming the xid in text.
//! MySQL 9 and MariaDB 10.11 both write the text as `XA COMMIT X'<gtrid>',X'<bqual>',<format>`
//! (the hex form whatever the client typed). `XA COMMIT ... ONE PHASE` is written as an
//! XA_PREPARE event with its one-phase flag set (MySQL) or as an ordinary transaction
//! (MariaDB): it is an ordinary commit.
use dbtrail_core::Xid;

/// What an XA_PREPARE event says: whether it is a one-phase commit, and the xid.
///
/// Body (MySQL `Xa_prepare_log_event`, same layout on MariaDB): `one_phase u8 | format_id
/// i32le | gtrid_length u32le | bqual_length u32le | gtrid | bqual`.
pub fn decode_prepare(data: &[u8]) -> Result<(bool, Xid), String> {
    if data.len() < 13 {
        return Err(format!("{} bytes, shorter than 13", data.len()));
    }
    let u32_at = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
    let one_phase = data[0] != 0;
    let format_id = u32_at(1);
    let (g, b) = (u32_at(5) as usize, u32_at(9) as usize);
    if g > 64 || b > 64 {
        return Err(format!("gtrid length {g} or bqual length {b} above 64"));
    }
    let Some(rest) = data.get(13..13 + g + b) else {
        return Err(format!(
            "{} bytes of xid data, {} announced",
            data.len() - 13,
            g + b
        ));
    };
    Ok((
        one_phase,
        Xid {
            format_id,
            gtrid: rest[..g].to_vec(),
            bqual: rest[g..].to_vec(),
        },
    ))
}

/// An `XA COMMIT` / `XA ROLLBACK` statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// COMMIT (true) or ROLLBACK.
    pub commit: bool,
    /// `ONE PHASE` was given (COMMIT only).
    pub one_phase: bool,
    /// The transaction.
    pub xid: Xid,
}

/// Parses `XA COMMIT <xid> [ONE PHASE]` or `XA ROLLBACK <xid>` (keywords in any case, any
/// whitespace); `<xid>` is `gtrid [, bqual [, format_id]]` with each string written as
/// `X'hex'`, `0xhex` or a quoted string. None when the text is not such a statement.
pub fn parse_resolution(text: &str) -> Option<Resolution> {
    let mut p = Parser { s: text.trim() };
    if !p.keyword("XA") {
        return None;
    }
    let commit = if p.keyword("COMMIT") {
        true
    } else if p.keyword("ROLLBACK") {
        false
    } else {
        return None;
    };
    let gtrid = p.string()?;
    let mut bqual = Vec::new();
    let mut format_id = 1u32;
    if p.punct(',') {
        bqual = p.string()?;
        if p.punct(',') {
            format_id = p.number()?;
        }
    }
    let one_phase = commit && p.keyword("ONE") && p.keyword("PHASE");
    p.punct(';');
    if !p.s.trim().is_empty() {
        return None;
    }
    Some(Resolution {
        commit,
        one_phase,
        xid: Xid {
            format_id,
            gtrid,
            bqual,
        },
    })
}

struct Parser<'a> {
    s: &'a str,
}

impl Parser<'_> {
    fn keyword(&mut self, k: &str) -> bool {
        let t = self.s.trim_start();
        let ok = t.len() >= k.len()
            && t[..k.len()].eq_ignore_ascii_case(k)
            && !t[k.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok {
            self.s = &t[k.len()..];
        }
        ok
    }

    fn punct(&mut self, c: char) -> bool {
        let t = self.s.trim_start();
        match t.strip_prefix(c) {
            Some(r) => {
                self.s = r;
                true
            }
            None => false,
        }
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        let t = self.s.trim_start();
        let hex = |h: &str| -> Option<Vec<u8>> {
            if !h.len().is_multiple_of(2) {
                return None;
            }
            (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
                .collect()
        };
        if let Some(r) = t.strip_prefix("X'").or_else(|| t.strip_prefix("x'")) {
            let end = r.find('\'')?;
            self.s = &r[end + 1..];
            return hex(&r[..end]);
        }
        if let Some(r) = t.strip_prefix("0x") {
            let end = r.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(r.len());
            self.s = &r[end..];
            return hex(&r[..end]);
        }
        let quote = t.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let mut out = Vec::new();
        let mut it = t[1..].char_indices().peekable();
        while let Some((i, c)) = it.next() {
            if c == quote {
                if it.peek().is_some_and(|(_, n)| *n == quote) {
                    it.next();
                    out.push(quote as u8);
                    continue;
                }
                self.s = &t[1 + i + 1..];
                return Some(out);
            }
            if c == '\\' {
                let (_, e) = it.next()?;
                let b = match e {
                    'n' => b'\n',
                    't' => b'\t',
                    'r' => b'\r',
                    '0' => 0,
                    'Z' => 26,
                    'b' => 8,
                    other => {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
                        continue;
                    }
                };
                out.push(b);
                continue;
            }
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        None
    }

    fn number(&mut self) -> Option<u32> {
        let t = self.s.trim_start();
        let end = t
            .char_indices()
            .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && (*c == '-' || *c == '+'))))
            .map_or(t.len(), |(i, _)| i);
        let n: i64 = t[..end].parse().ok()?;
        self.s = &t[end..];
        // Modulo 2^32, as the event's 4 bytes carry it.
        Some(n as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xid(format_id: u32, gtrid: &[u8], bqual: &[u8]) -> Xid {
        Xid {
            format_id,
            gtrid: gtrid.to_vec(),
            bqual: bqual.to_vec(),
        }
    }

    /// The texts MySQL 9.7 and MariaDB 10.11 write (read with SHOW BINLOG EVENTS after
    /// `XA COMMIT 'ab\'c','q',7`, `XA ROLLBACK X'00ff'` and `XA COMMIT 'one'`).
    #[test]
    fn server_texts() {
        for (text, commit, want) in [
            ("XA COMMIT X'61622763',X'71',7", true, xid(7, b"ab'c", b"q")),
            ("XA ROLLBACK X'00ff',X'',1", false, xid(1, &[0, 255], b"")),
            ("XA COMMIT X'6f6e65',X'',1", true, xid(1, b"one", b"")),
        ] {
            assert_eq!(
                parse_resolution(text),
                Some(Resolution {
                    commit,
                    one_phase: false,
                    xid: want
                }),
                "{text}"
            );
        }
        let one = parse_resolution("XA COMMIT X'6f6e65',X'',1 ONE PHASE").expect("one phase");
        assert!(one.one_phase && one.commit);
    }

    #[test]
    fn client_forms_meet_the_server_form() {
        let want = xid(7, b"ab'c", b"q");
        for text in [
            "xa commit 'ab\\'c', 'q', 7",
            "XA  COMMIT 'ab''c','q',7;",
            "XA COMMIT 0x61622763,0x71,7",
            "XA COMMIT \"ab'c\",'q',7",
        ] {
            assert_eq!(
                parse_resolution(text).map(|r| r.xid),
                Some(want.clone()),
                "{text}"
            );
        }
        assert_eq!(
            parse_resolution("XA ROLLBACK 'x'").map(|r| r.xid),
            Some(xid(1, b"x", b""))
        );
        assert_eq!(
            parse_resolution("XA COMMIT 'x','',-1").map(|r| r.xid.format_id),
            Some(u32::MAX)
        );
        for bad in [
            "XA COMMITTED 'x'",
            "XA COMMIT",
            "XA COMMIT X'6'",
            "XA COMMIT 'x' garbage",
            "XA RECOVER",
            "COMMIT",
        ] {
            assert_eq!(parse_resolution(bad), None, "{bad}");
        }
    }

    #[test]
    fn prepare_event_bodies() {
        // MySQL 9.7's XA_PREPARE for `XA PREPARE 'ab\'c','q',7` (body without header and CRC).
        let body = [
            0, 7, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, b'a', b'b', b'\'', b'c', b'q',
        ];
        assert_eq!(decode_prepare(&body), Ok((false, xid(7, b"ab'c", b"q"))));
        let mut one = body;
        one[0] = 1;
        assert!(decode_prepare(&one).expect("one phase").0);
        assert!(decode_prepare(&body[..12]).is_err());
        assert!(decode_prepare(&body[..17]).is_err(), "data cut short");
        let mut long = body;
        long[5] = 65;
        assert!(decode_prepare(&long).is_err());
    }
}
