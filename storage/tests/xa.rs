//! XA transactions in the log (docs/correctness.md, C13; writer invariant 4): prepared rows
//! stay invisible, count at XA COMMIT with the commit's GTID, time and new event ids, and
//! leave no trace after XA ROLLBACK; a crash between prepare and commit loses nothing.
use dbtrail_core::{
    ColumnDef, ColumnType, Gtid, GtidSet, Position, RowChange, TableRef, TableSchema, Value, Xid,
    codec,
};
use dbtrail_storage::{Log, Writer, XaOutcome, XaRecord};

const UUID: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

fn pos(pos: u64) -> Position {
    Position {
        gtid_set: GtidSet::empty_mysql(),
        file: "binlog.000001".into(),
        pos,
        server_uuid: UUID.into(),
    }
}

fn gtid(n: u64) -> Option<Gtid> {
    Some(format!("{UUID}:{n}").parse().expect("gtid"))
}

fn xid(name: &str) -> Xid {
    Xid {
        format_id: 1,
        gtrid: name.as_bytes().to_vec(),
        bqual: Vec::new(),
    }
}

fn schema() -> TableSchema {
    TableSchema {
        table: TableRef::new("db", "t"),
        version: 0,
        columns: vec![
            ColumnDef::new("id", ColumnType::BigInt),
            ColumnDef::new("v", ColumnType::VarChar),
        ],
        primary_key: vec![0],
        foreign_keys: Vec::new(),
    }
}

fn insert(id: i64, bytes: usize) -> RowChange {
    RowChange::Insert {
        after: vec![Value::Int(id), Value::Str(vec![b'x'; bytes])],
    }
}

/// (commit_us, event_id, gtid, id) of every visible event of table 0.
fn events(log: &Log) -> Vec<(i64, u64, Option<Gtid>, Value)> {
    let mut out = Vec::new();
    log.scan_table(0, i64::MIN, i64::MAX, |c, e, ev| {
        if let RowChange::Insert { after } = ev.change {
            out.push((c, e, ev.gtid, after[0].clone()));
        }
        true
    })
    .expect("scan");
    out
}

fn ids(log: &Log) -> Vec<Value> {
    events(log).into_iter().map(|e| e.3).collect()
}

fn txns(log: &Log) -> Vec<dbtrail_storage::TxnRecord> {
    let mut out = Vec::new();
    log.scan_txns(0, |_, t| {
        out.push(t);
        true
    })
    .expect("txns");
    out
}

#[test]
fn prepared_rows_count_at_commit() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = Log::open(dir.path()).expect("open");
    let mut w = Writer::open(&log, pos(4)).expect("writer");
    let (t, v) = w.ensure_schema(schema()).expect("schema");
    // XA transaction prepared at 1000 (GTID 1), with two rows.
    w.begin(gtid(1), 1_000);
    w.add(t, v, insert(1, 10)).expect("add");
    w.add(t, v, insert(2, 10)).expect("add");
    w.xa_prepare(xid("a"), pos(100), None).expect("prepare");
    // An ordinary transaction commits in between (GTID 2).
    w.begin(gtid(2), 2_000);
    w.add(t, v, insert(3, 10)).expect("add");
    w.commit(pos(200), None, None).expect("commit");
    w.flush().expect("flush");
    assert_eq!(ids(&log), [Value::Int(3)], "prepared rows are invisible");
    let prepared = log.xa_prepared().expect("xa");
    assert_eq!(prepared.len(), 1);
    assert_eq!(prepared[0].xid, xid("a"));
    assert_eq!(prepared[0].gtid, gtid(1));
    assert_eq!(prepared[0].rows, 2);
    assert_eq!(prepared[0].prepared_us, 1_000);
    // The prepare is a logged transaction without rows.
    let p = log
        .txn_by_gtid(&gtid(1).expect("g"))
        .expect("read")
        .expect("logged");
    assert_eq!((p.event_count, p.end_pos, p.tables.len()), (0, 100, 0));
    // XA COMMIT from another session at 3000 (GTID 3).
    w.begin(gtid(3), 3_000);
    assert_eq!(
        w.xa_resolve(&xid("a"), true, pos(300), None)
            .expect("commit"),
        XaOutcome::Committed(2)
    );
    w.flush().expect("flush");
    assert_eq!(
        events(&log),
        [
            (2_000, 0, gtid(2), Value::Int(3)),
            (3_000, 1, gtid(3), Value::Int(1)),
            (3_000, 2, gtid(3), Value::Int(2)),
        ],
        "at the commit's time and GTID, with new event ids, in prepare order"
    );
    let c = log
        .txn_by_gtid(&gtid(3).expect("g"))
        .expect("read")
        .expect("logged");
    assert_eq!((c.first_event_id, c.event_count, c.end_pos), (1, 2, 300));
    assert!(log.xa_prepared().expect("xa").is_empty());
    assert_eq!(w.xa_prepared().count(), 0);
    assert!(log.taints().expect("taints").is_empty());
    let ck = log.checkpoint().expect("ck").expect("some");
    assert_eq!(
        (ck.next_event_id, ck.txns_total, ck.position.pos),
        (3, 3, 300)
    );
}

#[test]
fn rollback_leaves_no_trace_and_commit_in_the_same_batch_works() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = Log::open(dir.path()).expect("open");
    let mut w = Writer::open(&log, pos(4)).expect("writer");
    let (t, v) = w.ensure_schema(schema()).expect("schema");
    w.begin(gtid(1), 1_000);
    w.add(t, v, insert(1, 10)).expect("add");
    w.xa_prepare(xid("r"), pos(100), None).expect("prepare");
    w.begin(gtid(2), 1_500);
    w.add(t, v, insert(2, 10)).expect("add");
    w.xa_prepare(xid("c"), pos(150), None).expect("prepare");
    // Neither prepare was flushed: resolving reads the rows back all the same.
    w.begin(gtid(3), 2_000);
    assert_eq!(
        w.xa_resolve(&xid("r"), false, pos(200), None)
            .expect("rollback"),
        XaOutcome::RolledBack
    );
    w.begin(gtid(4), 3_000);
    assert_eq!(
        w.xa_resolve(&xid("c"), true, pos(300), None)
            .expect("commit"),
        XaOutcome::Committed(1)
    );
    w.flush().expect("flush");
    assert_eq!(events(&log), [(3_000, 0, gtid(4), Value::Int(2))]);
    assert!(log.xa_prepared().expect("xa").is_empty());
    let all = txns(&log);
    assert_eq!(all.len(), 4, "prepares, rollback and commit are all logged");
    assert_eq!(
        all.iter().map(|t| t.event_count).collect::<Vec<_>>(),
        [0, 0, 0, 1]
    );
}

#[test]
fn a_crash_between_prepare_and_commit_loses_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let log = Log::open(dir.path()).expect("open");
        let mut w = Writer::open(&log, pos(4)).expect("writer");
        let (t, v) = w.ensure_schema(schema()).expect("schema");
        w.begin(gtid(1), 1_000);
        w.add(t, v, insert(1, 10)).expect("add");
        w.xa_prepare(xid("a"), pos(100), None).expect("prepare");
        w.flush().expect("flush");
        // The XA COMMIT is applied but its batch never lands (crash).
        w.begin(gtid(2), 2_000);
        w.xa_resolve(&xid("a"), true, pos(200), None)
            .expect("commit");
        // A second prepare whose batch never lands either.
        w.begin(gtid(3), 2_500);
        w.add(t, v, insert(9, 10)).expect("add");
        w.xa_prepare(xid("b"), pos(250), None).expect("prepare");
    }
    let log = Log::open(dir.path()).expect("reopen");
    assert!(ids(&log).is_empty(), "nothing visible");
    let ck = log.checkpoint().expect("ck").expect("some");
    assert_eq!(ck.position.pos, 100, "resume before the XA COMMIT");
    let prepared = log.xa_prepared().expect("xa");
    assert_eq!(prepared.len(), 1, "{prepared:?}");
    let mut w = Writer::open(&log, ck.position.clone()).expect("writer");
    assert_eq!(w.xa_prepared().count(), 1);
    // Capture redoes the XA COMMIT.
    w.begin(gtid(2), 2_000);
    assert_eq!(
        w.xa_resolve(&xid("a"), true, pos(200), None)
            .expect("commit"),
        XaOutcome::Committed(1)
    );
    w.flush().expect("flush");
    assert_eq!(events(&log), [(2_000, 0, gtid(2), Value::Int(1))]);
    assert!(log.xa_prepared().expect("xa").is_empty());
}

#[test]
fn commit_of_an_xid_never_prepared_taints_every_table() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = Log::open(dir.path()).expect("open");
    let mut w = Writer::open(&log, pos(4)).expect("writer");
    w.begin(gtid(1), 1_000);
    assert_eq!(
        w.xa_resolve(&xid("gone"), false, pos(50), None)
            .expect("rollback"),
        XaOutcome::UnknownRolledBack
    );
    w.begin(gtid(2), 2_000);
    assert_eq!(
        w.xa_resolve(&xid("old"), true, pos(100), None)
            .expect("commit"),
        XaOutcome::UnknownCommitted
    );
    w.flush().expect("flush");
    let taints = log.taints().expect("taints");
    assert_eq!(taints.len(), 1, "{taints:?}");
    assert_eq!(taints[0].table, TableRef::new("*", "*"));
    assert_eq!(taints[0].since_us, 2_000);
    assert!(
        taints[0].reason.contains("X'6f6c64',X'',1")
            && taints[0].reason.contains("prepared before capture began"),
        "{}",
        taints[0].reason
    );
    assert!(
        log.txn_by_gtid(&gtid(2).expect("g"))
            .expect("read")
            .is_some()
    );
}

#[test]
fn a_huge_xa_transaction_spills_and_commits_with_bounded_memory() {
    let dir = tempfile::tempdir().expect("tmp");
    let big = 1 << 20; // 40 rows of 1 MiB exceed the 32 MiB buffer, at prepare and at commit
    {
        let log = Log::open(dir.path()).expect("open");
        let mut w = Writer::open(&log, pos(4)).expect("writer");
        let (t, v) = w.ensure_schema(schema()).expect("schema");
        w.begin(gtid(1), 1_000);
        for i in 0..40 {
            w.add(t, v, insert(i, big)).expect("add");
        }
        w.xa_prepare(xid("big"), pos(100), None).expect("prepare");
        w.flush().expect("flush");
        assert!(ids(&log).is_empty(), "prepared pieces are invisible");
    }
    let log = Log::open(dir.path()).expect("reopen");
    let ck = log.checkpoint().expect("ck").expect("some");
    let mut w = Writer::open(&log, ck.position).expect("writer");
    let (t, v) = w.ensure_schema(schema()).expect("schema");
    w.begin(gtid(2), 2_000);
    w.add(t, v, insert(100, 10)).expect("add");
    w.commit(pos(200), None, None).expect("commit");
    w.begin(gtid(3), 3_000);
    assert_eq!(
        w.xa_resolve(&xid("big"), true, pos(300), None)
            .expect("commit"),
        XaOutcome::Committed(40)
    );
    w.flush().expect("flush");
    let got = events(&log);
    let want: Vec<Value> = std::iter::once(100).chain(0..40).map(Value::Int).collect();
    assert_eq!(got.iter().map(|e| e.3.clone()).collect::<Vec<_>>(), want);
    assert!(got[1..].iter().all(|e| e.0 == 3_000 && e.2 == gtid(3)));
    assert!(log.xa_prepared().expect("xa").is_empty());
}

#[test]
fn rows_moved_for_a_prepare_that_never_landed_are_removed() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let log = Log::open(dir.path()).expect("open");
        let mut w = Writer::open(&log, pos(4)).expect("writer");
        let (t, v) = w.ensure_schema(schema()).expect("schema");
        w.flush().expect("flush");
        w.begin(gtid(1), 1_000);
        for i in 0..34 {
            w.add(t, v, insert(i, 1 << 20)).expect("add");
        }
        // The spilled pieces are moved to `xa` ahead of the prepare's batch, which is lost.
        w.xa_prepare(xid("big"), pos(100), None).expect("prepare");
    }
    let log = Log::open(dir.path()).expect("reopen");
    let ck = log.checkpoint().expect("ck").expect("some");
    let mut w = Writer::open(&log, ck.position).expect("writer removes the orphans");
    assert!(log.xa_prepared().expect("xa").is_empty());
    let (t, v) = w.ensure_schema(schema()).expect("schema");
    // The same transaction again, this time small: only its own row comes back.
    w.begin(gtid(1), 1_000);
    w.add(t, v, insert(7, 10)).expect("add");
    w.xa_prepare(xid("big"), pos(100), None).expect("prepare");
    w.begin(gtid(2), 2_000);
    assert_eq!(
        w.xa_resolve(&xid("big"), true, pos(200), None)
            .expect("commit"),
        XaOutcome::Committed(1)
    );
    w.flush().expect("flush");
    assert_eq!(ids(&log), [Value::Int(7)]);
}

/// Golden bytes of the prepared-XA record: a change here breaks existing logs.
#[test]
fn golden_xa_record() {
    let rec = XaRecord {
        xid: Xid {
            format_id: 7,
            gtrid: b"ab".to_vec(),
            bqual: b"q".to_vec(),
        },
        seq: 5,
        gtid: None,
        prepared_us: 1_000,
        tables: vec![0, 3],
        rows: 2,
    };
    if std::env::var("PRINT_GOLDEN").is_ok() {
        println!("XA {}", hex::encode(codec::encode(&rec)));
    }
    assert_eq!(hex::encode(codec::encode(&rec)), GOLDEN_XA);
    let back: XaRecord =
        codec::decode("xa record", &hex::decode(GOLDEN_XA).expect("hex")).expect("decode");
    assert_eq!(back, rec);
}

const GOLDEN_XA: &str = "010702616201710500d00f02000302";
