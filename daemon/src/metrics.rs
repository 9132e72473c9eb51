//! Prometheus metrics, served on `metrics_addr` (loopback only) at `/metrics`.
//! Names: `dbtrail_<subsystem>_<thing>_{total,seconds,bytes}`, labelled by `source`.
use dbtrail_core::baseline::BaselineManifest;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

type Labels = Vec<(String, String)>;

/// Every metric the daemon exports.
pub struct Metrics {
    registry: Registry,
    /// Row events made durable.
    pub events: Family<Labels, Counter>,
    /// Transactions made durable.
    pub transactions: Family<Labels, Counter>,
    /// Encoded bytes of row events written.
    pub bytes: Family<Labels, Counter>,
    /// Seconds from commit on the source to receipt.
    pub receive_lag: Family<Labels, Gauge<f64, AtomicU64>>,
    /// Seconds from commit on the source to durable in the log.
    pub durable_lag: Family<Labels, Gauge<f64, AtomicU64>>,
    /// Seconds since the checkpoint was last written.
    pub checkpoint_age: Family<Labels, Gauge<f64, AtomicU64>>,
    /// Latency of batch writes (seconds).
    pub batch_seconds: Family<Labels, Histogram>,
    /// Gaps recorded.
    pub gaps: Family<Labels, Gauge>,
    /// Tables with tainted coverage.
    pub tainted_tables: Family<Labels, Gauge>,
    /// XA transactions prepared on the source and not yet committed or rolled back (their
    /// rows are not in any restore until `XA COMMIT`).
    pub xa_prepared: Family<Labels, Gauge>,
    /// Definite decode errors (capture stopped).
    pub decode_errors: Family<Labels, Counter>,
    /// Reconnects after transient errors.
    pub reconnects: Family<Labels, Counter>,
    /// 1 when the source is streaming.
    pub up: Family<Labels, Gauge>,
    /// SST bytes of the event log.
    pub log_bytes: Family<Labels, Gauge>,
    /// Backups completed.
    pub backups: Family<Labels, Counter>,
    /// Backups failed.
    pub backup_failures: Family<Labels, Counter>,
    /// Finish time of the last successful backup (unix seconds).
    pub backup_last_success: Family<Labels, Gauge>,
    /// Duration of the last successful backup.
    pub backup_duration: Family<Labels, Gauge<f64, AtomicU64>>,
    /// Baselines in the catalog.
    pub baselines: Family<Labels, Gauge>,
    /// The source's binlog retention (`binlog_expire_logs_seconds`), 0 when it never expires
    /// (or does not say).
    pub binlog_retention: Family<Labels, Gauge>,
    /// Commit time of the newest durable transaction (unix seconds).
    pub last_commit: Family<Labels, Gauge<f64, AtomicU64>>,
    /// When capture last made a commit durable or found itself idle with everything durable
    /// (unix seconds).
    pub last_durable: Family<Labels, Gauge<f64, AtomicU64>>,
    /// When the last verification that found no difference ended (unix seconds).
    pub verify_last_success: Family<Labels, Gauge>,
    /// Rows that differed in the last verification that ended with a comparison.
    pub verify_mismatched_rows: Family<Labels, Gauge>,
    /// Verifications ended, by `outcome` (passed, mismatch, failed).
    pub verify_runs: Family<Labels, Counter>,
    /// The source's `verify_interval` in seconds (0: unset).
    pub verify_interval: Family<Labels, Gauge>,
    /// Seconds of restorable time that end where the log ends: from the oldest baseline a
    /// restore can start from without crossing a gap to the end of what the log covers.
    pub restore_window: Family<Labels, Gauge<f64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers everything.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("dbtrail");
        let events = Family::<Labels, Counter>::default();
        let transactions = Family::<Labels, Counter>::default();
        let bytes = Family::<Labels, Counter>::default();
        let receive_lag = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let durable_lag = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let checkpoint_age = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let batch_seconds = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let gaps = Family::<Labels, Gauge>::default();
        let tainted_tables = Family::<Labels, Gauge>::default();
        let xa_prepared = Family::<Labels, Gauge>::default();
        let decode_errors = Family::<Labels, Counter>::default();
        let reconnects = Family::<Labels, Counter>::default();
        let up = Family::<Labels, Gauge>::default();
        let log_bytes = Family::<Labels, Gauge>::default();
        registry.register("capture_events", "Row events made durable", events.clone());
        registry.register(
            "capture_transactions",
            "Transactions made durable",
            transactions.clone(),
        );
        registry.register_with_unit(
            "capture_event",
            "Encoded bytes of row events written",
            Unit::Bytes,
            bytes.clone(),
        );
        registry.register(
            "capture_receive_lag_seconds",
            "Seconds from commit on the source to receipt",
            receive_lag.clone(),
        );
        registry.register(
            "capture_durable_lag_seconds",
            "Seconds from commit on the source to durable in the log",
            durable_lag.clone(),
        );
        registry.register(
            "capture_checkpoint_age_seconds",
            "Seconds since the checkpoint was last written",
            checkpoint_age.clone(),
        );
        registry.register(
            "capture_batch_write_seconds",
            "Latency of atomic batch writes",
            batch_seconds.clone(),
        );
        registry.register("capture_gaps", "Gaps recorded in the log", gaps.clone());
        registry.register(
            "capture_tainted_tables",
            "Tables whose coverage is tainted",
            tainted_tables.clone(),
        );
        registry.register(
            "xa_prepared_transactions",
            "XA transactions prepared on the source and not yet resolved (excluded from restores)",
            xa_prepared.clone(),
        );
        registry.register(
            "capture_decode_errors",
            "Definite decode errors that stopped capture",
            decode_errors.clone(),
        );
        registry.register(
            "capture_reconnects",
            "Reconnects after transient errors",
            reconnects.clone(),
        );
        registry.register("capture_up", "1 while the source is streaming", up.clone());
        registry.register_with_unit(
            "log_sst",
            "SST bytes of the event log",
            Unit::Bytes,
            log_bytes.clone(),
        );
        let backups = Family::<Labels, Counter>::default();
        let backup_failures = Family::<Labels, Counter>::default();
        let backup_last_success = Family::<Labels, Gauge>::default();
        let backup_duration = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let baselines = Family::<Labels, Gauge>::default();
        registry.register("backup_success", "Backups completed", backups.clone());
        registry.register(
            "backup_failures",
            "Backups that failed",
            backup_failures.clone(),
        );
        registry.register(
            "backup_last_success_timestamp_seconds",
            "Finish time of the last successful backup (unix seconds)",
            backup_last_success.clone(),
        );
        registry.register(
            "backup_duration_seconds",
            "Duration of the last successful backup",
            backup_duration.clone(),
        );
        registry.register(
            "backup_baselines",
            "Baselines in the catalog",
            baselines.clone(),
        );
        let binlog_retention = Family::<Labels, Gauge>::default();
        let last_commit = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let last_durable = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let restore_window = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "source_binlog_retention_seconds",
            "Binlog retention of the source (binlog_expire_logs_seconds), 0 if it never expires",
            binlog_retention.clone(),
        );
        registry.register(
            "capture_last_commit_timestamp_seconds",
            "Commit time of the newest durable transaction (unix seconds)",
            last_commit.clone(),
        );
        registry.register(
            "capture_last_durable_timestamp_seconds",
            "When capture last made a commit durable or was idle with everything durable \
             (unix seconds)",
            last_durable.clone(),
        );
        registry.register(
            "restore_window_seconds",
            "Restorable seconds up to the end of the log, from the oldest baseline not before a gap",
            restore_window.clone(),
        );
        let verify_last_success = Family::<Labels, Gauge>::default();
        let verify_mismatched_rows = Family::<Labels, Gauge>::default();
        let verify_runs = Family::<Labels, Counter>::default();
        let verify_interval = Family::<Labels, Gauge>::default();
        registry.register(
            "verify_last_success_timestamp_seconds",
            "When the last verification that found no difference ended (unix seconds)",
            verify_last_success.clone(),
        );
        registry.register(
            "verify_mismatched_rows",
            "Rows that differed from the live tables in the last verification",
            verify_mismatched_rows.clone(),
        );
        registry.register(
            "verify_runs",
            "Verifications ended, by outcome",
            verify_runs.clone(),
        );
        registry.register(
            "verify_interval_seconds",
            "The source's verify_interval (0: only on request)",
            verify_interval.clone(),
        );
        Metrics {
            verify_last_success,
            verify_mismatched_rows,
            verify_runs,
            verify_interval,
            binlog_retention,
            last_commit,
            last_durable,
            restore_window,
            backups,
            backup_failures,
            backup_last_success,
            backup_duration,
            baselines,
            registry,
            events,
            transactions,
            bytes,
            receive_lag,
            durable_lag,
            checkpoint_age,
            batch_seconds,
            gaps,
            tainted_tables,
            xa_prepared,
            decode_errors,
            reconnects,
            up,
            log_bytes,
        }
    }

    /// The label set of one source.
    pub fn source(name: &str) -> Labels {
        vec![("source".to_string(), name.to_string())]
    }

    /// Text exposition format.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if encode(&mut s, &self.registry).is_err() {
            s.clear();
        }
        s
    }
}

/// How often [`CatalogGauges`] re-reads the baseline catalog.
const CATALOG_EVERY: Duration = Duration::from_secs(30);

/// The gauges that follow durable progress of one source's log: last commit, last durable,
/// and, from the baseline catalog and the gaps (read at most every [`CATALOG_EVERY`], never
/// per event), the restorable window, the baseline count and the last successful backup. The
/// catalog gauges are thereby also set after a restart, before any backup runs.
pub struct CatalogGauges {
    labels: Labels,
    read_at: Option<Instant>,
    /// Where the restorable window ending at the log's end starts (µs); None: nowhere.
    window_start_us: Option<i64>,
}

/// Where the restorable range that ends at the end of the log starts: the oldest baseline,
/// or, after a gap, the first baseline taken after it (the API's `coverage` ranges, last one).
fn window_start(baselines: &[BaselineManifest], gap_cuts: &[i64]) -> Option<i64> {
    let from = baselines.first()?.snapshot_us;
    match gap_cuts.iter().copied().filter(|c| *c >= from).max() {
        Some(cut) => baselines.iter().map(|b| b.snapshot_us).find(|s| *s > cut),
        None => Some(from),
    }
}

impl CatalogGauges {
    /// For the source with these labels.
    pub fn new(labels: Labels) -> CatalogGauges {
        CatalogGauges {
            labels,
            read_at: None,
            window_start_us: None,
        }
    }

    /// Capture made durable everything the source committed up to `covered_until_us` (the
    /// commit time of a transaction just made durable, or the wall clock of a heartbeat that
    /// found nothing pending); `last_commit_us` is the newest durable commit (0: none yet).
    pub fn durable(
        &mut self,
        metrics: &Metrics,
        log: &dbtrail_storage::Log,
        last_commit_us: i64,
        covered_until_us: i64,
    ) {
        let secs = |us: i64| us as f64 / 1e6;
        let l = &self.labels;
        metrics
            .last_durable
            .get_or_create(l)
            .set(secs(crate::util::now_us()));
        if last_commit_us > 0 {
            metrics
                .last_commit
                .get_or_create(l)
                .set(secs(last_commit_us));
        }
        if self.read_at.is_none_or(|t| t.elapsed() >= CATALOG_EVERY) {
            self.read_at = Some(Instant::now());
            let full = log.baselines().map(|b| {
                b.into_iter()
                    .filter(|b| b.origin.is_full())
                    .collect::<Vec<_>>()
            });
            match full.and_then(|b| Ok((b, log.gaps()?))) {
                Ok((b, gaps)) => {
                    let cuts: Vec<i64> = gaps.iter().map(|g| g.after_commit_us).collect();
                    self.window_start_us = window_start(&b, &cuts);
                    metrics.baselines.get_or_create(l).set(b.len() as i64);
                    if let Some(f) = b.iter().map(|m| m.finished_us).max() {
                        metrics
                            .backup_last_success
                            .get_or_create(l)
                            .set(f / 1_000_000);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading the baseline catalog for metrics"),
            }
        }
        if self.read_at.is_some() {
            let window = self
                .window_start_us
                .map_or(0.0, |s| secs(covered_until_us - s).max(0.0));
            metrics.restore_window.get_or_create(l).set(window);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbtrail_core::baseline::{BaselineOrigin, MANIFEST_VERSION};
    use dbtrail_core::{GtidSet, Position};

    fn manifest(id: &str, snapshot_us: i64) -> BaselineManifest {
        BaselineManifest {
            format_version: MANIFEST_VERSION,
            id: id.into(),
            source: "src".into(),
            origin: BaselineOrigin::Snapshot,
            position: Position {
                gtid_set: GtidSet::empty_mysql(),
                file: "binlog.000001".into(),
                pos: 4,
                server_uuid: "u".into(),
            },
            snapshot_us,
            started_us: snapshot_us,
            finished_us: snapshot_us + 2_000_000,
            lock_held_us: 0,
            lock_mode: String::new(),
            method: Default::default(),
            upper: None,
            tables: vec![],
            skipped: vec![],
            checksums: Default::default(),
        }
    }

    fn value(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{source=\"src\"}} ")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn alerting_series_are_exported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dbtrail_storage::Log::open(dir.path()).expect("log");
        let m = Metrics::new();
        let labels = Metrics::source("src");
        m.binlog_retention.get_or_create(&labels).set(604_800);
        let mut g = CatalogGauges::new(labels.clone());
        // No baseline yet: no window, no last backup.
        g.durable(&m, &log, 1_700_000_000_000_000, 1_700_000_000_000_000);
        let text = m.render();
        assert_eq!(
            value(&text, "dbtrail_source_binlog_retention_seconds"),
            Some(604_800.0)
        );
        assert_eq!(
            value(&text, "dbtrail_capture_last_commit_timestamp_seconds"),
            Some(1_700_000_000.0)
        );
        assert!(value(&text, "dbtrail_capture_last_durable_timestamp_seconds").unwrap() > 1.7e9);
        assert_eq!(value(&text, "dbtrail_backup_baselines"), Some(0.0));
        assert_eq!(value(&text, "dbtrail_restore_window_seconds"), Some(0.0));
        assert_eq!(
            value(&text, "dbtrail_backup_last_success_timestamp_seconds"),
            None
        );

        // Two baselines; the catalog is re-read only every CATALOG_EVERY.
        log.put_baseline(&manifest("a", 1_699_990_000_000_000))
            .expect("put");
        log.put_baseline(&manifest("b", 1_699_999_000_000_000))
            .expect("put");
        g.durable(&m, &log, 1_700_000_000_000_000, 1_700_000_000_000_000);
        assert_eq!(
            value(&m.render(), "dbtrail_restore_window_seconds"),
            Some(0.0)
        );
        g.read_at = None;
        g.durable(&m, &log, 1_700_000_000_000_000, 1_700_000_100_000_000);
        let text = m.render();
        assert_eq!(value(&text, "dbtrail_backup_baselines"), Some(2.0));
        assert_eq!(
            value(&text, "dbtrail_backup_last_success_timestamp_seconds"),
            Some(1_699_999_002.0)
        );
        // From the oldest snapshot to the end of the coverage (an idle heartbeat).
        assert_eq!(
            value(&text, "dbtrail_restore_window_seconds"),
            Some(10_100.0)
        );
        // Cheap between catalog reads: only the end moves.
        g.durable(&m, &log, 1_700_000_200_000_000, 1_700_000_200_000_000);
        assert_eq!(
            value(&m.render(), "dbtrail_restore_window_seconds"),
            Some(10_200.0)
        );
    }

    #[test]
    fn the_window_starts_after_the_last_gap() {
        let b = [manifest("a", 100), manifest("b", 200), manifest("c", 300)];
        assert_eq!(window_start(&[], &[]), None);
        assert_eq!(window_start(&b, &[]), Some(100));
        // A gap before the oldest baseline does not matter.
        assert_eq!(window_start(&b, &[50]), Some(100));
        assert_eq!(window_start(&b, &[150]), Some(200));
        assert_eq!(window_start(&b, &[150, 250]), Some(300));
        assert_eq!(window_start(&b, &[200]), Some(300));
        // No baseline after the gap: nothing restorable up to the end of the log.
        assert_eq!(window_start(&b, &[350]), None);
    }
}
