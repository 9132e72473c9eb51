//! The writer's atomicity and visibility rules, and golden encodings of every record.
use dbtrail_core::value::{Date, DateTime};
use dbtrail_core::{
    ColumnDef, ColumnType, Gtid, GtidSet, Position, RowChange, TableRef, TableSchema, Value, codec,
};
use dbtrail_storage::{Checkpoint, Log, StoredEvent, TxnRecord, Writer};

fn pos(pos: u64) -> Position {
    Position {
        gtid_set: GtidSet::empty_mysql(),
        file: "binlog.000001".into(),
        pos,
        server_uuid: "3e11fa47-71ca-11e1-9e33-c80aa9429562".into(),
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

fn count(log: &Log) -> usize {
    let mut n = 0;
    log.scan_table(0, i64::MIN, i64::MAX, |_, _, _| {
        n += 1;
        true
    })
    .expect("scan");
    n
}

#[test]
fn uncommitted_transactions_never_become_visible() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let log = Log::open(dir.path()).expect("open");
        let mut w = Writer::open(&log, pos(4)).expect("writer");
        let (id, v) = w.ensure_schema(schema()).expect("schema");
        w.begin(None, 1_000);
        w.add(id, v, insert(1, 10)).expect("add");
        w.commit(pos(100), None, None).expect("commit");
        w.flush().expect("flush");
        // One committed but not flushed, one still open: both lost at a crash.
        w.begin(None, 2_000);
        w.add(id, v, insert(2, 10)).expect("add");
        w.commit(pos(200), None, None).expect("commit");
        w.begin(None, 3_000);
        w.add(id, v, insert(3, 10)).expect("add");
    }
    let log = Log::open(dir.path()).expect("reopen");
    assert_eq!(count(&log), 1);
    let ck = log.checkpoint().expect("ck").expect("some");
    assert_eq!(ck.position.pos, 100, "resume after the last durable commit");
    assert_eq!(ck.next_event_id, 1);
}

#[test]
fn a_spilled_transaction_is_invisible_until_commit_and_removed_after_a_crash() {
    let dir = tempfile::tempdir().expect("tmp");
    let big = 1 << 20; // 1 MiB rows: 40 of them exceed the 32 MiB buffer
    {
        let log = Log::open(dir.path()).expect("open");
        let mut w = Writer::open(&log, pos(4)).expect("writer");
        let (id, v) = w.ensure_schema(schema()).expect("schema");
        w.begin(None, 1_000);
        for i in 0..40 {
            w.add(id, v, insert(i, big)).expect("add");
        }
        assert_eq!(count(&log), 0, "pieces on disk stay invisible");
    }
    let log = Log::open(dir.path()).expect("reopen");
    let mut w = Writer::open(&log, pos(4)).expect("writer cleans up");
    let (id, v) = w.ensure_schema(schema()).expect("schema");
    w.begin(None, 5_000);
    for i in 0..40 {
        w.add(id, v, insert(100 + i, big)).expect("add");
    }
    w.commit(pos(900), None, None).expect("commit");
    w.flush().expect("flush");
    let mut ids = Vec::new();
    log.scan_table(id, i64::MIN, i64::MAX, |_, _, e| {
        if let RowChange::Insert { after } = e.change {
            ids.push(after[0].clone());
        }
        true
    })
    .expect("scan");
    assert_eq!(
        ids,
        (100..140).map(Value::Int).collect::<Vec<_>>(),
        "no orphan of the crashed transaction"
    );
}

#[test]
fn commit_time_never_goes_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = Log::open(dir.path()).expect("open");
    let mut w = Writer::open(&log, pos(4)).expect("writer");
    let (id, v) = w.ensure_schema(schema()).expect("schema");
    for (i, t) in [5_000i64, 3_000, 7_000, 6_999].iter().enumerate() {
        w.begin(None, *t);
        w.add(id, v, insert(i as i64, 1)).expect("add");
        w.commit(pos(10 + i as u64), None, None).expect("commit");
    }
    w.flush().expect("flush");
    let mut times = Vec::new();
    log.scan_table(id, i64::MIN, i64::MAX, |c, _, _| {
        times.push(c);
        true
    })
    .expect("scan");
    assert_eq!(times, [5_000, 5_000, 7_000, 7_000]);
}

#[test]
fn schema_versions_change_only_with_the_schema() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = Log::open(dir.path()).expect("open");
    let mut w = Writer::open(&log, pos(4)).expect("writer");
    assert_eq!(w.ensure_schema(schema()).expect("v1"), (0, 1));
    assert_eq!(w.ensure_schema(schema()).expect("same"), (0, 1));
    let mut s2 = schema();
    s2.columns.push(ColumnDef::new("w", ColumnType::Int));
    assert_eq!(w.ensure_schema(s2).expect("v2"), (0, 2));
    w.flush().expect("flush");
    assert_eq!(log.schemas(0).expect("schemas").len(), 2);
}

/// Golden bytes: a change here breaks every existing log; add a new version instead.
#[test]
fn golden_encodings_still_decode() {
    let ev = StoredEvent {
        schema_version: 3,
        gtid: Some(
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:23"
                .parse::<Gtid>()
                .expect("gtid"),
        ),
        change: RowChange::Update {
            before: vec![
                Value::UInt(u64::MAX),
                Value::Null,
                Value::Decimal("-1.50".into()),
            ],
            after: vec![
                Value::Timestamp(1),
                Value::DateTime(DateTime {
                    date: Date {
                        year: 0,
                        month: 0,
                        day: 0,
                    },
                    hour: 1,
                    minute: 2,
                    second: 3,
                    micros: 4,
                }),
                Value::Time(-1),
            ],
        },
    };
    let ck = Checkpoint {
        position: pos(120),
        next_event_id: 7,
        next_txn_seq: 3,
        last_commit_us: 1_700_000_000_000_000,
        txns_total: 3,
    };
    let txn = TxnRecord {
        gtid: None,
        commit_us: 5,
        first_event_id: 1,
        event_count: 2,
        tables: vec![0, 9],
        end_file: "b.1".into(),
        end_pos: 77,
        ddl: Some("DROP TABLE t".into()),
    };
    if std::env::var("PRINT_GOLDEN").is_ok() {
        println!("EVENT {}", hex::encode(codec::encode(&ev)));
        println!("CKPT {}", hex::encode(codec::encode(&ck)));
        println!("TXN {}", hex::encode(codec::encode(&txn)));
    }
    let back: StoredEvent =
        codec::decode("event", &hex::decode(GOLDEN_EVENT).expect("hex")).expect("decode");
    assert_eq!(back, ev);
    let back: Checkpoint =
        codec::decode("checkpoint", &hex::decode(GOLDEN_CHECKPOINT).expect("hex")).expect("decode");
    assert_eq!(back, ck);
    let back: TxnRecord =
        codec::decode("txn", &hex::decode(GOLDEN_TXN).expect("hex")).expect("decode");
    assert_eq!(back, txn);
    assert_eq!(hex::encode(codec::encode(&ev)), GOLDEN_EVENT);
    let err = codec::decode::<StoredEvent>("event", &[2, 0]).expect_err("unknown version");
    assert!(err.to_string().contains("upgrade dbtrail"), "{err}");
}

const GOLDEN_EVENT: &str = "0103012733653131666134372d373163612d313165312d396533332d6338306161393432393536323a3233010302ffffffffffffffffff010005052d312e3530030c020b000000010203040d01";
const GOLDEN_CHECKPOINT: &str = "01000d62696e6c6f672e303030303031782433653131666134372d373163612d313165312d396533332d63383061613934323935363207038080f2818389850603";
const GOLDEN_TXN: &str = "01000a010202000903622e314d010c44524f50205441424c452074";
