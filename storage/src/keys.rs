//! Key layouts. All integers are big-endian so RocksDB's bytewise order is numeric order.
//!
//! - `events`: `table_id u32 | commit_us (i64, sign bit flipped) u64 | event_id u64`.
//!   One range scan per table yields its changes in commit order between two times; the
//!   event id breaks ties in log order. Because commit times in the log are monotonic in
//!   binlog order (see `writer`), sorting by (commit_us, event_id) equals log order.
//! - `txns`: `txn_seq u64`.
//! - `gtids`: the GTID's binary form (see [`gtid_key`]) -> txn_seq.
//! - `catalog`: `id/ u32` -> TableRef, `name/ db 0x00 table` -> u32,
//!   `schema/ u32 u32(version)` -> TableSchema.
//! - `meta`: fixed names (`checkpoint`, `pending`) and prefixed lists (`gap/ u64`, `taint/ db 0x00 table`,
//!   `facts/ u64`: server facts in force from that event id).
//! - `xa`: `p/ xid` (see [`dbtrail_core::Xid::key`]) -> XaRecord of a prepared XA
//!   transaction; `r/ seq u64 | n u64` -> `table_id u32 | StoredEvent`: its n-th row event,
//!   `seq` being the sequence number of the prepare's transaction record.
use dbtrail_core::{Gtid, Xid};

/// Prefix of the prepared-XA records in the `xa` column family.
pub const XA_RECORD_PREFIX: &[u8] = b"p/";

/// `p/ xid`
pub fn xa_record_key(xid: &Xid) -> Vec<u8> {
    let mut k = XA_RECORD_PREFIX.to_vec();
    k.extend_from_slice(&xid.key());
    k
}

/// `r/ seq n`: the n-th row event of the XA transaction prepared at transaction `seq`.
pub fn xa_row_key(seq: u64, n: u64) -> [u8; 18] {
    let mut k = [0u8; 18];
    k[..2].copy_from_slice(b"r/");
    k[2..10].copy_from_slice(&seq.to_be_bytes());
    k[10..].copy_from_slice(&n.to_be_bytes());
    k
}

/// Encodes an `i64` so byte order equals numeric order.
pub fn i64_key(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1u64 << 63)).to_be_bytes()
}

/// Inverse of [`i64_key`].
pub fn i64_from_key(b: [u8; 8]) -> i64 {
    (u64::from_be_bytes(b) ^ (1u64 << 63)) as i64
}

/// Key of one row event.
pub fn event_key(table_id: u32, commit_us: i64, event_id: u64) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..4].copy_from_slice(&table_id.to_be_bytes());
    k[4..12].copy_from_slice(&i64_key(commit_us));
    k[12..].copy_from_slice(&event_id.to_be_bytes());
    k
}

/// Splits an event key; `None` when the key is not 20 bytes (corruption).
pub fn parse_event_key(k: &[u8]) -> Option<(u32, i64, u64)> {
    if k.len() != 20 {
        return None;
    }
    let t = u32::from_be_bytes(k[..4].try_into().ok()?);
    let c = i64_from_key(k[4..12].try_into().ok()?);
    let e = u64::from_be_bytes(k[12..].try_into().ok()?);
    Some((t, c, e))
}

/// Binary key of a GTID: `0x01 uuid(16) taglen tag gno` or `0x02 domain server seq`.
pub fn gtid_key(g: &Gtid) -> Vec<u8> {
    match g {
        Gtid::Mysql { uuid, tag, seq } => {
            let mut k = vec![1u8];
            k.extend_from_slice(uuid.as_bytes());
            let tag = tag.as_ref().map(|t| t.as_str()).unwrap_or("");
            k.push(tag.len() as u8);
            k.extend_from_slice(tag.as_bytes());
            k.extend_from_slice(&seq.to_be_bytes());
            k
        }
        Gtid::Mariadb {
            domain,
            server,
            seq,
        } => {
            let mut k = vec![2u8];
            k.extend_from_slice(&domain.to_be_bytes());
            k.extend_from_slice(&server.to_be_bytes());
            k.extend_from_slice(&seq.to_be_bytes());
            k
        }
    }
}

/// `name/ db 0x00 table`
pub fn table_name_key(db: &str, table: &str) -> Vec<u8> {
    let mut k = b"name/".to_vec();
    k.extend_from_slice(db.as_bytes());
    k.push(0);
    k.extend_from_slice(table.as_bytes());
    k
}

/// `id/ u32`
pub fn table_id_key(id: u32) -> Vec<u8> {
    let mut k = b"id/".to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// `schema/ u32 u32`
pub fn schema_key(id: u32, version: u32) -> Vec<u8> {
    let mut k = schema_prefix(id);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// `schema/ u32`
pub fn schema_prefix(id: u32) -> Vec<u8> {
    let mut k = b"schema/".to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn event_keys_sort_like_tuples(a in any::<(u32, i64, u64)>(), b in any::<(u32, i64, u64)>()) {
            let ka = event_key(a.0, a.1, a.2);
            let kb = event_key(b.0, b.1, b.2);
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            prop_assert_eq!(parse_event_key(&ka), Some(a));
        }
    }

    #[test]
    fn golden_event_key() {
        assert_eq!(
            hex(&event_key(7, 1_700_000_000_000_000, 42)),
            "0000000780060a24181e4000000000000000002a"
        );
    }

    #[test]
    fn golden_xa_keys() {
        assert_eq!(
            hex(&xa_row_key(3, 258)),
            "722f00000000000000030000000000000102"
        );
        let xid = Xid {
            format_id: 1,
            gtrid: b"a".to_vec(),
            bqual: Vec::new(),
        };
        assert_eq!(hex(&xa_record_key(&xid)), "702f00000001016100");
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
