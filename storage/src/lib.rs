//! dbtrail-storage: the only crate that touches RocksDB.
//!
//! One RocksDB database per source holds that source's log:
//! - column family `events`: every row change, keyed by (table id, commit time µs, event id),
//!   see [`keys`]; values are [`StoredEvent`] records (zstd-compressed blocks);
//! - `txns`: one [`TxnRecord`] per captured transaction, by sequence; `gtids`: GTID -> sequence;
//! - `catalog`: table ids and every schema version of every table;
//! - `meta`: the [`Checkpoint`], recorded gaps, tainted tables, the pending large transaction,
//!   the log's origin (where capture began);
//! - `xa`: XA transactions prepared and not yet committed ([`XaRecord`]) and their rows,
//!   invisible until `XA COMMIT` logs them (docs/correctness.md, C13);
//! - the baseline catalog ([`baselines`]) and retention.
//!
//! Hard rules (the argument for each is in [`writer`]):
//! - events and the checkpoint that covers them are written in ONE `WriteBatch`; the
//!   checkpoint moves only at transaction commit, so a crash at any instant loses and
//!   duplicates nothing;
//! - readers see only events with `event_id < checkpoint.next_event_id` (the visible horizon):
//!   pieces of a large transaction written before its commit stay invisible, and are removed
//!   on the next start if the commit never landed.
pub mod baselines;
pub mod keys;
mod log;
pub mod writer;

pub use baselines::Pruned;
pub use log::{Checkpoint, Gap, Log, ServerFacts, StoredEvent, Taint, TxnRecord, XaRecord};
pub use writer::{Writer, XaOutcome};

/// Errors from the log.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB failed.
    #[error("rocksdb error while {action} in {path}: {source}{}", corruption_hint(.source))]
    Rocks {
        /// What was being done.
        action: &'static str,
        /// The database directory.
        path: String,
        /// The RocksDB error.
        source: rocksdb::Error,
    },
    /// A stored record could not be decoded.
    #[error("corrupt log {path}: {detail}")]
    Corrupt {
        /// The database directory.
        path: String,
        /// What was wrong.
        detail: String,
    },
    /// A caller asked for something that does not exist.
    #[error("{0}")]
    NotFound(String),
}

/// What to do about a damaged log file (RocksDB names the file and both checksums).
fn corruption_hint(e: &rocksdb::Error) -> &'static str {
    if e.kind() == rocksdb::ErrorKind::Corruption {
        "; a file of the log is damaged on disk (a disk or filesystem fault): nothing was \
         restored from it. Restores that need this part of the log cannot be made exactly; \
         check the disk, and keep the data_dir aside for diagnosis before starting a new log \
         with a new backup"
    } else {
        ""
    }
}
