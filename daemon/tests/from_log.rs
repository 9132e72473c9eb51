//! Baselines from the log against the real servers: three writers commit concurrently to a
//! keyed table, a key-less one and a child with a cascading foreign key while a snapshot
//! baseline is taken; once they stop and capture caught up, a baseline from the log
//! (`--from-log`, nothing read from the source) equals a source snapshot taken right after,
//! at the same position, table for table and row for row, and equals the source itself (its
//! own SQL). Then writers run again, a second baseline from the log is computed from that
//! snapshot, more writes follow, and a restore anchored on the second one, imported with
//! myloader, equals the source (hex of every column, the server's own SQL).
mod common;

use common::{Daemon, hex_rows, myloader, next_second, restore, server_now_us, utc_second};
use dbtrail_core::api::{BackupRequest, PitrRequest};
use dbtrail_core::baseline::{BaselineManifest, BaselineOrigin};
use dbtrail_core::{Row, TableRef, codec};
use dbtrail_testkit::{Server, TestDb};
use mysql_async::prelude::Queryable;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const TABLES: [&str; 3] = ["k", "bag", "child"];

async fn setup(db: &TestDb) {
    for sql in [
        "CREATE TABLE k (id INT PRIMARY KEY, v BIGINT, s VARCHAR(40)) ENGINE=InnoDB",
        "CREATE TABLE bag (x INT, y VARCHAR(20)) ENGINE=InnoDB",
        "CREATE TABLE child (id INT AUTO_INCREMENT PRIMARY KEY, k_id INT, n INT, \
         FOREIGN KEY (k_id) REFERENCES k (id) ON DELETE CASCADE) ENGINE=InnoDB",
        "INSERT INTO k VALUES (1, 1, 'a'), (2, 2, 'b'), (3, 3, 'c')",
        "INSERT INTO bag VALUES (1, 'dup'), (1, 'dup'), (2, NULL)",
        "INSERT INTO child (k_id, n) VALUES (1, 1), (2, 2)",
    ] {
        db.exec(sql).await;
    }
}

/// One writer: random small transactions over the three tables until `stop`.
async fn spawn_writer(
    db: &TestDb,
    seed: u64,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    let mut conn = db.conn().await;
    tokio::spawn(async move {
        let mut next = common::xorshift(seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
        while !stop.load(Ordering::Relaxed) {
            let i = count.fetch_add(1, Ordering::Relaxed);
            let stmts = [
                format!(
                    "INSERT INTO k VALUES ({}, {i}, 'w{seed}') ON DUPLICATE KEY UPDATE v = v + 1",
                    next(60)
                ),
                format!("UPDATE k SET s = 'u{i}' WHERE id = {}", next(60)),
                format!("DELETE FROM k WHERE id = {}", next(60)),
                // A primary-key change.
                format!(
                    "UPDATE IGNORE k SET id = id + 60 WHERE id = {} AND id < 200",
                    next(60)
                ),
                format!("INSERT INTO bag VALUES ({}, 'dup')", next(3)),
                format!("DELETE FROM bag WHERE x = {} LIMIT 1", next(3)),
                format!("UPDATE bag SET y = 'v{i}' WHERE x = {} LIMIT 1", next(3)),
                format!(
                    "INSERT INTO child (k_id, n) SELECT id, {i} FROM k WHERE id = {}",
                    next(60)
                ),
                format!("UPDATE child SET n = n + 1 WHERE k_id = {}", next(60)),
            ];
            let mut ok = conn.query_drop("BEGIN").await.is_ok();
            for s in &stmts[..(1 + next(stmts.len() as u64) as usize)] {
                if ok {
                    // Deadlocks and lock waits between the writers roll back; that is fine.
                    ok = conn.query_drop(s).await.is_ok();
                }
            }
            let end = if ok { "COMMIT" } else { "ROLLBACK" };
            let _ = conn.query_drop(end).await;
        }
    })
}

/// Runs three writers until at least `n` transactions were tried (at least 1 s).
async fn write_for(db: &TestDb, n: u64, during: impl AsyncFnOnce()) {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for seed in 0..3 {
        writers.push(spawn_writer(db, seed, stop.clone(), count.clone()).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    during().await;
    let t0 = std::time::Instant::now();
    while count.load(Ordering::Relaxed) < n || t0.elapsed() < Duration::from_secs(1) {
        assert!(
            writers.iter().all(|w| !w.is_finished()),
            "a writer stopped early"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
}

async fn from_log(daemon: &Daemon) -> BaselineManifest {
    let started = daemon
        .client()
        .start_backup_with(&daemon.source, &BackupRequest { from_log: true })
        .await
        .expect("start");
    let m = daemon
        .wait_job(&started.backup_id)
        .await
        .unwrap_or_else(|e| panic!("baseline from the log failed: {e}\n{}", daemon.log()));
    assert_eq!(m.origin, BaselineOrigin::FromLog);
    assert_eq!((m.lock_held_us, m.skipped.len()), (0, 0));
    assert!(m.lock_mode.starts_with("none (computed from baseline "));
    m
}

/// A table's rows in a baseline (local store), sorted, with the file's key-value metadata.
fn parquet_rows(
    root: &Path,
    m: &BaselineManifest,
    t: &TableRef,
) -> (Vec<Row>, Vec<(String, String)>) {
    let e = m
        .table(t)
        .unwrap_or_else(|| panic!("{t} missing from baseline {}", m.id));
    let path = root.join(&m.source).join(&m.id).join(&e.file);
    let mut rows = Vec::new();
    let (_, kv) = dbtrail_replay::baseline::read(std::fs::File::open(&path).expect("open"), |r| {
        rows.push(r);
        Ok(())
    })
    .expect("read");
    assert_eq!(rows.len() as u64, e.rows, "{t}: row count in the manifest");
    rows.sort_by_cached_key(codec::encode);
    (rows, kv)
}

fn without_auto_increment(create: &str) -> String {
    create
        .split(' ')
        .filter(|w| !w.starts_with("AUTO_INCREMENT="))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn contents(db: &TestDb, db_name: &str) -> Vec<Vec<String>> {
    let mut conn = db.conn().await;
    let mut out = Vec::new();
    for t in TABLES {
        out.push(hex_rows(&mut conn, db_name, t).await);
    }
    out
}

async fn equals_a_snapshot(server: Server) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    setup(&db).await;
    let extra = format!(
        "backup_databases = [\"{}\"]\nrestore_keys_in_memory = 7\n",
        db.db_name()
    );
    let mut daemon = Daemon::start(server, &extra);
    let root = daemon.dir.join("data/baselines");
    daemon.wait_streaming().await;
    // A snapshot while the writers commit.
    let mut first = None;
    write_for(&db, 300, async || first = Some(daemon.backup().await)).await;
    let first = first.expect("first baseline");
    daemon.wait_caught_up(&db).await;
    let before = db.binlog_position().await;
    let f = from_log(&daemon).await;
    assert!(f.lock_mode.contains(&first.id), "{}", f.lock_mode);
    let s = daemon.backup().await;
    let after = db.binlog_position().await;
    assert_eq!(s.origin, BaselineOrigin::Snapshot);
    if before == after {
        // Nothing was written to the server in between (other tests share it).
        assert_eq!(f.position, s.position, "positions of the two baselines");
    } else {
        assert!(dbtrail_replay::fromlog::covers(&s.position, &f.position));
    }
    assert!(f.snapshot_us <= s.snapshot_us && f.snapshot_us >= first.snapshot_us);
    assert_eq!(
        f.tables.iter().map(|t| &t.table).collect::<Vec<_>>(),
        s.tables.iter().map(|t| &t.table).collect::<Vec<_>>()
    );
    for e in &s.tables {
        let t = &e.table;
        let (want, _) = parquet_rows(&root, &s, t);
        let (got, kv) = parquet_rows(&root, &f, t);
        assert!(
            got == want,
            "{t}: the baseline from the log differs from the snapshot"
        );
        assert_eq!(
            got,
            common::table_rows(&db, t).await,
            "{t}: differs from the source"
        );
        let fe = f.table(t).expect("entry");
        assert_eq!(
            without_auto_increment(&fe.create_table),
            without_auto_increment(&e.create_table)
        );
        let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(
            get("dbtrail.gtid_set"),
            Some(f.position.gtid_set.to_compact_string())
        );
        assert_eq!(get("dbtrail.binlog_file"), Some(f.position.file.clone()));
        assert_eq!(get("dbtrail.binlog_pos"), Some(f.position.pos.to_string()));
        assert_eq!(get("dbtrail.create_table"), Some(fe.create_table.clone()));
    }
    let list = daemon.client().backups(&daemon.source).await.expect("list");
    assert!(
        list.baselines
            .iter()
            .any(|b| b.id == f.id && b.origin == BaselineOrigin::FromLog)
    );
    // A second one from that snapshot and the log, then a restore anchored on it.
    write_for(&db, 200, async || {}).await;
    daemon.wait_caught_up(&db).await;
    let f2 = from_log(&daemon).await;
    assert!(f2.lock_mode.contains(&s.id), "{}", f2.lock_mode);
    for e in &f2.tables {
        let (got, _) = parquet_rows(&root, &f2, &e.table);
        assert_eq!(
            got,
            common::table_rows(&db, &e.table).await,
            "{}: second",
            e.table
        );
    }
    write_for(&db, 200, async || {}).await;
    daemon.wait_caught_up(&db).await;
    let want = contents(&db, db.db_name()).await;
    let mut conn = db.conn().await;
    let end = server_now_us(&mut conn).await;
    next_second(&mut conn, end).await;
    daemon.wait_caught_up(&db).await;
    let out = tempfile::tempdir().expect("tmp");
    let dir = out.path().join("r");
    let req = PitrRequest {
        target_time: Some(utc_second(end)),
        ..PitrRequest::default()
    };
    let plan = dry_run_when_covered(&daemon, &req).await;
    assert_eq!(
        plan.plan.baseline_id, f2.id,
        "the restore is anchored on the baseline from the log"
    );
    restore(&daemon, req, &dir)
        .await
        .unwrap_or_else(|e| panic!("restore failed: {e}\n{}", daemon.log()));
    let into = format!("{}_fl", db.db_name());
    tokio::task::block_in_place(|| myloader(&db, &dir, &into));
    let got = contents(&db, &into).await;
    for (i, t) in TABLES.iter().enumerate() {
        assert_eq!(
            got[i].len(),
            want[i].len(),
            "{t}: row count after the restore"
        );
        assert!(got[i] == want[i], "{t}: rows differ after the restore");
    }
    conn.query_drop(format!("DROP DATABASE `{into}`"))
        .await
        .expect("drop");
    assert_eq!(daemon.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn from_log_equals_a_snapshot_mysql_gtid() {
    equals_a_snapshot(Server::MysqlGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn from_log_equals_a_snapshot_mysql_nogtid() {
    equals_a_snapshot(Server::MysqlNoGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn from_log_equals_a_snapshot_mariadb() {
    equals_a_snapshot(Server::MariaDb).await;
}

/// `backup_from_log_interval`: once there is a baseline and something was logged after it,
/// one is computed on schedule.
#[tokio::test(flavor = "multi_thread")]
async fn from_log_on_a_schedule() {
    let server = Server::MysqlNoGtid;
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    setup(&db).await;
    let extra = format!(
        "backup_databases = [\"{}\"]\nbackup_from_log_interval = \"1s\"\n",
        db.db_name()
    );
    let daemon = Daemon::start(server, &extra);
    daemon.wait_streaming().await;
    let s = daemon.backup().await;
    db.exec("INSERT INTO k VALUES (100, 100, 'scheduled')")
        .await;
    daemon.wait_caught_up(&db).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let f = loop {
        let list = daemon.client().backups(&daemon.source).await.expect("list");
        if let Some(b) = list
            .baselines
            .iter()
            .find(|b| b.origin == BaselineOrigin::FromLog && b.snapshot_us >= s.snapshot_us)
        {
            break b.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scheduled baseline from the log\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let t = TableRef::new(db.db_name(), "k");
    let (rows, _) = parquet_rows(&daemon.dir.join("data/baselines"), &f, &t);
    assert!(
        rows.iter()
            .any(|r| r.first() == Some(&dbtrail_core::Value::Int(100)))
    );
}

/// With an S3 store: the images are downloaded, the tables rebuilt locally and uploaded; a
/// restore anchored on the result equals the source.
#[tokio::test(flavor = "multi_thread")]
async fn from_log_with_an_s3_store() {
    let server = Server::MariaDb;
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    let Some(s3) = dbtrail_testkit::s3() else {
        return;
    };
    setup(&db).await;
    let tmp = tempfile::tempdir().expect("tmp");
    // Short: s3s-fs names a multipart upload's temp file after the whole key.
    let prefix = format!("fl{}", std::process::id());
    let extra = format!(
        "backup_databases = [\"{}\"]\n{}",
        db.db_name(),
        common::s3_store_config(&s3, tmp.path(), &format!("{prefix}/b"), &s3.secret_key)
    );
    let mut daemon = Daemon::start(server, &extra);
    daemon.wait_streaming().await;
    daemon.backup().await;
    write_for(&db, 100, async || {}).await;
    daemon.wait_caught_up(&db).await;
    let f = from_log(&daemon).await;
    assert_eq!(f.tables.len(), TABLES.len());
    let want = contents(&db, db.db_name()).await;
    let mut conn = db.conn().await;
    let end = server_now_us(&mut conn).await;
    next_second(&mut conn, end).await;
    daemon.wait_caught_up(&db).await;
    let req = PitrRequest {
        target_time: Some(utc_second(end)),
        ..PitrRequest::default()
    };
    let plan = dry_run_when_covered(&daemon, &req).await;
    assert_eq!(plan.plan.baseline_id, f.id);
    let dir = tmp.path().join("r");
    restore(&daemon, req, &dir)
        .await
        .unwrap_or_else(|e| panic!("restore failed: {e}\n{}", daemon.log()));
    let into = format!("{}_fls3", db.db_name());
    tokio::task::block_in_place(|| myloader(&db, &dir, &into));
    assert!(
        contents(&db, &into).await == want,
        "rows differ after the restore"
    );
    conn.query_drop(format!("DROP DATABASE `{into}`"))
        .await
        .expect("drop");
    assert_eq!(daemon.stop(), Some(0));
}

/// The dry run of `req`, retried for up to 30 s while capture does not yet know the whole
/// target second is covered (heartbeats).
async fn dry_run_when_covered(
    daemon: &Daemon,
    req: &PitrRequest,
) -> dbtrail_core::api::PitrStarted {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let dry = PitrRequest {
            dry_run: true,
            ..req.clone()
        };
        match daemon.client().pitr(&daemon.source, &dry).await {
            Ok(p) => return p,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("dry run: {e:#}"),
        }
    }
}
