//! Window undo over an in-memory log: the script (order, counts, batches), the requests it
//! refuses, the conflict rule (refused, forced, skipped), schema changes, and a model: random
//! histories, a random window and filters, the undo applied to the end state == the state
//! before each undone key's first undone change, every other key as it ended.
use super::*;
use crate::plan::tests::{MemCatalog, commit, gtid, txn};
use crate::restore::tests::{MemLog, Model, op, schemas};
use dbtrail_core::Value;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn k(id: i64, v: &str) -> Vec<Value> {
    vec![Value::Int(id), Value::Str(v.as_bytes().to_vec())]
}

/// A log of one change per transaction: change `i` is transaction `i + 1`, event `i`.
fn build(changes: Vec<(u32, RowChange)>) -> (MemCatalog, MemLog) {
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
        let n = i as u64 + 1;
        log.changes.push((
            t,
            LoggedChange {
                commit_us: commit(n),
                event_id: i as u64,
                schema_version: 1,
                gtid: Some(gtid(n)),
                change,
            },
        ));
        cat.txns.push(txn(n, i as u64, 1, vec![t]));
    }
    (cat, log)
}

/// Transactions `a..=b`, every table and kind, conflicts refused.
fn win(a: u64, b: u64) -> Window {
    Window {
        since_us: commit(a),
        until_us: commit(b),
        tables: Vec::new(),
        kinds: [true; 3],
        keys: Vec::new(),
        gtids: Vec::new(),
        batch_rows: 0,
        on_conflict: OnConflict::Refuse,
    }
}

fn no_fks() -> Result<Vec<(TableRef, ForeignKey)>, String> {
    Ok(Vec::new())
}

fn script(
    cat: &MemCatalog,
    log: &MemLog,
    w: Window,
) -> Result<(UndoWindowSummary, String), UndoRefused> {
    let mut plan = prepare(cat, log, w, &mut no_fks)?;
    let mut out = Vec::new();
    plan.write(log, &mut out)?;
    Ok((plan.summary.clone(), String::from_utf8(out).expect("utf8")))
}

fn body(sql: &str) -> Vec<&str> {
    sql.lines()
        .filter(|l| !l.starts_with("--") && !l.starts_with("/*"))
        .collect()
}

/// 1 inserts key 1, 2 updates it, 3 inserts key 2, 4 deletes key 2, 5 updates key 1 again,
/// 6 inserts into the key-less table.
fn history() -> (MemCatalog, MemLog) {
    build(vec![
        (0, RowChange::Insert { after: k(1, "a") }),
        (
            0,
            RowChange::Update {
                before: k(1, "a"),
                after: k(1, "b"),
            },
        ),
        (0, RowChange::Insert { after: k(2, "x") }),
        (0, RowChange::Delete { before: k(2, "x") }),
        (
            0,
            RowChange::Update {
                before: k(1, "b"),
                after: k(1, "c"),
            },
        ),
        (
            1,
            RowChange::Insert {
                after: vec![Value::Int(7), Value::Int(8)],
            },
        ),
    ])
}

#[test]
fn the_script_undoes_newest_first_in_batches() {
    let (cat, log) = history();
    let (s, sql) = script(&cat, &log, win(2, 6)).expect("undo");
    assert_eq!(s.statements, 5);
    assert_eq!(s.batches, 1);
    assert_eq!(s.tables, vec!["d.b".to_string(), "d.k".to_string()]);
    assert_eq!(
        body(&sql),
        [
            "START TRANSACTION;",
            "DELETE FROM `d`.`b` WHERE `x` <=> 7 AND `y` <=> 8 LIMIT 1; -- expect 1 row",
            "UPDATE `d`.`k` SET `id`=1,`v`='b' WHERE `id` <=> 1 LIMIT 1; -- expect 1 row",
            "INSERT INTO `d`.`k` (`id`,`v`) VALUES(2,'x'); -- expect 1 row",
            "DELETE FROM `d`.`k` WHERE `id` <=> 2 LIMIT 1; -- expect 1 row",
            "UPDATE `d`.`k` SET `id`=1,`v`='a' WHERE `id` <=> 1 LIMIT 1; -- expect 1 row",
            "COMMIT;",
        ]
    );
    assert!(
        sql.starts_with(&format!(
            "-- Undo of the window {} .. {}: 5 row change(s) of d.b, d.k, newest first, in 1 \
             transaction(s).\n-- Each statement is followed by the rows it must affect",
            rfc3339_micros(commit(2)),
            rfc3339_micros(commit(6))
        )),
        "{sql}"
    );
    assert!(sql.contains("ROLLBACK"), "{sql}");
    // Batches of two: still newest first.
    let (s, sql) = script(
        &cat,
        &log,
        Window {
            batch_rows: 2,
            ..win(2, 6)
        },
    )
    .expect("batched");
    assert_eq!(s.batches, 3);
    assert!(
        sql.contains("-- In batches of 2 statements, each committed on its own"),
        "{sql}"
    );
    let b = body(&sql);
    assert_eq!(b.iter().filter(|l| **l == "START TRANSACTION;").count(), 3);
    assert_eq!(b.iter().filter(|l| **l == "COMMIT;").count(), 3);
    assert_eq!(b[3], "COMMIT;");
    assert!(b[1].starts_with("DELETE FROM `d`.`b`"), "{b:?}");
    // Kinds, tables, GTIDs filter.
    let (s, sql) = script(
        &cat,
        &log,
        Window {
            kinds: [false, false, true],
            ..win(1, 6)
        },
    )
    .expect("deletes");
    assert_eq!(s.statements, 1);
    assert!(body(&sql)[1].starts_with("INSERT INTO `d`.`k`"), "{sql}");
    let (s, _) = script(
        &cat,
        &log,
        Window {
            tables: vec![TableRef::new("d", "b")],
            ..win(1, 6)
        },
    )
    .expect("bag");
    assert_eq!((s.statements, s.tables), (1, vec!["d.b".to_string()]));
    let (s, sql) = script(
        &cat,
        &log,
        Window {
            gtids: vec![gtid(3), gtid(4)],
            ..win(1, 6)
        },
    )
    .expect("gtids");
    assert_eq!(s.statements, 2, "{sql}");
    // An empty window is an empty script.
    let (s, sql) = script(&cat, &log, win(9, 10)).expect("empty");
    assert_eq!(s.statements, 0);
    assert_eq!(body(&sql), ["START TRANSACTION;", "COMMIT;"]);
}

#[test]
fn later_changes_not_undone_conflict() {
    let (cat, log) = history();
    // Window 2..=3: key 1 is changed again by 5 (outside), key 2 by 4 (outside).
    let conflict = |r: Result<(UndoWindowSummary, String), UndoRefused>| match r {
        Err(UndoRefused::Conflict(m)) => m,
        other => panic!("{other:?}"),
    };
    let m = conflict(script(&cat, &log, win(2, 3)));
    assert!(
        m.starts_with("2 change(s) not undone touch rows the undo of")
            && m.contains(&format!(
                "d.k key (id=2): delete at {} ({})",
                rfc3339_micros(commit(4)),
                gtid(4)
            ))
            && m.contains("d.k key (id=1): update at")
            && m.ends_with("leave those keys alone and undo the rest"),
        "{m}"
    );
    // Inside the window but filtered out (kind) after the first selected change: a conflict.
    let m = conflict(script(
        &cat,
        &log,
        Window {
            kinds: [true, false, true],
            ..win(1, 5)
        },
    ));
    assert!(m.contains("d.k key (id=1): update at"), "{m}");
    // Filtered out before the first selected change: not one.
    let (s, _) = script(
        &cat,
        &log,
        Window {
            kinds: [false, true, false],
            ..win(1, 5)
        },
    )
    .expect("updates only");
    assert_eq!(s.statements, 2);
    // Forced: warnings in the summary and the header.
    let (s, sql) = script(
        &cat,
        &log,
        Window {
            on_conflict: OnConflict::Force,
            ..win(2, 3)
        },
    )
    .expect("forced");
    assert_eq!((s.statements, s.conflict_count), (2, 2));
    assert!(sql.contains("-- warning: overwrites a change not undone: d.k key (id=1)"));
    // Skipped: both keys left alone, nothing undone.
    let (s, sql) = script(
        &cat,
        &log,
        Window {
            on_conflict: OnConflict::Skip,
            ..win(2, 3)
        },
    )
    .expect("skipped");
    assert_eq!(
        (s.statements, s.skipped_key_count, s.skipped_statements),
        (0, 2, 2)
    );
    assert!(sql.contains("-- left alone: d.k key (id=1)"), "{sql}");
    // Window 2..=5 with the bag's insert after it... the key-less table: any later change.
    let (cat2, log2) = build(vec![
        (
            1,
            RowChange::Insert {
                after: vec![Value::Int(1), Value::Int(1)],
            },
        ),
        (
            1,
            RowChange::Insert {
                after: vec![Value::Int(2), Value::Int(2)],
            },
        ),
        (0, RowChange::Insert { after: k(5, "z") }),
    ]);
    let m = conflict(script(&cat2, &log2, win(1, 1)));
    assert!(
        m.contains("d.b (no primary key) row (x=2, y=2): insert at"),
        "{m}"
    );
    let (s, _) = script(
        &cat2,
        &log2,
        Window {
            on_conflict: OnConflict::Skip,
            ..win(1, 3)
        },
    )
    .expect("no conflict within");
    assert_eq!(s.statements, 3);
    let (s, sql) = script(
        &cat2,
        &log2,
        Window {
            on_conflict: OnConflict::Skip,
            ..win(1, 1)
        },
    )
    .expect("skip the table");
    assert_eq!(s.statements, 0);
    assert!(
        sql.contains("left alone: d.b (no primary key: the whole table)"),
        "{sql}"
    );
}

#[test]
fn keys_select_rows_of_one_table() {
    let (cat, log) = history();
    let w = Window {
        tables: vec![TableRef::new("d", "k")],
        keys: vec![KeySpec::parse("id=2").expect("key")],
        ..win(1, 6)
    };
    let (s, sql) = script(&cat, &log, w.clone()).expect("key 2");
    assert_eq!(s.statements, 2, "{sql}");
    let bad = Window {
        keys: vec![KeySpec::parse("v=2").expect("key")],
        ..w
    };
    match prepare(&cat, &log, bad, &mut no_fks) {
        Err(UndoRefused::Bad(m)) => assert!(m.contains("primary key columns"), "{m}"),
        other => panic!("{:?}", other.map(|p| p.summary)),
    }
}

#[test]
fn requests_are_validated() {
    let req = |f: &dyn Fn(&mut UndoWindowRequest)| {
        let mut r = UndoWindowRequest {
            since: "2026-01-01 00:00:00".into(),
            until: "2026-01-01 00:05:00".into(),
            ..UndoWindowRequest::default()
        };
        f(&mut r);
        match Window::from_request(&r) {
            Err(UndoRefused::Bad(m)) => m,
            Ok(w) => panic!("accepted: {w:?}"),
            Err(e) => panic!("{e:?}"),
        }
    };
    let ok = Window::from_request(&UndoWindowRequest {
        since: "2026-01-01 00:00:00".into(),
        until: "2026-01-01 00:05:00".into(),
        kinds: vec!["Update".into(), "delete".into()],
        ..UndoWindowRequest::default()
    })
    .expect("ok");
    assert_eq!(ok.until_us - ok.since_us, 300_999_999);
    assert_eq!(ok.kinds, [false, true, true]);
    let m = req(&|r| r.until = "2025-12-31 23:59:59".into());
    assert!(
        m.contains("since 2026-01-01 00:00:00") && m.contains("until 2025-12-31"),
        "{m}"
    );
    assert!(req(&|r| r.since = "yesterday".into()).starts_with("since: invalid time"));
    assert!(req(&|r| r.kinds = vec!["upsert".into()]).contains("insert, update or delete"));
    assert!(req(&|r| r.tables = vec!["orders".into()]).contains("expected db.table"));
    assert!(req(&|r| r.keys = vec!["id=1".into()]).contains("exactly one table"));
    assert!(
        req(&|r| {
            r.tables = vec!["d.k".into()];
            r.keys = vec!["id".into()];
        })
        .contains("column=value")
    );
    assert!(
        req(&|r| {
            r.force = true;
            r.skip_conflicts = true;
        })
        .contains("exclude each other")
    );
    assert!(req(&|r| r.batch_rows = Some(0)).contains("at least 1"));
    assert!(req(&|r| r.gtids = vec!["nope".into()]).contains("bad gtid"));
}

#[test]
fn refusals_from_the_log() {
    let (mut cat, log) = history();
    // A GTID outside the window, or unknown.
    match prepare(
        &cat,
        &log,
        Window {
            gtids: vec![gtid(1)],
            ..win(2, 3)
        },
        &mut no_fks,
    ) {
        Err(UndoRefused::Bad(m)) => assert!(m.contains("outside the window"), "{m}"),
        other => panic!("{:?}", other.map(|p| p.summary)),
    }
    assert!(matches!(
        prepare(
            &cat,
            &log,
            Window {
                gtids: vec![gtid(99)],
                ..win(2, 3)
            },
            &mut no_fks
        ),
        Err(UndoRefused::NotFound(_))
    ));
    assert!(matches!(
        prepare(
            &cat,
            &log,
            Window {
                tables: vec![TableRef::new("d", "nope")],
                ..win(2, 3)
            },
            &mut no_fks
        ),
        Err(UndoRefused::NotFound(_))
    ));
    // An unlogged cascade: refused with the restore instead.
    let fk = ForeignKey {
        name: "fk_k".into(),
        columns: vec!["kid".into()],
        parent: TableRef::new("d", "k"),
        parent_columns: vec!["id".into()],
        on_delete: dbtrail_core::FkAction::Cascade,
        on_update: dbtrail_core::FkAction::Restrict,
    };
    let unlogged = MemLog {
        logged: false,
        ..log.clone()
    };
    let mut fks = || Ok(vec![(TableRef::new("d", "child"), fk.clone())]);
    match prepare(&cat, &unlogged, win(4, 4), &mut fks) {
        Err(UndoRefused::Bad(m)) => assert!(
            m.contains("cannot be undone row by row: it deleted rows of d.k")
                && m.contains("dbtrailctl pitr --tables ... --at"),
            "{m}"
        ),
        other => panic!("{:?}", other.map(|p| p.summary)),
    }
    assert!(prepare(&cat, &log, win(4, 4), &mut fks).is_ok());
    // A DDL on d.k after the window: refused; on another table: not.
    let mut d = txn(7, 6, 0, Vec::new());
    d.ddl = Some("ALTER TABLE `d`.`k` ADD COLUMN c INT".into());
    cat.txns.push(d);
    match prepare(&cat, &log, win(5, 5), &mut no_fks) {
        Err(UndoRefused::Bad(m)) => assert!(
            m.starts_with("d.k's schema may have changed after changes this undo would reverse")
                && m.contains("dbtrailctl pitr --tables d.k"),
            "{m}"
        ),
        other => panic!("{:?}", other.map(|p| p.summary)),
    }
    assert!(prepare(&cat, &log, win(6, 6), &mut no_fks).is_ok());
}

#[test]
fn a_schema_change_after_the_window_refuses() {
    /// The log with a second schema version of d.k, used by every change after event 2.
    struct Versions(MemLog, TableSchema);
    impl ChangeLog for Versions {
        fn table_id(
            &self,
            t: &TableRef,
        ) -> Result<Option<u32>, dbtrail_core::history::HistoryError> {
            self.0.table_id(t)
        }
        fn schema(
            &self,
            id: u32,
            v: u32,
        ) -> Result<Option<TableSchema>, dbtrail_core::history::HistoryError> {
            if id == 0 && v == 2 {
                return Ok(Some(self.1.clone()));
            }
            self.0.schema(id, v)
        }
        fn scan_table(
            &self,
            id: u32,
            since: i64,
            until: i64,
            ids: Range<u64>,
            visit: &mut dyn FnMut(LoggedChange) -> bool,
        ) -> Result<(), dbtrail_core::history::HistoryError> {
            self.0.scan_table(id, since, until, ids, &mut |mut c| {
                if id == 0 && c.event_id > 2 {
                    c.schema_version = 2;
                }
                visit(c)
            })
        }
        fn cascades_logged(&self) -> Result<Vec<(u64, bool)>, dbtrail_core::history::HistoryError> {
            self.0.cascades_logged()
        }
    }
    let (cat, log) = history();
    let mut v2 = log.schemas[0].clone();
    v2.version = 2;
    let log = Versions(log, v2);
    match prepare(&cat, &log, win(2, 3), &mut no_fks) {
        Err(UndoRefused::Bad(m)) => assert!(
            m.starts_with("d.k's schema changed after the change update at")
                && m.contains("(schema version 1 then, 2 now)"),
            "{m}"
        ),
        other => panic!("{:?}", other.map(|p| p.summary)),
    }
    assert!(prepare(&cat, &log, win(4, 5), &mut no_fks).is_ok());
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("{other:?}"),
    }
}

fn bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::Str(s) => s.clone(),
        other => panic!("{other:?}"),
    }
}

/// Applies the undo statement of `change` to `m` as MySQL would, each affecting one row.
fn apply_undo(m: &mut Model, schema: &TableSchema, change: &RowChange) -> Result<(), String> {
    let keyed = schema.has_primary_key();
    let bag = |r: &[Value]| (int(&r[0]), int(&r[1]));
    match (keyed, change) {
        (true, RowChange::Insert { after }) => {
            if m.k.get(&int(&after[0])) != Some(&bytes(&after[1])) {
                return Err(format!("delete of {after:?}: not there"));
            }
            m.k.remove(&int(&after[0]));
        }
        (true, RowChange::Update { before, after }) => {
            if m.k.remove(&int(&after[0])).is_none() {
                return Err(format!("update of {after:?}: not there"));
            }
            if m.k.insert(int(&before[0]), bytes(&before[1])).is_some() {
                return Err(format!("update to {before:?}: duplicate key"));
            }
        }
        (true, RowChange::Delete { before }) => {
            if m.k.insert(int(&before[0]), bytes(&before[1])).is_some() {
                return Err(format!("insert of {before:?}: duplicate key"));
            }
        }
        (false, RowChange::Insert { after }) => {
            let i =
                m.b.iter()
                    .position(|r| *r == bag(after))
                    .ok_or("bag delete")?;
            m.b.remove(i);
        }
        (false, RowChange::Update { before, after }) => {
            let i =
                m.b.iter()
                    .position(|r| *r == bag(after))
                    .ok_or("bag update")?;
            m.b[i] = bag(before);
        }
        (false, RowChange::Delete { before }) => m.b.push(bag(before)),
    }
    Ok(())
}

fn touched_ids(c: &RowChange) -> Vec<i64> {
    let mut v = Vec::new();
    match c {
        RowChange::Insert { after } => v.push(int(&after[0])),
        RowChange::Delete { before } => v.push(int(&before[0])),
        RowChange::Update { before, after } => {
            v.push(int(&before[0]));
            v.push(int(&after[0]));
        }
    }
    v.dedup();
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn undo_of_a_window_restores_the_undone_keys(
        ops in prop::collection::vec(op(), 1..40),
        a in 0usize..40,
        len in 0usize..40,
        kinds in 1u8..8,
        tables in 0u8..3,
        key in prop::option::of(0i64..40),
        batch in 0usize..4,
        skip in any::<bool>(),
    ) {
        let mut m = Model::default();
        let mut states = vec![m.clone()];
        let mut changes = Vec::new();
        for o in &ops {
            if let Some(c) = m.apply(o) {
                changes.push(c);
                states.push(m.clone());
            }
        }
        let n = changes.len();
        let (lo, hi) = (a.min(n), (a + len).min(n)); // changes lo..hi are in the window
        let kinds = [kinds & 1 != 0, kinds & 2 != 0, kinds & 4 != 0];
        let tabs: Vec<u32> = match tables { 0 => vec![0, 1], 1 => vec![0], _ => vec![1] };
        let key = key.filter(|_| tables == 1);
        let sel: Vec<bool> = changes.iter().enumerate().map(|(i, (t, c))| {
            (lo..hi).contains(&i)
                && kinds[kind_index(c)]
                && tabs.contains(t)
                && key.is_none_or(|k| *t == 0 && touched_ids(c).contains(&k))
        }).collect();
        // The oracle: first selected change per key, conflicts, links, left alone.
        let mut first: BTreeMap<i64, usize> = BTreeMap::new();
        let mut conflicting: BTreeSet<i64> = BTreeSet::new();
        let mut links: Vec<(i64, i64)> = Vec::new();
        let mut bag_first: Option<usize> = None;
        let mut bag_conflict = false;
        for (i, (t, c)) in changes.iter().enumerate() {
            if *t == 1 {
                if sel[i] { bag_first.get_or_insert(i); } else if bag_first.is_some() { bag_conflict = true; }
                continue;
            }
            let ids = touched_ids(c);
            if sel[i] {
                for id in &ids { first.entry(*id).or_insert(i); }
                if ids.len() == 2 { links.push((ids[0], ids[1])); }
            } else {
                for id in &ids { if first.contains_key(id) { conflicting.insert(*id); } }
            }
        }
        let any_conflict = !conflicting.is_empty() || bag_conflict;
        let mut alone = conflicting.clone();
        loop {
            let before = alone.len();
            for (x, y) in &links {
                if alone.contains(x) || alone.contains(y) { alone.insert(*x); alone.insert(*y); }
            }
            if alone.len() == before { break; }
        }
        let mut w = Window {
            tables: tabs.iter().map(|t| schemas()[*t as usize].table.clone()).collect(),
            kinds,
            keys: key.map(|k| vec![KeySpec::parse(&format!("id={k}")).expect("key")]).unwrap_or_default(),
            batch_rows: batch,
            on_conflict: OnConflict::Refuse,
            ..win(lo as u64 + 1, hi as u64)
        };
        if hi == lo {
            // An empty window, between two commits.
            w.since_us = commit(lo as u64 + 1) - 600;
            w.until_us = commit(lo as u64 + 1) - 100;
        }
        let (cat, log) = build(changes.clone());
        let refused = prepare(&cat, &log, w.clone(), &mut no_fks);
        prop_assert_eq!(matches!(refused, Err(UndoRefused::Conflict(_))), any_conflict);
        w.on_conflict = if skip { OnConflict::Skip } else { OnConflict::Force };
        let mut plan = prepare(&cat, &log, w, &mut no_fks).expect("prepare");
        let mut end = m.clone();
        let mut count = 0u64;
        plan.visit(&log, &mut |s, c| { count += 1; apply_undo(&mut end, s, c) }).map_err(|e| TestCaseError::fail(format!("{e:?}")))
            .or_else(|e| if !skip && any_conflict { Ok(()) } else { Err(e) })?;
        if !skip && any_conflict {
            return Ok(()); // forced over conflicts: the statements may fail, as warned
        }
        prop_assert_eq!(count, plan.summary.statements);
        // Expected: undone keys as before their first undone change; the rest as they ended.
        let ids: BTreeSet<i64> = m.k.keys().chain(end.k.keys()).chain(first.keys()).copied().collect();
        for id in ids {
            let want = match first.get(&id) {
                Some(i) if !alone.contains(&id) => states[*i].k.get(&id).cloned(),
                _ => m.k.get(&id).cloned(),
            };
            prop_assert_eq!(end.k.get(&id).cloned(), want, "key {}", id);
        }
        let mut got = end.b.clone();
        got.sort_unstable();
        let mut want = match bag_first {
            Some(i) if !bag_conflict => states[i].b.clone(),
            _ => m.b.clone(),
        };
        want.sort_unstable();
        prop_assert_eq!(got, want);
    }
}
