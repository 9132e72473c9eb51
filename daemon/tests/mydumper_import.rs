//! Importing mydumper 0.10 backups (the apt `mydumper`): a real dump of each test server,
//! read with `dbtrail_replay::mydumper`, must give exactly the values a consistent snapshot
//! reads from the live table (`dbtrail_binlog::snapshot::read_table`): every column type at
//! its edge values, chunked files, unescaped odd table names, and the binlog position in
//! `metadata`.
//!
//! mydumper runs with its defaults (no flag is needed for exactness; 0.10 has no
//! `--hex-blob`). On MySQL 9.x, `-r` chunking additionally needs the session setting
//! `explain_format=TRADITIONAL` (mydumper 0.10 reads row estimates from EXPLAIN's table
//! format), given through `--defaults-file`.
mod common;

use dbtrail_core::{Row, TableRef, TableSchema, Value};
use dbtrail_replay::mydumper::{self, DumpTable, Metadata, MydumperError};
use dbtrail_testkit::{Server, TestDb};
use std::path::Path;
use std::process::Command;

/// The type matrix of `capture_types.rs`, in a table of this test's own database.
/// The matrix's edge rows plus one of every byte the dump must escape.
fn rows() -> Vec<Vec<(&'static str, &'static str)>> {
    let mut rows = common::matrix_rows();
    // Every byte mysql_real_escape_string escapes, and the ones it leaves raw.
    let escapes = vec![
        ("f", "0.1"),
        ("d", "0.1"),
        ("dec2", "0.5"),
        ("b13", "b'1'"),
        ("y", "1901"),
        ("ts6", "'2001-02-03 04:05:06.7'"),
        ("c", "'tab\there'"),
        ("vc", "X'00275C0A0D1A22092560255F'"),
        ("vcl", "X'5C00E9'"),
        ("vb", "X'5C27225C5C'"),
        ("tx", "'\\%\\_'"),
        ("bl", "X'0A0D1A5C00'"),
        ("mt", "X'C3A9F09F9880'"),
        ("e", "'a'"),
        ("s", "'x,y,z'"),
        ("j", "'{\"é\": \"😀\\\\n\\\\\\\"\", \"n\": 0.1}'"),
        (
            "g",
            "ST_GeomFromText('POLYGON((0 0, 10 0, 10 10, 0 10, 0 0))')",
        ),
    ];
    rows.push(escapes);
    rows
}

/// True when the apt `mydumper` can run; otherwise skips loudly, or panics where servers
/// (and their tools) are required.
fn have_mydumper() -> bool {
    if Command::new("mydumper").arg("--version").output().is_ok() {
        return true;
    }
    if dbtrail_testkit::servers_required() {
        panic!(
            "mydumper is required (CI=true or DBTRAIL_TEST_REQUIRE_SERVERS=1): apt install mydumper"
        );
    }
    eprintln!("SKIPPED: mydumper is not installed (apt install mydumper)");
    false
}

/// Runs mydumper on `db`'s database into `dir` with `extra` arguments.
async fn dump(db: &TestDb, dir: &Path, extra: &[&str]) {
    let opts = mysql_async::Opts::from_url(db.server_url()).expect("server url");
    let mut cmd = Command::new("mydumper");
    cmd.args(["-h", opts.ip_or_hostname()])
        .args(["-P", &opts.tcp_port().to_string()])
        .args(["-u", opts.user().unwrap_or("root")])
        .args(["-B", db.db_name()])
        // Other tests' (and benchmarks') long statements on the shared server are not ours
        // to wait for or kill.
        .args(["--long-query-guard", "86400"])
        .arg("-o")
        .arg(dir)
        .args(extra);
    if let Some(pass) = opts.pass().filter(|p| !p.is_empty()) {
        cmd.args(["-p", pass]);
    }
    let server = db.server();
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run mydumper");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("CRITICAL"),
        "{server}: mydumper failed ({}):\n{stderr}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The table's schema and rows as a dbtrail snapshot reads them (UTC, raw bytes).
async fn live(db: &TestDb, table: &str) -> (TableSchema, Vec<Row>) {
    let mut conn = db.conn().await;
    let info = dbtrail_binlog::checks::check_server(&mut conn)
        .await
        .expect("checks");
    let mut conns = vec![conn];
    dbtrail_binlog::snapshot::consistent_start(&mut conns, &info)
        .await
        .expect("snapshot");
    let t = TableRef::new(db.db_name(), table);
    let schema = dbtrail_binlog::snapshot::table_schema(&mut conns[0], &t)
        .await
        .expect("schema");
    let mut rows = Vec::new();
    dbtrail_binlog::snapshot::read_table(&mut conns[0], &schema, |r| {
        rows.push(r);
        Ok(())
    })
    .await
    .expect("read table");
    (schema, rows)
}

/// Every row of every data file of `t`, sorted by the first column (the primary key).
fn dumped(t: &DumpTable, schema: &TableSchema) -> Vec<Row> {
    let mut rows = Vec::new();
    for f in &t.data_files {
        mydumper::for_each_row(f, schema, |r| {
            rows.push(r);
            Ok::<_, MydumperError>(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }
    rows.sort_by_key(|r| match r.first() {
        Some(Value::Int(i)) => *i,
        other => panic!("first column is not an INT key: {other:?}"),
    });
    rows
}

/// Exact equality, column by column; generated columns are not in dumps and must be NULL.
fn assert_same(what: &str, schema: &TableSchema, live: &[Row], dump: &[Row]) {
    assert_eq!(live.len(), dump.len(), "{what}: row count");
    let mut diffs = Vec::new();
    for (l, d) in live.iter().zip(dump) {
        for (c, (lv, dv)) in schema.columns.iter().zip(l.iter().zip(d)) {
            let ok = if c.generated { dv.is_null() } else { lv == dv };
            if !ok {
                diffs.push(format!(
                    "row {:?} column {}: live {lv:?} vs dump {dv:?}",
                    l.first(),
                    c.name
                ));
            }
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// The one table `name` of the dump.
fn dump_table(dir: &Path, db: &TestDb, name: &str) -> DumpTable {
    mydumper::tables(dir)
        .expect("tables")
        .into_iter()
        .find(|t| t.db == db.db_name() && t.table == name)
        .unwrap_or_else(|| panic!("{}: no table {name} in the dump", db.server()))
}

async fn matrix(server: Server) {
    if !have_mydumper() {
        return;
    }
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    common::create_matrix(&db, &rows()).await;
    let dir = tempfile::tempdir().expect("tmp");
    dump(&db, dir.path(), &[]).await;
    let meta = Metadata::read(dir.path()).expect("metadata");
    // mydumper 0.10 asks SHOW MASTER STATUS, which MySQL 8.4+ removed.
    assert_eq!(
        meta.binlog.is_some(),
        server.is_mariadb(),
        "{server}: position in metadata: {meta:?}"
    );
    let tables = mydumper::tables(dir.path()).expect("tables");
    assert_eq!(tables.len(), 1, "{server}: {tables:?}");
    let t = &tables[0];
    assert_eq!((t.db.as_str(), t.table.as_str()), (db.db_name(), "tm"));
    assert_eq!(t.data_files.len(), 1);
    let (schema, live_rows) = live(&db, "tm").await;
    assert_eq!(live_rows.len(), rows().len());
    let dump_rows = dumped(t, &schema);
    assert_same(
        &format!("{server} type matrix"),
        &schema,
        &live_rows,
        &dump_rows,
    );
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn type_matrix_mysql_gtid() {
    matrix(Server::MysqlGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn type_matrix_mysql_nogtid() {
    matrix(Server::MysqlNoGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn type_matrix_mariadb() {
    matrix(Server::MariaDb).await;
}

/// `-r` splits the table into `db.tm.00000.sql`, `db.tm.00001.sql`, ...; together they hold
/// exactly the table.
async fn chunked(server: Server) {
    if !have_mydumper() {
        return;
    }
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    common::create_matrix(&db, &rows()).await;
    db.exec(
        "INSERT INTO tm (id, i, vc, ts6, e, s, b13, d, dec4, j) \
         WITH RECURSIVE n(k) AS (SELECT 100 UNION ALL SELECT k + 1 FROM n WHERE k < 399) \
         SELECT k, k * 7, CONCAT('row ', k, ' \\'\"\\\\'), \
                FROM_UNIXTIME(k * 86399 + 0.25), 1 + k % 3, k % 8, k, k / 7, k / 3, \
                JSON_OBJECT('k', k) FROM n",
    )
    .await;
    db.exec("ANALYZE TABLE tm").await;
    let dir = tempfile::tempdir().expect("tmp");
    // mydumper 0.10 estimates rows from EXPLAIN's table format, which is not MySQL 9's default.
    let cnf = dir.path().join("my.cnf");
    std::fs::write(
        &cnf,
        "[mydumper]\ninit-command=SET SESSION explain_format=TRADITIONAL\n",
    )
    .expect("cnf");
    let out = dir.path().join("dump");
    let defaults = format!("--defaults-file={}", cnf.display());
    let mut args = vec!["-r", "50"];
    if !server.is_mariadb() {
        args.push(&defaults);
    }
    dump(&db, &out, &args).await;
    let t = dump_table(&out, &db, "tm");
    assert!(
        t.data_files.len() > 1,
        "{server}: expected several chunks, got {:?}",
        t.data_files
    );
    let (schema, live_rows) = live(&db, "tm").await;
    assert_eq!(live_rows.len(), rows().len() + 300);
    let dump_rows = dumped(&t, &schema);
    assert_same(
        &format!("{server} chunked"),
        &schema,
        &live_rows,
        &dump_rows,
    );
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_mysql_gtid() {
    chunked(Server::MysqlGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_mariadb() {
    chunked(Server::MariaDb).await;
}

/// mydumper 0.10 does not escape names: `t.00001`'s file is named like chunk 1 of `t`, and
/// `a.b` like table `b` of database `db.a`. Views and empty tables have no data file.
#[tokio::test(flavor = "multi_thread")]
async fn odd_table_names() {
    if !have_mydumper() {
        return;
    }
    let Some(db) = dbtrail_testkit::require(Server::MariaDb).await else {
        return;
    };
    let names = ["t", "t.00001", "a.b", "a-b c", "téx", "empty"];
    for (n, name) in names.iter().enumerate() {
        db.exec(&format!(
            "CREATE TABLE `{name}` (id INT PRIMARY KEY, v VARCHAR(20)) DEFAULT CHARSET=utf8mb4"
        ))
        .await;
        if *name != "empty" {
            db.exec(&format!(
                "INSERT INTO `{name}` VALUES ({n}, '{name}'), ({}, NULL)",
                n + 100
            ))
            .await;
        }
    }
    db.exec("CREATE VIEW v AS SELECT id FROM t").await;
    let dir = tempfile::tempdir().expect("tmp");
    dump(&db, dir.path(), &[]).await;
    let tables = mydumper::tables(dir.path()).expect("tables");
    let mut got: Vec<&str> = tables.iter().map(|t| t.table.as_str()).collect();
    let mut want = names.to_vec();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
    for t in &tables {
        assert_eq!(t.db, db.db_name());
        assert_eq!(t.data_files.len(), usize::from(t.table != "empty"), "{t:?}");
        let (schema, live_rows) = live(&db, &t.table).await;
        assert_same(&t.table, &schema, &live_rows, &dumped(t, &schema));
    }
    db.drop_database().await;
}

/// The server prints FLOAT with 6 significant digits, so mydumper dumps `1.2345678` as
/// `1.23457`: the import holds the FLOAT of the dumped text (what myloader would restore),
/// not the live value. Pinned so a change in mydumper or the server is noticed.
#[tokio::test(flavor = "multi_thread")]
async fn float_is_dumped_with_six_digits() {
    if !have_mydumper() {
        return;
    }
    let Some(db) = dbtrail_testkit::require(Server::MysqlGtid).await else {
        return;
    };
    db.exec("CREATE TABLE fl (id INT PRIMARY KEY, f FLOAT, d DOUBLE)")
        .await;
    db.exec("INSERT INTO fl VALUES (1, 1.2345678, 1.2345678), (2, 19.99, 1e-300)")
        .await;
    let dir = tempfile::tempdir().expect("tmp");
    dump(&db, dir.path(), &[]).await;
    let t = dump_table(dir.path(), &db, "fl");
    let (schema, live_rows) = live(&db, "fl").await;
    let dump_rows = dumped(&t, &schema);
    assert_eq!(live_rows[0][1], Value::Float(1.234_567_8));
    assert_eq!(dump_rows[0][1], Value::Float(1.23457));
    assert_eq!(dump_rows[0][2], live_rows[0][2], "DOUBLE is exact");
    assert_eq!(dump_rows[1], live_rows[1], "short FLOATs are exact");
    db.drop_database().await;
}

/// MariaDB: `metadata` holds exactly the position and GTID the server reported while the
/// dump held its lock.
#[tokio::test(flavor = "multi_thread")]
async fn metadata_position_mariadb() {
    if !have_mydumper() {
        return;
    }
    let Some(db) = dbtrail_testkit::require(Server::MariaDb).await else {
        return;
    };
    db.exec("CREATE TABLE p (id INT PRIMARY KEY)").await;
    db.exec("INSERT INTO p VALUES (1)").await;
    // Other tests write to the same server: retry until nothing was logged during a dump.
    for attempt in 1..=20 {
        let before = (db.binlog_position().await, db.gtid_executed().await);
        let dir = tempfile::tempdir().expect("tmp");
        dump(&db, dir.path(), &[]).await;
        let after = (db.binlog_position().await, db.gtid_executed().await);
        let meta = Metadata::read(dir.path()).expect("metadata");
        let b = meta.binlog.expect("MariaDB metadata has a position");
        let got = (
            (b.file.clone(), b.pos),
            b.gtid_set.map(|g| g.to_string()).unwrap_or_default(),
        );
        assert!(
            before.0 <= got.0 && got.0 <= after.0,
            "metadata position {got:?} outside the server's {before:?} ..= {after:?}"
        );
        if before == after {
            assert_eq!(got, before, "metadata position vs the server's");
            assert!(meta.started <= meta.finished);
            db.drop_database().await;
            return;
        }
        eprintln!("attempt {attempt}: the server logged during the dump; again");
    }
    panic!("the MariaDB server never stood still for a dump");
}

/// ENUM/SET members come from information_schema as UTF-8 while a latin1 column's dump
/// holds latin1 bytes: such a value is refused with the literal named, never mapped by guess.
#[tokio::test(flavor = "multi_thread")]
async fn latin1_enum_members_are_refused_not_guessed() {
    if !have_mydumper() {
        return;
    }
    let Some(db) = dbtrail_testkit::require(Server::MariaDb).await else {
        return;
    };
    db.exec("CREATE TABLE el (id INT PRIMARY KEY, e ENUM('é','b') CHARACTER SET latin1)")
        .await;
    db.exec("INSERT INTO el VALUES (1, 'b'), (2, 'é')").await;
    let dir = tempfile::tempdir().expect("tmp");
    dump(&db, dir.path(), &[]).await;
    let t = dump_table(dir.path(), &db, "el");
    let (schema, _) = live(&db, "el").await;
    let mut rows = Vec::new();
    let e = mydumper::for_each_row(&t.data_files[0], &schema, |r| {
        rows.push(r);
        Ok::<_, MydumperError>(())
    })
    .expect_err("latin1 member");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("value \"\\xe9\" of {}.el.e", db.db_name()))
            && msg.contains("not a member"),
        "{msg}"
    );
    assert_eq!(rows, vec![vec![Value::Int(1), Value::Enum(2)]]);
    db.drop_database().await;
}
