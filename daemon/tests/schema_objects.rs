//! Views, triggers, routines and events in restores, against the real servers: a database
//! with a view over two tables, BEFORE and AFTER triggers writing an audit table, a
//! procedure, a function and a (disabled) event; a baseline; then, inside the window, the
//! view replaced, a trigger dropped and created with another body, a new procedure, the event
//! dropped. A restore of the whole database to a point before and one after those changes,
//! imported with `myloader` into a fresh database, has every object as the source had it then
//! (compared through `information_schema`, as recorded with the server's own SQL at each
//! point) and the tables' rows as they were (the audit table's not doubled by the triggers,
//! which myloader creates after the data). A `--tables` restore writes no objects unless
//! `--with-triggers`, and then only those tables' triggers. After `ALTER PROCEDURE` a whole
//! restore is refused, a `--tables` one is not.
mod common;

use common::{Daemon, myloader, restore};
use dbtrail_core::api::PitrRequest;
use dbtrail_testkit::{Server, TestDb};
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// Everything compared at one point: objects, then rows.
#[derive(Debug, PartialEq)]
struct State {
    objects: Vec<String>,
    rows: Vec<(String, Vec<String>)>,
}

const TABLES: [&str; 3] = ["t1", "t2", "audit"];

/// The objects of `db` as the server describes them, names in `db` unqualified.
async fn objects(conn: &mut mysql_async::Conn, db: &str) -> Vec<String> {
    let strip = |s: String| s.replace(&format!("`{db}`."), "");
    let mut out = Vec::new();
    let views: Vec<(String, String)> = conn
        .exec(
            "SELECT TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS \
             WHERE TABLE_SCHEMA = ?",
            (db,),
        )
        .await
        .expect("views");
    for (n, d) in views {
        out.push(format!("view {n}: {}", strip(d)));
    }
    let triggers: Vec<(String, String, String, String, String, u32)> = conn
        .exec(
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, \
             ACTION_STATEMENT, ACTION_ORDER FROM information_schema.TRIGGERS \
             WHERE TRIGGER_SCHEMA = ?",
            (db,),
        )
        .await
        .expect("triggers");
    for (n, t, timing, ev, stmt, order) in triggers {
        out.push(format!(
            "trigger {n} {timing} {ev} ON {t} #{order}: {}",
            strip(stmt)
        ));
    }
    let routines: Vec<(String, String, Option<String>)> = conn
        .exec(
            "SELECT ROUTINE_NAME, ROUTINE_TYPE, ROUTINE_DEFINITION FROM \
             information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?",
            (db,),
        )
        .await
        .expect("routines");
    for (n, t, d) in routines {
        out.push(format!("{t} {n}: {}", strip(d.unwrap_or_default())));
    }
    let events: Vec<(String, String)> = conn
        .exec(
            "SELECT EVENT_NAME, EVENT_DEFINITION FROM information_schema.EVENTS \
             WHERE EVENT_SCHEMA = ?",
            (db,),
        )
        .await
        .expect("events");
    for (n, d) in events {
        out.push(format!("event {n}: {}", strip(d)));
    }
    out.sort();
    out
}

async fn state(db: &TestDb, name: &str) -> State {
    let mut conn = db.conn().await;
    let objects = objects(&mut conn, name).await;
    let mut rows = Vec::new();
    for t in TABLES {
        rows.push((t.to_string(), common::hex_rows(&mut conn, name, t).await));
    }
    State { objects, rows }
}

async fn exec_all(conn: &mut mysql_async::Conn, sqls: &[&str]) {
    for s in sqls {
        conn.query_drop(*s)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

/// The server's clock, µs.
async fn server_now(conn: &mut mysql_async::Conn) -> i64 {
    let v: Option<String> = conn
        .query_first("SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)")
        .await
        .expect("now");
    v.expect("now").parse().expect("int")
}

/// Sleeps until the server clock is in a later whole second than `t_us`.
async fn next_second(conn: &mut mysql_async::Conn, t_us: i64) {
    let boundary = (t_us.div_euclid(1_000_000) + 1) * 1_000_000;
    loop {
        let now = server_now(conn).await;
        if now >= boundary + 5_000 {
            return;
        }
        tokio::time::sleep(Duration::from_micros((boundary + 5_000 - now) as u64)).await;
    }
}

/// The current second, as a target.
async fn point(conn: &mut mysql_async::Conn) -> (String, i64) {
    let now = server_now(conn).await;
    let s =
        dbtrail_core::value::utc_datetime(now.div_euclid(1_000_000) * 1_000_000).to_mysql_string(0);
    (s, now)
}

fn at(second: &str, tables: &[&str], with_triggers: bool, db: &str) -> PitrRequest {
    PitrRequest {
        target_time: Some(second.to_string()),
        tables: tables.iter().map(|t| format!("{db}.{t}")).collect(),
        with_triggers,
        ..Default::default()
    }
}

async fn run(server: Server) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    let name = db.db_name().to_string();
    let mut conn = db.conn().await;
    // The server hides triggers and events from a user without these privileges.
    conn.query_drop(format!(
        "GRANT TRIGGER, EVENT ON `{name}`.* TO '{}'@'%'",
        std::env::var("DBTRAIL_TEST_USER").unwrap_or_else(|_| "dbtrail".into())
    ))
    .await
    .expect("grant");
    exec_all(
        &mut conn,
        &[
            "CREATE TABLE t1 (id INT PRIMARY KEY, a INT, note VARCHAR(40))",
            "CREATE TABLE t2 (id INT PRIMARY KEY, t1_id INT, b INT)",
            "CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(40), at_id INT)",
            "CREATE VIEW v1 AS SELECT t1.id, t1.a, t2.b FROM t1 JOIN t2 ON t2.t1_id = t1.id",
            "CREATE TRIGGER t1_bi BEFORE INSERT ON t1 FOR EACH ROW BEGIN INSERT INTO audit \
             (what, at_id) VALUES ('bi', NEW.id); SET NEW.note = CONCAT('seen ', \
             IFNULL(NEW.note, '')); END",
            "CREATE TRIGGER t1_ai AFTER INSERT ON t1 FOR EACH ROW INSERT INTO audit (what, at_id) \
             VALUES ('ai', NEW.id)",
            "CREATE TRIGGER t1_au AFTER UPDATE ON t1 FOR EACH ROW INSERT INTO audit (what, at_id) \
             VALUES (CONCAT('au ', NEW.a), NEW.id)",
            "CREATE PROCEDURE p1(IN x INT) BEGIN SELECT x; SELECT x + 1; END",
            "CREATE FUNCTION f1(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
            "CREATE EVENT e1 ON SCHEDULE EVERY 1 DAY DISABLE DO INSERT INTO audit (what) \
             VALUES ('event')",
            "INSERT INTO t1 (id, a, note) VALUES (1, 10, 'one'), (2, 20, NULL)",
            "INSERT INTO t2 VALUES (1, 1, 100), (2, 2, 200)",
        ],
    )
    .await;
    let extra = format!("backup_databases = [\"{name}\"]\n");
    let daemon = Daemon::start(server, &extra);
    daemon.wait_streaming().await;
    daemon.backup().await;
    exec_all(
        &mut conn,
        &[
            "INSERT INTO t1 (id, a) VALUES (3, 30)",
            "UPDATE t1 SET a = a + 1 WHERE id <= 2",
            "INSERT INTO t2 VALUES (3, 3, 300)",
        ],
    )
    .await;
    let (before, t) = point(&mut conn).await;
    let want_before = state(&db, &name).await;
    next_second(&mut conn, t).await;
    // Inside the window: every object kind changes.
    exec_all(
        &mut conn,
        &[
            "CREATE OR REPLACE VIEW v1 AS SELECT t1.id, t2.b, t2.b * 2 AS b2 FROM t1 JOIN t2 \
             ON t2.t1_id = t1.id WHERE t2.b > 100",
            "DROP TRIGGER t1_ai",
            "CREATE TRIGGER t1_ai AFTER INSERT ON t1 FOR EACH ROW INSERT INTO audit (what, at_id) \
             VALUES ('ai v2', NEW.id * 10)",
            "CREATE PROCEDURE p2() SELECT COUNT(*) FROM audit",
            "DROP EVENT e1",
            "INSERT INTO t1 (id, a, note) VALUES (4, 40, 'four')",
            "UPDATE t1 SET a = 0 WHERE id = 3",
        ],
    )
    .await;
    let (after, t) = point(&mut conn).await;
    let want_after = state(&db, &name).await;
    assert_eq!(want_before.objects.len(), 7, "{:?}", want_before.objects);
    assert_eq!(want_after.objects.len(), 7, "{:?}", want_after.objects);
    assert_ne!(want_before.objects, want_after.objects);
    assert!(want_after.rows[2].1.len() > want_before.rows[2].1.len());
    next_second(&mut conn, t).await;
    // After both targets: left out.
    exec_all(
        &mut conn,
        &[
            "INSERT INTO t1 (id, a) VALUES (5, 50)",
            "DROP VIEW v1",
            "DROP PROCEDURE p1",
        ],
    )
    .await;
    let (before_alter, t) = point(&mut conn).await;
    next_second(&mut conn, t).await;
    exec_all(&mut conn, &["ALTER PROCEDURE p2 COMMENT 'changed'"]).await;
    let (altered, t) = point(&mut conn).await;
    next_second(&mut conn, t).await;
    exec_all(&mut conn, &["INSERT INTO t2 VALUES (9, 9, 900)"]).await;
    daemon.wait_caught_up(&db).await;
    let client = daemon.client();
    let out = tempfile::tempdir().expect("tmp");
    let mut n = 0;
    for (target, want, what) in [
        (&before, &want_before, "before the changes"),
        (&after, &want_after, "after the changes"),
    ] {
        n += 1;
        let req = at(target, &[], false, &name);
        let dry = client
            .pitr(
                &daemon.source,
                &PitrRequest {
                    dry_run: true,
                    ..req.clone()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{what}: dry run: {e:#}"));
        assert!(
            dry.plan.objects.iter().any(|o| o.starts_with("trigger ")),
            "{what}: {:?}",
            dry.plan.objects
        );
        let dir = out.path().join(format!("r{n}"));
        restore(&daemon, req, &dir)
            .await
            .unwrap_or_else(|e| panic!("{what}: restore failed: {e}\n{}", daemon.log()));
        assert!(dir.join(format!("{name}.v1-schema-view.sql")).exists());
        assert!(dir.join(format!("{name}.t1-schema-triggers.sql")).exists());
        assert!(dir.join(format!("{name}-schema-post.sql")).exists());
        let into = format!("{name}_r{n}");
        let (d2, into2, db2) = (dir.clone(), into.clone(), &db);
        tokio::task::block_in_place(|| myloader(db2, &d2, &into2));
        let got = state(&db, &into).await;
        assert_eq!(got.objects, want.objects, "{what}: objects");
        assert!(
            got.rows == want.rows,
            "{what}: rows differ:\n{:?}\n{:?}",
            got.rows,
            want.rows
        );
        conn.query_drop(format!("DROP DATABASE `{into}`"))
            .await
            .expect("drop");
    }
    // --tables: no objects; with --with-triggers, only the tables' triggers.
    for (with, n) in [(false, 3), (true, 4)] {
        let dir = out.path().join(format!("r{n}"));
        restore(&daemon, at(&after, &["t1", "audit"], with, &name), &dir)
            .await
            .unwrap_or_else(|e| panic!("--tables: {e}"));
        assert!(!dir.join(format!("{name}.v1-schema-view.sql")).exists());
        assert!(!dir.join(format!("{name}-schema-post.sql")).exists());
        assert_eq!(
            dir.join(format!("{name}.t1-schema-triggers.sql")).exists(),
            with
        );
        if with {
            let into = format!("{name}_r{n}");
            let (d2, into2, db2) = (dir.clone(), into.clone(), &db);
            tokio::task::block_in_place(|| myloader(db2, &d2, &into2));
            let got = state_tables(&db, &into).await;
            let want: Vec<String> = want_after
                .objects
                .iter()
                .filter(|o| o.starts_with("trigger "))
                .cloned()
                .collect();
            assert_eq!(got, want, "--with-triggers: triggers");
            conn.query_drop(format!("DROP DATABASE `{into}`"))
                .await
                .expect("drop");
        }
    }
    // Before the ALTER PROCEDURE fine; after it, whole restores are refused, --tables not.
    let ok = client
        .pitr(
            &daemon.source,
            &PitrRequest {
                dry_run: true,
                ..at(&before_alter, &[], false, &name)
            },
        )
        .await
        .expect("before the alter");
    assert!(
        !ok.plan.objects.iter().any(|o| o.contains(".p1")),
        "{:?}",
        ok.plan.objects
    );
    let e = client
        .pitr(
            &daemon.source,
            &PitrRequest {
                dry_run: true,
                ..at(&altered, &[], false, &name)
            },
        )
        .await
        .map(|_| ())
        .expect_err("a whole restore after ALTER PROCEDURE");
    let e = format!("{e:#}");
    assert!(
        e.contains("procedure") && e.contains("ALTER PROCEDURE p2") && e.contains("--tables"),
        "{e}"
    );
    client
        .pitr(
            &daemon.source,
            &PitrRequest {
                dry_run: true,
                ..at(&altered, &["t1"], true, &name)
            },
        )
        .await
        .expect("--tables with triggers after ALTER PROCEDURE");
}

/// Only the triggers of `db` (the tables restored).
async fn state_tables(db: &TestDb, name: &str) -> Vec<String> {
    let mut conn = db.conn().await;
    objects(&mut conn, name).await
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_mysql_gtid() {
    run(Server::MysqlGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_mariadb() {
    run(Server::MariaDb).await;
}
