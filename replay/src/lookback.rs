//! Looking back without a restore: the rows of one key at a target, the net change of a table
//! between two moments, and every version of one row, from the images and the log.
//!
//! # One key at T
//! `state(T)` restricted to the rows with key `k` = the restore engine's rule ([`crate::fold`],
//! forward from an image before T or backward from one after it) applied to the image's rows
//! with key `k` and the window's changes whose before- or after-image has key `k`. Why that is
//! exact: the fold is per key (a keyed table's result for `k` depends only on the image row of
//! `k` and the changes naming `k`: a primary-key update from `j` to `k` names `k` in its
//! after-image and is kept), and for a table without a key every copy is a full row, so the
//! rows matching the named columns are folded from exactly the changes of matching rows. The
//! image is read by key ([`crate::baseline::lookup`]); only the table's changes in the window
//! are scanned. When the server did not log the cascades of a foreign key of the table inside
//! the window, the key's rows depend on its parents' changes: the caller rebuilds the whole
//! table instead ([`needs_full_rebuild`]).
//!
//! # The net change between T1 and T2
//! `diff(T1, T2)` = for every key changed by a change committed in `(T1, T2]` (after T1's last
//! microsecond at its precision, up to T2's last): its row at T1 (the before-image of its first
//! change in the window; absent if that change inserted it) and at T2 (the after-image of its
//! last change; absent if that deleted it), reported when they differ. Exact because a key
//! changes only through its logged changes, so between two of them it keeps the last
//! after-image: the first change's before-image is its state at T1, the last's after-image its
//! state at T2. Tables without a key are multisets: the net copies added or removed per full
//! row. Nothing is read from an image. Memory: one entry per changed key of one hash partition
//! of the keys; a window with more changes than the bound is folded in several passes, one per
//! partition (each key's changes all land in its partition).
//!
//! # A row's versions
//! Every change whose before- or after-image has the key, in log order, with the columns that
//! changed.
use crate::fold::{Fold, key_bytes, mine};
use crate::keys::{Key, KeySpec};
use crate::restore::{Derivable, RestoreError, TableInput, cascading_parents};
use dbtrail_core::history::{ChangeLog, LoggedChange};
use dbtrail_core::{Row, RowChange, TableSchema, Value, codec};
use std::collections::{BTreeMap, HashMap};

/// The schema versions of one table as its changes name them, each with the key resolved.
struct Schemas<'a> {
    log: &'a dyn ChangeLog,
    table_id: u32,
    spec: Option<&'a KeySpec>,
    by_version: HashMap<u32, (TableSchema, Option<Key>)>,
}

impl<'a> Schemas<'a> {
    fn new(log: &'a dyn ChangeLog, table_id: u32, spec: Option<&'a KeySpec>) -> Self {
        Schemas {
            log,
            table_id,
            spec,
            by_version: HashMap::new(),
        }
    }

    fn get(&mut self, version: u32) -> Result<&(TableSchema, Option<Key>), String> {
        if !self.by_version.contains_key(&version) {
            let s = self
                .log
                .schema(self.table_id, version)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| {
                    format!(
                        "schema version {version} of table id {} is missing from the log",
                        self.table_id
                    )
                })?;
            let key = match self.spec {
                Some(spec) => Some(spec.resolve(&s)?),
                None => None,
            };
            self.by_version.insert(version, (s, key));
        }
        Ok(&self.by_version[&version])
    }
}

fn touches(key: &Key, change: &RowChange) -> bool {
    match change {
        RowChange::Insert { after } => key.matches(after),
        RowChange::Delete { before } => key.matches(before),
        RowChange::Update { before, after } => key.matches(before) || key.matches(after),
    }
}

/// Whether a rebuild of `input` derives cascaded rows from its parents in its window (then a
/// key's rows at the target are not a function of the key's own changes: rebuild the table).
pub fn needs_full_rebuild(
    log: &dyn ChangeLog,
    input: &TableInput,
    schema: &TableSchema,
) -> Result<bool, RestoreError> {
    if cascading_parents(schema).is_empty() {
        return Ok(false);
    }
    Ok(Derivable::new(log)?.any_in(input.window.cut, input.window.end))
}

fn table_err(input: &TableInput, detail: String) -> RestoreError {
    RestoreError::Table {
        table: input.table.clone(),
        detail,
    }
}

/// What a key lookup read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyStats {
    /// Rows in the image.
    pub image_rows: u64,
    /// Image rows read (the pages that may hold the key).
    pub image_read: u64,
    /// Changes of the table scanned in the window.
    pub changes_scanned: u64,
    /// Of those, changes to the key.
    pub changes_applied: u64,
}

/// The rows with key `spec` at the target of `input` (module doc), in no particular order,
/// with the image's schema; `input` is a restore plan's table (image and window).
pub fn key_at(
    log: &dyn ChangeLog,
    input: &TableInput,
    spec: &KeySpec,
) -> Result<(Vec<Row>, TableSchema, KeyStats), RestoreError> {
    let mut image_rows = Vec::new();
    let mut schema = None;
    let mut stats = KeyStats::default();
    for f in &input.files {
        let file = std::fs::File::open(f).map_err(|source| RestoreError::Open {
            path: f.display().to_string(),
            source,
        })?;
        let (rows, s, st) = crate::baseline::lookup::lookup(file, spec)?;
        image_rows.extend(rows);
        stats.image_rows += st.rows;
        stats.image_read += st.read;
        schema = Some(s);
    }
    let schema = schema.ok_or_else(|| table_err(input, "its image has no file".into()))?;
    let key = spec.resolve(&schema).map_err(|e| table_err(input, e))?;
    let mut fold = Fold::new(&schema.primary_key);
    if input.backward {
        fold = fold.backward();
    }
    if let Some(tid) = input.table_id {
        let mut schemas = Schemas::new(log, tid, Some(spec));
        let mut err = None;
        let w = input.window;
        log.scan_table(
            tid,
            w.since_us,
            w.until_us,
            w.cut..w.end.max(w.cut),
            &mut |ev| {
                stats.changes_scanned += 1;
                match schemas.get(ev.schema_version) {
                    Ok((s, Some(k))) => {
                        if let Some(p) = crate::restore::layout_problem(&schema, s) {
                            err = Some(p);
                            return false;
                        }
                        if touches(k, &ev.change) {
                            stats.changes_applied += 1;
                            fold.push(ev.change);
                        }
                        true
                    }
                    Ok((_, None)) => true,
                    Err(e) => {
                        err = Some(e);
                        false
                    }
                }
            },
        )
        .map_err(|e| table_err(input, e.to_string()))?;
        if let Some(e) = err {
            return Err(table_err(input, e));
        }
    }
    let mut out = Vec::new();
    fold.apply(image_rows, |r| {
        if key.matches(&r) {
            out.push(r)
        }
    })
    .map_err(|e| table_err(input, e.to_string()))?;
    Ok((out, schema, stats))
}

/// One key's net change between two moments.
#[derive(Clone, Debug, PartialEq)]
pub struct DiffEntry {
    /// Its row at the first moment (None: absent).
    pub before: Option<Row>,
    /// Its row at the second (None: absent).
    pub after: Option<Row>,
    /// For a table without a key: copies of `before`/`after` (the row) removed (< 0) or added.
    pub copies: i64,
}

/// A window of the log: changes with `since_us <= commit_us <= until_us`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First commit time in the window (µs).
    pub since_us: i64,
    /// Last commit time in the window (µs, inclusive).
    pub until_us: i64,
}

/// The net change of table `table_id` over `span` for the keys of hash partition `part`
/// (`(parts, index)`; `(1, 0)` is all keys), sorted by key (module doc); the schema is the
/// window's (refused when the table's layout changes inside it).
pub fn diff_pass(
    log: &dyn ChangeLog,
    table_id: u32,
    span: Span,
    part: (u64, u64),
) -> Result<(Vec<DiffEntry>, Option<TableSchema>), String> {
    let mut schemas = Schemas::new(log, table_id, None);
    let mut first: Option<TableSchema> = None;
    // key -> (row at the start, row at the end)
    let mut keyed: BTreeMap<Vec<u8>, (Option<Row>, Option<Row>)> = BTreeMap::new();
    let mut bag: BTreeMap<Vec<u8>, (Row, i64)> = BTreeMap::new();
    let mut err = None;
    log.scan_table(
        table_id,
        span.since_us,
        span.until_us,
        0..u64::MAX,
        &mut |ev: LoggedChange| {
            let s = match schemas.get(ev.schema_version) {
                Ok((s, _)) => s,
                Err(e) => {
                    err = Some(e);
                    return false;
                }
            };
            match &first {
                None => first = Some(s.clone()),
                Some(f) => {
                    if let Some(p) = crate::restore::layout_problem(f, s) {
                        err = Some(format!(
                            "{} changed its columns inside the window ({p}); diff two moments on \
                         the same side of the change",
                            s.table
                        ));
                        return false;
                    }
                }
            }
            let pk = &s.primary_key;
            let mut touch_keyed = |row: &Row, present_before: bool, now: Option<Row>| {
                let k = key_bytes(pk, row);
                if !mine(part, &k) {
                    return;
                }
                let e = keyed
                    .entry(k)
                    .or_insert_with(|| (present_before.then(|| row.clone()), None));
                e.1 = now;
            };
            if pk.is_empty() {
                let mut add = |row: &Row, n: i64| {
                    let k = codec::encode(row);
                    if mine(part, &k) {
                        bag.entry(k).or_insert_with(|| (row.clone(), 0)).1 += n;
                    }
                };
                match &ev.change {
                    RowChange::Insert { after } => add(after, 1),
                    RowChange::Delete { before } => add(before, -1),
                    RowChange::Update { before, after } => {
                        add(before, -1);
                        add(after, 1);
                    }
                }
            } else {
                match ev.change {
                    RowChange::Insert { after } => {
                        let a = after.clone();
                        touch_keyed(&after, false, Some(a));
                    }
                    RowChange::Delete { before } => touch_keyed(&before, true, None),
                    RowChange::Update { before, after } => {
                        if key_bytes(pk, &before) == key_bytes(pk, &after) {
                            let a = after.clone();
                            touch_keyed(&before, true, Some(a));
                        } else {
                            touch_keyed(&before, true, None);
                            let a = after.clone();
                            touch_keyed(&after, false, Some(a));
                        }
                    }
                }
            }
            true
        },
    )
    .map_err(|e| e.to_string())?;
    if let Some(e) = err {
        return Err(e);
    }
    let same = |a: &Option<Row>, b: &Option<Row>| match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => codec::encode(a) == codec::encode(b),
        _ => false,
    };
    let mut out: Vec<DiffEntry> = keyed
        .into_values()
        .filter(|(b, a)| !same(b, a))
        .map(|(before, after)| DiffEntry {
            before,
            after,
            copies: 0,
        })
        .collect();
    out.extend(bag.into_values().filter(|(_, n)| *n != 0).map(|(row, n)| {
        let (before, after) = if n < 0 {
            (Some(row), None)
        } else {
            (None, Some(row))
        };
        DiffEntry {
            before,
            after,
            copies: n,
        }
    }));
    Ok((out, first))
}

/// The columns of `schema` whose values differ between `before` and `after`.
pub fn changed_columns(schema: &TableSchema, before: &[Value], after: &[Value]) -> Vec<usize> {
    (0..schema.columns.len())
        .filter(|&i| match (before.get(i), after.get(i)) {
            (Some(b), Some(a)) => codec::encode(b) != codec::encode(a),
            (b, a) => b.is_some() != a.is_some(),
        })
        .collect()
}

/// One version of a row: a change to its key, with the schema its images were decoded with.
#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    /// The change as logged.
    pub change: LoggedChange,
    /// The schema of its images.
    pub schema: TableSchema,
}

/// Visits every change of `table_id` to rows with key `spec` committed in `span`, in log
/// order (module doc); `visit` returns false to stop. Returns the table's changes scanned.
pub fn history(
    log: &dyn ChangeLog,
    table_id: u32,
    spec: &KeySpec,
    span: Span,
    visit: &mut dyn FnMut(Version) -> bool,
) -> Result<u64, String> {
    let mut schemas = Schemas::new(log, table_id, Some(spec));
    let mut err = None;
    let mut scanned = 0u64;
    log.scan_table(
        table_id,
        span.since_us,
        span.until_us,
        0..u64::MAX,
        &mut |ev| {
            scanned += 1;
            match schemas.get(ev.schema_version) {
                Ok((s, Some(k))) => {
                    if touches(k, &ev.change) {
                        let schema = s.clone();
                        return visit(Version { change: ev, schema });
                    }
                    true
                }
                Ok((_, None)) => true,
                Err(e) => {
                    err = Some(e);
                    false
                }
            }
        },
    )
    .map_err(|e| e.to_string())?;
    match err {
        Some(e) => Err(e),
        None => Ok(scanned),
    }
}

#[cfg(test)]
mod tests;
