//! The read side of a source's history, as the restore engine (`dbtrail-replay`) sees it, in
//! two small traits that `dbtrail-storage` implements over RocksDB and tests implement in
//! memory (no I/O here):
//! - [`ChangeLog`]: ordered row changes per table, the schema versions they were decoded
//!   with, and the ranges of the log where the server logged its foreign-key cascades (what a
//!   restore replays);
//! - [`Catalog`]: the baselines, the transactions in log order, the log's origin and horizon,
//!   its gaps and taints (what a restore is planned and an undo is checked against).
//!
//! Which logged transactions a baseline holds is [`held_by`] (docs/correctness.md, C18).
use crate::baseline::BaselineManifest;
use crate::change::RowChange;
use crate::gtid::Gtid;
use crate::position::Position;
use crate::schema::{TableRef, TableSchema};
use std::cmp::Ordering;
use std::ops::Range;

/// A failure reading the history (storage's error, as text: the engine only reports it).
#[derive(Debug, thiserror::Error)]
#[error("reading the log: {0}")]
pub struct HistoryError(pub String);

/// One logged row change.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedChange {
    /// Commit time of its transaction (µs, monotonic in log order).
    pub commit_us: i64,
    /// Its position in the log (increasing in log order).
    pub event_id: u64,
    /// The schema version its images were decoded with.
    pub schema_version: u32,
    /// Its transaction's GTID, when the source has GTIDs.
    pub gtid: Option<Gtid>,
    /// The change.
    pub change: RowChange,
}

/// Ordered row changes of a source's tables.
pub trait ChangeLog: Sync {
    /// The table's id in the log, if the log has seen it.
    fn table_id(&self, table: &TableRef) -> Result<Option<u32>, HistoryError>;

    /// One schema version of a table.
    fn schema(&self, table_id: u32, version: u32) -> Result<Option<TableSchema>, HistoryError>;

    /// Visits the table's changes with `since_us <= commit_us <= until_us` and an event id in
    /// `ids`, in log order; `visit` returns false to stop.
    fn scan_table(
        &self,
        table_id: u32,
        since_us: i64,
        until_us: i64,
        ids: Range<u64>,
        visit: &mut dyn FnMut(LoggedChange) -> bool,
    ) -> Result<(), HistoryError>;

    /// Counts what [`ChangeLog::scan_table`] would visit.
    fn count_table_changes(
        &self,
        table_id: u32,
        since_us: i64,
        until_us: i64,
        ids: Range<u64>,
    ) -> Result<u64, HistoryError> {
        let mut n = 0;
        self.scan_table(table_id, since_us, until_us, ids, &mut |_| {
            n += 1;
            true
        })?;
        Ok(n)
    }

    /// Whether the server logged its foreign-key cascades, from each event id on (ascending
    /// ids; before the first entry it is unknown).
    fn cascades_logged(&self) -> Result<Vec<(u64, bool)>, HistoryError>;
}

/// One logged transaction, as planning sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct TxnInfo {
    /// Its GTID, when the source has GTIDs.
    pub gtid: Option<Gtid>,
    /// Commit time in µs (monotonic in log order).
    pub commit_us: i64,
    /// First event id of the transaction (its events are consecutive).
    pub first_event_id: u64,
    /// Number of row events.
    pub event_count: u64,
    /// Ids of the tables it touched.
    pub tables: Vec<u32>,
    /// Binlog file just after its commit event.
    pub end_file: String,
    /// Offset just after its commit event.
    pub end_pos: u64,
    /// The statement, for DDL transactions.
    pub ddl: Option<String>,
}

/// The newest durable point of the log (its checkpoint).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Horizon {
    /// Commit time of the last durable transaction (µs).
    pub last_commit_us: i64,
    /// The id the next event gets (events below it are visible).
    pub next_event_id: u64,
}

/// A recorded gap in the log.
#[derive(Clone, Debug, PartialEq)]
pub struct GapInfo {
    /// What is missing (GTID set text or binlog range).
    pub missing: String,
    /// When it was recorded (µs).
    pub recorded_us: i64,
    /// Commit time of the last transaction logged before the gap (µs); the gap lies after it.
    pub after_commit_us: i64,
    /// Why.
    pub reason: String,
}

/// A table (or a pattern: `db.*`, `*.*`) whose coverage is tainted.
#[derive(Clone, Debug, PartialEq)]
pub struct TaintInfo {
    /// The table or pattern.
    pub table: TableRef,
    /// Why.
    pub reason: String,
    /// Commit time of the transaction that tainted it (µs).
    pub since_us: i64,
}

/// What the log knows about itself: baselines, transactions, gaps and taints.
pub trait Catalog: Sync {
    /// Every catalogued baseline, oldest first.
    fn baselines(&self) -> Result<Vec<BaselineManifest>, HistoryError>;

    /// Where capture of this log began (the position of its first transaction), if recorded.
    fn origin(&self) -> Result<Option<Position>, HistoryError>;

    /// Visits the transactions in log order; `visit` returns false to stop.
    fn scan_txns(&self, visit: &mut dyn FnMut(TxnInfo) -> bool) -> Result<(), HistoryError>;

    /// The transaction with this GTID, if logged.
    fn txn_by_gtid(&self, gtid: &Gtid) -> Result<Option<TxnInfo>, HistoryError>;

    /// The log's newest durable point, once something was logged.
    fn horizon(&self) -> Result<Option<Horizon>, HistoryError>;

    /// Recorded gaps, oldest first.
    fn gaps(&self) -> Result<Vec<GapInfo>, HistoryError>;

    /// Tainted tables.
    fn taints(&self) -> Result<Vec<TaintInfo>, HistoryError>;

    /// Every table the log has seen, with its id.
    fn tables(&self) -> Result<Vec<(u32, TableRef)>, HistoryError>;

    /// Approximate bytes one logged event takes on disk (0 when unknown).
    fn event_bytes(&self) -> Result<u64, HistoryError>;
}

/// Orders two binlog coordinates of the same server: files by their numeric extension
/// (`mysql-bin.000010` after `mysql-bin.000009`), then by offset.
pub fn cmp_binlog(a: (&str, u64), b: (&str, u64)) -> Ordering {
    fn seq(f: &str) -> (u64, &str) {
        let n = f
            .rsplit_once('.')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(0);
        (n, f)
    }
    seq(a.0).cmp(&seq(b.0)).then(a.1.cmp(&b.1))
}

/// Whether a snapshot at `position` holds the transaction with GTID `gtid` ending at
/// `end_file:end_pos`: with GTIDs, exactly when its GTID is in the snapshot's set; without,
/// when it ends at or before the snapshot's binlog file:pos (same server). The snapshot is
/// taken while commits are blocked, so the transactions it holds are a prefix of the binlog,
/// hence of the log.
pub fn held_by(position: &Position, gtid: Option<&Gtid>, end_file: &str, end_pos: u64) -> bool {
    match gtid {
        Some(g) if !position.gtid_set.is_empty() => position.gtid_set.contains(g),
        _ => {
            cmp_binlog((end_file, end_pos), (position.file.as_str(), position.pos))
                != Ordering::Greater
        }
    }
}

impl TxnInfo {
    /// Whether a snapshot at `position` holds this transaction ([`held_by`]).
    pub fn held_by(&self, position: &Position) -> bool {
        held_by(position, self.gtid.as_ref(), &self.end_file, self.end_pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binlog_files_order_by_number() {
        assert_eq!(
            cmp_binlog(("b.000010", 4), ("b.000009", 900)),
            Ordering::Greater
        );
        assert_eq!(
            cmp_binlog(("b.000009", 4), ("b.000009", 4)),
            Ordering::Equal
        );
        assert_eq!(cmp_binlog(("b.000009", 4), ("b.000009", 5)), Ordering::Less);
    }
}
