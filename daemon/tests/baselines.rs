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
        let mut r: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |m: u64| {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            r % m
        };
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

/// Baseline rows of `table` + the logged changes the baseline does not hold.
fn reconstruct(log_dir: &Path, parquet: &Path, m: &BaselineManifest, table: &TableRef) -> Vec<Row> {
    let log = dbtrail_storage::Log::open(log_dir).expect("open log");
    let mut base = Vec::new();
    let (schema, kv) =
        dbtrail_replay::baseline::read(std::fs::File::open(parquet).expect("parquet"), |r| {
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
    let files = match &s3 {
        None => None,
        Some(s) => {
            extra.push_str(&common::s3_store_config(
                s,
                tmp.path(),
                &prefix,
                &s.secret_key,
            ));
            let store = object_store::aws::AmazonS3Builder::new()
                .with_bucket_name(&s.bucket)
                .with_endpoint(&s.endpoint)
                .with_allow_http(true)
                .with_region(&s.region)
                .with_access_key_id(&s.access_key)
                .with_secret_access_key(&s.secret_key)
                .build()
                .expect("s3 client");
            Some(Files::S3(Arc::new(store), prefix.clone()))
        }
    };
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
        let local = files.fetch(&m, &entry.file, tmp.path()).await;
        assert_eq!(
            std::fs::metadata(&local).expect("file").len(),
            entry.bytes,
            "stored size"
        );
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
        let entry = m.table(&table).expect("table imported");
        let local = files.fetch(&m, &entry.file, tmp.path()).await;
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
