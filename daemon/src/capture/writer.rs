//! The log writer of one source: a dedicated thread (blocking, RocksDB) that applies the
//! capture task's items to the log's [`Writer`] and owns the checkpoint.
//!
//! A batch is written once it holds [`FlushPolicy::batch_events`] row events (without fsync),
//! or [`FlushPolicy::interval`] after its first unflushed commit (with fsync, which also makes
//! every earlier unsynced batch durable).
use crate::config::SourceConfig;
use crate::metrics::{CatalogGauges, Metrics};
use crate::source::{Shared, Source};
use crate::util::{lock, now_us};
use dbtrail_binlog::stream::{CaptureItem, GapFound};
use dbtrail_core::api::SourceState;
use dbtrail_core::{Position, TableSchema};
use dbtrail_storage::{Gap, Log, ServerFacts, Taint, Writer, XaOutcome};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Row events after which a batch is written (without fsync).
pub const BATCH_EVENTS: usize = 1000;

/// When the writer writes a batch.
#[derive(Clone, Copy, Debug)]
pub struct FlushPolicy {
    /// Write at most this long after a commit, and fsync at least this often.
    pub interval: Duration,
    /// Write (without fsync) once the batch holds this many row events.
    pub batch_events: usize,
}

impl FlushPolicy {
    /// The policy of a configured source: `flush_interval_ms` (at least 10 ms) and
    /// [`BATCH_EVENTS`].
    pub fn of(config: &SourceConfig) -> FlushPolicy {
        FlushPolicy {
            interval: Duration::from_millis(config.flush_interval_ms.max(10)),
            batch_events: BATCH_EVENTS,
        }
    }
}

/// What the capture task sends the writer.
pub(crate) enum ToWriter {
    Items(Vec<CaptureItem>),
    /// The stream broke: roll back and reply with the resume position (None: fresh log).
    Reset(oneshot::Sender<Option<Position>>),
    /// Start a fresh log at this position.
    Init(Position),
    Gap(GapFound),
    /// What the server said about how it logs, in force from the next event.
    Facts(ServerFacts),
}

/// Starts the writer thread of `source`, reading `rx` until it closes.
pub(crate) fn spawn(
    source: &Source,
    rx: mpsc::Receiver<ToWriter>,
    policy: FlushPolicy,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let log = source.log.clone();
    let shared = source.shared.clone();
    let metrics = source.metrics.clone();
    let name = source.config.name.clone();
    std::thread::Builder::new()
        .name(format!("writer-{name}"))
        .spawn(move || writer_thread(log, shared, metrics, name, rx, policy))
}

fn writer_thread(
    log: Arc<Log>,
    shared: Arc<Mutex<Shared>>,
    metrics: Arc<Metrics>,
    name: String,
    mut rx: mpsc::Receiver<ToWriter>,
    policy: FlushPolicy,
) {
    let flush_every = policy.interval;
    let labels = Metrics::source(&name);
    let mut catalog = CatalogGauges::new(labels.clone());
    let fail = |msg: String| {
        tracing::error!(source = %name, "{msg}");
        let mut s = lock(&shared);
        s.state = Some(SourceState::Failed);
        s.error = Some(msg);
    };
    // The writer needs an initial position; a new log gets one from the capture task.
    let mut writer: Option<Writer<'_>> = match log.checkpoint() {
        Ok(Some(c)) => match Writer::open(&log, c.position) {
            Ok(w) => Some(w),
            Err(e) => return fail(format!("opening the log: {e}")),
        },
        Ok(None) => None,
        Err(e) => return fail(format!("reading the checkpoint: {e}")),
    };
    let mut ids: HashMap<*const TableSchema, (Arc<TableSchema>, u32, u32)> = HashMap::new();
    let mut first_unflushed: Option<Instant> = None;
    // Written without fsync since this instant (size-triggered flushes).
    let mut unsynced_since: Option<Instant> = None;
    let mut last_flushed_commit: Option<i64> = None;
    let mut pending_commit: Option<i64> = None;
    let mut bytes = 0u64;
    loop {
        let timeout = match first_unflushed.into_iter().chain(unsynced_since).min() {
            Some(t) => flush_every.saturating_sub(t.elapsed()),
            None => Duration::from_secs(3600),
        };
        let msg = rx.blocking_recv_timeout(timeout);
        let Some(w) = writer.as_mut() else {
            match msg {
                Recv::Msg(ToWriter::Init(p)) => match Writer::open(&log, p) {
                    Ok(mut w) => {
                        if let Err(e) = w.flush() {
                            return fail(format!("writing the first checkpoint: {e}"));
                        }
                        writer = Some(w);
                    }
                    Err(e) => return fail(format!("opening the log: {e}")),
                },
                Recv::Msg(ToWriter::Reset(reply)) => {
                    let _ = reply.send(None);
                }
                Recv::Msg(_) => {
                    return fail("internal error: items before the log was initialised".into());
                }
                Recv::Timeout => {}
                Recv::Closed => return,
            }
            continue;
        };
        let mut do_flush = false;
        // Size-triggered flushes skip the fsync (see Writer::flush_with); the time-triggered
        // one, at most a flush interval later, makes everything durable.
        let mut sync = true;
        match msg {
            Recv::Closed => {
                let _ = w.rollback();
                do_flush = true;
            }
            Recv::Timeout => do_flush = true,
            Recv::Msg(ToWriter::Init(_)) => {}
            Recv::Msg(ToWriter::Gap(g)) => {
                let gap = Gap {
                    missing: g.missing,
                    recorded_us: now_us(),
                    after_commit_us: w.checkpoint().last_commit_us,
                    reason: g.reason,
                };
                if let Err(e) = w.record_gap(gap) {
                    return fail(format!("recording a gap: {e}"));
                }
                do_flush = true;
            }
            Recv::Msg(ToWriter::Facts(f)) => {
                if let Err(e) = w.record_facts(f) {
                    return fail(format!("recording the server facts: {e}"));
                }
                do_flush = true;
            }
            Recv::Msg(ToWriter::Reset(reply)) => {
                if let Err(e) = w.rollback().and_then(|_| w.flush().map(|_| ())) {
                    return fail(format!("writing the log: {e}"));
                }
                if let Some(c) = pending_commit.take() {
                    last_flushed_commit = Some(c);
                }
                first_unflushed = None;
                let _ = reply.send(Some(w.checkpoint().position.clone()));
            }
            Recv::Msg(ToWriter::Items(items)) => {
                let idle_beat = items
                    .iter()
                    .any(|i| matches!(i, CaptureItem::Heartbeat { .. }));
                for item in items {
                    if let Err(e) = apply(
                        w,
                        &mut ids,
                        item,
                        &metrics,
                        &labels,
                        &mut bytes,
                        &mut pending_commit,
                    ) {
                        return fail(format!("writing the log: {e}"));
                    }
                }
                if w.take_unsynced() && unsynced_since.is_none() {
                    // The writer wrote a batch on its own (a spill, an XA resolution).
                    unsynced_since = Some(Instant::now());
                }
                metrics
                    .xa_prepared
                    .get_or_create(&labels)
                    .set(w.xa_prepared().count() as i64);
                if first_unflushed.is_none() && (w.batch_events() > 0 || pending_commit.is_some()) {
                    first_unflushed = Some(Instant::now());
                }
                if w.batch_events() >= policy.batch_events {
                    do_flush = true;
                    sync = false;
                }
                if idle_beat && !w.in_transaction() && pending_commit.is_none() {
                    // Caught up and idle: nothing is waiting to become durable.
                    let mut s = lock(&shared);
                    s.lag_seconds = Some(0.0);
                    s.idle_at_us = Some(now_us());
                    drop(s);
                    metrics.durable_lag.get_or_create(&labels).set(0.0);
                    let last = w.checkpoint().last_commit_us;
                    catalog.durable(&metrics, &log, last, now_us());
                }
            }
        }
        if do_flush {
            let started = Instant::now();
            let events_before = w.batch_events() as u64;
            match w.flush_with(sync) {
                Ok(wrote) => {
                    if wrote {
                        metrics
                            .batch_seconds
                            .get_or_create(&labels)
                            .observe(started.elapsed().as_secs_f64());
                        metrics.events.get_or_create(&labels).inc_by(events_before);
                        metrics.bytes.get_or_create(&labels).inc_by(bytes);
                        bytes = 0;
                    }
                }
                Err(e) => return fail(format!("writing the log: {e}")),
            }
            if sync {
                if unsynced_since.take().is_some()
                    && let Err(e) = log.sync_wal()
                {
                    return fail(format!("syncing the log: {e}"));
                }
            } else if unsynced_since.is_none() {
                unsynced_since = Some(Instant::now());
            }
            if let Some(c) = pending_commit.take() {
                last_flushed_commit = Some(c);
                let lag = ((now_us() - c) as f64 / 1e6).max(0.0);
                metrics.durable_lag.get_or_create(&labels).set(lag);
                let mut s = lock(&shared);
                s.lag_seconds = Some(lag);
                drop(s);
                catalog.durable(&metrics, &log, c, c);
            }
            first_unflushed = None;
            let ck = w.checkpoint();
            let mut s = lock(&shared);
            s.position = Some(ck.position.clone());
            s.last_commit_us = last_flushed_commit;
            s.last_flush = Some(Instant::now());
            s.transactions_total = ck.txns_total;
            s.events_total = ck.next_event_id;
            metrics
                .log_bytes
                .get_or_create(&labels)
                .set(log.events_disk_bytes() as i64);
            if let (Ok(g), Ok(t)) = (log.gaps(), log.taints()) {
                metrics.gaps.get_or_create(&labels).set(g.len() as i64);
                metrics
                    .tainted_tables
                    .get_or_create(&labels)
                    .set(t.len() as i64);
            }
            metrics.checkpoint_age.get_or_create(&labels).set(0.0);
        }
        if rx.is_closed() && rx.is_empty() && first_unflushed.is_none() {
            return;
        }
    }
}

enum Recv {
    Msg(ToWriter),
    Timeout,
    Closed,
}

trait RecvTimeout {
    fn blocking_recv_timeout(&mut self, d: Duration) -> Recv;
}

impl RecvTimeout for mpsc::Receiver<ToWriter> {
    fn blocking_recv_timeout(&mut self, d: Duration) -> Recv {
        let deadline = Instant::now() + d;
        loop {
            match self.try_recv() {
                Ok(m) => return Recv::Msg(m),
                Err(mpsc::error::TryRecvError::Disconnected) => return Recv::Closed,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Recv::Timeout;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(2)));
        }
    }
}

fn apply(
    w: &mut Writer<'_>,
    ids: &mut HashMap<*const TableSchema, (Arc<TableSchema>, u32, u32)>,
    item: CaptureItem,
    metrics: &Metrics,
    labels: &Vec<(String, String)>,
    bytes: &mut u64,
    pending_commit: &mut Option<i64>,
) -> Result<(), dbtrail_storage::StorageError> {
    match item {
        CaptureItem::Begin { gtid, commit_us } => w.begin(gtid, commit_us),
        CaptureItem::Row { schema, change } => {
            let key = Arc::as_ptr(&schema);
            let (id, version) = match ids.get(&key) {
                Some((_, id, v)) => (*id, *v),
                None => {
                    let (id, v) = w.ensure_schema((*schema).clone())?;
                    ids.insert(key, (schema.clone(), id, v));
                    (id, v)
                }
            };
            *bytes += w.add(id, version, change)? as u64;
        }
        CaptureItem::Commit {
            position,
            commit_us,
            ddl,
        } => {
            if ddl.is_some() {
                // A schema change: later table maps are compared afresh.
                ids.clear();
            }
            w.commit(position, commit_us, ddl)?;
            committed(w, metrics, labels, pending_commit);
        }
        CaptureItem::Rollback => w.rollback()?,
        CaptureItem::Taint { table, reason } => {
            w.taint(Taint {
                table,
                reason,
                since_us: w.checkpoint().last_commit_us,
            })?;
        }
        CaptureItem::Heartbeat { .. } => {
            if !w.in_transaction() {
                metrics.receive_lag.get_or_create(labels).set(0.0);
            }
        }
        // docs/correctness.md, C13: the rows wait for XA COMMIT.
        CaptureItem::XaPrepared {
            xid,
            position,
            commit_us,
        } => {
            tracing::debug!(%xid, "XA transaction prepared");
            w.xa_prepare(xid, position, commit_us)?;
            committed(w, metrics, labels, pending_commit);
        }
        CaptureItem::XaResolved {
            xid,
            commit,
            position,
            commit_us,
        } => {
            let outcome = w.xa_resolve(&xid, commit, position, commit_us)?;
            if outcome == XaOutcome::UnknownCommitted {
                tracing::warn!(%xid, "XA COMMIT of a transaction prepared before capture began: every table is tainted from here");
            } else {
                tracing::debug!(%xid, ?outcome, "XA transaction resolved");
            }
            committed(w, metrics, labels, pending_commit);
        }
    }
    Ok(())
}

/// Metrics and bookkeeping after a transaction ended in the writer.
fn committed(
    w: &Writer<'_>,
    metrics: &Metrics,
    labels: &Vec<(String, String)>,
    pending_commit: &mut Option<i64>,
) {
    let c = w.checkpoint().last_commit_us;
    metrics
        .receive_lag
        .get_or_create(labels)
        .set(((now_us() - c) as f64 / 1e6).max(0.0));
    metrics.transactions.get_or_create(labels).inc();
    *pending_commit = Some(c);
}
