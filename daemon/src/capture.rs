//! The capture task of one source: the replication stream (async, network) feeding the log
//! writer thread ([`writer`]: blocking, RocksDB) over a bounded channel.
//!
//! Resumption argument: the writer owns the checkpoint. When the stream breaks, the capture
//! task sends `Reset` and waits for the writer's reply: the position after the last
//! transaction the writer has accepted (flushed or about to be). Items are processed in order,
//! so that position is exactly where the new stream must begin; an open transaction is
//! rolled back by the writer and re-read in full.
//!
//! Each (re)connect goes to the source's server, or with several listed (`urls`) to their one
//! primary (dbtrail_binlog::failover), and resumes there by GTID set: a server that lacks any
//! captured transaction is refused with the missing set (definite), and a source of several
//! servers needs GTIDs (file:pos never crosses servers). A stream that broke after running
//! is retried at once (below), so a failover costs one short retry once the new primary is
//! writable.
//!
//! Reconnecting: a transient error is retried after a backoff that starts at
//! [`FIRST_RETRY`] and doubles up to [`MAX_RETRY`]. It starts again from [`FIRST_RETRY`]
//! after a connection that streamed (read at least one event or heartbeat): a cut connection
//! to a healthy server is retried at once, however many cuts came before, while a server that
//! refuses or drops every new connection before streaming is retried less and less often.
//! Without the reset, a long-running daemon would wait [`MAX_RETRY`] after every cut once a
//! few cuts had happened in its lifetime (issue 15, `daemon/tests/faults.rs`).
//!
//! Hangs: while streaming, a read that sees no event or heartbeat for three heartbeat periods
//! plus 2 s is a timeout (`Capture::next`). Before streaming, each exchange with the server
//! (the checks, the position and gap queries, the dump request) is bounded by
//! [`setup_limit`]: a server that stops answering during a reconnect (a frozen process
//! whose kernel still acknowledges, a partition without a reset) would otherwise keep capture
//! "reconnecting" without ever retrying. Waits for the writer are not bounded: a slow disk
//! is not a hung server.
pub mod writer;

use crate::metrics::Metrics;
use crate::source::Source;
use crate::util::lock;
use dbtrail_binlog::BinlogError;
use dbtrail_binlog::checks::{self, Flavor, ServerInfo};
use dbtrail_binlog::failover;
use dbtrail_binlog::stream::{self, Capture};
use dbtrail_core::api::SourceState;
use dbtrail_storage::ServerFacts;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use writer::{FlushPolicy, ToWriter};

/// The wait before the first reconnect after a connection that streamed.
pub const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest wait between two reconnects.
pub const MAX_RETRY: Duration = Duration::from_secs(30);

/// How long one exchange with the server before streaming may take: three times the
/// streaming silence limit (three heartbeat periods plus 2 s), as it makes a few round trips.
pub fn setup_limit(heartbeat: Duration) -> Duration {
    (heartbeat * 3 + Duration::from_secs(2)) * 3
}

/// `fut`, or a transient error naming `what` when it takes longer than `limit`.
async fn bounded<T>(
    limit: Duration,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, BinlogError>>,
) -> Result<T, BinlogError> {
    tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
        Err(BinlogError::Protocol {
            action: what.to_string(),
            detail: format!(
                "no answer within {}s (the server or the network hangs); reconnecting",
                limit.as_secs()
            ),
        })
    })
}

/// Runs capture for one source until `cancel`.
pub async fn run(source: Arc<Source>, cancel: CancellationToken) {
    let policy = FlushPolicy::of(&source.config);
    run_with(source, policy, cancel).await
}

/// [`run`] with the writer flushing by `policy` (the daemon's is [`FlushPolicy::of`] the
/// source's configuration; benches vary it).
pub async fn run_with(source: Arc<Source>, policy: FlushPolicy, cancel: CancellationToken) {
    let metrics = source.metrics.clone();
    let name = source.config.name.clone();
    let labels = Metrics::source(&name);
    let (tx, rx) = mpsc::channel::<ToWriter>(256);
    let writer = writer::spawn(&source, rx, policy);
    let writer = match writer {
        Ok(w) => w,
        Err(e) => {
            set_failed(&source, &format!("cannot start the writer thread: {e}"));
            return;
        }
    };
    let mut backoff = FIRST_RETRY;
    loop {
        if cancel.is_cancelled() {
            break;
        }
        let mut streamed = false;
        // A panic while decoding (in our code or the driver's) must not leave the source
        // looking healthy: it stops the source with the message, like any definite error.
        let guarded = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
            capture_once(&source, &tx, &metrics, &mut streamed),
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
        if streamed {
            backoff = FIRST_RETRY;
        }
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
            backoff = (backoff * 2).min(MAX_RETRY);
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

async fn capture_once(
    source: &Source,
    tx: &mpsc::Sender<ToWriter>,
    metrics: &Metrics,
    streamed: &mut bool,
) -> Result<(), BinlogError> {
    let labels = Metrics::source(&source.config.name);
    let specs = source.specs()?;
    let several = specs.len() > 1;
    let limit = setup_limit(specs[0].heartbeat);
    let (mut conn, spec) = bounded(limit, "finding the source's primary", source.connect()).await?;
    let info: ServerInfo = bounded(
        limit,
        "checking the server's settings",
        checks::check_server(&mut conn),
    )
    .await?;
    if several && info.flavor == Flavor::Mysql && !info.gtid_mode {
        return Err(BinlogError::Config(format!(
            "source {} lists several servers (urls) but {}:{} has gtid_mode=OFF: capture \
             resumes on another server only by GTID set, never by file:pos; fix: enable GTIDs \
             on every listed server (gtid_mode=ON, enforce_gtid_consistency=ON) or list one \
             server in url",
            source.config.name, spec.host, spec.port
        )));
    }
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
            // With GTIDs: never continue on a server that lacks what the log holds.
            failover::refuse_if_behind(&spec, &info, &p.gtid_set)?;
            if p.server_uuid != info.server_uuid && !info.gtid_mode {
                return Err(BinlogError::Config(format!(
                    "the source is now server {} but the log was captured from {} by binlog \
                     file:pos, which cannot be carried across servers; enable GTIDs or start \
                     a new data_dir",
                    info.server_uuid, p.server_uuid
                )));
            }
            if p.server_uuid != info.server_uuid {
                tracing::info!(source = %source.config.name, from = %p.server_uuid, to = %info.server_uuid, server = %format!("{}:{}", spec.host, spec.port), "capture moves to another server; resuming by GTID set");
            }
            p
        }
        None => {
            let p = bounded(
                limit,
                "reading the server's position",
                stream::current_position(&mut conn, &info),
            )
            .await?;
            tracing::info!(source = %source.config.name, position = %p, "new log: capture starts at the server's current position");
            tx.send(ToWriter::Init(p.clone()))
                .await
                .map_err(|_| writer_gone())?;
            p
        }
    };
    let (start, gap) = bounded(
        limit,
        "comparing the log with the server's binlogs",
        stream::plan_start(&mut conn, &info, &from, source.config.no_gap_fill),
    )
    .await?;
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
    let mut capture = bounded(
        limit,
        "requesting the binlog stream",
        Capture::start(conn, &info, &start, &spec),
    )
    .await?;
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
        *streamed = true;
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
