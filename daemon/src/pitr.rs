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
use crate::cascades::CascadeTable;
use crate::source::Source;
use crate::store::BaselineStore;
use crate::util::{lock, now_us};
use anyhow::{Context, anyhow};
use dbtrail_core::api::{GapView, JobStatus, PitrJobView, PitrPlan, PitrRequest};
use dbtrail_core::baseline::{BaselineManifest, BaselineTable};
use dbtrail_core::render::rfc3339_micros;
use dbtrail_core::time::parse_time;
use dbtrail_core::{GtidSet, TableRef, TableSchema};
use dbtrail_replay::dump::{self, TableWriter};
use dbtrail_replay::fold::Fold;
use dbtrail_storage::TxnRecord;
use dbtrail_storage::baselines::held_by;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
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
    pub(crate) cut: u64,
    /// Events with ids at or above this are after the target.
    pub(crate) end: u64,
    /// Scan the events table keys from this commit time ...
    pub(crate) since_us: i64,
    /// ... to this one (inclusive).
    pub(crate) until_us: i64,
    last: Option<TxnRecord>,
    /// The source's `restore_keys_in_memory`.
    pub(crate) keys_in_memory: u64,
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
    let cascades = plan_cascades(source, &baseline, &requested);
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

/// The dry run's view of the foreign-key actions a restore of `requested` replays: the
/// cascading keys of each requested table and of the parents it needs, from the baseline's
/// schema (local store) or the log's latest one. The restore itself decides from the
/// baseline files (`Restores::cascade_tables`).
fn plan_cascades(
    source: &Source,
    baseline: &BaselineManifest,
    requested: &[TableRef],
) -> Vec<String> {
    let schema_of = |t: &TableRef| -> Option<TableSchema> {
        let from_file = baseline
            .table(t)
            .and_then(|e| source.store.local_file(&baseline.id, &e.file))
            .and_then(|p| std::fs::File::open(p).ok())
            .and_then(|f| dbtrail_replay::baseline::schema_of(&f).ok());
        from_file.or_else(|| {
            let id = source.log.table_id(t).ok().flatten()?;
            source.log.schemas(id).ok()?.pop()
        })
    };
    let mut lines = Vec::new();
    let mut seen: BTreeSet<TableRef> = BTreeSet::new();
    let mut queue: Vec<TableRef> = requested.to_vec();
    while let Some(t) = queue.pop() {
        if !seen.insert(t.clone()) {
            continue;
        }
        let Some(s) = schema_of(&t) else { continue };
        lines.extend(crate::cascades::describe(&s, requested.contains(&t)));
        queue.extend(crate::cascades::cascading_parents(&s));
    }
    lines.sort();
    lines
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
            inputs.push((entry.clone(), *table_id, local));
        }
        let cascade_tables = self.cascade_tables(source, &plan, &inputs, &tmp).await?;
        lock(job).phase = "reconstructing".into();
        let log = source.log.clone();
        let out = out_dir.clone();
        let job2 = job.clone();
        let plan = Arc::new(plan);
        let plan2 = plan.clone();
        tokio::task::spawn_blocking(move || {
            reconstruct_all(&log, &plan2, inputs, cascade_tables, &out, &job2)
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
    /// The tables of the cascade phase (`crate::cascades`): requested tables with cascading
    /// foreign keys, and the parents whose derived changes they need (their baselines are
    /// fetched when not local).
    async fn cascade_tables(
        &self,
        source: &Source,
        plan: &Plan,
        inputs: &[(BaselineTable, Option<u32>, PathBuf)],
        tmp: &Path,
    ) -> anyhow::Result<Vec<CascadeTable>> {
        // Where the server logged every cascade in the range, the log alone is exact.
        if !crate::cascades::Derivable::new(&source.log)?.any_in(plan.cut, plan.end) {
            return Ok(Vec::new());
        }
        let requested: BTreeSet<TableRef> =
            inputs.iter().map(|(e, _, _)| e.table.clone()).collect();
        let mut queue: Vec<(BaselineTable, Option<u32>, PathBuf)> = inputs.to_vec();
        let mut seen: BTreeSet<TableRef> = BTreeSet::new();
        let mut out = Vec::new();
        let store = &source.store;
        while let Some((entry, table_id, local)) = queue.pop() {
            if !seen.insert(entry.table.clone()) {
                continue;
            }
            let file = std::fs::File::open(&local)
                .with_context(|| format!("opening the baseline file {}", local.display()))?;
            let schema = dbtrail_replay::baseline::schema_of(&file)?;
            let parents = crate::cascades::cascading_parents(&schema);
            if parents.is_empty() {
                continue;
            }
            for p in &parents {
                if seen.contains(p) || p == &entry.table {
                    continue;
                }
                match plan.baseline.table(p) {
                    Some(pe) => {
                        let local = match store.local_file(&plan.baseline.id, &pe.file) {
                            Some(l) => l,
                            None => {
                                let l = tmp.join(format!("parent-{}.parquet", seen.len()));
                                store.download(&plan.baseline.id, &pe.file, &l).await?;
                                l
                            }
                        };
                        queue.push((pe.clone(), source.log.table_id(p)?, local));
                    }
                    None => {
                        // Not in the baseline: only its logged changes can fire actions, which
                        // is exact unless it is itself the child of a cascading key.
                        let id = source.log.table_id(p)?;
                        let latest = match id {
                            Some(id) => source.log.schemas(id)?.pop(),
                            None => None,
                        };
                        if latest
                            .is_some_and(|s| !crate::cascades::cascading_parents(&s).is_empty())
                        {
                            anyhow::bail!(
                                "{} references {p} through a cascading foreign key, and {p} is \
                                 itself the child of one but is not in baseline {}: its cascades \
                                 cannot be derived; take a new baseline, or leave {} out",
                                entry.table,
                                plan.baseline.id,
                                entry.table
                            );
                        }
                    }
                }
            }
            let events = match table_id {
                Some(id) if plan.cut < plan.end => source.log.count_table_events(
                    id,
                    plan.since_us,
                    plan.until_us,
                    plan.cut..plan.end,
                )?,
                _ => 0,
            };
            out.push(CascadeTable {
                requested: requested.contains(&entry.table),
                parts: (events * 2).div_ceil(plan.keys_in_memory).max(1),
                entry,
                table_id,
                local,
                schema,
            });
        }
        crate::cascades::order(out)
    }
}

/// Tables at least this large (baseline rows + replayed events) are rebuilt by several
/// threads at once when there are fewer tables than cores.
const PARALLEL_MIN_ROWS: u64 = 100_000;

/// One table of a restore, ready to be rebuilt.
struct TableWork {
    entry: BaselineTable,
    table_id: Option<u32>,
    local: PathBuf,
    schema: TableSchema,
    /// Hash partitions of its keys (memory bound).
    parts: u64,
    /// Threads working on it; lane `l` takes partitions `l, l + lanes, ...` and writes chunks
    /// `l, l + lanes, ...`.
    lanes: u64,
    /// Lanes still running.
    remaining: AtomicUsize,
}

/// Rebuilds every table of `plan` into `out` on a pool of one thread per core: tables in
/// parallel, and a large table in several lanes when there are fewer tables than cores.
///
/// Memory: a table's changes are folded one hash partition of its keys at a time, each
/// partition holding at most about `restore_keys_in_memory` keys (two per event at most).
fn reconstruct_all(
    log: &dbtrail_storage::Log,
    plan: &Plan,
    inputs: Vec<(BaselineTable, Option<u32>, PathBuf)>,
    cascade: Vec<CascadeTable>,
    out: &Path,
    job: &Arc<Mutex<PitrJobView>>,
) -> anyhow::Result<()> {
    let total = inputs.len().max(1) as f64;
    // Tables with cascading foreign keys first, one at a time, parents before children.
    for c in cascade.iter().filter(|c| c.requested) {
        dump::write_schema(out, &c.entry.table, &c.entry.create_table)?;
    }
    crate::cascades::rebuild_all(
        log,
        plan,
        &cascade,
        out,
        |_, _| {
            let mut j = lock(job);
            j.tables_done += 1;
            j.progress = j.tables_done as f64 / total * 0.99;
        },
        CHUNK_BYTES,
        STATEMENT_BYTES,
    )?;
    let done: BTreeSet<TableRef> = cascade
        .iter()
        .filter(|c| c.requested)
        .map(|c| c.entry.table.clone())
        .collect();
    let inputs: Vec<_> = inputs
        .into_iter()
        .filter(|(e, _, _)| !done.contains(&e.table))
        .collect();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2) as u64;
    let n_tables = inputs.len().max(1) as u64;
    let mut work = Vec::new();
    for (entry, table_id, local) in inputs {
        let file = std::fs::File::open(&local)
            .with_context(|| format!("opening the baseline file {}", local.display()))?;
        let schema = dbtrail_replay::baseline::schema_of(&file)?;
        let events = match table_id {
            Some(id) if plan.cut < plan.end => {
                log.count_table_events(id, plan.since_us, plan.until_us, plan.cut..plan.end)?
            }
            _ => 0,
        };
        let by_memory = (events * 2).div_ceil(plan.keys_in_memory).max(1);
        let big = entry.rows + events >= PARALLEL_MIN_ROWS || by_memory > 1;
        let lanes = if n_tables < cores && big {
            (cores / n_tables).max(1)
        } else {
            1
        };
        // Lanes run at once: each partition holds a lanes-th of the bound.
        let parts = (events * 2 * lanes)
            .div_ceil(plan.keys_in_memory)
            .max(1)
            .div_ceil(lanes)
            * lanes;
        if by_memory > 1 {
            tracing::info!(table = %entry.table, events, passes = parts,
                "replaying in several passes to bound memory (restore_keys_in_memory)");
        }
        dump::write_schema(out, &entry.table, &entry.create_table)?;
        work.push(TableWork {
            entry,
            table_id,
            local,
            schema,
            parts,
            lanes,
            remaining: AtomicUsize::new(lanes as usize),
        });
    }
    let units: Vec<(usize, u64)> = work
        .iter()
        .enumerate()
        .flat_map(|(t, w)| (0..w.lanes).map(move |l| (t, l)))
        .collect();
    let next = AtomicUsize::new(0);
    let errors: Mutex<Vec<anyhow::Error>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..(cores as usize).min(units.len().max(1)) {
            s.spawn(|| {
                loop {
                    if !lock(&errors).is_empty() {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(t, lane)) = units.get(i) else {
                        return;
                    };
                    let w = &work[t];
                    match rebuild_lane(log, plan, w, lane, out, job) {
                        Ok(()) => {
                            if w.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                                let mut j = lock(job);
                                j.tables_done += 1;
                                j.progress = j.tables_done as f64 / total * 0.99;
                            }
                        }
                        Err(e) => {
                            lock(&errors).push(e.context(format!("restoring {}", w.entry.table)));
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = lock(&errors).pop() {
        return Err(e);
    }
    Ok(())
}

/// One lane of a table: its partitions, one pass each, into its own chunk files.
fn rebuild_lane(
    log: &dbtrail_storage::Log,
    plan: &Plan,
    w: &TableWork,
    lane: u64,
    out: &Path,
    job: &Arc<Mutex<PitrJobView>>,
) -> anyhow::Result<()> {
    let mut writer = TableWriter::new(out, &w.schema, CHUNK_BYTES, STATEMENT_BYTES)?
        .with_chunks(lane as u32, w.lanes as u32);
    for index in (lane..w.parts).step_by(w.lanes as usize) {
        let fold = fold_partition(log, plan, &w.entry, w.table_id, &w.schema, w.parts, index)?;
        let file = std::fs::File::open(&w.local)
            .with_context(|| format!("opening the baseline file {}", w.local.display()))?;
        merge(file, fold, &mut writer, job)?;
    }
    writer.finish()?;
    Ok(())
}

/// The table's replayed changes, folded, for keys of partition `index` of `parts`.
fn fold_partition(
    log: &dbtrail_storage::Log,
    plan: &Plan,
    entry: &BaselineTable,
    table_id: Option<u32>,
    schema: &TableSchema,
    parts: u64,
    index: u64,
) -> anyhow::Result<Fold> {
    let mut fold = Fold::partition(&schema.primary_key, parts, index);
    if let Some(id) = table_id
        && plan.cut < plan.end
    {
        let mut layouts: std::collections::HashMap<u32, Option<String>> = Default::default();
        let mut bad: Option<anyhow::Error> = None;
        log.scan_table(
            id,
            plan.since_us,
            plan.until_us,
            |commit_us, event_id, ev| {
                if event_id < plan.cut || event_id >= plan.end {
                    return true;
                }
                let problem = layouts.entry(ev.schema_version).or_insert_with(|| {
                    match log.schema(id, ev.schema_version) {
                        Ok(Some(s)) => layout_problem(schema, &s),
                        Ok(None) => {
                            Some(format!("schema version {} is missing", ev.schema_version))
                        }
                        Err(e) => Some(e.to_string()),
                    }
                });
                if let Some(p) = problem {
                    bad = Some(anyhow!(
                        "{} changed after the baseline (event at {}): {p}; restoring across DDL is \
                     not supported yet: choose an earlier target or take a baseline after it",
                        entry.table,
                        rfc3339_micros(commit_us)
                    ));
                    return false;
                }
                fold.push(ev.change);
                true
            },
        )?;
        if let Some(e) = bad {
            return Err(e);
        }
    }
    Ok(fold)
}

/// Streams the baseline `file` through `fold` into `w`.
fn merge(
    file: std::fs::File,
    fold: Fold,
    w: &mut TableWriter,
    job: &Arc<Mutex<PitrJobView>>,
) -> anyhow::Result<()> {
    let mut applier = fold.applier();
    let mut err: Option<dbtrail_replay::dump::DumpError> = None;
    let mut rows = 0u64;
    {
        let mut emit = |r: dbtrail_core::Row| {
            if err.is_none()
                && let Err(e) = w.push(&r)
            {
                err = Some(e);
            }
            rows += 1;
            if rows.is_multiple_of(65536) {
                lock(job).rows += 65536;
            }
        };
        dbtrail_replay::baseline::read(file, |r| {
            applier.feed(r, &mut emit);
            Ok(())
        })?;
        applier.finish(&mut emit)?;
    }
    lock(job).rows += rows % 65536;
    if let Some(e) = err {
        return Err(e.into());
    }
    Ok(())
}

/// Why events of schema `s` cannot be applied to a baseline of `base`, if they cannot.
pub(crate) fn layout_problem(base: &TableSchema, s: &TableSchema) -> Option<String> {
    if base.columns.len() != s.columns.len() {
        return Some(format!(
            "it has {} columns in the log but {} in the baseline",
            s.columns.len(),
            base.columns.len()
        ));
    }
    for (a, b) in base.columns.iter().zip(&s.columns) {
        if !b.name.is_empty() && a.name != b.name {
            return Some(format!("column {} is now {}", a.name, b.name));
        }
    }
    None
}

impl From<Refused> for anyhow::Error {
    fn from(r: Refused) -> Self {
        anyhow!(r.0)
    }
}
