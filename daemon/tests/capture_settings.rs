//! Destructive tests on the scratch server (GLOBAL settings, purged binlogs), serialized by
//! the scratch lock: settings that make exact capture impossible are refused with the fix;
//! compressed transactions yield every row; purged binlogs become a gap or a refusal.
mod common;

use common::Daemon;
use dbtrail_core::api::SourceState;
use dbtrail_testkit::{Server, reset_scratch_settings, scratch_lock};
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// The scratch server, locked for this test, with its settings reset (a test that failed
/// earlier may have left them changed). `None` when the bed is absent (locally only).
async fn scratch() -> Option<(dbtrail_testkit::TestDb, dbtrail_testkit::ScratchGuard)> {
    let db = dbtrail_testkit::require(Server::scratch()).await?;
    let lock = tokio::task::spawn_blocking(scratch_lock)
        .await
        .expect("lock");
    reset_scratch_settings(&mut db.conn().await).await;
    Some((db, lock))
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_settings_are_refused_with_the_fix() {
    let Some((db, _lock)) = scratch().await else {
        return;
    };
    let mut conn = db.conn().await;
    let cases = [
        (
            "binlog_format",
            "STATEMENT",
            "SET PERSIST binlog_format='ROW'",
        ),
        ("binlog_format", "MIXED", "SET PERSIST binlog_format='ROW'"),
        (
            "binlog_row_image",
            "MINIMAL",
            "SET GLOBAL binlog_row_image='FULL'",
        ),
        (
            "binlog_row_image",
            "NOBLOB",
            "SET GLOBAL binlog_row_image='FULL'",
        ),
        (
            "binlog_row_value_options",
            "PARTIAL_JSON",
            "SET PERSIST binlog_row_value_options=''",
        ),
    ];
    let mut failures = Vec::new();
    for (setting, value, fix) in cases {
        conn.query_drop(format!("SET GLOBAL {setting} = '{value}'"))
            .await
            .expect("set global");
        let daemon = Daemon::start(Server::scratch(), "");
        let st = daemon
            .wait_status(
                &format!("refusal of {setting}={value}"),
                Duration::from_secs(30),
                |s| s.state == SourceState::Failed || s.state == SourceState::Streaming,
            )
            .await;
        let err = st.error.clone().unwrap_or_default();
        if st.state != SourceState::Failed
            || !err.contains(setting)
            || !err.contains(value)
            || !err.contains(fix)
        {
            failures.push(format!(
                "{setting}={value}: state {:?}, error {err:?}",
                st.state
            ));
        }
        reset_scratch_settings(&mut conn).await;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // With the settings restored, the same configuration streams.
    let daemon = Daemon::start(Server::scratch(), "");
    daemon.wait_streaming().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn compressed_transactions_yield_every_row() {
    let Some((db, _lock)) = scratch().await else {
        return;
    };
    let mut root = db.conn().await;
    root.query_drop("SET GLOBAL binlog_transaction_compression = ON")
        .await
        .expect("compression on");
    let daemon = Daemon::start(Server::scratch(), "");
    daemon.wait_streaming().await;
    let mut conn = db.conn().await; // a new session: compression applies
    conn.query_drop("CREATE TABLE c (id INT PRIMARY KEY, v VARCHAR(100), j JSON)")
        .await
        .expect("create");
    conn.query_drop("SET SESSION cte_max_recursion_depth = 10000")
        .await
        .expect("cte depth");
    conn.query_drop(
        "INSERT INTO c WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 5000) \
         SELECT n, REPEAT(CHAR(65 + n % 26), n % 100), JSON_OBJECT('n', n) FROM s",
    )
    .await
    .expect("bulk insert");
    conn.query_drop("UPDATE c SET v = 'u' WHERE id % 10 = 0")
        .await
        .expect("update");
    conn.query_drop("DELETE FROM c WHERE id > 4990")
        .await
        .expect("delete");
    let compressed: Option<String> = conn
        .query_first(
            "SELECT COUNT(*) FROM performance_schema.binary_log_transaction_compression_stats \
             WHERE compression_type = 'ZSTD' AND transaction_counter > 0",
        )
        .await
        .expect("stats");
    reset_scratch_settings(&mut root).await;
    assert_ne!(
        compressed.as_deref(),
        Some("0"),
        "the server compressed transactions"
    );
    daemon.wait_caught_up(&db).await;
    let ev = daemon.table_events(&db, "c").await;
    let count = |k: &str| ev.events.iter().filter(|e| e.kind == k).count();
    assert_eq!(
        (count("insert"), count("update"), count("delete")),
        (5000, 500, 10)
    );
    let e = ev
        .events
        .iter()
        .find(|e| e.kind == "insert" && e.after.as_ref().is_some_and(|a| a[0] == 4242))
        .expect("row 4242");
    let after = e.after.as_ref().expect("after");
    let ch = char::from(b'A' + (4242 % 26) as u8);
    assert_eq!(after[1], serde_json::json!(ch.to_string().repeat(42)));
    assert_eq!(after[2], serde_json::json!("{\"n\": 4242}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn purged_binlogs_are_a_gap_or_a_refusal() {
    let Some((db, _lock)) = scratch().await else {
        return;
    };
    let mut daemon = Daemon::start(Server::scratch(), "");
    daemon.wait_streaming().await;
    db.exec("CREATE TABLE g (id INT PRIMARY KEY)").await;
    db.exec("INSERT INTO g VALUES (1)").await;
    let st = daemon.wait_caught_up(&db).await;
    assert_eq!(daemon.stop(), Some(0), "clean stop");
    let captured: dbtrail_core::GtidSet = st.captured_gtid_set.parse().expect("set");
    // Written while the daemon is down, then purged.
    for i in 2..=6 {
        db.exec(&format!("INSERT INTO g VALUES ({i})")).await;
    }
    let executed: dbtrail_core::GtidSet = db.gtid_executed().await.parse().expect("set");
    let mut conn = db.conn().await;
    conn.query_drop("FLUSH BINARY LOGS").await.expect("flush");
    let (file, _) = db.binlog_position().await;
    conn.query_drop(format!("PURGE BINARY LOGS TO '{file}'"))
        .await
        .expect("purge");
    let (dbtrail_core::GtidSet::Mysql(exe), dbtrail_core::GtidSet::Mysql(cap)) =
        (&executed, &captured)
    else {
        panic!("MySQL sets expected");
    };
    let missing = exe.subtract(cap);
    assert!(!missing.is_empty());
    let missing_text = missing.to_compact_string();
    // Refusal first.
    let cfg = std::fs::read_to_string(&daemon.config).expect("config");
    std::fs::write(&daemon.config, format!("{cfg}no_gap_fill = true\n")).expect("config");
    daemon.spawn();
    let st = daemon
        .wait_status("refusal", Duration::from_secs(30), |s| {
            s.state == SourceState::Failed
        })
        .await;
    assert!(
        st.error.as_deref().unwrap_or("").contains(&missing_text),
        "the refusal names the missing GTIDs {missing_text}: {:?}",
        st.error
    );
    daemon.kill9();
    // Then with gap fill: a gap naming the same transactions, and capture continues.
    std::fs::write(&daemon.config, cfg).expect("config");
    daemon.spawn();
    daemon.wait_streaming().await;
    db.exec("INSERT INTO g VALUES (7)").await;
    let st = daemon.wait_caught_up(&db).await;
    assert_eq!(st.gaps.len(), 1, "{st:#?}");
    assert_eq!(st.gaps[0].missing, missing_text);
    let ev = daemon.table_events(&db, "g").await;
    let ids: Vec<_> = ev
        .events
        .iter()
        .map(|e| e.after.as_ref().expect("after")[0].clone())
        .collect();
    assert_eq!(ids, [serde_json::json!(1), serde_json::json!(7)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn minimal_row_metadata_decodes_with_information_schema() {
    let Some((db, _lock)) = scratch().await else {
        return;
    };
    let mut root = db.conn().await;
    root.query_drop("SET GLOBAL binlog_row_metadata = 'MINIMAL'")
        .await
        .expect("minimal");
    let daemon = Daemon::start(Server::scratch(), "");
    daemon.wait_streaming().await;
    let mut conn = db.conn().await;
    conn.query_drop(
        "CREATE TABLE mm (a INT UNSIGNED, id BIGINT NOT NULL, e ENUM('x','y''z'), s SET('p','q'), \
         PRIMARY KEY (id, a))",
    )
    .await
    .expect("create");
    conn.query_drop("INSERT INTO mm VALUES (4294967295, -5, 'y''z', 'p,q')")
        .await
        .expect("insert");
    reset_scratch_settings(&mut root).await;
    daemon.wait_caught_up(&db).await;
    let ev = daemon.table_events(&db, "mm").await;
    assert_eq!(ev.events.len(), 1, "{ev:#?}");
    assert_eq!(ev.events[0].columns, ["a", "id", "e", "s"]);
    assert_eq!(
        ev.events[0].after,
        Some(vec![
            serde_json::json!(4294967295u64),
            serde_json::json!(-5),
            serde_json::json!("y'z"),
            serde_json::json!("p,q")
        ])
    );
}

/// The source restarts and rotates its binlog while dbtraild runs: capture reconnects with
/// backoff and resumes exactly where it stopped.
#[tokio::test(flavor = "multi_thread")]
async fn source_restart_and_rotation_resume_exactly() {
    let Some((db, _lock)) = scratch().await else {
        return;
    };
    let daemon = Daemon::start(Server::scratch(), "");
    daemon.wait_streaming().await;
    db.exec("CREATE TABLE r (id INT PRIMARY KEY)").await;
    db.exec("INSERT INTO r VALUES (1), (2)").await;
    db.exec("FLUSH BINARY LOGS").await;
    db.exec("INSERT INTO r VALUES (3)").await;
    daemon.wait_caught_up(&db).await;
    let testdb = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/testdb");
    let restart = tokio::task::spawn_blocking(move || {
        let down = std::process::Command::new(testdb)
            .args(["down", "mysql-scratch"])
            .status();
        let up = std::process::Command::new(testdb)
            .args(["up", "mysql-scratch"])
            .status();
        (down.map(|s| s.success()), up.map(|s| s.success()))
    })
    .await
    .expect("restart");
    assert!(
        matches!(restart, (Ok(true), Ok(true))),
        "restart: {restart:?}"
    );
    let st = daemon
        .wait_status("reconnect", Duration::from_secs(60), |s| {
            s.state == SourceState::Streaming && s.error.is_none()
        })
        .await;
    assert_eq!(st.state, SourceState::Streaming);
    // The test's own connection died with the server: the first use reconnects.
    let _ = db.try_exec("SELECT 1").await;
    db.exec("INSERT INTO r VALUES (4)").await;
    db.exec("FLUSH BINARY LOGS").await;
    db.exec("DELETE FROM r WHERE id = 1").await;
    daemon.wait_caught_up(&db).await;
    let ev = daemon.table_events(&db, "r").await;
    let got: Vec<(String, serde_json::Value)> = ev
        .events
        .iter()
        .map(|e| {
            let img = e.after.as_ref().or(e.before.as_ref()).expect("image");
            (e.kind.clone(), img[0].clone())
        })
        .collect();
    let want: Vec<(String, serde_json::Value)> = [
        ("insert", 1),
        ("insert", 2),
        ("insert", 3),
        ("insert", 4),
        ("delete", 1),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
    .collect();
    assert_eq!(
        got, want,
        "every change once, in order, across the restart and rotations"
    );
}
