//! Backups: consistent snapshots of a source into Parquet baselines, on request or on a
//! schedule, with retention.
//!
//! A backup (1) waits until capture has a position, so the log covers everything after the
//! snapshot; (2) opens `backup_connections` connections (and a spare) and takes the
//! snapshot with the `baseline_lock` method (`binlog::start::baseline_start`: one
//! consistent-snapshot transaction per connection, the GTID set and binlog position they
//! hold, exact or bounded by `upper` without a lock, the table list); without a lock, once
//! capture reaches `upper`, the key-less tables written in between are left out and imaged
//! again (`crate::interval`);
//! (3) reads tables in parallel, one per connection, in primary-key order, each streamed
//! through a bounded channel into a Parquet writer on a blocking thread, to a local
//! temporary file that is then uploaded in parts; (4) uploads the manifest, which makes
//! the baseline exist, and records it in the catalog; (5) applies retention.
//!
//! Key ranges: a table with more estimated rows (`information_schema.TABLES.TABLE_ROWS`)
//! than `backup_split_rows` and a primary key led by an integer column is read as several
//! ranges of that column (`snapshot::key_ranges`: even steps between its `MIN` and `MAX`,
//! read inside the snapshot; `< b1`, `[b1, b2)`, ..., `>= bn`), so one large table keeps
//! every connection busy. The reads are one queue of work items, a whole table or one
//! range, over the connections; each range has its own channel, writer thread and file
//! (`part_file_name`), listed in key order in the table's `parts`. Each range is exact at
//! the baseline's position: with a lock (or one MariaDB snapshot position) every
//! connection's snapshot holds the same transactions, so any connection sees the same rows of
//! the table, and the ranges partition its keys (every row has exactly one value of the first
//! key column), so their union is the table at that position, each row once. Without a lock
//! the connections may differ inside `position .. upper`; only keyed tables are split, and
//! the lock-free rule holds per key (each key is read once, by one connection, at some point
//! inside the bounds), so ranges change nothing there. Memory stays bounded per
//! connection: one item at a time, `BATCHES_IN_FLIGHT` batches of `BATCH_ROWS`. A table
//! counts as done when all its ranges are; a DDL met by any range skips the whole table.
//!
//! A backup that fails or is killed leaves no manifest, so nothing in the catalog; its
//! objects are deleted on failure, or at the next start ([`reconcile`]).
use crate::metrics::Metrics;
use crate::source::Source;
use crate::store::BaselineStore;
use crate::util::{lock, now_us};
use anyhow::{Context, bail};
use dbtrail_binlog::start::LockChoice;
use dbtrail_binlog::{checks, snapshot, stream};
use dbtrail_core::api::{BackupJobView, JobStatus};
use dbtrail_core::baseline::{
    BaselineManifest, BaselineOrigin, BaselinePart, BaselineTable, MANIFEST_VERSION, SkippedTable,
    SnapshotMethod, baseline_id, part_file_name, table_file_name,
};
use dbtrail_core::render::rfc3339_micros;
use dbtrail_core::{Row, TableRef};
use dbtrail_replay::baseline::BaselineWriter;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Rows per Parquet row group (also bounded by bytes in the writer).
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Rows per batch between the reader and the Parquet writer, and batches in flight.
const BATCH_ROWS: usize = 1024;
const BATCHES_IN_FLIGHT: usize = 8;
/// Jobs remembered for the API.
const KEEP_JOBS: usize = 50;
/// How a skipped table's reason begins when it has no primary key and was changed while a
/// lock-free snapshot started (it is then imaged again, up to [`KEYLESS_TRIES`] times).
const KEYLESS_CHANGED: &str = "no primary key, and changed while the lock-free snapshot started (";
const KEYLESS_TRIES: u8 = 10;

/// One source's backup jobs of this process (baselines go to the source's store).
pub struct Backups {
    /// Temporary files of running backups.
    tmp_dir: PathBuf,
    /// Newest first.
    jobs: Mutex<VecDeque<Arc<Mutex<BackupJobView>>>>,
}

enum Work {
    Snapshot,
    Import(PathBuf),
    /// A table image of these tables (why, for the log; the how-many-th try of a lock-free
    /// image of key-less tables changed while it started, from 0).
    Image(Vec<TableRef>, String, u8),
    /// A baseline computed from the newest baseline and the log (`crate::fromlog`).
    FromLog,
}

/// Why a backup could not start.
pub enum StartError {
    /// One is running already (its id).
    Running(String),
}

impl Backups {
    /// Where backups keep their temporaries (removed at startup).
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp_dir
    }

    /// Backups of a source, temporaries under `tmp_dir`.
    pub fn new(tmp_dir: PathBuf) -> Backups {
        Backups {
            tmp_dir,
            jobs: Mutex::new(VecDeque::new()),
        }
    }

    /// Jobs of this process, newest first.
    pub fn jobs(&self) -> Vec<BackupJobView> {
        lock(&self.jobs).iter().map(|j| lock(j).clone()).collect()
    }

    /// One job by id.
    pub fn job(&self, id: &str) -> Option<BackupJobView> {
        lock(&self.jobs)
            .iter()
            .map(|j| lock(j).clone())
            .find(|j| j.id == id)
    }

    fn running(&self) -> Option<String> {
        lock(&self.jobs)
            .iter()
            .map(|j| lock(j).clone())
            .find(|j| j.status == JobStatus::Running && !j.phase.starts_with("image"))
            .map(|j| j.id)
    }

    /// Starts a backup of `source` in the background; returns its id and a handle that
    /// resolves when it ends.
    pub fn start(
        self: &Arc<Self>,
        source: Arc<Source>,
        cancel: CancellationToken,
    ) -> Result<(String, tokio::task::JoinHandle<()>), StartError> {
        self.start_job(source, cancel, Work::Snapshot)
    }

    /// Starts a table image of `tables` (a snapshot of those tables only, under `LOCK TABLES
    /// ... READ`, no global lock), e.g. after a DDL changed them or for a restore from the
    /// live tables. Images run beside backups.
    pub fn start_image(
        self: &Arc<Self>,
        source: Arc<Source>,
        cancel: CancellationToken,
        tables: Vec<TableRef>,
        why: String,
    ) -> Result<(String, tokio::task::JoinHandle<()>), StartError> {
        self.start_job(source, cancel, Work::Image(tables, why, 0))
    }

    /// Starts computing a baseline from the newest baseline and the log (nothing is read from
    /// the source).
    pub fn start_from_log(
        self: &Arc<Self>,
        source: Arc<Source>,
        cancel: CancellationToken,
    ) -> Result<(String, tokio::task::JoinHandle<()>), StartError> {
        self.start_job(source, cancel, Work::FromLog)
    }

    /// Starts importing the mydumper backup in `dir` as a baseline.
    pub fn start_import(
        self: &Arc<Self>,
        source: Arc<Source>,
        cancel: CancellationToken,
        dir: PathBuf,
    ) -> Result<(String, tokio::task::JoinHandle<()>), StartError> {
        self.start_job(source, cancel, Work::Import(dir))
    }

    fn start_job(
        self: &Arc<Self>,
        source: Arc<Source>,
        cancel: CancellationToken,
        work: Work,
    ) -> Result<(String, tokio::task::JoinHandle<()>), StartError> {
        let metrics = source.metrics.clone();
        let job = {
            let mut jobs = lock(&self.jobs);
            if !matches!(work, Work::Image(..))
                && let Some(id) = jobs
                    .iter()
                    .map(|j| lock(j).clone())
                    .find(|j| j.status == JobStatus::Running && !j.phase.starts_with("image"))
                    .map(|j| j.id)
            {
                return Err(StartError::Running(id));
            }
            let started = now_us();
            let mut id = baseline_id(started);
            // Ids are unique even for two requests within a microsecond.
            while jobs.iter().any(|j| lock(j).id == id) {
                id = baseline_id(now_us() + 1);
            }
            let job = Arc::new(Mutex::new(BackupJobView {
                id,
                source: source.config.name.clone(),
                status: JobStatus::Running,
                phase: if matches!(work, Work::Image(..)) {
                    "image: connecting"
                } else {
                    "connecting"
                }
                .into(),
                started_at: rfc3339_micros(started),
                finished_at: None,
                duration_ms: None,
                tables_total: 0,
                tables_done: 0,
                rows: 0,
                bytes: 0,
                lock_held_ms: None,
                error: None,
                baseline: None,
            }));
            jobs.push_front(job.clone());
            jobs.truncate(KEEP_JOBS);
            job
        };
        let id = lock(&job).id.clone();
        let this = self.clone();
        let handle = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let labels = Metrics::source(&source.config.name);
            let attempt = match &work {
                Work::Image(_, _, a) => *a + 1,
                _ => 0,
            };
            let work = async {
                match &work {
                    Work::Snapshot => this.take(&source, &job, None).await,
                    Work::Image(tables, why, _) => {
                        tracing::info!(source = %source.config.name, tables = ?tables.iter().map(|t| t.to_string()).collect::<Vec<_>>(), why = %why, "table image started");
                        this.take(&source, &job, Some(tables)).await
                    }
                    Work::Import(dir) => this.import(&source, &job, dir).await.with_context(|| {
                        format!("importing the mydumper backup {}", dir.display())
                    }),
                    Work::FromLog => crate::fromlog::take(&this.tmp_dir, &source, &job).await,
                }
            };
            let result = tokio::select! {
                r = work => r,
                () = cancel.cancelled() => Err(anyhow::anyhow!("dbtraild is shutting down")),
            };
            let id = lock(&job).id.clone();
            let tmp = this.tmp_dir.join(&id);
            let _ = tokio::fs::remove_dir_all(&tmp).await;
            let elapsed = started.elapsed();
            match result {
                Ok(m) => {
                    metrics.backups.get_or_create(&labels).inc();
                    metrics
                        .backup_last_success
                        .get_or_create(&labels)
                        .set(m.finished_us / 1_000_000);
                    metrics
                        .backup_duration
                        .get_or_create(&labels)
                        .set(elapsed.as_secs_f64());
                    tracing::info!(source = %source.config.name, baseline = %m.id,
                        tables = m.tables.len(), rows = m.rows(), bytes = m.bytes(),
                        seconds = elapsed.as_secs_f64(), "baseline complete");
                    let image = !m.origin.is_full();
                    // Key-less tables a lock-free snapshot could not hold exactly: imaged
                    // again, a few times, each try checked the same way.
                    let again: Vec<TableRef> = m
                        .skipped
                        .iter()
                        .filter(|t| t.reason.starts_with(KEYLESS_CHANGED))
                        .map(|t| t.table.clone())
                        .collect();
                    if !again.is_empty() {
                        if attempt < KEYLESS_TRIES {
                            // Apart in time: the next try may find a quieter moment.
                            tokio::time::sleep(Duration::from_millis(
                                100 + 50 * u64::from(attempt),
                            ))
                            .await;
                            let why = format!(
                                "key-less tables changed while lock-free snapshot {} started (try {} of {KEYLESS_TRIES})",
                                m.id,
                                attempt + 1
                            );
                            let _ = this.start_job(
                                source.clone(),
                                cancel.clone(),
                                Work::Image(again, why, attempt),
                            );
                        } else {
                            tracing::warn!(source = %source.config.name, tables = ?again.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
                                "key-less tables changed during {KEYLESS_TRIES} lock-free snapshots in a row: no image holds them; restores of them are refused until a later baseline or image does (baseline_lock = \"tables\" images them exactly)");
                        }
                    }
                    {
                        let mut j = lock(&job);
                        j.phase = "retention".into();
                        j.baseline = Some(m);
                    }
                    if image {
                        // Nothing to prune: images never move the log's start.
                    } else if let Err(e) = this.retention(&source).await {
                        tracing::warn!(source = %source.config.name, error = %format!("{e:#}"),
                            "retention failed; it is retried after the next backup");
                    }
                    let mut j = lock(&job);
                    j.status = JobStatus::Completed;
                    j.phase = "complete".into();
                }
                Err(e) => {
                    metrics.backup_failures.get_or_create(&labels).inc();
                    let msg = format!("{e:#}");
                    tracing::error!(source = %source.config.name, backup = %id, error = %msg, "backup failed");
                    // Best effort: the next start removes whatever remains (no manifest).
                    if let Err(e) = source.store.delete(&id).await {
                        tracing::warn!(error = %format!("{e:#}"), "removing the objects of a failed backup");
                    }
                    let mut j = lock(&job);
                    j.status = JobStatus::Failed;
                    j.error = Some(msg);
                }
            }
            if let Ok(b) = source.log.baselines() {
                let full = b.iter().filter(|b| b.origin.is_full()).count();
                metrics.baselines.get_or_create(&labels).set(full as i64);
            }
            let mut j = lock(&job);
            let end = now_us();
            j.finished_at = Some(rfc3339_micros(end));
            j.duration_ms = Some(elapsed.as_millis() as u64);
        });
        Ok((id, handle))
    }

    async fn take(
        &self,
        source: &Source,
        job: &Arc<Mutex<BackupJobView>>,
        image: Option<&[TableRef]>,
    ) -> anyhow::Result<BaselineManifest> {
        let phase = |p: &str| match image {
            Some(_) => format!("image: {p}"),
            None => p.to_string(),
        };
        let id = lock(job).id.clone();
        let started_us = now_us();
        let name = &source.config.name;
        // The log must cover everything after the snapshot: wait for capture's position.
        let mut waited = Duration::ZERO;
        while source.log.checkpoint()?.is_none() {
            if waited >= Duration::from_secs(60) {
                bail!(
                    "capture of source {name} has not started yet (see `dbtrailctl status`); a \
                     baseline is only useful once the log covers what follows it"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            waited += Duration::from_millis(200);
        }
        let (mut first, spec) = source.connect().await?;
        let info = checks::check_server(&mut first).await?;
        let mut conns = vec![first];
        let wanted = match image {
            // One connection holds the locks; the others read.
            Some(t) => 1 + source.config.backup_connections.min(t.len()).max(1),
            // The readers, and one spare (the locking connection of baseline_lock = tables).
            None => source.config.backup_connections + 1,
        };
        let choice = source.config.baseline_lock()?;
        for _ in 1..wanted {
            conns.push(stream::connect(&spec).await?);
        }
        lock(job).phase = phase("snapshot");
        let mut snap = match image {
            // Lock-free images where baselines are lock-free by configuration (the user may
            // lack LOCK TABLES); else a moment of `LOCK TABLES ... READ`.
            Some(tables) if choice == LockChoice::Only(SnapshotMethod::None) => {
                conns.remove(0);
                dbtrail_binlog::start::lockfree_image(&mut conns, &info, tables).await?
            }
            Some(tables) => match snapshot::tables_start(&mut conns, &info, tables).await {
                Ok(s) => {
                    // The locking connection is done.
                    conns.remove(0);
                    s
                }
                // auto, and the user may not lock: lock-free, where that is exact.
                Err(dbtrail_binlog::BinlogError::MissingPrivilege { .. })
                    if choice == LockChoice::Auto
                        && (info.gtid_mode || info.flavor == checks::Flavor::Mariadb) =>
                {
                    conns.remove(0);
                    dbtrail_binlog::start::lockfree_image(&mut conns, &info, tables).await?
                }
                Err(e) => return Err(e.into()),
            },
            None => {
                dbtrail_binlog::start::baseline_start(
                    &mut conns,
                    &info,
                    choice,
                    source.config.backup_databases.as_deref(),
                )
                .await?
            }
        };
        if image.is_none()
            && let Some(dbs) = &source.config.backup_databases
        {
            snap.tables.retain(|t| dbs.contains(&t.db));
        }
        // A full baseline records the views, triggers, routines and events of its databases.
        let objects = match image {
            Some(_) => None,
            None => {
                let mut dbs: Vec<String> = snap.tables.iter().map(|t| t.db.clone()).collect();
                if let Some(want) = &source.config.backup_databases {
                    dbs.extend(want.iter().cloned());
                }
                dbs.sort();
                dbs.dedup();
                match snapshot::read_objects(&mut conns[0], &dbs).await? {
                    Ok(o) => Some(o),
                    Err(why) => {
                        tracing::warn!(source = %name, backup = %id, "{why}; this baseline \
                            records no views, triggers, routines or events, and restores from it \
                            write none");
                        None
                    }
                }
            }
        };
        // Large tables are read in primary-key ranges, one work item each (module doc).
        let readers = conns.len();
        let (items, mut skipped) = work_items(
            &mut conns[0],
            &snap.tables,
            source.config.backup_split_rows,
            readers,
        )
        .await?;
        conns.truncate(items.len().max(1));
        {
            let mut j = lock(job);
            j.phase = phase("reading");
            j.tables_total = snap.tables.len() as u64;
            j.lock_held_ms = Some(snap.lock_held.as_secs_f64() * 1000.0);
        }
        tracing::info!(source = %name, backup = %id, tables = snap.tables.len(),
            ranges = items.iter().filter(|i| i.range.is_some()).count(),
            lock_held_ms = snap.lock_held.as_secs_f64() * 1000.0, position = %snap.position,
            method = snap.method.name(), upper = ?snap.upper.as_ref().map(|u| u.to_string()),
            "snapshot started");
        let tmp = self.tmp_dir.join(&id);
        tokio::fs::create_dir_all(&tmp)
            .await
            .with_context(|| format!("creating {}", tmp.display()))?;
        let progress = Mutex::new(Progress::default());
        let queue = Mutex::new(items.into_iter().collect::<VecDeque<_>>());
        let kv = base_metadata(&snap);
        let readers = conns.into_iter().enumerate().map(|(i, mut conn)| {
            let (queue, progress, tmp, kv, id) = (&queue, &progress, &tmp, &kv, &id);
            async move {
                let mut done = Vec::new();
                loop {
                    let Some(item) = lock(queue).pop_front() else {
                        return Ok::<_, anyhow::Error>(done);
                    };
                    if lock(progress).skipped.contains(&item.table) {
                        // Another range of it met a DDL.
                        continue;
                    }
                    let local = tmp.join(format!("{i}.parquet"));
                    match self
                        .read_item(&source.store, &mut conn, &item, kv.clone(), &local, id)
                        .await
                    {
                        Ok(read) => {
                            {
                                let mut j = lock(job);
                                j.rows += read.rows;
                                j.bytes += read.bytes;
                            }
                            if let Some(t) = lock(progress).record(&item, read) {
                                lock(job).tables_done += 1;
                                done.push(Ok(t));
                            }
                        }
                        Err(e) if concurrent_ddl(&e) => {
                            if lock(progress).skipped.insert(item.table.clone()) {
                                let reason = format!("changed by DDL during the backup: {e:#}");
                                tracing::warn!(table = %item.table, "{reason}; the baseline skips it");
                                done.push(Err(SkippedTable {
                                    table: item.table.clone(),
                                    reason,
                                }));
                            }
                        }
                        Err(e) => return Err(e.context(format!("backing up {}", item.what()))),
                    }
                }
            }
        });
        let (mut tables, more): (Vec<_>, Vec<_>) = futures_util::future::try_join_all(readers)
            .await?
            .into_iter()
            .flatten()
            .partition(Result::is_ok);
        skipped.extend(more.into_iter().filter_map(Result::err));
        let mut tables: Vec<BaselineTable> = tables.drain(..).filter_map(Result::ok).collect();
        // A lock-free snapshot: tables without a primary key changed while it started are
        // not held exactly (crate::interval).
        if let Some(upper) = &snap.upper {
            lock(job).phase = phase("checking key-less tables");
            crate::interval::wait_for(source, upper).await?;
            let names: Vec<TableRef> = tables.iter().map(|t| t.table.clone()).collect();
            let (log, p, u) = (source.log.clone(), snap.position.clone(), upper.clone());
            let changed = tokio::task::spawn_blocking(move || {
                crate::interval::keyless_changed(&*log, &p, &u, &names)
            })
            .await
            .context("the key-less check died")??;
            for t in changed {
                tracing::info!(source = %name, backup = %id, table = %t,
                    "a table without a primary key was changed while the lock-free snapshot started; imaged again");
                tables.retain(|e| e.table != t);
                skipped.push(SkippedTable {
                    table: t,
                    reason: format!(
                        "{KEYLESS_CHANGED} between {} and {upper}); imaged again",
                        snap.position
                    ),
                });
            }
        }
        tables.sort_by(|a, b| a.table.cmp(&b.table));
        skipped.sort_by(|a, b| a.table.cmp(&b.table));
        lock(job).phase = phase("manifest");
        let mut m = BaselineManifest {
            format_version: MANIFEST_VERSION,
            id,
            source: name.clone(),
            origin: if image.is_some() {
                BaselineOrigin::TableImage
            } else {
                BaselineOrigin::Snapshot
            },
            position: snap.position.clone(),
            snapshot_us: snap.taken_us,
            started_us,
            finished_us: now_us(),
            lock_held_us: snap.lock_held.as_micros() as i64,
            lock_mode: snap.lock_mode.clone(),
            method: snap.method,
            upper: snap.upper.clone(),
            tables,
            skipped,
            checksums: Default::default(),
        };
        // An image left with no table holds nothing: not recorded (its retry, if any, is).
        if image.is_some() && m.tables.is_empty() {
            let _ = source.store.delete(&m.id).await;
            return Ok(m);
        }
        if let Some(objects) = &objects {
            source.store.put_objects(&m.id, objects).await?;
        }
        source.store.fill_checksums(&mut m).await?;
        source.store.put_manifest(&m).await?;
        source.log.put_baseline(&m)?;
        Ok(m)
    }

    /// Imports a mydumper backup directory (on this host) as a baseline: its metadata must
    /// carry the binlog position, the log must cover everything after it, and every table's
    /// definition must still be the one dumped.
    async fn import(
        &self,
        source: &Source,
        job: &Arc<Mutex<BackupJobView>>,
        dir: &Path,
    ) -> anyhow::Result<BaselineManifest> {
        use dbtrail_replay::mydumper;
        let id = lock(job).id.clone();
        let started_us = now_us();
        lock(job).phase = "reading".into();
        let d = dir.to_path_buf();
        let (meta, tables) = tokio::task::spawn_blocking(move || {
            Ok::<_, anyhow::Error>((mydumper::Metadata::read(&d)?, mydumper::tables(&d)?))
        })
        .await
        .context("the reading thread died")??;
        let Some(b) = meta.binlog else {
            bail!(
                "its metadata file has no binlog position (mydumper writes none for MySQL 8.4 \
                 and later, where SHOW MASTER STATUS is gone), so it cannot be placed in the \
                 log; take a baseline with `dbtrailctl backup` instead"
            );
        };
        let Some(ckpt) = source.log.checkpoint()? else {
            bail!("capture has not started yet; import once `dbtrailctl status` shows a position");
        };
        let position = dbtrail_core::Position {
            gtid_set: b
                .gtid_set
                .unwrap_or_else(dbtrail_core::GtidSet::empty_mysql),
            file: b.file,
            pos: b.pos,
            server_uuid: ckpt.position.server_uuid.clone(),
        };
        let origin = source.log.origin()?.unwrap_or(ckpt.position.clone());
        let covered = if !origin.gtid_set.is_empty() && !position.gtid_set.is_empty() {
            origin.gtid_set.is_subset(&position.gtid_set)
        } else {
            dbtrail_storage::baselines::cmp_binlog(
                (&origin.file, origin.pos),
                (&position.file, position.pos),
            ) != std::cmp::Ordering::Greater
        };
        if !covered {
            bail!(
                "the dump was taken at {position}, before capture began at {origin}: the \
                 changes in between are not in the log, so it cannot serve as a baseline"
            );
        }
        lock(job).tables_total = tables.len() as u64;
        let (mut conn, _) = source.connect().await?;
        let tmp = self.tmp_dir.join(&id);
        tokio::fs::create_dir_all(&tmp)
            .await
            .with_context(|| format!("creating {}", tmp.display()))?;
        let kv = vec![
            (
                "dbtrail.gtid_set".into(),
                position.gtid_set.to_compact_string(),
            ),
            ("dbtrail.binlog_file".into(), position.file.clone()),
            ("dbtrail.binlog_pos".into(), position.pos.to_string()),
            ("dbtrail.server_uuid".into(), position.server_uuid.clone()),
            ("dbtrail.imported_from".into(), dir.display().to_string()),
        ];
        let mut out = Vec::new();
        for t in tables {
            let table = t.table_ref();
            let schema = snapshot::table_schema(&mut conn, &table).await?;
            let create = snapshot::show_create_table(&mut conn, &table).await?;
            let dumped = std::fs::read_to_string(&t.schema_file)
                .with_context(|| format!("reading {}", t.schema_file.display()))?;
            let dumped = dumped_create(&dumped);
            if normalise_create(&dumped) != normalise_create(&create) {
                bail!(
                    "{table} changed since the dump (dumped: {dumped}; now: {create}); an \
                     import needs the definition the dump was taken with"
                );
            }
            let local = tmp.join("import.parquet");
            let (w_local, w_schema, mut w_kv) = (local.clone(), schema.clone(), kv.clone());
            w_kv.push(("dbtrail.create_table".into(), create.clone()));
            let files = t.data_files.clone();
            let rows = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
                let f = std::fs::File::create(&w_local)
                    .with_context(|| format!("creating {}", w_local.display()))?;
                let mut w = BaselineWriter::new(
                    std::io::BufWriter::new(f),
                    &w_schema,
                    w_kv,
                    ROW_GROUP_ROWS,
                )?;
                for file in &files {
                    mydumper::for_each_row(file, &w_schema, |r| {
                        w.push(&r).map_err(anyhow::Error::from)
                    })?;
                }
                Ok(w.finish()?)
            })
            .await
            .context("the import thread died")??;
            let file = table_file_name(&table);
            let bytes = source.store.upload(&id, &file, &local).await?;
            {
                let mut j = lock(job);
                j.tables_done += 1;
                j.rows += rows;
                j.bytes += bytes;
            }
            out.push(BaselineTable {
                table,
                file,
                rows,
                bytes,
                create_table: create,
                parts: Vec::new(),
            });
        }
        out.sort_by(|a, b| a.table.cmp(&b.table));
        // The state the dump holds is that after its last transaction in the log.
        let mut snapshot_us = None;
        source.log.scan_txns(0, |_, t| {
            if dbtrail_storage::baselines::held_by(&position, &t) {
                snapshot_us = Some(t.commit_us);
                true
            } else {
                snapshot_us = snapshot_us.or(Some(t.commit_us - 1));
                false
            }
        })?;
        lock(job).phase = "manifest".into();
        let mut m = BaselineManifest {
            format_version: MANIFEST_VERSION,
            id,
            source: source.config.name.clone(),
            origin: BaselineOrigin::MydumperImport,
            position,
            snapshot_us: snapshot_us.unwrap_or(started_us),
            started_us,
            finished_us: now_us(),
            lock_held_us: 0,
            lock_mode: format!("none (mydumper backup {})", dir.display()),
            method: dbtrail_core::baseline::SnapshotMethod::NotApplicable,
            upper: None,
            tables: out,
            skipped: Vec::new(),
            checksums: Default::default(),
        };
        source.store.fill_checksums(&mut m).await?;
        source.store.put_manifest(&m).await?;
        source.log.put_baseline(&m)?;
        Ok(m)
    }

    /// Reads one work item (a table, or one key range of it) into its Parquet file and
    /// uploads it.
    async fn read_item(
        &self,
        store: &BaselineStore,
        conn: &mut dbtrail_binlog::Conn,
        item: &Item,
        mut kv: Vec<(String, String)>,
        local: &Path,
        id: &str,
    ) -> anyhow::Result<Read> {
        let table = &item.table;
        let known = match &item.known {
            Some(k) => k.clone(),
            None => Arc::new((
                snapshot::table_schema(conn, table).await?,
                snapshot::show_create_table(conn, table).await?,
            )),
        };
        let (schema, create) = (&known.0, &known.1);
        kv.push(("dbtrail.create_table".into(), create.clone()));
        let name = match &item.range {
            Some(r) => {
                kv.push((
                    "dbtrail.key_range".into(),
                    format!("{} of {}", r.index + 1, r.of),
                ));
                part_file_name(table, r.index)
            }
            None => table_file_name(table),
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Row>>(BATCHES_IN_FLIGHT);
        // A local store's file is written in place (it stays invisible until the manifest);
        // any other store gets a temporary file, uploaded afterwards.
        let in_place = store.local_target(id, &name);
        let path = in_place.clone().unwrap_or_else(|| local.to_path_buf());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let wschema = schema.clone();
        let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
            let mut w =
                BaselineWriter::new(std::io::BufWriter::new(file), &wschema, kv, ROW_GROUP_ROWS)?;
            while let Some(batch) = rx.blocking_recv() {
                for r in &batch {
                    w.push(r)?;
                }
            }
            Ok(w.finish()?)
        });
        let range = item.range.as_ref().map(|r| &r.range);
        let read = snapshot::read_range_batches(conn, schema, range, BATCH_ROWS, &tx).await;
        drop(tx);
        let written = writer.await.context("the Parquet writer thread died")?;
        let (rows, written) = match (read, written) {
            (Ok(r), Ok(w)) => (r, w),
            // The writer's error explains a reader that saw the channel close.
            (_, Err(e)) => return Err(e),
            (Err(e), _) => return Err(e.into()),
        };
        if rows != written {
            bail!("read {rows} rows of {} but wrote {written}", item.what());
        }
        let bytes = match in_place {
            Some(p) => std::fs::metadata(&p)
                .with_context(|| format!("reading {}", p.display()))?
                .len(),
            None => {
                let bytes = store.upload(id, &name, local).await?;
                let _ = tokio::fs::remove_file(local).await;
                bytes
            }
        };
        Ok(Read {
            file: name,
            rows,
            bytes,
            create_table: create.clone(),
        })
    }

    /// Drops baselines beyond `backup_keep` / older than `backup_max_age` (never the newest),
    /// then prunes the log before the oldest baseline kept.
    pub async fn retention(&self, source: &Source) -> anyhow::Result<()> {
        let cfg = &source.config;
        let max_age = cfg.backup_max_age()?;
        if cfg.backup_keep.is_none() && max_age.is_none() {
            return Ok(());
        }
        let (all, images): (Vec<_>, Vec<_>) = source
            .log
            .baselines()?
            .into_iter()
            .partition(|b| b.origin.is_full());
        let Some(newest) = all.last().map(|b| b.id.clone()) else {
            return Ok(());
        };
        let now = now_us();
        let keep_from = all
            .len()
            .saturating_sub(cfg.backup_keep.unwrap_or(usize::MAX));
        for (i, b) in all.iter().enumerate() {
            let too_many = i < keep_from;
            let too_old =
                max_age.is_some_and(|a| now.saturating_sub(b.snapshot_us) > a.as_micros() as i64);
            if b.id != newest && (too_many || too_old) {
                // Catalog first: a baseline must never be listed without its files.
                source.log.delete_baseline(&b.id)?;
                source.store.delete(&b.id).await?;
                tracing::info!(source = %cfg.name, baseline = %b.id, "baseline removed by retention");
            }
        }
        let kept: Vec<BaselineManifest> = source
            .log
            .baselines()?
            .into_iter()
            .filter(|b| b.origin.is_full())
            .collect();
        // Table images older than the oldest full baseline kept are never used again.
        if let Some(oldest) = kept.first() {
            for i in images.iter().filter(|i| i.snapshot_us < oldest.snapshot_us) {
                source.log.delete_baseline(&i.id)?;
                source.store.delete(&i.id).await?;
                tracing::info!(source = %cfg.name, image = %i.id, "table image removed by retention");
            }
        }
        if let Some(oldest) = kept.first() {
            let log = source.log.clone();
            let position = oldest.position.clone();
            let pruned =
                tokio::task::spawn_blocking(move || match log.first_txn_after(&position)? {
                    Some((seq, _)) => log.prune_before(seq).map(Some),
                    None => Ok(None),
                })
                .await
                .context("the pruning thread died")??;
            if let Some(p) = pruned.filter(|p| p.transactions > 0) {
                tracing::info!(source = %cfg.name, transactions = p.transactions,
                    before = %rfc3339_micros(p.before_commit_us), "log pruned before the oldest baseline");
            }
        }
        Ok(())
    }
}

/// Ranges per table at most.
const MAX_RANGES: u64 = 1024;

/// One read of a backup: a whole table, or one key range of a table split into ranges.
struct Item {
    table: TableRef,
    /// Its range, when the table is split.
    range: Option<ItemRange>,
    /// Its schema and `SHOW CREATE TABLE`, when read while planning the ranges.
    known: Option<Arc<(dbtrail_core::TableSchema, String)>>,
}

struct ItemRange {
    /// From 0, in key order.
    index: usize,
    /// Ranges of the table.
    of: usize,
    range: snapshot::KeyRange,
}

impl Item {
    /// The table, and its range if split, for messages.
    fn what(&self) -> String {
        match &self.range {
            Some(r) => format!("{} (key range {} of {})", self.table, r.index + 1, r.of),
            None => self.table.to_string(),
        }
    }
}

/// One file written.
struct Read {
    file: String,
    rows: u64,
    bytes: u64,
    create_table: String,
}

/// The tables being read: ranges done so far, and tables given up (a DDL met one range).
#[derive(Default)]
struct Progress {
    parts: std::collections::HashMap<TableRef, Vec<Option<BaselinePart>>>,
    skipped: std::collections::HashSet<TableRef>,
}

impl Progress {
    /// Records a finished read; returns the table's entry once all its ranges are read.
    fn record(&mut self, item: &Item, read: Read) -> Option<BaselineTable> {
        if self.skipped.contains(&item.table) {
            return None;
        }
        let Some(r) = &item.range else {
            return Some(BaselineTable {
                table: item.table.clone(),
                file: read.file,
                rows: read.rows,
                bytes: read.bytes,
                create_table: read.create_table,
                parts: Vec::new(),
            });
        };
        let parts = self
            .parts
            .entry(item.table.clone())
            .or_insert_with(|| vec![None; r.of]);
        parts[r.index] = Some(BaselinePart {
            file: read.file,
            rows: read.rows,
            bytes: read.bytes,
        });
        if parts.iter().any(Option::is_none) {
            return None;
        }
        let parts: Vec<BaselinePart> = self
            .parts
            .remove(&item.table)
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .collect();
        Some(BaselineTable {
            table: item.table.clone(),
            file: parts.first().map(|p| p.file.clone()).unwrap_or_default(),
            rows: parts.iter().map(|p| p.rows).sum(),
            bytes: parts.iter().map(|p| p.bytes).sum(),
            create_table: read.create_table,
            parts,
        })
    }
}

/// How many ranges a table of about `estimate` rows is read in: ranges of about
/// `split_rows` rows (0: never split), rounded up to a multiple of the `readers` so the
/// connections finish together; 1 below the threshold or with one reader.
fn range_count(estimate: u64, split_rows: u64, readers: usize) -> u64 {
    if split_rows == 0 || readers < 2 || estimate <= split_rows {
        return 1;
    }
    let n = estimate.div_ceil(split_rows);
    let readers = readers as u64;
    (n.div_ceil(readers) * readers).min(MAX_RANGES)
}

/// The reads of a backup of `tables`, in table order: a table with an integer-led primary key
/// and more than `split_rows` estimated rows is split into key ranges (`snapshot::key_ranges`,
/// read on `conn` inside its snapshot transaction); others are read whole. A table a DDL
/// changed since the snapshot is skipped, as when it is read.
async fn work_items(
    conn: &mut dbtrail_binlog::Conn,
    tables: &[TableRef],
    split_rows: u64,
    readers: usize,
) -> anyhow::Result<(Vec<Item>, Vec<SkippedTable>)> {
    let whole = |t: &TableRef| Item {
        table: t.clone(),
        range: None,
        known: None,
    };
    if split_rows == 0 || readers < 2 {
        return Ok((tables.iter().map(whole).collect(), Vec::new()));
    }
    let estimates = snapshot::estimated_rows(conn).await?;
    let mut items = Vec::new();
    let mut skipped = Vec::new();
    for t in tables {
        let n = range_count(estimates.get(t).copied().unwrap_or(0), split_rows, readers);
        if n < 2 {
            items.push(whole(t));
            continue;
        }
        let planned = async {
            let schema = snapshot::table_schema(conn, t).await?;
            let create = snapshot::show_create_table(conn, t).await?;
            let ranges = snapshot::key_ranges(conn, &schema, n as usize).await?;
            Ok::<_, anyhow::Error>((schema, create, ranges))
        }
        .await;
        let (schema, create, ranges) = match planned {
            Ok(p) => p,
            Err(e) if concurrent_ddl(&e) => {
                let reason = format!("changed by DDL during the backup: {e:#}");
                tracing::warn!(table = %t, "{reason}; the baseline skips it");
                skipped.push(SkippedTable {
                    table: t.clone(),
                    reason,
                });
                continue;
            }
            Err(e) => return Err(e.context(format!("splitting {t} into key ranges"))),
        };
        let known = Some(Arc::new((schema, create)));
        if ranges.len() < 2 {
            items.push(Item { known, ..whole(t) });
            continue;
        }
        tracing::debug!(table = %t, ranges = ranges.len(), "read in key ranges");
        let of = ranges.len();
        for (index, range) in ranges.into_iter().enumerate() {
            items.push(Item {
                table: t.clone(),
                range: Some(ItemRange { index, of, range }),
                known: known.clone(),
            });
        }
    }
    Ok((items, skipped))
}

/// The `CREATE TABLE` statement of a mydumper schema file.
fn dumped_create(text: &str) -> String {
    let start = text.find("CREATE TABLE").unwrap_or(0);
    text[start..]
        .trim()
        .trim_end_matches(';')
        .trim()
        .to_string()
}

/// A definition without what changes with the data (`AUTO_INCREMENT=N`).
fn normalise_create(create: &str) -> String {
    create
        .split(' ')
        .filter(|w| !w.starts_with("AUTO_INCREMENT="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `e` says the table was dropped or altered after the snapshot began (its read
/// fails with ER_NO_SUCH_TABLE or ER_TABLE_DEF_CHANGED).
fn concurrent_ddl(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<dbtrail_binlog::BinlogError>()
            .and_then(|b| b.server_code())
            .is_some_and(|code| matches!(code, 1146 | 1412))
            || c.downcast_ref::<dbtrail_binlog::BinlogError>()
                .is_some_and(|b| {
                    b.to_string()
                        .contains("does not exist or the dbtrail user cannot see it")
                })
    })
}

/// Parquet key-value metadata every table file of a snapshot carries.
fn base_metadata(snap: &snapshot::Snapshot) -> Vec<(String, String)> {
    vec![
        (
            "dbtrail.gtid_set".into(),
            snap.position.gtid_set.to_compact_string(),
        ),
        ("dbtrail.binlog_file".into(), snap.position.file.clone()),
        ("dbtrail.binlog_pos".into(), snap.position.pos.to_string()),
        (
            "dbtrail.server_uuid".into(),
            snap.position.server_uuid.clone(),
        ),
        (
            "dbtrail.snapshot_time".into(),
            rfc3339_micros(snap.taken_us),
        ),
    ]
}

/// Makes the catalog agree with the store at startup: complete baselines missing from the
/// catalog (a crash between manifest and catalog) are added; directories without a manifest
/// (a backup killed midway) are deleted. Only ids before `started_us` (this process's
/// start) are looked at: ids sort by the time their job started, and a backup this process
/// began while the check runs has no manifest yet but is not abandoned.
pub async fn reconcile(source: &Source, started_us: i64) -> anyhow::Result<()> {
    let store = &source.store;
    let known: std::collections::HashSet<String> =
        source.log.baselines()?.into_iter().map(|b| b.id).collect();
    let ours = baseline_id(started_us);
    for id in store.ids().await? {
        if known.contains(&id) || id >= ours {
            continue;
        }
        match store.manifest(&id).await? {
            Some(m) => {
                tracing::info!(source = %source.config.name, baseline = %id, "baseline found in the store; added to the catalog");
                source.log.put_baseline(&m)?;
            }
            None => {
                tracing::info!(source = %source.config.name, backup = %id, "removing an unfinished backup");
                store.delete(&id).await?;
            }
        }
    }
    Ok(())
}

/// Takes a backup every `backup_interval` (counted from the newest baseline read from the
/// source), and a baseline from the log every `backup_from_log_interval` (counted from the
/// newest full baseline of any kind; skipped while the newest already holds the whole log).
pub async fn schedule(source: Arc<Source>, backups: Arc<Backups>, cancel: CancellationToken) {
    let snapshots = schedule_every(source.clone(), backups.clone(), cancel.clone(), false);
    let from_log = schedule_every(source, backups, cancel, true);
    tokio::join!(snapshots, from_log);
}

async fn schedule_every(
    source: Arc<Source>,
    backups: Arc<Backups>,
    cancel: CancellationToken,
    from_log: bool,
) {
    let interval = if from_log {
        source.config.backup_from_log_interval()
    } else {
        source.config.backup_interval()
    };
    let Ok(Some(interval)) = interval else {
        return;
    };
    let name = source.config.name.clone();
    let mut retry = Duration::ZERO;
    loop {
        let last = source.log.baselines().ok().and_then(|b| {
            b.iter()
                .rev()
                .find(|b| b.origin.is_full() && (from_log || b.origin != BaselineOrigin::FromLog))
                .map(|b| b.snapshot_us)
        });
        let due_in = match last {
            Some(t) => {
                let due = t + interval.as_micros() as i64;
                Duration::from_micros(due.saturating_sub(now_us()).max(0) as u64)
            }
            // A baseline from the log needs one to start from.
            None if from_log => interval,
            None => Duration::ZERO,
        }
        .max(retry);
        tokio::select! {
            () = tokio::time::sleep(due_in) => {}
            () = cancel.cancelled() => return,
        }
        if backups.running().is_some() {
            retry = Duration::from_secs(30);
            continue;
        }
        if from_log && (last.is_none() || crate::fromlog::up_to_date(&source)) {
            // Nothing logged since the newest baseline: look again after an interval.
            retry = interval;
            continue;
        }
        let started = if from_log {
            backups.start_from_log(source.clone(), cancel.clone())
        } else {
            backups.start(source.clone(), cancel.clone())
        };
        match started {
            Ok((id, handle)) => {
                tracing::info!(source = %name, backup = %id, from_log, "scheduled backup started");
                let _ = handle.await;
                let failed = backups
                    .job(&id)
                    .is_some_and(|j| j.status == JobStatus::Failed);
                retry = if failed {
                    interval.min(Duration::from_secs(300))
                } else {
                    Duration::ZERO
                };
            }
            Err(StartError::Running(_)) => retry = Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_tables_get_ranges_for_every_reader() {
        assert_eq!(range_count(3_000_000, 1_000_000, 4), 4);
        assert_eq!(range_count(5_000_000, 1_000_000, 4), 8);
        assert_eq!(range_count(1_000_000, 1_000_000, 4), 1);
        assert_eq!(range_count(20_000, 1000, 3), 21);
        assert_eq!(range_count(3_000_000, 0, 4), 1);
        assert_eq!(range_count(3_000_000, 1000, 1), 1);
        assert_eq!(range_count(u64::MAX, 1000, 64), MAX_RANGES);
    }

    #[test]
    fn a_split_table_is_complete_when_all_its_ranges_are() {
        let t = TableRef::new("d", "t");
        let item = |index| Item {
            table: t.clone(),
            range: Some(ItemRange {
                index,
                of: 3,
                range: snapshot::ranges_of("id", &[10, 20]).remove(index),
            }),
            known: None,
        };
        let read = |index, rows| Read {
            file: part_file_name(&t, index),
            rows,
            bytes: 100,
            create_table: "CREATE TABLE t".into(),
        };
        let mut p = Progress::default();
        assert!(p.record(&item(2), read(2, 5)).is_none());
        assert!(p.record(&item(0), read(0, 1)).is_none());
        let done = p.record(&item(1), read(1, 2)).expect("complete");
        assert_eq!(done.rows, 8);
        assert_eq!(done.bytes, 300);
        assert_eq!(done.file, "d/t.part-0000.parquet");
        assert_eq!(
            done.files(),
            vec![
                "d/t.part-0000.parquet",
                "d/t.part-0001.parquet",
                "d/t.part-0002.parquet"
            ]
        );
        // A table given up (DDL in one range) never completes.
        let mut p = Progress::default();
        assert!(p.record(&item(0), read(0, 1)).is_none());
        p.skipped.insert(t.clone());
        assert!(p.record(&item(1), read(1, 1)).is_none());
        assert!(p.record(&item(2), read(2, 1)).is_none());
    }
}
