//! Replication positions.
//!
//! A [`Position`] is where capture stands in a source's history: the executed GTID set
//! (authoritative when the server has GTIDs; it survives failover, docs/correctness.md, C16)
//! plus the binlog file and offset of the NEXT event to read (always at a transaction
//! boundary) and the UUID of the server that file:pos belongs to. File positions are never
//! compared across servers.
use crate::gtid::GtidSet;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where capture stands, at a transaction boundary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Transactions captured so far (as the server prints `@@gtid_executed`).
    pub gtid_set: GtidSet,
    /// Binlog file holding the next event.
    pub file: String,
    /// Offset of the next event in `file`.
    pub pos: u64,
    /// `@@server_uuid` (MySQL) or `@@server_id` (MariaDB) of the server `file` belongs to.
    pub server_uuid: String,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} on {} (gtid set: {})",
            self.file,
            self.pos,
            self.server_uuid,
            self.gtid_set.to_compact_string()
        )
    }
}
