//! Prometheus metrics, served on `metrics_addr` (loopback only) at `/metrics`.
//! Names: `dbtrail_<subsystem>_<thing>_{total,seconds,bytes}`, labelled by `source`.
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

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
        Metrics {
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
