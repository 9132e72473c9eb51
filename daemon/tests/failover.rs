//! Failover against real GTID replication pairs (`scripts/testdb` servers mysql-primary and
//! mysql-replica, mariadb-primary and mariadb-replica; docs/correctness.md C16).
//!
//! The source lists both servers (`urls`). Capture reads the primary under concurrent
//! writers; then a switchover: the primary is made read-only, the replica catches up, its
//! replication stops and it is made writable, and capture's replication connection to the
//! old primary is killed. Capture finds no primary while both are read-only (and says so),
//! then resumes on the new one by GTID set; writers go on there. Checked: every committed
//! transaction is in the log exactly once (a ledger row per transaction, one per GTID, the
//! old primary's GTIDs before and the new one's after), the captured set equals the new
//! primary's `gtid_executed`, and restores to points before, across and after the failover
//! equal the rows the servers themselves held at those points.
//!
//! A second test fails over lossily (the replica stopped replicating while the primary
//! committed): capture refuses the new primary and names the missing GTID set.
//!
//! Both tests hold the pair's lock and rebuild the pair first (`require_pair`), so they
//! re-run from any state a failed run left.
mod common;

use common::writers::{Point, Writers, point};
use common::{Daemon, hex_rows, myloader, next_second, restore, server_now_us, utc_second};
use dbtrail_core::GtidSet;
use dbtrail_core::api::{PitrRequest, SourceState, SourceStatus};
use dbtrail_core::gtid::{MariadbGtidSet, MysqlGtidSet};
use dbtrail_testkit::{Pair, Server, TestDb};
use mysql_async::prelude::Queryable;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const TABLES: [&str; 2] = ["k", "ledger"];

/// One writer transaction of phase `phase`: its ledger row, and a change to `k`.
fn txn(phase: u64, w: u64, n: u64, next: &mut dyn FnMut(u64) -> u64) -> Vec<String> {
    let k = 1 + next(40);
    vec![
        format!("INSERT INTO ledger VALUES ({phase}, {w}, {n})"),
        match next(4) {
            0 | 1 => format!(
                "INSERT INTO k VALUES ({k}, {}, 'w{w}-{n}') ON DUPLICATE KEY UPDATE v = v + 1, \
                 s = 'p{phase}w{w}'",
                next(1000)
            ),
            2 => format!("UPDATE k SET v = v * 2 + {w}, s = NULL WHERE id = {k}"),
            _ => format!("DELETE FROM k WHERE id = {k}"),
        },
    ]
}

fn txn_old_primary(w: u64, n: u64, next: &mut dyn FnMut(u64) -> u64) -> Vec<String> {
    txn(0, w, n, next)
}

fn txn_new_primary(w: u64, n: u64, next: &mut dyn FnMut(u64) -> u64) -> Vec<String> {
    txn(1, w, n, next)
}

/// The connection's server as the daemon's status names it: `@@server_uuid` on MySQL,
/// `@@server_id` on MariaDB.
async fn uuid_of(conn: &mut mysql_async::Conn) -> String {
    let version: Option<String> = conn.query_first("SELECT VERSION()").await.expect("version");
    let sql = if version.unwrap_or_default().contains("MariaDB") {
        "SELECT CAST(@@server_id AS CHAR)"
    } else {
        "SELECT @@server_uuid"
    };
    let u: Option<String> = conn.query_first(sql).await.expect("uuid");
    u.expect("uuid")
}

/// The server a GTID names: the UUID of `uuid:n` (MySQL), the server-id of `d-s-n` (MariaDB).
fn origin(gtid: &str) -> &str {
    match gtid.split('-').collect::<Vec<_>>()[..] {
        [_, s, _] if gtid.bytes().all(|b| b.is_ascii_digit() || b == b'-') => s,
        _ => gtid.split(':').next().unwrap_or(gtid),
    }
}

/// Ends the replication connections (`Binlog Dump GTID`) of the daemon's user on `conn`'s
/// server, as a switchover does to the old primary's replicas.
async fn kill_dump_threads(conn: &mut mysql_async::Conn) {
    let ids: Vec<u64> = conn
        .query(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'dbtrail' \
             AND COMMAND LIKE 'Binlog Dump%'",
        )
        .await
        .expect("processlist");
    assert!(!ids.is_empty(), "capture has a replication connection");
    for id in ids {
        // It may end by itself in between.
        let _ = conn.query_drop(format!("KILL {id}")).await;
    }
}

/// A point with no writer running: the rows of [`TABLES`] now, and the next second.
async fn quiet_point(db: &TestDb, conn: &mut mysql_async::Conn) -> Point {
    let now = server_now_us(conn).await;
    let mut rows = Vec::new();
    for t in TABLES {
        rows.push(hex_rows(conn, db.db_name(), t).await);
    }
    next_second(conn, now).await;
    Point {
        at: utc_second(now),
        us: now,
        rows,
    }
}

/// Waits until the log holds everything the server behind `db` has written, read from that
/// server (its uuid in the position, and its binlog file:pos reached).
async fn wait_caught_up_on(daemon: &Daemon, db: &TestDb, uuid: &str) -> SourceStatus {
    let (file, pos) = db.binlog_position().await;
    daemon
        .wait_status(
            &format!("capture to reach {file}:{pos} of {uuid}"),
            Duration::from_secs(60),
            |s| {
                s.server_uuid == uuid
                    && s.state == SourceState::Streaming
                    && (s.binlog_file.as_str(), s.binlog_pos) >= (file.as_str(), pos)
            },
        )
        .await
}

async fn switchover(primary: Server) {
    let Some(pair) = dbtrail_testkit::require_pair(primary).await else {
        return;
    };
    let db = &pair.primary;
    let rdb = pair.replica_db();
    let mut pconn = db.conn().await;
    let mut proot = db.conn().await;
    db.exec(
        "CREATE TABLE k (id INT PRIMARY KEY, v BIGINT NOT NULL, s VARCHAR(30)); \
         CREATE TABLE ledger (phase INT, w INT, n INT, PRIMARY KEY (phase, w, n))",
    )
    .await;
    let seed: Vec<String> = (1..=40).map(|i| format!("({i}, {i}, 'seed')")).collect();
    db.exec(&format!("INSERT INTO k VALUES {}", seed.join(",")))
        .await;
    let puuid = uuid_of(&mut pconn).await;
    let daemon = Daemon::start_urls(
        &[primary, pair.replica],
        &format!("backup_databases = [\"{}\"]\n", db.db_name()),
    );
    // The status names the server once the new log has its first position.
    let s = daemon
        .wait_status("streaming with a position", Duration::from_secs(60), |s| {
            s.state == SourceState::Streaming && !s.server_uuid.is_empty()
        })
        .await;
    assert_eq!(s.server_uuid, puuid, "capture reads the writable server");
    daemon.backup().await;

    // Before: writers on the primary.
    let mut points = Vec::new();
    let w = Writers::start(db, 4, txn_old_primary);
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        points.push(("before", point(db, &mut pconn, &w, &TABLES).await));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let commits_old = w.stop().await;
    assert!(
        commits_old > 20,
        "too few commits on the primary ({commits_old})"
    );

    // The switchover. Across: what the old primary held last, a second inside the failover.
    pair.fence_primary().await;
    points.push(("across", quiet_point(db, &mut pconn).await));
    pair.wait_replica_caught_up().await;
    kill_dump_threads(&mut proot).await;
    // Both read-only: no primary, and the status says why.
    daemon
        .wait_status("no primary", Duration::from_secs(30), |s| {
            s.state == SourceState::Reconnecting
                && s.error
                    .as_deref()
                    .is_some_and(|e| e.contains("no listed server is the primary"))
        })
        .await;
    let mut rroot = pair.replica_conn().await;
    let ruuid = uuid_of(&mut rroot).await;
    pair.promote_replica().await;

    // After: writers on the new primary; capture follows by GTID set.
    let mut rconn = rdb.conn().await;
    let w = Writers::start(&rdb, 4, txn_new_primary);
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        points.push(("after", point(&rdb, &mut rconn, &w, &TABLES).await));
    }
    let commits_new = w.stop().await;
    assert!(
        commits_new > 20,
        "too few commits on the new primary ({commits_new})"
    );
    let status = wait_caught_up_on(&daemon, &rdb, &ruuid).await;
    eprintln!(
        "failover: {commits_old} transactions on {puuid}, {commits_new} on {ruuid}; captured {}",
        status.captured_gtid_set
    );

    // Exactly once: one ledger insert per committed transaction, each its own GTID, from the
    // server that ran it.
    let ledger = daemon.table_events(db, "ledger").await;
    assert!(!ledger.truncated);
    let mut by_gtid: BTreeMap<String, usize> = BTreeMap::new();
    let mut keys = BTreeSet::new();
    for e in &ledger.events {
        assert_eq!(e.kind, "insert", "{e:?}");
        let after = e.after.as_ref().expect("after");
        let phase = after[0].as_u64().expect("phase");
        let key = (phase, after[1].as_u64(), after[2].as_u64());
        assert!(keys.insert(key), "ledger row {key:?} logged twice");
        let gtid = e.gtid.clone().expect("gtid");
        let from = if phase == 0 { &puuid } else { &ruuid };
        assert_eq!(origin(&gtid), from, "phase {phase} from {gtid}");
        *by_gtid.entry(gtid).or_default() += 1;
    }
    assert_eq!(
        ledger.events.len() as u64,
        commits_old + commits_new,
        "every committed transaction logged once\n{}",
        daemon.log()
    );
    assert!(by_gtid.values().all(|n| *n == 1), "one ledger row per GTID");
    let rows = rdb.query_value("SELECT COUNT(*) FROM ledger").await;
    assert_eq!(rows, Some((commits_old + commits_new).to_string()));
    // The captured set is the new primary's executed set: nothing skipped, nothing extra.
    let captured: GtidSet = status.captured_gtid_set.parse().expect("captured set");
    // MariaDB: gtid_binlog_state keeps the last GTID of every server of a domain, as the
    // captured set does (gtid_binlog_pos keeps only the domain's last).
    let executed = if pair.is_mariadb() {
        rdb.query_value("SELECT @@GLOBAL.gtid_binlog_state")
            .await
            .unwrap_or_default()
    } else {
        rdb.gtid_executed().await
    };
    let executed: GtidSet = executed.parse().expect("executed set");
    assert_eq!(
        captured, executed,
        "captured {captured} vs executed {executed}"
    );
    assert!(
        daemon.log().contains("capture moves to another server"),
        "the move is logged"
    );

    // Restores before, across and after the failover equal what the servers held.
    for (i, (when, p)) in points.iter().enumerate() {
        let out = tempfile::tempdir().expect("tmp");
        let req = PitrRequest {
            target_time: Some(p.at.clone()),
            ..PitrRequest::default()
        };
        restore(&daemon, req, out.path())
            .await
            .unwrap_or_else(|e| panic!("point {i} ({when}, {}): {e}\n{}", p.at, daemon.log()));
        let into = format!("{}_r{i}", db.db_name());
        tokio::task::block_in_place(|| myloader(&rdb, out.path(), &into));
        for (t, want) in TABLES.iter().zip(&p.rows) {
            let got = hex_rows(&mut rconn, &into, t).await;
            assert!(
                &got == want,
                "point {i} ({when}, {}): {t} differs: {} rows restored, {} at the source",
                p.at,
                got.len(),
                want.len()
            );
        }
    }
    let mut daemon = daemon;
    assert!(daemon.stop().is_some(), "clean SIGTERM exit");
    // Leave the pair as `scripts/testdb up` made it.
    pair.reset().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn switchover_mysql_no_loss_no_duplicates_and_pitr_across() {
    switchover(Server::MysqlPrimary).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn switchover_mariadb_no_loss_no_duplicates_and_pitr_across() {
    switchover(Server::MariadbPrimary).await;
}

/// What the daemon's refusal names as missing on the replica: the primary's set minus the
/// replica's (MySQL), or the sequence numbers of domain 0 the replica lacks (MariaDB).
async fn missing_on_replica(pair: &Pair) -> String {
    let p = pair.primary.gtid_executed().await;
    let r = pair.replica_db().gtid_executed().await;
    if pair.is_mariadb() {
        let (p, r): (MariadbGtidSet, MariadbGtidSet) =
            (p.parse().expect("set"), r.parse().expect("set"));
        let (have, last) = (r.domain_seq(0).unwrap_or(0), p.domain_seq(0).expect("seq"));
        assert!(have < last, "the replica is behind");
        format!("domain 0: sequence {}-{last}", have + 1)
    } else {
        let (p, r): (MysqlGtidSet, MysqlGtidSet) =
            (p.parse().expect("set"), r.parse().expect("set"));
        let missing = p.subtract(&r);
        assert!(!missing.is_empty(), "the replica is behind");
        missing.to_compact_string()
    }
}

async fn lossy_failover(primary: Server) {
    let Some(pair) = dbtrail_testkit::require_pair(primary).await else {
        return;
    };
    let db = &pair.primary;
    let mut proot = db.conn().await;
    let mut rroot = pair.replica_conn().await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    pair.wait_replica_caught_up().await;
    let puuid = uuid_of(&mut proot).await;
    let daemon = Daemon::start_urls(&[primary, pair.replica], "");
    daemon.wait_streaming().await;
    // The replica falls behind; the primary commits what it will never get.
    pair.stop_replication().await;
    for i in 0..5 {
        db.exec(&format!("INSERT INTO t VALUES ({i})")).await;
    }
    let before = wait_caught_up_on(&daemon, db, &puuid).await;
    let missing = missing_on_replica(&pair).await;
    // The lossy failover.
    pair.fence_primary().await;
    pair.promote_replica().await;
    kill_dump_threads(&mut proot).await;
    let s = daemon
        .wait_status("the refusal", Duration::from_secs(30), |s| {
            s.state == SourceState::Failed
        })
        .await;
    let err = s.error.clone().unwrap_or_default();
    eprintln!("lossy failover refused: {err}");
    assert!(
        err.contains(&missing) && err.contains("lacks transactions"),
        "the error names the missing set {missing}: {err}"
    );
    assert!(
        err.contains(&format!("({})", uuid_of(&mut rroot).await)),
        "{err}"
    );
    assert_eq!(s.server_uuid, puuid, "nothing was read from the replica");
    assert_eq!(s.transactions_total, before.transactions_total);
    let mut daemon = daemon;
    daemon.stop();
    pair.reset().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lossy_failover_mysql_is_refused_naming_the_missing_set() {
    lossy_failover(Server::MysqlPrimary).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lossy_failover_mariadb_is_refused_naming_the_missing_set() {
    lossy_failover(Server::MariadbPrimary).await;
}
