//! One source: a capture task (async, network) feeding a log writer thread (blocking,
//! RocksDB) over a bounded channel.
//!
//! Resumption argument: the writer owns the checkpoint. When the stream breaks, the capture
//! task sends `Reset` and waits for the writer's reply: the position after the last
//! transaction the writer has accepted (flushed or about to be). Items are processed in order,
//! so that position is exactly where the new stream must begin; an open transaction is
//! rolled back by the writer and re-read in full.
use crate::config::SourceConfig;
use crate::metrics::Metrics;
use dbtrail_binlog::BinlogError;
use dbtrail_binlog::checks::{self, ServerInfo};
use dbtrail_binlog::stream::{self, Capture, CaptureItem, GapFound, SourceSpec};
use dbtrail_core::api::{GapView, SourceState, SourceStatus, TaintView};
use dbtrail_core::render::rfc3339_micros;
use dbtrail_core::{Position, TableSchema};
use dbtrail_storage::{Gap, Log, ServerFacts, Taint, Writer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Status shared between the capture task, the writer and the API.
#[derive(Default)]
pub struct Shared {
    /// What capture is doing.
    pub state: Option<SourceState>,
    /// The last error.
    pub error: Option<String>,
    /// Warnings from the startup checks.
    pub warnings: Vec<String>,
    /// Durable position.
    pub position: Option<Position>,
    /// Commit time of the newest durable transaction.
    pub last_commit_us: Option<i64>,
    /// Lag at the last flush, seconds.
    pub lag_seconds: Option<f64>,
    /// When the checkpoint was last written.
    pub last_flush: Option<Instant>,
    /// Wall clock (µs) of the last heartbeat that found capture idle with everything durable:
    /// every transaction the source committed before it is in the log.
    pub idle_at_us: Option<i64>,
    /// Row events in the log.
    pub events_total: u64,
    /// Transactions in the log.
    pub transactions_total: u64,
}

/// A configured source and everything the API needs to see it.
pub struct Source {
    /// Its configuration.
    pub config: SourceConfig,
    /// Its log.
    pub log: Arc<Log>,
    /// Live status.
    pub shared: Arc<Mutex<Shared>>,
    /// Its baselines and backup jobs.
    pub backups: Arc<crate::backup::Backups>,
    /// Its restore jobs.
    pub restores: Arc<crate::pitr::Restores>,
}

/// Locks a mutex, also after a panic elsewhere (the data are plain status fields).
pub(crate) fn lock<T>(s: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// A recorded gap as the API shows it.
pub(crate) fn gap_view(g: Gap) -> GapView {
    GapView {
        missing: g.missing,
        recorded_at: rfc3339_micros(g.recorded_us),
        reason: g.reason,
    }
}

/// A tainted table as the API shows it.
pub(crate) fn taint_view(t: Taint) -> TaintView {
    TaintView {
        table: t.table.to_string(),
        reason: t.reason,
        since: rfc3339_micros(t.since_us),
    }
}

/// Wall clock, µs since the epoch.
pub(crate) fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl Source {
    /// Until when (µs) the log holds every transaction the source committed: the later of the
    /// last checkpoint minus the lag at that flush and the last idle heartbeat. None unless
    /// capture is streaming.
    pub fn covered_until_us(&self) -> Option<i64> {
        let s = lock(&self.shared);
        if s.state != Some(SourceState::Streaming) {
            return None;
        }
        let flushed = s.last_flush.map(|t| {
            let lag = s.lag_seconds.unwrap_or(0.0).max(0.0);
            now_us() - ((t.elapsed().as_secs_f64() + lag) * 1e6) as i64
        });
        flushed.max(s.idle_at_us)
    }

    /// Seconds since the checkpoint was last written by this process.
    pub fn checkpoint_age(&self) -> Option<f64> {
        lock(&self.shared)
            .last_flush
            .map(|t| t.elapsed().as_secs_f64())
    }

    /// The status document of this source.
    pub fn status(&self) -> anyhow::Result<SourceStatus> {
        let s = lock(&self.shared);
        let ckpt = self.log.checkpoint()?;
        let pos = s
            .position
            .clone()
            .or_else(|| ckpt.as_ref().map(|c| c.position.clone()));
        let gaps = self.log.gaps()?.into_iter().map(gap_view).collect();
        let tainted_tables = self.log.taints()?.into_iter().map(taint_view).collect();
        let last_commit = s
            .last_commit_us
            .or_else(|| ckpt.as_ref().map(|c| c.last_commit_us).filter(|c| *c > 0));
        Ok(SourceStatus {
            name: self.config.name.clone(),
            state: s.state.unwrap_or(SourceState::Starting),
            captured_gtid_set: pos
                .as_ref()
                .map(|p| p.gtid_set.to_string())
                .unwrap_or_default(),
            binlog_file: pos.as_ref().map(|p| p.file.clone()).unwrap_or_default(),
            binlog_pos: pos.as_ref().map(|p| p.pos).unwrap_or(0),
            server_uuid: pos
                .as_ref()
                .map(|p| p.server_uuid.clone())
                .unwrap_or_default(),
            last_commit_time: last_commit.map(rfc3339_micros),
            lag_seconds: s.lag_seconds,
            error: s.error.clone(),
            warnings: s.warnings.clone(),
            events_total: ckpt.as_ref().map(|c| c.next_event_id).unwrap_or(0),
            transactions_total: ckpt.as_ref().map(|c| c.txns_total).unwrap_or(0),
            tainted_tables,
            gaps,
        })
    }
}

enum ToWriter {
    Items(Vec<CaptureItem>),
    /// The stream broke: roll back and reply with the resume position (None: fresh log).
    Reset(oneshot::Sender<Option<Position>>),
    /// Start a fresh log at this position.
    Init(Position),
    Gap(GapFound),
    /// What the server said about how it logs, in force from the next event.
    Facts(ServerFacts),
}

/// Runs capture for one source until `cancel`.
pub async fn run(source: Arc<Source>, metrics: Arc<Metrics>, cancel: CancellationToken) {
    let name = source.config.name.clone();
    let labels = Metrics::source(&name);
    let (tx, rx) = mpsc::channel::<ToWriter>(256);
    let writer = {
        let log = source.log.clone();
        let shared = source.shared.clone();
        let metrics = metrics.clone();
        let flush_every = Duration::from_millis(source.config.flush_interval_ms.max(10));
        let name = name.clone();
        std::thread::Builder::new()
            .name(format!("writer-{name}"))
            .spawn(move || writer_thread(log, shared, metrics, name, rx, flush_every))
    };
    let writer = match writer {
        Ok(w) => w,
        Err(e) => {
            set_failed(&source, &format!("cannot start the writer thread: {e}"));
            return;
        }
    };
    let mut backoff = Duration::from_millis(500);
    loop {
        if cancel.is_cancelled() {
            break;
        }
        // A panic while decoding (in our code or the driver's) must not leave the source
        // looking healthy: it stops the source with the message, like any definite error.
        let guarded = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
            capture_once(&source, &tx, &metrics),
        ));
        let result = tokio::select! {
            r = guarded => r.unwrap_or_else(|panic| {
                let msg = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                Err(BinlogError::Decode {
                    what: "the replication stream".into(),
                    file: String::new(),
                    pos: 0,
                    detail: format!(
                        "internal error (panic: {msg}); this is a bug in dbtrail or its MySQL \
                         driver: report it with the daemon's log"
                    ),
                })
            }),
            () = cancel.cancelled() => break,
        };
        let err = match result {
            Ok(()) => break,
            Err(e) => e,
        };
        metrics.up.get_or_create(&labels).set(0);
        if err.is_transient() || matches!(err, BinlogError::Protocol { .. }) {
            metrics.reconnects.get_or_create(&labels).inc();
            tracing::warn!(source = %name, error = %err, retry_in = ?backoff, "capture interrupted; reconnecting");
            {
                let mut s = lock(&source.shared);
                s.state = Some(SourceState::Reconnecting);
                s.error = Some(err.to_string());
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {},
                () = cancel.cancelled() => break,
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
            continue;
        }
        if matches!(err, BinlogError::Decode { .. }) {
            metrics.decode_errors.get_or_create(&labels).inc();
        }
        tracing::error!(source = %name, error = %err, "capture stopped: definite error; fix the cause and restart dbtraild");
        set_failed(&source, &err.to_string());
        break;
    }
    // Make everything received durable, then let the writer exit.
    let (rtx, rrx) = oneshot::channel();
    if tx.send(ToWriter::Reset(rtx)).await.is_ok() {
        let _ = rrx.await;
    }
    drop(tx);
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    let mut s = lock(&source.shared);
    if s.state != Some(SourceState::Failed) {
        s.state = Some(SourceState::Stopped);
    }
}

fn set_failed(source: &Source, msg: &str) {
    let mut s = lock(&source.shared);
    s.state = Some(SourceState::Failed);
    s.error = Some(msg.to_string());
}

pub(crate) fn spec_of(source: &Source) -> Result<SourceSpec, BinlogError> {
    source
        .config
        .spec()
        .map_err(|e| BinlogError::Config(format!("{e:#}")))
}

async fn capture_once(
    source: &Source,
    tx: &mpsc::Sender<ToWriter>,
    metrics: &Metrics,
) -> Result<(), BinlogError> {
    let labels = Metrics::source(&source.config.name);
    let spec = spec_of(source)?;
    let mut conn = stream::connect(&spec).await?;
    let info: ServerInfo = checks::check_server(&mut conn).await?;
    let expire = i64::try_from(info.binlog_expire_seconds.unwrap_or(0)).unwrap_or(i64::MAX);
    metrics.binlog_retention.get_or_create(&labels).set(expire);
    for w in &info.warnings {
        tracing::warn!(source = %source.config.name, "{w}");
    }
    lock(&source.shared).warnings = info.warnings.clone();
    // Where the writer stands (after rolling back anything half-received).
    let (rtx, rrx) = oneshot::channel();
    tx.send(ToWriter::Reset(rtx))
        .await
        .map_err(|_| writer_gone())?;
    let resume = rrx.await.map_err(|_| writer_gone())?;
    let from = match resume {
        Some(p) => {
            if p.server_uuid != info.server_uuid && !info.gtid_mode {
                return Err(BinlogError::Config(format!(
                    "the source is now server {} but the log was captured from {} by binlog \
                     file:pos, which cannot be carried across servers; enable GTIDs or start \
                     a new data_dir",
                    info.server_uuid, p.server_uuid
                )));
            }
            p
        }
        None => {
            let p = stream::current_position(&mut conn, &info).await?;
            tracing::info!(source = %source.config.name, position = %p, "new log: capture starts at the server's current position");
            tx.send(ToWriter::Init(p.clone()))
                .await
                .map_err(|_| writer_gone())?;
            p
        }
    };
    let (start, gap) =
        stream::plan_start(&mut conn, &info, &from, source.config.no_gap_fill).await?;
    if let Some(g) = gap {
        tracing::warn!(source = %source.config.name, missing = %g.missing, "recording a gap: {}", g.reason);
        tx.send(ToWriter::Gap(g)).await.map_err(|_| writer_gone())?;
    }
    // Before any event of this connection: restores need to know whether the server logs
    // foreign-key cascades (dbtrail_replay::cascade).
    tx.send(ToWriter::Facts(ServerFacts {
        version: info.version.clone(),
        fk_cascades_logged: info.fk_cascades_logged,
    }))
    .await
    .map_err(|_| writer_gone())?;
    let mut capture = Capture::start(conn, &info, &start, &spec).await?;
    {
        let mut s = lock(&source.shared);
        s.state = Some(SourceState::Streaming);
        s.error = None;
    }
    metrics.up.get_or_create(&labels).set(1);
    tracing::info!(source = %source.config.name, from = %start, "streaming");
    let mut items = Vec::with_capacity(64);
    let retention = info.binlog_expire_seconds;
    let mut warned_retention = false;
    loop {
        capture.next(&mut items).await?;
        if let (Some(limit), false) = (retention, warned_retention) {
            let lag = lock(&source.shared).lag_seconds.unwrap_or(0.0);
            if lag > 0.8 * limit as f64 {
                warned_retention = true;
                let msg = format!(
                    "capture lag {lag:.0}s is above 80% of the source's binlog retention \
                     (binlog_expire_logs_seconds={limit}); binlogs may be purged before they are \
                     read: raise the retention or fix what slows capture"
                );
                tracing::warn!(source = %source.config.name, "{msg}");
                lock(&source.shared).warnings.push(msg);
            }
        }
        if !items.is_empty() {
            tx.send(ToWriter::Items(std::mem::take(&mut items)))
                .await
                .map_err(|_| writer_gone())?;
        }
    }
}

fn writer_gone() -> BinlogError {
    BinlogError::Purged("the log writer stopped (see the error logged before this)".into())
}

fn writer_thread(
    log: Arc<Log>,
    shared: Arc<Mutex<Shared>>,
    metrics: Arc<Metrics>,
    name: String,
    mut rx: mpsc::Receiver<ToWriter>,
    flush_every: Duration,
) {
    let labels = Metrics::source(&name);
    let mut catalog = crate::metrics::CatalogGauges::new(labels.clone());
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
                if first_unflushed.is_none() && (w.batch_events() > 0 || pending_commit.is_some()) {
                    first_unflushed = Some(Instant::now());
                }
                if w.batch_events() >= 1000 {
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
            let c = w.checkpoint().last_commit_us;
            metrics
                .receive_lag
                .get_or_create(labels)
                .set(((now_us() - c) as f64 / 1e6).max(0.0));
            metrics.transactions.get_or_create(labels).inc();
            *pending_commit = Some(c);
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
    }
    Ok(())
}
