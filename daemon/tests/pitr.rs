//! Point-in-time restores against the real servers, checked by an oracle: a workload in
//! phases separated by whole seconds, the exact table contents recorded after each phase,
//! then a restore to each phase (by second, by microsecond inside a second, by GTID set,
//! and for a subset of tables), imported with `myloader` into another database and compared
//! row for row. Plus every validation failure, each with its message and nothing written.
mod common;

use common::{Daemon, gtid_now, myloader, next_second, restore, server_now_us, utc_second};
use dbtrail_core::api::{JobStatus, PitrRequest};
use dbtrail_testkit::{Server, TestDb};
use mysql_async::prelude::Queryable;
use std::collections::BTreeMap;
use std::time::Duration;

/// A phase's target second, the tables' contents after it, and the GTID set then.
type Phase = (String, BTreeMap<String, Vec<String>>, Option<String>);

/// The tables of the workload and their definitions.
fn tables(server: Server) -> Vec<(&'static str, String)> {
    let json = if server.is_mariadb() {
        "LONGTEXT"
    } else {
        "JSON"
    };
    let wide: Vec<String> = (1..=118).map(|i| format!("c{i} INT")).collect();
    vec![
        (
            "orders",
            "(id BIGINT AUTO_INCREMENT PRIMARY KEY, customer INT NOT NULL, \
             amount DECIMAL(12,2), note VARCHAR(100))"
                .into(),
        ),
        (
            "pairs",
            "(a INT NOT NULL, b VARCHAR(20) NOT NULL, v BIGINT, PRIMARY KEY (a, b))".into(),
        ),
        ("bag", "(x INT, y VARBINARY(20))".into()),
        (
            "types",
            format!(
                "(id INT PRIMARY KEY, d65 DECIMAL(65,30), u BIGINT UNSIGNED, dt DATETIME(6), \
                 ts TIMESTAMP(6) NULL, tm TIME(6), vb VARBINARY(32), l1 VARCHAR(20) CHARACTER SET \
                 latin1, j {json}, bits BIT(64), e ENUM('a','b','c'), s SET('x','y','z'), \
                 yr YEAR, dz DATE)"
            ),
        ),
        ("wide", format!("(id INT PRIMARY KEY, {})", wide.join(", "))),
    ]
}

async fn exec_all(conn: &mut mysql_async::Conn, sqls: &[String]) {
    for s in sqls {
        conn.query_drop(s)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

/// Contents of every workload table of `db_name`, as the server itself prints them (`HEX()`
/// of every column, [`common::hex_rows`]): the expected side never goes through dbtrail.
async fn contents(db: &TestDb, db_name: &str, names: &[&str]) -> BTreeMap<String, Vec<String>> {
    let mut conn = db.conn().await;
    let mut out = BTreeMap::new();
    for t in names {
        out.insert(t.to_string(), common::hex_rows(&mut conn, db_name, t).await);
    }
    out
}

fn utc_micros(us: i64) -> String {
    dbtrail_core::value::utc_datetime(us).to_mysql_string(6)
}

fn req_at(at: String) -> PitrRequest {
    PitrRequest {
        target_time: Some(at),
        ..Default::default()
    }
}

async fn oracle(server: Server) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    let defs = tables(server);
    let mut names: Vec<&str> = defs.iter().map(|(n, _)| *n).collect();
    names.push("tm");
    let mut conn = db.conn().await;
    exec_all(
        &mut conn,
        &[
            "SET SESSION sql_mode = ''".into(),
            "SET SESSION time_zone = '+00:00'".into(),
            if server.is_mariadb() {
                "SET SESSION max_recursive_iterations = 100000".into()
            } else {
                "SET SESSION cte_max_recursion_depth = 100000".into()
            },
        ],
    )
    .await;
    for (n, d) in &defs {
        conn.query_drop(format!("CREATE TABLE {n} {d}"))
            .await
            .expect("create");
    }
    // The type matrix of the capture tests: every column type at its edge values.
    let cols = common::matrix_columns(server);
    let tm_defs: Vec<String> = cols.iter().map(|(c, t)| format!("`{c}` {t}")).collect();
    conn.query_drop(format!(
        "CREATE TABLE tm (id INT NOT NULL PRIMARY KEY, {}) DEFAULT CHARSET=utf8mb4",
        tm_defs.join(", ")
    ))
    .await
    .expect("create tm");
    let tm_insert = |id: usize, row: &[(&str, &str)]| {
        let names: Vec<String> = std::iter::once("id".to_string())
            .chain(row.iter().map(|(c, _)| format!("`{c}`")))
            .collect();
        let vals: Vec<String> = std::iter::once(id.to_string())
            .chain(row.iter().map(|(_, v)| v.to_string()))
            .collect();
        format!(
            "INSERT INTO tm ({}) VALUES ({})",
            names.join(", "),
            vals.join(", ")
        )
    };
    let matrix = common::matrix_rows();
    // A small fold bound, so the large transaction's table is replayed in several passes.
    let extra = format!(
        "backup_databases = [\"{}\"]\nrestore_keys_in_memory = 5000\n",
        db.db_name()
    );
    let mut daemon = Daemon::start(server, &extra);
    daemon.wait_streaming().await;
    let wide_cols: Vec<String> = (1..=118).map(|i| format!("c{i}")).collect();
    let wide_row = |id: i64, k: i64| {
        let vals: Vec<String> = (1..=118).map(|i| (id * 1000 + i + k).to_string()).collect();
        format!(
            "INSERT INTO wide (id, {}) VALUES ({id}, {}) ON DUPLICATE KEY UPDATE c1 = c1 + {k}",
            wide_cols.join(","),
            vals.join(",")
        )
    };
    // Phase 0: seed, then the first baseline.
    exec_all(
        &mut conn,
        &[
            "INSERT INTO orders (customer, amount, note) VALUES (1, 10.50, 'first'), (2, 0, NULL)"
                .into(),
            "INSERT INTO pairs VALUES (1, 'a', 1), (1, 'b', 2), (2, 'a', 3)".into(),
            "INSERT INTO bag VALUES (1, 'dup'), (1, 'dup'), (2, NULL)".into(),
            "INSERT INTO types VALUES (1, '-12345678901234567890123456789012345.123456789012345678901234567891', \
             18446744073709551615, '0000-00-00 00:00:00.000000', '2038-01-19 03:14:07.999999', \
             '-838:59:59.000000', X'00275C2200FF', X'E9E8', '{\"k\": [1, \"é\"]}', \
             b'1000000000000000000000000000000000000000000000000000000000000001', 'b', 'x,z', \
             0, '0000-00-00')"
                .into(),
            wide_row(1, 0),
            tm_insert(1, &matrix[0]),
        ],
    )
    .await;
    daemon.backup().await;
    let mut phases: Vec<Phase> = Vec::new();
    let t = server_now_us(&mut conn).await;
    next_second(&mut conn, t).await;
    // Phase 1: updates, deletes, a rolled-back transaction, a primary-key change.
    exec_all(
        &mut conn,
        &[
            "UPDATE orders SET amount = amount + 1, note = 'upd' WHERE id = 1".into(),
            "DELETE FROM orders WHERE id = 2".into(),
            "UPDATE pairs SET a = 10 WHERE a = 1 AND b = 'a'".into(),
            "DELETE FROM bag WHERE x = 1 LIMIT 1".into(),
            "INSERT INTO bag VALUES (3, 'dup'), (3, 'dup')".into(),
            "BEGIN".into(),
            "INSERT INTO orders (customer, amount) VALUES (99, 99)".into(),
            "DELETE FROM pairs".into(),
            "ROLLBACK".into(),
            "UPDATE types SET ts = '1970-01-01 00:00:01.000001', tm = '00:00:00.000001', \
             e = 'c', s = '', bits = b'0', yr = 2155 WHERE id = 1"
                .into(),
            wide_row(1, 5),
            wide_row(2, 0),
            tm_insert(2, &matrix[1]),
            tm_insert(3, &matrix[2]),
            "DELETE FROM tm WHERE id = 1".into(),
        ],
    )
    .await;
    let end = server_now_us(&mut conn).await;
    phases.push((
        utc_second(end),
        contents(&db, db.db_name(), &names).await,
        gtid_now(&db).await,
    ));
    next_second(&mut conn, end).await;
    // Phase 2: a large transaction.
    exec_all(
        &mut conn,
        &[
            "INSERT INTO orders (customer, amount, note) WITH RECURSIVE n(i) AS (SELECT 1 \
             UNION ALL SELECT i + 1 FROM n WHERE i < 20000) SELECT i, i / 100, \
             CONCAT('bulk ', i) FROM n"
                .into(),
            "UPDATE pairs SET v = v * 10".into(),
        ],
    )
    .await;
    let end = server_now_us(&mut conn).await;
    phases.push((
        utc_second(end),
        contents(&db, db.db_name(), &names).await,
        gtid_now(&db).await,
    ));
    next_second(&mut conn, end).await;
    // The second baseline, midway.
    daemon.backup().await;
    let t = server_now_us(&mut conn).await;
    next_second(&mut conn, t).await;
    // Phase 3: two commits inside one second, cut between them by a µs target.
    exec_all(&mut conn, &["DELETE FROM orders WHERE id % 3 = 0".into()]).await;
    let inside = server_now_us(&mut conn).await;
    let after_a = contents(&db, db.db_name(), &names).await;
    exec_all(
        &mut conn,
        &[
            "UPDATE orders SET note = 'late' WHERE id < 100".into(),
            "INSERT INTO pairs VALUES (7, 'z', NULL)".into(),
        ],
    )
    .await;
    let end = server_now_us(&mut conn).await;
    phases.push((
        utc_second(end),
        contents(&db, db.db_name(), &names).await,
        gtid_now(&db).await,
    ));
    next_second(&mut conn, end).await;
    // Phase 4: more after the target, which restores must leave out.
    exec_all(
        &mut conn,
        &[
            "DELETE FROM orders".into(),
            "DELETE FROM bag".into(),
            "UPDATE types SET u = 0".into(),
            "DELETE FROM tm".into(),
        ],
    )
    .await;
    daemon.wait_caught_up(&db).await;
    // Every target below must tell its state from its neighbours'.
    for w in phases.windows(2) {
        assert_ne!(w[0].1, w[1].1, "phases must differ");
    }
    assert_ne!(after_a, phases[2].1);
    assert_ne!(after_a, phases[1].1);
    assert_ne!(contents(&db, db.db_name(), &names).await, phases[2].1);
    let out = tempfile::tempdir().expect("tmp");
    let mut n = 0;
    let mut check = async |req: PitrRequest, want: &BTreeMap<String, Vec<String>>, what: &str| {
        n += 1;
        let dir = out.path().join(format!("r{n}"));
        restore(&daemon, req, &dir)
            .await
            .unwrap_or_else(|e| panic!("{what}: restore failed: {e}\n{}", daemon.log()));
        let into = format!("{}_r{n}", db.db_name());
        let d2 = dir.clone();
        let db2 = &db;
        let into2 = into.clone();
        tokio::task::block_in_place(|| myloader(db2, &d2, &into2));
        let wanted: Vec<&str> = want.keys().map(String::as_str).collect();
        let got = contents(&db, &into, &wanted).await;
        for (t, rows) in want {
            assert_eq!(got[t].len(), rows.len(), "{what}: {t}: row count");
            assert!(got[t] == *rows, "{what}: {t}: rows differ");
        }
        let mut conn = db.conn().await;
        conn.query_drop(format!("DROP DATABASE `{into}`"))
            .await
            .expect("drop");
    };
    for (k, (second, want, _)) in phases.iter().enumerate() {
        check(
            req_at(second.clone()),
            want,
            &format!("phase {} at {second}", k + 1),
        )
        .await;
    }
    if !server.is_mariadb() {
        // MariaDB's binlog carries commit times in whole seconds only.
        check(
            req_at(utc_micros(inside)),
            &after_a,
            "µs target inside phase 3",
        )
        .await;
    }
    if let Some(g) = &phases[1].2 {
        let req = PitrRequest {
            target_gtid: Some(g.clone()),
            ..Default::default()
        };
        check(req, &phases[1].1, "GTID target after phase 2").await;
    }
    // One large table alone, from the live table (the 27k changes since phase 2 undone):
    // rebuilt by one lane per core, each over its own key partitions. (A plain restore to
    // phase 2 is backward from the second baseline, with nothing to undo.)
    let mut one: BTreeMap<String, Vec<String>> = BTreeMap::new();
    one.insert("orders".into(), phases[1].1["orders"].clone());
    let req = PitrRequest {
        target_time: Some(phases[1].0.clone()),
        tables: vec![format!("{}.orders", db.db_name())],
        image: Some("live".into()),
        ..Default::default()
    };
    check(
        req,
        &one,
        "one large table from the live table, in lanes, at phase 2",
    )
    .await;
    let lanes_used = std::fs::read_dir(out.path())
        .expect("out")
        .filter_map(|e| e.ok())
        .any(|e| {
            e.path()
                .join(format!("{}.orders.00001.sql", db.db_name()))
                .exists()
        });
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    assert!(lanes_used || cores == 1, "a second lane wrote chunk 00001");
    let mut only: BTreeMap<String, Vec<String>> = BTreeMap::new();
    only.insert("orders".into(), phases[2].1["orders"].clone());
    only.insert("types".into(), phases[2].1["types"].clone());
    let req = PitrRequest {
        target_time: Some(phases[2].0.clone()),
        tables: vec![
            format!("{}.orders", db.db_name()),
            format!("{}.types", db.db_name()),
        ],
        ..Default::default()
    };
    check(req, &only, "--tables subset at phase 3").await;
    // The subset restore wrote only those tables.
    let files: Vec<String> = std::fs::read_dir(out.path().join(format!("r{n}")))
        .expect("dir")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files
            .iter()
            .all(|f| !f.contains(".pairs") && !f.contains(".bag")),
        "{files:?}"
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn oracle_mysql_gtid() {
    oracle(Server::MysqlGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oracle_mysql_nogtid() {
    oracle(Server::MysqlNoGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oracle_mariadb() {
    oracle(Server::MariaDb).await;
}

/// Each validation failure gives its clear error before any work, and writes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn validation_failures() {
    let Some(db) = dbtrail_testkit::require(Server::MysqlGtid).await else {
        return;
    };
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)").await;
    db.exec("CREATE TABLE u (id INT PRIMARY KEY)").await;
    db.exec("INSERT INTO t VALUES (1, 1)").await;
    let extra = format!("backup_databases = [\"{}\"]\n", db.db_name());
    let daemon = Daemon::start(Server::MysqlGtid, &extra);
    daemon.wait_streaming().await;
    let client = daemon.client();
    let out = tempfile::tempdir().expect("tmp");
    let target = out.path().join("restore");
    let ask = async |req: PitrRequest| -> String {
        let mut req = req;
        if req.output.is_none() {
            req.output = Some(target.display().to_string());
        }
        match client.pitr(&daemon.source, &req).await {
            Ok(s) => panic!("accepted: {s:?}"),
            Err(e) => format!("{e:#}"),
        }
    };
    let now = |offset_s: i64| {
        let us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_micros() as i64;
        utc_second(us + offset_s * 1_000_000)
    };
    // No baseline at all.
    let e = ask(req_at(now(-1))).await;
    assert!(
        e.contains("no baseline snapshot found") && e.contains("dbtrailctl backup"),
        "{e}"
    );
    let b = daemon.backup().await;
    // Before the oldest baseline: names it and its time.
    let e = ask(req_at("2020-01-01 00:00:00".into())).await;
    assert!(
        e.contains("no baseline snapshot found at or before") && e.contains(&b.id),
        "{e}"
    );
    // Malformed, missing or double targets; bad table names; unknown tables.
    let e = ask(req_at("yesterday at noon".into())).await;
    assert!(e.contains("invalid time"), "{e}");
    let e = ask(PitrRequest::default()).await;
    assert!(e.contains("exactly one of target_time"), "{e}");
    let e = ask(PitrRequest {
        target_time: Some(now(-1)),
        target_gtid: Some("x".into()),
        ..Default::default()
    })
    .await;
    assert!(e.contains("exactly one"), "{e}");
    let e = ask(PitrRequest {
        target_gtid: Some("not-a-gtid".into()),
        ..Default::default()
    })
    .await;
    assert!(e.contains("not a GTID set"), "{e}");
    // A second that capture has certainly covered, after the writes above.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let at = now(-3);
    let mut r = req_at(at.clone());
    r.tables = vec!["nodot".into()];
    let e = ask(r).await;
    assert!(e.contains("is not db.table"), "{e}");
    let mut r = req_at(at.clone());
    r.tables = vec![format!("{}.missing", db.db_name())];
    let e = ask(r).await;
    assert!(e.contains("is not in baseline") && e.contains(".t"), "{e}");
    // The future, and targets past what capture has.
    let e = ask(req_at(now(3600))).await;
    assert!(e.contains("in the future"), "{e}");
    // A GTID target beyond the log.
    let e = ask(PitrRequest {
        target_gtid: Some(format!(
            "{}:1-999999999",
            db.server_uuid().await.expect("uuid")
        )),
        ..Default::default()
    })
    .await;
    assert!(
        e.contains("holds transactions the log does not have"),
        "{e}"
    );
    // Outputs: relative, not empty, a symlink.
    let mut r = req_at(at.clone());
    r.output = Some("relative/dir".into());
    let e = ask(r).await;
    assert!(e.contains("absolute"), "{e}");
    let full = out.path().join("full");
    std::fs::create_dir(&full).expect("mkdir");
    std::fs::write(full.join("keep.sql"), "precious").expect("write");
    let mut r = req_at(at.clone());
    r.output = Some(full.display().to_string());
    let e = ask(r).await;
    assert!(
        e.contains("not empty") && e.contains("never overwrites"),
        "{e}"
    );
    let link = out.path().join("link");
    std::os::unix::fs::symlink(&full, &link).expect("symlink");
    let mut r = req_at(at.clone());
    r.output = Some(link.display().to_string());
    let e = ask(r).await;
    assert!(e.contains("symlink"), "{e}");
    assert_eq!(
        std::fs::read_to_string(full.join("keep.sql")).expect("kept"),
        "precious"
    );
    // An unknown image.
    let mut r = req_at(at.clone());
    r.image = Some("sideways".into());
    let e = ask(r).await;
    assert!(e.contains("unknown image \"sideways\": use auto"), "{e}");
    // DDL on a requested table between the baseline and the target.
    let before_ddl = at.clone();
    db.exec("INSERT INTO t VALUES (2, 2)").await;
    db.exec("ALTER TABLE t ADD COLUMN w INT").await;
    db.exec("INSERT INTO u VALUES (1)").await;
    daemon.wait_caught_up(&db).await;
    // A second that capture has certainly covered, after the writes above.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let at = now(-3);
    // The live table's layout changed since a target before the ALTER.
    let mut r = req_at(before_ddl.clone());
    r.image = Some("live".into());
    r.tables = vec![format!("{}.t", db.db_name())];
    let e = ask(r).await;
    assert!(
        e.contains("layout may have changed") && e.contains("ALTER TABLE"),
        "{e}"
    );
    // After the ALTER, t is rebuilt from the table image the daemon took after it.
    let mut r = req_at(at.clone());
    r.dry_run = true;
    r.image = Some("baseline".into());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let plan = loop {
        match client.pitr(&daemon.source, &r).await {
            Ok(p) => break p,
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no image after the ALTER: {e:#}"
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    };
    let t_plan = plan
        .plan
        .images
        .iter()
        .find(|i| i.table.ends_with(".t"))
        .expect("t planned");
    // Forward when the image landed in the target's second, backward (nothing changed t
    // in between) when it landed after it: either way the image after the ALTER.
    assert!(
        t_plan.chosen.image.starts_with("table image ") && t_plan.chosen.events == 0,
        "{plan:?}"
    );
    // Nothing was written by any refused request.
    assert!(!target.exists(), "a refused restore created its output");
    // Leaving the altered table out works; so does a dry run, which writes nothing.
    let mut r = req_at(at.clone());
    r.tables = vec![format!("{}.u", db.db_name())];
    r.dry_run = true;
    r.output = Some(target.display().to_string());
    let plan = client.pitr(&daemon.source, &r).await.expect("dry run");
    assert!(
        plan.pitr_id.is_none() && plan.plan.transactions >= 3,
        "{plan:?}"
    );
    assert_eq!(plan.plan.baseline_id, b.id);
    assert!(plan.plan.last_gtid.is_some() && plan.plan.last_commit_time.is_some());
    assert!(!target.exists(), "a dry run wrote its output");
    r.dry_run = false;
    restore(&daemon, r, &target).await.expect("restore of u");
    let mut names: Vec<String> = std::fs::read_dir(&target)
        .expect("out")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let d = db.db_name();
    assert_eq!(
        names,
        vec![
            format!("{d}-schema-create.sql"),
            format!("{d}.u-schema.sql"),
            format!("{d}.u.00000.sql"),
            "metadata".to_string()
        ]
    );
    let md = std::fs::read_to_string(target.join("metadata")).expect("metadata");
    assert!(
        md.contains("SHOW MASTER STATUS:") && md.contains(&b.id) && md.contains("Target: "),
        "{md}"
    );
}

/// The dump imports with the plain `mysql` client too, file by file (MariaDB's client).
#[tokio::test(flavor = "multi_thread")]
async fn imports_with_the_mysql_client() {
    let Some(db) = dbtrail_testkit::require(Server::MariaDb).await else {
        return;
    };
    db.exec("CREATE TABLE q (id INT PRIMARY KEY, b VARBINARY(10), s VARCHAR(10), d DATETIME(6))")
        .await;
    db.exec("INSERT INTO q VALUES (1, X'00275C0A22', 'it''s', '2001-02-03 04:05:06.000007'), (2, NULL, '', '0000-00-00 00:00:00')")
        .await;
    let extra = format!("backup_databases = [\"{}\"]\n", db.db_name());
    let daemon = Daemon::start(Server::MariaDb, &extra);
    daemon.wait_streaming().await;
    daemon.backup().await;
    db.exec("UPDATE q SET s = 'x\\\\y' WHERE id = 2").await;
    daemon.wait_caught_up(&db).await;
    let want = contents(&db, db.db_name(), &["q"]).await;
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros() as i64;
    let out = tempfile::tempdir().expect("tmp");
    let dir = out.path().join("r");
    restore(&daemon, req_at(utc_second(us - 3_000_000)), &dir)
        .await
        .expect("restore");
    let into = format!("{}_m", db.db_name());
    db.exec(&format!("CREATE DATABASE `{into}`")).await;
    let opts = mysql_async::Opts::from_url(db.server_url()).expect("url");
    let d = db.db_name();
    let mut files = vec![dir.join(format!("{d}.q-schema.sql"))];
    let mut data: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("e").path())
        .filter(|p| {
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            n.starts_with(&format!("{d}.q.")) && n.ends_with(".sql")
        })
        .collect();
    data.sort();
    files.extend(data);
    for f in files {
        let out = std::process::Command::new("mysql")
            .args(["-h", opts.ip_or_hostname()])
            .args(["-P", &opts.tcp_port().to_string()])
            .args(["-u", opts.user().unwrap_or("root")])
            .arg(&into)
            .stdin(std::fs::File::open(&f).expect("file"))
            .output()
            .expect("mysql client (apt mariadb-client)");
        assert!(
            out.status.success(),
            "mysql < {}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let got = contents(&db, &into, &["q"]).await;
    assert_eq!(got, want);
    db.exec(&format!("DROP DATABASE `{into}`")).await;
}

/// Baselines on S3 and a restore written to S3 (a real S3-compatible server): download,
/// replay, upload; the uploaded dump imports to the source's state.
#[tokio::test(flavor = "multi_thread")]
async fn s3_baseline_and_s3_output() {
    use object_store::ObjectStoreExt;
    let Some(db) = dbtrail_testkit::require(Server::MysqlGtid).await else {
        return;
    };
    let Some(s3) = dbtrail_testkit::s3() else {
        return;
    };
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v VARBINARY(20))")
        .await;
    db.exec("INSERT INTO t VALUES (1, X'00FF'), (2, 'two'), (3, NULL)")
        .await;
    let tmp = tempfile::tempdir().expect("tmp");
    // Short: s3s-fs names a multipart upload's temp file after the whole key (255 bytes max).
    let prefix = format!("p{}", std::process::id());
    let extra = format!(
        "backup_databases = [\"{}\"]\n{}",
        db.db_name(),
        common::s3_store_config(&s3, tmp.path(), &format!("{prefix}/b"), &s3.secret_key)
    );
    let mut daemon = Daemon::start(Server::MysqlGtid, &extra);
    daemon.wait_streaming().await;
    daemon.backup().await;
    db.exec("UPDATE t SET v = 'changed' WHERE id = 2").await;
    db.exec("DELETE FROM t WHERE id = 3").await;
    daemon.wait_caught_up(&db).await;
    let want = contents(&db, db.db_name(), &["t"]).await;
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros() as i64;
    let out_url = format!("s3://{}/{prefix}/restore", s3.bucket);
    let client = daemon.client();
    let started = client
        .pitr(
            &daemon.source,
            &PitrRequest {
                target_time: Some(utc_second(us - 3_000_000)),
                output: Some(out_url.clone()),
                ..Default::default()
            },
        )
        .await
        .expect("start");
    let id = started.pitr_id.expect("id");
    let job = loop {
        let j = client.pitr_job(&daemon.source, &id).await.expect("job");
        if j.status != JobStatus::Running {
            break j;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        job.status,
        JobStatus::Completed,
        "{job:?}\n{}",
        daemon.log()
    );
    assert_eq!(job.path, out_url);
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(&s3.bucket)
        .with_endpoint(&s3.endpoint)
        .with_allow_http(true)
        .with_region(&s3.region)
        .with_access_key_id(&s3.access_key)
        .with_secret_access_key(&s3.secret_key)
        .build()
        .expect("s3 client");
    let local = tmp.path().join("dump");
    std::fs::create_dir(&local).expect("mkdir");
    let d = db.db_name();
    let mut n = 0;
    for name in [
        format!("{d}-schema-create.sql"),
        format!("{d}.t-schema.sql"),
        format!("{d}.t.00000.sql"),
        "metadata".to_string(),
    ] {
        let key = object_store::path::Path::from(format!("{prefix}/restore/{name}"));
        let bytes = store
            .get(&key)
            .await
            .unwrap_or_else(|e| panic!("{key} in S3: {e}"))
            .bytes()
            .await
            .expect("body");
        std::fs::write(local.join(&name), &bytes).expect("write");
        n += 1;
    }
    assert_eq!(job.file_count, Some(n));
    let into = format!("{d}_s3");
    let l = local.clone();
    let dbr = &db;
    let into2 = into.clone();
    tokio::task::block_in_place(|| myloader(dbr, &l, &into2));
    let got = contents(&db, &into, &["t"]).await;
    assert_eq!(got, want);
    db.exec(&format!("DROP DATABASE `{into}`")).await;
    assert_eq!(daemon.stop(), Some(0));
}

/// Restore jobs are records: after a restart, a finished job is still there, and one that
/// was running when the daemon died is failed with that reason.
#[tokio::test(flavor = "multi_thread")]
async fn jobs_survive_a_restart() {
    let Some(db) = dbtrail_testkit::require(Server::MysqlGtid).await else {
        return;
    };
    db.exec("SET SESSION cte_max_recursion_depth = 1000000")
        .await;
    db.exec("CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(100))")
        .await;
    db.exec(
        "INSERT INTO big WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
         WHERE i < 300000) SELECT i, REPEAT('p', 100) FROM n",
    )
    .await;
    let extra = format!("backup_databases = [\"{}\"]\n", db.db_name());
    let mut daemon = Daemon::start(Server::MysqlGtid, &extra);
    daemon.wait_streaming().await;
    daemon.backup().await;
    db.exec("UPDATE big SET pad = 'q' WHERE id < 100").await;
    daemon.wait_caught_up(&db).await;
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros() as i64;
    let at = utc_second(us - 3_000_000);
    let out = tempfile::tempdir().expect("tmp");
    restore(&daemon, req_at(at.clone()), &out.path().join("done"))
        .await
        .expect("first restore");
    let client = daemon.client();
    let mut r = req_at(at);
    r.output = Some(out.path().join("killed").display().to_string());
    let started = client.pitr(&daemon.source, &r).await.expect("start");
    let killed = started.pitr_id.expect("id");
    daemon.kill9();
    daemon.spawn();
    daemon.wait_streaming().await;
    let j = daemon
        .client()
        .pitr_job(&daemon.source, &killed)
        .await
        .expect("record");
    assert_eq!(j.status, JobStatus::Failed, "{j:?}");
    assert!(
        j.error
            .as_deref()
            .is_some_and(|e| e.contains("interrupted by a restart")),
        "{j:?}"
    );
    assert_eq!(daemon.stop(), Some(0));
}
