//! The baseline catalog and retention of the log.
//!
//! The catalog (`catalog` column family, keys `baseline/<id>`) holds the manifest of every
//! baseline that is complete in its store; ids sort by snapshot time. Records are the
//! manifest's JSON (self-describing, so fields added later with defaults still read);
//! records written before that (the compact codec, format 1 without `method`/`upper`) are
//! read by [`legacy`].
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

fn encode_manifest(m: &BaselineManifest) -> Vec<u8> {
    // Serializing plain data into a Vec cannot fail.
    serde_json::to_vec(m).unwrap_or_default()
}

fn decode_manifest(v: &[u8]) -> Result<BaselineManifest, String> {
    if v.first() == Some(&b'{') {
        return serde_json::from_slice(v).map_err(|e| format!("baseline record: {e}"));
    }
    let old: legacy::Manifest = codec::decode("baseline", v).map_err(|e| e.to_string())?;
    Ok(old.into())
}

/// The catalog records of earlier versions (the compact codec, before snapshot methods).
mod legacy {
    use dbtrail_core::baseline::{
        BaselineManifest, BaselineOrigin, BaselineTable, SkippedTable, SnapshotMethod,
    };
    use dbtrail_core::{Position, TableRef};
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    pub(super) struct Table {
        pub table: TableRef,
        pub file: String,
        pub rows: u64,
        pub bytes: u64,
        pub create_table: String,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct Manifest {
        pub format_version: u32,
        pub id: String,
        pub source: String,
        pub origin: BaselineOrigin,
        pub position: Position,
        pub snapshot_us: i64,
        pub started_us: i64,
        pub finished_us: i64,
        pub lock_held_us: i64,
        pub lock_mode: String,
        pub tables: Vec<Table>,
        pub skipped: Vec<SkippedTable>,
    }

    impl From<Manifest> for BaselineManifest {
        fn from(m: Manifest) -> BaselineManifest {
            let method = match m.origin {
                BaselineOrigin::MydumperImport => SnapshotMethod::NotApplicable,
                BaselineOrigin::TableImage => SnapshotMethod::Tables,
                _ => SnapshotMethod::Global,
            };
            let mut out: BaselineManifest = serde_json::from_value(serde_json::json!({
                "format_version": m.format_version,
                "id": m.id,
                "source": m.source,
                "origin": m.origin,
                "position": m.position,
                "snapshot_us": m.snapshot_us,
                "started_us": m.started_us,
                "finished_us": m.finished_us,
                "lock_held_us": m.lock_held_us,
                "lock_mode": m.lock_mode,
                "tables": [],
                "skipped": m.skipped,
            }))
            .unwrap_or_else(|e| unreachable!("a legacy manifest always converts: {e}"));
            out.method = method;
            out.tables = m
                .tables
                .into_iter()
                .map(|t| {
                    serde_json::from_value::<BaselineTable>(serde_json::json!({
                        "table": t.table,
                        "file": t.file,
                        "rows": t.rows,
                        "bytes": t.bytes,
                        "create_table": t.create_table,
                    }))
                    .unwrap_or_else(|e| unreachable!("a legacy table always converts: {e}"))
                })
                .collect();
            out
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// A record written by an earlier version still reads, as a global-lock snapshot.
        #[test]
        fn old_records_read() {
            let old = Manifest {
                format_version: 1,
                id: "20260101T000000.000000Z".into(),
                source: "src".into(),
                origin: BaselineOrigin::Snapshot,
                position: Position {
                    gtid_set: dbtrail_core::GtidSet::empty_mysql(),
                    file: "b.000001".into(),
                    pos: 4,
                    server_uuid: "u".into(),
                },
                snapshot_us: 1,
                started_us: 1,
                finished_us: 2,
                lock_held_us: 3,
                lock_mode: "FLUSH TABLES WITH READ LOCK".into(),
                tables: vec![Table {
                    table: TableRef::new("d", "t"),
                    file: "d/t.parquet".into(),
                    rows: 5,
                    bytes: 6,
                    create_table: "CREATE TABLE t (id int)".into(),
                }],
                skipped: Vec::new(),
            };
            let m =
                super::super::decode_manifest(&dbtrail_core::codec::encode(&old)).expect("decodes");
            assert_eq!(m.method, SnapshotMethod::Global);
            assert_eq!(m.upper, None);
            assert_eq!(m.tables[0].file, "d/t.parquet");
            assert_eq!(m.tables[0].rows, 5);
            let again = super::super::decode_manifest(&super::super::encode_manifest(&m))
                .expect("round trip");
            assert_eq!(again, m);
        }

        /// Golden: a catalog record exactly as builds before snapshot methods and key ranges
        /// wrote it.
        #[test]
        fn golden_old_record_reads() {
            let bytes = hex::decode(GOLDEN_OLD).expect("hex");
            let m = super::super::decode_manifest(&bytes).expect("decodes");
            assert_eq!(m.id, "20261118T110640.123456Z");
            assert_eq!(m.lock_mode, "FLUSH TABLES WITH READ LOCK");
            assert_eq!(m.method, SnapshotMethod::Global);
            let files: Vec<Vec<&str>> = m.tables.iter().map(|t| t.files()).collect();
            assert_eq!(files, vec![vec!["d/a.parquet"], vec!["d/b.parquet"]]);
            assert_eq!((m.tables[0].rows, m.tables[0].bytes), (5, 6));
            assert!(m.tables.iter().all(|t| t.parts.is_empty()));
        }

        const GOLDEN_OLD: &str = "0101173230323631313138543131303634302e3132333435365a0373726300000d62696e6c6f672e3030303030329d010175020406081b464c555348205441424c455320574954482052454144204c4f434b02016401610b642f612e7061727175657405060e435245415445205441424c452061016401620b642f622e7061727175657400000e435245415445205441424c45206200";
    }
}

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
            .put_cf(
                self.cf(CF_CATALOG)?,
                baseline_key(&m.id),
                encode_manifest(m),
            )
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
            out.push(decode_manifest(&v).map_err(|e| self.corrupt(e))?);
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
