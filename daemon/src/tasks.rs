//! One source's set of tasks, and their wiring: [`SourceTasks::open`] makes the source's
//! handle (log, baseline store, status) and its backup and restore job queues;
//! [`SourceTasks::spawn`] starts its long-running tasks: capture, the check of the baseline
//! store against the catalog, and the backup schedule. Backups and restores asked for through
//! the API run as jobs of the queues held here.
use crate::backup::{self, Backups};
use crate::capture;
use crate::config::{Config, SourceConfig};
use crate::metrics::Metrics;
use crate::pitr::Restores;
use crate::source::Source;
use crate::store::BaselineStore;
use anyhow::Context;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A configured source with its job queues.
#[derive(Clone)]
pub struct SourceTasks {
    /// The handle every task of the source shares.
    pub source: Arc<Source>,
    /// Its backup jobs.
    pub backups: Arc<Backups>,
    /// Its restore jobs.
    pub restores: Arc<Restores>,
    /// Its verifications.
    pub verifications: Arc<crate::verify::Verifications>,
}

impl SourceTasks {
    /// Opens source `sc` of `cfg`: its log under `<data_dir>/sources/<name>/log`, its baseline
    /// store, and its restore records; removes the temporaries of backups a previous process
    /// did not finish.
    pub fn open(cfg: &Config, sc: &SourceConfig, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let dir = cfg.data_dir.join("sources").join(&sc.name).join("log");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = dbtrail_storage::Log::open(&dir)
            .with_context(|| format!("opening the log of source {}", sc.name))?;
        let store = BaselineStore::open(cfg, sc)?;
        let tmp = cfg.data_dir.join("sources").join(&sc.name).join("tmp");
        // Temporaries of backups that a previous process did not finish.
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
        }
        let verifications = crate::verify::Verifications::open(
            cfg.data_dir
                .join("sources")
                .join(&sc.name)
                .join("verify.json"),
        )?;
        restore_verify_metrics(&metrics, &sc.name, &verifications);
        Ok(SourceTasks {
            verifications: Arc::new(verifications),
            source: Arc::new(Source::new(sc.clone(), Arc::new(log), store, metrics)),
            backups: Arc::new(Backups::new(tmp.clone())),
            restores: Arc::new(Restores::open(
                cfg.data_dir.join("sources").join(&sc.name).join("pitr"),
                tmp,
                cfg.data_dir.join("restores").join(&sc.name),
            )?),
        })
    }

    /// Starts capture, the store check, the backup schedule and the table images after DDL on
    /// `tracker`, until `cancel`.
    pub fn spawn(&self, tracker: &TaskTracker, cancel: &CancellationToken) {
        tracker.spawn(capture::run(self.source.clone(), cancel.clone()));
        let (s2, c2) = (self.source.clone(), cancel.clone());
        let started_us = crate::util::now_us();
        tracker.spawn(async move {
            tokio::select! {
                r = backup::reconcile(&s2, started_us) => if let Err(e) = r {
                    tracing::warn!(source = %s2.config.name, error = %format!("{e:#}"),
                        "checking the baseline store against the catalog");
                },
                () = c2.cancelled() => {}
            }
        });
        tracker.spawn(backup::schedule(
            self.source.clone(),
            self.backups.clone(),
            cancel.clone(),
        ));
        tracker.spawn(crate::images::run(
            self.source.clone(),
            self.backups.clone(),
            cancel.clone(),
        ));
        tracker.spawn(crate::verify::schedule(
            self.source.clone(),
            self.backups.clone(),
            self.verifications.clone(),
            cancel.clone(),
        ));
    }
}

/// The verification metrics as the recorded runs left them (they survive a restart).
fn restore_verify_metrics(metrics: &Metrics, name: &str, v: &crate::verify::Verifications) {
    use dbtrail_core::api::VerifyOutcome;
    let labels = Metrics::source(name);
    let runs = v.list();
    let ended = |r: &&dbtrail_core::api::VerifyRun| {
        r.finished_at
            .as_deref()
            .and_then(|t| dbtrail_core::time::parse_time(t).ok())
            .map(|t| t.micros / 1_000_000)
    };
    if let Some(t) = runs
        .iter()
        .rev()
        .filter(|r| r.outcome == VerifyOutcome::Passed)
        .find_map(|r| ended(&r))
    {
        metrics.verify_last_success.get_or_create(&labels).set(t);
    }
    if let Some(r) = runs
        .iter()
        .rev()
        .find(|r| matches!(r.outcome, VerifyOutcome::Passed | VerifyOutcome::Mismatch))
    {
        let bad: u64 = r.results.iter().map(|t| t.mismatched_rows).sum();
        metrics
            .verify_mismatched_rows
            .get_or_create(&labels)
            .set(bad as i64);
    }
}
