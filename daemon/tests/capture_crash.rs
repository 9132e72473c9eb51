//! Crash safety: kill -9 the daemon repeatedly while a workload commits; after restarts the
//! log holds every transaction exactly once with the right rows.
mod common;

use common::Daemon;
use dbtrail_testkit::Server;
use mysql_async::prelude::Queryable;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const TXNS: u64 = 400;

async fn crash_loop(server: Server) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    let mut daemon = Daemon::start(server, "");
    daemon.wait_streaming().await;
    db.exec("CREATE TABLE t1 (id BIGINT PRIMARY KEY, txn BIGINT NOT NULL, payload VARCHAR(200))")
        .await;
    db.exec("CREATE TABLE t2 (id INT PRIMARY KEY, n BIGINT NOT NULL)")
        .await;
    db.exec("INSERT INTO t2 VALUES (1, 0)").await;
    let mut conn = db.conn().await;
    let writer = tokio::spawn(async move {
        for t in 0..TXNS {
            let mut tx = conn
                .start_transaction(mysql_async::TxOpts::default())
                .await
                .expect("begin");
            for k in 0..3 {
                tx.query_drop(format!(
                    "INSERT INTO t1 VALUES ({}, {t}, REPEAT('x', {}))",
                    t * 3 + k,
                    (t % 50) + k
                ))
                .await
                .expect("insert");
            }
            tx.query_drop("UPDATE t2 SET n = n + 1 WHERE id = 1")
                .await
                .expect("update");
            tx.commit().await.expect("commit");
            if t % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        }
    });
    for round in 0..5u64 {
        tokio::time::sleep(Duration::from_millis(150 + round * 97)).await;
        daemon.kill9();
        tokio::time::sleep(Duration::from_millis(100)).await;
        daemon.spawn();
        daemon.wait_streaming().await;
    }
    writer.await.expect("workload");
    daemon.wait_caught_up(&db).await;
    let t1 = daemon.table_events(&db, "t1").await;
    let t2 = daemon.table_events(&db, "t2").await;
    assert!(!t1.truncated && !t2.truncated);
    // Every inserted id exactly once, with its transaction number.
    let mut ids = BTreeMap::new();
    for e in &t1.events {
        assert_eq!(e.kind, "insert");
        let after = e.after.as_ref().expect("after");
        let id = after[0].as_u64().expect("id");
        assert!(
            ids.insert(id, after[1].as_u64().expect("txn")).is_none(),
            "id {id} logged twice"
        );
    }
    assert_eq!(ids.len() as u64, TXNS * 3, "every insert logged once");
    assert!(ids.iter().all(|(id, txn)| id / 3 == *txn));
    // The counter's updates: 1 insert + TXNS updates, values consecutive, none twice.
    let updates: Vec<u64> = t2
        .events
        .iter()
        .filter(|e| e.kind == "update")
        .map(|e| e.after.as_ref().expect("after")[1].as_u64().expect("n"))
        .collect();
    assert_eq!(
        updates,
        (1..=TXNS).collect::<Vec<_>>(),
        "counter updates in order, once each"
    );
    // Each transaction's events share one GTID, and no GTID repeats across transactions.
    if server.has_gtids() {
        let mut per_gtid: BTreeMap<String, usize> = BTreeMap::new();
        for e in t1
            .events
            .iter()
            .chain(t2.events.iter().filter(|e| e.kind == "update"))
        {
            *per_gtid.entry(e.gtid.clone().expect("gtid")).or_default() += 1;
        }
        assert_eq!(per_gtid.len() as u64, TXNS);
        assert!(
            per_gtid.values().all(|n| *n == 4),
            "4 row events per transaction"
        );
        let all: BTreeSet<_> = per_gtid.keys().cloned().collect();
        assert_eq!(all.len() as u64, TXNS);
    }
    // The server agrees with what the log says.
    let count = db
        .query_value("SELECT COUNT(*) FROM t1")
        .await
        .expect("count");
    assert_eq!(count, (TXNS * 3).to_string());
    assert!(daemon.stop().is_some(), "clean SIGTERM exit");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_mysql_gtid() {
    crash_loop(Server::MysqlGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_mysql_nogtid() {
    crash_loop(Server::MysqlNoGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_mariadb() {
    crash_loop(Server::MariaDb).await;
}
