//! Restore verification against the real servers.
//!
//! Three writers commit interleaved transactions to a keyed table `k` (DECIMAL, JSON, an
//! automatic TIMESTAMP, a secondary unique key) and a key-less `bag` the whole time. A
//! verification while they write passes, with both sides' row counts equal to the live
//! table's at the image. Then rows the writers never touch are changed with the binlog off
//! (`sql_log_bin = 0`: the history cannot know), and the next verification names exactly
//! those rows and columns, the value the source itself reports on the live side; the
//! metrics and `dbtrailctl verify` (exit status 1, `--list`) say so too. A source without
//! GTIDs is refused with the reason, and a damaged baseline file fails the verification,
//! naming the file and its checksum.
mod common;

use common::Daemon;
use common::writers::Writers;
use dbtrail_core::api::{VerifyOutcome, VerifyRun};
use dbtrail_testkit::Server;
use mysql_async::prelude::Queryable;
use std::time::Duration;

fn txn(w: u64, n: u64, next: &mut dyn FnMut(u64) -> u64) -> Vec<String> {
    let mut sql = Vec::new();
    for _ in 0..1 + next(3) {
        let k = 1 + next(300);
        sql.push(match next(10) {
            0..=3 => format!(
                "INSERT INTO k (id, u, v, j) VALUES ({k}, {k}, {}.5, '{{\"w\": {w}, \"n\": {n}}}') \
                 ON DUPLICATE KEY UPDATE v = v + 1, j = JSON_SET(j, '$.n', {n})",
                next(1000)
            ),
            4..=6 => format!("UPDATE k SET v = v * 2, j = NULL WHERE id = {k}"),
            7 => format!("DELETE FROM k WHERE id = {k}"),
            8 => format!("INSERT INTO bag VALUES ({}, 'b{w}')", next(4)),
            _ => format!("DELETE FROM bag WHERE x = {} LIMIT 1", next(4)),
        });
    }
    sql
}

async fn verify(daemon: &Daemon, tables: &[&str]) -> VerifyRun {
    let client = daemon.client();
    let req = dbtrail_core::api::VerifyRequest {
        tables: tables.iter().map(|t| t.to_string()).collect(),
    };
    let mut run = client
        .start_verify(&daemon.source, &req)
        .await
        .unwrap_or_else(|e| panic!("start verify: {e:#}\n{}", daemon.log()));
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while run.outcome == VerifyOutcome::Running {
        assert!(
            std::time::Instant::now() < deadline,
            "verification {} still running\n{}",
            run.id,
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        run = client
            .verification(&daemon.source, &run.id)
            .await
            .expect("verification");
    }
    run
}

async fn verification(server: Server) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    let d = db.db_name().to_string();
    let mut conn = db.conn().await;
    conn.query_drop(
        "CREATE TABLE k (id INT PRIMARY KEY, u INT NOT NULL, v DECIMAL(12,1) NOT NULL, \
         j JSON, t TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE \
         CURRENT_TIMESTAMP(3), s VARCHAR(20) NOT NULL DEFAULT 'orig', UNIQUE KEY (u))",
    )
    .await
    .expect("create k");
    conn.query_drop("CREATE TABLE bag (x INT, y VARCHAR(10))")
        .await
        .expect("create bag");
    let seed: Vec<String> = (1..=300)
        .map(|i| format!("({i}, {i}, {i}.5, '{{\"seed\": {i}}}')"))
        .collect();
    conn.query_drop(format!(
        "INSERT INTO k (id, u, v, j) VALUES {}, (5000, 5000, 1.0, NULL), (5001, 5001, 2.0, '[1]')",
        seed.join(",")
    ))
    .await
    .expect("seed");
    conn.query_drop("INSERT INTO bag VALUES (1, 'a'), (1, 'a'), (2, NULL), (99, 'z'), (99, 'z')")
        .await
        .expect("seed bag");
    let (mut daemon, port) =
        common::metrics::start_with_metrics(server, &format!("backup_databases = [\"{d}\"]\n"));
    daemon.wait_streaming().await;
    daemon.backup().await;
    let w = Writers::start(&db, 3, txn);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (k, bag) = (format!("{d}.k"), format!("{d}.bag"));

    // While the writers commit: the history gives the live tables.
    let run = verify(&daemon, &[&k, &bag]).await;
    assert_eq!(
        run.outcome,
        VerifyOutcome::Passed,
        "{run:#?}\n{}",
        daemon.log()
    );
    assert_eq!(run.results.len(), 2);
    for t in &run.results {
        assert_eq!(t.mismatched_rows, 0, "{t:?}");
        assert_eq!(t.live_rows, t.rebuilt_rows, "{t:?}");
        assert!(t.live_rows > 0, "{t:?}");
    }
    assert!(run.position.is_some() && run.image_id.is_some());
    let body = common::metrics::scrape(port).await;
    assert!(
        common::metrics::value(&body, "dbtrail_verify_last_success_timestamp_seconds")
            .unwrap_or(0.0)
            > 1.6e9,
        "{body}"
    );
    assert_eq!(
        common::metrics::value(&body, "dbtrail_verify_mismatched_rows"),
        Some(0.0)
    );

    // Changes the binlog never saw, on rows the writers never touch.
    conn.query_drop("SET SESSION sql_log_bin = 0")
        .await
        .expect("sql_log_bin");
    conn.query_drop("UPDATE k SET s = 'tampered' WHERE id = 5000")
        .await
        .expect("tamper k");
    conn.query_drop("DELETE FROM k WHERE id = 5001")
        .await
        .expect("tamper k 2");
    conn.query_drop("DELETE FROM bag WHERE x = 99 LIMIT 1")
        .await
        .expect("tamper bag");
    conn.query_drop("SET SESSION sql_log_bin = 1")
        .await
        .expect("sql_log_bin");
    let live_s: Option<String> = conn
        .query_first("SELECT s FROM k WHERE id = 5000")
        .await
        .expect("read back");
    let run = verify(&daemon, &[&k, &bag]).await;
    assert_eq!(
        run.outcome,
        VerifyOutcome::Mismatch,
        "{run:#?}\n{}",
        daemon.log()
    );
    let tk = run.results.iter().find(|t| t.table == k).expect("k");
    assert_eq!(tk.mismatched_rows, 2, "{tk:#?}");
    assert!(!tk.truncated);
    let mut kinds: Vec<(String, String, Vec<String>)> = tk
        .differences
        .iter()
        .map(|d| {
            (
                d.kind.clone(),
                d.key.clone(),
                d.columns.iter().map(|c| c.column.clone()).collect(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            // The automatic TIMESTAMP moved with the unlogged UPDATE too.
            (
                "differs".to_string(),
                "id=5000".to_string(),
                vec!["t".to_string(), "s".to_string()]
            ),
            ("extra".to_string(), "id=5001".to_string(), Vec::new()),
        ],
        "{tk:#?}"
    );
    let differs = tk
        .differences
        .iter()
        .find(|d| d.kind == "differs")
        .expect("differs");
    let col = differs.columns.iter().find(|c| c.column == "s").expect("s");
    assert_eq!(col.live, serde_json::json!(live_s.expect("row 5000")));
    assert_eq!(col.rebuilt, serde_json::json!("orig"));
    let tb = run.results.iter().find(|t| t.table == bag).expect("bag");
    assert_eq!(tb.mismatched_rows, 1, "{tb:#?}");
    assert_eq!(tb.differences.len(), 1);
    assert_eq!(tb.differences[0].kind, "extra");
    assert_eq!(tb.differences[0].key, "x=99, y=z");
    assert_eq!(tb.live_rows + 1, tb.rebuilt_rows);
    let body = common::metrics::scrape(port).await;
    assert_eq!(
        common::metrics::value(&body, "dbtrail_verify_mismatched_rows"),
        Some(3.0),
        "{body}"
    );
    assert!(body.contains("dbtrail_verify_runs_total{source=\"src\",outcome=\"mismatch\"} 1"));
    w.stop().await;

    // The command line: exit status 1 and the rows named; --list has every run.
    let mut last_mismatch = 3.0;
    if let Some(ctl) = common::ctl_binary() {
        last_mismatch = 2.0;
        let out = std::process::Command::new(&ctl)
            .args(["--socket"])
            .arg(&daemon.socket)
            .args(["verify", "--tables", &k])
            .output()
            .expect("dbtrailctl verify");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            text.contains("mismatch") && text.contains("id=5000"),
            "{text}"
        );
        let out = std::process::Command::new(&ctl)
            .args(["--socket"])
            .arg(&daemon.socket)
            .args(["verify", "--list"])
            .output()
            .expect("dbtrailctl verify --list");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert_eq!(text.matches(" passed ").count(), 1, "{text}");
        assert_eq!(text.matches(" mismatch ").count(), 2, "{text}");
    }
    // Records and metrics survive a restart.
    daemon.kill9();
    daemon.spawn();
    daemon.wait_streaming().await;
    let runs = daemon
        .client()
        .verifications(&daemon.source)
        .await
        .expect("list");
    assert!(runs.len() >= 2);
    let body = common::metrics::scrape(port).await;
    assert_eq!(
        common::metrics::value(&body, "dbtrail_verify_mismatched_rows"),
        Some(last_mismatch),
        "{body}"
    );
    assert!(
        common::metrics::value(&body, "dbtrail_verify_last_success_timestamp_seconds")
            .unwrap_or(0.0)
            > 1.6e9
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verification_mysql_gtid() {
    verification(Server::MysqlGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verification_mariadb() {
    verification(Server::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verification_needs_gtids() {
    let Some(db) = dbtrail_testkit::require(Server::MysqlNoGtid).await else {
        return;
    };
    let d = db.db_name().to_string();
    db.exec("CREATE TABLE k (id INT PRIMARY KEY)").await;
    db.exec("INSERT INTO k VALUES (1)").await;
    let daemon = Daemon::start(
        Server::MysqlNoGtid,
        &format!("backup_databases = [\"{d}\"]\n"),
    );
    daemon.wait_streaming().await;
    daemon.backup().await;
    let run = verify(&daemon, &[&format!("{d}.k")]).await;
    assert_eq!(run.outcome, VerifyOutcome::Failed);
    let e = run.error.unwrap_or_default();
    assert!(e.contains("gtid_mode=ON"), "{e}");
    // Bad requests name the fix.
    let client = daemon.client();
    let err = client
        .start_verify(
            &daemon.source,
            &dbtrail_core::api::VerifyRequest {
                tables: vec!["nodot".into()],
            },
        )
        .await
        .expect_err("bad name");
    assert!(format!("{err:#}").contains("is not db.table"), "{err:#}");
    let err = client
        .start_verify(
            &daemon.source,
            &dbtrail_core::api::VerifyRequest {
                tables: vec![format!("{d}.nosuch")],
            },
        )
        .await
        .expect_err("unknown table");
    assert!(format!("{err:#}").contains("dbtrailctl backups"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_verifications_rotate() {
    let Some(db) = dbtrail_testkit::require(Server::MysqlGtid).await else {
        return;
    };
    let d = db.db_name().to_string();
    db.exec("CREATE TABLE a (id INT PRIMARY KEY, v INT)").await;
    db.exec("CREATE TABLE b (x INT, y INT)").await;
    db.exec("INSERT INTO a VALUES (1, 1), (2, 2)").await;
    db.exec("INSERT INTO b VALUES (1, 1), (1, 1)").await;
    let daemon = Daemon::start(
        Server::MysqlGtid,
        &format!("backup_databases = [\"{d}\"]\nverify_interval = \"1s\"\nverify_tables = 1\n"),
    );
    daemon.wait_streaming().await;
    daemon.backup().await;
    db.exec("UPDATE a SET v = v + 10").await;
    // One table per run, the least recently verified first: both within a few runs.
    let client = daemon.client();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let runs = client.verifications(&daemon.source).await.expect("list");
        let passed: Vec<&VerifyRun> = runs
            .iter()
            .filter(|r| r.outcome == VerifyOutcome::Passed)
            .collect();
        assert!(
            runs.iter().all(|r| r.outcome != VerifyOutcome::Mismatch),
            "{runs:#?}"
        );
        let seen: std::collections::BTreeSet<&str> = passed
            .iter()
            .flat_map(|r| r.tables.iter().map(String::as_str))
            .collect();
        if passed.len() >= 2 {
            assert!(passed.iter().all(|r| r.tables.len() == 1), "{runs:#?}");
            assert_eq!(seen.len(), 2, "{runs:#?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{runs:#?}\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn verification_finds_a_damaged_baseline_file() {
    let Some(db) = dbtrail_testkit::require(Server::MysqlGtid).await else {
        return;
    };
    let d = db.db_name().to_string();
    db.exec("CREATE TABLE k (id INT PRIMARY KEY, pad VARCHAR(200))")
        .await;
    db.exec(
        "INSERT INTO k WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s \
         WHERE n < 1000) SELECT n, REPEAT('p', 150) FROM s",
    )
    .await;
    let daemon = Daemon::start(
        Server::MysqlGtid,
        &format!("backup_databases = [\"{d}\"]\n"),
    );
    daemon.wait_streaming().await;
    let b = daemon.backup().await;
    let file = b
        .table(&dbtrail_core::TableRef::new(&d, "k"))
        .expect("k in the baseline")
        .files()[0]
        .to_string();
    let path = daemon
        .dir
        .join("data/baselines/src")
        .join(&b.id)
        .join(&file);
    let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let at = bytes.len() / 3;
    for x in &mut bytes[at..at + 8] {
        *x ^= 0x5a;
    }
    std::fs::write(&path, &bytes).expect("damage");
    let run = verify(&daemon, &[&format!("{d}.k")]).await;
    assert_eq!(run.outcome, VerifyOutcome::Failed, "{run:#?}");
    let e = run.error.unwrap_or_default();
    assert!(e.contains(&file) && e.contains("checksum"), "{e}");
}
