//! The baseline catalog and retention of the log.
//!
//! The catalog (`catalog` column family, keys `baseline/<id>`) holds the manifest of every
//! baseline that is complete in its store; ids sort by snapshot time.
//!
//! Which logged transactions a baseline already holds: with GTIDs, exactly those whose GTID is
//! in the baseline's set (docs/correctness.md, C18). Without GTIDs, those that end at or before
//! the baseline's binlog file:pos on the same server. The snapshot is taken while commits are
//! blocked, so the transactions it holds are a prefix of the binlog, hence of the log: the
//! log splits into "held" then "not held" at one transaction, [`Log::first_txn_after`].
use crate::StorageError;
use crate::keys;
use crate::log::{CF_CATALOG, CF_EVENTS, CF_GTIDS, CF_META, CF_TXNS, Log, TxnRecord};
use dbtrail_core::baseline::BaselineManifest;
use dbtrail_core::{Position, codec};
use rocksdb::{Direction, IteratorMode, WriteBatch};

const BASELINE_PREFIX: &[u8] = b"baseline/";

fn baseline_key(id: &str) -> Vec<u8> {
    let mut k = BASELINE_PREFIX.to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

pub use dbtrail_core::history::cmp_binlog;

/// Whether the transaction `t` is held by a snapshot at `position`
/// ([`dbtrail_core::history::held_by`]).
pub fn held_by(position: &Position, t: &TxnRecord) -> bool {
    dbtrail_core::history::held_by(position, t.gtid.as_ref(), &t.end_file, t.end_pos)
}

/// What retention removed from the log.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pruned {
    /// Transactions removed.
    pub transactions: u64,
    /// Events removed lie before this commit time (µs).
    pub before_commit_us: i64,
}

impl Log {
    /// Records a complete baseline in the catalog.
    pub fn put_baseline(&self, m: &BaselineManifest) -> Result<(), StorageError> {
        self.db
            .put_cf(self.cf(CF_CATALOG)?, baseline_key(&m.id), codec::encode(m))
            .map_err(self.rocks("recording a baseline"))
    }

    /// Removes a baseline from the catalog.
    pub fn delete_baseline(&self, id: &str) -> Result<(), StorageError> {
        self.db
            .delete_cf(self.cf(CF_CATALOG)?, baseline_key(id))
            .map_err(self.rocks("removing a baseline"))
    }

    /// Every catalogued baseline, oldest first.
    pub fn baselines(&self) -> Result<Vec<BaselineManifest>, StorageError> {
        let cfh = self.cf(CF_CATALOG)?;
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cfh, IteratorMode::From(BASELINE_PREFIX, Direction::Forward))
        {
            let (k, v) = item.map_err(self.rocks("reading the baseline catalog"))?;
            if !k.starts_with(BASELINE_PREFIX) {
                break;
            }
            // Records of the layout before ranges decode too.
            out.push(BaselineManifest::decode(&v).map_err(|e| self.corrupt(e.to_string()))?);
        }
        Ok(out)
    }

    /// Where capture of this log began (the position of its first transaction), if recorded.
    pub fn origin(&self) -> Result<Option<Position>, StorageError> {
        self.get_decoded(CF_META, b"origin", "origin")
    }

    /// The first logged transaction a snapshot at `position` does not hold, with its sequence.
    pub fn first_txn_after(
        &self,
        position: &Position,
    ) -> Result<Option<(u64, TxnRecord)>, StorageError> {
        let mut found = None;
        self.scan_txns(0, |seq, t| {
            if held_by(position, &t) {
                true
            } else {
                found = Some((seq, t));
                false
            }
        })?;
        Ok(found)
    }

    /// Removes every transaction before sequence `first_kept` and every event committed
    /// before `first_kept`'s commit time, with range deletes (never a TTL: what goes is
    /// decided by the baselines kept, not by write time).
    pub fn prune_before(&self, first_kept: u64) -> Result<Pruned, StorageError> {
        let Some(kept) =
            self.get_decoded::<TxnRecord>(CF_TXNS, &first_kept.to_be_bytes(), "transaction")?
        else {
            return Err(StorageError::NotFound(format!(
                "transaction {first_kept} is not in the log"
            )));
        };
        let mut batch = WriteBatch::default();
        let gtids = self.cf(CF_GTIDS)?;
        let mut n = 0u64;
        self.scan_txns(0, |seq, t| {
            if seq >= first_kept {
                return false;
            }
            if let Some(g) = &t.gtid {
                batch.delete_cf(gtids, keys::gtid_key(g));
            }
            n += 1;
            true
        })?;
        batch.delete_range_cf(
            self.cf(CF_TXNS)?,
            0u64.to_be_bytes(),
            first_kept.to_be_bytes(),
        );
        let events = self.cf(CF_EVENTS)?;
        for (id, _) in self.tables()? {
            batch.delete_range_cf(
                events,
                keys::event_key(id, i64::MIN, 0),
                keys::event_key(id, kept.commit_us, 0),
            );
        }
        self.db
            .write(batch)
            .map_err(self.rocks("pruning the log"))?;
        Ok(Pruned {
            transactions: n,
            before_commit_us: kept.commit_us,
        })
    }
}
