//! Baselines against the real servers: consistency under a concurrent writer (MySQL with and
//! without GTIDs, MariaDB, and an S3 store on a real S3-compatible server), a backup killed
//! midway, scheduled backups with retention.
//!
//! "Consistent" is checked the way a restore will use a baseline: the baseline's rows plus the
//! logged changes it does not hold (by GTID, or by binlog position) must equal the source's
//! tables after the writer stops, row for row.
mod common;

use common::Daemon;
use dbtrail_core::api::JobStatus;
use dbtrail_core::baseline::BaselineManifest;
use dbtrail_core::{Row, TableRef, codec};
use dbtrail_testkit::{Server, TestDb};
use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const TABLES: [&str; 3] = ["orders", "pairs", "bag"];

async fn setup(db: &TestDb) {
    for sql in [
        "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL, \
         s VARCHAR(40), t DATETIME(6), d DECIMAL(20,6))",
        "CREATE TABLE pairs (k1 INT NOT NULL, k2 VARCHAR(10) NOT NULL, n BIGINT UNSIGNED, \
         PRIMARY KEY (k1, k2))",
        "CREATE TABLE bag (x INT, y VARBINARY(10))",
        "INSERT INTO orders (v, s, t, d) VALUES (1, 'seed', '2020-01-01 00:00:00.5', 1.5)",
        "INSERT INTO bag VALUES (1, 'dup'), (1, 'dup'), (2, NULL)",
    ] {
        db.exec(sql).await;
    }
}

/// Commits small mixed transactions across the tables until `stop`; returns how many.
async fn spawn_writer(
    db: &TestDb,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    let mut conn = db.conn().await;
    tokio::spawn(async move {
        let mut next = common::xorshift(0);
        while !stop.load(Ordering::Relaxed) {
            let i = count.load(Ordering::Relaxed);
            let k = next(40);
            let stmts = [
                format!("INSERT INTO orders (v, s, t, d) VALUES ({i}, 'o{i}', NOW(6), {i}.25)"),
                format!(
                    "UPDATE orders SET v = v + 1, s = CONCAT('u', v) WHERE id = {}",
                    next(i + 2) + 1
                ),
                format!("DELETE FROM orders WHERE id = {}", next(i + 2) + 1),
                format!(
                    "INSERT INTO pairs VALUES ({k}, 'k{}', {}) ON DUPLICATE KEY UPDATE n = n + 1",
                    next(3),
                    u64::MAX - i
                ),
                // A primary-key change.
                format!(
                    "UPDATE IGNORE pairs SET k1 = k1 + 100 WHERE k1 = {} AND k1 < 1000 LIMIT 1",
                    next(40)
                ),
                format!("INSERT INTO bag VALUES ({}, 'dup')", next(3)),
                format!("DELETE FROM bag WHERE x = {} LIMIT 1", next(3)),
            ];
            conn.query_drop("BEGIN").await.expect("begin");
            for s in &stmts[..(2 + next(stmts.len() as u64 - 1) as usize)] {
                conn.query_drop(s).await.expect("writer statement");
            }
            conn.query_drop("COMMIT").await.expect("commit");
            count.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

/// The live table, as the snapshot reader converts it.
async fn live_rows(db: &TestDb, table: &str) -> Vec<Row> {
    common::table_rows(db, &TableRef::new(db.db_name(), table)).await
}

fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by_cached_key(codec::encode);
    rows
}

/// Baseline rows of `table` (its files in key order) + the logged changes the baseline does
/// not hold.
fn reconstruct(
    log_dir: &Path,
    parquet: &[PathBuf],
    m: &BaselineManifest,
    table: &TableRef,
) -> Vec<Row> {
    let log = dbtrail_storage::Log::open(log_dir).expect("open log");
    let mut base = Vec::new();
    let mut schema = None;
    for file in parquet {
        let (s, kv) =
            dbtrail_replay::baseline::read(std::fs::File::open(file).expect("parquet"), |r| {
                base.push(r);
                Ok(())
            })
            .expect("read baseline");
        let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(
            get("dbtrail.gtid_set"),
            Some(m.position.gtid_set.to_compact_string())
        );
        assert_eq!(get("dbtrail.binlog_file"), Some(m.position.file.clone()));
        assert!(get("dbtrail.create_table").is_some_and(|c| c.starts_with("CREATE TABLE")));
        if let Some(first) = &schema {
            assert_eq!(first, &s, "every part has one schema");
        }
        schema = Some(s);
    }
    let schema = schema.expect("a file");
    let cut = log
        .first_txn_after(&m.position)
        .expect("cut")
        .map(|(_, t)| t.first_event_id)
        .unwrap_or(u64::MAX);
    let id = log.table_id(table).expect("id").expect("table logged");
    let mut fold = dbtrail_replay::fold::Fold::new(&schema.primary_key);
    let (mut before, mut after) = (0, 0);
    log.scan_table(id, i64::MIN, i64::MAX, |_, event_id, ev| {
        let not_held = event_id >= cut;
        if let Some(g) = &ev.gtid
            && !m.position.gtid_set.is_empty()
        {
            assert_eq!(
                not_held,
                !m.position.gtid_set.contains(g),
                "the log splits at one transaction: event {event_id} gtid {g}"
            );
        }
        if not_held {
            after += 1;
            fold.push(ev.change);
        } else {
            before += 1;
        }
        true
    })
    .expect("scan");
    assert!(
        before > 0 && after > 0,
        "{table}: the writer must straddle the baseline ({before} events before, {after} after)"
    );
    let mut out = Vec::new();
    fold.apply(base, |r| out.push(r)).expect("apply");
    sorted(out)
}

/// Where the test reads baseline files from.
enum Files {
    Local(PathBuf),
    S3(Arc<dyn object_store::ObjectStore>, String),
}

impl Files {
    /// Every file of `table` in `m`, in key order.
    async fn fetch_all(&self, m: &BaselineManifest, table: &TableRef, tmp: &Path) -> Vec<PathBuf> {
        let entry = m.table(table).expect("table in the baseline");
        let mut out = Vec::new();
        for f in entry.files() {
            out.push(self.fetch(m, f, tmp).await);
        }
        out
    }

    async fn fetch(&self, m: &BaselineManifest, file: &str, tmp: &Path) -> PathBuf {
        match self {
            Files::Local(root) => root.join(&m.source).join(&m.id).join(file),
            Files::S3(store, prefix) => {
                use object_store::ObjectStoreExt;
                let key = object_store::path::Path::from(format!(
                    "{prefix}/{}/{}/{file}",
                    m.source, m.id
                ));
                let bytes = store
                    .get(&key)
                    .await
                    .expect("get from S3")
                    .bytes()
                    .await
                    .expect("body");
                let local = tmp.join(file.replace('/', "_"));
                std::fs::write(&local, &bytes).expect("write");
                local
            }
        }
    }
}

/// Points the daemon's baseline store (`extra`, its config) at `s` under `prefix`; returns
/// the test's view of that store.
fn s3_store(s: &dbtrail_testkit::S3, tmp: &Path, prefix: &str, extra: &mut String) -> Files {
    extra.push_str(&common::s3_store_config(s, tmp, prefix, &s.secret_key));
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(&s.bucket)
        .with_endpoint(&s.endpoint)
        .with_allow_http(true)
        .with_region(&s.region)
        .with_access_key_id(&s.access_key)
        .with_secret_access_key(&s.secret_key)
        .build()
        .expect("s3 client");
    Files::S3(Arc::new(store), prefix.to_string())
}

async fn consistent_under_load(server: Server, s3: Option<dbtrail_testkit::S3>) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    setup(&db).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let prefix = format!("t{}-{}", std::process::id(), db.db_name());
    let mut extra = format!(
        "backup_connections = 2\nbackup_databases = [\"{}\"]\n",
        db.db_name()
    );
    let files = s3
        .as_ref()
        .map(|s| s3_store(s, tmp.path(), &prefix, &mut extra));
    let mut daemon = Daemon::start(server, &extra);
    let files = files.unwrap_or_else(|| Files::Local(daemon.dir.join("data/baselines")));
    daemon.wait_streaming().await;
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let writer = spawn_writer(&db, stop.clone(), count.clone()).await;
    // Let the writer run before, during and after the backup.
    while count.load(Ordering::Relaxed) < 50 {
        assert!(!writer.is_finished(), "the writer stopped early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = daemon.backup().await;
    let at_backup = count.load(Ordering::Relaxed);
    while count.load(Ordering::Relaxed) < at_backup + 50 {
        assert!(!writer.is_finished(), "the writer stopped early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    daemon.wait_caught_up(&db).await;
    let listed = daemon.client().backups(&daemon.source).await.expect("list");
    assert_eq!(
        listed.baselines,
        vec![m.clone()],
        "the catalog lists the baseline"
    );
    assert_eq!(m.tables.len(), TABLES.len(), "{m:#?}");
    assert!(m.skipped.is_empty());
    let mut expected = Vec::new();
    for t in TABLES {
        expected.push(live_rows(&db, t).await);
    }
    assert_eq!(daemon.stop(), Some(0));
    let log_dir = daemon.dir.join("data/sources/src/log");
    for (t, want) in TABLES.iter().zip(expected) {
        let table = TableRef::new(db.db_name(), *t);
        let entry = m.table(&table).expect("table in the baseline");
        let local = files.fetch_all(&m, &table, tmp.path()).await;
        let size: u64 = local
            .iter()
            .map(|f| std::fs::metadata(f).expect("file").len())
            .sum();
        assert_eq!(size, entry.bytes, "stored size");
        let got = reconstruct(&log_dir, &local, &m, &table);
        assert!(!want.is_empty());
        assert_eq!(got.len(), want.len(), "{table}: row count");
        assert!(got == want, "{table}: baseline + changes != source");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn consistent_under_load_mysql_gtid() {
    consistent_under_load(Server::MysqlGtid, None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn consistent_under_load_mysql_nogtid() {
    consistent_under_load(Server::MysqlNoGtid, None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn consistent_under_load_mariadb() {
    consistent_under_load(Server::MariaDb, None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn consistent_under_load_s3() {
    let Some(s3) = dbtrail_testkit::s3() else {
        return;
    };
    consistent_under_load(Server::MysqlGtid, Some(s3)).await;
}

/// Commits transactions to the split tables until `stop`: inserts, updates and deletes
/// across the whole key space, and primary-key changes that move rows between ranges.
/// Deadlocks between the writers are rolled back and retried.
async fn spawn_split_writer(
    db: &TestDb,
    seed: u64,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    let mut conn = db.conn().await;
    tokio::spawn(async move {
        let mut next = common::xorshift(seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
        while !stop.load(Ordering::Relaxed) {
            let i = count.load(Ordering::Relaxed);
            let stmts = [
                format!("INSERT INTO big (v, s) VALUES ({i}, 'w{seed}-{i}')"),
                format!(
                    "UPDATE big SET v = v + 1, s = CONCAT('u', v) WHERE id = {}",
                    next(20_000) + 1
                ),
                format!("DELETE FROM big WHERE id = {}", next(20_000) + 1),
                // Moves a row to another range (keys spread to twice the span: even
                // ranges over MIN..MAX still hold rows).
                format!(
                    "UPDATE IGNORE big SET id = id + 20000 WHERE id = {}",
                    next(20_000) + 1
                ),
                format!(
                    "INSERT INTO ck VALUES ({}, 'k{}', {i}) ON DUPLICATE KEY UPDATE n = n + 1",
                    next(3500),
                    next(4)
                ),
                format!("DELETE FROM ck WHERE k1 = {} LIMIT 1", next(3500)),
                format!(
                    "UPDATE IGNORE ck SET k1 = k1 + 3500 WHERE k1 = {} LIMIT 1",
                    next(3500)
                ),
            ];
            let mut ok = conn.query_drop("BEGIN").await.is_ok();
            for s in &stmts[..(3 + next(stmts.len() as u64 - 2) as usize)] {
                if !ok {
                    break;
                }
                match conn.query_drop(s).await {
                    Ok(()) => {}
                    // Deadlock or lock wait timeout between the writers.
                    Err(mysql_async::Error::Server(e)) if matches!(e.code, 1213 | 1205) => {
                        ok = false;
                    }
                    Err(e) => panic!("{s}: {e}"),
                }
            }
            if ok {
                conn.query_drop("COMMIT").await.expect("commit");
                count.fetch_add(1, Ordering::Relaxed);
            } else {
                let _ = conn.query_drop("ROLLBACK").await;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

/// A baseline of tables split into key ranges (an integer key, a composite key led by an
/// integer), taken while three writers commit to them: the manifest lists their ranges in
/// order, baseline + log equals the source, and a restore to a later target, imported with
/// myloader, equals the source as its own SQL prints it.
async fn split_into_ranges(server: Server, s3: Option<dbtrail_testkit::S3>) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    let depth = if server.is_mariadb() {
        "SET SESSION max_recursive_iterations = 100000"
    } else {
        "SET SESSION cte_max_recursion_depth = 100000"
    };
    let mut conn = db.conn().await;
    for sql in [
        depth,
        "CREATE TABLE big (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL, s VARCHAR(40))",
        "CREATE TABLE ck (k1 INT NOT NULL, k2 VARCHAR(10) NOT NULL, n BIGINT, \
         PRIMARY KEY (k1, k2))",
        "CREATE TABLE bag (x INT, y VARBINARY(10))",
        "INSERT INTO big (id, v, s) WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 \
         FROM n WHERE i < 20000) SELECT i, i, CONCAT('seed', i) FROM n",
        "INSERT INTO ck WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n \
         WHERE i < 9999) SELECT i DIV 3, CONCAT('k', i MOD 3), i FROM n",
        "INSERT INTO bag VALUES (1, 'dup'), (1, 'dup'), (2, NULL)",
        // Fresh row estimates, which decide the split.
        "ANALYZE TABLE big, ck",
    ] {
        conn.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let mut extra = format!(
        "backup_connections = 3\nbackup_split_rows = 1000\nbackup_databases = [\"{}\"]\n",
        db.db_name()
    );
    let prefix = format!("t{}-{}", std::process::id(), db.db_name());
    let files = s3
        .as_ref()
        .map(|s| s3_store(s, tmp.path(), &prefix, &mut extra));
    let mut daemon = Daemon::start(server, &extra);
    let files = files.unwrap_or_else(|| Files::Local(daemon.dir.join("data/baselines")));
    daemon.wait_streaming().await;
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for seed in 0..3 {
        writers.push(spawn_split_writer(&db, seed, stop.clone(), count.clone()).await);
    }
    let wait_for = async |n: u64| {
        while count.load(Ordering::Relaxed) < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    wait_for(60).await;
    let m = daemon.backup().await;
    let at_backup = count.load(Ordering::Relaxed);
    wait_for(at_backup + 60).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    daemon.wait_caught_up(&db).await;
    // The manifest: both keyed tables in several ranges, in order; the heap in one file.
    for (t, at_least) in [("big", 10), ("ck", 5)] {
        let e = m
            .table(&TableRef::new(db.db_name(), t))
            .expect("table in the baseline");
        assert!(e.parts.len() >= at_least, "{t}: {:#?}", e.parts);
        assert_eq!(e.file, e.parts[0].file);
        assert_eq!(e.rows, e.parts.iter().map(|p| p.rows).sum::<u64>());
        assert_eq!(e.bytes, e.parts.iter().map(|p| p.bytes).sum::<u64>());
        assert!(e.parts.iter().filter(|p| p.rows > 0).count() >= at_least / 2);
        let names: Vec<&str> = e.files();
        let mut sorted_names = names.clone();
        sorted_names.sort();
        assert_eq!(names, sorted_names, "parts in key order");
    }
    let bag = m.table(&TableRef::new(db.db_name(), "bag")).expect("bag");
    assert!(bag.parts.is_empty());
    assert!(m.skipped.is_empty());
    let log_dir = daemon.dir.join("data/sources/src/log");
    let names = ["big", "ck", "bag"];
    let mut want = std::collections::BTreeMap::new();
    for t in names {
        want.insert(
            t.to_string(),
            common::hex_rows(&mut conn, db.db_name(), t).await,
        );
    }
    // The target: now; what follows it must be left out.
    let end = common::server_now_us(&mut conn).await;
    common::next_second(&mut conn, end).await;
    for sql in [
        "DELETE FROM big WHERE id < 5000",
        "UPDATE ck SET n = -1",
        "DELETE FROM bag",
    ] {
        conn.query_drop(sql).await.expect("after the target");
    }
    daemon.wait_caught_up(&db).await;
    let mut live = Vec::new();
    for t in ["big", "ck"] {
        live.push(live_rows(&db, t).await);
    }
    let out = tmp.path().join("restored");
    let req = dbtrail_core::api::PitrRequest {
        target_time: Some(common::utc_second(end)),
        image: Some("baseline".into()),
        ..Default::default()
    };
    common::restore(&daemon, req, &out)
        .await
        .unwrap_or_else(|e| panic!("restore failed: {e}\n{}", daemon.log()));
    let into = format!("{}_split", db.db_name());
    tokio::task::block_in_place(|| common::myloader(&db, &out, &into));
    for t in names {
        let got = common::hex_rows(&mut conn, &into, t).await;
        assert_eq!(got.len(), want[t].len(), "{t}: row count");
        assert!(got == want[t], "{t}: restored from ranges != source");
    }
    conn.query_drop(format!("DROP DATABASE `{into}`"))
        .await
        .expect("drop");
    assert_eq!(daemon.stop(), Some(0));
    // Baseline + every logged change it does not hold == the source now.
    for (t, want) in ["big", "ck"].into_iter().zip(live) {
        let table = TableRef::new(db.db_name(), t);
        let local = files.fetch_all(&m, &table, tmp.path()).await;
        let got = reconstruct(&log_dir, &local, &m, &table);
        assert_eq!(got.len(), want.len(), "{t}: row count");
        assert!(got == want, "{t}: baseline ranges + changes != source");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn split_into_ranges_mysql_gtid() {
    split_into_ranges(Server::MysqlGtid, None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn split_into_ranges_mysql_nogtid() {
    split_into_ranges(Server::MysqlNoGtid, None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn split_into_ranges_mariadb() {
    split_into_ranges(Server::MariaDb, None).await;
}

/// The ranges uploaded to S3, and downloaded one by one for the restore.
#[tokio::test(flavor = "multi_thread")]
async fn split_into_ranges_s3() {
    let Some(s3) = dbtrail_testkit::s3() else {
        return;
    };
    split_into_ranges(Server::MysqlGtid, Some(s3)).await;
}

/// A backup killed midway leaves the catalog unchanged; its objects are removed at the next
/// start; the next backup works.
#[tokio::test(flavor = "multi_thread")]
async fn killed_backup_leaves_no_baseline() {
    let Some(db) = dbtrail_testkit::require(Server::MysqlGtid).await else {
        return;
    };
    db.exec("CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(200))")
        .await;
    db.exec("SET SESSION cte_max_recursion_depth = 1000000")
        .await;
    db.exec(
        "INSERT INTO big WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
         WHERE i < 300000) SELECT i, REPEAT('x', 200) FROM n",
    )
    .await;
    db.exec("CREATE TABLE a_small (id INT PRIMARY KEY)").await;
    db.exec("INSERT INTO a_small VALUES (1), (2)").await;
    // One connection: a_small is stored before big is read.
    let extra = format!(
        "backup_databases = [\"{}\"]\nbackup_connections = 1\n",
        db.db_name()
    );
    let mut daemon = Daemon::start(Server::MysqlGtid, &extra);
    daemon.wait_streaming().await;
    let first = daemon.backup().await;
    let client = daemon.client();
    let started = client.start_backup(&daemon.source).await.expect("start");
    // Kill it while it reads.
    loop {
        let j = client
            .backup(&daemon.source, &started.backup_id)
            .await
            .expect("job");
        assert_eq!(j.status, JobStatus::Running, "{j:?}");
        if j.phase == "reading" && j.tables_done == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let store_dir = daemon.dir.join("data/baselines/src");
    // a_small's file is in the store, without a manifest.
    let partial = store_dir.join(&started.backup_id);
    assert!(partial.exists() && !partial.join("manifest.json").exists());
    daemon.kill9();
    daemon.spawn();
    daemon.wait_streaming().await;
    let listed = daemon.client().backups(&daemon.source).await.expect("list");
    assert_eq!(listed.baselines, vec![first.clone()]);
    // The unfinished directory is removed at start.
    let dir = store_dir.join(&started.backup_id);
    dbtrail_testkit::wait_for(
        Duration::from_secs(20),
        "the unfinished backup to be removed",
        async || (!dir.exists()).then_some(()),
    )
    .await;
    assert!(store_dir.join(&first.id).join("manifest.json").exists());
    let second = daemon.backup().await;
    assert_eq!(second.rows(), 300_002);
    assert_eq!(daemon.stop(), Some(0));
}

/// Scheduled backups happen; retention keeps the newest `backup_keep` and prunes the log
/// before the oldest kept baseline.
#[tokio::test(flavor = "multi_thread")]
async fn scheduled_backups_and_retention() {
    let Some(db) = dbtrail_testkit::require(Server::MariaDb).await else {
        return;
    };
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)").await;
    let extra = format!(
        "backup_databases = [\"{}\"]\nbackup_interval = \"2s\"\nbackup_keep = 2\n",
        db.db_name()
    );
    let mut daemon = Daemon::start(Server::MariaDb, &extra);
    daemon.wait_streaming().await;
    let client = daemon.client();
    let mut i = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let listed = loop {
        i += 1;
        db.exec(&format!("INSERT INTO t VALUES ({i}, {i})")).await;
        let l = client.backups(&daemon.source).await.expect("list");
        let done = l
            .jobs
            .iter()
            .filter(|j| j.status == JobStatus::Completed)
            .count();
        if done >= 4 {
            break l;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "scheduled backups did not happen: {l:#?}\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        listed.jobs.iter().all(|j| j.status != JobStatus::Failed),
        "{listed:#?}"
    );
    // Retention runs after each backup (a fifth may be running now).
    let kept = client
        .backups(&daemon.source)
        .await
        .expect("list")
        .baselines;
    let full = kept.iter().filter(|b| b.origin.is_full()).count();
    assert!((1..=3).contains(&full), "{kept:#?}");
    daemon.stop();
    let kept = {
        let log =
            dbtrail_storage::Log::open(&daemon.dir.join("data/sources/src/log")).expect("log");
        let all = log.baselines().expect("baselines");
        // Table images of tables other tests create on the same server are not baselines.
        let kept: Vec<_> = all.iter().filter(|b| b.origin.is_full()).cloned().collect();
        assert_eq!(kept.len(), 2, "backup_keep = 2: {kept:#?}");
        assert!(
            all.iter()
                .all(|b| b.origin.is_full() || b.snapshot_us >= kept[0].snapshot_us),
            "table images older than the oldest kept baseline are removed: {all:#?}"
        );
        // The log holds nothing before the oldest kept baseline's first missing transaction.
        let oldest = &kept[0];
        let mut first = None;
        log.scan_txns(0, |_, t| {
            first = Some(t);
            false
        })
        .expect("txns");
        let first = first.expect("transactions after the oldest baseline");
        assert!(
            !dbtrail_storage::baselines::held_by(&oldest.position, &first),
            "pruned up to the oldest baseline: first logged {first:?}, baseline {:?}",
            oldest.position
        );
        all
    };
    let dirs: Vec<String> = std::fs::read_dir(daemon.dir.join("data/baselines/src"))
        .expect("store")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let mut dirs = dirs;
    dirs.sort();
    let ids: Vec<String> = kept.iter().map(|b| b.id.clone()).collect();
    assert_eq!(dirs, ids, "the store holds exactly the kept baselines");
}

/// An existing mydumper backup, taken while a writer runs, imported as a baseline: its rows
/// plus the logged changes after its metadata position equal the source.
#[tokio::test(flavor = "multi_thread")]
async fn mydumper_import_mariadb() {
    let Some(db) = dbtrail_testkit::require(Server::MariaDb).await else {
        return;
    };
    setup(&db).await;
    let mut daemon = Daemon::start(Server::MariaDb, "");
    daemon.wait_streaming().await;
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let writer = spawn_writer(&db, stop.clone(), count.clone()).await;
    while count.load(Ordering::Relaxed) < 50 {
        assert!(!writer.is_finished(), "the writer stopped early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dump = tempfile::tempdir().expect("tmp");
    let d = dump.path().to_path_buf();
    let db_ref = &db;
    tokio::task::block_in_place(|| common::run_mydumper(db_ref, &d));
    let at_dump = count.load(Ordering::Relaxed);
    while count.load(Ordering::Relaxed) < at_dump + 50 {
        assert!(!writer.is_finished(), "the writer stopped early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    daemon.wait_caught_up(&db).await;
    // A relative path and a directory without metadata are refused at once.
    let client = daemon.client();
    let err = client
        .import_baseline(&daemon.source, "relative/dir")
        .await
        .expect_err("relative path");
    assert!(
        err.to_string().contains("not a mydumper backup directory"),
        "{err}"
    );
    let started = client
        .import_baseline(&daemon.source, &dump.path().to_string_lossy())
        .await
        .expect("import");
    let m = daemon
        .wait_job(&started.backup_id)
        .await
        .unwrap_or_else(|e| panic!("import failed: {e}\n{}", daemon.log()));
    assert_eq!(
        m.origin,
        dbtrail_core::baseline::BaselineOrigin::MydumperImport
    );
    assert_eq!(m.tables.len(), TABLES.len(), "{m:#?}");
    let mut expected = Vec::new();
    for t in TABLES {
        expected.push(live_rows(&db, t).await);
    }
    assert_eq!(daemon.stop(), Some(0));
    let files = Files::Local(daemon.dir.join("data/baselines"));
    let tmp = tempfile::tempdir().expect("tmp");
    let log_dir = daemon.dir.join("data/sources/src/log");
    for (t, want) in TABLES.iter().zip(expected) {
        let table = TableRef::new(db.db_name(), *t);
        assert!(m.table(&table).is_some(), "table imported");
        let local = files.fetch_all(&m, &table, tmp.path()).await;
        let got = reconstruct(&log_dir, &local, &m, &table);
        assert!(
            got == want,
            "{table}: imported baseline + changes != source"
        );
    }
}

/// mydumper 0.10 writes no binlog position for MySQL 9.x: the import says so and what to do.
#[tokio::test(flavor = "multi_thread")]
async fn mydumper_import_without_position_is_refused() {
    let Some(db) = dbtrail_testkit::require(Server::MysqlGtid).await else {
        return;
    };
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let daemon = Daemon::start(Server::MysqlGtid, "");
    daemon.wait_streaming().await;
    let dump = tempfile::tempdir().expect("tmp");
    common::run_mydumper(&db, dump.path());
    let started = daemon
        .client()
        .import_baseline(&daemon.source, &dump.path().to_string_lossy())
        .await
        .expect("import starts");
    let err = daemon
        .wait_job(&started.backup_id)
        .await
        .expect_err("no position");
    assert!(
        err.contains("no binlog position") && err.contains("dbtrailctl backup"),
        "{err}"
    );
    let listed = daemon.client().backups(&daemon.source).await.expect("list");
    assert!(listed.baselines.is_empty());
}
