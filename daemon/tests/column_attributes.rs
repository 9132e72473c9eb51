//! Column attributes through capture, baseline, restore + import (myloader and mysql), undo
//! and a mydumper backup imported as a baseline: literal and expression defaults,
//! `DEFAULT CURRENT_TIMESTAMP(0..6)`, `ON UPDATE CURRENT_TIMESTAMP`, VIRTUAL and STORED
//! generated columns, INVISIBLE alone and with each of these, AUTO_INCREMENT, SRID, and a
//! column name and a COMMENT holding the word GENERATED. Every value is compared with what
//! the server itself prints (`HEX()` of each column, [`common::hex_rows`]).
//!
//! The regression this guards: MySQL reports `DEFAULT_GENERATED` in
//! `information_schema.COLUMNS.EXTRA` for every expression default, and a substring match
//! once took those columns for generated ones and left them out of dumps and undo SQL, so a
//! restore silently gave them the time of the import (docs/correctness.md, C10).
mod common;

use common::{Daemon, hex_rows, myloader, restore};
use dbtrail_core::api::PitrRequest;
use dbtrail_testkit::{Server, TestDb};
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// The attribute matrix; (column, generated) for the capture check.
fn table_sql(server: Server) -> (String, Vec<(&'static str, bool)>) {
    let maria = server.is_mariadb();
    let uuid = if maria { "uuid()" } else { "(uuid())" };
    let srid = if maria {
        "pt POINT REF_SYSTEM_ID=4326 NOT NULL"
    } else {
        "pt POINT NOT NULL SRID 4326"
    };
    let sql = format!(
        "CREATE TABLE attrs (
            id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            lit INT DEFAULT 42,
            expr_uuid VARCHAR(40) DEFAULT {uuid},
            expr_num INT DEFAULT (1 + 2),
            ts0 TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
            dt1 DATETIME(1) DEFAULT CURRENT_TIMESTAMP(1),
            dt2 DATETIME(2) DEFAULT CURRENT_TIMESTAMP(2),
            ts3 TIMESTAMP(3) NULL DEFAULT CURRENT_TIMESTAMP(3),
            dt4 DATETIME(4) DEFAULT CURRENT_TIMESTAMP(4),
            dt5 DATETIME(5) DEFAULT CURRENT_TIMESTAMP(5),
            ts6 TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
            dt6 DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
            gv INT AS (lit + 1) VIRTUAL,
            gs INT AS (lit * 2) STORED,
            inv INT DEFAULT 7 INVISIBLE,
            inv_ts TIMESTAMP(6) NULL DEFAULT CURRENT_TIMESTAMP(6) INVISIBLE,
            inv_expr VARCHAR(40) DEFAULT {uuid} INVISIBLE,
            inv_upd DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6) INVISIBLE,
            inv_gen INT AS (lit + 3) VIRTUAL INVISIBLE,
            `GENERATED` INT COMMENT 'VIRTUAL GENERATED ALWAYS AS',
            `not generated` VARCHAR(10) DEFAULT 'GENERATED' COMMENT 'STORED GENERATED',
            {srid}
        ) DEFAULT CHARSET=utf8mb4"
    );
    let cols = vec![
        ("id", false),
        ("lit", false),
        ("expr_uuid", false),
        ("expr_num", false),
        ("ts0", false),
        ("dt1", false),
        ("dt2", false),
        ("ts3", false),
        ("dt4", false),
        ("dt5", false),
        ("ts6", false),
        ("dt6", false),
        ("gv", true),
        ("gs", true),
        ("inv", false),
        ("inv_ts", false),
        ("inv_expr", false),
        ("inv_upd", false),
        ("inv_gen", true),
        ("GENERATED", false),
        ("not generated", false),
        ("pt", false),
    ];
    (sql, cols)
}

const POINT: &str = "ST_GeomFromText('POINT(10 20)', 4326)";

async fn exec(conn: &mut mysql_async::Conn, sql: &str) {
    conn.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Restores `attrs` as of `at` (after a later commit so the log reaches past it) into `dir`
/// and imports it with myloader into `<db>_r`; returns that database's name.
async fn restore_attrs(
    daemon: &Daemon,
    db: &TestDb,
    conn: &mut mysql_async::Conn,
    at: &str,
    dir: &std::path::Path,
) -> String {
    tokio::time::sleep(Duration::from_millis(1100)).await;
    tick(conn).await;
    daemon.wait_caught_up(db).await;
    let name = db.db_name();
    restore(
        daemon,
        PitrRequest {
            target_time: Some(format!("{at}Z")),
            tables: vec![format!("{name}.attrs")],
            ..Default::default()
        },
        dir,
    )
    .await
    .unwrap_or_else(|e| panic!("{}: restore: {e}\n{}", db.server(), daemon.log()));
    let into = format!("{name}_r");
    myloader(db, dir, &into);
    into
}

/// A commit in another table after a target, so the log is known to reach past it.
async fn tick(conn: &mut mysql_async::Conn) {
    tokio::time::sleep(Duration::from_millis(20)).await;
    exec(
        conn,
        "CREATE TABLE IF NOT EXISTS tick (id INT PRIMARY KEY AUTO_INCREMENT)",
    )
    .await;
    exec(conn, "INSERT INTO tick VALUES ()").await;
}

/// The GTID of the last transaction committed on `conn`.
async fn last_gtid(conn: &mut mysql_async::Conn, server: Server) -> String {
    if server.is_mariadb() {
        let g: Option<String> = conn.query_first("SELECT @@last_gtid").await.expect("q");
        return g.expect("last_gtid");
    }
    let uuid: Option<String> = conn.query_first("SELECT @@server_uuid").await.expect("q");
    let uuid = uuid.expect("uuid");
    let set: Option<String> = conn
        .query_first("SELECT @@GLOBAL.gtid_executed")
        .await
        .expect("q");
    let set = set.expect("set").replace('\n', "");
    let mine = set
        .split(',')
        .find(|s| s.starts_with(&uuid))
        .expect("own uuid in gtid_executed");
    let last = mine.rsplit(['-', ':']).next().expect("n");
    format!("{uuid}:{last}")
}

/// Rows with explicit values, with defaults, and changed by UPDATE (ON UPDATE columns move).
async fn workload(db: &TestDb, conn: &mut mysql_async::Conn, round: u32) {
    exec(
        conn,
        &format!(
            "INSERT INTO attrs (lit, expr_uuid, expr_num, ts0, dt1, dt2, ts3, dt4, dt5, ts6, dt6, \
             inv, inv_ts, inv_expr, inv_upd, `GENERATED`, `not generated`, pt) VALUES \
             ({r}, 'explicit-{r}', -{r}, '2001-02-03 04:05:06', '2001-02-03 04:05:06.1', \
             '2001-02-03 04:05:06.12', '2001-02-03 04:05:06.123', '2001-02-03 04:05:06.1234', \
             '2001-02-03 04:05:06.12345', '2001-02-03 04:05:06.123456', \
             '1999-12-31 23:59:59.999999', {r}, '2002-03-04 05:06:07.654321', 'inv-{r}', \
             '2003-04-05 06:07:08.5', {r}, 'x{r}', {POINT})",
            r = round
        ),
    )
    .await;
    // Defaults: every expression default is evaluated by the source, once.
    exec(
        conn,
        &format!(
            "INSERT INTO attrs (lit, pt) VALUES ({}, {POINT})",
            100 + round
        ),
    )
    .await;
    exec(conn, &format!("INSERT INTO attrs (pt) VALUES ({POINT})")).await;
    // A later second, so ON UPDATE columns get a value no insert had.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    exec(
        conn,
        &format!(
            "UPDATE attrs SET lit = lit + 1000 WHERE lit = {}",
            100 + round
        ),
    )
    .await;
    let _ = db;
}

async fn matrix(server: Server) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    let name = db.db_name().to_string();
    // Only its own database: other tests' (and benches') tables on the shared server.
    let mut daemon = Daemon::start(server, &format!("backup_databases = [\"{name}\"]\n"));
    daemon.wait_streaming().await;
    let mut conn = db.conn().await;
    let (create, cols) = table_sql(server);
    exec(&mut conn, &create).await;
    workload(&db, &mut conn, 1).await;
    let b = daemon.backup().await;
    assert!(b.tables.iter().any(|t| t.table.table == "attrs"));
    workload(&db, &mut conn, 2).await;
    // The transaction undo is checked on: one UPDATE after the baseline.
    let before_update = hex_rows(&mut conn, &name, "attrs").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    exec(
        &mut conn,
        "UPDATE attrs SET lit = lit + 1, expr_uuid = CONCAT('u-', expr_uuid) WHERE id % 2 = 0",
    )
    .await;
    let gtid = server.has_gtids().then_some(());
    let undo_gtid = match gtid {
        Some(()) => Some(last_gtid(&mut conn, server).await),
        None => None,
    };
    let want = hex_rows(&mut conn, &name, "attrs").await;
    assert_ne!(want, before_update);
    daemon.wait_caught_up(&db).await;

    // Restore + import with myloader, and with the mysql client.
    let out = tempfile::tempdir().expect("tmp");
    let dir = out.path().join("now");
    // MariaDB logs commit times in whole seconds: its target is a second.
    let fmt = if server.is_mariadb() {
        "SELECT DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-%d %H:%i:%s')"
    } else {
        "SELECT DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%d %H:%i:%s.%f')"
    };
    let at = {
        let v: Option<String> = conn.query_first(fmt).await.expect("now");
        v.expect("now")
    };
    let into = restore_attrs(&daemon, &db, &mut conn, &at, &dir).await;
    assert_eq!(
        hex_rows(&mut conn, &into, "attrs").await,
        want,
        "{server}: restored with myloader"
    );
    let into2 = format!("{name}_m");
    exec(&mut conn, &format!("CREATE DATABASE `{into2}`")).await;
    for f in ["attrs-schema.sql", "attrs.00000.sql"] {
        let path = dir.join(format!("{name}.{f}"));
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let o = std::process::Command::new("mysql")
            .args(common::mysql_client_args(&db))
            .arg(&into2)
            .stdin(file)
            .output()
            .expect("mysql client");
        assert!(
            o.status.success(),
            "{server}: mysql {f}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert_eq!(
        hex_rows(&mut conn, &into2, "attrs").await,
        want,
        "{server}: restored with mysql"
    );

    // Undo of the UPDATE brings back every column as it was, ON UPDATE ones included.
    if let Some(g) = undo_gtid {
        let undo = daemon
            .client()
            .undo(&daemon.source, &g, false)
            .await
            .unwrap_or_else(|e| panic!("{server}: undo {g}: {e:#}"));
        assert!(undo.sql.contains("`ts6`"), "{server}: {}", undo.sql);
        conn.query_drop(undo.sql.clone())
            .await
            .unwrap_or_else(|e| panic!("{server}: applying the undo: {e}\n{}", undo.sql));
        assert_eq!(
            hex_rows(&mut conn, &name, "attrs").await,
            before_update,
            "{server}: after undo\n{}",
            undo.sql
        );
    }
    for d in [into, into2] {
        exec(&mut conn, &format!("DROP DATABASE `{d}`")).await;
    }
    // Capture: the logged schema marks exactly the generated columns.
    assert_eq!(daemon.stop(), Some(0), "clean SIGTERM exit");
    let log = dbtrail_storage::Log::open(&daemon.dir.join("data/sources/src/log")).expect("log");
    let table = dbtrail_core::TableRef::new(&name, "attrs");
    let id = log.table_id(&table).expect("id").expect("known");
    let schema = log.schemas(id).expect("schemas").pop().expect("a schema");
    for (c, generated) in &cols {
        let got = schema
            .columns
            .iter()
            .find(|x| x.name == *c)
            .unwrap_or_else(|| panic!("{server}: column {c} missing"));
        assert_eq!(got.generated, *generated, "{server}: column {c} generated");
    }
    drop(conn);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attributes_mysql_gtid() {
    matrix(Server::MysqlGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attributes_mysql_nogtid() {
    matrix(Server::MysqlNoGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attributes_mariadb() {
    matrix(Server::MariaDb).await;
}

/// MariaDB's mydumper backup (it carries a position) of the matrix, imported as a baseline,
/// then restored and imported: the values are the source's.
#[tokio::test(flavor = "multi_thread")]
async fn mydumper_baseline_of_the_matrix_mariadb() {
    let server = Server::MariaDb;
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    let name = db.db_name().to_string();
    // Only its own database: other tests' (and benches') tables on the shared server.
    let daemon = Daemon::start(server, &format!("backup_databases = [\"{name}\"]\n"));
    daemon.wait_streaming().await;
    let mut conn = db.conn().await;
    exec(&mut conn, &table_sql(server).0).await;
    workload(&db, &mut conn, 1).await;
    daemon.wait_caught_up(&db).await;
    let dump = tempfile::tempdir().expect("tmp");
    common::run_mydumper(&db, dump.path());
    let started = daemon
        .client()
        .import_baseline(&daemon.source, &dump.path().to_string_lossy())
        .await
        .expect("import starts");
    daemon
        .wait_job(&started.backup_id)
        .await
        .unwrap_or_else(|e| panic!("import: {e}\n{}", daemon.log()));
    workload(&db, &mut conn, 2).await;
    let want = hex_rows(&mut conn, &name, "attrs").await;
    let at = {
        let v: Option<String> = conn
            .query_first("SELECT DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-%d %H:%i:%s')")
            .await
            .expect("now");
        v.expect("now")
    };
    let out = tempfile::tempdir().expect("tmp");
    let into = restore_attrs(&daemon, &db, &mut conn, &at, &out.path().join("r")).await;
    assert_eq!(hex_rows(&mut conn, &into, "attrs").await, want);
    exec(&mut conn, &format!("DROP DATABASE `{into}`")).await;
    drop(conn);
    db.drop_database().await;
}
