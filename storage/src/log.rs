//! Opening the log and reading from it.
use crate::StorageError;
use crate::keys;
use dbtrail_core::codec;
use dbtrail_core::{ChangeEvent, Gtid, Position, RowChange, TableRef, TableSchema, Xid};
use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DB, DBCompressionType, Direction, IteratorMode,
    Options, ReadOptions,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub(crate) const CF_EVENTS: &str = "events";
pub(crate) const CF_TXNS: &str = "txns";
pub(crate) const CF_GTIDS: &str = "gtids";
pub(crate) const CF_CATALOG: &str = "catalog";
pub(crate) const CF_META: &str = "meta";
pub(crate) const CF_XA: &str = "xa";
const ALL_CFS: [&str; 6] = [CF_EVENTS, CF_TXNS, CF_GTIDS, CF_CATALOG, CF_META, CF_XA];

/// The value of an `events` record (table, commit time and event id are in the key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Schema version used to decode the images.
    pub schema_version: u32,
    /// The transaction's GTID.
    pub gtid: Option<Gtid>,
    /// The change.
    pub change: RowChange,
}

/// One captured transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TxnRecord {
    /// Its GTID, when the source has GTIDs.
    pub gtid: Option<Gtid>,
    /// Commit time in µs (monotonic in log order).
    pub commit_us: i64,
    /// First event id of the transaction (events are consecutive).
    pub first_event_id: u64,
    /// Number of row events.
    pub event_count: u64,
    /// Table ids touched.
    pub tables: Vec<u32>,
    /// Binlog file and offset just after its commit event.
    pub end_file: String,
    /// Offset after its commit event.
    pub end_pos: u64,
    /// DDL statement text, for DDL transactions.
    pub ddl: Option<String>,
}

/// Where capture resumes, and the log's counters. Written in the same batch as the events
/// it covers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The position after the last durable transaction.
    pub position: Position,
    /// Events with ids below this are visible; the next event gets this id.
    pub next_event_id: u64,
    /// The next transaction sequence number.
    pub next_txn_seq: u64,
    /// Commit time of the last durable transaction (µs); the log's clock never goes below it.
    pub last_commit_us: i64,
    /// Transactions logged.
    pub txns_total: u64,
}

/// A recorded gap in the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    /// What is missing (GTID set text or binlog range).
    pub missing: String,
    /// When it was recorded (µs).
    pub recorded_us: i64,
    /// Commit time of the last transaction logged before the gap (µs); the gap lies after it.
    pub after_commit_us: i64,
    /// Why.
    pub reason: String,
}

/// A table whose coverage is tainted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Taint {
    /// The table.
    pub table: TableRef,
    /// Why.
    pub reason: String,
    /// Commit time of the transaction that tainted it (µs).
    pub since_us: i64,
}

/// What the source server said, at connect, about how it logs; in force from the event id in
/// its key (`facts/ u64`) until the next record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerFacts {
    /// `@@version`.
    pub version: String,
    /// The server writes the child rows that foreign-key actions (CASCADE, SET NULL) change
    /// to the binlog: MySQL 9.x with SQL-layer foreign keys (`innodb_native_foreign_keys`
    /// OFF). False for MySQL 8.0/8.4, MariaDB, and MySQL 9.x with native foreign keys.
    pub fk_cascades_logged: bool,
}

/// An XA transaction prepared and not yet resolved (docs/correctness.md, C13). Its rows are
/// in the `xa` column family under `r/ seq` (see [`keys`]), invisible to every reader, until
/// `XA COMMIT` logs them as a transaction of its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct XaRecord {
    /// The XA transaction.
    pub xid: Xid,
    /// Sequence number of the prepare's (empty) transaction record; its rows are keyed by it.
    pub seq: u64,
    /// The prepare's GTID.
    pub gtid: Option<Gtid>,
    /// Commit time of the prepare (µs).
    pub prepared_us: i64,
    /// Table ids its rows touch.
    pub tables: Vec<u32>,
    /// Row events waiting.
    pub rows: u64,
}

/// Pieces of a large transaction written ahead of its commit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub first_event_id: u64,
    pub commit_us: i64,
    pub tables: Vec<u32>,
}

/// A source's log.
pub struct Log {
    pub(crate) db: DB,
    pub(crate) path: PathBuf,
}

fn cf_options(name: &str) -> Options {
    let mut o = Options::default();
    // Fresh data (L0, L1) stays uncompressed so flushes are cheap on the capture path;
    // compaction compresses the levels below with zstd.
    use DBCompressionType::{None as Plain, Zstd};
    o.set_compression_per_level(&[Plain, Plain, Zstd, Zstd, Zstd, Zstd, Zstd]);
    o.set_bottommost_compression_type(Zstd);
    if name == CF_EVENTS {
        let mut b = BlockBasedOptions::default();
        b.set_block_size(32 * 1024);
        o.set_block_based_table_factory(&b);
        // zstd dictionaries trained per SST on the bottommost level.
        o.set_bottommost_compression_options(-14, 6, 0, 16 * 1024, true);
        o.set_bottommost_zstd_max_train_bytes(100 * 16 * 1024, true);
    }
    o
}

impl Log {
    /// Opens (or creates) the log in `path`.
    pub fn open(path: &Path) -> Result<Log, StorageError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        // Memtables of all column families together stay under 128 MiB (each would otherwise
        // grow to 2 x 64 MiB), so the daemon's memory is bounded however long capture runs;
        // the events family still flushes about every 64 MiB (benches/README.md, lag_bench).
        opts.set_db_write_buffer_size(128 << 20);
        let cfs = ALL_CFS
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(*n, cf_options(n)));
        let db =
            DB::open_cf_descriptors(&opts, path, cfs).map_err(|source| StorageError::Rocks {
                action: "opening the log",
                path: path.display().to_string(),
                source,
            })?;
        Ok(Log {
            db,
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn rocks(
        &self,
        action: &'static str,
    ) -> impl FnOnce(rocksdb::Error) -> StorageError + '_ {
        move |source| StorageError::Rocks {
            action,
            path: self.path.display().to_string(),
            source,
        }
    }

    pub(crate) fn corrupt(&self, detail: impl Into<String>) -> StorageError {
        StorageError::Corrupt {
            path: self.path.display().to_string(),
            detail: detail.into(),
        }
    }

    pub(crate) fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StorageError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| self.corrupt(format!("column family {name} missing")))
    }

    pub(crate) fn get_decoded<T: serde::de::DeserializeOwned>(
        &self,
        cf: &str,
        key: &[u8],
        what: &'static str,
    ) -> Result<Option<T>, StorageError> {
        let cfh = self.cf(cf)?;
        match self.db.get_cf(cfh, key).map_err(self.rocks("reading"))? {
            None => Ok(None),
            Some(v) => codec::decode(what, &v)
                .map(Some)
                .map_err(|e| self.corrupt(e.to_string())),
        }
    }

    /// The durable checkpoint, if anything was ever captured.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, StorageError> {
        self.get_decoded(CF_META, b"checkpoint", "checkpoint")
    }

    pub(crate) fn pending(&self) -> Result<Option<Pending>, StorageError> {
        self.get_decoded(CF_META, b"pending", "pending")
    }

    /// The id of a table, if the log has seen it.
    pub fn table_id(&self, table: &TableRef) -> Result<Option<u32>, StorageError> {
        let cfh = self.cf(CF_CATALOG)?;
        match self
            .db
            .get_cf(cfh, keys::table_name_key(&table.db, &table.table))
            .map_err(self.rocks("reading the catalog"))?
        {
            None => Ok(None),
            Some(v) => {
                let b: [u8; 4] = v
                    .as_slice()
                    .try_into()
                    .map_err(|_| self.corrupt("table id is not 4 bytes"))?;
                Ok(Some(u32::from_be_bytes(b)))
            }
        }
    }

    /// Every table the log has seen, with its id.
    pub fn tables(&self) -> Result<Vec<(u32, TableRef)>, StorageError> {
        let cfh = self.cf(CF_CATALOG)?;
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cfh, IteratorMode::From(b"id/", Direction::Forward))
        {
            let (k, v) = item.map_err(self.rocks("listing tables"))?;
            if !k.starts_with(b"id/") {
                break;
            }
            let id: [u8; 4] = k[3..]
                .try_into()
                .map_err(|_| self.corrupt("bad table id key"))?;
            let t: TableRef =
                codec::decode("table", &v).map_err(|e| self.corrupt(e.to_string()))?;
            out.push((u32::from_be_bytes(id), t));
        }
        Ok(out)
    }

    /// All schema versions of a table, oldest first.
    pub fn schemas(&self, table_id: u32) -> Result<Vec<TableSchema>, StorageError> {
        let cfh = self.cf(CF_CATALOG)?;
        let prefix = keys::schema_prefix(table_id);
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cfh, IteratorMode::From(&prefix, Direction::Forward))
        {
            let (k, v) = item.map_err(self.rocks("reading schemas"))?;
            if !k.starts_with(&prefix) {
                break;
            }
            out.push(TableSchema::decode_record(&v).map_err(|e| self.corrupt(e.to_string()))?);
        }
        Ok(out)
    }

    /// One schema version.
    pub fn schema(&self, table_id: u32, version: u32) -> Result<Option<TableSchema>, StorageError> {
        let cfh = self.cf(CF_CATALOG)?;
        match self
            .db
            .get_cf(cfh, keys::schema_key(table_id, version))
            .map_err(self.rocks("reading a schema"))?
        {
            None => Ok(None),
            Some(v) => TableSchema::decode_record(&v)
                .map(Some)
                .map_err(|e| self.corrupt(e.to_string())),
        }
    }

    /// Visits the visible events of one table with `since_us <= commit_us <= until_us`, in
    /// commit order; `visit` returns false to stop.
    pub fn scan_table(
        &self,
        table_id: u32,
        since_us: i64,
        until_us: i64,
        mut visit: impl FnMut(i64, u64, StoredEvent) -> bool,
    ) -> Result<(), StorageError> {
        let horizon = self.checkpoint()?.map(|c| c.next_event_id).unwrap_or(0);
        let cfh = self.cf(CF_EVENTS)?;
        let start = keys::event_key(table_id, since_us, 0);
        let end = keys::event_key(table_id, until_us, u64::MAX);
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(end.to_vec());
        for item in self
            .db
            .iterator_cf_opt(cfh, ro, IteratorMode::From(&start, Direction::Forward))
        {
            let (k, v) = item.map_err(self.rocks("scanning events"))?;
            let (_, commit_us, event_id) = keys::parse_event_key(&k)
                .ok_or_else(|| self.corrupt("event key is not 20 bytes"))?;
            if event_id >= horizon {
                continue;
            }
            let ev: StoredEvent =
                codec::decode("event", &v).map_err(|e| self.corrupt(e.to_string()))?;
            if !visit(commit_us, event_id, ev) {
                break;
            }
        }
        Ok(())
    }

    /// Counts the visible events of one table with `since_us <= commit_us <= until_us` and
    /// an event id in `ids`, reading keys only.
    pub fn count_table_events(
        &self,
        table_id: u32,
        since_us: i64,
        until_us: i64,
        ids: std::ops::Range<u64>,
    ) -> Result<u64, StorageError> {
        let horizon = self.checkpoint()?.map(|c| c.next_event_id).unwrap_or(0);
        let cfh = self.cf(CF_EVENTS)?;
        let start = keys::event_key(table_id, since_us, 0);
        let end = keys::event_key(table_id, until_us, u64::MAX);
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(end.to_vec());
        let mut it = self.db.raw_iterator_cf_opt(cfh, ro);
        it.seek(start);
        let mut n = 0;
        while let Some(k) = it.key() {
            let (_, _, event_id) = keys::parse_event_key(k)
                .ok_or_else(|| self.corrupt("event key is not 20 bytes"))?;
            if event_id < horizon && ids.contains(&event_id) {
                n += 1;
            }
            it.next();
        }
        it.status().map_err(self.rocks("counting events"))?;
        Ok(n)
    }

    /// Convenience: the visible events of a table as [`ChangeEvent`]s, up to `limit`.
    pub fn table_events(
        &self,
        table: &TableRef,
        since_us: i64,
        until_us: i64,
        limit: usize,
    ) -> Result<Vec<ChangeEvent>, StorageError> {
        let Some(id) = self.table_id(table)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        self.scan_table(id, since_us, until_us, |commit_us, event_id, ev| {
            out.push(ChangeEvent {
                table: table.clone(),
                schema_version: ev.schema_version,
                gtid: ev.gtid,
                commit_us,
                event_id,
                change: ev.change,
            });
            out.len() < limit
        })?;
        Ok(out)
    }

    /// The transaction with this GTID, if logged.
    pub fn txn_by_gtid(&self, gtid: &Gtid) -> Result<Option<TxnRecord>, StorageError> {
        let cfh = self.cf(CF_GTIDS)?;
        let Some(seq) = self
            .db
            .get_cf(cfh, keys::gtid_key(gtid))
            .map_err(self.rocks("reading the gtid index"))?
        else {
            return Ok(None);
        };
        self.get_decoded(CF_TXNS, &seq, "transaction")
    }

    /// Visits transactions in log order starting at sequence `from`.
    pub fn scan_txns(
        &self,
        from: u64,
        mut visit: impl FnMut(u64, TxnRecord) -> bool,
    ) -> Result<(), StorageError> {
        let cfh = self.cf(CF_TXNS)?;
        let start = from.to_be_bytes();
        for item in self
            .db
            .iterator_cf(cfh, IteratorMode::From(&start, Direction::Forward))
        {
            let (k, v) = item.map_err(self.rocks("scanning transactions"))?;
            let seq = u64::from_be_bytes(
                k.as_ref()
                    .try_into()
                    .map_err(|_| self.corrupt("transaction key is not 8 bytes"))?,
            );
            let t: TxnRecord =
                codec::decode("transaction", &v).map_err(|e| self.corrupt(e.to_string()))?;
            if !visit(seq, t) {
                break;
            }
        }
        Ok(())
    }

    fn list<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &[u8],
        what: &'static str,
    ) -> Result<Vec<T>, StorageError> {
        let cfh = self.cf(CF_META)?;
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cfh, IteratorMode::From(prefix, Direction::Forward))
        {
            let (k, v) = item.map_err(self.rocks("reading meta"))?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push(codec::decode(what, &v).map_err(|e| self.corrupt(e.to_string()))?);
        }
        Ok(out)
    }

    /// Recorded gaps, oldest first.
    pub fn gaps(&self) -> Result<Vec<Gap>, StorageError> {
        self.list(b"gap/", "gap")
    }

    /// Server facts with the first event id each holds for, oldest first.
    pub fn facts(&self) -> Result<Vec<(u64, ServerFacts)>, StorageError> {
        let cfh = self.cf(CF_META)?;
        let prefix = b"facts/";
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cfh, IteratorMode::From(prefix, Direction::Forward))
        {
            let (k, v) = item.map_err(self.rocks("reading meta"))?;
            if !k.starts_with(prefix) {
                break;
            }
            let id = k
                .get(prefix.len()..)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| self.corrupt(format!("bad facts key {k:?}")))?;
            out.push((
                id,
                codec::decode("facts", &v).map_err(|e| self.corrupt(e.to_string()))?,
            ));
        }
        Ok(out)
    }

    /// Tainted tables.
    pub fn taints(&self) -> Result<Vec<Taint>, StorageError> {
        self.list(b"taint/", "taint")
    }

    /// XA transactions prepared and not yet resolved (as of the last write), by xid.
    pub fn xa_prepared(&self) -> Result<Vec<XaRecord>, StorageError> {
        let cfh = self.cf(CF_XA)?;
        let mut out = Vec::new();
        let prefix = keys::XA_RECORD_PREFIX;
        for item in self
            .db
            .iterator_cf(cfh, IteratorMode::From(prefix, Direction::Forward))
        {
            let (k, v) = item.map_err(self.rocks("reading prepared XA transactions"))?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push(codec::decode("xa record", &v).map_err(|e| self.corrupt(e.to_string()))?);
        }
        Ok(out)
    }

    /// Approximate bytes on disk (SST files) of the events column family.
    pub fn events_disk_bytes(&self) -> u64 {
        self.cf(CF_EVENTS)
            .ok()
            .and_then(|cf| {
                self.db
                    .property_int_value_cf(cf, "rocksdb.total-sst-files-size")
                    .ok()
                    .flatten()
            })
            .unwrap_or(0)
    }

    /// fsyncs the write-ahead log (makes unsynced writes durable against power loss).
    pub fn sync_wal(&self) -> Result<(), StorageError> {
        self.db
            .flush_wal(true)
            .map_err(self.rocks("syncing the WAL"))
    }

    /// Flushes memtables to SST files (for measurements and tests).
    pub fn flush(&self) -> Result<(), StorageError> {
        for n in ALL_CFS {
            self.db
                .flush_cf(self.cf(n)?)
                .map_err(self.rocks("flushing"))?;
        }
        Ok(())
    }

    /// Compacts the events column family (for measurements).
    pub fn compact_events(&self) -> Result<(), StorageError> {
        let cf = self.cf(CF_EVENTS)?;
        self.db.compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
        Ok(())
    }
}

impl dbtrail_core::history::ChangeLog for Log {
    fn table_id(
        &self,
        table: &TableRef,
    ) -> Result<Option<u32>, dbtrail_core::history::HistoryError> {
        Log::table_id(self, table).map_err(history)
    }

    fn schema(
        &self,
        table_id: u32,
        version: u32,
    ) -> Result<Option<TableSchema>, dbtrail_core::history::HistoryError> {
        Log::schema(self, table_id, version).map_err(history)
    }

    fn scan_table(
        &self,
        table_id: u32,
        since_us: i64,
        until_us: i64,
        ids: std::ops::Range<u64>,
        visit: &mut dyn FnMut(dbtrail_core::history::LoggedChange) -> bool,
    ) -> Result<(), dbtrail_core::history::HistoryError> {
        Log::scan_table(
            self,
            table_id,
            since_us,
            until_us,
            |commit_us, event_id, ev| {
                if !ids.contains(&event_id) {
                    return true;
                }
                visit(dbtrail_core::history::LoggedChange {
                    commit_us,
                    event_id,
                    schema_version: ev.schema_version,
                    gtid: ev.gtid,
                    change: ev.change,
                })
            },
        )
        .map_err(history)
    }

    fn count_table_changes(
        &self,
        table_id: u32,
        since_us: i64,
        until_us: i64,
        ids: std::ops::Range<u64>,
    ) -> Result<u64, dbtrail_core::history::HistoryError> {
        self.count_table_events(table_id, since_us, until_us, ids)
            .map_err(history)
    }

    fn cascades_logged(&self) -> Result<Vec<(u64, bool)>, dbtrail_core::history::HistoryError> {
        Ok(self
            .facts()
            .map_err(history)?
            .into_iter()
            .map(|(id, f)| (id, f.fk_cascades_logged))
            .collect())
    }
}

impl From<TxnRecord> for dbtrail_core::history::TxnInfo {
    fn from(t: TxnRecord) -> Self {
        dbtrail_core::history::TxnInfo {
            gtid: t.gtid,
            commit_us: t.commit_us,
            first_event_id: t.first_event_id,
            event_count: t.event_count,
            tables: t.tables,
            end_file: t.end_file,
            end_pos: t.end_pos,
            ddl: t.ddl,
        }
    }
}

impl dbtrail_core::history::Catalog for Log {
    fn baselines(
        &self,
    ) -> Result<Vec<dbtrail_core::baseline::BaselineManifest>, dbtrail_core::history::HistoryError>
    {
        Log::baselines(self).map_err(history)
    }

    fn origin(&self) -> Result<Option<Position>, dbtrail_core::history::HistoryError> {
        Log::origin(self).map_err(history)
    }

    fn scan_txns(
        &self,
        visit: &mut dyn FnMut(dbtrail_core::history::TxnInfo) -> bool,
    ) -> Result<(), dbtrail_core::history::HistoryError> {
        Log::scan_txns(self, 0, |_, t| visit(t.into())).map_err(history)
    }

    fn txn_by_gtid(
        &self,
        gtid: &Gtid,
    ) -> Result<Option<dbtrail_core::history::TxnInfo>, dbtrail_core::history::HistoryError> {
        Ok(Log::txn_by_gtid(self, gtid)
            .map_err(history)?
            .map(Into::into))
    }

    fn horizon(
        &self,
    ) -> Result<Option<dbtrail_core::history::Horizon>, dbtrail_core::history::HistoryError> {
        Ok(self
            .checkpoint()
            .map_err(history)?
            .map(|c| dbtrail_core::history::Horizon {
                last_commit_us: c.last_commit_us,
                next_event_id: c.next_event_id,
            }))
    }

    fn gaps(
        &self,
    ) -> Result<Vec<dbtrail_core::history::GapInfo>, dbtrail_core::history::HistoryError> {
        Ok(Log::gaps(self)
            .map_err(history)?
            .into_iter()
            .map(|g| dbtrail_core::history::GapInfo {
                missing: g.missing,
                recorded_us: g.recorded_us,
                after_commit_us: g.after_commit_us,
                reason: g.reason,
            })
            .collect())
    }

    fn taints(
        &self,
    ) -> Result<Vec<dbtrail_core::history::TaintInfo>, dbtrail_core::history::HistoryError> {
        Ok(Log::taints(self)
            .map_err(history)?
            .into_iter()
            .map(|t| dbtrail_core::history::TaintInfo {
                table: t.table,
                reason: t.reason,
                since_us: t.since_us,
            })
            .collect())
    }

    fn tables(&self) -> Result<Vec<(u32, TableRef)>, dbtrail_core::history::HistoryError> {
        Log::tables(self).map_err(history)
    }

    fn event_bytes(&self) -> Result<u64, dbtrail_core::history::HistoryError> {
        let total = self
            .checkpoint()
            .map_err(history)?
            .map(|c| c.next_event_id)
            .unwrap_or(0)
            .max(1);
        Ok(self.events_disk_bytes() / total)
    }
}

fn history(e: StorageError) -> dbtrail_core::history::HistoryError {
    dbtrail_core::history::HistoryError(e.to_string())
}
