//! Baselines from the log against the in-memory model: random histories, random anchor
//! baselines and table images (some after the point, and transactions logged after it, as
//! while capture keeps running), a baseline computed at a transaction boundary == the model
//! there, read back from its Parquet files; and a restore anchored on it to a later target ==
//! the model at that target.
use super::*;
use crate::plan::tests::MemCatalog;
use crate::restore::tests::{MemLog, Model, Quiet, create_table, op, schemas};
use dbtrail_core::baseline::{BaselineOrigin, baseline_id};
use dbtrail_core::history::LoggedChange;
use dbtrail_core::{GtidSet, Row};
use proptest::prelude::*;

const UUID: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

/// Commit time of transaction `n`: two transactions per "second", as MariaDB's binlog
/// timestamps truncate them.
fn commit(n: u64) -> i64 {
    crate::plan::tests::commit(n.div_ceil(2))
}

fn gtid(n: u64) -> Gtid {
    format!("{UUID}:{n}").parse().expect("gtid")
}

/// A snapshot holding transactions 1..=n (by GTID, or by file:pos only).
fn position(n: u64, gtids: bool) -> Position {
    Position {
        gtid_set: if n == 0 || !gtids {
            GtidSet::empty_mysql()
        } else {
            format!("{UUID}:1-{n}").parse().expect("set")
        },
        file: "b.000001".into(),
        pos: 100 * (n + 1),
        server_uuid: UUID.into(),
    }
}

fn manifest(
    n: u64,
    gtids: bool,
    origin: BaselineOrigin,
    snapshot_us: i64,
    tables: Vec<BaselineTable>,
) -> BaselineManifest {
    BaselineManifest {
        format_version: 1,
        id: baseline_id(snapshot_us),
        source: "src".into(),
        origin,
        position: position(n, gtids),
        snapshot_us,
        started_us: snapshot_us,
        finished_us: snapshot_us,
        lock_held_us: 0,
        lock_mode: "test".into(),
        method: Default::default(),
        upper: None,
        tables,
        skipped: Vec::new(),
        checksums: Default::default(),
    }
}

fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by_key(|r| format!("{r:?}"));
    rows
}

fn parquet_rows(path: &std::path::Path) -> Vec<Row> {
    let mut rows = Vec::new();
    crate::baseline::read(std::fs::File::open(path).expect("open"), |r| {
        rows.push(r);
        Ok(())
    })
    .expect("read");
    sorted(rows)
}

fn inputs(
    p: &Plan,
    schemas: &[TableSchema],
    file_of: impl Fn(&str, &str) -> PathBuf,
) -> Vec<TableInput> {
    p.tables
        .iter()
        .map(|t| {
            let (img, e) = t.image.as_ref().expect("an image");
            let s = schemas
                .iter()
                .find(|s| s.table == t.table)
                .expect("a known table");
            TableInput {
                table: t.table.clone(),
                window: t.window,
                backward: t.backward,
                rows: e.rows,
                create_table: create_table(s),
                table_id: t.table_id,
                files: vec![file_of(img, &e.file)],
                requested: true,
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, ..ProptestConfig::default() })]

    #[test]
    fn a_baseline_from_the_log_is_the_model_at_its_point(
        txns in prop::collection::vec(prop::collection::vec(op(), 0..4), 2..16),
        point in any::<prop::sample::Index>(),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 1..3),
        images in prop::collection::vec((any::<prop::sample::Index>(), 0usize..2), 0..4),
        target in any::<prop::sample::Index>(),
        gtids in any::<bool>(),
        keys_in_memory in 1u64..8,
    ) {
        let schemas = schemas();
        let refs: Vec<TableRef> = schemas.iter().map(|s| s.table.clone()).collect();
        let mut m = Model::default();
        let mut log = MemLog::new(schemas.clone());
        let mut cat = MemCatalog {
            origin: Some(position(0, gtids)),
            tables: refs.iter().cloned().enumerate().map(|(i, t)| (i as u32, t)).collect(),
            ..MemCatalog::default()
        };
        let mut states = vec![m.clone()];
        // next_ids[n]: the first event id after transaction n.
        let mut next_ids = vec![0u64];
        let mut id = 0u64;
        for (i, ops) in txns.iter().enumerate() {
            let n = i as u64 + 1;
            let first = id;
            let mut tables = Vec::new();
            for o in ops {
                if let Some((t, change)) = m.apply(o) {
                    log.changes.push((t, LoggedChange {
                        commit_us: commit(n),
                        event_id: id,
                        schema_version: 1,
                        gtid: gtids.then(|| gtid(n)),
                        change,
                    }));
                    id += 1;
                    if !tables.contains(&t) {
                        tables.push(t);
                    }
                }
            }
            cat.txns.push(TxnInfo {
                gtid: gtids.then(|| gtid(n)),
                commit_us: commit(n),
                first_event_id: first,
                event_count: id - first,
                tables,
                end_file: "b.000001".into(),
                end_pos: 100 * (n + 1),
                ddl: None,
            });
            states.push(m.clone());
            next_ids.push(id);
        }
        let count = txns.len();
        // The point: transactions 1..=p are durable; the ones after it are logged meanwhile.
        let p = 1 + point.index(count) as u64;
        let dir = tempfile::tempdir().expect("tmp");
        let write = |file: &str, t: usize, n: u64| {
            let f = std::fs::File::create(dir.path().join(file)).expect("create");
            let mut w = BaselineWriter::new(f, &schemas[t], Vec::new(), 7).expect("writer");
            for r in &states[n as usize].rows(t as u32) {
                w.push(r).expect("push");
            }
            w.finish().expect("finish");
        };
        let entry = |t: usize, n: u64, file: String| BaselineTable {
            table: refs[t].clone(),
            file,
            rows: states[n as usize].rows(t as u32).len() as u64,
            bytes: 0,
            create_table: create_table(&schemas[t]),
            parts: Vec::new(),
        };
        // Full baselines strictly before the point.
        let mut held: Vec<u64> = picks.iter().map(|x| x.index(p as usize) as u64).collect();
        held.sort_unstable();
        held.dedup();
        for &n in &held {
            let tables: Vec<BaselineTable> = (0..schemas.len())
                .map(|t| entry(t, n, format!("{n}-{t}.parquet")))
                .collect();
            for (t, e) in tables.iter().enumerate() {
                write(&e.file, t, n);
            }
            cat.baselines.push(manifest(n, gtids, BaselineOrigin::Snapshot, commit(n) + 500, tables));
        }
        // Table images anywhere, after the point too.
        for (k, (at_n, t)) in images.iter().enumerate() {
            let n = at_n.index(count + 1) as u64;
            let file = format!("img{k}.parquet");
            write(&file, *t, n);
            let b = manifest(n, gtids, BaselineOrigin::TableImage, commit(n) + 600 + k as i64, vec![entry(*t, n, file)]);
            cat.baselines.push(b);
        }
        cat.baselines.sort_by(|a, b| a.id.cmp(&b.id));
        let at = LogPoint {
            position: position(p, gtids),
            last_commit_us: commit(p),
            next_event_id: next_ids[p as usize],
        };
        let ctx = FromLogContext { source_name: "src".into(), keys_in_memory, databases: None };
        let fl = plan(&cat, &log, &at, &ctx).map_err(|r| TestCaseError::fail(r.0))?;
        prop_assert!(fl.snapshot_us >= commit(p));
        let settings = Settings { keys_in_memory, chunk_bytes: 300, statement_bytes: 120, threads: 2 };
        let out_dir = dir.path().join("fl");
        let out = ParquetOutput::new(|f: &str| out_dir.join(f), file_metadata(&at.position, fl.snapshot_us, &fl.plan.baseline.id), 5);
        let ins = inputs(&fl.plan, &schemas, |_, f| dir.path().join(f));
        let tables = compute(&log, ins, out, &settings, &Quiet).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(tables.len(), schemas.len());
        for e in &tables {
            let t = refs.iter().position(|r| r == &e.table).expect("known");
            let got = parquet_rows(&out_dir.join(&e.file));
            prop_assert_eq!(e.rows, got.len() as u64);
            prop_assert_eq!(got, states[p as usize].rows(t as u32), "table {} from {:?}", e.table, fl.plan.view.images);
        }
        // Catalogued, it anchors a restore to a later target.
        let fl_id = baseline_id(fl.snapshot_us + 200);
        let mut m2 = manifest(p, gtids, BaselineOrigin::FromLog, fl.snapshot_us, tables);
        m2.id = fl_id.clone();
        cat.baselines.push(m2);
        cat.baselines.sort_by(|a, b| a.id.cmp(&b.id));
        let to = p + target.index(count - p as usize + 1) as u64;
        let target_us = commit(to).max(fl.snapshot_us);
        let to = (1..=count as u64).filter(|&n| commit(n) <= target_us).max().unwrap_or(0);
        let req = PitrRequest {
            target_time: Some(rfc3339_micros(target_us)),
            image: Some("baseline".into()),
            ..PitrRequest::default()
        };
        let pctx = PlanContext {
            now_us: i64::MAX,
            covered_until_us: Some(i64::MAX),
            keys_in_memory,
            source_name: "src".into(),
            live: Err("none".into()),
            databases: None,
            live_image: None,
            exclude_image: None,
        };
        let r = crate::plan::plan(&cat, &log, &req, &pctx).map_err(|r| TestCaseError::fail(r.0))?;
        prop_assert_eq!(&r.baseline.id, &fl_id);
        let ins = inputs(&r, &schemas, |img, f| {
            if img == fl_id { out_dir.join(f) } else { dir.path().join(f) }
        });
        let restored = dir.path().join("restored");
        std::fs::create_dir(&restored).expect("out");
        crate::restore::rebuild(&log, ins, &restored, &settings, &Quiet).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (t, s) in schemas.iter().enumerate() {
            prop_assert_eq!(crate::restore::tests::dumped_rows(&restored, s), states[to as usize].rows(t as u32));
        }
    }
}

#[test]
fn nothing_to_compute_and_refusals_name_the_table() {
    let schemas = schemas();
    let log = MemLog::new(schemas.clone());
    let k = schemas[0].table.clone();
    let table = BaselineTable {
        table: k.clone(),
        file: "x.parquet".into(),
        rows: 0,
        bytes: 0,
        create_table: String::new(),
        parts: Vec::new(),
    };
    let txn = |n: u64, ddl: Option<&str>| TxnInfo {
        gtid: Some(gtid(n)),
        commit_us: commit(n),
        first_event_id: n,
        event_count: 0,
        tables: vec![],
        end_file: "b.000001".into(),
        end_pos: 100 * (n + 1),
        ddl: ddl.map(str::to_string),
    };
    let mut cat = MemCatalog {
        origin: Some(position(0, true)),
        baselines: vec![manifest(
            1,
            true,
            BaselineOrigin::Snapshot,
            commit(1) + 500,
            vec![table],
        )],
        txns: vec![txn(1, None)],
        tables: vec![(0, k)],
        ..MemCatalog::default()
    };
    let ctx = FromLogContext {
        source_name: "src".into(),
        keys_in_memory: 10,
        databases: None,
    };
    let at = |n: u64| LogPoint {
        position: position(n, true),
        last_commit_us: commit(n),
        next_event_id: n + 1,
    };
    let e = plan(&cat, &log, &at(1), &ctx).expect_err("nothing new").0;
    assert!(
        e.contains("already holds every transaction in the log"),
        "{e}"
    );
    cat.txns
        .push(txn(2, Some("ALTER TABLE `d`.`k` ADD COLUMN z INT")));
    let e = plan(&cat, &log, &at(2), &ctx).expect_err("ddl").0;
    assert!(
        e.starts_with("a baseline cannot be computed from the log: d.k has no usable image"),
        "{e}"
    );
    assert!(
        e.ends_with("take a snapshot of the source with `dbtrailctl backup`"),
        "{e}"
    );
}
