//! Restore verification, a drill that runs by itself: "would my restore work today?"
//!
//! A verification of tables `T`:
//! 1. images `T` from the live server (a table image, [`crate::pitr::take_image`]: the
//!    source's per-table snapshot method, no global lock) at a position `P`, and waits until
//!    capture holds `P`;
//! 2. plans two restores of `T` to `P` (the GTID set of the image, or the upper end of a
//!    lock-free one): one from that image alone (its window is empty: the image is the live
//!    tables at `P`), one from every other stored image and the log, exactly as `pitr` would
//!    today ([`crate::pitr::plan_verify`]; the planner's rules, lock-free images included);
//! 3. runs both through the restore engine into [`dbtrail_replay::verify`] digests (bounded
//!    memory, any row order), and for the buckets that differ collects both sides' rows in a
//!    second pass to name each difference (table, key, columns).
//!
//! Why a match means the history is right at `P`: the first side is the live table at `P`
//! (the image's guarantee, `docs/correctness.md` C18), the second is what a restore to `P`
//! writes, and the digests are equal exactly when the two multisets of rows are
//! ([`dbtrail_replay::verify`]). What it does not prove: targets other than `P` (other
//! windows of the same log), and the import of the dump (the tests import dumps with
//! `myloader` and `mysql`). The image is removed afterwards, so a verification changes
//! nothing a later restore or verification uses: each checks the history from the stored
//! baselines and images. (A restore planned in the moment the image exists may pick it and
//! then fail to read it; run it again.)
//!
//! Runs are kept in `<data_dir>/sources/<name>/verify.json` (the newest [`KEEP`]), so the
//! metrics and `dbtrailctl verify --list` survive a restart. Needs GTIDs: without them a
//! position is not a restore target (the run fails saying so).
use crate::backup::Backups;
use crate::source::Source;
use crate::util::{lock, now_us};
use anyhow::{Context, anyhow, bail};
use dbtrail_core::api::{
    PitrRequest, TableVerify, VerifyColumn, VerifyDifference, VerifyOutcome, VerifyRun,
};
use dbtrail_core::render::rfc3339_micros;
use dbtrail_core::{Row, TableRef, TableSchema};
use dbtrail_replay::restore::{Output, Progress, RestoreError, RowSink, Settings, TableInput};
use dbtrail_replay::verify::{Collect, Difference, Digest, Rows};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Runs kept on disk and listed.
pub const KEEP: usize = 100;
/// Rows of the differing buckets collected per side and table in the second pass.
const COLLECT_ROWS: usize = 20_000;
/// Differences listed per table.
const LIST: usize = 100;

/// A source's verifications.
pub struct Verifications {
    path: PathBuf,
    runs: Mutex<Vec<VerifyRun>>,
}

impl Verifications {
    /// Loads the runs recorded in `path` (none if it does not exist).
    pub fn open(path: PathBuf) -> anyhow::Result<Verifications> {
        let mut runs: Vec<VerifyRun> = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| {
                format!(
                    "reading the verification records {} (move the file away to start afresh)",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        // A run the previous process did not finish.
        for r in runs
            .iter_mut()
            .filter(|r| r.outcome == VerifyOutcome::Running)
        {
            r.outcome = VerifyOutcome::Failed;
            r.error = Some("the daemon stopped before the verification ended; run it again".into());
        }
        Ok(Verifications {
            path,
            runs: Mutex::new(runs),
        })
    }

    /// Every run kept, oldest first.
    pub fn list(&self) -> Vec<VerifyRun> {
        lock(&self.runs).clone()
    }

    /// One run.
    pub fn get(&self, id: &str) -> Option<VerifyRun> {
        lock(&self.runs).iter().find(|r| r.id == id).cloned()
    }

    /// The newest run that ended (passed, mismatch or failed).
    pub fn last_finished(&self) -> Option<VerifyRun> {
        lock(&self.runs)
            .iter()
            .rev()
            .find(|r| r.outcome != VerifyOutcome::Running)
            .cloned()
    }

    fn save(&self) {
        let runs = lock(&self.runs).clone();
        let write = || -> anyhow::Result<()> {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = self.path.with_extension("json.tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(&runs)?)?;
            std::fs::rename(&tmp, &self.path)?;
            Ok(())
        };
        if let Err(e) = write() {
            tracing::warn!(path = %self.path.display(), error = %format!("{e:#}"),
                "could not record the verification runs");
        }
    }

    fn update(&self, run: &VerifyRun) {
        {
            let mut runs = lock(&self.runs);
            match runs.iter_mut().find(|r| r.id == run.id) {
                Some(r) => *r = run.clone(),
                None => runs.push(run.clone()),
            }
            let extra = runs.len().saturating_sub(KEEP);
            runs.drain(..extra);
        }
        self.save();
    }

    /// The tables to verify when none are named: the newest full baseline's tables, those
    /// never verified first, then the least recently verified, `n` of them.
    pub fn rotation(&self, source: &Source, n: usize) -> anyhow::Result<Vec<TableRef>> {
        let Some(base) = source
            .log
            .baselines()?
            .into_iter()
            .rev()
            .find(|b| b.origin.is_full())
        else {
            bail!(
                "source {} has no baseline yet: take one with `dbtrailctl backup`",
                source.config.name
            );
        };
        let runs = lock(&self.runs);
        let last = |t: &TableRef| {
            let name = t.to_string();
            runs.iter()
                .rposition(|r| r.outcome != VerifyOutcome::Failed && r.tables.contains(&name))
        };
        let mut tables: Vec<(Option<usize>, TableRef)> = base
            .tables
            .iter()
            .map(|t| (last(&t.table), t.table.clone()))
            .collect();
        tables.sort();
        Ok(tables.into_iter().take(n).map(|(_, t)| t).collect())
    }

    /// Starts verifying `tables` of `source` (none: the rotation); refused while another
    /// verification of the source runs. Returns the run as it starts and its task.
    pub fn start(
        self: &Arc<Self>,
        source: Arc<Source>,
        backups: Arc<Backups>,
        cancel: CancellationToken,
        tables: Vec<TableRef>,
    ) -> Result<(VerifyRun, tokio::task::JoinHandle<()>), String> {
        let run = {
            let mut runs = lock(&self.runs);
            if let Some(r) = runs.iter().find(|r| r.outcome == VerifyOutcome::Running) {
                return Err(r.id.clone());
            }
            let started = now_us();
            let mut id = format!("verify-{}", dbtrail_core::baseline::baseline_id(started));
            while runs.iter().any(|r| r.id == id) {
                id.push('x');
            }
            let run = VerifyRun {
                id,
                source: source.config.name.clone(),
                outcome: VerifyOutcome::Running,
                started_at: rfc3339_micros(started),
                finished_at: None,
                tables: tables.iter().map(ToString::to_string).collect(),
                position: None,
                image_id: None,
                baseline_id: None,
                events: 0,
                results: Vec::new(),
                error: None,
            };
            runs.push(run.clone());
            run
        };
        self.save();
        let (me, first) = (self.clone(), run.clone());
        let handle = tokio::spawn(async move {
            let mut run = first;
            let result = verify(&source, &backups, &cancel, &mut run, &me).await;
            run.finished_at = Some(rfc3339_micros(now_us()));
            let labels = crate::metrics::Metrics::source(&source.config.name);
            let m = &source.metrics;
            match result {
                Ok(()) => {
                    let bad: u64 = run.results.iter().map(|t| t.mismatched_rows).sum();
                    run.outcome = if bad == 0 {
                        VerifyOutcome::Passed
                    } else {
                        VerifyOutcome::Mismatch
                    };
                    m.verify_mismatched_rows
                        .get_or_create(&labels)
                        .set(bad as i64);
                    if bad == 0 {
                        m.verify_last_success
                            .get_or_create(&labels)
                            .set(now_us() / 1_000_000);
                        tracing::info!(source = %run.source, verify = %run.id,
                            tables = %run.tables.join(", "), "verification passed");
                    } else {
                        tracing::error!(source = %run.source, verify = %run.id, rows = bad,
                            "verification found rows that differ from the live tables; \
                             see `dbtrailctl verify --list`");
                    }
                }
                Err(e) => {
                    run.outcome = VerifyOutcome::Failed;
                    run.error = Some(format!("{e:#}"));
                    tracing::warn!(source = %run.source, verify = %run.id, error = %format!("{e:#}"),
                        "verification failed");
                }
            }
            let outcome = match run.outcome {
                VerifyOutcome::Passed => "passed",
                VerifyOutcome::Mismatch => "mismatch",
                _ => "failed",
            };
            let mut l = labels.clone();
            l.push(("outcome".into(), outcome.into()));
            m.verify_runs.get_or_create(&l).inc();
            me.update(&run);
        });
        Ok((run, handle))
    }
}

/// Steps 1-3 of the module doc; fills `run` as it goes.
async fn verify(
    source: &Arc<Source>,
    backups: &Arc<Backups>,
    cancel: &CancellationToken,
    run: &mut VerifyRun,
    runs: &Verifications,
) -> anyhow::Result<()> {
    let mut tables: Vec<TableRef> = run
        .tables
        .iter()
        .map(|t| {
            t.parse()
                .map_err(|_| anyhow!("table {t:?} is not db.table"))
        })
        .collect::<anyhow::Result<_>>()?;
    if tables.is_empty() {
        tables = runs.rotation(source, source.config.verify_tables)?;
        run.tables = tables.iter().map(ToString::to_string).collect();
        runs.update(run);
    }
    if tables.is_empty() {
        bail!("the newest baseline holds no table to verify");
    }
    let image = crate::pitr::take_image(
        source,
        backups,
        cancel,
        tables.clone(),
        format!("verification {}", run.id),
    )
    .await
    .context("imaging the live tables")?;
    run.image_id = Some(image.id.clone());
    let result = compare_at(source, backups, run, runs, &image).await;
    // The image served this comparison only: restores go on using what they used before.
    let removed = async {
        source.log.delete_baseline(&image.id)?;
        source.store.delete(&image.id).await
    }
    .await;
    if let Err(e) = removed {
        tracing::warn!(source = %source.config.name, image = %image.id, error = %format!("{e:#}"),
            "could not remove the verification's table image (it stays a usable image)");
    }
    result
}

/// Steps 2 and 3 of the module doc, at `image`'s position.
async fn compare_at(
    source: &Arc<Source>,
    backups: &Arc<Backups>,
    run: &mut VerifyRun,
    runs: &Verifications,
    image: &dbtrail_core::baseline::BaselineManifest,
) -> anyhow::Result<()> {
    let at = image.upper.as_ref().unwrap_or(&image.position);
    if at.gtid_set.is_empty() {
        bail!(
            "source {} has no GTIDs (gtid_mode=OFF), so the image's position {at} cannot be \
             a restore target: a verification needs gtid_mode=ON",
            source.config.name
        );
    }
    run.position = Some(at.gtid_set.to_string());
    runs.update(run);
    let req = PitrRequest {
        target_gtid: Some(at.gtid_set.to_string()),
        tables: run.tables.clone(),
        image: Some("baseline".into()),
        ..PitrRequest::default()
    };
    let (s2, r2, id) = (source.clone(), req.clone(), image.id.clone());
    let (live_plan, hist_plan) =
        tokio::task::spawn_blocking(move || crate::pitr::plan_verify(&s2, &r2, &id))
            .await
            .context("the planning thread died")?
            .map_err(|r| anyhow!("a restore to the image's position is refused: {}", r.0))?;
    run.baseline_id = Some(hist_plan.baseline.id.clone());
    run.events = hist_plan.tables.iter().map(|t| t.events).sum();
    runs.update(run);
    let tmp = tempfile::Builder::new()
        .prefix("verify-")
        .tempdir_in(backups.tmp_dir())
        .or_else(|_| tempfile::tempdir())
        .context("creating a temporary directory")?;
    let live_dir = tmp.path().join("live");
    let hist_dir = tmp.path().join("history");
    std::fs::create_dir_all(&live_dir)?;
    std::fs::create_dir_all(&hist_dir)?;
    let live = crate::inputs::plan_inputs(source, &live_plan, &live_dir).await?;
    let hist = crate::inputs::plan_inputs(source, &hist_plan, &hist_dir).await?;
    let settings = crate::inputs::rows_settings(source);
    let log = source.log.clone();
    let results = tokio::task::spawn_blocking(move || compare(&*log, live, hist, &settings))
        .await
        .context("the verification thread died")??;
    drop(tmp);
    run.results = results;
    Ok(())
}

/// Rebuilds both sides and compares them per table (the module doc's step 3).
fn compare(
    log: &dyn dbtrail_core::history::ChangeLog,
    live: Vec<TableInput>,
    hist: Vec<TableInput>,
    settings: &Settings,
) -> anyhow::Result<Vec<TableVerify>> {
    let rebuild = |inputs: &[TableInput], out: &dyn Output| {
        dbtrail_replay::restore::rebuild_to(log, inputs.to_vec(), out, settings, &Quiet)
            .map_err(|e| anyhow!("{e}"))
    };
    let digest = |_: &TableRef, s: &TableSchema| (Rows::new(s), Digest::default());
    let push = |a: &mut (Rows, Digest), r: &Row| a.1.add(&a.0, r);
    let (a, b) = (
        PerTable::new(&digest, push, merge_digest),
        PerTable::new(&digest, push, merge_digest),
    );
    rebuild(&live, &a).context("reading the live tables' image")?;
    rebuild(&hist, &b).context("rebuilding the tables from the history")?;
    let (a, b) = (a.into_inner(), b.into_inner());
    let mut out = Vec::new();
    let mut second: BTreeMap<TableRef, BTreeSet<u32>> = BTreeMap::new();
    for (table, (schema, (_, da))) in &a {
        let Some((hschema, (_, db))) = b.get(table) else {
            bail!("the rebuild from the history did not write {table}");
        };
        if let Some(p) = dbtrail_replay::restore::layout_problem(schema, hschema) {
            bail!("{table}: the rebuild's columns are not the live table's ({p})");
        }
        let differing = da.differing(db);
        if !differing.is_empty() {
            second.insert(table.clone(), differing);
        }
        out.push(TableVerify {
            table: table.to_string(),
            live_rows: da.rows(),
            rebuilt_rows: db.rows(),
            mismatched_rows: 0,
            differences: Vec::new(),
            truncated: false,
        });
    }
    if second.is_empty() {
        return Ok(out);
    }
    let pick = |inputs: &[TableInput]| -> Vec<TableInput> {
        inputs
            .iter()
            .map(|i| TableInput {
                requested: i.requested && second.contains_key(&i.table),
                ..i.clone()
            })
            .collect()
    };
    let collect = |t: &TableRef, s: &TableSchema| {
        Collect::new(s, second.get(t).cloned().unwrap_or_default(), COLLECT_ROWS)
    };
    let offer = |c: &mut Collect, r: &Row| c.offer(r);
    let (ca, cb) = (
        PerTable::new(&collect, offer, merge_collect),
        PerTable::new(&collect, offer, merge_collect),
    );
    rebuild(&pick(&live), &ca).context("reading the live tables' image again")?;
    rebuild(&pick(&hist), &cb).context("rebuilding the tables from the history again")?;
    let (ca, cb) = (ca.into_inner(), cb.into_inner());
    for (table, t) in a.keys().zip(out.iter_mut()) {
        let (Some((schema, la)), Some((_, lb))) = (ca.get(table), cb.get(table)) else {
            continue;
        };
        let diffs = dbtrail_replay::verify::differences(schema, &la.kept, &lb.kept);
        t.mismatched_rows = diffs
            .iter()
            .map(|d| match d {
                Difference::Missing { copies, .. } | Difference::Extra { copies, .. } => *copies,
                Difference::Differs { .. } => 1,
            })
            .sum::<u64>()
            .max(1);
        t.truncated = la.dropped + lb.dropped > 0 || diffs.len() > LIST;
        t.differences = diffs.into_iter().take(LIST).map(view).collect();
    }
    Ok(out)
}

fn view(d: Difference) -> VerifyDifference {
    match d {
        Difference::Missing { key, copies } => VerifyDifference {
            kind: "missing".into(),
            key,
            copies,
            columns: Vec::new(),
        },
        Difference::Extra { key, copies } => VerifyDifference {
            kind: "extra".into(),
            key,
            copies,
            columns: Vec::new(),
        },
        Difference::Differs { key, columns } => VerifyDifference {
            kind: "differs".into(),
            key,
            copies: 1,
            columns: columns
                .into_iter()
                .map(|c| VerifyColumn {
                    column: c.column,
                    live: c.live,
                    rebuilt: c.rebuilt,
                })
                .collect(),
        },
    }
}

struct Quiet;

impl Progress for Quiet {
    fn table_done(&self, _: &TableRef) {}
    fn rows(&self, _: u64) {}
}

/// An [`Output`] that folds each requested table's rows into an `A`, one per lane, merged
/// when the lane finishes: the digests of the first pass, the collected rows of the second.
struct PerTable<'a, A> {
    make: &'a (dyn Fn(&TableRef, &TableSchema) -> A + Sync),
    push: fn(&mut A, &Row),
    merge: fn(&mut A, A),
    got: Mutex<BTreeMap<TableRef, (TableSchema, A)>>,
}

impl<'a, A> PerTable<'a, A> {
    fn new(
        make: &'a (dyn Fn(&TableRef, &TableSchema) -> A + Sync),
        push: fn(&mut A, &Row),
        merge: fn(&mut A, A),
    ) -> Self {
        PerTable {
            make,
            push,
            merge,
            got: Mutex::new(BTreeMap::new()),
        }
    }

    fn into_inner(self) -> BTreeMap<TableRef, (TableSchema, A)> {
        self.got.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

struct LaneSink<'o, 'a, A> {
    out: &'o PerTable<'a, A>,
    table: TableRef,
    acc: A,
}

impl<A: Send> Output for PerTable<'_, A> {
    fn begin_table(&self, input: &TableInput, schema: &TableSchema) -> Result<(), RestoreError> {
        let acc = (self.make)(&input.table, schema);
        lock(&self.got).insert(input.table.clone(), (schema.clone(), acc));
        Ok(())
    }

    fn writer(
        &self,
        input: &TableInput,
        schema: &TableSchema,
        _: u32,
        _: u32,
    ) -> Result<Box<dyn RowSink + '_>, RestoreError> {
        Ok(Box::new(LaneSink {
            out: self,
            table: input.table.clone(),
            acc: (self.make)(&input.table, schema),
        }))
    }

    fn lanes(&self) -> bool {
        true
    }
}

impl<A: Send> RowSink for LaneSink<'_, '_, A> {
    fn push(&mut self, row: &Row) -> Result<(), RestoreError> {
        (self.out.push)(&mut self.acc, row);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<(), RestoreError> {
        let LaneSink { out, table, acc } = *self;
        if let Some((_, all)) = lock(&out.got).get_mut(&table) {
            (out.merge)(all, acc);
        }
        Ok(())
    }
}

/// A lane's digest merged into its table's.
fn merge_digest(all: &mut (Rows, Digest), lane: (Rows, Digest)) {
    all.1.merge(&lane.1);
}

/// A lane's collected rows merged into its table's, within the limit.
fn merge_collect(all: &mut Collect, lane: Collect) {
    all.dropped += lane.dropped;
    let room = COLLECT_ROWS.saturating_sub(all.kept.len());
    let mut kept = lane.kept;
    if kept.len() > room {
        all.dropped += (kept.len() - room) as u64;
        kept.truncate(room);
    }
    all.kept.extend(kept);
}

/// Verifies the rotation every `verify_interval` (unset: never), counting from the last run.
pub async fn schedule(
    source: Arc<Source>,
    backups: Arc<Backups>,
    runs: Arc<Verifications>,
    cancel: CancellationToken,
) {
    let Ok(Some(every)) = source.config.verify_interval() else {
        return;
    };
    let labels = crate::metrics::Metrics::source(&source.config.name);
    source
        .metrics
        .verify_interval
        .get_or_create(&labels)
        .set(every.as_secs() as i64);
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = cancel.cancelled() => return,
        }
        if source.covered_until_us().is_none() {
            tracing::warn!(source = %source.config.name,
                "scheduled verification skipped: capture is not streaming");
            continue;
        }
        match runs.start(source.clone(), backups.clone(), cancel.clone(), Vec::new()) {
            Ok((_, h)) => {
                let _ = h.await;
            }
            Err(id) => {
                tracing::info!(source = %source.config.name, running = %id,
                    "scheduled verification skipped: one is running");
            }
        }
    }
}
