//! What the daemon refuses, how it quotes what it puts into SQL, and what it never prints.
mod common;

use common::{Daemon, PASSWORD};
use dbtrail_core::api::PitrRequest;
use dbtrail_core::{Row, TableRef};
use dbtrail_testkit::{Server, TestDb};
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// Oversized bodies, unknown fields and malformed JSON are refused with their reason.
#[tokio::test(flavor = "multi_thread")]
async fn api_refuses_bad_bodies() {
    let Some(_db) = dbtrail_testkit::require(Server::MysqlGtid).await else {
        return;
    };
    let daemon = Daemon::start(Server::MysqlGtid, "");
    daemon.wait_streaming().await;
    let client = daemon.client();
    let path = format!("/api/v1/servers/{}/pitr", daemon.source);
    let big = serde_json::json!({ "target_time": "x".repeat(100_000) });
    let e = client
        .post::<serde_json::Value>(&path, &big)
        .await
        .expect_err("oversized");
    assert!(format!("{e:#}").contains("too_large"), "{e:#}");
    let unknown = serde_json::json!({ "target_time": "2026-01-01 00:00:00", "colour": "red" });
    let e = client
        .post::<serde_json::Value>(&path, &unknown)
        .await
        .expect_err("unknown field");
    let msg = format!("{e:#}");
    assert!(
        msg.contains("colour") && msg.contains("bad_request"),
        "{msg}"
    );
    let wrong_type = serde_json::json!({ "target_time": 5 });
    let e = client
        .post::<serde_json::Value>(&path, &wrong_type)
        .await
        .expect_err("wrong type");
    assert!(format!("{e:#}").contains("bad_request"), "{e:#}");
    let backups = format!("/api/v1/servers/{}/backups", daemon.source);
    for (body, want) in [
        (
            serde_json::json!({ "from_log": true, "colour": "red" }),
            "colour",
        ),
        (serde_json::json!({ "from_log": "yes" }), "from_log"),
    ] {
        let e = client
            .post::<serde_json::Value>(&backups, &body)
            .await
            .expect_err("bad backup request");
        let msg = format!("{e:#}");
        assert!(msg.contains(want) && msg.contains("bad_request"), "{msg}");
    }
    let e = client
        .post::<serde_json::Value>(
            &format!("/api/v1/servers/{}/baselines/import", daemon.source),
            &serde_json::json!({ "dir": "/etc" }),
        )
        .await
        .expect_err("not a mydumper dir");
    assert!(
        format!("{e:#}").contains("not a mydumper backup directory"),
        "{e:#}"
    );
}

async fn contents(db: &TestDb, table: &TableRef) -> Vec<Row> {
    common::table_rows(db, table).await
}

/// Table and column names with backticks, quotes, spaces and non-ASCII letters go through
/// capture, a baseline (snapshot SELECT), undo SQL and a restore dump, and import back.
#[tokio::test(flavor = "multi_thread")]
async fn odd_identifiers_are_quoted_everywhere() {
    let Some(db) = dbtrail_testkit::require(Server::MariaDb).await else {
        return;
    };
    let table = "we`ird 'tab\"le é";
    let q = |s: &str| format!("`{}`", s.replace('`', "``"));
    let cols = ["c`ol 1", "ünï'côdé", "sp ace\"x"];
    db.exec(&format!(
        "CREATE TABLE {} ({} INT PRIMARY KEY, {} VARCHAR(20), {} VARBINARY(10))",
        q(table),
        q(cols[0]),
        q(cols[1]),
        q(cols[2])
    ))
    .await;
    db.exec(&format!(
        "INSERT INTO {} VALUES (1, 'a`b''c', X'60'), (2, 'é', NULL)",
        q(table)
    ))
    .await;
    let extra = format!("backup_databases = [\"{}\"]\n", db.db_name());
    let daemon = Daemon::start(Server::MariaDb, &extra);
    daemon.wait_streaming().await;
    let b = daemon.backup().await;
    let tref = TableRef::new(db.db_name(), table);
    assert!(b.table(&tref).is_some(), "{b:#?}");
    db.exec(&format!(
        "UPDATE {} SET {} = 'changed' WHERE {} = 2",
        q(table),
        q(cols[1]),
        q(cols[0])
    ))
    .await;
    db.exec(&format!(
        "DELETE FROM {} WHERE {} = 1",
        q(table),
        q(cols[0])
    ))
    .await;
    daemon.wait_caught_up(&db).await;
    let want = contents(&db, &tref).await;
    // The events API names the table as it is.
    let ev = daemon
        .client()
        .events(&daemon.source, &[("table", tref.to_string())])
        .await
        .expect("events");
    assert_eq!(ev.events.len(), 2, "{ev:#?}");
    assert_eq!(ev.events[0].columns, cols.to_vec());
    // Restore to now, import with the mysql client into another database.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros() as i64;
    let at = dbtrail_core::value::utc_datetime(us - 3_000_000).to_mysql_string(0);
    let out = tempfile::tempdir().expect("tmp");
    let dir = out.path().join("r");
    let started = daemon
        .client()
        .pitr(
            &daemon.source,
            &PitrRequest {
                target_time: Some(at),
                output: Some(dir.display().to_string()),
                ..Default::default()
            },
        )
        .await
        .expect("pitr");
    let id = started.pitr_id.expect("id");
    loop {
        let j = daemon
            .client()
            .pitr_job(&daemon.source, &id)
            .await
            .expect("job");
        match j.status {
            dbtrail_core::api::JobStatus::Running => {}
            dbtrail_core::api::JobStatus::Completed => break,
            dbtrail_core::api::JobStatus::Failed => panic!("restore failed: {:?}", j.error),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let into = format!("{}_odd", db.db_name());
    db.exec(&format!("CREATE DATABASE `{into}`")).await;
    let opts = mysql_async::Opts::from_url(db.server_url()).expect("url");
    let d = db.db_name();
    let files = [
        dir.join(format!("{d}.{table}-schema.sql")),
        dir.join(format!("{d}.{table}.00000.sql")),
    ];
    for f in &files {
        let o = std::process::Command::new("mysql")
            .args(["-h", opts.ip_or_hostname()])
            .args(["-P", &opts.tcp_port().to_string()])
            .args(["-u", opts.user().unwrap_or("root")])
            .arg(&into)
            .stdin(std::fs::File::open(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())))
            .output()
            .expect("mysql client");
        assert!(
            o.status.success(),
            "mysql < {}: {}",
            f.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let got = contents(&db, &TableRef::new(&into, table)).await;
    assert_eq!(got, want, "restored rows");
    // Undo the DELETE through its reverse SQL: the row comes back.
    let gtid = ev.events[1].gtid.clone().expect("gtid");
    let undo = daemon
        .client()
        .undo(&daemon.source, &gtid, false)
        .await
        .expect("undo");
    let mut conn = db.conn().await;
    conn.query_drop(undo.sql.as_str())
        .await
        .expect("apply undo");
    let back: Option<String> = conn
        .query_first(format!(
            "SELECT HEX({}) FROM {} WHERE {} = 1",
            q(cols[1]),
            q(table),
            q(cols[0])
        ))
        .await
        .expect("select");
    assert_eq!(back.as_deref(), Some(hex::encode_upper("a`b'c").as_str()));
    db.exec(&format!("DROP DATABASE `{into}`")).await;
}

/// Passwords and S3 secrets never appear in logs, status, errors or API answers.
#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_printed() {
    let Some(db) = dbtrail_testkit::require(Server::MysqlGtid).await else {
        return;
    };
    let Some(s3) = dbtrail_testkit::s3() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    // A wrong secret: every backup fails, with an error that must not quote it.
    let wrong = "wrong-secret-Zq7Yk3v9";
    let extra = format!(
        "backup_databases = [\"{}\"]\n{}",
        db.db_name(),
        common::s3_store_config(
            &s3,
            tmp.path(),
            &format!("sec{}", std::process::id()),
            wrong
        )
    );
    let mut daemon = Daemon::start(Server::MysqlGtid, &extra);
    daemon.wait_streaming().await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let client = daemon.client();
    let started = client.start_backup(&daemon.source).await.expect("start");
    let err = daemon
        .wait_job(&started.backup_id)
        .await
        .expect_err("a wrong S3 secret fails the backup");
    let mut everything = vec![err.clone()];
    everything.push(
        serde_json::to_string(&client.status(&daemon.source).await.expect("status")).expect("json"),
    );
    everything.push(
        serde_json::to_string(&client.backups(&daemon.source).await.expect("backups"))
            .expect("json"),
    );
    everything.push(
        serde_json::to_string(&client.coverage(&daemon.source).await.expect("coverage"))
            .expect("json"),
    );
    assert_eq!(daemon.stop(), Some(0));
    // A wrong database password, too: the source fails, and says so without the password.
    std::fs::write(
        &daemon.config,
        std::fs::read_to_string(&daemon.config)
            .expect("config")
            .replace("url = ", "password_file = \"/nonexistent/pw\"\nurl = "),
    )
    .expect("config");
    daemon.spawn();
    tokio::time::sleep(Duration::from_millis(500)).await;
    everything.push(daemon.log());
    let all = everything.join("\n");
    assert!(
        all.contains("s3") || all.contains("S3"),
        "the error names the store: {err}"
    );
    for s in [PASSWORD, wrong, s3.secret_key.as_str()] {
        assert!(!all.contains(s), "{s:?} was printed:\n{all}");
    }
}

/// TLS to the source against the test MySQL's auto-generated certificates: a user that
/// REQUIRES SSL streams with `required`; plain TCP is refused by the server; `verify_identity`
/// against its CA fails with the fix (the auto-generated certificate names no host), and so
/// does a wrong CA.
#[tokio::test(flavor = "multi_thread")]
async fn tls_to_the_source() {
    let Some(db) = dbtrail_testkit::require(Server::MysqlGtid).await else {
        return;
    };
    let Some(root) = dbtrail_testkit::sid_root() else {
        panic!("the sid root is not configured (scripts/testdb up)");
    };
    let ca = root.join("var/lib/mysql-gtid/ca.pem");
    assert!(ca.exists(), "{} missing", ca.display());
    let user = format!("dbtrail_tls{}", std::process::id());
    db.exec(&format!("DROP USER IF EXISTS '{user}'@'%'")).await;
    db.exec(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{PASSWORD}' REQUIRE SSL"
    ))
    .await;
    db.exec(&format!(
        "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT, RELOAD ON *.* TO '{user}'@'%'"
    ))
    .await;
    let run = async |extra: &str| {
        let mut d = Daemon::start(Server::MysqlGtid, extra);
        d.kill9();
        let cfg = std::fs::read_to_string(&d.config).expect("config");
        std::fs::write(
            &d.config,
            cfg.replace("mysql://dbtrail@", &format!("mysql://{user}@")),
        )
        .expect("config");
        d.spawn();
        d
    };
    let ok = run("ssl_mode = \"required\"\n").await;
    ok.wait_streaming().await;
    let plain = run("").await;
    let s = plain
        .wait_status("failed", Duration::from_secs(30), |s| {
            s.state == dbtrail_core::api::SourceState::Failed
        })
        .await;
    assert!(
        s.error
            .as_deref()
            .is_some_and(|e| e.contains("access denied")),
        "{s:?}"
    );
    let identity = run(&format!(
        "ssl_mode = \"verify_identity\"\nssl_ca = \"{}\"\n",
        ca.display()
    ))
    .await;
    let s = identity
        .wait_status("failed", Duration::from_secs(30), |s| {
            s.state == dbtrail_core::api::SourceState::Failed
        })
        .await;
    let e = s.error.unwrap_or_default();
    assert!(
        e.contains("TLS failed") && e.contains("not valid for") && e.contains("required"),
        "{e}"
    );
    let wrong_ca =
        run("ssl_mode = \"verify_identity\"\nssl_ca = \"/etc/ssl/certs/ca-certificates.crt\"\n")
            .await;
    let s = wrong_ca
        .wait_status("failed", Duration::from_secs(30), |s| {
            s.state == dbtrail_core::api::SourceState::Failed
        })
        .await;
    assert!(
        s.error.as_deref().is_some_and(|e| e.contains("TLS failed")),
        "{s:?}"
    );
    db.exec(&format!("DROP USER '{user}'@'%'")).await;
}
