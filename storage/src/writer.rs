//! The capture writer: turns decoded transactions into atomic log writes.
//!
//! # Invariants and why they hold
//! 1. *Atomicity.* The checkpoint (resume position + next event id) is written in the same
//!    `WriteBatch` as the events of the transactions it covers, and only ever after whole
//!    transactions ([`Writer::commit`]). After a crash the log holds exactly the transactions
//!    before the checkpoint's position, and capture resumes there: nothing lost, nothing twice.
//! 2. *Visibility.* Event ids are assigned from `checkpoint.next_event_id` upward. Readers skip
//!    ids at or above the durable checkpoint's `next_event_id`. A transaction too large to buffer
//!    is written in pieces ahead of its commit (bounded memory); those pieces have ids at or
//!    above the durable horizon, so they are invisible until the batch that carries its commit
//!    and the new checkpoint lands. A `pending` marker written with the first piece names the
//!    tables and commit time, so [`Writer::open`] deletes orphaned pieces after a crash.
//! 3. *Monotonic time.* A transaction's commit time is `max(source commit time, previous
//!    commit time)`, so the log's clock never goes backwards in binlog order even when the
//!    server clock or statement times do (docs/correctness.md, C1), and (commit_us, event_id)
//!    order equals log order.
//! 4. *XA at commit* (docs/correctness.md, C13). A transaction that ends at `XA PREPARE`
//!    ([`Writer::xa_prepare`]) is logged as a transaction with no rows (its GTID and position
//!    count, so GTID targets and the captured set stay consistent); its rows go to the `xa`
//!    column family with an [`XaRecord`], in the batch that carries the checkpoint after the
//!    prepare (invariant 1). No reader looks there. `XA COMMIT` ([`Writer::xa_resolve`]) reads
//!    them back, in order, into the transaction of the `XA COMMIT` itself (its GTID, commit
//!    time, position, new event ids) through [`Writer::add`], so a huge one spills with
//!    bounded memory (invariant 2), and deletes them and the record in the batch that
//!    carries that commit's checkpoint. A crash in between leaves the record and rows, and
//!    capture resumes before the `XA COMMIT` and does it again. `XA ROLLBACK` deletes them.
//!    Rows in `xa` under a sequence number at or above the durable checkpoint's
//!    `next_txn_seq` belong to a prepare whose batch never landed; [`Writer::open`] deletes
//!    them.
use crate::log::{CF_CATALOG, CF_EVENTS, CF_GTIDS, CF_META, CF_TXNS, CF_XA, Pending};
use crate::{
    Checkpoint, Gap, Log, ServerFacts, StorageError, StoredEvent, Taint, TxnRecord, XaRecord, keys,
};
use dbtrail_core::codec;
use dbtrail_core::{Gtid, Position, RowChange, TableRef, TableSchema, Xid};
use rocksdb::{ReadOptions, WriteBatch, WriteOptions};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Buffered bytes of one transaction above which it is written in pieces.
pub const SPILL_BYTES: usize = 32 << 20;

struct TableState {
    id: u32,
    latest: TableSchema,
}

struct Txn {
    gtid: Option<Gtid>,
    commit_us: i64,
    first_event_id: u64,
    count: u64,
    tables: BTreeSet<u32>,
    /// (table id, event id, encoded StoredEvent) not yet in a batch.
    buffered: Vec<(u32, u64, Vec<u8>)>,
    buffered_bytes: usize,
    spilled: bool,
}

/// Writes a source's log. One per source; not shared between threads.
pub struct Writer<'a> {
    log: &'a Log,
    batch: WriteBatch,
    batch_events: usize,
    ckpt: Checkpoint,
    durable_horizon: u64,
    tables: HashMap<TableRef, TableState>,
    next_table_id: u32,
    txn: Option<Txn>,
    gap_seq: u64,
    /// The server facts in force at the end of the log (the last `facts/` record).
    facts: Option<ServerFacts>,
    /// Prepared XA transactions not yet resolved, by [`Xid::key`].
    xa: BTreeMap<Vec<u8>, XaRecord>,
    /// Those of them whose rows are still in the unwritten batch.
    xa_unwritten: HashSet<Vec<u8>>,
    /// A batch was written without fsync since the last fsynced one.
    unsynced: bool,
}

/// What [`Writer::xa_resolve`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XaOutcome {
    /// `XA COMMIT`: this many prepared rows were logged at the commit.
    Committed(u64),
    /// `XA ROLLBACK`: the prepared rows were dropped.
    RolledBack,
    /// `XA COMMIT` of a transaction this log never saw prepared (prepared before capture
    /// began): its rows cannot be known, so every table is tainted from here.
    UnknownCommitted,
    /// `XA ROLLBACK` of a transaction this log never saw prepared: nothing to do.
    UnknownRolledBack,
}

impl<'a> Writer<'a> {
    /// Opens the writer: loads the checkpoint (or starts at `initial` for a new log) and
    /// the catalog, and removes pieces of a large transaction whose commit never landed.
    pub fn open(log: &'a Log, initial: Position) -> Result<Writer<'a>, StorageError> {
        let existing = log.checkpoint()?;
        if existing.is_none() && log.origin()?.is_none() {
            log.db
                .put_cf(log.cf(CF_META)?, b"origin", codec::encode(&initial))
                .map_err(log.rocks("recording the log's origin"))?;
        }
        let ckpt = existing.unwrap_or(Checkpoint {
            position: initial,
            next_event_id: 0,
            next_txn_seq: 0,
            last_commit_us: 0,
            txns_total: 0,
        });
        let mut tables = HashMap::new();
        let mut next_table_id = 0;
        for (id, t) in log.tables()? {
            next_table_id = next_table_id.max(id + 1);
            if let Some(latest) = log.schemas(id)?.pop() {
                tables.insert(t, TableState { id, latest });
            }
        }
        let gap_seq = log.gaps()?.len() as u64;
        let facts = log.facts()?.pop().map(|(_, f)| f);
        if let Some(p) = log.pending()? {
            let mut b = WriteBatch::default();
            let cf = log.cf(CF_EVENTS)?;
            for t in &p.tables {
                b.delete_range_cf(
                    cf,
                    keys::event_key(*t, p.commit_us, p.first_event_id.max(ckpt.next_event_id)),
                    keys::event_key(*t, p.commit_us, u64::MAX),
                );
            }
            b.delete_cf(log.cf(CF_META)?, b"pending");
            log.db
                .write(b)
                .map_err(log.rocks("removing an uncommitted large transaction"))?;
            tracing::info!(
                tables = p.tables.len(),
                "removed pieces of a large transaction whose commit was not captured before the last stop"
            );
        }
        let mut xa = BTreeMap::new();
        for r in log.xa_prepared()? {
            xa.insert(r.xid.key(), r);
        }
        // Rows of a prepare whose batch never landed (moved ahead of it, see xa_prepare).
        let orphans = keys::xa_row_key(ckpt.next_txn_seq, 0);
        let cf = log.cf(CF_XA)?;
        let mut it = log.db.raw_iterator_cf(cf);
        it.seek(orphans);
        if it.key().is_some_and(|k| k.starts_with(b"r/")) {
            let mut b = WriteBatch::default();
            b.delete_range_cf(cf, orphans, keys::xa_row_key(u64::MAX, u64::MAX));
            log.db
                .write(b)
                .map_err(log.rocks("removing rows of an XA prepare that was not logged"))?;
        }
        it.status()
            .map_err(log.rocks("reading prepared XA transactions"))?;
        drop(it);
        Ok(Writer {
            log,
            batch: WriteBatch::default(),
            batch_events: 0,
            durable_horizon: ckpt.next_event_id,
            ckpt,
            tables,
            next_table_id,
            txn: None,
            gap_seq,
            facts,
            xa,
            xa_unwritten: HashSet::new(),
            unsynced: false,
        })
    }

    /// Prepared XA transactions not yet resolved, including ones not yet flushed.
    pub fn xa_prepared(&self) -> impl Iterator<Item = &XaRecord> {
        self.xa.values()
    }

    /// True (once) when a batch was written without fsync since the last fsynced write or
    /// the last call (e.g. by a spill or an XA resolution): the caller's next fsync makes it
    /// durable.
    pub fn take_unsynced(&mut self) -> bool {
        std::mem::take(&mut self.unsynced)
    }

    /// The checkpoint including transactions committed but not yet flushed.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.ckpt
    }

    /// Row events in the unflushed batch.
    pub fn batch_events(&self) -> usize {
        self.batch_events
    }

    /// True when a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    /// The latest known schema of a table.
    pub fn latest_schema(&self, table: &TableRef) -> Option<&TableSchema> {
        self.tables.get(table).map(|t| &t.latest)
    }

    /// Registers `schema` for its table: returns the table id and the schema version that
    /// matches it, adding a new version when it differs from the latest (its `version` field
    /// is ignored).
    pub fn ensure_schema(&mut self, mut schema: TableSchema) -> Result<(u32, u32), StorageError> {
        if let Some(st) = self.tables.get(&schema.table) {
            schema.version = st.latest.version;
            if st.latest == schema {
                return Ok((st.id, st.latest.version));
            }
        }
        let cat = self.log.cf(CF_CATALOG)?;
        let id = match self.tables.get(&schema.table) {
            Some(st) => st.id,
            None => {
                let id = self.next_table_id;
                self.next_table_id += 1;
                self.batch
                    .put_cf(cat, keys::table_id_key(id), codec::encode(&schema.table));
                self.batch.put_cf(
                    cat,
                    keys::table_name_key(&schema.table.db, &schema.table.table),
                    id.to_be_bytes(),
                );
                id
            }
        };
        let version = self
            .tables
            .get(&schema.table)
            .map_or(1, |s| s.latest.version + 1);
        schema.version = version;
        self.batch
            .put_cf(cat, keys::schema_key(id, version), codec::encode(&schema));
        self.tables
            .insert(schema.table.clone(), TableState { id, latest: schema });
        Ok((id, version))
    }

    /// Starts a transaction with the source's commit time (µs); it is raised to the previous
    /// commit time if lower (invariant 3).
    pub fn begin(&mut self, gtid: Option<Gtid>, commit_us: i64) {
        self.txn = Some(Txn {
            gtid,
            commit_us: commit_us.max(self.ckpt.last_commit_us),
            first_event_id: self.ckpt.next_event_id,
            count: 0,
            tables: BTreeSet::new(),
            buffered: Vec::new(),
            buffered_bytes: 0,
            spilled: false,
        });
    }

    /// Adds one row change to the open transaction; returns its encoded size in bytes.
    pub fn add(
        &mut self,
        table_id: u32,
        schema_version: u32,
        change: RowChange,
    ) -> Result<usize, StorageError> {
        let Some(txn) = self.txn.as_mut() else {
            return Err(StorageError::NotFound(
                "row event outside a transaction".into(),
            ));
        };
        let ev = StoredEvent {
            schema_version,
            gtid: txn.gtid.clone(),
            change,
        };
        let bytes = codec::encode(&ev);
        let size = bytes.len();
        let event_id = txn.first_event_id + txn.count;
        txn.count += 1;
        txn.tables.insert(table_id);
        txn.buffered_bytes += bytes.len() + 32;
        txn.buffered.push((table_id, event_id, bytes));
        if txn.buffered_bytes >= SPILL_BYTES {
            self.spill()?;
        }
        Ok(size)
    }

    /// Writes the open transaction's buffered events ahead of its commit (invariant 2).
    fn spill(&mut self) -> Result<(), StorageError> {
        // Write everything committed so far first, so the pieces batch carries no
        // checkpoint of its own.
        self.flush_with(false)?;
        let Some(txn) = self.txn.as_mut() else {
            return Ok(());
        };
        let events = self.log.cf(CF_EVENTS)?;
        let mut b = WriteBatch::default();
        for (t, id, bytes) in txn.buffered.drain(..) {
            b.put_cf(events, keys::event_key(t, txn.commit_us, id), bytes);
        }
        txn.buffered_bytes = 0;
        txn.spilled = true;
        let pending = Pending {
            first_event_id: txn.first_event_id,
            commit_us: txn.commit_us,
            tables: txn.tables.iter().copied().collect(),
        };
        b.put_cf(self.log.cf(CF_META)?, b"pending", codec::encode(&pending));
        self.log
            .db
            .write(b)
            .map_err(self.log.rocks("writing part of a large transaction"))?;
        Ok(())
    }

    /// Commits the open transaction: `after` is the position just after its commit event,
    /// `commit_us` (when given) replaces the commit time passed to [`Writer::begin`] (MariaDB
    /// knows it only at the end; ignored for a transaction already written in pieces).
    pub fn commit(
        &mut self,
        after: Position,
        commit_us: Option<i64>,
        ddl: Option<String>,
    ) -> Result<(), StorageError> {
        let Some(mut txn) = self.txn.take() else {
            return Err(StorageError::NotFound(
                "commit outside a transaction".into(),
            ));
        };
        if let (Some(c), false) = (commit_us, txn.spilled) {
            txn.commit_us = c.max(self.ckpt.last_commit_us);
        }
        let events = self.log.cf(CF_EVENTS)?;
        for (t, id, bytes) in txn.buffered.drain(..) {
            self.batch
                .put_cf(events, keys::event_key(t, txn.commit_us, id), bytes);
        }
        if txn.spilled {
            self.batch.delete_cf(self.log.cf(CF_META)?, b"pending");
        }
        self.batch_events += txn.count as usize;
        let rec = TxnRecord {
            gtid: txn.gtid,
            commit_us: txn.commit_us,
            first_event_id: txn.first_event_id,
            event_count: txn.count,
            tables: txn.tables.into_iter().collect(),
            end_file: after.file.clone(),
            end_pos: after.pos,
            ddl,
        };
        self.log_txn(rec, after)
    }

    /// Puts a transaction record in the batch and moves the checkpoint past it.
    fn log_txn(&mut self, rec: TxnRecord, after: Position) -> Result<(), StorageError> {
        let seq = self.ckpt.next_txn_seq;
        if let Some(g) = &rec.gtid {
            self.batch
                .put_cf(self.log.cf(CF_GTIDS)?, keys::gtid_key(g), seq.to_be_bytes());
        }
        self.batch.put_cf(
            self.log.cf(CF_TXNS)?,
            seq.to_be_bytes(),
            codec::encode(&rec),
        );
        self.ckpt.position = after;
        self.ckpt.next_event_id = rec.first_event_id + rec.event_count;
        self.ckpt.next_txn_seq += 1;
        self.ckpt.last_commit_us = rec.commit_us;
        self.ckpt.txns_total += 1;
        Ok(())
    }

    /// Ends the open transaction at `XA PREPARE` (invariant 4): it is logged with no rows at
    /// `after`; its rows wait in the `xa` column family for [`Writer::xa_resolve`].
    /// `commit_us` is as for [`Writer::commit`].
    pub fn xa_prepare(
        &mut self,
        xid: Xid,
        after: Position,
        commit_us: Option<i64>,
    ) -> Result<(), StorageError> {
        let Some(mut txn) = self.txn.take() else {
            return Err(StorageError::NotFound(
                "XA PREPARE outside a transaction".into(),
            ));
        };
        if let (Some(c), false) = (commit_us, txn.spilled) {
            txn.commit_us = c.max(self.ckpt.last_commit_us);
        }
        let seq = self.ckpt.next_txn_seq;
        let xa_cf = self.log.cf(CF_XA)?;
        let key = xid.key();
        if let Some(old) = self.xa.remove(&key) {
            // Its XA COMMIT/ROLLBACK never reached the log (e.g. lost in a recorded gap);
            // the server reuses the name only after resolving it.
            tracing::warn!(xid = %xid, "XA transaction prepared again; dropping the rows of its earlier prepare");
            self.batch.delete_range_cf(
                xa_cf,
                keys::xa_row_key(old.seq, 0),
                keys::xa_row_key(old.seq + 1, 0),
            );
        }
        let row_value = |t: u32, bytes: &[u8]| {
            let mut v = Vec::with_capacity(4 + bytes.len());
            v.extend_from_slice(&t.to_be_bytes());
            v.extend_from_slice(bytes);
            v
        };
        if txn.spilled {
            // Move the pieces written ahead into `xa`, in bounded batches; until the record
            // below lands they are orphans that `open` removes (seq >= next_txn_seq).
            let events = self.log.cf(CF_EVENTS)?;
            let mut b = WriteBatch::default();
            let mut bytes = 0usize;
            for t in &txn.tables {
                let start = keys::event_key(*t, txn.commit_us, txn.first_event_id);
                let end = keys::event_key(*t, txn.commit_us, u64::MAX);
                let mut ro = ReadOptions::default();
                ro.set_iterate_upper_bound(end.to_vec());
                let mut it = self.log.db.raw_iterator_cf_opt(events, ro);
                it.seek(start);
                while let (Some(k), Some(v)) = (it.key(), it.value()) {
                    let (_, _, id) = keys::parse_event_key(k)
                        .ok_or_else(|| self.log.corrupt("event key is not 20 bytes"))?;
                    b.put_cf(
                        xa_cf,
                        keys::xa_row_key(seq, id - txn.first_event_id),
                        row_value(*t, v),
                    );
                    bytes += v.len() + 32;
                    if bytes >= SPILL_BYTES {
                        self.log
                            .db
                            .write(std::mem::take(&mut b))
                            .map_err(self.log.rocks("moving a prepared XA transaction"))?;
                        bytes = 0;
                    }
                    it.next();
                }
                it.status()
                    .map_err(self.log.rocks("reading a prepared XA transaction"))?;
                self.batch.delete_range_cf(events, start, end);
            }
            self.log
                .db
                .write(b)
                .map_err(self.log.rocks("moving a prepared XA transaction"))?;
            self.unsynced = true;
            self.batch.delete_cf(self.log.cf(CF_META)?, b"pending");
        }
        for (t, id, bytes) in txn.buffered.drain(..) {
            self.batch.put_cf(
                xa_cf,
                keys::xa_row_key(seq, id - txn.first_event_id),
                row_value(t, &bytes),
            );
        }
        let rec = XaRecord {
            xid,
            seq,
            gtid: txn.gtid.clone(),
            prepared_us: txn.commit_us,
            tables: txn.tables.iter().copied().collect(),
            rows: txn.count,
        };
        self.batch
            .put_cf(xa_cf, keys::xa_record_key(&rec.xid), codec::encode(&rec));
        self.xa_unwritten.insert(key.clone());
        self.xa.insert(key, rec);
        // Row events of the prepare are not logged: they take no event ids.
        let txn_rec = TxnRecord {
            gtid: txn.gtid,
            commit_us: txn.commit_us,
            first_event_id: self.ckpt.next_event_id,
            event_count: 0,
            tables: Vec::new(),
            end_file: after.file.clone(),
            end_pos: after.pos,
            ddl: None,
        };
        self.log_txn(txn_rec, after)
    }

    /// Ends the open transaction, an `XA COMMIT` (`commit`) or `XA ROLLBACK` of `xid`
    /// (invariant 4): on commit the prepared rows become this transaction's; either way
    /// they leave `xa`. `after` and `commit_us` are as for [`Writer::commit`].
    pub fn xa_resolve(
        &mut self,
        xid: &Xid,
        commit: bool,
        after: Position,
        commit_us: Option<i64>,
    ) -> Result<XaOutcome, StorageError> {
        let Some(open) = self.txn.as_ref() else {
            return Err(StorageError::NotFound(
                "XA COMMIT or XA ROLLBACK outside a transaction".into(),
            ));
        };
        let key = xid.key();
        let Some(rec) = self.xa.get(&key).cloned() else {
            if !commit {
                self.commit(after, commit_us, None)?;
                return Ok(XaOutcome::UnknownRolledBack);
            }
            let since_us = commit_us.map_or(open.commit_us, |c| c.max(self.ckpt.last_commit_us));
            self.taint(Taint {
                table: TableRef::new("*", "*"),
                reason: format!(
                    "XA COMMIT {xid} resolves a transaction prepared before capture began, so                      its rows are not in the log; targets after it cannot be restored exactly                      (start a new log with a baseline after it)"
                ),
                since_us,
            })?;
            self.commit(after, commit_us, None)?;
            return Ok(XaOutcome::UnknownCommitted);
        };
        if self.xa_unwritten.contains(&key) {
            // Its rows are still in the batch: write it so they can be read back.
            self.flush_with(false)?;
        }
        let xa_cf = self.log.cf(CF_XA)?;
        let start = keys::xa_row_key(rec.seq, 0);
        let end = keys::xa_row_key(rec.seq + 1, 0);
        let mut n = 0u64;
        if commit {
            let log = self.log;
            let mut ro = ReadOptions::default();
            ro.set_iterate_upper_bound(end.to_vec());
            let mut it = log.db.raw_iterator_cf_opt(xa_cf, ro);
            it.seek(start);
            while let Some(v) = it.value() {
                let (t, ev) = v
                    .split_first_chunk::<4>()
                    .ok_or_else(|| log.corrupt("prepared XA row shorter than 4 bytes"))?;
                let ev: StoredEvent =
                    codec::decode("prepared XA row", ev).map_err(|e| log.corrupt(e.to_string()))?;
                self.add(u32::from_be_bytes(*t), ev.schema_version, ev.change)?;
                n += 1;
                it.next();
            }
            it.status()
                .map_err(log.rocks("reading a prepared XA transaction"))?;
            if n != rec.rows {
                return Err(log.corrupt(format!(
                    "prepared XA transaction {xid} has {n} stored rows, its record says {}",
                    rec.rows
                )));
            }
        }
        self.batch.delete_range_cf(xa_cf, start, end);
        self.batch.delete_cf(xa_cf, keys::xa_record_key(xid));
        self.xa.remove(&key);
        self.commit(after, commit_us, None)?;
        Ok(if commit {
            XaOutcome::Committed(n)
        } else {
            XaOutcome::RolledBack
        })
    }

    /// Abandons the open transaction (rolled back, or the stream broke mid-transaction).
    pub fn rollback(&mut self) -> Result<(), StorageError> {
        if let Some(txn) = self.txn.take()
            && txn.spilled
        {
            let events = self.log.cf(CF_EVENTS)?;
            for t in &txn.tables {
                self.batch.delete_range_cf(
                    events,
                    keys::event_key(*t, txn.commit_us, txn.first_event_id),
                    keys::event_key(*t, txn.commit_us, u64::MAX),
                );
            }
            self.batch.delete_cf(self.log.cf(CF_META)?, b"pending");
        }
        Ok(())
    }

    /// Moves the resume position without a transaction (e.g. to a new file after a rotate,
    /// or to a position where capture starts). Takes effect at the next flush.
    pub fn set_position(&mut self, position: Position) {
        self.ckpt.position = position;
    }

    /// Records a gap (takes effect at the next flush).
    pub fn record_gap(&mut self, gap: Gap) -> Result<(), StorageError> {
        let mut k = b"gap/".to_vec();
        k.extend_from_slice(&self.gap_seq.to_be_bytes());
        self.gap_seq += 1;
        self.batch
            .put_cf(self.log.cf(CF_META)?, k, codec::encode(&gap));
        Ok(())
    }

    /// Records what the server says about how it logs (takes effect at the next flush): the
    /// facts hold for every event from the next one on, until the next record. Nothing is
    /// written when they equal the facts already in force.
    pub fn record_facts(&mut self, facts: ServerFacts) -> Result<(), StorageError> {
        if self.facts.as_ref() == Some(&facts) {
            return Ok(());
        }
        let mut k = b"facts/".to_vec();
        k.extend_from_slice(&self.ckpt.next_event_id.to_be_bytes());
        self.batch
            .put_cf(self.log.cf(CF_META)?, k, codec::encode(&facts));
        self.facts = Some(facts);
        Ok(())
    }

    /// Marks a table tainted (takes effect at the next flush). The first reason is kept.
    pub fn taint(&mut self, taint: Taint) -> Result<(), StorageError> {
        let mut k = b"taint/".to_vec();
        k.extend_from_slice(taint.table.db.as_bytes());
        k.push(0);
        k.extend_from_slice(taint.table.table.as_bytes());
        if self
            .log
            .db
            .get_cf(self.log.cf(CF_META)?, &k)
            .map_err(self.log.rocks("reading taints"))?
            .is_some()
        {
            return Ok(());
        }
        self.batch
            .put_cf(self.log.cf(CF_META)?, k, codec::encode(&taint));
        Ok(())
    }

    /// Writes the batch and the checkpoint atomically, fsynced. A no-op when nothing changed.
    pub fn flush(&mut self) -> Result<bool, StorageError> {
        self.flush_with(true)
    }

    /// Writes the batch and the checkpoint atomically; `sync` also fsyncs the WAL.
    ///
    /// Without fsync the write survives a crash of the process (kill -9) but maybe not of the
    /// machine. That loses nothing either: events and checkpoint share the WAL, whose recovery
    /// keeps a prefix of the writes, so after a power loss the checkpoint is at most as new as
    /// the events and capture re-reads the rest from the source. The daemon fsyncs at least
    /// once per flush interval to bound that re-read.
    pub fn flush_with(&mut self, sync: bool) -> Result<bool, StorageError> {
        let durable_same = self.batch.is_empty()
            && self.durable_horizon == self.ckpt.next_event_id
            && self.log.checkpoint()?.as_ref() == Some(&self.ckpt);
        if durable_same {
            return Ok(false);
        }
        let mut batch = std::mem::take(&mut self.batch);
        batch.put_cf(
            self.log.cf(CF_META)?,
            b"checkpoint",
            codec::encode(&self.ckpt),
        );
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.log
            .db
            .write_opt(batch, &wo)
            .map_err(self.log.rocks("writing a batch of transactions"))?;
        self.durable_horizon = self.ckpt.next_event_id;
        self.batch_events = 0;
        self.xa_unwritten.clear();
        self.unsynced = !sync;
        Ok(true)
    }
}
