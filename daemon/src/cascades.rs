//! Restores of tables whose foreign keys cascade (ON DELETE/UPDATE CASCADE or SET NULL):
//! which tables need the derivation of `dbtrail_replay::cascade`, the triggers built from
//! their parents' logged (and derived) changes, and their rebuild, parents first.
//!
//! - A restored table with a cascading foreign key is rebuilt from its own changes AND its
//!   parent's: a parent delete or re-key that the server applied inside InnoDB without
//!   logging the child rows (`ServerFacts::fk_cascades_logged` false for that part of the
//!   log) fires the action on the child rows that reference it at that moment.
//! - A parent that is itself the child of a cascading key is rebuilt first (without output
//!   when it was not asked for): its derived changes are triggers of its children. Its
//!   baseline is then needed; a parent missing from the baseline with changes to derive from
//!   stops the restore with the reason.
//! - Events where the server logged its cascades (MySQL 9 SQL-layer foreign keys) never
//!   fire: the child rows it changed are in the log. Events logged before dbtrail recorded
//!   the server's facts fire too: deriving over logged cascades finds nothing to do, since
//!   the server logs a statement's child rows before its parent row.
use crate::pitr::{Plan, layout_problem};
use anyhow::{Context, anyhow, bail};
use dbtrail_core::baseline::BaselineTable;
use dbtrail_core::render::rfc3339_micros;
use dbtrail_core::{Row, TableRef, TableSchema};
use dbtrail_replay::cascade::{At, Derived, Timeline, Triggers, settle};
use dbtrail_replay::dump::TableWriter;
use dbtrail_storage::{Log, ServerFacts};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// One table of the cascade phase.
pub struct CascadeTable {
    /// Its baseline entry.
    pub entry: BaselineTable,
    /// Its id in the log, if it has events.
    pub table_id: Option<u32>,
    /// Its baseline file on local disk.
    pub local: PathBuf,
    /// Its schema at the baseline.
    pub schema: TableSchema,
    /// Written to the output (else only its derived changes are needed).
    pub requested: bool,
    /// Hash partitions of its keys (memory bound).
    pub parts: u64,
}

/// Describes the cascading foreign keys of `schema`, one line each (dry runs, job records).
pub fn describe(schema: &TableSchema, requested: bool) -> Vec<String> {
    schema
        .foreign_keys
        .iter()
        .filter(|fk| fk.cascades())
        .map(|fk| {
            format!(
                "{} <- {} ({}: ON DELETE {}, ON UPDATE {}): the parent's changes are replayed \
                 and the actions the server did not log are derived{}",
                schema.table,
                fk.parent,
                fk.name,
                fk.on_delete.as_sql(),
                fk.on_update.as_sql(),
                if requested {
                    ""
                } else {
                    " (rebuilt for its children only, not written)"
                }
            )
        })
        .collect()
}

/// The parents whose derived changes `schema`'s triggers need (cascading keys only).
pub fn cascading_parents(schema: &TableSchema) -> BTreeSet<TableRef> {
    schema
        .foreign_keys
        .iter()
        .filter(|fk| fk.cascades())
        .map(|fk| fk.parent.clone())
        .collect()
}

/// Orders the cascade tables parents first; a cycle other than a table referencing itself is
/// refused.
pub fn order(tables: Vec<CascadeTable>) -> anyhow::Result<Vec<CascadeTable>> {
    let mut left: BTreeMap<TableRef, CascadeTable> = tables
        .into_iter()
        .map(|t| (t.entry.table.clone(), t))
        .collect();
    let mut out = Vec::new();
    while !left.is_empty() {
        let ready: Vec<TableRef> = left
            .iter()
            .filter(|(name, t)| {
                cascading_parents(&t.schema)
                    .iter()
                    .all(|p| p == *name || !left.contains_key(p))
            })
            .map(|(n, _)| n.clone())
            .collect();
        if ready.is_empty() {
            let names: Vec<String> = left.keys().map(|t| t.to_string()).collect();
            bail!(
                "the cascading foreign keys of {} form a cycle between tables; restoring them \
                 is not supported (restore other tables, or take a new baseline after the \
                 target)",
                names.join(", ")
            );
        }
        for n in ready {
            if let Some(t) = left.remove(&n) {
                out.push(t);
            }
        }
    }
    Ok(out)
}

/// Which events may fire cascades: those where the server did not log them.
pub struct Derivable(Vec<(u64, ServerFacts)>);

impl Derivable {
    /// From the log's recorded server facts.
    pub fn new(log: &Log) -> anyhow::Result<Derivable> {
        Ok(Derivable(log.facts()?))
    }

    /// True when some event id in `from..to` may fire cascades.
    pub fn any_in(&self, from: u64, to: u64) -> bool {
        if from >= to {
            return false;
        }
        if self.at(from) {
            return true;
        }
        self.0
            .iter()
            .any(|(id, f)| *id > from && *id < to && !f.fk_cascades_logged)
    }

    /// True unless the facts in force at `event_id` say the server logged its cascades.
    pub fn at(&self, event_id: u64) -> bool {
        let i = self.0.partition_point(|(id, _)| *id <= event_id);
        match i.checked_sub(1).and_then(|i| self.0.get(i)) {
            Some((_, f)) => !f.fk_cascades_logged,
            None => true,
        }
    }
}

/// Adds the logged changes of `parent` (table id `parent_id`) inside the plan's range to
/// `triggers`, where cascades were not logged.
fn add_logged(
    log: &Log,
    plan: &Plan,
    parent: &TableRef,
    parent_id: u32,
    derivable: &Derivable,
    triggers: &mut Triggers,
) -> anyhow::Result<()> {
    let mut schemas: HashMap<u32, Option<TableSchema>> = HashMap::new();
    let mut err: Option<anyhow::Error> = None;
    log.scan_table(
        parent_id,
        plan.since_us,
        plan.until_us,
        |_, event_id, ev| {
            if event_id < plan.cut || event_id >= plan.end || !derivable.at(event_id) {
                return true;
            }
            let s = schemas
                .entry(ev.schema_version)
                .or_insert_with(|| log.schema(parent_id, ev.schema_version).ok().flatten());
            let Some(s) = s else {
                err = Some(anyhow!(
                    "schema version {} of {parent} is missing from the log",
                    ev.schema_version
                ));
                return false;
            };
            if let Err(e) = triggers.add_parent_change(parent, s, (event_id, 0), &ev.change) {
                err = Some(e.into());
                return false;
            }
            true
        },
    )?;
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Rebuilds the cascade tables in order; writes the requested ones to `out`. `bump` is told
/// each table written.
pub fn rebuild_all(
    log: &Log,
    plan: &Plan,
    tables: &[CascadeTable],
    out: &Path,
    mut bump: impl FnMut(&TableRef, u64),
    chunk_bytes: u64,
    statement_bytes: usize,
) -> anyhow::Result<()> {
    let derivable = Derivable::new(log)?;
    // Derived changes of each table rebuilt so far, with its schema.
    let mut derived: HashMap<TableRef, (TableSchema, Vec<Derived>)> = HashMap::new();
    for t in tables {
        let name = &t.entry.table;
        let parents = cascading_parents(&t.schema);
        let base = || -> anyhow::Result<Triggers> {
            let mut tr = Triggers::new(&t.schema, |p| parents.contains(p))?
                .ok_or_else(|| anyhow!("internal error: {name} has no cascading foreign key"))?;
            for p in &parents {
                // A self-referencing table's own derived changes are added by `settle`.
                if let Some((ps, d)) = derived.get(p) {
                    for x in d {
                        tr.add_parent_change(p, ps, x.at, &x.change)?;
                    }
                }
                if let Some(pid) = log.table_id(p)? {
                    add_logged(log, plan, p, pid, &derivable, &mut tr)?;
                }
            }
            Ok(tr)
        };
        let dbtrail_replay::cascade::Settled {
            triggers: tr,
            moved,
            derived: d,
        } = settle::<anyhow::Error>(name, &t.schema, base, |tr, mv| {
            rebuild_one(log, plan, t, tr, mv, None)
        })?;
        // The final pass, strict: checks every logged change against the derived state.
        {
            let write = t.requested.then_some((out, chunk_bytes, statement_bytes));
            let again = rebuild_one(log, plan, t, &tr, &moved, write)?;
            if again != d {
                bail!("internal error: the cascades derived for {name} changed between passes");
            }
        }
        if t.requested {
            bump(name, 0);
        }
        tracing::info!(table = %name, derived = d.len(), "foreign-key actions derived");
        derived.insert(name.clone(), (t.schema.clone(), d));
    }
    Ok(())
}

/// One table, all its partitions: its derived changes (in order), and its rows to `write`.
fn rebuild_one(
    log: &Log,
    plan: &Plan,
    t: &CascadeTable,
    triggers: &Triggers,
    moved: &[(At, Row)],
    write: Option<(&Path, u64, usize)>,
) -> anyhow::Result<Vec<Derived>> {
    let mut writer = match write {
        Some((out, chunk, stmt)) => Some(TableWriter::new(out, &t.schema, chunk, stmt)?),
        None => None,
    };
    let mut all = Vec::new();
    for index in 0..t.parts.max(1) {
        let mut tl = Timeline::partition(&t.schema.primary_key, t.parts.max(1), index);
        if let Some(id) = t.table_id
            && plan.cut < plan.end
        {
            let mut layouts: HashMap<u32, Option<String>> = HashMap::new();
            let mut bad: Option<anyhow::Error> = None;
            log.scan_table(id, plan.since_us, plan.until_us, |commit_us, event_id, ev| {
                if event_id < plan.cut || event_id >= plan.end {
                    return true;
                }
                let problem = layouts.entry(ev.schema_version).or_insert_with(|| {
                    match log.schema(id, ev.schema_version) {
                        Ok(Some(s)) => layout_problem(&t.schema, &s),
                        Ok(None) => Some(format!("schema version {} is missing", ev.schema_version)),
                        Err(e) => Some(e.to_string()),
                    }
                });
                if let Some(p) = problem {
                    bad = Some(anyhow!(
                        "{} changed after the baseline (event at {}): {p}; restoring across DDL \
                         is not supported yet: choose an earlier target or take a baseline after it",
                        t.entry.table,
                        rfc3339_micros(commit_us)
                    ));
                    return false;
                }
                tl.push(event_id, ev.change);
                true
            })?;
            if let Some(e) = bad {
                return Err(e);
            }
        }
        for (at, r) in moved {
            tl.push_move(*at, r.clone());
        }
        let mut applier = tl.applier(triggers);
        let mut werr: Option<anyhow::Error> = None;
        let mut emit = |r: Row| {
            if let Some(w) = writer.as_mut()
                && werr.is_none()
                && let Err(e) = w.push(&r)
            {
                werr = Some(e.into());
            }
        };
        let file = std::fs::File::open(&t.local)
            .with_context(|| format!("opening the baseline file {}", t.local.display()))?;
        let mut ferr: Option<dbtrail_replay::cascade::CascadeError> = None;
        dbtrail_replay::baseline::read(file, |r| {
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
        all.extend(d);
    }
    if let Some(w) = writer {
        w.finish()?;
    }
    dbtrail_replay::cascade::sort_derived(&mut all);
    Ok(all)
}

/// Every known cascading foreign key of the source, as (child table, key): from the log's
/// latest schema of each table, and the newest baseline's schemas where its files are local
/// (a table with no change since capture began is known only there).
pub fn cascading_keys(
    source: &crate::source::Source,
) -> anyhow::Result<Vec<(TableRef, dbtrail_core::ForeignKey)>> {
    let mut schemas: BTreeMap<TableRef, TableSchema> = BTreeMap::new();
    if let Some(b) = source.log.baselines()?.pop() {
        for e in &b.tables {
            if let Some(p) = source.store.local_file(&b.id, &e.file)
                && let Ok(f) = std::fs::File::open(p)
                && let Ok(s) = dbtrail_replay::baseline::schema_of(&f)
            {
                schemas.insert(e.table.clone(), s);
            }
        }
    }
    for (id, t) in source.log.tables()? {
        if let Some(s) = source.log.schemas(id)?.pop() {
            schemas.insert(t, s);
        }
    }
    Ok(schemas
        .into_values()
        .flat_map(|s| {
            let t = s.table.clone();
            s.foreign_keys
                .into_iter()
                .filter(|fk| fk.cascades())
                .map(move |fk| (t.clone(), fk))
        })
        .collect())
}

/// Why the changes of one transaction cannot be undone row by row, if they cannot: one of
/// them deleted or re-keyed a parent row of a cascading foreign key at a point where the
/// server did not log the child rows its action changed (the undo would not bring them back).
pub fn undo_blocker(
    source: &crate::source::Source,
    changes: &[(u64, TableSchema, dbtrail_core::RowChange)],
) -> anyhow::Result<Option<String>> {
    use dbtrail_core::RowChange;
    let keys = cascading_keys(source)?;
    if keys.is_empty() {
        return Ok(None);
    }
    let derivable = Derivable::new(&source.log)?;
    for (event_id, schema, change) in changes {
        if !derivable.at(*event_id) {
            continue;
        }
        for (child, fk) in keys.iter().filter(|(_, fk)| fk.parent == schema.table) {
            let idx: Option<Vec<usize>> = fk
                .parent_columns
                .iter()
                .map(|c| schema.column_index(c))
                .collect();
            let Some(idx) = idx else { continue };
            let hit = match change {
                RowChange::Insert { .. } => false,
                RowChange::Delete { .. } => fk.on_delete.changes_children(),
                RowChange::Update { before, after } => {
                    fk.on_update.changes_children()
                        && idx.iter().any(|&i| {
                            dbtrail_core::codec::encode(&before[i])
                                != dbtrail_core::codec::encode(&after[i])
                        })
                }
            };
            if hit {
                return Ok(Some(format!(
                    "it {} rows of {} that {child} references through foreign key {} (ON DELETE {}, \
                     ON UPDATE {}), and the server applied that action without logging the child \
                     rows",
                    if matches!(change, RowChange::Delete { .. }) {
                        "deleted"
                    } else {
                        "re-keyed"
                    },
                    schema.table,
                    fk.name,
                    fk.on_delete.as_sql(),
                    fk.on_update.as_sql()
                )));
            }
        }
    }
    Ok(None)
}
