//! Point-in-time restores: validate a target into a plan, then rebuild the chosen tables as a
//! mydumper dump, as a background job whose record survives restarts.
//!
//! Which transactions a target includes (documented in README.md, "Restores"):
//! - `--at T`: those whose commit time (µs, from the binlog; docs/correctness.md, C1),
//!   truncated to T's precision, is at or before T: `--at 14:30:00` includes all of second
//!   14:30:00, `--at 14:30:00.250000` cuts inside it. In µs: `commit_us <= T.end_inclusive()`.
//! - `--gtid S`: those whose GTID is in S; they must be a prefix of the log after the
//!   baseline (the state "right after those transactions" must exist).
//!
//! The restored state is `baseline(B) + fold(changes not held by B, up to the last included
//! transaction)`, per table (see `dbtrail_replay::fold`): B is the newest baseline whose
//! snapshot is at or before the target. The log splits at one transaction into "held by B" and
//! "not held" (`dbtrail_storage::baselines`), so the changes replayed are exactly the events
//! with `cut <= event_id < end`.
use crate::cascades::describe_cascades;
use crate::source::Source;
use crate::store::BaselineStore;
use crate::util::{lock, now_us};
use anyhow::{Context, anyhow};
use dbtrail_core::api::{GapView, JobStatus, PitrJobView, PitrPlan, PitrRequest};
use dbtrail_core::baseline::{BaselineManifest, BaselineTable};
use dbtrail_core::render::rfc3339_micros;
use dbtrail_core::time::parse_time;
use dbtrail_core::{GtidSet, TableRef};
use dbtrail_replay::dump;
use dbtrail_replay::restore::{Settings, TableInput, Window, cascading_parents};
use dbtrail_storage::TxnRecord;
use dbtrail_storage::baselines::held_by;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Data chunk files are closed after about this many bytes.
const CHUNK_BYTES: u64 = 256 * 1024 * 1024;
/// INSERT statements hold about this many bytes.
const STATEMENT_BYTES: usize = 1024 * 1024;

/// Why a request cannot be planned: always the caller's to fix (HTTP 4xx).
#[derive(Debug)]
pub struct Refused(pub String);

macro_rules! refuse {
    ($($t:tt)*) => { return Err(Refused(format!($($t)*))) };
}

/// A validated restore.
pub struct Plan {
    /// The public view.
    pub view: PitrPlan,
    baseline: BaselineManifest,
    tables: Vec<(BaselineTable, Option<u32>)>,
    /// First event id not held by the baseline.
    cut: u64,
    /// Events with ids at or above this are after the target.
    end: u64,
    /// Scan the events table keys from this commit time ...
    since_us: i64,
    /// ... to this one (inclusive).
    until_us: i64,
    last: Option<TxnRecord>,
    /// The source's `restore_keys_in_memory`.
    keys_in_memory: u64,
}

impl Plan {
    /// The changes a restore of this plan replays.
    pub fn window(&self) -> Window {
        Window {
            cut: self.cut,
            end: self.end,
            since_us: self.since_us,
            until_us: self.until_us,
        }
    }
}

enum Target {
    Time(dbtrail_core::time::TimePoint),
    Gtid(GtidSet),
}

fn describe(t: &TxnRecord) -> String {
    match &t.gtid {
        Some(g) => format!("{g} (ends at {}:{})", t.end_file, t.end_pos),
        None => format!("ending at {}:{}", t.end_file, t.end_pos),
    }
}

/// Validates `req` against the log and catalog: every failure here is one a DBA must see
/// before any work starts (docs/correctness.md, C19).
pub fn plan(source: &Source, req: &PitrRequest) -> Result<Plan, Refused> {
    let log = &source.log;
    let internal = |e: dbtrail_storage::StorageError| Refused(format!("reading the log: {e}"));
    let (target, target_text) = match (&req.target_time, &req.target_gtid) {
        (Some(t), None) => (Target::Time(parse_time(t).map_err(Refused)?), t.clone()),
        (None, Some(g)) => {
            let set: GtidSet = g
                .parse()
                .map_err(|e| Refused(format!("target_gtid {g:?} is not a GTID set: {e}")))?;
            if set.is_empty() {
                refuse!("target_gtid is empty");
            }
            (Target::Gtid(set), g.clone())
        }
        _ => refuse!("give exactly one of target_time (--at) and target_gtid (--gtid)"),
    };
    let rule = match &target {
        Target::Time(tp) => format!(
            "transactions whose commit time, truncated to {} fractional digit(s), is at or \
             before the target, i.e. committed at or before {}",
            tp.digits,
            rfc3339_micros(tp.end_inclusive())
        ),
        Target::Gtid(_) => "transactions whose GTID is in the target set".to_string(),
    };
    if let Target::Time(tp) = &target
        && tp.micros > now_us()
    {
        refuse!("the target {target_text} is in the future");
    }
    let baselines = log.baselines().map_err(internal)?;
    let Some(oldest) = baselines.first() else {
        refuse!(
            "no baseline snapshot found for source {}: take one with `dbtrailctl backup`, \
             then restore to a time after it",
            source.config.name
        );
    };
    let chosen = baselines.iter().rev().find(|b| match &target {
        Target::Time(tp) => b.snapshot_us <= tp.end_inclusive(),
        Target::Gtid(set) => !b.position.gtid_set.is_empty() && b.position.gtid_set.is_subset(set),
    });
    let Some(baseline) = chosen.cloned() else {
        refuse!(
            "no baseline snapshot found at or before {target_text}; the oldest baseline is {} \
             taken {} (position {})",
            oldest.id,
            rfc3339_micros(oldest.snapshot_us),
            oldest.position
        );
    };
    // The log must hold everything after the baseline.
    let origin = log.origin().map_err(internal)?;
    if let Some(o) = &origin {
        let covered = if !o.gtid_set.is_empty() && !baseline.position.gtid_set.is_empty() {
            o.gtid_set.is_subset(&baseline.position.gtid_set)
        } else {
            dbtrail_storage::baselines::cmp_binlog(
                (&o.file, o.pos),
                (&baseline.position.file, baseline.position.pos),
            ) != std::cmp::Ordering::Greater
        };
        if !covered {
            refuse!(
                "baseline {} ({}) predates the log, which begins at {o}: the changes in between \
                 were never captured",
                baseline.id,
                baseline.position
            );
        }
    }
    // Walk the transactions: held by the baseline, then included, then after the target.
    let mut cut_seq: Option<u64> = None;
    let mut last_held: Option<TxnRecord> = None;
    let mut first_after: Option<TxnRecord> = None;
    let mut last: Option<TxnRecord> = None;
    let mut txns = 0u64;
    let mut events = 0u64;
    let mut ddls: Vec<TxnRecord> = Vec::new();
    let mut reached = baseline.position.gtid_set.clone();
    let mut problem: Option<String> = None;
    let mut ended = false;
    log.scan_txns(0, |seq, t| {
        if cut_seq.is_none() {
            if held_by(&baseline.position, &t) {
                last_held = Some(t);
                return true;
            }
            cut_seq = Some(seq);
            first_after = Some(t.clone());
        }
        let included = match &target {
            Target::Time(tp) => t.commit_us <= tp.end_inclusive(),
            Target::Gtid(set) => t.gtid.as_ref().is_some_and(|g| set.contains(g)),
        };
        if ended {
            if included {
                problem = Some(format!(
                    "the target is not a prefix of the log: transaction {} is in it but an \
                     earlier one is not",
                    describe(&t)
                ));
                return false;
            }
            // Time targets end at the first later commit; GTID targets check the rest.
            return matches!(target, Target::Gtid(_));
        }
        if !included {
            ended = true;
            return matches!(target, Target::Gtid(_));
        }
        txns += 1;
        events += t.event_count;
        if let Some(g) = &t.gtid {
            let _ = reached.insert(g);
        }
        if t.ddl.is_some() {
            ddls.push(t.clone());
        }
        last = Some(t);
        true
    })
    .map_err(internal)?;
    if let Some(p) = problem {
        refuse!("{p}");
    }
    let ckpt = log.checkpoint().map_err(internal)?;
    match &target {
        Target::Time(tp) => {
            let newest = ckpt.as_ref().map(|c| c.last_commit_us).unwrap_or(0);
            if tp.end_inclusive() > newest {
                // Past the newest captured commit: fine only if nothing committed on the
                // source up to the target can still be missing, i.e. capture is streaming and
                // its durable view (last checkpoint minus lag) is past the target.
                let covered_until = source.covered_until_us();
                if covered_until.is_none_or(|c| tp.end_inclusive() > c) {
                    refuse!(
                        "the target {target_text} is after the newest captured transaction \
                         ({}) and capture is not known to be caught up to it; wait for capture \
                         (`dbtrailctl status`) or choose an earlier target",
                        if newest > 0 {
                            rfc3339_micros(newest)
                        } else {
                            "none".into()
                        }
                    );
                }
            }
        }
        Target::Gtid(set) => {
            if !set.is_subset(&reached) {
                refuse!(
                    "the target GTID set {target_text} holds transactions the log does not have \
                     after baseline {} (reachable: {reached})",
                    baseline.id
                );
            }
        }
    }
    // Tables.
    let requested: Vec<TableRef> = if req.tables.is_empty() {
        baseline.tables.iter().map(|t| t.table.clone()).collect()
    } else {
        let mut v = Vec::new();
        for name in &req.tables {
            let t: TableRef = name
                .parse()
                .map_err(|_| Refused(format!("table {name:?} is not db.table")))?;
            if baseline.table(&t).is_none() {
                let have: Vec<String> = baseline
                    .tables
                    .iter()
                    .map(|t| t.table.to_string())
                    .collect();
                refuse!(
                    "table {t} is not in baseline {} (it holds: {})",
                    baseline.id,
                    have.join(", ")
                );
            }
            if !v.contains(&t) {
                v.push(t);
            }
        }
        v
    };
    let until_us = match (&target, &last) {
        (Target::Time(tp), _) => tp.end_inclusive(),
        (Target::Gtid(_), Some(l)) => l.commit_us,
        (Target::Gtid(_), None) => i64::MIN,
    };
    let held_commit = last_held.as_ref().map(|t| t.commit_us).unwrap_or(i64::MIN);
    let tainted = log.taints().map_err(internal)?;
    for t in &tainted {
        if let Some(r) = requested.iter().find(|r| r.matched_by(&t.table))
            && t.since_us <= until_us
        {
            refuse!(
                "the coverage of {r} is tainted since {}{}: {}; it cannot be restored exactly \
                 past that point (leave it out with --tables, or restore to a target before it)",
                rfc3339_micros(t.since_us),
                if &t.table == r {
                    String::new()
                } else {
                    format!(" (by a change to {})", t.table)
                },
                t.reason
            );
        }
    }
    let gaps: Vec<GapView> = log
        .gaps()
        .map_err(internal)?
        .into_iter()
        .filter(|g| g.after_commit_us >= held_commit && g.after_commit_us < until_us)
        .map(crate::source::gap_view)
        .collect();
    if let Some(g) = gaps.first()
        && !req.allow_gaps
    {
        refuse!(
            "the log has a gap between baseline {} and the target: {} ({}); restore to an \
             earlier target, or pass --allow-gaps to accept a result without those transactions",
            baseline.id,
            g.missing,
            g.reason
        );
    }
    for d in &ddls {
        let text = d.ddl.as_deref().unwrap_or("");
        let norm = text.replace('`', "").to_ascii_lowercase();
        if let Some(t) = requested.iter().find(|t| {
            let name = t.table.to_ascii_lowercase();
            norm.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$' || c == '.'))
                .any(|w| w == name || w == format!("{}.{name}", t.db.to_ascii_lowercase()))
        }) {
            refuse!(
                "DDL on {t} at {} ({}): {text:?}; restoring across DDL is not supported yet: \
                 choose a target before it, or take a baseline after it",
                rfc3339_micros(d.commit_us),
                describe(d)
            );
        }
    }
    let mut tables = Vec::new();
    for t in &requested {
        let entry = baseline
            .table(t)
            .cloned()
            .ok_or_else(|| Refused(format!("table {t} is not in baseline {}", baseline.id)))?;
        tables.push((entry, log.table_id(t).map_err(internal)?));
    }
    let not_in_baseline: Vec<String> = log
        .tables()
        .map_err(internal)?
        .into_iter()
        .filter(|(_, t)| baseline.table(t).is_none())
        .map(|(_, t)| t.to_string())
        .collect();
    let cut = first_after
        .as_ref()
        .map(|t| t.first_event_id)
        .unwrap_or(u64::MAX);
    let end = last
        .as_ref()
        .map(|t| t.first_event_id + t.event_count)
        .unwrap_or(cut);
    let per_event = {
        let total = ckpt.as_ref().map(|c| c.next_event_id).unwrap_or(0).max(1);
        log.events_disk_bytes() / total
    };
    let cascades = describe_cascades(source, &baseline, &requested);
    let view = PitrPlan {
        target: target_text,
        rule,
        baseline_id: baseline.id.clone(),
        baseline_time: rfc3339_micros(baseline.snapshot_us),
        baseline_position: baseline.position.to_string(),
        tables: requested.iter().map(|t| t.to_string()).collect(),
        transactions: txns,
        events,
        event_bytes: events * per_event,
        last_gtid: last
            .as_ref()
            .and_then(|t| t.gtid.as_ref().map(|g| g.to_string())),
        last_commit_time: last.as_ref().map(|t| rfc3339_micros(t.commit_us)),
        last_position: last
            .as_ref()
            .map(|t| format!("{}:{}", t.end_file, t.end_pos)),
        gtid_set_reached: reached.to_compact_string(),
        gaps,
        tainted_tables: tainted.into_iter().map(crate::source::taint_view).collect(),
        not_in_baseline,
        cascades,
    };
    Ok(Plan {
        view,
        since_us: first_after
            .as_ref()
            .map(|t| t.commit_us)
            .unwrap_or(i64::MAX),
        baseline,
        tables,
        cut,
        end,
        until_us,
        last,
        keys_in_memory: source.config.restore_keys_in_memory.max(1),
    })
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

    /// Starts the restore of `plan` into `output` (None: the default directory).
    pub fn start(
        self: &Arc<Self>,
        source: Arc<Source>,
        plan: Plan,
        output: Option<String>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> String {
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
        let path = output.unwrap_or_else(|| self.default_output.join(&id).display().to_string());
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
                r = this.run(&source, plan, &path, &job) => r,
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

    async fn run(
        &self,
        source: &Source,
        plan: Plan,
        path: &str,
        job: &Arc<Mutex<PitrJobView>>,
    ) -> anyhow::Result<(u64, u64)> {
        let id = lock(job).pitr_id.clone();
        let tmp = self.tmp_dir.join(&id);
        tokio::fs::create_dir_all(&tmp).await?;
        let s3 = path.starts_with("s3://");
        let out_dir = if s3 {
            tmp.join("out")
        } else {
            PathBuf::from(path)
        };
        check_output(&out_dir.display().to_string()).map_err(|r| anyhow!(r.0))?;
        std::fs::create_dir_all(&out_dir)
            .with_context(|| format!("creating the output directory {}", out_dir.display()))?;
        // Baseline files: read in place from a local store, else downloaded (streamed).
        let store = &source.store;
        let mut inputs = Vec::new();
        for (n, (entry, table_id)) in plan.tables.iter().enumerate() {
            // A local store's file is read in place.
            let local = match store.local_file(&plan.baseline.id, &entry.file) {
                Some(p) => p,
                None => {
                    let p = tmp.join(format!("{n}.parquet"));
                    store.download(&plan.baseline.id, &entry.file, &p).await?;
                    p
                }
            };
            inputs.push(TableInput {
                table: entry.table.clone(),
                rows: entry.rows,
                create_table: entry.create_table.clone(),
                table_id: *table_id,
                file: local,
                requested: true,
            });
        }
        let ancestors = self.ancestors(source, &plan, &inputs, &tmp).await?;
        inputs.extend(ancestors);
        lock(job).phase = "reconstructing".into();
        let log = source.log.clone();
        let out = out_dir.clone();
        let job2 = job.clone();
        let window = plan.window();
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
            let progress = JobProgress { job: &job2, total };
            dbtrail_replay::restore::rebuild(&*log, &window, inputs, &out, &settings, &progress)
        })
        .await
        .context("the restore threads died")??;
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
                .map(|(t, _)| t.table.clone())
                .collect::<Vec<_>>(),
        };
        dump::write_metadata(&out_dir, &md)?;
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
            names.sort();
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

impl Restores {
    /// The parents a restore of `inputs` also rebuilds (not written): for every table with a
    /// cascading foreign key, its parents that are themselves children of a cascading key,
    /// whose derived changes fire its actions (`dbtrail_replay::restore`). Their baselines are
    /// fetched when not local. A parent missing from the baseline is fine unless it is such a
    /// child (then its cascades cannot be derived).
    async fn ancestors(
        &self,
        source: &Source,
        plan: &Plan,
        inputs: &[TableInput],
        tmp: &Path,
    ) -> anyhow::Result<Vec<TableInput>> {
        let mut seen: BTreeSet<TableRef> = inputs.iter().map(|t| t.table.clone()).collect();
        let mut queue: Vec<TableInput> = inputs.to_vec();
        let mut out = Vec::new();
        while let Some(t) = queue.pop() {
            let schema = dbtrail_replay::restore::file_schema(&t.file)?;
            for p in cascading_parents(&schema) {
                if !seen.insert(p.clone()) {
                    continue;
                }
                match plan.baseline.table(&p) {
                    Some(pe) => {
                        let file = match source.store.local_file(&plan.baseline.id, &pe.file) {
                            Some(l) => l,
                            None => {
                                let l = tmp.join(format!("parent-{}.parquet", seen.len()));
                                source
                                    .store
                                    .download(&plan.baseline.id, &pe.file, &l)
                                    .await?;
                                l
                            }
                        };
                        let parent = TableInput {
                            table: p.clone(),
                            rows: pe.rows,
                            create_table: pe.create_table.clone(),
                            table_id: source.log.table_id(&p)?,
                            file,
                            requested: false,
                        };
                        queue.push(parent.clone());
                        out.push(parent);
                    }
                    None => {
                        let latest = match source.log.table_id(&p)? {
                            Some(id) => source.log.schemas(id)?.pop(),
                            None => None,
                        };
                        if latest.is_some_and(|s| !cascading_parents(&s).is_empty()) {
                            anyhow::bail!(
                                "{} references {p} through a cascading foreign key, and {p} is \
                                 itself the child of one but is not in baseline {}: its cascades \
                                 cannot be derived; take a new baseline, or leave {} out",
                                t.table,
                                plan.baseline.id,
                                t.table
                            );
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// A restore job's progress, as the engine reports it.
struct JobProgress<'a> {
    job: &'a Arc<Mutex<PitrJobView>>,
    total: f64,
}

impl dbtrail_replay::restore::Progress for JobProgress<'_> {
    fn table_done(&self, _: &TableRef) {
        let mut j = lock(self.job);
        j.tables_done += 1;
        j.progress = j.tables_done as f64 / self.total * 0.99;
    }

    fn rows(&self, n: u64) {
        lock(self.job).rows += n;
    }
}

impl From<Refused> for anyhow::Error {
    fn from(r: Refused) -> Self {
        anyhow!(r.0)
    }
}
