//! Baselines where the global lock is forbidden (RDS, Aurora, Cloud SQL), checked by an
//! oracle.
//!
//! The daemon connects as a user with exactly the grants a managed server's master user can
//! give (no RELOAD, SUPER or BACKUP_ADMIN; and, for `none`, not even LOCK TABLES). Three
//! writers commit interleaved transactions to a keyed table (JSON, an auto-updated
//! TIMESTAMP(6), a secondary key) and a key-less one while the
//! baseline is taken (`baseline_lock` = `tables`, `none`, or `auto`, which on MariaDB is
//! its lock-free snapshot position), then go on; at three later points the source's own
//! `HEX()` of every row is recorded ([`common::hex_rows`]). Each point is restored by time,
//! imported with myloader and compared row for row.
mod common;

use common::writers::{Writers, point};
use common::{Daemon, PASSWORD, hex_rows, myloader, restore};
use dbtrail_core::api::PitrRequest;
use dbtrail_core::baseline::SnapshotMethod;
use dbtrail_testkit::{Server, TestDb};
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// The grants of an RDS master user that matter here (no RELOAD/SUPER/BACKUP_ADMIN).
const RDS_GRANTS: &str = "SELECT, PROCESS, LOCK TABLES, REPLICATION SLAVE, REPLICATION CLIENT, SHOW VIEW, TRIGGER, EVENT";
/// The same without LOCK TABLES.
const NOLOCK_GRANTS: &str =
    "SELECT, PROCESS, REPLICATION SLAVE, REPLICATION CLIENT, SHOW VIEW, TRIGGER, EVENT";

async fn create_user(db: &TestDb, user: &str, grants: &str) {
    let mut conn = db.conn().await;
    for sql in [
        format!("CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{PASSWORD}'"),
        format!("GRANT {grants} ON *.* TO '{user}'@'%'"),
    ] {
        conn.query_drop(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// One transaction of the three writers: 1-3 rows of `k` (ids 1..=300) and of `bag`.
fn txn(w: u64, n: u64, next: &mut dyn FnMut(u64) -> u64) -> Vec<String> {
    let mut sql = Vec::new();
    for _ in 0..1 + next(3) {
        let k = 1 + next(300);
        sql.push(match next(20) {
            0..=7 => format!(
                "INSERT INTO k (id, v, s, j) VALUES ({k}, {}, 'w{w}-{n}', \
                 JSON_OBJECT('w', {w}, 'n', {n})) \
                 ON DUPLICATE KEY UPDATE v = v + 1, s = 'd{w}-{n}'",
                next(1000)
            ),
            8..=13 => format!(
                "UPDATE k SET v = v * 2, s = 'u{w}-{n}', j = JSON_ARRAY({n}, 'u') WHERE id = {k}"
            ),
            14..=16 => format!("DELETE FROM k WHERE id = {k}"),
            17 | 18 => format!("INSERT INTO bag VALUES ({}, 'b{w}')", next(5)),
            _ => format!("DELETE FROM bag WHERE x = {} LIMIT 1", next(5)),
        });
    }
    sql
}

async fn lock_free(server: Server, user: &str, grants: &str, lock: &str, want: SnapshotMethod) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    create_user(&db, user, grants).await;
    let mut conn = db.conn().await;
    for sql in [
        "CREATE TABLE k (id INT PRIMARY KEY, v BIGINT NOT NULL, s VARCHAR(20), \
         j JSON, at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE \
         CURRENT_TIMESTAMP(6), KEY (v))",
        "CREATE TABLE bag (x INT, y VARCHAR(10))",
    ] {
        conn.query_drop(sql).await.expect("create");
    }
    let seed: Vec<String> = (1..=300)
        .map(|i| format!("({i}, {i}, 'seed', JSON_OBJECT('n', {i}))"))
        .collect();
    conn.query_drop(format!(
        "INSERT INTO k (id, v, s, j) VALUES {}",
        seed.join(",")
    ))
    .await
    .expect("seed k");
    conn.query_drop("INSERT INTO bag VALUES (1, 'a'), (1, 'a'), (2, 'b'), (3, NULL)")
        .await
        .expect("seed bag");
    let extra = format!(
        "backup_databases = [\"{}\"]\nbaseline_lock = \"{lock}\"\n",
        db.db_name()
    );
    let daemon = Daemon::start_as(server, user, &extra);
    daemon.wait_streaming().await;
    let w = Writers::start(&db, 3, txn);
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Taken while the writers commit.
    let b = daemon.backup().await;
    eprintln!(
        "{server} as {user}, baseline_lock = {lock}: {} ({}), position {}, upper {:?}, \
         skipped {:?}",
        b.method.name(),
        b.lock_mode,
        b.position,
        b.upper.as_ref().map(|u| u.to_string()),
        b.skipped
    );
    assert_eq!(b.method, want, "{server}: the method recorded");
    if want == SnapshotMethod::None {
        assert!(
            b.upper.is_some(),
            "{server}: a lock-free baseline has its upper bound"
        );
    }
    assert!(
        b.table(&dbtrail_core::TableRef::new(db.db_name(), "k"))
            .is_some(),
        "{server}: the keyed table is always in the baseline"
    );
    let mut points = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        points.push(point(&db, &mut conn, &w, &["k", "bag"]).await);
    }
    let commits = w.stop().await;
    assert!(commits > 30, "{server}: too few commits ({commits})");
    daemon.wait_caught_up(&db).await;
    // A key-less table changed while a lock-free snapshot started is imaged again.
    let bag = dbtrail_core::TableRef::new(db.db_name(), "bag");
    if b.table(&bag).is_none() {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let all = daemon
                .client()
                .backups(&daemon.source)
                .await
                .expect("backups");
            if all
                .baselines
                .iter()
                .any(|m| m.id > b.id && m.table(&bag).is_some())
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{server}: no image of {bag} after the lock-free baseline skipped it\n{}",
                daemon.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for (i, p) in points.iter().enumerate() {
        let out = tempfile::tempdir().expect("tmp");
        let req = PitrRequest {
            target_time: Some(p.at.clone()),
            ..PitrRequest::default()
        };
        restore(&daemon, req, out.path())
            .await
            .unwrap_or_else(|e| panic!("{server}: point {i} ({}): {e}\n{}", p.at, daemon.log()));
        let into = format!("{}_r{i}", db.db_name());
        tokio::task::block_in_place(|| myloader(&db, out.path(), &into));
        for (t, want) in ["k", "bag"].iter().zip(&p.rows) {
            let got = hex_rows(&mut conn, &into, t).await;
            assert!(
                &got == want,
                "{server}: point {i} ({}): {t} differs: {} rows restored, {} at the source",
                p.at,
                got.len(),
                want.len()
            );
        }
        conn.query_drop(format!("DROP DATABASE `{into}`"))
            .await
            .expect("drop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tables_lock_as_a_managed_user_mysql_gtid() {
    lock_free(
        Server::MysqlGtid,
        "dbtrail_rds",
        RDS_GRANTS,
        "auto",
        SnapshotMethod::Tables,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tables_lock_as_a_managed_user_mysql_nogtid() {
    lock_free(
        Server::MysqlNoGtid,
        "dbtrail_rds",
        RDS_GRANTS,
        "tables",
        SnapshotMethod::Tables,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_lock_at_all_mysql_gtid() {
    lock_free(
        Server::MysqlGtid,
        "dbtrail_nolock",
        NOLOCK_GRANTS,
        "auto",
        SnapshotMethod::None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_position_without_a_lock_mariadb() {
    lock_free(
        Server::MariaDb,
        "dbtrail_nolock",
        NOLOCK_GRANTS,
        "auto",
        SnapshotMethod::MariadbSnapshot,
    )
    .await;
}

/// `dbtraild --check --config cfg`.
fn check(cfg: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dbtraild"))
        .arg("--check")
        .arg("--config")
        .arg(cfg)
        .env("DBTRAIL_PASSWORD_SRC", PASSWORD)
        .output()
        .expect("dbtraild --check")
}

/// `none` without GTIDs is refused with the reason and the fix; an unknown value is a
/// config error naming the key and the values.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_name_the_fix() {
    let Some(db) = dbtrail_testkit::require(Server::MysqlNoGtid).await else {
        return;
    };
    create_user(&db, "dbtrail_nolock", NOLOCK_GRANTS).await;
    let extra = format!(
        "backup_databases = [\"{}\"]\nbaseline_lock = \"none\"\n",
        db.db_name()
    );
    let daemon = Daemon::start_as(Server::MysqlNoGtid, "dbtrail_nolock", &extra);
    daemon.wait_streaming().await;
    let started = daemon
        .client()
        .start_backup(&daemon.source)
        .await
        .expect("start");
    let err = daemon
        .wait_job(&started.backup_id)
        .await
        .expect_err("none without GTIDs must fail");
    assert!(
        err.contains("gtid_mode = ON") && err.contains("baseline_lock = \"tables\""),
        "{err}"
    );
    // A method the grants do not allow fails naming the grant, never falls back.
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = common::write_config_as(
        dir.path(),
        Server::MysqlNoGtid,
        "dbtrail_nolock",
        "baseline_lock = \"fast\"\n",
    );
    let out = check(&cfg);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(
            "baseline_lock = \"fast\" is not one of \"auto\", \"global\", \"tables\", \"none\""
        ),
        "{text}"
    );
    let cfg = common::write_config_as(
        dir.path(),
        Server::MysqlNoGtid,
        "dbtrail_nolock",
        "baseline_lock = \"tables\"\n",
    );
    let out = check(&cfg);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tables: MISSING GRANT") && text.contains("GRANT LOCK TABLES"),
        "{text}"
    );
}
