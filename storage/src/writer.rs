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
use crate::log::{CF_CATALOG, CF_EVENTS, CF_GTIDS, CF_META, CF_TXNS, Pending};
use crate::{Checkpoint, Gap, Log, ServerFacts, StorageError, StoredEvent, Taint, TxnRecord, keys};
use dbtrail_core::codec;
use dbtrail_core::{Gtid, Position, RowChange, TableRef, TableSchema};
use rocksdb::{WriteBatch, WriteOptions};
use std::collections::{BTreeSet, HashMap};

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
        })
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
        let seq = self.ckpt.next_txn_seq;
        let rec = TxnRecord {
            gtid: txn.gtid.clone(),
            commit_us: txn.commit_us,
            first_event_id: txn.first_event_id,
            event_count: txn.count,
            tables: txn.tables.into_iter().collect(),
            end_file: after.file.clone(),
            end_pos: after.pos,
            ddl,
        };
        self.batch.put_cf(
            self.log.cf(CF_TXNS)?,
            seq.to_be_bytes(),
            codec::encode(&rec),
        );
        if let Some(g) = &txn.gtid {
            self.batch
                .put_cf(self.log.cf(CF_GTIDS)?, keys::gtid_key(g), seq.to_be_bytes());
        }
        self.batch_events += txn.count as usize;
        self.ckpt.position = after;
        self.ckpt.next_event_id = txn.first_event_id + txn.count;
        self.ckpt.next_txn_seq += 1;
        self.ckpt.last_commit_us = txn.commit_us;
        self.ckpt.txns_total += 1;
        Ok(())
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
        Ok(true)
    }
}
