//! The shared per-source handle: what every task of one source uses. Its configuration, its
//! log, its baseline store, the metrics, and the live capture state that capture writes and
//! the API and restores read (`covered_until_us`, the status document).
//!
//! This module knows no task: capture, backups, restores and the API depend on it, never the
//! other way round.
use crate::config::SourceConfig;
use crate::metrics::Metrics;
use crate::store::BaselineStore;
use crate::util::{lock, now_us};
use dbtrail_binlog::stream::SourceSpec;
use dbtrail_binlog::{BinlogError, Conn, failover};
use dbtrail_core::Position;
use dbtrail_core::api::{GapView, SourceState, SourceStatus, TaintView, XaView};
use dbtrail_core::render::rfc3339_micros;
use dbtrail_storage::{Gap, Log, Taint};
use std::sync::{Arc, Mutex};
use std::time::Instant;

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

/// A configured source and everything its tasks share.
pub struct Source {
    /// Its configuration.
    pub config: SourceConfig,
    /// Its log.
    pub log: Arc<Log>,
    /// Live status.
    pub shared: Arc<Mutex<Shared>>,
    /// Where its baselines live.
    pub store: BaselineStore,
    /// The daemon's metrics.
    pub metrics: Arc<Metrics>,
}

/// A recorded gap as the API shows it.
pub fn gap_view(g: Gap) -> GapView {
    GapView {
        missing: g.missing,
        recorded_at: rfc3339_micros(g.recorded_us),
        reason: g.reason,
    }
}

/// A tainted table as the API shows it.
pub fn taint_view(t: Taint) -> TaintView {
    TaintView {
        table: t.table.to_string(),
        reason: t.reason,
        since: rfc3339_micros(t.since_us),
    }
}

impl Source {
    /// A source with a fresh status (nothing captured by this process yet).
    pub fn new(
        config: SourceConfig,
        log: Arc<Log>,
        store: BaselineStore,
        metrics: Arc<Metrics>,
    ) -> Source {
        Source {
            config,
            log,
            shared: Arc::new(Mutex::new(Shared::default())),
            store,
            metrics,
        }
    }

    /// How to connect to each of this source's servers, in the configured order.
    pub fn specs(&self) -> Result<Vec<SourceSpec>, BinlogError> {
        self.config
            .specs()
            .map_err(|e| BinlogError::Config(format!("{e:#}")))
    }

    /// Connects to the server this source reads: its only one, or the primary among those
    /// listed in `urls` (dbtrail_binlog::failover). Returns the connection and how to reach
    /// that server again (for more connections to the same one).
    pub async fn connect(&self) -> Result<(Conn, SourceSpec), BinlogError> {
        let specs = self.specs()?;
        let (conn, i) = failover::connect_primary(&specs).await?;
        Ok((conn, specs[i].clone()))
    }

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
        let prepared = self.log.xa_prepared()?;
        let names: std::collections::HashMap<u32, String> = if prepared.is_empty() {
            Default::default()
        } else {
            self.log
                .tables()?
                .into_iter()
                .map(|(id, t)| (id, t.to_string()))
                .collect()
        };
        let prepared_xa = prepared
            .into_iter()
            .map(|r| XaView {
                xid: r.xid.to_string(),
                prepared_at: rfc3339_micros(r.prepared_us),
                prepare_gtid: r.gtid.map(|g| g.to_string()),
                tables: r
                    .tables
                    .iter()
                    .map(|id| names.get(id).cloned().unwrap_or_else(|| format!("#{id}")))
                    .collect(),
                rows: r.rows,
            })
            .collect();
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
            prepared_xa,
        })
    }
}
