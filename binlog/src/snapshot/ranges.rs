//! Primary-key ranges: how a large table is split so its baseline is read on several
//! connections at once.
//!
//! A table is split on the FIRST column of its primary key when that column is an integer:
//! `MIN`/`MAX` of it, read inside the snapshot transaction, are cut into even steps `b1 < b2
//! < ... < bn`, and the ranges are `k < b1`, `b1 <= k < b2`, ..., `k >= bn`. Every row has
//! exactly one value of `k` (a key column is never NULL), so every row is in exactly one
//! range, whatever the ranges' sizes: the ranges partition the table exactly. The first and
//! last ranges are open, so a row outside `[MIN, MAX]` would still be read. Read in key order
//! within each range, the ranges one after another are the table in key order (the ranges
//! are ordered by the key's first column). Tables whose key starts with another type are not
//! split: sampling their boundaries costs a scan of the whole key before any read can start,
//! and comparing bound strings needs their collation on the server.
//!
//! Each range is read on a connection whose consistent snapshot started at the same moment
//! as every other's (see [`super::consistent_start`]), so each range is exact at the
//! baseline's position, and so is their union.
use crate::BinlogError;
use dbtrail_core::schema::quote_ident;
use dbtrail_core::{TableRef, TableSchema};
use mysql_async::Value as MyValue;
use mysql_async::prelude::Queryable;
use std::collections::HashMap;

/// A range of a table's primary key: `from <= column < to` on the key's first column, either
/// end open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    /// The key's first column.
    pub column: String,
    /// Inclusive lower bound; `None`: no lower bound.
    pub from: Option<i128>,
    /// Exclusive upper bound; `None`: no upper bound.
    pub to: Option<i128>,
}

impl KeyRange {
    /// Whether the key value `k` is in the range.
    pub fn contains(&self, k: i128) -> bool {
        self.from.is_none_or(|f| k >= f) && self.to.is_none_or(|t| k < t)
    }

    /// The SQL condition (`?` for each bound) and the bound values, in order.
    pub(crate) fn condition(&self) -> Option<(String, Vec<MyValue>)> {
        let c = quote_ident(&self.column);
        let mut conds = Vec::new();
        let mut params = Vec::new();
        if let Some(f) = self.from {
            conds.push(format!("{c} >= ?"));
            params.push(bound(f));
        }
        if let Some(t) = self.to {
            conds.push(format!("{c} < ?"));
            params.push(bound(t));
        }
        (!conds.is_empty()).then(|| (conds.join(" AND "), params))
    }
}

/// A bound as the parameter of its integer column (signed when it fits).
fn bound(v: i128) -> MyValue {
    match i64::try_from(v) {
        Ok(i) => MyValue::Int(i),
        Err(_) => MyValue::UInt(u64::try_from(v).unwrap_or(u64::MAX)),
    }
}

/// The column a table can be split on: its primary key's first column, if an integer.
pub fn split_column(schema: &TableSchema) -> Option<&str> {
    let c = &schema.columns[*schema.primary_key.first()?];
    c.ty.is_integer().then_some(c.name.as_str())
}

/// At most `n` ranges covering `[min, max]` in even steps, as boundaries `b1 < ... < bk`
/// (`k < n` when the span has fewer distinct values): the ranges are `< b1`, `[bi, bi+1)`,
/// `>= bk`.
pub fn even_boundaries(min: i128, max: i128, n: usize) -> Vec<i128> {
    let mut out: Vec<i128> = Vec::new();
    if n <= 1 || max <= min {
        return out;
    }
    let span = max - min;
    for i in 1..n as i128 {
        let b = min + span * i / n as i128;
        if b > min && out.last().is_none_or(|l| b > *l) {
            out.push(b);
        }
    }
    out
}

/// The ranges of boundaries `b` on `column` (one range, the whole table, for none).
pub fn ranges_of(column: &str, b: &[i128]) -> Vec<KeyRange> {
    let mut edges: Vec<Option<i128>> = vec![None];
    edges.extend(b.iter().copied().map(Some));
    edges.push(None);
    edges
        .windows(2)
        .map(|w| KeyRange {
            column: column.to_string(),
            from: w[0],
            to: w[1],
        })
        .collect()
}

/// Up to `n` key ranges of `schema`'s table (see the module doc), from `MIN`/`MAX` of its
/// split column read on `conn` (inside its snapshot transaction, so the bounds are those of
/// the snapshot). One range when the table cannot be split or is empty.
pub async fn key_ranges(
    conn: &mut mysql_async::Conn,
    schema: &TableSchema,
    n: usize,
) -> Result<Vec<KeyRange>, BinlogError> {
    let Some(column) = split_column(schema).filter(|_| n > 1) else {
        return Ok(ranges_of("", &[]));
    };
    let c = quote_ident(column);
    let row: Option<(MyValue, MyValue)> = conn
        .query_first(format!(
            "SELECT MIN({c}), MAX({c}) FROM {}",
            schema.table.quoted()
        ))
        .await
        .map_err(BinlogError::driver(format!(
            "reading the key span of {}",
            schema.table
        )))?;
    let int = |v: &MyValue| match v {
        MyValue::Int(i) => Some(i128::from(*i)),
        MyValue::UInt(u) => Some(i128::from(*u)),
        MyValue::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    };
    let (min, max) = match &row {
        Some((a, b)) => (int(a), int(b)),
        None => (None, None),
    };
    let b = match (min, max) {
        (Some(min), Some(max)) => even_boundaries(min, max, n),
        _ => Vec::new(),
    };
    Ok(ranges_of(column, &b))
}

/// The server's estimate of each base table's row count (`information_schema.TABLES.
/// TABLE_ROWS`: InnoDB's sampled statistics, which can be off by tens of percent), read
/// fresh rather than from MySQL's statistics cache (`information_schema_stats_expiry`).
/// Tables without an estimate are left out.
pub async fn estimated_rows(
    conn: &mut mysql_async::Conn,
) -> Result<HashMap<TableRef, u64>, BinlogError> {
    // MySQL 8.0+ caches these for a day by default; MariaDB has no such cache (nor variable).
    let _ = conn
        .query_drop("SET SESSION information_schema_stats_expiry = 0")
        .await;
    let rows: Vec<(Vec<u8>, Vec<u8>, Option<u64>)> = conn
        .query(
            "SELECT CAST(TABLE_SCHEMA AS BINARY), CAST(TABLE_NAME AS BINARY), TABLE_ROWS \
             FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' \
             AND TABLE_SCHEMA NOT IN ('mysql','sys','information_schema','performance_schema')",
        )
        .await
        .map_err(BinlogError::driver("reading the tables' estimated sizes"))?;
    Ok(rows
        .into_iter()
        .filter_map(|(d, t, n)| {
            Some((
                TableRef::new(
                    String::from_utf8_lossy(&d).into_owned(),
                    String::from_utf8_lossy(&t).into_owned(),
                ),
                n?,
            ))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key in and around the span is in exactly one range, and the ranges are in key
    /// order.
    fn check_partition(min: i128, max: i128, n: usize) {
        let b = even_boundaries(min, max, n);
        assert!(b.len() < n.max(1), "{min}..{max} into {n}: {b:?}");
        assert!(b.windows(2).all(|w| w[0] < w[1]));
        let r = ranges_of("id", &b);
        assert_eq!(r.len(), b.len() + 1);
        let probe = |k: i128| {
            let hits: Vec<usize> = (0..r.len()).filter(|i| r[*i].contains(k)).collect();
            assert_eq!(hits.len(), 1, "key {k} in ranges {hits:?} of {r:?}");
            hits[0]
        };
        let mut last = 0;
        let step = ((max - min) / 1000).max(1);
        let mut k = min - 3;
        while k <= max + 3 {
            let i = probe(k);
            assert!(i >= last, "ranges out of key order at {k}");
            last = i;
            k += step;
        }
        for x in &b {
            probe(*x - 1);
            probe(*x);
        }
    }

    #[test]
    fn ranges_partition_the_key_space_exactly() {
        check_partition(1, 20_000, 20);
        check_partition(1, 3_000_000, 3);
        check_partition(-5, 5, 4);
        check_partition(7, 9, 10);
        check_partition(5, 5, 4);
        check_partition(0, 100, 1);
        check_partition(i128::from(i64::MIN), i128::from(u64::MAX), 64);
        assert_eq!(even_boundaries(1, 100, 4), vec![25, 50, 75]);
        assert_eq!(even_boundaries(7, 9, 10), vec![8]);
        assert!(even_boundaries(5, 5, 3).is_empty());
    }

    #[test]
    fn conditions_bind_their_bounds() {
        let r = ranges_of("i`d", &[10, u64::MAX as i128]);
        assert_eq!(r[0].condition().expect("c").0, "`i``d` < ?");
        assert_eq!(
            r[1].condition().expect("c"),
            (
                "`i``d` >= ? AND `i``d` < ?".into(),
                vec![MyValue::Int(10), MyValue::UInt(u64::MAX)]
            )
        );
        assert_eq!(r[2].condition().expect("c").0, "`i``d` >= ?");
        assert!(ranges_of("id", &[])[0].condition().is_none());
    }
}
