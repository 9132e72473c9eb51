//! Undo over an in-memory log: what it refuses (unknown, DDL, conflicts unless forced, an
//! unlogged cascade), what it does not (other keys, logged cascades), and the script.
use super::*;
use crate::plan::tests::{MemCatalog, commit, gtid, txn};
use crate::restore::tests::{MemLog, schemas};
use dbtrail_core::FkAction;
use dbtrail_core::history::LoggedChange;

fn k(id: i64, v: &str) -> Vec<Value> {
    vec![Value::Int(id), Value::Str(v.as_bytes().to_vec())]
}

/// Transactions (one change each, on d.k unless said): 1 inserts key 1, 2 inserts key 2,
/// 3 updates key 1, 4 deletes key 2, 5 is DDL, 6 inserts into d.b (no key), 7 too.
fn history() -> (MemCatalog, MemLog) {
    let changes: Vec<(u32, RowChange)> = vec![
        (0, RowChange::Insert { after: k(1, "a") }),
        (0, RowChange::Insert { after: k(2, "b") }),
        (
            0,
            RowChange::Update {
                before: k(1, "a"),
                after: k(1, "c"),
            },
        ),
        (0, RowChange::Delete { before: k(2, "b") }),
        (
            1,
            RowChange::Insert {
                after: vec![Value::Int(1), Value::Int(1)],
            },
        ),
        (
            1,
            RowChange::Insert {
                after: vec![Value::Int(1), Value::Int(1)],
            },
        ),
    ];
    let mut log = MemLog::new(schemas());
    let mut cat = MemCatalog {
        tables: log
            .schemas
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u32, s.table.clone()))
            .collect(),
        ..MemCatalog::default()
    };
    for (i, (t, change)) in changes.into_iter().enumerate() {
        let id = i as u64;
        let n = if i < 4 { i as u64 + 1 } else { i as u64 + 2 };
        if i == 4 {
            let mut d = txn(5, id, 0, Vec::new());
            d.ddl = Some("ALTER TABLE d.k ADD c INT".into());
            cat.txns.push(d);
        }
        log.changes.push((
            t,
            LoggedChange {
                commit_us: commit(n),
                event_id: id,
                schema_version: 1,
                gtid: Some(gtid(n)),
                change,
            },
        ));
        cat.txns.push(txn(n, id, 1, vec![t]));
    }
    (cat, log)
}

fn no_keys() -> Result<Vec<(TableRef, ForeignKey)>, String> {
    Ok(Vec::new())
}

#[test]
fn refusals_and_conflicts() {
    let (cat, log) = history();
    let r = undo(&cat, &log, &gtid(99), false, &mut no_keys);
    assert_eq!(
        r,
        Err(UndoRefused::NotFound(format!(
            "transaction {} is not in the log",
            gtid(99)
        )))
    );
    let r = undo(&cat, &log, &gtid(5), false, &mut no_keys);
    assert_eq!(
        r,
        Err(UndoRefused::Bad(format!(
            "transaction {} is a statement (ALTER TABLE d.k ADD c INT); only row changes can \
             be undone",
            gtid(5)
        )))
    );
    // 1's row is changed by 3: a conflict, named.
    let c = collect(&cat, &log, &gtid(1)).expect("collect");
    assert_eq!(c.changes.len(), 1);
    assert_eq!(c.conflict_count, 1);
    assert_eq!(
        c.conflicts,
        vec![format!(
            "d.k: update at {} ({}) changes a row this transaction changed",
            rfc3339_micros(commit(3)),
            gtid(3)
        )]
    );
    match undo(&cat, &log, &gtid(1), false, &mut no_keys) {
        Err(UndoRefused::Conflict(m)) => assert!(
            m.starts_with(&format!(
                "later transactions changed rows that {} changed; undoing it would overwrite \
                 them: d.k: update at",
                gtid(1)
            )) && m.ends_with("or pass --force to get the script anyway"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    let forced = undo(&cat, &log, &gtid(1), true, &mut no_keys).expect("forced");
    assert_eq!(forced.conflicts.len(), 1);
    assert_eq!(forced.statements, 1);
    assert!(forced.sql.contains("DELETE"), "{}", forced.sql);
    // 3 (key 1) is not touched later; 4 (key 2) neither.
    for n in [3, 4] {
        let u = undo(&cat, &log, &gtid(n), false, &mut no_keys).expect("undo");
        assert!(u.conflicts.is_empty());
        assert_eq!(u.tables, vec!["d.k".to_string()]);
        assert_eq!(u.commit_time, rfc3339_micros(commit(n)));
    }
    // Without a key, any later change of the table conflicts.
    assert_eq!(
        collect(&cat, &log, &gtid(6))
            .expect("collect")
            .conflict_count,
        1
    );
    assert_eq!(
        collect(&cat, &log, &gtid(7))
            .expect("collect")
            .conflict_count,
        0
    );
}

#[test]
fn an_unlogged_cascade_blocks_the_undo() {
    let (cat, log) = history();
    let fk = ForeignKey {
        name: "fk_k".into(),
        columns: vec!["kid".into()],
        parent: TableRef::new("d", "k"),
        parent_columns: vec!["id".into()],
        on_delete: FkAction::Cascade,
        on_update: FkAction::Restrict,
    };
    let mut keys = || Ok(vec![(TableRef::new("d", "child"), fk.clone())]);
    // The same log without server facts: cascades may be unlogged everywhere.
    let unlogged = MemLog {
        logged: false,
        ..log.clone()
    };
    // 4 deleted a parent row and the server did not log the cascade.
    match undo(&cat, &unlogged, &gtid(4), true, &mut keys) {
        Err(UndoRefused::Bad(m)) => assert_eq!(
            m,
            format!(
                "transaction {} cannot be undone row by row: it deleted rows of d.k that \
                 d.child references through foreign key fk_k (ON DELETE CASCADE, ON UPDATE \
                 RESTRICT), and the server applied that action without logging the child \
                 rows. Restore the affected tables as they were just before it with \
                 `dbtrailctl pitr --tables ... --at '{}'` (the restore derives the cascaded \
                 rows) instead",
                gtid(4),
                rfc3339_micros(commit(4) - 1)
            )
        ),
        other => panic!("{other:?}"),
    }
    // Logged cascades, an update that keeps the key, an insert: nothing to bring back.
    assert!(undo(&cat, &log, &gtid(4), true, &mut keys).is_ok());
    assert!(undo(&cat, &unlogged, &gtid(3), true, &mut keys).is_ok());
    assert!(undo(&cat, &unlogged, &gtid(2), true, &mut keys).is_ok());
    // The keys' reader failing is the caller's error.
    let mut failing = || Err("unreadable".to_string());
    assert_eq!(
        undo(&cat, &log, &gtid(3), false, &mut failing),
        Err(UndoRefused::Internal("unreadable".into()))
    );
}
