//! Undoing one transaction: its row changes, in log order, reversed into SQL
//! ([`crate::reverse::undo_script`]) after two checks over the log.
//!
//! - Conflicts: a later change to a row the transaction changed (same primary key, or any
//!   later change of a table without one) would be overwritten by the undo; such an undo is
//!   refused unless forced, naming the first [`MAX_CONFLICTS`] of them.
//! - Cascades: when one of its changes deleted or re-keyed a parent row of a cascading
//!   foreign key at a point where the server did not log the child rows its action changed
//!   ([`crate::restore::Derivable`]), the undo cannot bring those rows back: it is refused,
//!   forced or not, with the restore that derives them instead.
use crate::restore::Derivable;
use dbtrail_core::api::UndoResponse;
use dbtrail_core::history::{Catalog, ChangeLog, HistoryError, TxnInfo};
use dbtrail_core::render::rfc3339_micros;
use dbtrail_core::{ForeignKey, Gtid, RowChange, TableRef, TableSchema, Value};
use std::collections::{HashMap, HashSet};

/// Conflicting changes named at most.
pub const MAX_CONFLICTS: usize = 100;

/// Why an undo is not given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UndoRefused {
    /// The transaction is not in the log (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// It cannot be undone row by row (HTTP 400).
    #[error("{0}")]
    Bad(String),
    /// Later changes conflict and it was not forced (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// Reading the log failed (HTTP 500).
    #[error("{0}")]
    Internal(String),
}

impl From<HistoryError> for UndoRefused {
    fn from(e: HistoryError) -> Self {
        UndoRefused::Internal(e.to_string())
    }
}

/// A transaction's changes and what later changed the same rows.
#[derive(Clone, Debug)]
pub struct Changes {
    /// The transaction.
    pub txn: TxnInfo,
    /// Its row changes with their event ids and schemas, in log order.
    pub changes: Vec<(u64, TableSchema, RowChange)>,
    /// The first [`MAX_CONFLICTS`] later changes to rows it changed, described.
    pub conflicts: Vec<String>,
    /// How many later changes conflict in all.
    pub conflict_count: u64,
}

fn key_of(schema: &TableSchema, row: &[Value]) -> Vec<u8> {
    let key: Vec<&Value> = schema
        .primary_key
        .iter()
        .filter_map(|i| row.get(*i))
        .collect();
    dbtrail_core::codec::encode(&key)
}

/// The changes of the transaction `gtid` and the later changes that conflict with them.
pub fn collect(
    catalog: &dyn Catalog,
    log: &dyn ChangeLog,
    gtid: &Gtid,
) -> Result<Changes, UndoRefused> {
    let Some(txn) = catalog.txn_by_gtid(gtid)? else {
        return Err(UndoRefused::NotFound(format!(
            "transaction {gtid} is not in the log"
        )));
    };
    if let Some(ddl) = &txn.ddl {
        return Err(UndoRefused::Bad(format!(
            "transaction {gtid} is a statement ({ddl}); only row changes can be undone"
        )));
    }
    let end = txn.first_event_id + txn.event_count;
    let names: HashMap<u32, TableRef> = catalog.tables()?.into_iter().collect();
    let mut changes: Vec<(u64, TableSchema, RowChange)> = Vec::new();
    let mut conflicts = Vec::new();
    let mut conflict_count = 0u64;
    for tid in &txn.tables {
        let tref = names.get(tid).ok_or_else(|| {
            UndoRefused::Internal(format!("table id {tid} missing from the catalog"))
        })?;
        let mut keys = HashSet::new();
        let mut schemas: HashMap<u32, TableSchema> = HashMap::new();
        let mut err = None;
        log.scan_table(*tid, txn.commit_us, i64::MAX, 0..u64::MAX, &mut |ev| {
            let schema = match schemas.get(&ev.schema_version) {
                Some(s) => s.clone(),
                None => match log.schema(*tid, ev.schema_version) {
                    Ok(Some(s)) => {
                        schemas.insert(ev.schema_version, s.clone());
                        s
                    }
                    other => {
                        err = Some(format!("schema {} of {tref}: {other:?}", ev.schema_version));
                        return false;
                    }
                },
            };
            if (txn.first_event_id..end).contains(&ev.event_id) {
                if schema.has_primary_key() {
                    match &ev.change {
                        RowChange::Insert { after } => {
                            keys.insert(key_of(&schema, after));
                        }
                        RowChange::Delete { before } => {
                            keys.insert(key_of(&schema, before));
                        }
                        RowChange::Update { before, after } => {
                            keys.insert(key_of(&schema, before));
                            keys.insert(key_of(&schema, after));
                        }
                    }
                }
                changes.push((ev.event_id, schema, ev.change));
            } else if ev.event_id >= end {
                let touched = !schema.has_primary_key()
                    || match &ev.change {
                        RowChange::Insert { after } => keys.contains(&key_of(&schema, after)),
                        RowChange::Delete { before } => keys.contains(&key_of(&schema, before)),
                        RowChange::Update { before, after } => {
                            keys.contains(&key_of(&schema, before))
                                || keys.contains(&key_of(&schema, after))
                        }
                    };
                if touched {
                    conflict_count += 1;
                    if conflicts.len() < MAX_CONFLICTS {
                        conflicts.push(format!(
                            "{tref}: {} at {} ({}) changes a row this transaction changed",
                            ev.change.kind(),
                            rfc3339_micros(ev.commit_us),
                            ev.gtid
                                .as_ref()
                                .map(|g| g.to_string())
                                .unwrap_or_else(|| format!("event {}", ev.event_id)),
                        ));
                    }
                }
            }
            true
        })?;
        if let Some(e) = err {
            return Err(UndoRefused::Internal(e));
        }
    }
    changes.sort_by_key(|(id, _, _)| *id);
    Ok(Changes {
        txn,
        changes,
        conflicts,
        conflict_count,
    })
}

/// Why `changes` cannot be undone row by row, if they cannot: one of them deleted or re-keyed
/// a parent row of one of the cascading foreign keys `keys` (child table, key) at a point
/// where the server did not log the child rows its action changed.
pub fn blocker(
    log: &dyn ChangeLog,
    keys: &[(TableRef, ForeignKey)],
    changes: &[(u64, TableSchema, RowChange)],
) -> Result<Option<String>, UndoRefused> {
    if keys.is_empty() {
        return Ok(None);
    }
    let derivable = Derivable::new(log).map_err(|e| UndoRefused::Internal(e.to_string()))?;
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

/// The undo script of the transaction `gtid`, after both checks (module doc); `cascading_keys`
/// gives every known cascading foreign key of the source (asked only once the changes are
/// known). Conflicts are refused unless `force`.
pub fn undo(
    catalog: &dyn Catalog,
    log: &dyn ChangeLog,
    gtid: &Gtid,
    force: bool,
    cascading_keys: &mut dyn FnMut() -> Result<Vec<(TableRef, ForeignKey)>, String>,
) -> Result<UndoResponse, UndoRefused> {
    let Changes {
        txn,
        changes,
        conflicts,
        conflict_count: _,
    } = collect(catalog, log, gtid)?;
    let keys = cascading_keys().map_err(UndoRefused::Internal)?;
    if let Some(why) = blocker(log, &keys, &changes)? {
        return Err(UndoRefused::Bad(format!(
            "transaction {gtid} cannot be undone row by row: {why}. Restore the affected tables \
             as they were just before it with `dbtrailctl pitr --tables ... --at '{}'` (the \
             restore derives the cascaded rows) instead",
            rfc3339_micros(txn.commit_us - 1)
        )));
    }
    if !conflicts.is_empty() && !force {
        return Err(UndoRefused::Conflict(format!(
            "later transactions changed rows that {gtid} changed; undoing it would overwrite \
             them: {}. Inspect them with `dbtrailctl events`, or pass --force to get the \
             script anyway",
            conflicts.join("; ")
        )));
    }
    let title = format!(
        "Undo of transaction {gtid}, committed {} ({} row changes).",
        rfc3339_micros(txn.commit_us),
        changes.len()
    );
    let sql = crate::reverse::undo_script(&title, changes.iter().map(|(_, s, c)| (s, c)));
    let mut tables: Vec<String> = Vec::new();
    for (_, s, _) in &changes {
        let t = s.table.to_string();
        if !tables.contains(&t) {
            tables.push(t);
        }
    }
    Ok(UndoResponse {
        gtid: gtid.to_string(),
        commit_time: rfc3339_micros(txn.commit_us),
        tables,
        statements: changes.len(),
        conflicts,
        sql: String::from_utf8(sql)
            .map_err(|_| UndoRefused::Internal("undo script is not UTF-8".into()))?,
    })
}

#[cfg(test)]
mod tests;
