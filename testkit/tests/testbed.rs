//! Proves the test bed `scripts/testdb up` starts: for each server, the version, the binlog
//! settings the daemon relies on, GTID mode, a non-UTC time zone, a password login over
//! plain TCP, and that a write moves the server's position.
//!
//! Each check is one test per server (`mysql_gtid::binlog_settings`, ...), so a failure
//! names the server. Without servers the tests skip loudly (or panic under CI).
//!
//! The scratch server gets the same checks (those reading GLOBAL binlog settings under
//! [`scratch_lock`]), plus a round trip of [`reset_scratch_settings`].
//!
//! The S3 server is checked over raw HTTP only (signing SigV4 would need crypto crates):
//! it answers an unsigned request with S3's own refusal, so it is up and enforces auth.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use dbtrail_testkit::{Server, TEST_USER, TestDb, require, reset_scratch_settings, scratch_lock};
use mysql_async::prelude::Queryable;

/// `SELECT`s one value as text.
async fn value(db: &TestDb, sql: &str) -> String {
    db.query_value(sql)
        .await
        .unwrap_or_else(|| panic!("{}: {sql}: NULL", db.server()))
}

async fn reachable_with_expected_version(server: Server) {
    let Some(db) = require(server).await else {
        return;
    };
    let version = value(&db, "SELECT VERSION()").await;
    if server.is_mariadb() {
        assert!(
            version.starts_with("10.11.") && version.contains("MariaDB"),
            "{server}: version {version}"
        );
    } else {
        assert!(version.starts_with("9."), "{server}: version {version}");
    }
    let expected_id = match server {
        Server::MysqlGtid => "1",
        Server::MysqlNoGtid => "2",
        Server::MariaDb => "3",
        Server::MysqlScratch => "4",
        Server::MysqlNativeFk => "5",
        Server::MysqlPrimary => "7",
        Server::MysqlReplica => "8",
        Server::MariadbPrimary => "9",
        Server::MariadbReplica => "10",
    };
    assert_eq!(
        value(&db, "SELECT @@server_id").await,
        expected_id,
        "{server}"
    );
    assert_eq!(
        value(&db, "SELECT DATABASE()").await,
        db.db_name(),
        "{server}: default database"
    );
}

async fn binlog_settings(server: Server) {
    let Some(db) = require(server).await else {
        return;
    };
    // Destructive tests change the scratch server's GLOBAL settings while holding the lock.
    let _guard = server.is_scratch().then(scratch_lock);
    let rows = db
        .query_strings(
            "SELECT @@GLOBAL.log_bin, @@GLOBAL.binlog_format, @@GLOBAL.binlog_row_image, \
             @@GLOBAL.binlog_row_metadata, @@GLOBAL.max_allowed_packet",
        )
        .await;
    let got: Vec<_> = rows[0]
        .iter()
        .map(|v| v.as_deref().unwrap_or("NULL"))
        .collect();
    assert_eq!(
        got,
        ["1", "ROW", "FULL", "FULL", "1073741824"],
        "{server}: log_bin, binlog_format, binlog_row_image, binlog_row_metadata, max_allowed_packet"
    );
}

async fn gtid_mode(server: Server) {
    let Some(db) = require(server).await else {
        return;
    };
    match server {
        Server::MysqlGtid
        | Server::MysqlScratch
        | Server::MysqlNativeFk
        | Server::MysqlPrimary
        | Server::MysqlReplica => {
            assert_eq!(value(&db, "SELECT @@GLOBAL.gtid_mode").await, "ON");
            assert_eq!(
                value(&db, "SELECT @@GLOBAL.enforce_gtid_consistency").await,
                "ON"
            );
            let uuid = db.server_uuid().await.expect("mysql has a server uuid");
            assert_eq!(uuid.len(), 36, "server_uuid {uuid}");
        }
        Server::MysqlNoGtid => {
            // MySQL 9.5 made ON the default; scripts/testdb turns it off explicitly.
            assert_eq!(value(&db, "SELECT @@GLOBAL.gtid_mode").await, "OFF");
            assert_eq!(db.gtid_executed().await, "", "{server}: no GTIDs expected");
        }
        Server::MariaDb | Server::MariadbPrimary | Server::MariadbReplica => {
            assert_eq!(value(&db, "SELECT @@GLOBAL.gtid_strict_mode").await, "1");
            assert_eq!(db.server_uuid().await, None);
        }
    }
}

async fn time_zone_is_not_utc(server: Server) {
    let Some(db) = require(server).await else {
        return;
    };
    let expected = match server {
        Server::MysqlGtid
        | Server::MysqlScratch
        | Server::MysqlNativeFk
        | Server::MysqlPrimary
        | Server::MysqlReplica => "+03:00",
        Server::MysqlNoGtid => "-05:00",
        Server::MariaDb | Server::MariadbPrimary | Server::MariadbReplica => "+05:30",
    };
    assert_eq!(
        value(&db, "SELECT @@GLOBAL.time_zone").await,
        expected,
        "{server}"
    );
    // NOW() and UTC_TIMESTAMP() share the statement's start time, so this is exact.
    let offset = value(&db, "SELECT TIMESTAMPDIFF(MINUTE, UTC_TIMESTAMP(), NOW())").await;
    assert_ne!(offset, "0", "{server}: session time zone is UTC");
}

async fn password_user_logs_in(server: Server) {
    let Some(db) = require(server).await else {
        return;
    };
    let mut conn = db.user_conn().await;
    let user: Option<String> = conn.query_first("SELECT CURRENT_USER()").await.unwrap();
    assert_eq!(user.as_deref(), Some("dbtrail@%"), "{server}");
    // Plain TCP: no TLS (mysql_async is built without it) and no unix socket.
    let cipher: Option<(String, String)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await
        .unwrap();
    assert_eq!(
        cipher.map(|(_, v)| v).as_deref(),
        Some(""),
        "{server}: TLS in use"
    );
    // The privileges the daemon needs: read the binlog position and server settings.
    let status = if server.is_mariadb() {
        "SHOW MASTER STATUS"
    } else {
        "SHOW BINARY LOG STATUS"
    };
    let rows: Vec<mysql_async::Row> = conn.query(status).await.unwrap();
    assert_eq!(rows.len(), 1, "{server}: {status} as {TEST_USER}");
    let grants: Vec<String> = conn.query("SHOW GRANTS").await.unwrap();
    let grants = grants.join("\n");
    // MariaDB 10.5+ shows REPLICATION CLIENT under its new name, BINLOG MONITOR.
    let client_privilege = if server.is_mariadb() {
        "BINLOG MONITOR"
    } else {
        "REPLICATION CLIENT"
    };
    for privilege in [
        "REPLICATION SLAVE",
        client_privilege,
        "RELOAD",
        "LOCK TABLES",
    ] {
        assert!(
            grants.contains(privilege),
            "{server}: {privilege} missing in {grants}"
        );
    }
    if !server.is_mariadb() {
        assert!(grants.contains("BACKUP_ADMIN"), "{server}: {grants}");
    }
    conn.disconnect().await.unwrap();
}

/// A brand-new caching_sha2_password user has no cached credentials, so its first login
/// takes the full-authentication path: over plain TCP that is the RSA public-key exchange.
async fn fresh_password_user_first_login(server: Server) {
    let Some(db) = require(server).await else {
        return;
    };
    let n = db.db_name().rsplit('_').next().unwrap_or("0");
    let user = format!("fresh_{}_{n}", std::process::id());
    db.exec(&format!("DROP USER IF EXISTS '{user}'@'%'")).await;
    db.exec(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'first-login-pw'"
    ))
    .await;
    let base = dbtrail_testkit::opts(db.server_url(), None).unwrap();
    let opts = mysql_async::OptsBuilder::from_opts(base)
        .user(Some(user.as_str()))
        .pass(Some("first-login-pw"));
    let result = async {
        let mut conn = mysql_async::Conn::new(opts).await?;
        let me: Option<String> = conn.query_first("SELECT CURRENT_USER()").await?;
        conn.disconnect().await?;
        Ok::<_, mysql_async::Error>(me)
    }
    .await;
    db.exec(&format!("DROP USER '{user}'@'%'")).await;
    assert_eq!(result.unwrap(), Some(format!("{user}@%")), "{server}");
}

async fn write_advances_position(server: Server) {
    let Some(db) = require(server).await else {
        return;
    };
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
        .await;
    let gtids_before = db.gtid_executed().await;
    let pos_before = db.binlog_position().await;
    db.exec("INSERT INTO t VALUES (1, 'one')").await;
    let gtids_after = db.gtid_executed().await;
    let pos_after = db.binlog_position().await;
    assert!(
        pos_after > pos_before,
        "{server}: binlog position {pos_before:?} -> {pos_after:?}"
    );
    if server.has_gtids() {
        assert_ne!(gtids_before, gtids_after, "{server}: GTID set did not move");
        assert!(!gtids_after.is_empty(), "{server}");
    } else {
        assert_eq!(gtids_after, "", "{server}: GTIDs with gtid_mode=OFF");
    }
    let rows = db.query_strings("SELECT id, v FROM t").await;
    assert_eq!(rows, vec![vec![Some("1".into()), Some("one".into())]]);
    // wait_for returns as soon as the check passes.
    let n = db
        .wait_for(Duration::from_secs(5), "the row", async || {
            db.query_value("SELECT COUNT(*) FROM t")
                .await
                .filter(|n| n == "1")
        })
        .await;
    assert_eq!(n, "1");
}

/// The sid chroot (for `chroot ROOT mysqlbinlog`) has MySQL's own tools.
async fn sid_root_has_mysqlbinlog(server: Server) {
    let Some(_db) = require(server).await else {
        return;
    };
    let root = dbtrail_testkit::sid_root().expect("DBTRAIL_TEST_SID_ROOT is in the env file");
    for tool in ["mysqlbinlog", "mysql", "mysqldump"] {
        let path = root.join("usr/bin").join(tool);
        assert!(path.exists(), "{}", path.display());
    }
}

macro_rules! per_server {
    ($($module:ident => $server:expr),* $(,)?) => {$(
        mod $module {
            use super::*;

            #[tokio::test]
            async fn reachable_with_expected_version() {
                super::reachable_with_expected_version($server).await;
            }
            #[tokio::test]
            async fn binlog_settings() {
                super::binlog_settings($server).await;
            }
            #[tokio::test]
            async fn gtid_mode() {
                super::gtid_mode($server).await;
            }
            #[tokio::test]
            async fn time_zone_is_not_utc() {
                super::time_zone_is_not_utc($server).await;
            }
            #[tokio::test]
            async fn password_user_logs_in() {
                super::password_user_logs_in($server).await;
            }
            #[tokio::test]
            async fn fresh_password_user_first_login() {
                super::fresh_password_user_first_login($server).await;
            }
            #[tokio::test]
            async fn write_advances_position() {
                super::write_advances_position($server).await;
            }
        }
    )*};
}

per_server! {
    mysql_gtid => Server::MysqlGtid,
    mysql_nogtid => Server::MysqlNoGtid,
    mariadb => Server::MariaDb,
    mysql_scratch => Server::MysqlScratch,
}

/// The scratch server is up with GTIDs on, and `reset_scratch_settings` undoes changes to
/// its GLOBAL binlog settings (the pattern every destructive test follows).
#[tokio::test]
async fn scratch_settings_reset() {
    let Some(db) = require(Server::scratch()).await else {
        return;
    };
    assert_eq!(value(&db, "SELECT @@GLOBAL.gtid_mode").await, "ON");
    assert_eq!(value(&db, "SELECT @@server_id").await, "4");
    let globals = "SELECT @@GLOBAL.binlog_format, @@GLOBAL.binlog_row_image, \
                   @@GLOBAL.binlog_row_metadata, @@GLOBAL.binlog_row_value_options, \
                   @@GLOBAL.binlog_transaction_compression";
    let defaults = vec![vec![
        Some("ROW".to_owned()),
        Some("FULL".to_owned()),
        Some("FULL".to_owned()),
        Some(String::new()),
        Some("0".to_owned()),
    ]];
    let _guard = scratch_lock();
    let mut conn = db.conn().await;
    conn.query_drop(
        "SET GLOBAL binlog_format = 'STATEMENT', GLOBAL binlog_row_image = 'MINIMAL', \
         GLOBAL binlog_row_metadata = 'MINIMAL', \
         GLOBAL binlog_row_value_options = 'PARTIAL_JSON', \
         GLOBAL binlog_transaction_compression = ON",
    )
    .await
    .unwrap();
    let changed = db.query_strings(globals).await;
    reset_scratch_settings(&mut conn).await;
    assert_ne!(changed, defaults, "SET GLOBAL had no effect");
    assert_eq!(db.query_strings(globals).await, defaults);
    conn.disconnect().await.unwrap();
}

/// `reset_scratch_settings` refuses to touch the shared servers.
#[tokio::test]
#[should_panic(expected = "not connected to mysql-scratch")]
async fn scratch_reset_refuses_other_servers() {
    let Some(db) = require(Server::MysqlGtid).await else {
        // Keep the should_panic contract when the bed is missing.
        panic!("not connected to mysql-scratch (skipped: no test bed)");
    };
    let mut conn = db.conn().await;
    reset_scratch_settings(&mut conn).await;
}

#[tokio::test]
async fn sid_root_has_mysql_tools() {
    sid_root_has_mysqlbinlog(Server::MysqlGtid).await;
}

#[test]
fn all_lists_every_ordinary_server() {
    assert_eq!(Server::all().len(), 3);
    assert!(!Server::all().contains(&Server::scratch()));
}

/// The S3 server answers HTTP: an unsigned `GET /` (ListBuckets) gets S3's `403
/// AccessDenied` XML error, which also shows authentication is on.
#[test]
fn s3_answers_http() {
    let Some(s3) = dbtrail_testkit::s3() else {
        return;
    };
    assert_eq!(s3.bucket, "dbtrail-test");
    assert_eq!(s3.region, "us-east-1");
    assert!(
        !s3.access_key.is_empty() && !s3.secret_key.is_empty(),
        "{s3:?}"
    );
    let authority = s3.authority().unwrap();
    let mut stream = TcpStream::connect(&authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .unwrap_or_else(|e| panic!("{}: reading the response: {e}", s3.endpoint));
    let status_line = response.lines().next().unwrap_or_default();
    assert!(
        status_line.starts_with("HTTP/1.1 403"),
        "{}: unsigned GET / answered {status_line:?}\n{response}",
        s3.endpoint
    );
    assert!(
        response.contains("<Code>AccessDenied</Code>"),
        "{}: {response}",
        s3.endpoint
    );
}

/// A replication pair: the replica is read-only, logs what it applies and replicates a write
/// of the primary's by GTID.
async fn replication_pair_replicates(primary: Server) {
    let Some(pair) = dbtrail_testkit::require_pair(primary).await else {
        return;
    };
    pair.primary
        .exec("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
        .await;
    pair.wait_replica_caught_up().await;
    let mut r = pair.replica_conn().await;
    let n: Option<i64> = r.query_first("SELECT COUNT(*) FROM t").await.unwrap();
    assert_eq!(n, Some(2));
    if pair.is_mariadb() {
        let flags: Option<(i64, i64, i64, String)> = r
            .query_first(
                "SELECT @@read_only, @@log_slave_updates, @@gtid_strict_mode, \
                 (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
                  WHERE VARIABLE_NAME = 'SLAVE_RUNNING')",
            )
            .await
            .unwrap();
        assert_eq!(
            flags,
            Some((1, 1, 1, "ON".into())),
            "read_only, log_slave_updates, strict, running"
        );
        let p = pair
            .primary
            .query_value("SELECT CONCAT(@@read_only + 0, @@log_slave_updates + 0)")
            .await;
        assert_eq!(p.as_deref(), Some("01"));
    } else {
        let flags: Option<(i64, i64, i64, String)> = r
            .query_first(
                "SELECT @@read_only, @@super_read_only, @@log_replica_updates, \
                 (SELECT AUTO_POSITION FROM performance_schema.replication_connection_configuration \
                  WHERE CHANNEL_NAME = '')",
            )
            .await
            .unwrap();
        assert_eq!(
            flags,
            Some((1, 1, 1, "1".into())),
            "read_only, super_read_only, log_replica_updates, auto-position"
        );
        let p = pair
            .primary
            .query_value("SELECT CONCAT(@@read_only, @@super_read_only, @@log_replica_updates)")
            .await;
        assert_eq!(p.as_deref(), Some("001"));
    }
}

#[tokio::test]
async fn replication_pair_replicates_mysql() {
    replication_pair_replicates(Server::MysqlPrimary).await;
}

#[tokio::test]
async fn replication_pair_replicates_mariadb() {
    replication_pair_replicates(Server::MariadbPrimary).await;
}
