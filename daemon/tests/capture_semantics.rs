//! Capture semantics on the real servers: schema versions across DDL, statement-format DML
//! taints a table, commit order and time under lock waits, large transactions, API errors,
//! metrics.
mod common;

use common::Daemon;
use dbtrail_testkit::Server;
use mysql_async::prelude::Queryable;
use serde_json::json;
use std::time::Duration;

async fn ddl_versions(server: Server) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    let daemon = Daemon::start(server, "");
    daemon.wait_streaming().await;
    db.exec("CREATE TABLE v (id INT PRIMARY KEY, a INT)").await;
    db.exec("INSERT INTO v VALUES (1, 10)").await;
    db.exec("ALTER TABLE v ADD COLUMN b VARCHAR(10) AFTER id")
        .await;
    db.exec("INSERT INTO v VALUES (2, 'two', 20)").await;
    db.exec("ALTER TABLE v DROP COLUMN a").await;
    db.exec("UPDATE v SET b = 'TWO' WHERE id = 2").await;
    daemon.wait_caught_up(&db).await;
    let ev = daemon.table_events(&db, "v").await;
    let got: Vec<_> = ev
        .events
        .iter()
        .map(|e| (e.schema_version, e.columns.clone(), e.after.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                1,
                vec!["id".to_string(), "a".into()],
                Some(vec![json!(1), json!(10)])
            ),
            (
                2,
                vec!["id".to_string(), "b".into(), "a".into()],
                Some(vec![json!(2), json!("two"), json!(20)])
            ),
            (
                3,
                vec!["id".to_string(), "b".into()],
                Some(vec![json!(2), json!("TWO")])
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ddl_makes_schema_versions_mysql() {
    ddl_versions(Server::MysqlGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ddl_makes_schema_versions_mariadb() {
    ddl_versions(Server::MariaDb).await;
}

async fn statement_taint(server: Server) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    let daemon = Daemon::start(server, "");
    daemon.wait_streaming().await;
    db.exec("CREATE TABLE s (id INT PRIMARY KEY)").await;
    let mut conn = db.conn().await;
    conn.query_drop("SET SESSION binlog_format = 'STATEMENT'")
        .await
        .expect("session format");
    conn.query_drop("INSERT INTO s VALUES (1)")
        .await
        .expect("insert");
    let table = format!("{}.s", db.db_name());
    let st = daemon
        .wait_status("taint", Duration::from_secs(30), |s| {
            s.tainted_tables.iter().any(|t| t.table == table)
        })
        .await;
    let t = st
        .tainted_tables
        .iter()
        .find(|t| t.table == table)
        .expect("tainted");
    assert!(t.reason.contains("statement-format DML"), "{}", t.reason);
    assert_eq!(
        st.state,
        dbtrail_core::api::SourceState::Streaming,
        "capture goes on"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn statement_dml_taints_the_table_mysql() {
    statement_taint(Server::MysqlGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn statement_dml_taints_the_table_mariadb() {
    statement_taint(Server::MariaDb).await;
}

/// Statement start times invert against commit order (B starts first, waits on A's lock,
/// commits second): the log orders by commit and its times never go back
/// (docs/correctness.md, C1).
async fn lock_wait_order(server: Server) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    let daemon = Daemon::start(server, "");
    daemon.wait_streaming().await;
    db.exec("CREATE TABLE o (id INT PRIMARY KEY, who VARCHAR(5))")
        .await;
    db.exec("INSERT INTO o VALUES (1, 'init')").await;
    let mut a = db.conn().await;
    let mut b = db.conn().await;
    a.query_drop("BEGIN").await.expect("a begin");
    a.query_drop("UPDATE o SET who = 'a1' WHERE id = 1")
        .await
        .expect("a locks");
    let blocked = tokio::spawn(async move {
        // Starts now, waits for A's lock, commits after A.
        b.query_drop("UPDATE o SET who = 'b' WHERE id = 1")
            .await
            .expect("b");
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.query_drop("UPDATE o SET who = 'a2' WHERE id = 1")
        .await
        .expect("a again");
    a.query_drop("COMMIT").await.expect("a commit");
    blocked.await.expect("b done");
    daemon.wait_caught_up(&db).await;
    let ev = daemon.table_events(&db, "o").await;
    let who: Vec<_> = ev
        .events
        .iter()
        .map(|e| e.after.as_ref().expect("after")[1].clone())
        .collect();
    assert_eq!(
        who,
        [json!("init"), json!("a1"), json!("a2"), json!("b")],
        "log order is commit order"
    );
    for w in ev.events.windows(2) {
        assert!(
            w[0].commit_us <= w[1].commit_us,
            "time goes back: {} then {}",
            w[0].commit_time,
            w[1].commit_time
        );
        assert!(w[0].event_id < w[1].event_id);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn commit_order_under_lock_wait_mysql() {
    lock_wait_order(Server::MysqlGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn commit_order_under_lock_wait_mariadb() {
    lock_wait_order(Server::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_larger_than_memory_bounds_is_captured_whole() {
    let Some(db) = dbtrail_testkit::require(Server::MysqlGtid).await else {
        return;
    };
    let daemon = Daemon::start(Server::MysqlGtid, "");
    daemon.wait_streaming().await;
    db.exec("CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(255))")
        .await;
    let mut conn = db.conn().await;
    conn.query_drop("SET SESSION cte_max_recursion_depth = 1000000")
        .await
        .expect("depth");
    // ~70 MB of row images in one transaction: more than the writer buffers (32 MiB).
    conn.query_drop(
        "INSERT INTO big WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 250000) \
         SELECT n, REPEAT(CHAR(97 + n % 26), 250) FROM s",
    )
    .await
    .expect("big insert");
    daemon.wait_caught_up(&db).await;
    let client = daemon.client();
    let table = format!("{}.big", db.db_name());
    let ev = client
        .events(
            &daemon.source,
            &[("table", table.clone()), ("limit", "100000".into())],
        )
        .await
        .expect("events");
    assert!(ev.truncated, "more than 100000 events");
    let first_gtid = ev.events[0].gtid.clone().expect("gtid");
    let txn = client
        .events(
            &daemon.source,
            &[("gtid", first_gtid), ("limit", "100000".into())],
        )
        .await
        .expect("by gtid");
    assert_eq!(txn.events.len(), 100_000);
    let st = client.status(&daemon.source).await.expect("status");
    assert!(st.events_total >= 250_000, "{st:#?}");
    let last = client
        .events(
            &daemon.source,
            &[
                ("table", table),
                ("since", ev.events[0].commit_time.clone()),
                ("limit", "100000".into()),
            ],
        )
        .await
        .expect("events");
    assert_eq!(
        last.events[99_999].after.as_ref().expect("after")[0],
        json!(100_000)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn api_rejects_bad_requests_with_clear_errors() {
    let Some(db) = dbtrail_testkit::require(Server::MysqlGtid).await else {
        return;
    };
    let daemon = Daemon::start(Server::MysqlGtid, "");
    daemon.wait_streaming().await;
    let c = daemon.client();
    let cases: Vec<(String, &str)> = vec![
        (
            "/api/v1/servers/nope/status".into(),
            "no source named \"nope\"",
        ),
        (
            "/api/v1/servers/src/events?table=nodot".into(),
            "expected db.table",
        ),
        (
            "/api/v1/servers/src/events?since=yesterday".into(),
            "expected YYYY-MM-DD HH:MM:SS",
        ),
        (
            "/api/v1/servers/src/events?colour=red".into(),
            "unknown field",
        ),
        ("/api/v1/servers/src/events?limit=0".into(), "limit must be"),
        ("/api/v1/servers/src/events?gtid=zzz".into(), "bad gtid"),
        (
            "/api/v1/servers/src/events?gtid=3e11fa47-71ca-11e1-9e33-c80aa9429562:5".into(),
            "not in the log",
        ),
        (
            format!("/api/v1/servers/src/events?table={}.missing", db.db_name()),
            "not in the log",
        ),
        ("/api/v2/whatever".into(), "no such API endpoint"),
    ];
    for (path, want) in cases {
        let err = c.get::<serde_json::Value>(&path).await.expect_err(&path);
        assert!(format!("{err:#}").contains(want), "{path}: {err:#}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_captured_events() {
    let Some(db) = dbtrail_testkit::require(Server::MysqlGtid).await else {
        return;
    };
    let (daemon, port) = common::metrics::start_with_metrics(Server::MysqlGtid, "");
    daemon.wait_streaming().await;
    db.exec("CREATE TABLE m (id INT PRIMARY KEY)").await;
    db.exec("INSERT INTO m VALUES (1), (2), (3)").await;
    daemon.wait_caught_up(&db).await;
    let body = common::metrics::scrape(port).await;
    let value = |name: &str| -> f64 {
        common::metrics::value(&body, name).unwrap_or_else(|| panic!("{name} missing in\n{body}"))
    };
    assert!(value("dbtrail_capture_events_total") >= 3.0);
    assert!(value("dbtrail_capture_transactions_total") >= 2.0);
    assert_eq!(value("dbtrail_capture_up"), 1.0);
    assert!(body.contains("dbtrail_capture_batch_write_seconds_bucket"));
    // The series the alert rules in monitoring/ need.
    assert!(value("dbtrail_source_binlog_retention_seconds") >= 0.0);
    assert!(value("dbtrail_capture_last_commit_timestamp_seconds") > 1.6e9);
    assert!(value("dbtrail_capture_last_durable_timestamp_seconds") > 1.6e9);
    // No baseline yet: nothing is restorable.
    assert_eq!(value("dbtrail_backup_baselines"), 0.0);
    assert_eq!(value("dbtrail_restore_window_seconds"), 0.0);
}

/// XA: rows the binlog holds at XA PREPARE count at XA COMMIT, with its GTID
/// (docs/correctness.md, C13); nothing is tainted. An XA transaction rolled back, before or
/// after PREPARE, leaves no rows. (Restores across XA: `daemon/tests/xa.rs`.)
#[tokio::test(flavor = "multi_thread")]
async fn xa_transactions_are_captured_and_flagged() {
    let Some(db) = dbtrail_testkit::require(Server::MysqlGtid).await else {
        return;
    };
    let daemon = Daemon::start(Server::MysqlGtid, "");
    daemon.wait_streaming().await;
    db.exec("CREATE TABLE x (id INT PRIMARY KEY)").await;
    let mut conn = db.conn().await;
    for sql in [
        "XA START 'dbt1'",
        "INSERT INTO x VALUES (1)",
        "XA END 'dbt1'",
        "XA PREPARE 'dbt1'",
        "XA COMMIT 'dbt1'",
        "XA START 'dbt2'",
        "INSERT INTO x VALUES (2)",
        "XA END 'dbt2'",
        "XA ROLLBACK 'dbt2'",
        "XA START 'dbt3'",
        "INSERT INTO x VALUES (4)",
        "XA END 'dbt3'",
        "XA PREPARE 'dbt3'",
        "XA ROLLBACK 'dbt3'",
        "INSERT INTO x VALUES (3)",
    ] {
        conn.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let st = daemon.wait_caught_up(&db).await;
    let table = format!("{}.x", db.db_name());
    // docs/correctness.md, C13: XA transactions count at XA COMMIT and taint nothing.
    assert!(
        !st.tainted_tables
            .iter()
            .any(|t| t.table == table || t.table == "*.*"),
        "{st:#?}"
    );
    assert!(st.prepared_xa.is_empty(), "{st:#?}");
    assert_eq!(st.state, dbtrail_core::api::SourceState::Streaming);
    let ev = daemon
        .client()
        .events(&daemon.source, &[("table", table)])
        .await
        .expect("events");
    let ids: Vec<_> = ev
        .events
        .iter()
        .map(|e| e.after.as_ref().expect("after")[0].clone())
        .collect();
    assert_eq!(
        ids,
        [json!(1), json!(3)],
        "the XA transactions rolled back (before and after PREPARE) left nothing"
    );
    // The committed row carries the GTID of the XA COMMIT, one after its XA PREPARE's.
    let seq = |g: &str| {
        g.rsplit(':')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .expect("gtid seq")
    };
    let g1 = ev.events[0].gtid.as_deref().expect("gtid");
    let g3 = ev.events[1].gtid.as_deref().expect("gtid");
    assert!(seq(g3) > seq(g1) + 1, "{g1} {g3}");
}

/// Savepoints (ORMs' nested transactions): MySQL logs `SAVEPOINT` inside the transaction;
/// capture keeps the transaction whole, with only the rows that were kept, on every server.
#[tokio::test(flavor = "multi_thread")]
async fn savepoints_stay_inside_their_transaction() {
    for server in [Server::MysqlGtid, Server::MariaDb] {
        let Some(db) = dbtrail_testkit::require(server).await else {
            return;
        };
        let daemon = Daemon::start(server, "");
        daemon.wait_streaming().await;
        db.exec("CREATE TABLE s (id INT PRIMARY KEY)").await;
        let mut conn = db.conn().await;
        for sql in [
            "BEGIN",
            "INSERT INTO s VALUES (1)",
            "SAVEPOINT a",
            "INSERT INTO s VALUES (2)",
            "ROLLBACK TO SAVEPOINT a",
            "INSERT INTO s VALUES (3)",
            "SAVEPOINT b",
            "INSERT INTO s VALUES (4)",
            "RELEASE SAVEPOINT b",
            "COMMIT",
            "INSERT INTO s VALUES (5)",
        ] {
            conn.query_drop(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let st = daemon.wait_caught_up(&db).await;
        assert_eq!(
            st.state,
            dbtrail_core::api::SourceState::Streaming,
            "{st:#?}"
        );
        let table = format!("{}.s", db.db_name());
        assert!(
            st.tainted_tables.iter().all(|t| t.table != table),
            "{st:#?}"
        );
        let ev = daemon
            .client()
            .events(&daemon.source, &[("table", table)])
            .await
            .expect("events");
        let rows: Vec<_> = ev
            .events
            .iter()
            .map(|e| e.after.as_ref().expect("after")[0].clone())
            .collect();
        assert_eq!(rows, [json!(1), json!(3), json!(4), json!(5)], "{server:?}");
        let txns: std::collections::BTreeSet<_> =
            ev.events.iter().take(3).map(|e| e.gtid.clone()).collect();
        assert_eq!(txns.len(), 1, "one transaction: {ev:#?}");
    }
}

/// `limit` pages by log order across tables, not table by table.
#[tokio::test(flavor = "multi_thread")]
async fn events_limit_pages_in_log_order_across_tables() {
    let Some(db) = dbtrail_testkit::require(Server::MysqlGtid).await else {
        return;
    };
    let daemon = Daemon::start(Server::MysqlGtid, "");
    daemon.wait_streaming().await;
    db.exec("CREATE TABLE a (id INT PRIMARY KEY)").await;
    db.exec("CREATE TABLE b (id INT PRIMARY KEY)").await;
    db.exec("INSERT INTO a VALUES (1)").await;
    for i in 1..=3 {
        db.exec(&format!("INSERT INTO b VALUES ({i})")).await;
    }
    for i in 2..=4 {
        db.exec(&format!("INSERT INTO a VALUES ({i})")).await;
    }
    daemon.wait_caught_up(&db).await;
    let all = daemon
        .client()
        .events(&daemon.source, &[("limit", "100000".into())])
        .await
        .expect("events");
    let mine: Vec<_> = all
        .events
        .iter()
        .filter(|e| e.table.starts_with(db.db_name()))
        .map(|e| e.table.rsplit('.').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(mine, ["a", "b", "b", "b", "a", "a", "a"]);
    let first = all
        .events
        .iter()
        .position(|e| e.table.starts_with(db.db_name()))
        .expect("mine");
    let since = all.events[first].commit_time.clone();
    let page = daemon
        .client()
        .events(&daemon.source, &[("limit", "3".into()), ("since", since)])
        .await
        .expect("page");
    assert!(page.truncated);
    let ids: Vec<u64> = page.events.iter().map(|e| e.event_id).collect();
    let since_us = all.events[first].commit_us;
    let want: Vec<u64> = all
        .events
        .iter()
        .filter(|e| e.commit_us >= since_us)
        .take(3)
        .map(|e| e.event_id)
        .collect();
    assert_eq!(ids, want, "the first three events in log order");
}

async fn table_rows(db: &dbtrail_testkit::TestDb, table: &str) -> Vec<Vec<mysql_async::Value>> {
    let mut conn = db.conn().await;
    conn.query_drop("SET character_set_results = binary")
        .await
        .expect("binary");
    let rows: Vec<mysql_async::Row> = conn
        .query(format!("SELECT * FROM `{table}` ORDER BY 1, 2"))
        .await
        .expect("select");
    rows.into_iter().map(|r| r.unwrap()).collect()
}

/// Undo: the reverse SQL of one transaction, applied to the server, restores the tables to
/// what they were before it; later changes to the same rows are refused unless forced.
#[tokio::test(flavor = "multi_thread")]
async fn undo_restores_the_rows_a_transaction_changed() {
    let Some(db) = dbtrail_testkit::require(Server::MysqlGtid).await else {
        return;
    };
    let daemon = Daemon::start(Server::MysqlGtid, "");
    daemon.wait_streaming().await;
    db.exec(
        "CREATE TABLE k (id INT PRIMARY KEY, v VARCHAR(20), f FLOAT, j JSON, g INT AS (id * 2))",
    )
    .await;
    db.exec("CREATE TABLE nk (a INT, b VARBINARY(4))").await;
    db.exec("INSERT INTO k (id, v, f, j) VALUES (1, 'one', 0.1, '{\"a\": 1}'), (2, 'two', NULL, NULL), (3, 'three', 3.5, '[]')").await;
    db.exec("INSERT INTO nk VALUES (1, X'00'), (1, X'00'), (2, NULL)")
        .await;
    let before_k = table_rows(&db, "k").await;
    let before_nk = table_rows(&db, "nk").await;
    let mut conn = db.conn().await;
    for sql in [
        "BEGIN",
        "INSERT INTO k (id, v) VALUES (4, 'four')",
        "UPDATE k SET id = 10, v = 'ten' WHERE id = 1",
        "UPDATE k SET j = '{\"b\": [2]}' WHERE id = 3",
        "DELETE FROM k WHERE id = 2",
        "DELETE FROM nk WHERE a = 1 LIMIT 1",
        "UPDATE nk SET b = X'FF' WHERE a = 2",
        "INSERT INTO nk VALUES (3, X'0102')",
        "COMMIT",
    ] {
        conn.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let gtid: String = conn
        .query_first("SELECT @@gtid_executed")
        .await
        .expect("q")
        .expect("v");
    let uuid = gtid.split(':').next().expect("uuid").to_string();
    let last: String = gtid.rsplit(['-', ':']).next().expect("n").to_string();
    let txn = format!("{uuid}:{last}");
    daemon.wait_caught_up(&db).await;
    let undo = daemon
        .client()
        .undo(&daemon.source, &txn, false)
        .await
        .expect("undo");
    assert_eq!(undo.statements, 7, "{}", undo.sql);
    assert!(undo.conflicts.is_empty());
    conn.query_drop(undo.sql.clone()).await.expect("apply undo");
    assert_eq!(table_rows(&db, "k").await, before_k, "{}", undo.sql);
    assert_eq!(table_rows(&db, "nk").await, before_nk, "{}", undo.sql);
    // The undo itself changed rows 1, 4 (id 10) ...: undoing the original again conflicts.
    daemon.wait_caught_up(&db).await;
    let err = daemon
        .client()
        .undo(&daemon.source, &txn, false)
        .await
        .expect_err("conflict");
    assert!(
        format!("{err:#}").contains("later transactions changed rows"),
        "{err:#}"
    );
    let forced = daemon
        .client()
        .undo(&daemon.source, &txn, true)
        .await
        .expect("forced");
    assert!(!forced.conflicts.is_empty());
}

/// `dbtraild --check` reports each source's readiness and exits non-zero when one is not.
#[tokio::test(flavor = "multi_thread")]
async fn check_mode_reports_readiness() {
    let Some(_db) = dbtrail_testkit::require(Server::MariaDb).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = common::write_config(dir.path(), Server::MariaDb, "");
    let run = |cfg: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dbtraild"))
            .arg("--check")
            .arg("--config")
            .arg(cfg)
            .env("DBTRAIL_PASSWORD_SRC", common::PASSWORD)
            .output()
            .expect("run dbtraild --check")
    };
    let out = run(&cfg);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("src: ready (MariaDB"), "{text}");
    // The same source with the wrong password is not ready, and says why.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dbtraild"))
        .arg("--check")
        .arg("--config")
        .arg(&cfg)
        .env("DBTRAIL_PASSWORD_SRC", "wrong")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("src: NOT READY") && text.contains("access denied"),
        "{text}"
    );
}
