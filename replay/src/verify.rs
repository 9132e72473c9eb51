//! Restore verification: a table rebuilt from the history at a position compared with the
//! same table read from the live server at that same position, in bounded memory and in any
//! row order (the restore engine writes hash partitions, not key order).
//!
//! # The rule
//! Two tables are equal iff, for every bucket `b` of [`BUCKETS`], the multisets of their rows
//! whose bucket is `b` are equal. A row's bucket is a stable hash of its primary key (of the
//! whole row in a table without one), so a key's versions on both sides meet in one bucket.
//! A [`Digest`] keeps per bucket the number of rows and the wrapping sum of a 64-bit hash of
//! each row's bytes (the postcard encoding of its values, which is injective: equal rows give
//! equal bytes, different rows different bytes).
//! - Equal tables give equal digests: count and sum do not depend on the order rows come in,
//!   nor on how the rows are split between lanes ([`Digest::merge`] adds the parts).
//! - Different tables give a different digest in every bucket where their multisets differ,
//!   except when the counts match and the hash sums collide (about 2^-64 per differing bucket
//!   for a hash that behaves randomly on distinct inputs).
//!
//! A bucket whose digests differ holds at least one difference; [`Collect`] gathers those
//! buckets' rows on each side in a second pass (at most a limit), and [`differences`] names
//! each one: a key only the live table has, a key only the rebuild has, or the columns whose
//! values differ. Memory is the digest (`BUCKETS` pairs) plus the collected rows.
use crate::fold::key_bytes;
use crate::keys::describe_row_key;
use dbtrail_core::render::render_value;
use dbtrail_core::{Row, TableSchema, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hasher;

/// Buckets of a [`Digest`].
pub const BUCKETS: u32 = 4096;

/// Order-independent digest of a table's rows (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    rows: u64,
    buckets: Vec<(u64, u64)>,
}

impl Default for Digest {
    fn default() -> Self {
        Digest {
            rows: 0,
            buckets: vec![(0, 0); BUCKETS as usize],
        }
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The columns that identify a row: the primary key, or every column without one.
fn key_columns(schema: &TableSchema) -> Vec<usize> {
    if schema.has_primary_key() {
        schema.primary_key.clone()
    } else {
        (0..schema.columns.len()).collect()
    }
}

/// A table's rows in buckets: the key columns and how to bucket and hash a row.
#[derive(Clone, Debug)]
pub struct Rows {
    key: Vec<usize>,
}

impl Rows {
    /// For `schema`'s table.
    pub fn new(schema: &TableSchema) -> Rows {
        Rows {
            key: key_columns(schema),
        }
    }

    /// The bucket of `row`.
    pub fn bucket(&self, row: &[Value]) -> u32 {
        (fnv(&key_bytes(&self.key, row)) % u64::from(BUCKETS)) as u32
    }

    fn hash(row: &[Value]) -> u64 {
        let bytes = dbtrail_core::codec::encode(&row);
        // SipHash with fixed keys: the same in both passes of one process.
        let mut h = std::hash::DefaultHasher::new();
        h.write(&bytes);
        h.finish()
    }
}

impl Digest {
    /// Adds one row.
    pub fn add(&mut self, rows: &Rows, row: &[Value]) {
        let b = &mut self.buckets[rows.bucket(row) as usize];
        b.0 += 1;
        b.1 = b.1.wrapping_add(Rows::hash(row));
        self.rows += 1;
    }

    /// Adds the rows `other` digested (a lane of the same table).
    pub fn merge(&mut self, other: &Digest) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            a.0 += b.0;
            a.1 = a.1.wrapping_add(b.1);
        }
        self.rows += other.rows;
    }

    /// Rows digested.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The buckets where `self` and `other` differ.
    pub fn differing(&self, other: &Digest) -> BTreeSet<u32> {
        (0..BUCKETS)
            .filter(|&b| self.buckets[b as usize] != other.buckets[b as usize])
            .collect()
    }
}

/// The rows of some buckets, at most `limit` of them.
#[derive(Debug)]
pub struct Collect {
    rows: Rows,
    buckets: BTreeSet<u32>,
    limit: usize,
    /// The rows kept.
    pub kept: Vec<Row>,
    /// Rows of those buckets beyond the limit (not kept).
    pub dropped: u64,
}

impl Collect {
    /// Collects `buckets`' rows of `schema`'s table.
    pub fn new(schema: &TableSchema, buckets: BTreeSet<u32>, limit: usize) -> Collect {
        Collect {
            rows: Rows::new(schema),
            buckets,
            limit,
            kept: Vec::new(),
            dropped: 0,
        }
    }

    /// Offers one row.
    pub fn offer(&mut self, row: &[Value]) {
        if !self.buckets.contains(&self.rows.bucket(row)) {
            return;
        }
        if self.kept.len() < self.limit {
            self.kept.push(row.to_vec());
        } else {
            self.dropped += 1;
        }
    }
}

/// One column whose value differs.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnDiff {
    /// The column.
    pub column: String,
    /// Its value in the live table (as the API renders values).
    pub live: serde_json::Value,
    /// Its value in the rebuild.
    pub rebuilt: serde_json::Value,
}

/// How a row differs between the live table and the rebuild.
#[derive(Clone, Debug, PartialEq)]
pub enum Difference {
    /// `copies` rows with this key (this whole row, without a primary key) are in the live
    /// table and not in the rebuild.
    Missing {
        /// The key, as `describe_row_key` writes it.
        key: String,
        /// How many.
        copies: u64,
    },
    /// In the rebuild and not in the live table.
    Extra {
        /// The key.
        key: String,
        /// How many.
        copies: u64,
    },
    /// The key is on both sides with other values in these columns.
    Differs {
        /// The key.
        key: String,
        /// The columns.
        columns: Vec<ColumnDiff>,
    },
}

/// The differences between the live table's `live` rows and the rebuild's `rebuilt` rows
/// (the same buckets of each), in key order.
pub fn differences(schema: &TableSchema, live: &[Row], rebuilt: &[Row]) -> Vec<Difference> {
    let key = key_columns(schema);
    // key bytes -> (described key, the live rows, the rebuilt rows)
    type Sides<'a> = (String, Vec<&'a Row>, Vec<&'a Row>);
    let mut by_key: BTreeMap<Vec<u8>, Sides> = BTreeMap::new();
    for (side, rows) in [(0, live), (1, rebuilt)] {
        for r in rows {
            let e = by_key
                .entry(key_bytes(&key, r))
                .or_insert_with(|| (describe_row_key(schema, r), Vec::new(), Vec::new()));
            if side == 0 { &mut e.1 } else { &mut e.2 }.push(r);
        }
    }
    let mut out = Vec::new();
    for (_, (k, l, r)) in by_key {
        if schema.has_primary_key() && l.len() == 1 && r.len() == 1 {
            let columns: Vec<ColumnDiff> = schema
                .columns
                .iter()
                .enumerate()
                .filter(|(i, _)| l[0].get(*i) != r[0].get(*i))
                .map(|(i, c)| ColumnDiff {
                    column: c.name.clone(),
                    live: render_value(c, l[0].get(i).unwrap_or(&Value::Null)),
                    rebuilt: render_value(c, r[0].get(i).unwrap_or(&Value::Null)),
                })
                .collect();
            if !columns.is_empty() {
                out.push(Difference::Differs { key: k, columns });
            }
            continue;
        }
        // Without a primary key the key is the whole row: only the copies can differ.
        let (nl, nr) = (l.len() as u64, r.len() as u64);
        if nl > nr {
            out.push(Difference::Missing {
                key: k,
                copies: nl - nr,
            });
        } else if nr > nl {
            out.push(Difference::Extra {
                key: k,
                copies: nr - nl,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
