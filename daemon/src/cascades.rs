//! Foreign keys in the daemon: the dry run's description of the cascading keys a restore
//! replays, and every cascading key the source is known to have (for the undo refusal of a
//! transaction whose cascade the server did not log, `dbtrail_replay::undo`).
//! The derivation itself is the restore engine's (`dbtrail_replay::cascade`, run by
//! `dbtrail_replay::restore`).
use crate::source::Source;
use dbtrail_core::baseline::BaselineManifest;
use dbtrail_core::{TableRef, TableSchema};
use dbtrail_replay::restore::cascading_parents;
use std::collections::{BTreeMap, BTreeSet};

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

/// The dry run's view of the foreign-key actions a restore of `requested` replays: the
/// cascading keys of each requested table and of the parents it needs, from the baseline's
/// schema (local store) or the log's latest one. The restore itself decides from the
/// baseline files (`Restores::cascade_tables`).
pub fn describe_cascades(
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
        lines.extend(describe(&s, requested.contains(&t)));
        queue.extend(cascading_parents(&s));
    }
    lines.sort();
    lines
}

/// Every known cascading foreign key of the source, as (child table, key): from the log's
/// latest schema of each table, and the newest baseline's schemas where its files are local
/// (a table with no change since capture began is known only there).
pub fn cascading_keys(
    source: &Source,
) -> anyhow::Result<Vec<(TableRef, dbtrail_core::ForeignKey)>> {
    let mut schemas: BTreeMap<TableRef, TableSchema> = BTreeMap::new();
    if let Some(b) = source
        .log
        .baselines()?
        .into_iter()
        .rev()
        .find(|b| b.origin.is_full())
    {
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
