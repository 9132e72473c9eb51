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
        Ok(SourceTasks {
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
    }
}
