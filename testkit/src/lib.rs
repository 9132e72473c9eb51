//! Test support: connections to the real MySQL and MariaDB servers, and the S3-compatible
//! object store, started by `scripts/testdb up`.
//!
//! The servers (see `scripts/testdb` for their exact flags):
//!
//! | [`Server`]              | server          | port  | GTIDs              | time zone |
//! |-------------------------|-----------------|-------|--------------------|-----------|
//! | [`Server::MysqlGtid`]   | MySQL 9.x       | 33061 | `gtid_mode=ON`     | +03:00    |
//! | [`Server::MysqlNoGtid`] | MySQL 9.x       | 33062 | `gtid_mode=OFF`    | -05:00    |
//! | [`Server::MariaDb`]     | MariaDB 10.11   | 33063 | strict, `0-3-N`    | +05:30    |
//! | [`Server::MysqlScratch`]| MySQL 9.x       | 33064 | `gtid_mode=ON`     | +03:00    |
//! | [`Server::MysqlPrimary`]| MySQL 9.x       | 33067 | `gtid_mode=ON`     | +03:00    |
//! | [`Server::MysqlReplica`]| MySQL 9.x       | 33068 | `gtid_mode=ON`     | +03:00    |
//! | [`Server::MariadbPrimary`]| MariaDB 10.11 | 33069 | strict, `0-9-N`    | +05:30    |
//! | [`Server::MariadbReplica`]| MariaDB 10.11 | 33070 | strict             | +05:30    |
//!
//! The last four are two replication pairs (the replica replicates from the primary by GTID,
//! logs what it applies, and is read-only: `super_read_only` on MySQL, `read_only` on
//! MariaDB), reserved for failover tests: [`require_pair`] takes [`pair_lock`] and rebuilds
//! the pair ([`reset_pair`]).
//!
//! Plus [`s3`]: an S3-compatible server (s3s-fs, port 33065, bucket `dbtrail-test`).
//!
//! All database servers log ROW events with full row images and full row metadata. `root` has an empty
//! password over TCP; the user [`TEST_USER`] (password [`TEST_PASSWORD`]) has only the
//! privileges the daemon needs, so tests can exercise a real password login.
//!
//! Where the servers are: each server's URL comes from its environment variable
//! ([`Server::env_var`]), else from the env file `scripts/testdb up` writes at
//! `${DBTRAIL_TESTDB_DIR:-/var/tmp/dbtrail-testdb}/env`.
//!
//! Hard rules:
//! - A test calls [`require`] first. When its server is missing, the test is skipped with a
//!   loud `SKIPPED:` line, except under `DBTRAIL_TEST_REQUIRE_SERVERS=1` or `CI=true`,
//!   where it panics: CI must never pass by skipping.
//! - Each [`TestDb`] is a fresh database of its own, so tests can run in parallel (threads
//!   or nextest processes) against the same servers. The servers' binlogs are shared:
//!   tests that read them must filter on their own [`TestDb::db_name`].
//! - Tests that change GLOBAL settings (`binlog_format`, `binlog_row_image`,
//!   `binlog_transaction_compression`, ...) or purge binary logs are *destructive*: they
//!   run only on [`Server::MysqlScratch`] (never on the [`Server::all`] servers), hold
//!   [`scratch_lock`] for their whole run, and restore what they change before releasing
//!   it ([`reset_scratch_settings`] restores the binlog settings in one call).
//! - Connections are plain TCP (`prefer_socket=false`): mysql_async would otherwise
//!   silently switch to the server's unix socket, which changes how passwords are sent.

use std::fmt;
use std::fs::File;
use std::io::Write as _;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row, Value};
use tokio::sync::Mutex;

/// The password user every test server has (`scripts/testdb` creates it).
pub const TEST_USER: &str = "dbtrail";
/// Password of [`TEST_USER`].
pub const TEST_PASSWORD: &str = "dbtrail-test-pw";

/// How long [`require`] waits for a connection before calling a server unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One of the test servers started by `scripts/testdb up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Server {
    /// MySQL 9.x with `gtid_mode=ON`, port 33061, server-id 1, time zone +03:00.
    MysqlGtid,
    /// MySQL 9.x with `gtid_mode=OFF` (file:position only), port 33062, server-id 2,
    /// time zone -05:00.
    MysqlNoGtid,
    /// MariaDB 10.11 with `gtid_strict_mode=ON`, port 33063, server-id 3, time zone +05:30.
    MariaDb,
    /// MySQL 9.x configured like [`Server::MysqlGtid`] (`gtid_mode=ON`, time zone +03:00),
    /// port 33064, server-id 4, reserved for destructive tests: see [`Server::scratch`].
    MysqlScratch,
    /// MySQL 9.x like [`Server::MysqlGtid`] but started with `innodb_native_foreign_keys=ON`:
    /// InnoDB applies foreign-key actions and does not log the child rows (as MySQL 8.0/8.4
    /// and MariaDB do), port 33066, server-id 5.
    MysqlNativeFk,
    /// MySQL 9.x like [`Server::MysqlGtid`] with `log_replica_updates`, the source of the
    /// replication pair, port 33067, server-id 7. Reserved for failover tests: see
    /// [`require_pair`].
    MysqlPrimary,
    /// MySQL 9.x replica of [`Server::MysqlPrimary`] (GTID auto-position,
    /// `log_replica_updates`, `super_read_only`), port 33068, server-id 8. [`require`] cannot
    /// make a database on it (read-only): see [`require_pair`].
    MysqlReplica,
    /// MariaDB 10.11 like [`Server::MariaDb`] with `log_slave_updates`, the source of the
    /// MariaDB replication pair, port 33069, server-id 9. See [`require_pair`].
    MariadbPrimary,
    /// MariaDB 10.11 replica of [`Server::MariadbPrimary`] (`MASTER_USE_GTID=slave_pos`,
    /// strict mode, `log_slave_updates`, `read_only`), port 33070, server-id 10.
    MariadbReplica,
}

impl Server {
    /// The ordinary test servers, in a fixed order: what type matrices and other
    /// non-destructive tests iterate over. Excludes [`Server::MysqlScratch`].
    pub fn all() -> [Server; 3] {
        [Server::MysqlGtid, Server::MysqlNoGtid, Server::MariaDb]
    }

    /// The scratch server, [`Server::MysqlScratch`]: the only one on which a test may
    /// change GLOBAL settings (`SET GLOBAL binlog_format`, `binlog_row_image`,
    /// `binlog_transaction_compression`, ...) or purge binary logs.
    ///
    /// Such a test must hold [`scratch_lock`] from before its first change until after it
    /// has restored every setting it changed (for the binlog settings,
    /// [`reset_scratch_settings`]), so destructive tests in other threads and processes
    /// never see its changes. Non-destructive use of the scratch server (its own fresh
    /// [`TestDb`] via [`require`]) needs no lock, but must not assume the GLOBAL settings
    /// are the startup ones unless it holds the lock.
    pub fn scratch() -> Server {
        Server::MysqlScratch
    }

    /// The name `scripts/testdb` and `scripts/sql` use for this server.
    pub fn name(self) -> &'static str {
        match self {
            Server::MysqlGtid => "mysql-gtid",
            Server::MysqlNoGtid => "mysql-nogtid",
            Server::MariaDb => "mariadb",
            Server::MysqlScratch => "mysql-scratch",
            Server::MysqlNativeFk => "mysql-nativefk",
            Server::MysqlPrimary => "mysql-primary",
            Server::MysqlReplica => "mysql-replica",
            Server::MariadbPrimary => "mariadb-primary",
            Server::MariadbReplica => "mariadb-replica",
        }
    }

    /// The environment variable (and env-file key) holding this server's root URL.
    pub fn env_var(self) -> &'static str {
        match self {
            Server::MysqlGtid => "DBTRAIL_TEST_MYSQL_GTID_URL",
            Server::MysqlNoGtid => "DBTRAIL_TEST_MYSQL_NOGTID_URL",
            Server::MariaDb => "DBTRAIL_TEST_MARIADB_URL",
            Server::MysqlScratch => "DBTRAIL_TEST_MYSQL_SCRATCH_URL",
            Server::MysqlNativeFk => "DBTRAIL_TEST_MYSQL_NATIVEFK_URL",
            Server::MysqlPrimary => "DBTRAIL_TEST_MYSQL_PRIMARY_URL",
            Server::MysqlReplica => "DBTRAIL_TEST_MYSQL_REPLICA_URL",
            Server::MariadbPrimary => "DBTRAIL_TEST_MARIADB_PRIMARY_URL",
            Server::MariadbReplica => "DBTRAIL_TEST_MARIADB_REPLICA_URL",
        }
    }

    /// True for MariaDB, whose SQL and GTIDs differ from MySQL's.
    pub fn is_mariadb(self) -> bool {
        matches!(
            self,
            Server::MariaDb | Server::MariadbPrimary | Server::MariadbReplica
        )
    }

    /// The replica of a pair's primary ([`Server::MysqlPrimary`], [`Server::MariadbPrimary`]).
    pub fn replica_of(self) -> Option<Server> {
        match self {
            Server::MysqlPrimary => Some(Server::MysqlReplica),
            Server::MariadbPrimary => Some(Server::MariadbReplica),
            _ => None,
        }
    }

    /// True when every transaction gets a GTID (MySQL `gtid_mode=ON`; MariaDB always).
    pub fn has_gtids(self) -> bool {
        self != Server::MysqlNoGtid
    }

    /// True when the server logs the child rows foreign-key actions change (MySQL 9.x with
    /// SQL-layer foreign keys); false for MariaDB and [`Server::MysqlNativeFk`].
    pub fn logs_fk_cascades(self) -> bool {
        !(self.is_mariadb() || self == Server::MysqlNativeFk)
    }

    /// True for [`Server::MysqlScratch`], the server for destructive tests.
    pub fn is_scratch(self) -> bool {
        self == Server::MysqlScratch
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The test bed's directory: `$DBTRAIL_TESTDB_DIR`, default `/var/tmp/dbtrail-testdb`.
fn testdb_dir() -> PathBuf {
    let dir = std::env::var("DBTRAIL_TESTDB_DIR")
        .ok()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/var/tmp/dbtrail-testdb".to_owned());
    PathBuf::from(dir)
}

/// Path of the env file written by `scripts/testdb up`.
pub fn env_file() -> PathBuf {
    testdb_dir().join("env")
}

/// Path of the lock file [`scratch_lock`] takes: `<test bed dir>/scratch.lock`.
pub fn scratch_lock_file() -> PathBuf {
    testdb_dir().join("scratch.lock")
}

/// Exclusive hold on the scratch server ([`Server::MysqlScratch`]), from [`scratch_lock`].
///
/// Released when dropped (the lock file is closed). Dropping it restores *nothing*: the
/// test must itself undo every GLOBAL change it made (e.g. [`reset_scratch_settings`])
/// before the guard goes, including on the failure path, or the next destructive test
/// starts from its leftovers.
#[derive(Debug)]
#[must_use = "the scratch server is unlocked as soon as the guard is dropped"]
pub struct ScratchGuard {
    _file: File,
    path: PathBuf,
}

impl ScratchGuard {
    /// The lock file held.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Takes the exclusive lock on the scratch server, waiting (blocking the thread) for as
/// long as another holder has it.
///
/// The lock is an `flock` on [`scratch_lock_file`], so it serialises destructive tests
/// across threads of one test binary and across processes (nextest, several crates'
/// test binaries). Take it before the test's first GLOBAL change or binlog purge and keep
/// the guard until everything is restored. Not reentrant: a second `scratch_lock` in the
/// same test while the first guard lives deadlocks.
///
/// It blocks the calling thread, which is fine in `#[tokio::test]` (one runtime per test).
///
/// # Panics
/// When the lock file cannot be created or locked.
pub fn scratch_lock() -> ScratchGuard {
    lock_file(scratch_lock_file())
}

/// Path of the lock file [`pair_lock`] takes: `<test bed dir>/pair.lock`.
pub fn pair_lock_file() -> PathBuf {
    testdb_dir().join("pair.lock")
}

/// Takes the exclusive lock on the replication pair ([`Server::MysqlPrimary`],
/// [`Server::MysqlReplica`]), as [`scratch_lock`] does for the scratch server: tests that
/// promote the replica, stop replication or change `read_only` hold it for their whole run.
/// [`require_pair`] takes it.
pub fn pair_lock() -> ScratchGuard {
    lock_file(pair_lock_file())
}

fn lock_file(path: PathBuf) -> ScratchGuard {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
    ScratchGuard { _file: file, path }
}

/// The GLOBAL binlog settings [`reset_scratch_settings`] restores: the scratch server's
/// startup values.
const SCRATCH_DEFAULTS: &str = "SET GLOBAL binlog_format = 'ROW', \
     GLOBAL binlog_row_image = 'FULL', \
     GLOBAL binlog_row_metadata = 'FULL', \
     GLOBAL binlog_row_value_options = '', \
     GLOBAL binlog_transaction_compression = OFF";

/// Restores the scratch server's GLOBAL binlog settings to their startup values in one
/// statement: `binlog_format=ROW`, `binlog_row_image=FULL`, `binlog_row_metadata=FULL`,
/// `binlog_row_value_options=''`, `binlog_transaction_compression=OFF`.
///
/// `conn` is a root connection to [`Server::MysqlScratch`] (e.g. [`TestDb::conn`]); call it
/// while holding [`scratch_lock`]. GLOBAL values apply to sessions opened afterwards:
/// sessions already open keep their own SESSION values.
///
/// # Panics
/// When `conn` is not connected to the scratch server (`@@server_id` is not 4), so a
/// slip never changes the shared servers, or when the server refuses the change.
pub async fn reset_scratch_settings(conn: &mut Conn) {
    let server_id: Option<u32> = conn
        .query_first("SELECT @@server_id")
        .await
        .unwrap_or_else(|e| panic!("reset_scratch_settings: SELECT @@server_id: {e}"));
    assert_eq!(
        server_id,
        Some(4),
        "reset_scratch_settings: not connected to {} (server-id 4)",
        Server::MysqlScratch
    );
    if let Err(e) = conn.query_drop(SCRATCH_DEFAULTS).await {
        panic!("{}: {SCRATCH_DEFAULTS}: {e}", Server::MysqlScratch);
    }
}

/// A test-bed setting: the environment variable `key` if set and non-empty, else the
/// `key=value` line of the env file.
pub fn setting(key: &str) -> Option<String> {
    if let Ok(value) = std::env::var(key)
        && !value.is_empty()
    {
        return Some(value);
    }
    let text = std::fs::read_to_string(env_file()).ok()?;
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Root URL of `server` (no database), e.g. `mysql://root@127.0.0.1:33061`, or `None`
/// when the test bed is not configured.
pub fn url(server: Server) -> Option<String> {
    setting(server.env_var())
}

/// URL of `server` for the password user [`TEST_USER`] (no database).
pub fn user_url(server: Server) -> Option<String> {
    let root = url(server)?;
    let opts = Opts::from_url(&root).ok()?;
    Some(format!(
        "mysql://{TEST_USER}:{TEST_PASSWORD}@{}:{}",
        opts.ip_or_hostname(),
        opts.tcp_port()
    ))
}

/// The Debian sid chroot holding MySQL 9.x and its tools, for `chroot ROOT mysqlbinlog`.
pub fn sid_root() -> Option<PathBuf> {
    setting("DBTRAIL_TEST_SID_ROOT").map(PathBuf::from)
}

/// True when a missing server must fail the test rather than skip it.
pub fn servers_required() -> bool {
    let on = |key: &str| {
        std::env::var(key)
            .map(|v| v == "1" || v.eq_ignore_ascii_case("true"))
            .unwrap_or(false)
    };
    on("DBTRAIL_TEST_REQUIRE_SERVERS") || on("CI")
}

/// Connection options for `url` with TCP forced and an optional default database.
pub fn opts(url: &str, db: Option<&str>) -> Result<Opts, mysql_async::UrlError> {
    let opts = Opts::from_url(url)?;
    Ok(OptsBuilder::from_opts(opts)
        .prefer_socket(false)
        .db_name(db)
        .into())
}

/// Connects to `url` (optionally with a default database) over TCP, giving up after 10 s.
pub async fn connect(url: &str, db: Option<&str>) -> Result<Conn, String> {
    let opts = opts(url, db).map_err(|e| format!("bad url {url}: {e}"))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(format!("cannot connect to {url}: {e}")),
        Err(_) => Err(format!(
            "cannot connect to {url}: no answer within {CONNECT_TIMEOUT:?}"
        )),
    }
}

/// Name of the running test (libtest names each test's thread after it).
fn test_name() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("test")
        .to_owned()
}

/// A database name unique to this test, process and call: `dbt_<test>_<pid>_<n>`.
fn unique_db_name(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut slug: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    // Keep the end of the path (the test's own name); MySQL names are at most 64 chars.
    if slug.len() > 40 {
        slug = slug[slug.len() - 40..].to_owned();
    }
    format!(
        "dbt_{}_{}_{}",
        slug.trim_matches('_'),
        std::process::id(),
        n
    )
}

/// Panics when servers are required, else prints a loud `SKIPPED:` line. `name` is the
/// server's `scripts/testdb` name, `fix` the command that starts it.
fn skip_or_panic(name: &str, why: &str, fix: &str) {
    if servers_required() {
        panic!(
            "test server {name} is required (DBTRAIL_TEST_REQUIRE_SERVERS=1 or CI=true) \
             but {why}: {fix}"
        );
    }
    // Straight to the process's stderr: libtest captures eprintln! of passing tests,
    // and a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {}: test server {name} {why}; {fix}",
        test_name()
    );
}

/// Skips (returns `None`) or, when servers are required, panics.
fn unavailable(server: Server, why: &str) -> Option<TestDb> {
    skip_or_panic(server.name(), why, "run scripts/testdb up");
    None
}

/// A fresh database of the test's own on `server`, or `None` (after a loud `SKIPPED:`
/// line) when the server is not configured or not reachable.
///
/// # Panics
/// When the server is missing and `DBTRAIL_TEST_REQUIRE_SERVERS=1` or `CI=true`, or when
/// the database cannot be created.
pub async fn require(server: Server) -> Option<TestDb> {
    let Some(url) = url(server) else {
        return unavailable(
            server,
            &format!(
                "is not configured ({} unset and no {})",
                server.env_var(),
                env_file().display()
            ),
        );
    };
    let mut conn = match connect(&url, None).await {
        Ok(conn) => conn,
        Err(e) => return unavailable(server, &format!("is not reachable ({e})")),
    };
    let db_name = unique_db_name(&test_name());
    for sql in [
        format!("DROP DATABASE IF EXISTS `{db_name}`"),
        format!("CREATE DATABASE `{db_name}`"),
        format!("USE `{db_name}`"),
    ] {
        if let Err(e) = conn.query_drop(&sql).await {
            panic!("{server}: {sql}: {e}");
        }
    }
    Some(TestDb {
        server,
        base_url: url,
        db_name,
        conn: Mutex::new(Some(conn)),
    })
}

/// The env-file keys of the S3 server's settings, in [`S3`] field order: endpoint, bucket,
/// access key, secret key, region.
pub const S3_ENV_VARS: [&str; 5] = [
    "DBTRAIL_TEST_S3_ENDPOINT",
    "DBTRAIL_TEST_S3_BUCKET",
    "DBTRAIL_TEST_S3_ACCESS_KEY",
    "DBTRAIL_TEST_S3_SECRET_KEY",
    "DBTRAIL_TEST_S3_REGION",
];

/// The S3-compatible object store `scripts/testdb up` starts (server name `s3`): s3s-fs on
/// `http://127.0.0.1:33065`, plain HTTP, path-style addressing, SigV4 with static
/// credentials. Objects are files under `<test bed dir>/s3/<bucket>/`.
///
/// The bucket is shared by every test (and every process): a test writes only under its
/// own [`S3::unique_prefix`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3 {
    /// Endpoint URL, e.g. `http://127.0.0.1:33065` (`DBTRAIL_TEST_S3_ENDPOINT`).
    pub endpoint: String,
    /// The test bucket, `dbtrail-test` (`DBTRAIL_TEST_S3_BUCKET`); it exists.
    pub bucket: String,
    /// Access key id, `dbtrail-ak` (`DBTRAIL_TEST_S3_ACCESS_KEY`).
    pub access_key: String,
    /// Secret access key, `dbtrail-sk` (`DBTRAIL_TEST_S3_SECRET_KEY`).
    pub secret_key: String,
    /// Signing region, `us-east-1` (`DBTRAIL_TEST_S3_REGION`).
    pub region: String,
}

impl S3 {
    /// `host:port` of [`S3::endpoint`] (port 80/443 by scheme when the URL has none), for
    /// a raw TCP connection.
    pub fn authority(&self) -> Result<String, String> {
        let (rest, default_port) = if let Some(rest) = self.endpoint.strip_prefix("http://") {
            (rest, 80)
        } else if let Some(rest) = self.endpoint.strip_prefix("https://") {
            (rest, 443)
        } else {
            return Err(format!(
                "S3 endpoint {} is not an http:// or https:// URL",
                self.endpoint
            ));
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return Err(format!("S3 endpoint {} has no host", self.endpoint));
        }
        // A port follows the last ':' unless that ':' is inside an IPv6 literal.
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.contains(']'));
        Ok(if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:{default_port}")
        })
    }

    /// A key prefix of the test's own, unique to this test, process and call:
    /// `dbt_<test>_<pid>_<n>/`.
    pub fn unique_prefix(&self) -> String {
        format!("{}/", unique_db_name(&test_name()))
    }
}

/// Opens a TCP connection to `authority` (`host:port`), giving up after 10 s.
fn tcp_connect(authority: &str) -> Result<TcpStream, String> {
    let addrs = authority
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?;
    let mut last = format!("{authority} resolves to no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(last)
}

/// The S3 server's settings, or `None` (after a loud `SKIPPED:` line) when it is not
/// configured or its port does not accept a TCP connection.
///
/// Settings come from the environment, else the env file ([`setting`], keys
/// [`S3_ENV_VARS`]). Only reachability is checked: the credentials are first used by the
/// test's own signed requests.
///
/// # Panics
/// When the server is missing and `DBTRAIL_TEST_REQUIRE_SERVERS=1` or `CI=true`; the
/// message says to run `scripts/testdb up s3`.
pub fn s3() -> Option<S3> {
    const NAME: &str = "s3";
    const FIX: &str = "run scripts/testdb up s3";
    let get = |key: &str| {
        setting(key).ok_or_else(|| {
            format!(
                "is not configured ({key} unset and not in {})",
                env_file().display()
            )
        })
    };
    let [endpoint, bucket, access_key, secret_key, region] = S3_ENV_VARS;
    let configured = (|| {
        Ok::<_, String>(S3 {
            endpoint: get(endpoint)?,
            bucket: get(bucket)?,
            access_key: get(access_key)?,
            secret_key: get(secret_key)?,
            region: get(region)?,
        })
    })();
    let s3 = match configured {
        Ok(s3) => s3,
        Err(why) => {
            skip_or_panic(NAME, &why, FIX);
            return None;
        }
    };
    let reachable = s3.authority().and_then(|authority| tcp_connect(&authority));
    if let Err(e) = reachable {
        skip_or_panic(NAME, &format!("is not reachable ({e})"), FIX);
        return None;
    }
    Some(s3)
}

/// Polls `check` every 50 ms until it returns `Some`, and returns that value.
///
/// # Panics
/// When `within` passes first; the message names `what` was awaited.
///
/// `check` is an async closure (`async || ...`) or a closure returning a future.
pub async fn wait_for<T>(
    within: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A test's own fresh database on one test server, plus a root connection to it.
///
/// `exec` and `query_*` share one connection, so session state (`SET ...`) carries over
/// between calls; use [`TestDb::conn`] for an independent session. The database is left
/// behind after the test (handy when debugging); [`TestDb::drop_database`] removes it.
pub struct TestDb {
    server: Server,
    base_url: String,
    db_name: String,
    conn: Mutex<Option<Conn>>,
}

impl fmt::Debug for TestDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestDb")
            .field("server", &self.server)
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl TestDb {
    /// Which server this database lives on.
    pub fn server(&self) -> Server {
        self.server
    }

    /// This test's database name (`dbt_<test>_<pid>_<n>`).
    pub fn db_name(&self) -> &str {
        &self.db_name
    }

    /// Root URL of the server with this database as default, e.g.
    /// `mysql://root@127.0.0.1:33061/dbt_x_1234_0`.
    pub fn url(&self) -> String {
        format!("{}/{}", self.base_url.trim_end_matches('/'), self.db_name)
    }

    /// Root URL of the server without a database.
    pub fn server_url(&self) -> &str {
        &self.base_url
    }

    /// URL for the password user [`TEST_USER`] with this database as default.
    pub fn user_url(&self) -> String {
        let opts = Opts::from_url(&self.base_url).expect("url was parsed by require");
        format!(
            "mysql://{TEST_USER}:{TEST_PASSWORD}@{}:{}/{}",
            opts.ip_or_hostname(),
            opts.tcp_port(),
            self.db_name
        )
    }

    /// A new root connection (own session) with this database as default.
    pub async fn conn(&self) -> Conn {
        connect(&self.base_url, Some(&self.db_name))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.server))
    }

    /// A new connection as the password user [`TEST_USER`] with this database as default.
    pub async fn user_conn(&self) -> Conn {
        connect(&self.user_url(), Some(&self.db_name))
            .await
            .unwrap_or_else(|e| panic!("{} as {TEST_USER}: {e}", self.server))
    }

    /// Runs `sql` (one or more statements), returning the server's error if any.
    pub async fn try_exec(&self, sql: &str) -> Result<(), mysql_async::Error> {
        let mut guard = self.conn.lock().await;
        if guard.is_none() {
            *guard = Some(self.conn().await);
        }
        let conn = guard.as_mut().expect("connection was just set");
        let result = conn.query_drop(sql).await;
        if matches!(result, Err(ref e) if !matches!(e, mysql_async::Error::Server(_))) {
            // The connection may be broken: reconnect on next use.
            *guard = None;
        }
        result
    }

    /// Runs `sql` (one or more statements).
    ///
    /// # Panics
    /// On any error, with the server and statement in the message.
    pub async fn exec(&self, sql: &str) {
        if let Err(e) = self.try_exec(sql).await {
            panic!("{}: {sql}: {e}", self.server);
        }
    }

    /// Runs a query and returns every row as text (`None` for SQL NULL).
    ///
    /// # Panics
    /// On any error, with the server and statement in the message.
    pub async fn query_strings(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let mut guard = self.conn.lock().await;
        if guard.is_none() {
            *guard = Some(self.conn().await);
        }
        let conn = guard.as_mut().expect("connection was just set");
        let rows: Vec<Row> = match conn.query(sql).await {
            Ok(rows) => rows,
            Err(e) => {
                *guard = None;
                panic!("{}: {sql}: {e}", self.server);
            }
        };
        rows.into_iter()
            .map(|row| row.unwrap().into_iter().map(value_to_string).collect())
            .collect()
    }

    /// Runs a query expected to return exactly one value and returns it (`None` for NULL).
    ///
    /// # Panics
    /// On any error, or when the result is not one row of one column.
    pub async fn query_value(&self, sql: &str) -> Option<String> {
        let rows = self.query_strings(sql).await;
        match <[_; 1]>::try_from(rows) {
            Ok([row]) if row.len() == 1 => row.into_iter().next().flatten(),
            Ok(_) | Err(_) => panic!("{}: {sql}: expected one row of one column", self.server),
        }
    }

    /// The server's executed GTID set as text, newlines removed: `@@GLOBAL.gtid_executed`
    /// on MySQL (empty with `gtid_mode=OFF`), `@@GLOBAL.gtid_binlog_pos` on MariaDB.
    pub async fn gtid_executed(&self) -> String {
        let sql = if self.server.is_mariadb() {
            "SELECT @@GLOBAL.gtid_binlog_pos"
        } else {
            "SELECT @@GLOBAL.gtid_executed"
        };
        self.query_value(sql)
            .await
            .unwrap_or_default()
            .replace(['\n', '\r'], "")
    }

    /// `@@server_uuid` on MySQL; `None` on MariaDB, which has no server UUID (its GTIDs
    /// are `domain-server_id-seq`).
    pub async fn server_uuid(&self) -> Option<String> {
        if self.server.is_mariadb() {
            return None;
        }
        self.query_value("SELECT @@server_uuid").await
    }

    /// The current binlog file and position: `SHOW BINARY LOG STATUS` on MySQL (8.4+
    /// removed `SHOW MASTER STATUS`), `SHOW MASTER STATUS` on MariaDB.
    pub async fn binlog_position(&self) -> (String, u64) {
        let sql = if self.server.is_mariadb() {
            "SHOW MASTER STATUS"
        } else {
            "SHOW BINARY LOG STATUS"
        };
        let rows = self.query_strings(sql).await;
        let row = rows
            .first()
            .unwrap_or_else(|| panic!("{}: {sql}: no row (is log_bin off?)", self.server));
        let file = row.first().cloned().flatten().unwrap_or_default();
        let pos = row
            .get(1)
            .cloned()
            .flatten()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{}: {sql}: no numeric position", self.server));
        (file, pos)
    }

    /// [`wait_for`] as a method, for symmetry with the rest of the API.
    pub async fn wait_for<T>(
        &self,
        within: Duration,
        what: &str,
        check: impl AsyncFnMut() -> Option<T>,
    ) -> T {
        wait_for(within, what, check).await
    }

    /// Drops this test's database (optional: databases are otherwise left behind).
    pub async fn drop_database(self) {
        let sql = format!("DROP DATABASE IF EXISTS `{}`", self.db_name);
        self.exec(&sql).await;
        if let Some(conn) = self.conn.lock().await.take() {
            let _ = conn.disconnect().await;
        }
    }
}

/// Text form of a value as the text protocol returns it.
fn value_to_string(value: Value) -> Option<String> {
    match value {
        Value::NULL => None,
        Value::Bytes(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Value::Int(v) => Some(v.to_string()),
        Value::UInt(v) => Some(v.to_string()),
        Value::Float(v) => Some(v.to_string()),
        Value::Double(v) => Some(v.to_string()),
        other => Some(other.as_sql(true).trim_matches('\'').to_owned()),
    }
}

/// A replication pair, rebuilt for one test ([`require_pair`]).
pub struct Pair {
    /// A fresh database of the test's own on the primary; the replica has it too.
    pub primary: TestDb,
    /// The replica ([`Server::MysqlReplica`] or [`Server::MariadbReplica`]).
    pub replica: Server,
    /// Root URL of the replica (no database).
    pub replica_url: String,
    _guard: ScratchGuard,
}

impl Pair {
    /// True for the MariaDB pair.
    pub fn is_mariadb(&self) -> bool {
        self.replica.is_mariadb()
    }

    /// The test's database as seen on the replica (it exists there by replication): for
    /// writers and reads once the replica is promoted.
    pub fn replica_db(&self) -> TestDb {
        TestDb {
            server: self.replica,
            base_url: self.replica_url.clone(),
            db_name: self.primary.db_name().to_owned(),
            conn: Mutex::new(None),
        }
    }

    /// A root connection to the replica with the test's database as default.
    pub async fn replica_conn(&self) -> Conn {
        connect(&self.replica_url, Some(self.primary.db_name()))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.replica))
    }

    /// Waits until the replica has applied every transaction the primary has logged.
    pub async fn wait_replica_caught_up(&self) {
        let set = self.primary.gtid_executed().await;
        let mut r = connect(&self.replica_url, None)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.replica));
        let sql = if self.is_mariadb() {
            "SELECT MASTER_GTID_WAIT(?, 60)"
        } else {
            "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, 60)"
        };
        let done: Option<i64> = r
            .exec_first(sql, (set.as_str(),))
            .await
            .unwrap_or_else(|e| panic!("{}: {sql}: {e}", self.replica));
        assert_eq!(
            done,
            Some(0),
            "{}: did not apply {set} within 60 s",
            self.replica
        );
    }

    /// Makes the primary read-only (`super_read_only`, MariaDB `read_only`), as a
    /// switchover fences the old primary.
    pub async fn fence_primary(&self) {
        let sql = if self.is_mariadb() {
            "SET GLOBAL read_only = ON"
        } else {
            "SET GLOBAL super_read_only = ON"
        };
        self.primary.exec(sql).await;
    }

    /// Stops the replica's replication (it falls behind from here).
    pub async fn stop_replication(&self) {
        let mut r = self.replica_conn().await;
        sql(self.replica, &mut r, &["STOP REPLICA"]).await;
    }

    /// Promotes the replica: its replication stopped and forgotten, and writable.
    pub async fn promote_replica(&self) {
        let mut r = self.replica_conn().await;
        let statements: &[&str] = if self.is_mariadb() {
            &[
                "STOP SLAVE",
                "RESET SLAVE ALL",
                "SET GLOBAL read_only = OFF",
            ]
        } else {
            &[
                "STOP REPLICA",
                "RESET REPLICA ALL",
                "SET GLOBAL super_read_only = OFF",
                "SET GLOBAL read_only = OFF",
            ]
        };
        sql(self.replica, &mut r, statements).await;
    }

    /// Rebuilds the pair ([`reset_pair`]), e.g. at the end of a test.
    pub async fn reset(&self) {
        let mut p = connect(self.primary.server_url(), None)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.primary.server()));
        let mut r = connect(&self.replica_url, None)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.replica));
        reset_pair(&mut p, &mut r).await;
    }
}

async fn sql(server: Server, conn: &mut Conn, statements: &[&str]) {
    for s in statements {
        if let Err(e) = conn.query_drop(*s).await {
            panic!("{server}: {s}: {e}");
        }
    }
}

/// Puts a replication pair back as `scripts/testdb up` made it, whatever a failover test
/// left: the primary writable, the replica replicating from it by GTID (MySQL: auto-position,
/// `super_read_only`; MariaDB: `MASTER_USE_GTID=slave_pos`, `read_only`), no test databases,
/// and both binlogs and GTID histories reset (`RESET BINARY LOGS AND GTIDS`, MariaDB `RESET
/// MASTER`), so a previous promotion's transactions cannot diverge them. `primary` and
/// `replica` are root connections to the two servers of one pair (server-ids 7 and 8, or 9
/// and 10); hold [`pair_lock`].
///
/// # Panics
/// When the connections are not to one pair, a statement fails, or replication does not
/// run within 60 s.
pub async fn reset_pair(primary: &mut Conn, replica: &mut Conn) {
    let mut ids = Vec::new();
    for conn in [&mut *primary, &mut *replica] {
        let id: Option<u32> = conn
            .query_first("SELECT @@server_id")
            .await
            .unwrap_or_else(|e| panic!("reset_pair: SELECT @@server_id: {e}"));
        ids.push(id.unwrap_or(0));
    }
    let (p, r, mariadb) = match ids[..] {
        [7, 8] => (Server::MysqlPrimary, Server::MysqlReplica, false),
        [9, 10] => (Server::MariadbPrimary, Server::MariadbReplica, true),
        _ => panic!("reset_pair: server-ids {ids:?} are not a replication pair (7, 8 or 9, 10)"),
    };
    sql(r, replica, &["STOP REPLICA", "RESET REPLICA ALL"]).await;
    for (conn, server) in [(&mut *primary, p), (&mut *replica, r)] {
        if !mariadb {
            sql(server, conn, &["SET GLOBAL super_read_only = OFF"]).await;
        }
        sql(
            server,
            conn,
            &["SET GLOBAL read_only = OFF", "SET SESSION sql_log_bin = 0"],
        )
        .await;
        let dbs: Vec<String> = conn
            .query(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA \
                 WHERE SCHEMA_NAME LIKE 'dbt\\_%'",
            )
            .await
            .unwrap_or_else(|e| panic!("{server}: listing test databases: {e}"));
        for d in dbs {
            sql(server, conn, &[&format!("DROP DATABASE `{d}`")]).await;
        }
        let reset = if mariadb {
            "RESET MASTER"
        } else {
            "RESET BINARY LOGS AND GTIDS"
        };
        sql(server, conn, &["SET SESSION sql_log_bin = 1", reset]).await;
    }
    let port: Option<u16> = primary
        .query_first("SELECT @@port")
        .await
        .unwrap_or_else(|e| panic!("{p}: SELECT @@port: {e}"));
    let port = port.expect("@@port");
    let change = if mariadb {
        format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={port}, MASTER_USER='root', \
             MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos"
        )
    } else {
        format!(
            "CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT={port}, \
             SOURCE_USER='root', SOURCE_PASSWORD='', SOURCE_AUTO_POSITION=1, \
             GET_SOURCE_PUBLIC_KEY=1"
        )
    };
    if mariadb {
        sql(r, replica, &["SET GLOBAL gtid_slave_pos = ''"]).await;
    }
    let fence = if mariadb {
        "SET GLOBAL read_only = ON"
    } else {
        "SET GLOBAL super_read_only = ON"
    };
    sql(r, replica, &[&change, "START REPLICA", fence]).await;
    let running = if mariadb {
        "SELECT IF((SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
         WHERE VARIABLE_NAME = 'SLAVE_RUNNING') = 'ON', 'ON', 'OFF'), 'ON'"
    } else {
        "SELECT (SELECT SERVICE_STATE FROM performance_schema.replication_connection_status \
         WHERE CHANNEL_NAME = ''), (SELECT SERVICE_STATE FROM \
         performance_schema.replication_applier_status WHERE CHANNEL_NAME = '')"
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state: Option<(Option<String>, Option<String>)> = replica
            .query_first(running)
            .await
            .unwrap_or_else(|e| panic!("{r}: replication state: {e}"));
        if let Some((Some(io), Some(applier))) = &state
            && io == "ON"
            && applier == "ON"
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{r}: replication not running within 60 s: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The replication pair whose primary is `primary` ([`Server::MysqlPrimary`] or
/// [`Server::MariadbPrimary`]) for a failover test, or `None` (after a loud `SKIPPED:` line)
/// when either server is not configured or not reachable: takes [`pair_lock`] (held while
/// the [`Pair`] lives), rebuilds the pair ([`reset_pair`]) and makes the test's database on
/// the primary, waiting until the replica has it.
///
/// # Panics
/// When a server is missing and `DBTRAIL_TEST_REQUIRE_SERVERS=1` or `CI=true`, or when
/// `primary` is not a pair's primary.
pub async fn require_pair(primary: Server) -> Option<Pair> {
    let replica = primary
        .replica_of()
        .unwrap_or_else(|| panic!("require_pair: {primary} is not a pair's primary"));
    let fix = format!("run scripts/testdb up {primary} {replica}");
    let mut conns = Vec::new();
    for server in [primary, replica] {
        let Some(url) = url(server) else {
            skip_or_panic(
                server.name(),
                &format!(
                    "is not configured ({} unset and no {})",
                    server.env_var(),
                    env_file().display()
                ),
                &fix,
            );
            return None;
        };
        match connect(&url, None).await {
            Ok(conn) => conns.push((url, conn)),
            Err(e) => {
                skip_or_panic(server.name(), &format!("is not reachable ({e})"), &fix);
                return None;
            }
        }
    }
    let guard = pair_lock();
    let (replica_url, mut rconn) = conns.pop().expect("two");
    let (_, mut pconn) = conns.pop().expect("two");
    reset_pair(&mut pconn, &mut rconn).await;
    let db = require(primary).await?;
    let pair = Pair {
        primary: db,
        replica,
        replica_url,
        _guard: guard,
    };
    pair.wait_replica_caught_up().await;
    Some(pair)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_names_are_unique_and_valid() {
        let long = "some::very::long::module::path::to::a_test_with_a_long_name";
        let a = unique_db_name(long);
        let b = unique_db_name(long);
        assert_ne!(a, b);
        assert!(a.len() <= 64, "{a}");
        assert!(a.starts_with("dbt_"), "{a}");
        assert!(a.contains("a_test_with_a_long_name"), "{a}");
        assert!(
            a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{a}"
        );
    }

    #[test]
    fn server_names_match_scripts() {
        let names: Vec<_> = Server::all().iter().map(|s| s.name()).collect();
        assert_eq!(names, ["mysql-gtid", "mysql-nogtid", "mariadb"]);
        assert_eq!(Server::scratch().name(), "mysql-scratch");
        assert_eq!(
            Server::scratch().env_var(),
            "DBTRAIL_TEST_MYSQL_SCRATCH_URL"
        );
    }

    #[test]
    fn all_excludes_the_scratch_server() {
        assert!(!Server::all().contains(&Server::scratch()));
        assert!(Server::all().iter().all(|s| !s.is_scratch()));
        assert!(Server::scratch().is_scratch());
        assert!(Server::scratch().has_gtids());
        assert!(!Server::scratch().is_mariadb());
    }

    #[test]
    fn s3_authority_from_endpoint() {
        let at = |endpoint: &str| {
            S3 {
                endpoint: endpoint.to_owned(),
                bucket: "b".into(),
                access_key: "ak".into(),
                secret_key: "sk".into(),
                region: "us-east-1".into(),
            }
            .authority()
        };
        assert_eq!(at("http://127.0.0.1:33065").unwrap(), "127.0.0.1:33065");
        assert_eq!(at("http://127.0.0.1:33065/").unwrap(), "127.0.0.1:33065");
        assert_eq!(at("http://localhost").unwrap(), "localhost:80");
        assert_eq!(
            at("https://s3.example.com/x").unwrap(),
            "s3.example.com:443"
        );
        assert_eq!(at("http://[::1]:9000").unwrap(), "[::1]:9000");
        assert_eq!(at("http://[::1]").unwrap(), "[::1]:80");
        assert!(at("127.0.0.1:33065").is_err());
        assert!(at("http://").is_err());
    }

    #[test]
    fn s3_env_vars_match_scripts() {
        let script = include_str!("../../scripts/testdb");
        for key in S3_ENV_VARS {
            assert!(script.contains(&format!("echo \"{key}=")), "{key}");
        }
    }

    /// flock locks belong to the open file, so a second open of the lock file, even in
    /// this process, cannot take it while a guard lives, and can once the guard is gone.
    #[test]
    fn scratch_lock_is_exclusive_and_released_on_drop() {
        let guard = scratch_lock();
        let other = File::options().write(true).open(guard.path()).unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(guard);
        // Another process's destructive test may grab it in between: wait for it.
        other.lock().unwrap();
        other.unlock().unwrap();
    }
}
