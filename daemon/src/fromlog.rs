//! Baselines from the log (`dbtrailctl backup --from-log`, `backup_from_log_interval`): a
//! backup job that computes a new full baseline from the newest one and the log, reading
//! nothing from the source, and stores it like a snapshot (same Parquet files and metadata,
//! same manifest, recorded in the catalog), so restores, the planner and retention treat it
//! like any other full baseline. The engine and the argument why it is exact are in
//! `dbtrail_replay::fromlog`.
//!
//! Steps: (1) read the log's checkpoint once and plan a restore of every table to it
//! (refused, naming the table, when a table has no usable image, e.g. after a DDL without a
//! table image, across a gap, or when tainted: take a snapshot then); (2) fetch the images
//! the plan rebuilds from; (3) rebuild every table into one Parquet file each (in place in a
//! local store, else in a temporary directory, uploaded afterwards); (4) write the anchor's
//! views, triggers, routines and events as they are at the checkpoint, when they are known;
//! (5) upload the manifest and record it in the catalog.
use crate::source::Source;
use crate::util::{lock, now_us};
use anyhow::{Context, anyhow};
use dbtrail_core::TableRef;
use dbtrail_core::api::BackupJobView;
use dbtrail_core::baseline::{BaselineManifest, BaselineOrigin, MANIFEST_VERSION};
use dbtrail_replay::fromlog::{self, FromLogContext, LogPoint, ParquetOutput};
use dbtrail_replay::restore::Settings;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Rows per Parquet row group (as snapshots write them).
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Computes a baseline from the log as the backup job `job` (its id is the baseline's),
/// temporaries under `tmp_dir/<id>`.
pub async fn take(
    tmp_dir: &Path,
    source: &Source,
    job: &Arc<Mutex<BackupJobView>>,
) -> anyhow::Result<BaselineManifest> {
    let id = lock(job).id.clone();
    let started_us = now_us();
    let name = &source.config.name;
    lock(job).phase = "planning".into();
    let Some(ckpt) = source.log.checkpoint()? else {
        anyhow::bail!(
            "a baseline cannot be computed from the log: capture of source {name} has logged \
             nothing yet (see `dbtrailctl status`)"
        );
    };
    let point = LogPoint {
        position: ckpt.position.clone(),
        last_commit_us: ckpt.last_commit_us,
        next_event_id: ckpt.next_event_id,
    };
    let ctx = FromLogContext {
        source_name: name.clone(),
        keys_in_memory: source.config.restore_keys_in_memory,
        databases: source.config.backup_databases.clone(),
    };
    let log = source.log.clone();
    let p2 = point.clone();
    let planned = tokio::task::spawn_blocking(move || fromlog::plan(&*log, &*log, &p2, &ctx))
        .await
        .context("the planning thread died")?
        .map_err(|r| anyhow!(r.0))?;
    let plan = &planned.plan;
    let anchor = plan.baseline.id.clone();
    tracing::info!(source = %name, backup = %id, anchor = %anchor, position = %point.position,
        tables = plan.tables.len(), transactions = plan.view.transactions,
        "computing a baseline from the log");
    {
        let mut j = lock(job);
        j.phase = "fetching images".into();
        j.tables_total = plan.tables.len() as u64;
    }
    let tmp = tmp_dir.join(&id);
    tokio::fs::create_dir_all(&tmp)
        .await
        .with_context(|| format!("creating {}", tmp.display()))?;
    let inputs = crate::inputs::plan_inputs(source, plan, &tmp).await?;
    lock(job).phase = "reconstructing".into();
    let store = &source.store;
    let out_dir = tmp.join("out");
    // A local store's files are written in place (invisible until the manifest); any
    // other store's in a temporary directory, uploaded afterwards.
    let target = {
        let (store, id, out) = (store.clone(), id.clone(), out_dir.clone());
        move |f: &str| store.local_target(&id, f).unwrap_or_else(|| out.join(f))
    };
    let metadata = fromlog::file_metadata(&point.position, planned.snapshot_us, &anchor);
    let settings = Settings {
        keys_in_memory: plan.keys_in_memory,
        chunk_bytes: 0,
        statement_bytes: 0,
        threads: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
    };
    let (log, job2, t2) = (source.log.clone(), job.clone(), target.clone());
    let tables = tokio::task::spawn_blocking(move || {
        let out = ParquetOutput::new(t2, metadata, ROW_GROUP_ROWS);
        let progress = JobProgress { job: &job2 };
        fromlog::compute(&*log, inputs, out, &settings, &progress)
    })
    .await
    .context("the reconstruction threads died")??;
    if store.local_target(&id, "").is_none() {
        lock(job).phase = "uploading".into();
        for t in &tables {
            let local = target(&t.file);
            store.upload(&id, &t.file, &local).await?;
            let _ = tokio::fs::remove_file(&local).await;
        }
    }
    lock(job).bytes = tables.iter().map(|t| t.bytes).sum();
    lock(job).phase = "manifest".into();
    let objects = objects_at_point(source, &planned.plan, &tables).await;
    let mut m = BaselineManifest {
        format_version: MANIFEST_VERSION,
        id,
        source: name.clone(),
        origin: BaselineOrigin::FromLog,
        position: point.position,
        snapshot_us: planned.snapshot_us,
        started_us,
        finished_us: now_us(),
        lock_held_us: 0,
        lock_mode: fromlog::lock_mode(&anchor),
        // Exact at its position whatever the anchor's method: the planner only rebuilds a
        // table where that is exact (a lock-free anchor's tables, after its upper).
        method: dbtrail_core::baseline::SnapshotMethod::NotApplicable,
        upper: None,
        tables,
        skipped: planned.skipped,
        checksums: Default::default(),
    };
    if let Some(objects) = &objects {
        store.put_objects(&m.id, objects).await?;
    }
    store.fill_checksums(&mut m).await?;
    store.put_manifest(&m).await?;
    source.log.put_baseline(&m)?;
    Ok(m)
}

/// The anchor's views, triggers, routines and events with the logged statements after it
/// applied, of the databases the baseline covers; None (logged) when the anchor recorded none
/// or a definition at the checkpoint is not known: the baseline then records none, like a
/// snapshot whose user could not read them.
async fn objects_at_point(
    source: &Source,
    plan: &dbtrail_replay::plan::Plan,
    tables: &[dbtrail_core::baseline::BaselineTable],
) -> Option<Vec<dbtrail_core::objects::SchemaObject>> {
    let name = &source.config.name;
    let anchor = &plan.baseline.id;
    let base = match source.store.objects(anchor).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            tracing::warn!(source = %name, anchor = %anchor, "the anchor baseline recorded no \
                views, triggers, routines or events; the baseline from the log records none");
            return None;
        }
        Err(e) => {
            tracing::warn!(source = %name, anchor = %anchor, error = %format!("{e:#}"),
                "reading the anchor's objects; the baseline from the log records none");
            return None;
        }
    };
    let at = dbtrail_replay::objects::objects_at_target(base, plan.ddls.iter().map(String::as_str))
        .and_then(|mut at| {
            let mut dbs: BTreeSet<String> = tables.iter().map(|t| t.table.db.clone()).collect();
            if let Some(want) = &source.config.backup_databases {
                dbs.extend(want.iter().cloned());
            } else {
                dbs.extend(plan.baseline.tables.iter().map(|t| t.table.db.clone()));
            }
            at.retain(|db, _| dbs.iter().any(|d| d.eq_ignore_ascii_case(db)));
            at.check()?;
            Ok(at.objects)
        });
    match at {
        Ok(o) => Some(o),
        Err(why) => {
            tracing::warn!(source = %name, anchor = %anchor, "{why}; the baseline from the log \
                records no views, triggers, routines or events");
            None
        }
    }
}

/// The job's progress, as the engine reports it.
struct JobProgress<'a> {
    job: &'a Arc<Mutex<BackupJobView>>,
}

impl dbtrail_replay::restore::Progress for JobProgress<'_> {
    fn table_done(&self, _: &TableRef) {
        lock(self.job).tables_done += 1;
    }

    fn rows(&self, n: u64) {
        lock(self.job).rows += n;
    }
}

/// Whether the newest full baseline already holds everything the log holds (nothing for a
/// scheduled baseline from the log to do).
pub fn up_to_date(source: &Source) -> bool {
    let (Ok(Some(ckpt)), Ok(all)) = (source.log.checkpoint(), source.log.baselines()) else {
        return false;
    };
    all.iter()
        .rev()
        .find(|b| b.origin.is_full())
        .is_some_and(|b| fromlog::covers(&b.position, &ckpt.position))
}
