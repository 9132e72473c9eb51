//! Point-in-time restores: a target validated into a plan (`dbtrail_replay::plan`, over the
//! log's catalog), then the chosen tables rebuilt as a mydumper dump by the restore engine
//! (`dbtrail_replay::restore`), as a background job whose record survives restarts. The
//! inclusion rule and the argument why the baseline/log split is exact are in
//! `replay/src/plan.rs`.
use crate::backup::Backups;
use crate::cascades::describe_cascades;
use crate::source::Source;
use crate::store::BaselineStore;
use crate::util::{lock, now_us};
use anyhow::{Context, anyhow};
use dbtrail_core::TableRef;
use dbtrail_core::api::{JobStatus, PitrJobView, PitrRequest};
use dbtrail_core::render::rfc3339_micros;
use dbtrail_replay::dump;
pub use dbtrail_replay::plan::{Plan, Refused};
use dbtrail_replay::plan::{PlanContext, describe};
use dbtrail_replay::restore::Settings;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Data chunk files are closed after about this many bytes.
const CHUNK_BYTES: u64 = 256 * 1024 * 1024;
/// INSERT statements hold about this many bytes.
const STATEMENT_BYTES: usize = 1024 * 1024;

macro_rules! refuse {
    ($($t:tt)*) => { return Err(Refused(format!($($t)*))) };
}

/// Validates `req` against the source's log into a plan (`dbtrail_replay::plan::plan`), with
/// the dry run's description of the cascading foreign keys it replays: every failure here is
/// one a DBA must see before any work starts (docs/correctness.md, C19).
pub fn plan(source: &Source, req: &PitrRequest) -> Result<Plan, Refused> {
    let live = match source.covered_until_us() {
        Some(_) => Ok(()),
        None => Err(format!(
            "capture of source {} is not streaming, so a live image could not be placed in the \
             log (see `dbtrailctl status`)",
            source.config.name
        )),
    };
    plan_with(source, req, live, None, None)
}

/// [`plan`] from stored images only (looking back never images the live table).
pub fn plan_stored(source: &Source, req: &PitrRequest) -> Result<Plan, Refused> {
    plan_with(
        source,
        req,
        Err("looking back reads stored images only, never the live table".into()),
        None,
        None,
    )
}

/// The two plans of a verification of the tables of `image` at its position: (from the
/// image alone, from every other stored image and the log).
pub fn plan_verify(
    source: &Source,
    req: &PitrRequest,
    image: &str,
) -> Result<(Plan, Plan), Refused> {
    let stored = || Err("a verification reads stored images only".to_string());
    Ok((
        plan_with(source, req, stored(), Some(image.to_string()), None)?,
        plan_with(source, req, stored(), None, Some(image.to_string()))?,
    ))
}

/// [`plan`] with the live image's availability given.
fn plan_with(
    source: &Source,
    req: &PitrRequest,
    live: Result<(), String>,
    live_image: Option<String>,
    exclude_image: Option<String>,
) -> Result<Plan, Refused> {
    let ctx = PlanContext {
        now_us: now_us(),
        covered_until_us: source.covered_until_us(),
        keys_in_memory: source.config.restore_keys_in_memory,
        source_name: source.config.name.clone(),
        live,
        databases: source.config.backup_databases.clone(),
        live_image,
        exclude_image,
    };
    let mut plan = dbtrail_replay::plan::plan(&*source.log, &*source.log, req, &ctx)?;
    let requested: Vec<TableRef> = plan.tables.iter().map(|t| t.table.clone()).collect();
    plan.view.cascades = describe_cascades(source, &plan.baseline, &requested);
    Ok(plan)
}

/// The views, triggers, routines and events a restore of `plan` writes, as they were at the
/// target: a restore of everything writes every object of the restored databases, one of
/// some tables with `with_triggers` those tables' triggers, else none. Sets the plan view's
/// `objects`. Refused when an object's definition at the target is not known.
pub async fn plan_objects(
    source: &Source,
    plan: &mut Plan,
    req: &PitrRequest,
) -> Result<Vec<dbtrail_core::objects::SchemaObject>, Refused> {
    use dbtrail_core::objects::ObjectKind;
    if !req.tables.is_empty() && !req.with_triggers {
        return Ok(Vec::new());
    }
    let base = source.store.objects(&plan.baseline.id).await.map_err(|e| {
        Refused(format!(
            "reading the objects of baseline {}: {e:#}",
            plan.baseline.id
        ))
    })?;
    let Some(base) = base else {
        plan.view.objects = vec![format!(
            "none: baseline {} recorded no views, triggers, routines or events (it predates \
             their recording, or the daemon's user lacked the privileges to read them: TRIGGER, \
             EVENT, SHOW VIEW, global SELECT; its log says which); take a new baseline to \
             restore them",
            plan.baseline.id
        )];
        return Ok(Vec::new());
    };
    let mut at =
        dbtrail_replay::objects::objects_at_target(base, plan.ddls.iter().map(String::as_str))
            .map_err(Refused)?;
    let tables: Vec<TableRef> = plan.tables.iter().map(|t| t.table.clone()).collect();
    let mut dbs: BTreeSet<String> = tables.iter().map(|t| t.db.clone()).collect();
    if req.tables.is_empty()
        && let Some(want) = &source.config.backup_databases
    {
        dbs.extend(want.iter().cloned());
    }
    let has_table = |db: &str, t: &str| {
        tables
            .iter()
            .any(|x| x.db.eq_ignore_ascii_case(db) && x.table.eq_ignore_ascii_case(t))
    };
    if req.tables.is_empty() {
        at.retain(|db, table| {
            dbs.iter().any(|d| d.eq_ignore_ascii_case(db)) && table.is_none_or(|t| has_table(db, t))
        });
    } else {
        at.objects.retain(|o| o.kind == ObjectKind::Trigger);
        at.unknown.retain(|u| u.kind == ObjectKind::Trigger);
        at.retain(|db, table| table.is_some_and(|t| has_table(db, t)));
    }
    at.check().map_err(Refused)?;
    plan.view.objects = at.objects.iter().map(|o| o.describe()).collect();
    Ok(at.objects)
}

/// Checks an output location: a local directory must be absolute and new or empty (never a
/// symlink, never overwritten); `s3://` is uploaded to.
pub fn check_output(output: &str) -> Result<(), Refused> {
    if output.starts_with("s3://") {
        return Ok(());
    }
    let p = Path::new(output);
    if !p.is_absolute() {
        refuse!("output {output:?} must be an absolute path or s3://bucket/prefix");
    }
    match std::fs::symlink_metadata(p) {
        Err(_) => Ok(()),
        Ok(m) if m.file_type().is_symlink() => {
            refuse!("output {output} is a symlink; give a real directory")
        }
        Ok(m) if !m.is_dir() => refuse!("output {output} exists and is not a directory"),
        Ok(_) => match std::fs::read_dir(p).map(|mut d| d.next().is_none()) {
            Ok(true) => Ok(()),
            Ok(false) => refuse!(
                "output directory {output} is not empty; a restore never overwrites files: \
                 give a new or empty directory"
            ),
            Err(e) => refuse!("output directory {output} cannot be read: {e}"),
        },
    }
}

/// One source's restore jobs; records live in `dir` as JSON (one file per job).
pub struct Restores {
    dir: PathBuf,
    tmp_dir: PathBuf,
    default_output: PathBuf,
    jobs: Mutex<Vec<Arc<Mutex<PitrJobView>>>>,
}

impl Restores {
    /// Loads the records in `dir`; a job a previous process left running is marked failed.
    pub fn open(dir: PathBuf, tmp_dir: PathBuf, default_output: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut jobs = Vec::new();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        entries.sort();
        for p in entries {
            let text =
                std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            let mut j: PitrJobView = match serde_json::from_str(&text) {
                Ok(j) => j,
                Err(e) => {
                    tracing::warn!(file = %p.display(), error = %e, "ignoring an unreadable restore record");
                    continue;
                }
            };
            if j.status == JobStatus::Running {
                j.status = JobStatus::Failed;
                j.error = Some(
                    "interrupted by a restart of dbtraild; its output is incomplete: delete it \
                     and run the restore again"
                        .into(),
                );
                std::fs::write(&p, serde_json::to_vec_pretty(&j)?)?;
            }
            jobs.push(Arc::new(Mutex::new(j)));
        }
        Ok(Restores {
            dir,
            tmp_dir,
            default_output,
            jobs: Mutex::new(jobs),
        })
    }

    /// A job by id.
    /// Where restores keep their temporaries (downloaded images).
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp_dir
    }

    pub fn job(&self, id: &str) -> Option<PitrJobView> {
        lock(&self.jobs)
            .iter()
            .map(|j| lock(j).clone())
            .find(|j| j.pitr_id == id)
    }

    fn save(&self, j: &PitrJobView) {
        let path = self.dir.join(format!("{}.json", j.pitr_id));
        let tmp = path.with_extension("json.tmp");
        let r = serde_json::to_vec_pretty(j)
            .map_err(anyhow::Error::from)
            .and_then(|b| std::fs::write(&tmp, b).map_err(anyhow::Error::from))
            .and_then(|()| std::fs::rename(&tmp, &path).map_err(anyhow::Error::from));
        if let Err(e) = r {
            tracing::warn!(error = %format!("{e:#}"), "saving the restore record");
        }
    }

    /// Starts the restore of `plan` (of `req`) into `output` (None: the default directory).
    /// Tables the plan rebuilds from the live table are imaged first (by `backups`), then the
    /// request is planned again with that image.
    pub fn start(
        self: &Arc<Self>,
        source: Arc<Source>,
        plan: Plan,
        req: PitrRequest,
        placement: Option<crate::into::Placement>,
        backups: Arc<Backups>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> String {
        let output = req.output.clone();
        let started = now_us();
        let id = {
            let jobs = lock(&self.jobs);
            let mut id = format!("pitr-{}", dbtrail_core::baseline::baseline_id(started));
            let mut n = 1;
            while jobs.iter().any(|j| lock(j).pitr_id == id) {
                id = format!("pitr-{}-{n}", dbtrail_core::baseline::baseline_id(started));
                n += 1;
            }
            id
        };
        let path = match &placement {
            Some(p) => {
                let dbs: BTreeSet<&str> = p.dest.values().map(|d| d.db.as_str()).collect();
                format!(
                    "mysql://{}/{}",
                    p.target,
                    dbs.into_iter().collect::<Vec<_>>().join(",")
                )
            }
            None => output.unwrap_or_else(|| self.default_output.join(&id).display().to_string()),
        };
        let job = Arc::new(Mutex::new(PitrJobView {
            pitr_id: id.clone(),
            status: JobStatus::Running,
            phase: "preparing".into(),
            progress: 0.0,
            tables_done: 0,
            tables_total: plan.tables.len() as u64,
            rows: 0,
            started_at: rfc3339_micros(started),
            path: path.clone(),
            size_bytes: None,
            file_count: None,
            duration_ms: None,
            error: None,
            plan: plan.view.clone(),
        }));
        self.save(&lock(&job));
        lock(&self.jobs).push(job.clone());
        let this = self.clone();
        tokio::spawn(async move {
            let t0 = std::time::Instant::now();
            let result = tokio::select! {
                r = this.run(&source, plan, &req, placement.as_ref(), &backups, &cancel, &path, &job) => r,
                () = cancel.cancelled() => Err(anyhow!("dbtraild is shutting down; run the restore again")),
            };
            let snapshot = {
                let mut j = lock(&job);
                j.duration_ms = Some(t0.elapsed().as_millis() as u64);
                match result {
                    Ok((bytes, files)) => {
                        j.status = JobStatus::Completed;
                        j.phase = "complete".into();
                        j.progress = 1.0;
                        j.size_bytes = Some(bytes);
                        j.file_count = Some(files);
                        tracing::info!(source = %source.config.name, pitr = %j.pitr_id, path = %j.path,
                        bytes, files, ms = j.duration_ms, "restore complete");
                    }
                    Err(e) => {
                        j.status = JobStatus::Failed;
                        j.error = Some(format!("{e:#}"));
                        tracing::error!(source = %source.config.name, pitr = %j.pitr_id, error = %format!("{e:#}"), "restore failed");
                    }
                }
                j.clone()
            };
            this.save(&snapshot);
            let _ = tokio::fs::remove_dir_all(this.tmp_dir.join(&snapshot.pitr_id)).await;
        });
        id
    }

    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        source: &Arc<Source>,
        mut plan: Plan,
        req: &PitrRequest,
        placement: Option<&crate::into::Placement>,
        backups: &Arc<Backups>,
        cancel: &tokio_util::sync::CancellationToken,
        path: &str,
        job: &Arc<Mutex<PitrJobView>>,
    ) -> anyhow::Result<(u64, u64)> {
        let id = lock(job).pitr_id.clone();
        let live = plan.live();
        if !live.is_empty() {
            lock(job).phase = "imaging the live tables".into();
            // A long transaction on a table makes its lock wait time out: retry a few times.
            let mut attempt = 0;
            let image = loop {
                attempt += 1;
                match take_image(
                    source,
                    backups,
                    cancel,
                    live.clone(),
                    format!("restore {id} from the live tables"),
                )
                .await
                {
                    Ok(i) => break i,
                    Err(e) if attempt < 5 => {
                        tracing::warn!(pitr = %id, error = %format!("{e:#}"), "live image failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                    }
                    Err(e) => return Err(e.context("imaging the live tables (5 attempts)")),
                }
            };
            // The live image is now a stored one.
            let stored = PitrRequest {
                image: Some("baseline".into()),
                ..req.clone()
            };
            let again = plan_with(
                source,
                &stored,
                Err(format!(
                    "the live tables were imaged for this restore ({})",
                    image.id
                )),
                Some(image.id.clone()),
                None,
            )
            .map_err(|r| anyhow!("planning again with the live image {}: {}", image.id, r.0))?;
            plan = again;
            lock(job).plan = plan.view.clone();
            self.save(&lock(job));
        }
        let tmp = self.tmp_dir.join(&id);
        tokio::fs::create_dir_all(&tmp).await?;
        if let (Some(p), Some(t)) = (placement, &req.into) {
            let inputs = crate::inputs::plan_inputs(source, &plan, &tmp).await?;
            lock(job).phase = format!("loading into {}", p.target);
            let settings = Settings {
                keys_in_memory: plan.keys_in_memory,
                chunk_bytes: CHUNK_BYTES,
                statement_bytes: STATEMENT_BYTES,
                threads: 1,
            };
            let progress = JobProgress {
                job: job.clone(),
                total: plan.tables.len().max(1) as f64,
            };
            // No files: the job's file count is the tables loaded, its bytes 0.
            let (_, tables) =
                crate::into::load(source, t, p, &id, inputs, settings, progress).await?;
            return Ok((0, tables));
        }
        let s3 = path.starts_with("s3://");
        let out_dir = if s3 {
            tmp.join("out")
        } else {
            PathBuf::from(path)
        };
        check_output(&out_dir.display().to_string()).map_err(|r| anyhow!(r.0))?;
        std::fs::create_dir_all(&out_dir)
            .with_context(|| format!("creating the output directory {}", out_dir.display()))?;
        let inputs = crate::inputs::plan_inputs(source, &plan, &tmp).await?;
        lock(job).phase = "reconstructing".into();
        let log = source.log.clone();
        let out = out_dir.clone();
        let job2 = job.clone();
        let settings = Settings {
            keys_in_memory: plan.keys_in_memory,
            chunk_bytes: CHUNK_BYTES,
            statement_bytes: STATEMENT_BYTES,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        };
        let total = plan.tables.len().max(1) as f64;
        tokio::task::spawn_blocking(move || {
            let progress = JobProgress { job: job2, total };
            dbtrail_replay::restore::rebuild(&*log, inputs, &out, &settings, &progress)
        })
        .await
        .context("the restore threads died")??;
        // The views, triggers and routines before `metadata`: mydumper's `metadata` file is
        // written last, so an output without it is unfinished (a restore killed midway), and
        // myloader refuses a directory without it.
        let objects = plan_objects(source, &mut plan, req)
            .await
            .map_err(|r| anyhow!(r.0))?;
        dump::write_objects(&out_dir, &objects)?;
        let started_at = lock(job).started_at.clone();
        let md = dump::Metadata {
            started: &started_at,
            finished: &rfc3339_micros(now_us()),
            file: &plan
                .last
                .as_ref()
                .map(|t| t.end_file.clone())
                .unwrap_or_else(|| plan.baseline.position.file.clone()),
            pos: plan
                .last
                .as_ref()
                .map(|t| t.end_pos)
                .unwrap_or(plan.baseline.position.pos),
            gtid_set: &plan.view.gtid_set_reached,
            target: &plan.view.target,
            rule: &plan.view.rule,
            last_included: &match &plan.last {
                Some(t) => format!("{} committed {}", describe(t), rfc3339_micros(t.commit_us)),
                None => "none after the baseline".into(),
            },
            baseline: &format!(
                "{} taken {} at {}",
                plan.baseline.id,
                rfc3339_micros(plan.baseline.snapshot_us),
                plan.baseline.position
            ),
            tables: &plan
                .tables
                .iter()
                .map(|t| t.table.clone())
                .collect::<Vec<_>>(),
        };
        dump::write_metadata(&out_dir, &md)?;
        lock(job).plan = plan.view.clone();
        let (mut bytes, mut files) = (0u64, 0u64);
        for e in std::fs::read_dir(&out_dir)? {
            let m = e?.metadata()?;
            if m.is_file() {
                files += 1;
                bytes += m.len();
            }
        }
        if s3 {
            lock(job).phase = "uploading".into();
            let target = BaselineStore::open_output(&source.config, path)?;
            let mut names: Vec<PathBuf> = std::fs::read_dir(&out_dir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            // `metadata` last, as on disk: an upload killed midway has none.
            names.sort_by_key(|p| (p.file_name().is_some_and(|n| n == "metadata"), p.clone()));
            for p in names {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                target.upload("", &name, &p).await?;
            }
        }
        Ok((bytes, files))
    }
}

/// Refuses a restore from the live tables when the daemon's user may not image them.
pub async fn check_live(source: &Source, tables: &[TableRef]) -> Result<(), Refused> {
    let (mut conn, _) = source
        .connect()
        .await
        .map_err(|e| Refused(format!("connecting to check the live tables: {e}")))?;
    dbtrail_binlog::snapshot::check_image_rights(&mut conn, tables)
        .await
        .map_err(|e| Refused(e.to_string()))
}

/// Takes a table image of `tables` and waits until the log holds every transaction it
/// holds (so its window to the log is complete); returns its manifest.
pub async fn take_image(
    source: &Arc<Source>,
    backups: &Arc<Backups>,
    cancel: &tokio_util::sync::CancellationToken,
    tables: Vec<TableRef>,
    why: String,
) -> anyhow::Result<dbtrail_core::baseline::BaselineManifest> {
    let (image_id, handle) = backups
        .start_image(source.clone(), cancel.clone(), tables, why)
        .map_err(|_| anyhow!("a table image could not be started"))?;
    let _ = handle.await;
    let j = backups
        .job(&image_id)
        .ok_or_else(|| anyhow!("the table image job {image_id} vanished"))?;
    let Some(image) = j.baseline.filter(|_| j.status == JobStatus::Completed) else {
        anyhow::bail!(
            "taking a table image failed: {}",
            j.error.unwrap_or_else(|| "no reason given".into())
        );
    };
    let mut waited = std::time::Duration::ZERO;
    loop {
        let ckpt = source.log.checkpoint()?;
        let reached = ckpt.is_some_and(|c| {
            let (have, want) = (&c.position, &image.position);
            if !want.gtid_set.is_empty() && !have.gtid_set.is_empty() {
                want.gtid_set.is_subset(&have.gtid_set)
            } else {
                dbtrail_storage::baselines::cmp_binlog(
                    (&have.file, have.pos),
                    (&want.file, want.pos),
                ) != std::cmp::Ordering::Less
            }
        });
        if reached {
            return Ok(image);
        }
        if waited >= std::time::Duration::from_secs(120) {
            anyhow::bail!(
                "capture has not reached the position of table image {} ({}) after 2 minutes; \
                 see `dbtrailctl status`",
                image.id,
                image.position
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += std::time::Duration::from_millis(100);
    }
}

/// A restore job's progress, as the engine reports it.
struct JobProgress {
    job: Arc<Mutex<PitrJobView>>,
    total: f64,
}

impl dbtrail_replay::restore::Progress for JobProgress {
    fn table_done(&self, _: &TableRef) {
        let mut j = lock(&self.job);
        j.tables_done += 1;
        j.progress = j.tables_done as f64 / self.total * 0.99;
    }

    fn rows(&self, n: u64) {
        lock(&self.job).rows += n;
    }
}
