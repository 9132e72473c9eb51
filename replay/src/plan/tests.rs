//! Planning against an in-memory [`Catalog`]: every refusal, with its message; and random
//! histories where `plan()` for a random target (time or GTID) over random baselines, then
//! [`crate::restore::rebuild`], gives the model's state at the target.
use super::*;
use crate::restore::tests::{MemLog, Model, Quiet, create_table, dumped_rows, op, schemas};
use crate::restore::{Settings, TableInput, rebuild};
use dbtrail_core::baseline::BaselineOrigin;
use dbtrail_core::history::{Horizon, LoggedChange};
use dbtrail_core::{Gtid, Position, Row, Value};
use proptest::prelude::*;

const UUID: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000_000;

/// The catalog, in memory.
#[derive(Clone, Default)]
pub(crate) struct MemCatalog {
    pub(crate) baselines: Vec<BaselineManifest>,
    pub(crate) origin: Option<Position>,
    pub(crate) txns: Vec<TxnInfo>,
    pub(crate) gaps: Vec<GapInfo>,
    pub(crate) taints: Vec<TaintInfo>,
    pub(crate) tables: Vec<(u32, TableRef)>,
}

impl Catalog for MemCatalog {
    fn baselines(&self) -> Result<Vec<BaselineManifest>, HistoryError> {
        Ok(self.baselines.clone())
    }
    fn origin(&self) -> Result<Option<Position>, HistoryError> {
        Ok(self.origin.clone())
    }
    fn scan_txns(&self, visit: &mut dyn FnMut(TxnInfo) -> bool) -> Result<(), HistoryError> {
        for t in &self.txns {
            if !visit(t.clone()) {
                break;
            }
        }
        Ok(())
    }
    fn txn_by_gtid(&self, gtid: &Gtid) -> Result<Option<TxnInfo>, HistoryError> {
        Ok(self
            .txns
            .iter()
            .find(|t| t.gtid.as_ref() == Some(gtid))
            .cloned())
    }
    fn horizon(&self) -> Result<Option<Horizon>, HistoryError> {
        Ok(self.txns.last().map(|t| Horizon {
            last_commit_us: t.commit_us,
            next_event_id: t.first_event_id + t.event_count,
        }))
    }
    fn gaps(&self) -> Result<Vec<GapInfo>, HistoryError> {
        Ok(self.gaps.clone())
    }
    fn taints(&self) -> Result<Vec<TaintInfo>, HistoryError> {
        Ok(self.taints.clone())
    }
    fn tables(&self) -> Result<Vec<(u32, TableRef)>, HistoryError> {
        Ok(self.tables.clone())
    }
    fn event_bytes(&self) -> Result<u64, HistoryError> {
        Ok(10)
    }
}

pub(crate) fn gtid(n: u64) -> Gtid {
    format!("{UUID}:{n}").parse().expect("gtid")
}

/// Commit time of transaction `n` (1-based).
pub(crate) fn commit(n: u64) -> i64 {
    T0 + 1_000 * n as i64
}

/// A snapshot holding transactions 1..=n.
fn position(n: u64) -> Position {
    Position {
        gtid_set: if n == 0 {
            GtidSet::empty_mysql()
        } else {
            format!("{UUID}:1-{n}").parse().expect("set")
        },
        file: "b.000001".into(),
        pos: 100 * (n + 1),
        server_uuid: UUID.into(),
    }
}

pub(crate) fn txn(n: u64, first_event_id: u64, event_count: u64, tables: Vec<u32>) -> TxnInfo {
    TxnInfo {
        gtid: Some(gtid(n)),
        commit_us: commit(n),
        first_event_id,
        event_count,
        tables,
        end_file: "b.000001".into(),
        end_pos: 100 * (n + 1),
        ddl: None,
    }
}

/// A baseline holding transactions 1..=n, of `tables`, its files named `n-i.parquet`.
fn baseline(n: u64, tables: &[(TableRef, u64)]) -> BaselineManifest {
    let snapshot_us = commit(n) + 500;
    BaselineManifest {
        format_version: 1,
        id: dbtrail_core::baseline::baseline_id(snapshot_us),
        source: "src".into(),
        origin: BaselineOrigin::Snapshot,
        position: position(n),
        snapshot_us,
        started_us: snapshot_us,
        finished_us: snapshot_us,
        lock_held_us: 0,
        lock_mode: "FLUSH TABLES WITH READ LOCK".into(),
        method: Default::default(),
        upper: None,
        tables: tables
            .iter()
            .enumerate()
            .map(|(i, (t, rows))| BaselineTable {
                table: t.clone(),
                file: format!("{n}-{i}.parquet"),
                rows: *rows,
                bytes: 0,
                create_table: String::new(),
                parts: Vec::new(),
            })
            .collect(),
        skipped: Vec::new(),
        checksums: Default::default(),
    }
}

fn ctx() -> PlanContext {
    PlanContext {
        now_us: T0 + 3_600_000_000,
        covered_until_us: None,
        keys_in_memory: 1000,
        source_name: "src".into(),
        live: Err("no live source in these tests".into()),
        databases: None,
        live_image: None,
        exclude_image: None,
    }
}

fn nolog() -> MemLog {
    MemLog::new(schemas())
}

/// Baseline after transaction 2; transactions 1..=5, one event each on d.k (id 0).
fn small() -> MemCatalog {
    let k = TableRef::new("d", "k");
    MemCatalog {
        baselines: vec![baseline(2, &[(k.clone(), 3)])],
        origin: Some(position(0)),
        txns: (1..=5).map(|n| txn(n, n * 10, 1, vec![0])).collect(),
        tables: vec![(0, k), (1, TableRef::new("d", "new"))],
        ..MemCatalog::default()
    }
}

fn at(us: i64) -> PitrRequest {
    PitrRequest {
        target_time: Some(rfc3339_micros(us)),
        ..PitrRequest::default()
    }
}

fn refused(c: &MemCatalog, req: &PitrRequest) -> String {
    match plan(c, &nolog(), req, &ctx()) {
        Ok(p) => panic!("planned {:?}", p.view),
        Err(r) => r.0,
    }
}

#[test]
fn a_time_target_includes_a_prefix() {
    let p = plan(&small(), &nolog(), &at(commit(4)), &ctx()).expect("plan");
    assert_eq!(p.view.transactions, 2);
    assert_eq!(p.view.events, 2);
    assert_eq!(p.view.event_bytes, 20);
    assert_eq!(p.view.last_gtid, Some(gtid(4).to_string()));
    assert_eq!(p.view.gtid_set_reached, format!("{UUID}:1-4"));
    assert_eq!(p.view.not_in_baseline, vec!["d.new".to_string()]);
    assert_eq!(p.tables.len(), 1);
    assert_eq!(p.tables[0].table_id, Some(0));
    let w = p.tables[0].window;
    assert_eq!((w.cut, w.end), (30, 50));
    assert_eq!((w.since_us, w.until_us), (commit(3), commit(4)));
    // A whole-second target includes all of its second.
    let whole = PitrRequest {
        target_time: Some(rfc3339_micros(T0).replace(".000000", "")),
        ..PitrRequest::default()
    };
    let p = plan(&small(), &nolog(), &whole, &ctx());
    assert!(p.is_err(), "T0's second ends after the newest commit");
}

#[test]
fn a_gtid_target_is_the_state_right_after_it() {
    let req = PitrRequest {
        target_gtid: Some(format!("{UUID}:1-3")),
        ..PitrRequest::default()
    };
    let p = plan(&small(), &nolog(), &req, &ctx()).expect("plan");
    assert_eq!(p.view.transactions, 1);
    let w = p.tables[0].window;
    assert_eq!((w.cut, w.end, w.until_us), (30, 40, commit(3)));
}

#[test]
fn refusals() {
    let c = small();
    let both = PitrRequest {
        target_time: Some(rfc3339_micros(commit(3))),
        target_gtid: Some(format!("{UUID}:1-3")),
        ..PitrRequest::default()
    };
    assert_eq!(
        refused(&c, &both),
        "give exactly one of target_time (--at) and target_gtid (--gtid)"
    );
    let bad = PitrRequest {
        target_gtid: Some("nonsense".into()),
        ..PitrRequest::default()
    };
    assert!(refused(&c, &bad).starts_with("target_gtid \"nonsense\" is not a GTID set: "));
    // No baseline.
    let none = MemCatalog {
        baselines: Vec::new(),
        ..small()
    };
    assert_eq!(
        refused(&none, &at(commit(3))),
        "no baseline snapshot found for source src: take one with `dbtrailctl backup`, then \
         restore to a time after it"
    );
    // Before the oldest baseline.
    let msg = refused(&c, &at(commit(1)));
    assert!(
        msg.starts_with("no baseline snapshot found at or before ")
            && msg.contains(&format!("the oldest baseline is {}", c.baselines[0].id)),
        "{msg}"
    );
    // In the future.
    assert_eq!(
        refused(&c, &at(ctx().now_us + 1)),
        format!(
            "the target {} is in the future",
            rfc3339_micros(ctx().now_us + 1)
        )
    );
    // After the newest captured commit, capture not caught up.
    let msg = refused(&c, &at(commit(5) + 1));
    assert!(
        msg.contains("is after the newest captured transaction")
            && msg.contains("capture is not known to be caught up"),
        "{msg}"
    );
    let caught_up = PlanContext {
        covered_until_us: Some(commit(5) + 10),
        ..ctx()
    };
    assert!(plan(&c, &nolog(), &at(commit(5) + 1), &caught_up).is_ok());
    // The log begins after the baseline.
    let late = MemCatalog {
        origin: Some(position(4)),
        ..small()
    };
    let msg = refused(&late, &at(commit(4)));
    assert!(msg.contains("predates the log, which begins at"), "{msg}");
    // Not a prefix.
    let holes = PitrRequest {
        target_gtid: Some(format!("{UUID}:1-3:5")),
        ..PitrRequest::default()
    };
    assert_eq!(
        refused(&c, &holes),
        format!(
            "the target is not a prefix of the log: transaction {} (ends at b.000001:600) is \
             in it but an earlier one is not",
            gtid(5)
        )
    );
    // GTIDs the log does not have.
    let beyond = PitrRequest {
        target_gtid: Some(format!("{UUID}:1-9")),
        ..PitrRequest::default()
    };
    assert!(refused(&c, &beyond).contains("holds transactions the log does not have"));
    // A gap.
    let gap = MemCatalog {
        gaps: vec![GapInfo {
            missing: format!("{UUID}:100"),
            recorded_us: commit(3),
            after_commit_us: commit(3),
            reason: "purged".into(),
        }],
        ..small()
    };
    let msg = refused(&gap, &at(commit(4)));
    assert!(
        msg.starts_with("d.k has no usable image for ")
            && msg.contains(&format!(
                "baseline {} forward: the log has a gap between the image and the target: \
                 {UUID}:100 (purged); pass --allow-gaps to accept a result without those \
                 transactions",
                c.baselines[0].id
            )),
        "{msg}"
    );
    assert!(
        plan(&gap, &nolog(), &at(commit(3)), &ctx()).is_ok(),
        "the gap lies after the target"
    );
    let allowed = PitrRequest {
        allow_gaps: true,
        ..at(commit(4))
    };
    assert_eq!(
        plan(&gap, &nolog(), &allowed, &ctx())
            .expect("allowed")
            .view
            .gaps
            .len(),
        1
    );
    // Taints: of the table, of its schema, of everything.
    for (pattern, by) in [
        (TableRef::new("d", "k"), String::new()),
        (TableRef::new("d", "*"), " (by a change to d.*)".to_string()),
        (TableRef::new("*", "*"), " (by a change to *.*)".to_string()),
    ] {
        let tainted = MemCatalog {
            taints: vec![TaintInfo {
                table: pattern,
                reason: "XA".into(),
                since_us: commit(4),
            }],
            ..small()
        };
        assert_eq!(
            refused(&tainted, &at(commit(4))),
            format!(
                "the coverage of d.k is tainted since {}{by}: XA; it cannot be restored \
                 exactly past that point (leave it out with --tables, or restore to a target \
                 before it)",
                rfc3339_micros(commit(4))
            )
        );
        assert!(
            plan(&tainted, &nolog(), &at(commit(3)), &ctx()).is_ok(),
            "before the taint"
        );
    }
    let other = MemCatalog {
        taints: vec![TaintInfo {
            table: TableRef::new("e", "*"),
            reason: "XA".into(),
            since_us: commit(3),
        }],
        ..small()
    };
    assert_eq!(
        plan(&other, &nolog(), &at(commit(4)), &ctx())
            .expect("another schema's taint")
            .view
            .tainted_tables
            .len(),
        1
    );
    // DDL on a restored table.
    let mut ddl = small();
    ddl.txns[3].ddl = Some("ALTER TABLE `d`.`k` ADD COLUMN c INT".into());
    ddl.txns[3].event_count = 0;
    let msg = refused(&ddl, &at(commit(5)));
    assert!(
        msg.contains(&format!(
            "forward: DDL on d.k at {} ({} (ends at b.000001:500)): \"ALTER TABLE `d`.`k` ADD \
             COLUMN c INT\" lies between the image and the target",
            rfc3339_micros(commit(4)),
            gtid(4)
        )) && msg.contains("capture takes a table image after each DDL"),
        "{msg}"
    );
    // A table image taken after the DDL makes targets after it restorable, forward and
    // backward; targets before it still use the baseline.
    let mut imaged = ddl.clone();
    let mut img = baseline(4, &[(TableRef::new("d", "k"), 3)]);
    img.origin = BaselineOrigin::TableImage;
    imaged.baselines.push(img.clone());
    let p = plan(&imaged, &nolog(), &at(commit(5)), &ctx()).expect("forward from the image");
    assert_eq!(p.tables[0].image.as_ref().map(|i| &i.0), Some(&img.id));
    assert!(!p.tables[0].backward);
    let p = plan(&imaged, &nolog(), &at(commit(3)), &ctx()).expect("before the DDL");
    assert_eq!(
        p.tables[0].image.as_ref().map(|i| &i.0),
        Some(&c.baselines[0].id)
    );
    let mut later = imaged.clone();
    later.baselines.last_mut().expect("image").position = position(5);
    later.baselines.last_mut().expect("image").snapshot_us = commit(5) + 500;
    let p = plan(&later, &nolog(), &at(commit(4)), &ctx()).expect("backward from the image");
    assert!(p.tables[0].backward, "{:?}", p.view.images);
    let msg = refused(
        &later,
        &PitrRequest {
            image: Some("sideways".into()),
            ..at(commit(4))
        },
    );
    assert!(
        msg.starts_with("unknown image \"sideways\": use auto"),
        "{msg}"
    );
    let mut elsewhere = small();
    elsewhere.txns[3].ddl = Some("CREATE TABLE d.kk (a int)".into());
    let only_k = PitrRequest {
        tables: vec!["d.k".into()],
        ..at(commit(5))
    };
    if let Err(e) = plan(&elsewhere, &nolog(), &only_k, &ctx()) {
        panic!("{e}");
    }
    // The created table is part of a whole restore, and has no image yet.
    let msg = refused(&elsewhere, &at(commit(5)));
    assert!(msg.starts_with("d.kk has no usable image for "), "{msg}");
    // Unknown tables.
    let unknown = PitrRequest {
        tables: vec!["d.nope".into()],
        ..at(commit(4))
    };
    assert_eq!(
        refused(&c, &unknown),
        format!(
            "table d.nope is not in baseline {} (it holds: d.k) nor in any table image",
            c.baselines[0].id
        )
    );
    let malformed = PitrRequest {
        tables: vec!["nodot".into()],
        ..at(commit(4))
    };
    assert_eq!(refused(&c, &malformed), "table \"nodot\" is not db.table");
}

/// The log, catalog and model states (`states[n]`: after transactions 1..=n) of random
/// transactions, transaction n committed at `commit(n)` with GTID n.
fn history(txns: &[Vec<crate::restore::tests::Op>]) -> (MemLog, MemCatalog, Vec<Model>) {
    let schemas = schemas();
    let mut m = Model::default();
    let mut log = MemLog::new(schemas.clone());
    let mut cat = MemCatalog {
        origin: Some(position(0)),
        tables: schemas
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u32, s.table.clone()))
            .collect(),
        ..MemCatalog::default()
    };
    let mut states = vec![m.clone()];
    let mut id = 0u64;
    for (i, ops) in txns.iter().enumerate() {
        let n = i as u64 + 1;
        let first = id;
        let mut tables = Vec::new();
        for o in ops {
            if let Some((t, change)) = m.apply(o) {
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
                id += 1;
                if !tables.contains(&t) {
                    tables.push(t);
                }
            }
        }
        cat.txns.push(txn(n, first, id - first, tables));
        states.push(m.clone());
    }
    (log, cat, states)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// A baseline taken without a lock (position p0, upper p1): the keyed table's image holds
    /// each key as of its own random point in [p0, p1], the key-less one as of one random
    /// point. plan() + rebuild == the model at every target it accepts; it accepts exactly
    /// when no change in (p0, p1] to the keyed table is after the target and none touched
    /// the key-less one (the rule in binlog::start and the planner's docs).
    #[test]
    fn lock_free_baselines_give_the_model_state(
        txns in prop::collection::vec(prop::collection::vec(op(), 0..4), 1..16),
        p0 in any::<prop::sample::Index>(),
        width in 0u64..4,
        mix in prop::collection::vec(any::<u8>(), 48),
        bag_at in any::<prop::sample::Index>(),
        target in any::<prop::sample::Index>(),
        by_gtid in any::<bool>(),
    ) {
        let schemas = schemas();
        let (log, mut cat, states) = history(&txns);
        let count = txns.len() as u64;
        let p0 = p0.index(txns.len() + 1) as u64;
        let p1 = (p0 + width).min(count);
        let span = (p1 - p0 + 1) as usize;
        // Keyed: every key any state in [p0, p1] has, as of its own point.
        let mut keys: Vec<Value> = (p0..=p1)
            .flat_map(|n| states[n as usize].rows(0).into_iter().map(|r| r[0].clone()))
            .collect();
        keys.sort_by_key(|k| format!("{k:?}"));
        keys.dedup();
        let keyed: Vec<Row> = keys
            .iter()
            .filter_map(|k| {
                let Value::Int(i) = k else { return None };
                let n = p0 as usize + mix[i.rem_euclid(48) as usize] as usize % span;
                states[n].rows(0).into_iter().find(|r| &r[0] == k)
            })
            .collect();
        let bag = states[p0 as usize + bag_at.index(span)].rows(1);
        let mut b = baseline(p0, &[(schemas[0].table.clone(), keyed.len() as u64), (schemas[1].table.clone(), bag.len() as u64)]);
        b.method = dbtrail_core::baseline::SnapshotMethod::None;
        b.upper = Some(position(p1));
        let dir = tempfile::tempdir().expect("tmp");
        for (t, rows) in [(0usize, &keyed), (1, &bag)] {
            let f = std::fs::File::create(dir.path().join(&b.tables[t].file)).expect("create");
            let mut w = crate::baseline::BaselineWriter::new(f, &schemas[t], Vec::new(), 7).expect("writer");
            for r in rows {
                w.push(r).expect("push");
            }
            w.finish().expect("finish");
        }
        cat.baselines.push(b.clone());
        let to = p0 + target.index((count - p0) as usize + 1) as u64;
        let mut req = if by_gtid && to > 0 && p0 > 0 {
            PitrRequest { target_gtid: Some(format!("{UUID}:1-{to}")), ..PitrRequest::default() }
        } else {
            at(commit(to) + 500)
        };
        req.image = Some("baseline".into());
        let touches = |n: u64, t: u32| cat.txns[n as usize - 1].tables.contains(&t);
        let keyed_ok = !(p0 + 1..=p1).any(|n| n > to && touches(n, 0));
        let bag_ok = !(p0 + 1..=p1).any(|n| touches(n, 1));
        let ctx = PlanContext { covered_until_us: Some(i64::MAX), ..ctx() };
        match plan(&cat, &log, &req, &ctx) {
            Err(e) => prop_assert!(!(keyed_ok && bag_ok), "refused although exact: {e}"),
            Ok(p) => {
                prop_assert!(keyed_ok && bag_ok, "accepted a target the image cannot give: {:?}", p.view.images);
                let inputs: Vec<TableInput> = p
                    .tables
                    .iter()
                    .map(|t| {
                        let (_, e) = t.image.as_ref().expect("an image");
                        let s = &schemas[t.table_id.expect("known") as usize];
                        TableInput {
                            table: t.table.clone(),
                            window: t.window,
                            backward: t.backward,
                            rows: e.rows,
                            create_table: create_table(s),
                            table_id: t.table_id,
                            files: vec![dir.path().join(&e.file)],
                            requested: true,
                        }
                    })
                    .collect();
                let out = dir.path().join("out");
                std::fs::create_dir(&out).expect("out");
                let settings = Settings { keys_in_memory: 3, chunk_bytes: 300, statement_bytes: 120, threads: 2 };
                rebuild(&log, inputs, &out, &settings, &Quiet).expect("rebuild");
                for (t, s) in schemas.iter().enumerate() {
                    prop_assert_eq!(&dumped_rows(&out, s), &states[to as usize].rows(t as u32), "table {}", s.table);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// plan() over random baselines and table images (before and after the target) and a
    /// random target, then rebuild, == the model at the target, with `--image auto` and
    /// `--image baseline`: each table's image choice and window are exact in both directions.
    #[test]
    fn plan_then_rebuild_gives_the_model_state(
        txns in prop::collection::vec(prop::collection::vec(op(), 0..4), 1..20),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
        images in prop::collection::vec((any::<prop::sample::Index>(), 0usize..2), 0..4),
        target in any::<prop::sample::Index>(),
        by_gtid in any::<bool>(),
        keys_in_memory in 1u64..8,
        auto in any::<bool>(),
    ) {
        let schemas = schemas();
        let refs: Vec<TableRef> = schemas.iter().map(|s| s.table.clone()).collect();
        let (log, mut cat, states) = history(&txns);
        let count = txns.len() as u64;
        let dir = tempfile::tempdir().expect("tmp");
        let write = |file: &str, t: usize, n: u64| {
            let f = std::fs::File::create(dir.path().join(file)).expect("create");
            let mut w = crate::baseline::BaselineWriter::new(f, &schemas[t], Vec::new(), 7).expect("writer");
            for r in &states[n as usize].rows(t as u32) {
                w.push(r).expect("push");
            }
            w.finish().expect("finish");
        };
        let mut held: Vec<u64> = picks.iter().map(|p| p.index(txns.len() + 1) as u64).collect();
        held.sort_unstable();
        held.dedup();
        for &n in &held {
            let rows: Vec<(TableRef, u64)> = schemas
                .iter()
                .enumerate()
                .map(|(t, s)| (s.table.clone(), states[n as usize].rows(t as u32).len() as u64))
                .collect();
            let b = baseline(n, &rows);
            for t in 0..schemas.len() {
                write(&b.tables[t].file, t, n);
            }
            cat.baselines.push(b);
        }
        // Table images: one table each, at any point.
        for (k, (at_n, t)) in images.iter().enumerate() {
            let n = at_n.index(txns.len() + 1) as u64;
            let mut b = baseline(n, &[(refs[*t].clone(), states[n as usize].rows(*t as u32).len() as u64)]);
            b.origin = BaselineOrigin::TableImage;
            b.snapshot_us += 100 + k as i64;
            b.id = dbtrail_core::baseline::baseline_id(b.snapshot_us);
            b.tables[0].file = format!("img{k}.parquet");
            write(&b.tables[0].file, *t, n);
            cat.baselines.push(b);
        }
        cat.baselines.sort_by(|a, b| a.id.cmp(&b.id));
        // A target at or after the oldest baseline.
        let oldest = held[0];
        let to = oldest + target.index((count - oldest) as usize + 1) as u64;
        let mut req = if by_gtid && to > 0 && oldest > 0 {
            PitrRequest { target_gtid: Some(format!("{UUID}:1-{to}")), ..PitrRequest::default() }
        } else if to == oldest {
            at(commit(to) + 500)
        } else {
            at(commit(to))
        };
        req.image = Some(if auto { "auto" } else { "baseline" }.into());
        let ctx = PlanContext { keys_in_memory, covered_until_us: Some(i64::MAX), ..ctx() };
        let p = plan(&cat, &log, &req, &ctx).expect("plan");
        prop_assert!(p.live().is_empty());
        let file_of = |img: &str, file: &str| {
            let _ = img;
            dir.path().join(file)
        };
        let inputs: Vec<TableInput> = p
            .tables
            .iter()
            .map(|t| {
                let (img, e) = t.image.as_ref().expect("an image");
                TableInput {
                    table: t.table.clone(),
                    window: t.window,
                    backward: t.backward,
                    rows: e.rows,
                    create_table: create_table(&schemas[refs.iter().position(|r| r == &t.table).expect("known")]),
                    table_id: t.table_id,
                    files: e.files().into_iter().map(|f| file_of(img, f)).collect(),
                    requested: true,
                }
            })
            .collect();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).expect("out");
        let settings = Settings { keys_in_memory: p.keys_in_memory, chunk_bytes: 300, statement_bytes: 120, threads: 2 };
        rebuild(&log, inputs, &out, &settings, &Quiet).expect("rebuild");
        let want = &states[to as usize];
        for (t, s) in schemas.iter().enumerate() {
            prop_assert_eq!(&dumped_rows(&out, s), &want.rows(t as u32), "table {} plan {:?}", s.table, p.view.images);
        }
    }
}

#[test]
fn a_whole_restore_follows_create_drop_and_rename() {
    let mut c = small();
    for (i, ddl) in [
        (2, "USE `d`; RENAME TABLE k TO k2"),
        (3, "USE `d`; CREATE TABLE n (id int)"),
    ] {
        c.txns[i].ddl = Some(ddl.into());
        c.txns[i].event_count = 0;
        c.txns[i].tables = Vec::new();
    }
    let mut img = baseline(
        4,
        &[(TableRef::new("d", "k2"), 3), (TableRef::new("d", "n"), 0)],
    );
    img.origin = BaselineOrigin::TableImage;
    c.baselines.push(img.clone());
    let names =
        |p: &Plan| -> Vec<String> { p.tables.iter().map(|t| t.table.to_string()).collect() };
    let p = plan(&c, &nolog(), &at(commit(5)), &ctx()).expect("after the DDLs");
    assert_eq!(names(&p), ["d.k2", "d.n"]);
    assert!(
        p.tables
            .iter()
            .all(|t| t.image.as_ref().map(|i| &i.0) == Some(&img.id))
    );
    let p = plan(&c, &nolog(), &at(commit(2) + 600), &ctx()).expect("before them");
    assert_eq!(names(&p), ["d.k"]);
    // Dropped before the target: not restored; asked for by name: no usable image.
    c.txns[4].ddl = Some("USE `d`; DROP TABLE `n` /* generated by server */".into());
    c.txns[4].tables = Vec::new();
    let p = plan(&c, &nolog(), &at(commit(5)), &ctx()).expect("after the drop");
    assert_eq!(names(&p), ["d.k2"]);
    let msg = refused(
        &c,
        &PitrRequest {
            tables: vec!["d.n".into()],
            ..at(commit(5))
        },
    );
    assert!(msg.starts_with("d.n has no usable image for "), "{msg}");
}

#[test]
fn ddl_touches_reads_understood_statements() {
    let a = TableRef::new("shop", "a");
    // A column named like the table, in another database's CREATE: not a DDL on it.
    assert!(!ddl_touches(
        "USE `other`; CREATE TABLE v (id INT PRIMARY KEY, a INT)",
        &a
    ));
    assert!(!ddl_touches("USE `shop`; CREATE VIEW w AS SELECT 1", &a));
    assert!(ddl_touches(
        "USE `shop`; ALTER TABLE a ADD COLUMN n INT",
        &a
    ));
    assert!(ddl_touches("USE `x`; RENAME TABLE shop.b TO shop.A", &a));
    assert!(ddl_touches("USE `x`; DROP DATABASE shop", &a));
    // Not fully understood (no default database): any mention of the name.
    assert!(ddl_touches("ALTER TABLE a ADD COLUMN n INT", &a));
}
