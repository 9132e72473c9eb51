//! Baselines from the log: a new full baseline computed from the newest one and the log,
//! reading nothing from the source (`dbtrailctl backup --from-log`).
//!
//! # Why it is exact
//! It is a restore of every table to a transaction boundary of the log, written as Parquet
//! instead of the mydumper layout: [`plan`] plans it with [`crate::plan::plan`] and
//! [`compute`] runs [`crate::restore::rebuild_to`] into [`ParquetOutput`], so every argument
//! of those modules carries over unchanged (docs/correctness.md, C21).
//! - The boundary is the log's checkpoint ([`LogPoint`], read once): capture moves it only at
//!   a transaction commit, in the same write as the transaction's events, so the transactions
//!   it holds are exactly the logged transactions ending at or before it, and the events of
//!   those are exactly the event ids below its `next_event_id`. The planner sees the log
//!   through [`AtPoint`], which shows only those transactions (and only the images that hold
//!   nothing after it), so transactions capture logs while the baseline is computed are not
//!   in it, whatever their commit times.
//! - The target is a time target at the last transaction's commit time (µs): since commit
//!   times are monotonic in log order, it includes every transaction [`AtPoint`] shows.
//! - The manifest's position is the checkpoint's position: every transaction the files hold is
//!   held by it and every later one is not ([`dbtrail_core::history::held_by`]), so a restore
//!   from this baseline replays exactly the transactions after it. Its `snapshot_us` is the
//!   last transaction's commit time (or the newest full baseline's `snapshot_us` when later,
//!   which happens when commit times are truncated to seconds, so baselines keep sorting by
//!   time): every transaction it holds committed at or before it, so a time target at or after
//!   it includes them all and the planner may anchor any such target on it (a transaction not
//!   held with the same commit time is replayed forward, as after any snapshot).
//! - Each table's state comes from its image as restores choose it: a table changed by DDL
//!   since the anchor needs a table image after the DDL; when one has none (or the log has a
//!   gap, or the table is tainted) the whole baseline is refused, naming the table: a partial
//!   baseline is never written.
//!
//! Rows are written in the order the fold emits them (the image's rows in their order, then
//! the rows the log added, one hash partition at a time), not in primary-key order: no reader
//! relies on the order (the fold applies baseline rows in any order, a restore's chunks are
//! imported in any order), and MySQL's key order under a collation is not known here.
use crate::baseline::BaselineWriter;
use crate::plan::{Plan, PlanContext, Refused};
use crate::restore::{Output, Progress, RestoreError, RowSink, Settings, TableInput, rebuild_to};
use dbtrail_core::api::PitrRequest;
use dbtrail_core::baseline::{BaselineManifest, BaselineTable, SkippedTable, table_file_name};
use dbtrail_core::history::{
    Catalog, ChangeLog, GapInfo, HistoryError, Horizon, TaintInfo, TxnInfo, cmp_binlog,
};
use dbtrail_core::render::rfc3339_micros;
use dbtrail_core::{Gtid, Position, TableRef, TableSchema};
use std::path::PathBuf;
use std::sync::Mutex;

/// The lock mode a baseline from the log records.
pub fn lock_mode(anchor: &str) -> String {
    format!("none (computed from baseline {anchor} and the log)")
}

/// The newest durable point of the log: its checkpoint, read in one piece.
#[derive(Clone, Debug, PartialEq)]
pub struct LogPoint {
    /// The position after the last durable transaction.
    pub position: Position,
    /// Commit time of that transaction (µs).
    pub last_commit_us: i64,
    /// Events with ids below this are durable.
    pub next_event_id: u64,
}

/// Whether a snapshot at `outer` holds every transaction a snapshot at `inner` holds.
pub fn covers(outer: &Position, inner: &Position) -> bool {
    if !outer.gtid_set.is_empty() && !inner.gtid_set.is_empty() {
        inner.gtid_set.is_subset(&outer.gtid_set)
    } else {
        cmp_binlog((&inner.file, inner.pos), (&outer.file, outer.pos))
            != std::cmp::Ordering::Greater
    }
}

/// The catalog as it stood at `point`: the transactions it holds, the images that hold
/// nothing after it, and its horizon.
pub struct AtPoint<'a> {
    /// The catalog.
    pub inner: &'a dyn Catalog,
    /// The point.
    pub point: &'a LogPoint,
}

impl Catalog for AtPoint<'_> {
    fn baselines(&self) -> Result<Vec<BaselineManifest>, HistoryError> {
        let mut all = self.inner.baselines()?;
        all.retain(|b| covers(&self.point.position, &b.position));
        Ok(all)
    }

    fn origin(&self) -> Result<Option<Position>, HistoryError> {
        self.inner.origin()
    }

    fn scan_txns(&self, visit: &mut dyn FnMut(TxnInfo) -> bool) -> Result<(), HistoryError> {
        self.inner.scan_txns(&mut |t| {
            // The log's transactions are in order: the first one not held ends the view.
            t.held_by(&self.point.position) && visit(t)
        })
    }

    fn txn_by_gtid(&self, gtid: &Gtid) -> Result<Option<TxnInfo>, HistoryError> {
        Ok(self
            .inner
            .txn_by_gtid(gtid)?
            .filter(|t| t.held_by(&self.point.position)))
    }

    fn horizon(&self) -> Result<Option<Horizon>, HistoryError> {
        Ok(Some(Horizon {
            last_commit_us: self.point.last_commit_us,
            next_event_id: self.point.next_event_id,
        }))
    }

    fn gaps(&self) -> Result<Vec<GapInfo>, HistoryError> {
        self.inner.gaps()
    }

    fn taints(&self) -> Result<Vec<TaintInfo>, HistoryError> {
        self.inner.taints()
    }

    fn tables(&self) -> Result<Vec<(u32, TableRef)>, HistoryError> {
        self.inner.tables()
    }

    fn event_bytes(&self) -> Result<u64, HistoryError> {
        self.inner.event_bytes()
    }
}

/// A planned baseline from the log.
#[derive(Clone, Debug)]
pub struct FromLogPlan {
    /// The restore of every table to `point` (its `baseline` is the anchor).
    pub plan: Plan,
    /// The baseline's snapshot time: the last transaction's commit time.
    pub snapshot_us: i64,
    /// The anchor's skipped tables the new baseline does not hold either.
    pub skipped: Vec<SkippedTable>,
}

/// What planning needs besides the log.
#[derive(Clone, Debug)]
pub struct FromLogContext {
    /// The source's name (for messages).
    pub source_name: String,
    /// The source's `restore_keys_in_memory`.
    pub keys_in_memory: u64,
    /// The databases baselines cover (None: all).
    pub databases: Option<Vec<String>>,
}

fn refused(why: impl std::fmt::Display) -> Refused {
    Refused(format!(
        "a baseline cannot be computed from the log: {why}; take a snapshot of the source with \
         `dbtrailctl backup`"
    ))
}

/// Plans a baseline of every table at `point` from the newest full baseline before it and
/// the log (the module doc has the argument).
pub fn plan(
    catalog: &dyn Catalog,
    log: &dyn ChangeLog,
    point: &LogPoint,
    ctx: &FromLogContext,
) -> Result<FromLogPlan, Refused> {
    let x = point.last_commit_us;
    let full: Vec<BaselineManifest> = catalog
        .baselines()?
        .into_iter()
        .filter(|b| b.origin.is_full())
        .collect();
    // Capture must have caught up with every baseline (or a new one could sort before it).
    if let Some(b) = full.iter().find(|b| !covers(&point.position, &b.position)) {
        return Err(Refused(format!(
            "baseline {} (position {}) holds transactions the log does not have yet (the log \
             ends at {}): wait for capture to catch up (`dbtrailctl status`)",
            b.id, b.position, point.position
        )));
    }
    if let Some(newest) = full.last() {
        let mut news = false;
        AtPoint {
            inner: catalog,
            point,
        }
        .scan_txns(&mut |t| {
            news = !t.held_by(&newest.position);
            !news
        })?;
        if !news {
            return Err(Refused(format!(
                "baseline {} already holds every transaction in the log (which ends at {}): \
                 nothing to compute",
                newest.id, point.position
            )));
        }
    }
    // The baseline's time, and the target: never before a full baseline's time, so
    // baselines keep sorting by time and the newest full one before it can anchor it (with
    // commit times truncated to seconds, a snapshot may be taken after the last commit's
    // second). Every transaction in view committed at or before it.
    let snapshot_us = full.iter().map(|b| b.snapshot_us).fold(x, i64::max);
    let req = PitrRequest {
        target_time: Some(rfc3339_micros(snapshot_us)),
        image: Some("baseline".into()),
        ..PitrRequest::default()
    };
    let pctx = PlanContext {
        now_us: snapshot_us,
        covered_until_us: Some(snapshot_us),
        keys_in_memory: ctx.keys_in_memory,
        source_name: ctx.source_name.clone(),
        live: Err("a baseline from the log reads nothing from the source".into()),
        databases: ctx.databases.clone(),
        live_image: None,
        exclude_image: None,
    };
    let view = AtPoint {
        inner: catalog,
        point,
    };
    let plan = crate::plan::plan(&view, log, &req, &pctx).map_err(|r| refused(r.0))?;
    let Some(last) = &plan.last else {
        return Err(refused(format!(
            "internal error: no transaction after baseline {} up to {}",
            plan.baseline.id, point.position
        )));
    };
    if !last.held_by(&point.position)
        || plan
            .tables
            .iter()
            .any(|t| t.window.end > point.next_event_id)
    {
        return Err(refused(format!(
            "internal error: the plan reaches past the log's checkpoint {}",
            point.position
        )));
    }
    let skipped = plan
        .baseline
        .skipped
        .iter()
        .filter(|s| !plan.tables.iter().any(|t| t.table == s.table))
        .cloned()
        .collect();
    Ok(FromLogPlan {
        snapshot_us,
        plan,
        skipped,
    })
}

/// The key-value metadata of every table file of a baseline from the log (the keys a
/// snapshot's files carry, and the anchor); each file adds `dbtrail.create_table`.
pub fn file_metadata(position: &Position, snapshot_us: i64, anchor: &str) -> Vec<(String, String)> {
    vec![
        (
            "dbtrail.gtid_set".into(),
            position.gtid_set.to_compact_string(),
        ),
        ("dbtrail.binlog_file".into(), position.file.clone()),
        ("dbtrail.binlog_pos".into(), position.pos.to_string()),
        ("dbtrail.server_uuid".into(), position.server_uuid.clone()),
        ("dbtrail.snapshot_time".into(), rfc3339_micros(snapshot_us)),
        ("dbtrail.computed_from".into(), anchor.into()),
    ]
}

/// Writes each requested table as one baseline Parquet file (one lane per table), at the
/// path `path_of` gives for its [`table_file_name`].
pub struct ParquetOutput<F: Fn(&str) -> PathBuf + Sync> {
    path_of: F,
    metadata: Vec<(String, String)>,
    row_group_rows: usize,
    written: Mutex<Vec<BaselineTable>>,
}

impl<F: Fn(&str) -> PathBuf + Sync> ParquetOutput<F> {
    /// Files at `path_of(table_file_name(table))`, with `metadata` and row groups of at most
    /// `row_group_rows` rows.
    pub fn new(path_of: F, metadata: Vec<(String, String)>, row_group_rows: usize) -> Self {
        ParquetOutput {
            path_of,
            metadata,
            row_group_rows,
            written: Mutex::new(Vec::new()),
        }
    }

    /// The tables written, sorted by name.
    pub fn into_tables(self) -> Vec<BaselineTable> {
        let mut v = self.written.into_inner().unwrap_or_else(|e| e.into_inner());
        v.sort_by(|a, b| a.table.cmp(&b.table));
        v
    }
}

struct ParquetSink<'a> {
    writer: BaselineWriter<std::io::BufWriter<std::fs::File>>,
    path: PathBuf,
    entry: BaselineTable,
    written: &'a Mutex<Vec<BaselineTable>>,
}

impl RowSink for ParquetSink<'_> {
    fn push(&mut self, row: &dbtrail_core::Row) -> Result<(), RestoreError> {
        Ok(self.writer.push(row)?)
    }

    fn finish(self: Box<Self>) -> Result<(), RestoreError> {
        let s = *self;
        let mut entry = s.entry;
        entry.rows = s.writer.finish()?;
        entry.bytes = std::fs::metadata(&s.path)
            .map_err(|source| RestoreError::Open {
                path: s.path.display().to_string(),
                source,
            })?
            .len();
        s.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(entry);
        Ok(())
    }
}

impl<F: Fn(&str) -> PathBuf + Sync> Output for ParquetOutput<F> {
    fn begin_table(&self, _: &TableInput, _: &TableSchema) -> Result<(), RestoreError> {
        Ok(())
    }

    fn writer(
        &self,
        input: &TableInput,
        schema: &TableSchema,
        lane: u32,
        lanes: u32,
    ) -> Result<Box<dyn RowSink + '_>, RestoreError> {
        if (lane, lanes) != (0, 1) {
            return Err(RestoreError::Table {
                table: input.table.clone(),
                detail: "internal error: a baseline file is written by one lane".into(),
            });
        }
        let file = table_file_name(&input.table);
        let path = (self.path_of)(&file);
        let open_err = |source| RestoreError::Open {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(open_err)?;
        }
        let f = std::fs::File::create(&path).map_err(open_err)?;
        let mut kv = self.metadata.clone();
        kv.push(("dbtrail.create_table".into(), input.create_table.clone()));
        let writer =
            BaselineWriter::new(std::io::BufWriter::new(f), schema, kv, self.row_group_rows)?;
        Ok(Box::new(ParquetSink {
            writer,
            path,
            entry: BaselineTable {
                table: input.table.clone(),
                file,
                rows: 0,
                bytes: 0,
                create_table: input.create_table.clone(),
                parts: Vec::new(),
            },
            written: &self.written,
        }))
    }

    fn lanes(&self) -> bool {
        false
    }
}

/// Rebuilds `inputs` (the plan's tables, with the parents its cascades need) into `out`;
/// returns the tables written, sorted by name. Fails unless every requested table was.
pub fn compute<F: Fn(&str) -> PathBuf + Sync>(
    log: &dyn ChangeLog,
    inputs: Vec<TableInput>,
    out: ParquetOutput<F>,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<Vec<BaselineTable>, RestoreError> {
    let mut want: Vec<TableRef> = inputs
        .iter()
        .filter(|t| t.requested)
        .map(|t| t.table.clone())
        .collect();
    want.sort();
    rebuild_to(log, inputs, &out, settings, progress)?;
    let tables = out.into_tables();
    let got: Vec<TableRef> = tables.iter().map(|t| t.table.clone()).collect();
    if got != want {
        return Err(RestoreError::Table {
            table: want
                .first()
                .cloned()
                .unwrap_or_else(|| TableRef::new("", "")),
            detail: format!(
                "internal error: {} tables were to be written, {} were",
                want.len(),
                got.len()
            ),
        });
    }
    Ok(tables)
}

#[cfg(test)]
mod tests;
