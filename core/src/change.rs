//! Row changes: what one row event did to one row, with full images.
use crate::gtid::Gtid;
use crate::schema::TableRef;
use crate::value::Value;
use serde::{Deserialize, Serialize};

/// A full row image: one value per column, in table order.
pub type Row = Vec<Value>;

/// The change to one row. Images are FULL (binlog_row_image=FULL), so every column is present.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RowChange {
    /// A new row.
    Insert {
        /// The row after.
        after: Row,
    },
    /// A changed row (possibly with a changed primary key).
    Update {
        /// The row before.
        before: Row,
        /// The row after.
        after: Row,
    },
    /// A removed row.
    Delete {
        /// The row before.
        before: Row,
    },
}

impl RowChange {
    /// `insert`, `update` or `delete`.
    pub fn kind(&self) -> &'static str {
        match self {
            RowChange::Insert { .. } => "insert",
            RowChange::Update { .. } => "update",
            RowChange::Delete { .. } => "delete",
        }
    }
}

/// A row change as the log keeps it: which table, under which schema version, in which
/// transaction, committed when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// The table.
    pub table: TableRef,
    /// The schema version the images were decoded with.
    pub schema_version: u32,
    /// The transaction's GTID, when the server assigns GTIDs.
    pub gtid: Option<Gtid>,
    /// Commit time, microseconds since the Unix epoch (UTC), monotonic in log order.
    pub commit_us: i64,
    /// Position of the event in the source's log (assigned by storage, increasing).
    pub event_id: u64,
    /// The change itself.
    pub change: RowChange,
}
