//! Foreign-key cascades that the binlog does not hold, derived while a table is rebuilt.
//!
//! # What the server logs
//! InnoDB applies `ON DELETE` / `ON UPDATE` `CASCADE` and `SET NULL` inside the engine:
//! MySQL 8.0/8.4, MariaDB, and MySQL 9.x started with `innodb_native_foreign_keys=ON` write
//! the parent's row change to the binlog and NOT the child rows it changed. MySQL 9.x with
//! SQL-layer foreign keys (its default) writes every child row as its own row event, before
//! the parent's. Capture records which of the two a server does (`ServerFacts` in storage),
//! per range of the log; the restore derives cascades only where they were not logged.
//!
//! # The rule
//! Let `C` be a child table with foreign key `f` to parent `P` (`P` may be `C` itself).
//! Positions are `At = (event id, depth)`: a logged change has depth 0; a change derived from
//! a change at `(e, d)` is at `(e, d + 1)`, so it sorts after its cause and before the next
//! logged event, which is when the engine made it (inside the parent's statement).
//!
//! For a key `k` of `C`, its state at the target is obtained by walking, in `At` order, from
//! its image (baseline row, or absent) through
//! - its own logged changes (which carry full images), and
//! - the *triggers* of `f`: every change of `P` (logged, or itself derived) at `a` that deletes
//!   a parent row or changes its referenced columns, keyed by the parent's OLD referenced
//!   values `v`. When the row exists at `a` and its `f` columns are all non-NULL and equal to
//!   `v`, the action applies: CASCADE on delete removes the row; CASCADE on update sets its
//!   `f` columns to the parent's new values; SET NULL sets them to NULL. The result is a
//!   derived change of `C` at `a` plus one depth.
//!
//! Why this is exact: a child row changes between two of its own logged changes only by a
//! foreign-key action (everything else a server does to a row is a logged row event), and an
//! action fires exactly when a parent row that the child row references *at that moment*
//! is deleted or re-keyed. The walk knows the row's state at every moment (its chain of
//! full images, broken only by the actions it replays), so it fires exactly the actions the
//! engine fired. Rows are independent of each other given the triggers, so a table can be
//! evaluated one hash partition of its keys at a time (bounded memory), like [`crate::fold`].
//! Chains (`P -> C -> G`) are evaluated parents first: `C`'s derived changes are triggers of
//! `G`. A self-referencing table is evaluated until its derived changes stop changing (each
//! pass adds at least one level of the chain). An ON UPDATE action on a foreign key that is
//! part of the child's primary key moves the row to a new key: the old key's walk ends there
//! and the row continues under its new key from that position ([`moves`]; again until the
//! derived changes stop changing).
//!
//! # Checks: a derivation that disagrees with the log stops the restore
//! After a derived change to a row, its next logged change must start from exactly the
//! derived state (a logged update or delete whose before-image differs, or an insert of a
//! key the derived state still holds, is an error naming the row): a wrong derivation never
//! passes silently. Where cascades were logged, deriving would find nothing to do (the
//! logged child changes come first, so the row no longer references the old parent key);
//! the restore still derives nothing there.
//!
//! # Limits (refused with the reason, never guessed)
//! - Values compare by their exact bytes. For character columns with a collation, a child
//!   value equal to a parent key only up to ASCII case or trailing spaces is refused
//!   (`Ambiguous`): the server's collation decides, and dbtrail does not model collations.
//! - Tables without a primary key as children of a cascading foreign key (their rows have no
//!   identity to walk), and `SET DEFAULT` (InnoDB rejects it anyway).
use crate::fold::{key_bytes, key_into, mine};
use dbtrail_core::{FkAction, ForeignKey, Row, RowChange, TableRef, TableSchema, Value, codec};
use rustc_hash::FxHashMap;

/// Position of a change: (event id, depth). Logged changes have depth 0.
pub type At = (u64, u32);

/// Why cascades could not be derived exactly.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CascadeError {
    /// A foreign key or schema names a column that is not there.
    #[error("foreign key {fk} of {table}: {detail}")]
    Schema {
        /// The child table.
        table: TableRef,
        /// The constraint.
        fk: String,
        /// What is wrong.
        detail: String,
    },
    /// The derivation cannot be made exact for this table.
    #[error("cascades into {table} cannot be derived exactly: {reason}")]
    Unsupported {
        /// The child table.
        table: TableRef,
        /// Why.
        reason: String,
    },
    /// A child value matches a parent key only up to case or trailing spaces.
    #[error(
        "foreign key {fk} of {table}: the child value {child} and the deleted or re-keyed parent \
         key {parent} are equal only up to letter case or trailing spaces; whether the server's \
         collation cascaded it cannot be decided from the binlog"
    )]
    Ambiguous {
        /// The child table.
        table: TableRef,
        /// The constraint.
        fk: String,
        /// The child's values.
        child: String,
        /// The parent's key.
        parent: String,
    },
    /// A logged change does not continue the derived state.
    #[error(
        "the derived cascade disagrees with the log for {table} row {row}: {detail}; the \
         foreign keys recorded for it do not match what the server did (restore without it, \
         or take a new baseline)"
    )]
    Disagrees {
        /// The table.
        table: TableRef,
        /// The row's key.
        row: String,
        /// What the log holds.
        detail: String,
    },
    /// A self-referencing chain did not settle.
    #[error("cascades within {table} did not settle after {passes} passes")]
    NoFixpoint {
        /// The table.
        table: TableRef,
        /// Passes made.
        passes: usize,
    },
}

/// What a parent change does to the child rows that reference its old key.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// CASCADE on delete.
    Delete,
    /// SET NULL.
    SetNull,
    /// CASCADE on update: the foreign-key columns take these values.
    Set(Vec<Value>),
}

/// A change of a table derived from a foreign-key action.
#[derive(Clone, Debug, PartialEq)]
pub struct Derived {
    /// When.
    pub at: At,
    /// The change, with full images.
    pub change: RowChange,
}

struct FkTriggers {
    fk: ForeignKey,
    /// Child column indexes of the foreign key.
    cols: Vec<usize>,
    /// Which of them compare loosely (character columns with a collation).
    loose: Vec<bool>,
    /// Parent's old key bytes -> triggers, sorted by position.
    by_key: FxHashMap<Vec<u8>, Vec<(At, Effect)>>,
    /// Loose key -> the exact keys seen with it (only when some column is loose).
    by_loose: FxHashMap<Vec<u8>, Vec<Vec<u8>>>,
}

/// The triggers of one child table: per cascading foreign key, the parent changes that fire it.
pub struct Triggers {
    table: TableRef,
    fks: Vec<FkTriggers>,
    /// Check logged changes against the derived state (see [`Triggers::set_strict`]).
    strict: bool,
}

fn loose_value(v: &Value) -> Value {
    match v {
        Value::Str(b) => {
            let mut s: Vec<u8> = b.to_ascii_lowercase();
            while s.last() == Some(&b' ') {
                s.pop();
            }
            Value::Str(s)
        }
        other => other.clone(),
    }
}

fn encode_values(vals: &[Value]) -> Vec<u8> {
    let idx: Vec<usize> = (0..vals.len()).collect();
    key_bytes(&idx, vals)
}

fn show(vals: &[Value]) -> String {
    let parts: Vec<String> = vals.iter().map(|v| format!("{v:?}")).collect();
    format!("({})", parts.join(", "))
}

impl Triggers {
    /// The cascading foreign keys of `child` whose parent `derive_from` accepts (callers pass
    /// the parents whose changes are replayed). None when there is nothing to derive.
    pub fn new(
        child: &TableSchema,
        derive_from: impl Fn(&TableRef) -> bool,
    ) -> Result<Option<Triggers>, CascadeError> {
        let mut fks = Vec::new();
        for fk in &child.foreign_keys {
            if !fk.cascades() || !derive_from(&fk.parent) {
                continue;
            }
            let bad = |detail: String| CascadeError::Schema {
                table: child.table.clone(),
                fk: fk.name.clone(),
                detail,
            };
            if fk.columns.len() != fk.parent_columns.len() || fk.columns.is_empty() {
                return Err(bad("its column lists differ in length".into()));
            }
            let mut cols = Vec::new();
            for c in &fk.columns {
                cols.push(
                    child
                        .column_index(c)
                        .ok_or_else(|| bad(format!("column {c} is not in the table")))?,
                );
            }
            if child.primary_key.is_empty() {
                return Err(CascadeError::Unsupported {
                    table: child.table.clone(),
                    reason: format!(
                        "it has no primary key, and foreign key {} to {} changes child rows \
                         (ON DELETE {}, ON UPDATE {})",
                        fk.name,
                        fk.parent,
                        fk.on_delete.as_sql(),
                        fk.on_update.as_sql()
                    ),
                });
            }
            let loose = cols
                .iter()
                .map(|&i| !child.columns[i].is_binary() && child.columns[i].collation.is_some())
                .collect();
            fks.push(FkTriggers {
                fk: fk.clone(),
                cols,
                loose,
                by_key: FxHashMap::default(),
                by_loose: FxHashMap::default(),
            });
        }
        if fks.is_empty() {
            return Ok(None);
        }
        Ok(Some(Triggers {
            table: child.table.clone(),
            fks,
            strict: true,
        }))
    }

    /// Triggers that never fire (a table without cascading keys walked like one with them).
    pub fn empty(child: &TableSchema) -> Triggers {
        Triggers {
            table: child.table.clone(),
            fks: Vec::new(),
            strict: true,
        }
    }

    /// Adds a change of table `parent` at `at`, decoded with `parent_schema` (a logged change,
    /// or one derived for the parent).
    pub fn add_parent_change(
        &mut self,
        parent: &TableRef,
        parent_schema: &TableSchema,
        at: At,
        change: &RowChange,
    ) -> Result<(), CascadeError> {
        let (before, after) = match change {
            RowChange::Insert { .. } => return Ok(()),
            RowChange::Update { before, after } => (before, Some(after)),
            RowChange::Delete { before } => (before, None),
        };
        for t in &mut self.fks {
            if &t.fk.parent != parent {
                continue;
            }
            let mut pcols = Vec::with_capacity(t.fk.parent_columns.len());
            for c in &t.fk.parent_columns {
                pcols.push(
                    parent_schema
                        .column_index(c)
                        .ok_or_else(|| CascadeError::Schema {
                            table: self.table.clone(),
                            fk: t.fk.name.clone(),
                            detail: format!(
                                "the parent {parent} has no column {c} (schema version {})",
                                parent_schema.version
                            ),
                        })?,
                );
            }
            let pick = |row: &Row| -> Vec<Value> {
                pcols
                    .iter()
                    .map(|&i| row.get(i).cloned().unwrap_or(Value::Null))
                    .collect()
            };
            let old = pick(before);
            if old.iter().any(|v| matches!(v, Value::Null)) {
                continue; // a NULL parent key is never referenced
            }
            let (action, new) = match after {
                None => (t.fk.on_delete, None),
                Some(a) => {
                    let new = pick(a);
                    if encode_values(&new) == encode_values(&old) {
                        continue; // referenced columns unchanged
                    }
                    (t.fk.on_update, Some(new))
                }
            };
            let effect = match (action, new) {
                (FkAction::Cascade, None) => Effect::Delete,
                (FkAction::Cascade, Some(n)) => Effect::Set(n),
                (FkAction::SetNull, _) => Effect::SetNull,
                (FkAction::Restrict | FkAction::NoAction, _) => continue,
                (FkAction::SetDefault, _) => {
                    return Err(CascadeError::Unsupported {
                        table: self.table.clone(),
                        reason: format!("foreign key {} uses SET DEFAULT", t.fk.name),
                    });
                }
            };
            let key = encode_values(&old);
            if t.loose.iter().any(|l| *l) {
                let lk: Vec<Value> = old.iter().map(loose_value).collect();
                let exact = t.by_loose.entry(encode_values(&lk)).or_default();
                if !exact.contains(&key) {
                    exact.push(key.clone());
                }
            }
            t.by_key.entry(key).or_default().push((at, effect));
        }
        Ok(())
    }

    /// Whether a logged change that contradicts the derived state is an error (the default)
    /// or simply applied. [`settle`]'s passes before the last are lenient: a row moved to a
    /// new key by a derived change reaches that key only in the next pass, so an earlier
    /// pass can see its key's logged changes before the row arrives.
    pub fn set_strict(&mut self, strict: bool) {
        self.strict = strict;
    }

    /// Sorts the triggers; call after the last [`Triggers::add_parent_change`].
    pub fn finish(&mut self) {
        for t in &mut self.fks {
            for v in t.by_key.values_mut() {
                v.sort_by_key(|(at, _)| *at);
            }
        }
    }

    /// Number of parent changes that can fire an action.
    pub fn len(&self) -> usize {
        self.fks
            .iter()
            .map(|t| t.by_key.values().map(Vec::len).sum::<usize>())
            .sum()
    }

    /// True when no parent change can fire an action.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The earliest trigger that fires on `row` after `from` (position and foreign key index:
    /// several keys may fire at one position; None: from the start) and before `to`.
    fn next(
        &self,
        row: &Row,
        from: Option<(At, usize)>,
        to: At,
    ) -> Result<Option<(usize, At, &Effect)>, CascadeError> {
        let mut best: Option<(usize, At, &Effect)> = None;
        for (n, t) in self.fks.iter().enumerate() {
            let vals: Vec<Value> = t
                .cols
                .iter()
                .map(|&i| row.get(i).cloned().unwrap_or(Value::Null))
                .collect();
            if vals.iter().any(|v| matches!(v, Value::Null)) {
                continue;
            }
            let key = encode_values(&vals);
            if t.loose.iter().any(|l| *l) {
                let lk: Vec<Value> = vals.iter().map(loose_value).collect();
                if let Some(exact) = t.by_loose.get(&encode_values(&lk))
                    && let Some(other) = exact.iter().find(|k| **k != key)
                    && let Some(list) = t.by_key.get(other)
                    && list
                        .iter()
                        .any(|(at, _)| from.is_none_or(|(f, _)| *at >= f) && *at < to)
                {
                    return Err(CascadeError::Ambiguous {
                        table: self.table.clone(),
                        fk: t.fk.name.clone(),
                        child: show(&vals),
                        parent: format!("{other:?}"),
                    });
                }
            }
            let Some(list) = t.by_key.get(&key) else {
                continue;
            };
            let after = |at: &At| match from {
                None => true,
                Some((f, fk)) => *at > f || (*at == f && n > fk),
            };
            let i = list.partition_point(|(at, _)| !after(at));
            if let Some((at, eff)) = list.get(i)
                && *at < to
                && best.is_none_or(|(_, b, _)| *at < b)
            {
                best = Some((n, *at, eff));
            }
        }
        Ok(best)
    }
}

enum Step {
    Insert(Row),
    Update { before: Row, after: Row },
    Delete(Row),
}

/// A keyed table's own logged changes, in order per key, for one hash partition of its keys
/// (see [`crate::fold::Fold::partition`]); evaluated against [`Triggers`] row by row.
pub struct Timeline {
    pk: Vec<usize>,
    part: (u64, u64),
    steps: FxHashMap<Vec<u8>, Vec<(At, Step)>>,
}

impl Timeline {
    /// An empty timeline of a table keyed by `pk` (non-empty), partition `index` of `parts`.
    pub fn partition(pk: &[usize], parts: u64, index: u64) -> Timeline {
        Timeline {
            pk: pk.to_vec(),
            part: (parts.max(1), index),
            steps: FxHashMap::default(),
        }
    }

    /// Adds the table's next logged change, at event `event_id`.
    pub fn push(&mut self, event_id: u64, change: RowChange) {
        let at = (event_id, 0);
        let part = self.part;
        match change {
            RowChange::Insert { after } => {
                let k = key_bytes(&self.pk, &after);
                if mine(part, &k) {
                    self.steps
                        .entry(k)
                        .or_default()
                        .push((at, Step::Insert(after)));
                }
            }
            RowChange::Delete { before } => {
                let k = key_bytes(&self.pk, &before);
                if mine(part, &k) {
                    self.steps
                        .entry(k)
                        .or_default()
                        .push((at, Step::Delete(before)));
                }
            }
            RowChange::Update { before, after } => {
                let kb = key_bytes(&self.pk, &before);
                let ka = key_bytes(&self.pk, &after);
                if kb == ka {
                    if mine(part, &kb) {
                        self.steps
                            .entry(kb)
                            .or_default()
                            .push((at, Step::Update { before, after }));
                    }
                } else {
                    if mine(part, &kb) {
                        self.steps
                            .entry(kb)
                            .or_default()
                            .push((at, Step::Delete(before)));
                    }
                    if mine(part, &ka) {
                        self.steps
                            .entry(ka)
                            .or_default()
                            .push((at, Step::Insert(after)));
                    }
                }
            }
        }
    }

    /// Adds a row that a derived change moved to a new key (an ON UPDATE action on a
    /// foreign key that is part of the primary key): it appears under its new key at `at`.
    pub fn push_move(&mut self, at: At, row: Row) {
        let k = key_bytes(&self.pk, &row);
        if mine(self.part, &k) {
            self.steps
                .entry(k)
                .or_default()
                .push((at, Step::Insert(row)));
        }
    }

    /// Keys held (memory is proportional to the changes pushed).
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// True when nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Evaluates the timeline against `triggers` over baseline rows streamed by.
    pub fn applier(self, triggers: &Triggers) -> TimelineApplier<'_> {
        TimelineApplier {
            tl: self,
            triggers,
            key: Vec::new(),
            derived: Vec::new(),
        }
    }
}

/// A [`Timeline`] being applied: [`TimelineApplier::feed`] each baseline row, then
/// [`TimelineApplier::finish`].
pub struct TimelineApplier<'a> {
    tl: Timeline,
    triggers: &'a Triggers,
    key: Vec<u8>,
    derived: Vec<Derived>,
}

impl TimelineApplier<'_> {
    /// One baseline row: emits its state at the end, if it exists then.
    pub fn feed(&mut self, row: Row, emit: &mut impl FnMut(Row)) -> Result<(), CascadeError> {
        key_into(&mut self.key, &self.tl.pk, &row);
        if !mine(self.tl.part, &self.key) {
            return Ok(());
        }
        let steps = self
            .tl
            .steps
            .remove(self.key.as_slice())
            .unwrap_or_default();
        if let Some(r) = walk(
            self.triggers,
            &self.tl.pk,
            Some(row),
            steps,
            &mut self.derived,
        )? {
            emit(r);
        }
        Ok(())
    }

    /// Emits the keys the baseline did not hold; returns the derived changes, in order.
    pub fn finish(mut self, mut emit: impl FnMut(Row)) -> Result<Vec<Derived>, CascadeError> {
        for (_, steps) in std::mem::take(&mut self.tl.steps) {
            if let Some(r) = walk(self.triggers, &self.tl.pk, None, steps, &mut self.derived)? {
                emit(r);
            }
        }
        let mut d = self.derived;
        sort_derived(&mut d);
        Ok(d)
    }
}

/// Puts derived changes in their one order: by position, then by their encoded bytes (rows
/// at one position are independent; a total order makes passes comparable).
pub fn sort_derived(d: &mut [Derived]) {
    d.sort_by_cached_key(|x| (x.at, codec::encode(&x.change)));
}

fn same(a: &Row, b: &Row) -> bool {
    codec::encode(a) == codec::encode(b)
}

/// One key's walk: its image, its own steps and the triggers that fire on it, in order.
fn walk(
    tr: &Triggers,
    pk: &[usize],
    initial: Option<Row>,
    steps: Vec<(At, Step)>,
    derived: &mut Vec<Derived>,
) -> Result<Option<Row>, CascadeError> {
    let mut state = initial;
    let mut pos: Option<(At, usize)> = None;
    let mut touched = false;
    let disagree = |row: &Row, detail: String| CascadeError::Disagrees {
        table: tr.table.clone(),
        row: show(&pk.iter().map(|&i| row[i].clone()).collect::<Vec<_>>()),
        detail,
    };
    // A logged update or delete after a derived change must start from the derived row.
    let continues = |state: &Option<Row>, before: &Row, what: &str| match state {
        None => Err(disagree(
            before,
            format!("the log {what} a row a derived cascade deleted"),
        )),
        Some(s) if !same(s, before) => Err(disagree(
            before,
            format!("the log's before-image {before:?} differs from the derived {s:?}"),
        )),
        Some(_) => Ok(()),
    };
    let fire = |state: &mut Option<Row>,
                from: Option<(At, usize)>,
                to: At,
                derived: &mut Vec<Derived>,
                touched: &mut bool|
     -> Result<(), CascadeError> {
        let mut from = from;
        while let Some(row) = state.as_ref() {
            let Some((n, at, eff)) = tr.next(row, from, to)? else {
                return Ok(());
            };
            let cols = &tr.fks[n].cols;
            let before = row.clone();
            let at1 = (at.0, at.1 + 1);
            match eff {
                Effect::Delete => {
                    derived.push(Derived {
                        at: at1,
                        change: RowChange::Delete { before },
                    });
                    *state = None;
                }
                Effect::SetNull | Effect::Set(_) => {
                    let mut after = before.clone();
                    for (j, &c) in cols.iter().enumerate() {
                        after[c] = match eff {
                            Effect::Set(v) => v[j].clone(),
                            _ => Value::Null,
                        };
                    }
                    // A changed primary key moves the row: this key ends here, and the row
                    // appears under its new key (see `moves`).
                    let moved = key_bytes(pk, &after) != key_bytes(pk, &before);
                    derived.push(Derived {
                        at: at1,
                        change: RowChange::Update {
                            before,
                            after: after.clone(),
                        },
                    });
                    *state = if moved { None } else { Some(after) };
                }
            }
            *touched = true;
            from = Some((at, n));
        }
        Ok(())
    };
    let mut steps = steps;
    steps.sort_by_key(|(at, _)| *at);
    for (at, step) in steps {
        fire(&mut state, pos, at, derived, &mut touched)?;
        match step {
            Step::Insert(after) => {
                if touched
                    && tr.strict
                    && let Some(s) = &state
                {
                    return Err(disagree(
                        s,
                        "the log inserts a row the derived state still holds".into(),
                    ));
                }
                state = Some(after);
            }
            Step::Update { before, after } => {
                if touched && tr.strict {
                    continues(&state, &before, "updates")?;
                }
                state = Some(after);
            }
            Step::Delete(before) => {
                if touched && tr.strict {
                    continues(&state, &before, "deletes")?;
                }
                state = None;
            }
        }
        pos = Some((at, usize::MAX));
    }
    fire(&mut state, pos, (u64::MAX, u32::MAX), derived, &mut touched)?;
    Ok(state)
}

/// Evaluates a whole table (all partitions in one pass) with `triggers`, for tests and
/// small tables: `baseline` rows and own `changes` (event id, change) in log order.
pub fn rebuild(
    schema: &TableSchema,
    baseline: impl IntoIterator<Item = Row>,
    changes: impl IntoIterator<Item = (u64, RowChange)>,
    moved: &[(At, Row)],
    triggers: &Triggers,
    mut emit: impl FnMut(Row),
) -> Result<Vec<Derived>, CascadeError> {
    let mut tl = Timeline::partition(&schema.primary_key, 1, 0);
    for (id, c) in changes {
        tl.push(id, c);
    }
    for (at, r) in moved {
        tl.push_move(*at, r.clone());
    }
    let mut a = tl.applier(triggers);
    for r in baseline {
        a.feed(r, &mut emit)?;
    }
    a.finish(emit)
}

/// The rows that derived changes moved to a new primary key, with where they appear.
pub fn moves(schema: &TableSchema, derived: &[Derived]) -> Vec<(At, Row)> {
    derived
        .iter()
        .filter_map(|d| match &d.change {
            RowChange::Update { before, after }
                if key_bytes(&schema.primary_key, before)
                    != key_bytes(&schema.primary_key, after) =>
            {
                Some((d.at, after.clone()))
            }
            _ => None,
        })
        .collect()
}

/// What [`settle`] found: the triggers and moves of the settled pass, and its derived changes.
pub struct Settled {
    /// Triggers (parents' changes, and the table's own derived ones if it references itself).
    pub triggers: Triggers,
    /// Rows moved to a new key by derived changes.
    pub moved: Vec<(At, Row)>,
    /// The derived changes, in order.
    pub derived: Vec<Derived>,
}

/// Evaluates a table until its derived changes settle, and returns them with the moves of
/// the last pass and strict triggers: the caller's final pass with them checks every logged
/// change against the derived state (and must derive the same changes). `base()` makes the triggers from the parents' changes; `pass(triggers,
/// moves)` rebuilds the table and returns its derived changes. A table that references
/// itself gets its own derived changes as triggers, and rows moved to a new key by a
/// derived change are walked under that key, so both take further passes (each settles at
/// least one more level of a chain); otherwise one pass is exact.
pub fn settle<E: From<CascadeError>>(
    table: &TableRef,
    schema: &TableSchema,
    mut base: impl FnMut() -> Result<Triggers, E>,
    mut pass: impl FnMut(&Triggers, &[(At, Row)]) -> Result<Vec<Derived>, E>,
) -> Result<Settled, E> {
    let self_ref = schema
        .foreign_keys
        .iter()
        .any(|f| f.cascades() && &f.parent == table);
    let mut derived: Vec<Derived> = Vec::new();
    const MAX_PASSES: usize = 64;
    let with = |base: &mut dyn FnMut() -> Result<Triggers, E>,
                derived: &[Derived],
                strict: bool|
     -> Result<(Triggers, Vec<(At, Row)>), E> {
        let mut t = base()?;
        t.set_strict(strict);
        if self_ref {
            for d in derived {
                t.add_parent_change(table, schema, d.at, &d.change)?;
            }
        }
        t.finish();
        Ok((t, moves(schema, derived)))
    };
    for n in 0..MAX_PASSES {
        let (t, mv) = with(&mut base, &derived, false)?;
        let next = pass(&t, &mv)?;
        if next == derived || (n == 0 && !self_ref && moves(schema, &next).is_empty()) {
            let (triggers, moved) = with(&mut base, &next, true)?;
            return Ok(Settled {
                triggers,
                moved,
                derived: next,
            });
        }
        derived = next;
    }
    Err(CascadeError::NoFixpoint {
        table: table.clone(),
        passes: MAX_PASSES,
    }
    .into())
}

#[cfg(test)]
mod tests;
