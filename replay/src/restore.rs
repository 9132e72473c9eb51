//! The restore engine's execution: rebuild chosen tables from their baseline images and the
//! log ([`ChangeLog`]) as a mydumper dump, in parallel, with bounded memory.
//!
//! # The rule (what each table's [`Window`] selects)
//! For each table, from an image at or before the target (forward),
//! `state(target) = image + fold(changes with cut <= event_id < end)`: the window's changes
//! are exactly those of the table the image does not hold up to the last included
//! transaction. From an image after the target (backward),
//! `state(target) = image + fold_backward(changes with cut <= event_id < end)`: the window's
//! changes are those after the target that the image holds. [`crate::plan`] chooses the image
//! and the window per table; [`crate::fold`] states why both folds of full images are exact,
//! per key and for key-less multisets.
//!
//! # Execution
//! - Tables whose foreign keys cascade (see [`crate::cascade`]) are rebuilt first, one at a
//!   time, parents before children, each in passes until its derived changes settle and a
//!   final strict pass that writes it (when it was requested).
//! - The other tables run on a pool of one thread per core: tables in parallel, and a large
//!   table in several lanes when there are fewer tables than cores; lane `l` takes the hash
//!   partitions `l, l + lanes, ...` of its keys and writes chunks `l, l + lanes, ...`.
//! - Output: [`rebuild`] writes the mydumper layout ([`DumpOutput`]); [`rebuild_to`] takes
//!   any [`Output`] (a baseline's Parquet files: [`crate::fromlog`]), which may ask for one
//!   lane per table.
//! - Memory: a table's changes are folded one hash partition of its keys at a time, each
//!   partition holding at most about `keys_in_memory` keys (two per change at most);
//!   partitions add up to one pass ([`crate::fold::Fold::partition`]).
use crate::cascade::{self, At, CascadeError, Derived, Timeline, Triggers};
use crate::dump::{self, DumpError, TableWriter};
use crate::fold::{Fold, FoldError};
use dbtrail_core::history::{ChangeLog, HistoryError};
use dbtrail_core::{Row, TableRef, TableSchema};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Tables at least this large (baseline rows + replayed changes) are rebuilt by several
/// threads at once when there are fewer tables than cores.
pub const PARALLEL_MIN_ROWS: u64 = 100_000;

/// Why a restore could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Reading the log.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// Reading a baseline file.
    #[error(transparent)]
    Baseline(#[from] crate::baseline::BaselineError),
    /// Writing the dump.
    #[error(transparent)]
    Dump(#[from] DumpError),
    /// The changes do not continue the baseline.
    #[error(transparent)]
    Fold(#[from] FoldError),
    /// Cascades that cannot be derived exactly.
    #[error(transparent)]
    Cascade(#[from] CascadeError),
    /// Opening a baseline file.
    #[error("opening the baseline file {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A table changed its layout inside the window.
    #[error(
        "{table} changed after the baseline (event at {at}): {detail}; restoring across DDL is \
         not supported yet: choose an earlier target or take a baseline after it"
    )]
    Layout {
        /// The table.
        table: TableRef,
        /// The event's commit time (RFC 3339).
        at: String,
        /// What changed.
        detail: String,
    },
    /// Anything else, with the table it concerns.
    #[error("restoring {table}: {detail}")]
    Table {
        /// The table.
        table: TableRef,
        /// What went wrong.
        detail: String,
    },
}

/// Which changes are replayed: those with `cut <= event_id < end`, found by scanning commit
/// times `since_us ..= until_us`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First event id not held by the baseline.
    pub cut: u64,
    /// Events with ids at or above this are after the target.
    pub end: u64,
    /// Scan from this commit time ...
    pub since_us: i64,
    /// ... to this one (inclusive).
    pub until_us: i64,
}

impl Window {
    fn ids(&self) -> std::ops::Range<u64> {
        self.cut..self.end.max(self.cut)
    }
}

/// Sizes and limits.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Keys held in memory per pass at most (about).
    pub keys_in_memory: u64,
    /// Data chunk files are closed after about this many bytes.
    pub chunk_bytes: u64,
    /// INSERT statements hold about this many bytes.
    pub statement_bytes: usize,
    /// Worker threads.
    pub threads: usize,
}

/// One table to rebuild: its baseline image and where its changes are.
#[derive(Clone, Debug)]
pub struct TableInput {
    /// The table.
    pub table: TableRef,
    /// Its changes to replay onto the image.
    pub window: Window,
    /// The image is after the target: the window is folded backward.
    pub backward: bool,
    /// Rows in its image file.
    pub rows: u64,
    /// `SHOW CREATE TABLE` at the image (the dump's schema file: no DDL lies between the
    /// image and the target).
    pub create_table: String,
    /// Its id in the log, if the log has seen it.
    pub table_id: Option<u32>,
    /// Its image (a baseline's table files, one per primary-key range, in key order) on
    /// local disk: read one after another, they are the table in key order.
    pub files: Vec<PathBuf>,
    /// Written to the output; otherwise only rebuilt for its children's cascades.
    pub requested: bool,
}

/// Where a rebuild writes the requested tables.
pub trait Output: Sync {
    /// A requested table is about to be written (once, before any of its writers).
    fn begin_table(&self, input: &TableInput, schema: &TableSchema) -> Result<(), RestoreError>;
    /// A writer of lane `lane` of `lanes` of a requested table (`schema` is its image's).
    fn writer(
        &self,
        input: &TableInput,
        schema: &TableSchema,
        lane: u32,
        lanes: u32,
    ) -> Result<Box<dyn RowSink + '_>, RestoreError>;
    /// Whether one table may be written by several lanes at once (else one per table).
    fn lanes(&self) -> bool;
}

/// The rows of one lane of one table, as they are rebuilt.
pub trait RowSink {
    /// One row of the table at the target.
    fn push(&mut self, row: &Row) -> Result<(), RestoreError>;
    /// The lane is complete.
    fn finish(self: Box<Self>) -> Result<(), RestoreError>;
}

/// The mydumper layout in a directory: a schema file per table, data in chunk files.
pub struct DumpOutput<'a> {
    /// The directory.
    pub dir: &'a Path,
    /// Data chunk files are closed after about this many bytes.
    pub chunk_bytes: u64,
    /// INSERT statements hold about this many bytes.
    pub statement_bytes: usize,
}

impl Output for DumpOutput<'_> {
    fn begin_table(&self, input: &TableInput, _: &TableSchema) -> Result<(), RestoreError> {
        dump::write_schema(self.dir, &input.table, &input.create_table)?;
        Ok(())
    }

    fn writer(
        &self,
        _: &TableInput,
        schema: &TableSchema,
        lane: u32,
        lanes: u32,
    ) -> Result<Box<dyn RowSink + '_>, RestoreError> {
        Ok(Box::new(
            TableWriter::new(self.dir, schema, self.chunk_bytes, self.statement_bytes)?
                .with_chunks(lane, lanes),
        ))
    }

    fn lanes(&self) -> bool {
        true
    }
}

impl RowSink for TableWriter {
    fn push(&mut self, row: &Row) -> Result<(), RestoreError> {
        Ok(TableWriter::push(self, row)?)
    }

    fn finish(self: Box<Self>) -> Result<(), RestoreError> {
        TableWriter::finish(*self)?;
        Ok(())
    }
}

/// Told as tables finish and rows are written.
pub trait Progress: Sync {
    /// A requested table is complete.
    fn table_done(&self, table: &TableRef);
    /// `n` more rows were written.
    fn rows(&self, n: u64);
}

fn open(path: &Path) -> Result<std::fs::File, RestoreError> {
    std::fs::File::open(path).map_err(|source| RestoreError::Open {
        path: path.display().to_string(),
        source,
    })
}

/// The schema a baseline file holds.
pub fn file_schema(path: &Path) -> Result<TableSchema, RestoreError> {
    Ok(crate::baseline::schema_of(&open(path)?)?)
}

impl TableInput {
    /// The schema of its image (every range file holds the same one: the first's is read).
    pub fn schema(&self) -> Result<TableSchema, RestoreError> {
        match self.files.first() {
            Some(f) => file_schema(f),
            None => Err(RestoreError::Table {
                table: self.table.clone(),
                detail: "its image has no file".into(),
            }),
        }
    }

    /// Visits the rows of its image in key order: its range files one after another.
    fn read_image(
        &self,
        mut visit: impl FnMut(Row) -> Result<(), crate::baseline::BaselineError>,
    ) -> Result<(), RestoreError> {
        for f in &self.files {
            crate::baseline::read(open(f)?, &mut visit)?;
        }
        Ok(())
    }
}

/// Why changes decoded with schema `s` cannot be applied to a baseline of `base`, if they
/// cannot.
pub fn layout_problem(base: &TableSchema, s: &TableSchema) -> Option<String> {
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

/// Visits the window's changes of `table` (table id `id`, baseline schema `schema`) in log
/// order, checking each schema version's layout against the baseline.
fn scan_checked(
    log: &dyn ChangeLog,
    w: &Window,
    table: &TableRef,
    id: u32,
    schema: &TableSchema,
    mut visit: impl FnMut(u64, dbtrail_core::RowChange),
) -> Result<(), RestoreError> {
    if w.cut >= w.end {
        return Ok(());
    }
    let mut layouts: HashMap<u32, Option<String>> = HashMap::new();
    let mut bad: Option<RestoreError> = None;
    log.scan_table(id, w.since_us, w.until_us, w.ids(), &mut |c| {
        let problem = layouts.entry(c.schema_version).or_insert_with(|| {
            match log.schema(id, c.schema_version) {
                Ok(Some(s)) => layout_problem(schema, &s),
                Ok(None) => Some(format!("schema version {} is missing", c.schema_version)),
                Err(e) => Some(e.to_string()),
            }
        });
        if let Some(p) = problem {
            bad = Some(RestoreError::Layout {
                table: table.clone(),
                at: dbtrail_core::render::rfc3339_micros(c.commit_us),
                detail: p.clone(),
            });
            return false;
        }
        visit(c.event_id, c.change);
        true
    })?;
    match bad {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The parents whose changes fire `schema`'s cascading keys.
pub fn cascading_parents(schema: &TableSchema) -> BTreeSet<TableRef> {
    schema
        .foreign_keys
        .iter()
        .filter(|fk| fk.cascades())
        .map(|fk| fk.parent.clone())
        .collect()
}

/// Which event ids may fire cascades: those where the server did not log them (or where the
/// log does not say: deriving over logged cascades finds nothing to do, since the server logs
/// a statement's child rows before its parent row).
pub struct Derivable(Vec<(u64, bool)>);

impl Derivable {
    /// From the log.
    pub fn new(log: &dyn ChangeLog) -> Result<Derivable, RestoreError> {
        Ok(Derivable(log.cascades_logged()?))
    }

    /// True unless the facts in force at `event_id` say the server logged its cascades.
    pub fn at(&self, event_id: u64) -> bool {
        let i = self.0.partition_point(|(id, _)| *id <= event_id);
        match i.checked_sub(1).and_then(|i| self.0.get(i)) {
            Some((_, logged)) => !logged,
            None => true,
        }
    }

    /// True when some event id in `from..to` may fire cascades.
    pub fn any_in(&self, from: u64, to: u64) -> bool {
        if from >= to {
            return false;
        }
        self.at(from)
            || self
                .0
                .iter()
                .any(|(id, logged)| *id > from && *id < to && !logged)
    }
}

/// Orders tables with cascading keys parents first; a cycle other than a table referencing
/// itself is refused.
fn order(
    mut left: BTreeMap<TableRef, (TableInput, TableSchema)>,
) -> Result<Vec<(TableInput, TableSchema)>, RestoreError> {
    let mut out = Vec::new();
    while !left.is_empty() {
        let ready: Vec<TableRef> = left
            .iter()
            .filter(|(name, (_, s))| {
                cascading_parents(s)
                    .iter()
                    .all(|p| p == *name || !left.contains_key(p))
            })
            .map(|(n, _)| n.clone())
            .collect();
        let Some(first) = left.keys().next().cloned() else {
            break;
        };
        if ready.is_empty() {
            let names: Vec<String> = left.keys().map(|t| t.to_string()).collect();
            return Err(RestoreError::Table {
                table: first,
                detail: format!(
                    "the cascading foreign keys of {} form a cycle between tables; restoring \
                     them is not supported (restore other tables, or take a new baseline after \
                     the target)",
                    names.join(", ")
                ),
            });
        }
        for n in ready {
            if let Some(t) = left.remove(&n) {
                out.push(t);
            }
        }
    }
    Ok(out)
}

/// Rebuilds `inputs` into the mydumper layout in `out`: the tables with cascading foreign
/// keys first (see the module doc), then the rest in parallel. Writes each requested table's
/// schema file too.
pub fn rebuild(
    log: &dyn ChangeLog,
    inputs: Vec<TableInput>,
    out: &Path,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<(), RestoreError> {
    let out = DumpOutput {
        dir: out,
        chunk_bytes: settings.chunk_bytes,
        statement_bytes: settings.statement_bytes,
    };
    rebuild_to(log, inputs, &out, settings, progress)
}

/// [`rebuild`] into any [`Output`].
pub fn rebuild_to(
    log: &dyn ChangeLog,
    inputs: Vec<TableInput>,
    out: &dyn Output,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<(), RestoreError> {
    let derivable = Derivable::new(log)?;
    let mut cascading = BTreeMap::new();
    let mut plain = Vec::new();
    for t in inputs {
        let schema = t.schema()?;
        if t.requested {
            out.begin_table(&t, &schema)?;
        }
        let derive = derivable.any_in(t.window.cut, t.window.end);
        if derive && !cascading_parents(&schema).is_empty() {
            if t.backward {
                return Err(RestoreError::Table {
                    table: t.table.clone(),
                    detail: "its foreign-key cascades were not logged between the target and \
                             the image after it, and a backward restore cannot un-derive them: \
                             restore it from an image before the target (--image baseline)"
                        .into(),
                });
            }
            cascading.insert(t.table.clone(), (t, schema));
        } else if t.requested {
            plain.push((t, schema));
        }
    }
    rebuild_cascading(log, order(cascading)?, out, settings, &derivable, progress)?;
    rebuild_plain(log, plain, out, settings, progress)
}

/// One table of the parallel phase.
struct Work {
    input: TableInput,
    schema: TableSchema,
    parts: u64,
    lanes: u64,
    remaining: AtomicUsize,
}

fn rebuild_plain(
    log: &dyn ChangeLog,
    tables: Vec<(TableInput, TableSchema)>,
    out: &dyn Output,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<(), RestoreError> {
    let cores = settings.threads.max(1) as u64;
    let n_tables = tables.len().max(1) as u64;
    let bound = settings.keys_in_memory.max(1);
    let mut work = Vec::new();
    for (input, schema) in tables {
        let w = &input.window;
        let changes = match input.table_id {
            Some(id) if w.cut < w.end => {
                log.count_table_changes(id, w.since_us, w.until_us, w.ids())?
            }
            _ => 0,
        };
        let by_memory = (changes * 2).div_ceil(bound).max(1);
        let big = input.rows + changes >= PARALLEL_MIN_ROWS || by_memory > 1;
        let lanes = if out.lanes() && n_tables < cores && big {
            (cores / n_tables).max(1)
        } else {
            1
        };
        // Lanes run at once: each partition holds a lanes-th of the bound.
        let parts = (changes * 2 * lanes).div_ceil(bound).max(1).div_ceil(lanes) * lanes;
        work.push(Work {
            input,
            schema,
            parts,
            lanes,
            remaining: AtomicUsize::new(lanes as usize),
        });
    }
    let units: Vec<(usize, u64)> = work
        .iter()
        .enumerate()
        .flat_map(|(t, x)| (0..x.lanes).map(move |l| (t, l)))
        .collect();
    let next = AtomicUsize::new(0);
    let errors: Mutex<Vec<RestoreError>> = Mutex::new(Vec::new());
    let failed = || errors.lock().map(|e| !e.is_empty()).unwrap_or(true);
    std::thread::scope(|s| {
        for _ in 0..(cores as usize).min(units.len().max(1)) {
            s.spawn(|| {
                loop {
                    if failed() {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(t, lane)) = units.get(i) else {
                        return;
                    };
                    let x = &work[t];
                    match rebuild_lane(log, x, lane, out, progress) {
                        Ok(()) => {
                            if x.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                                progress.table_done(&x.input.table);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut v) = errors.lock() {
                                v.push(e);
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    match errors.into_inner().ok().and_then(|mut v| v.pop()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// One lane of a table: its partitions, one pass each, into its own chunk files.
fn rebuild_lane(
    log: &dyn ChangeLog,
    x: &Work,
    lane: u64,
    out: &dyn Output,
    progress: &dyn Progress,
) -> Result<(), RestoreError> {
    let mut writer = out.writer(&x.input, &x.schema, lane as u32, x.lanes as u32)?;
    for index in (lane..x.parts).step_by(x.lanes as usize) {
        let mut fold = Fold::partition(&x.schema.primary_key, x.parts, index);
        if x.input.backward {
            fold = fold.backward();
        }
        if let Some(id) = x.input.table_id {
            let w = &x.input.window;
            scan_checked(log, w, &x.input.table, id, &x.schema, |_, c| fold.push(c))?;
        }
        let mut applier = fold.applier();
        let mut err: Option<RestoreError> = None;
        let mut rows = 0u64;
        {
            let mut emit = |r: Row| {
                if err.is_none()
                    && let Err(e) = writer.push(&r)
                {
                    err = Some(e);
                }
                rows += 1;
                if rows.is_multiple_of(65536) {
                    progress.rows(65536);
                }
            };
            x.input.read_image(|r| {
                applier.feed(r, &mut emit);
                Ok(())
            })?;
            applier.finish(&mut emit)?;
        }
        progress.rows(rows % 65536);
        if let Some(e) = err {
            return Err(e);
        }
    }
    writer.finish()
}

/// Adds the window's logged changes of `parent` to `triggers`, where cascades were not logged.
fn add_logged(
    log: &dyn ChangeLog,
    w: &Window,
    parent: &TableRef,
    derivable: &Derivable,
    triggers: &mut Triggers,
) -> Result<(), RestoreError> {
    let Some(pid) = log.table_id(parent)? else {
        return Ok(());
    };
    if w.cut >= w.end {
        return Ok(());
    }
    let mut schemas: HashMap<u32, Option<TableSchema>> = HashMap::new();
    let mut err: Option<RestoreError> = None;
    log.scan_table(pid, w.since_us, w.until_us, w.ids(), &mut |c| {
        if !derivable.at(c.event_id) {
            return true;
        }
        let s = schemas
            .entry(c.schema_version)
            .or_insert_with(|| log.schema(pid, c.schema_version).ok().flatten());
        let Some(s) = s else {
            err = Some(RestoreError::Table {
                table: parent.clone(),
                detail: format!(
                    "schema version {} is missing from the log",
                    c.schema_version
                ),
            });
            return false;
        };
        if let Err(e) = triggers.add_parent_change(parent, s, (c.event_id, 0), &c.change) {
            err = Some(e.into());
            return false;
        }
        true
    })?;
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn rebuild_cascading(
    log: &dyn ChangeLog,
    tables: Vec<(TableInput, TableSchema)>,
    out: &dyn Output,
    settings: &Settings,
    derivable: &Derivable,
    progress: &dyn Progress,
) -> Result<(), RestoreError> {
    // Derived changes of each table rebuilt so far, with its schema.
    let mut derived: HashMap<TableRef, (TableSchema, Vec<Derived>)> = HashMap::new();
    // Windows of the tables rebuilt so far: a child's triggers are its parents' changes in
    // the child's window, so a parent must have been rebuilt over at least that window.
    let mut windows: HashMap<TableRef, Window> = HashMap::new();
    for (t, schema) in &tables {
        let name = &t.table;
        let w = &t.window;
        let parents = cascading_parents(schema);
        for p in &parents {
            if let Some(pw) = windows.get(p)
                && p != name
                && (pw.cut > w.cut || pw.end < w.end)
            {
                return Err(RestoreError::Table {
                    table: name.clone(),
                    detail: format!(
                        "its cascading parent {p} is rebuilt from a newer image than it is, so \
                         the parent's cascades in between are unknown; restore both from the \
                         same baseline (--image baseline)"
                    ),
                });
            }
        }
        windows.insert(name.clone(), *w);
        let changes = match t.table_id {
            Some(id) if w.cut < w.end => {
                log.count_table_changes(id, w.since_us, w.until_us, w.ids())?
            }
            _ => 0,
        };
        let parts = (changes * 2)
            .div_ceil(settings.keys_in_memory.max(1))
            .max(1);
        let base = || -> Result<Triggers, RestoreError> {
            let mut tr = Triggers::new(schema, |p| parents.contains(p))?
                .unwrap_or_else(|| Triggers::empty(schema));
            for p in &parents {
                // A self-referencing table's own derived changes are added by `settle`.
                if let Some((ps, d)) = derived.get(p) {
                    for x in d.iter().filter(|x| x.at.0 >= w.cut && x.at.0 < w.end) {
                        tr.add_parent_change(p, ps, x.at, &x.change)?;
                    }
                }
                add_logged(log, w, p, derivable, &mut tr)?;
            }
            Ok(tr)
        };
        let settled = cascade::settle::<RestoreError>(name, schema, base, |tr, mv| {
            rebuild_one(log, t, schema, parts, tr, mv, None, progress)
        })?;
        // The final pass, strict: every logged change checked against the derived state.
        let write = t.requested.then_some(out);
        let again = rebuild_one(
            log,
            t,
            schema,
            parts,
            &settled.triggers,
            &settled.moved,
            write,
            progress,
        )?;
        if again != settled.derived {
            return Err(RestoreError::Table {
                table: name.clone(),
                detail: "internal error: the derived cascades changed between passes".into(),
            });
        }
        if t.requested {
            progress.table_done(name);
        }
        derived.insert(name.clone(), (schema.clone(), settled.derived));
    }
    Ok(())
}

/// One table with cascades, all its partitions: its derived changes (in order), and its rows
/// to the output when `write` is given.
#[allow(clippy::too_many_arguments)]
fn rebuild_one(
    log: &dyn ChangeLog,
    t: &TableInput,
    schema: &TableSchema,
    parts: u64,
    triggers: &Triggers,
    moved: &[(At, Row)],
    write: Option<&dyn Output>,
    progress: &dyn Progress,
) -> Result<Vec<Derived>, RestoreError> {
    let mut writer = match write {
        Some(out) => Some(out.writer(t, schema, 0, 1)?),
        None => None,
    };
    let mut all = Vec::new();
    for index in 0..parts.max(1) {
        let mut tl = Timeline::partition(&schema.primary_key, parts.max(1), index);
        if let Some(id) = t.table_id {
            scan_checked(log, &t.window, &t.table, id, schema, |event_id, c| {
                tl.push(event_id, c)
            })?;
        }
        for (at, r) in moved {
            tl.push_move(*at, r.clone());
        }
        let mut applier = tl.applier(triggers);
        let mut werr: Option<RestoreError> = None;
        let mut rows = 0u64;
        let mut emit = |r: Row| {
            if let Some(wr) = writer.as_mut()
                && werr.is_none()
                && let Err(e) = wr.push(&r)
            {
                werr = Some(e);
            }
            rows += 1;
        };
        let mut ferr: Option<CascadeError> = None;
        t.read_image(|r| {
            if ferr.is_none()
                && let Err(e) = applier.feed(r, &mut emit)
            {
                ferr = Some(e);
            }
            Ok(())
        })?;
        if let Some(e) = ferr {
            return Err(e.into());
        }
        let d = applier.finish(&mut emit)?;
        if let Some(e) = werr {
            return Err(e);
        }
        if writer.is_some() {
            progress.rows(rows);
        }
        all.extend(d);
    }
    if let Some(wr) = writer {
        wr.finish()?;
    }
    cascade::sort_derived(&mut all);
    Ok(all)
}

#[cfg(test)]
pub(crate) mod tests;
