//! XA transaction identifiers (docs/correctness.md, C13).
//!
//! An XA transaction is named by an xid of three parts: a format id, a global transaction id
//! (gtrid, up to 64 bytes) and a branch qualifier (bqual, up to 64 bytes). The binlog names it
//! twice: in the XA_PREPARE event (binary) and in the text of the later `XA COMMIT` /
//! `XA ROLLBACK` statement (`X'6162',X'',1`). Both are read into this one type, so a prepare
//! and its resolution meet on equal values.
//! [MySQL manual: XA transaction SQL statements](https://dev.mysql.com/doc/refman/9.0/en/xa-statements.html)
use serde::{Deserialize, Serialize};
use std::fmt;

/// An XA transaction identifier.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Xid {
    /// The format id, as the 32 bits the XA_PREPARE event carries (the statement text's
    /// number is taken modulo 2^32, so `-1` and `4294967295` are one id).
    pub format_id: u32,
    /// Global transaction id.
    pub gtrid: Vec<u8>,
    /// Branch qualifier.
    pub bqual: Vec<u8>,
}

impl Xid {
    /// A binary key that orders like (format id, gtrid, bqual) and is prefix-free:
    /// `format_id u32 | len u8 | gtrid | len u8 | bqual` (each part is at most 64 bytes; longer
    /// parts, which servers reject, are cut at 255).
    pub fn key(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(6 + self.gtrid.len() + self.bqual.len());
        k.extend_from_slice(&self.format_id.to_be_bytes());
        for part in [&self.gtrid, &self.bqual] {
            let n = part.len().min(255);
            k.push(n as u8);
            k.extend_from_slice(&part[..n]);
        }
        k
    }
}

/// As the server writes it in the binlog: `X'6162',X'',1`.
impl fmt::Display for Xid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        write!(
            f,
            "X'{}',X'{}',{}",
            hex(&self.gtrid),
            hex(&self.bqual),
            self.format_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_the_binlog_and_keys_are_prefix_free() {
        let x = Xid {
            format_id: 7,
            gtrid: b"ab'c".to_vec(),
            bqual: b"q".to_vec(),
        };
        assert_eq!(x.to_string(), "X'61622763',X'71',7");
        let a = Xid {
            format_id: 1,
            gtrid: b"a".to_vec(),
            bqual: b"bc".to_vec(),
        };
        let b = Xid {
            format_id: 1,
            gtrid: b"ab".to_vec(),
            bqual: b"c".to_vec(),
        };
        assert_ne!(a.key(), b.key());
        assert!(!b.key().starts_with(&a.key()) && !a.key().starts_with(&b.key()));
        assert_eq!(
            a.key(),
            [0, 0, 0, 1, 1, b'a', 2, b'b', b'c'],
            "golden: xa records are keyed by it"
        );
    }
}
