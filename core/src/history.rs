//! The read side of a source's history, as the restore engine (`dbtrail-replay`) sees it:
//! ordered row changes per table, the schema versions they were decoded with, and the
//! ranges of the log where the server logged its foreign-key cascades. `dbtrail-storage`
//! implements it over RocksDB; tests implement it in memory. No I/O here.
use crate::change::RowChange;
use crate::schema::{TableRef, TableSchema};
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
