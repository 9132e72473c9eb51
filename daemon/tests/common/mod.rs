//! Runs the real `dbtraild` binary against the real test servers.
#![allow(dead_code)]
use dbtrail_core::api::{SourceState, SourceStatus};
use dbtrail_ctl::Client;
use dbtrail_testkit::{Server, TestDb};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod metrics;
pub mod proxy;
pub mod writers;

/// The test password of the `dbtrail` user that scripts/testdb creates.
pub const PASSWORD: &str = "dbtrail-test-pw";

/// A running daemon with its own data directory and socket.
pub struct Daemon {
    child: Option<Child>,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub socket: PathBuf,
    pub source: String,
    pub config: PathBuf,
}

fn port_of(url: &str) -> (String, u16) {
    let hostport = url.trim_start_matches("mysql://");
    let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
    let hostport = hostport.split('/').next().unwrap_or(hostport);
    let (h, p) = hostport.rsplit_once(':').unwrap_or((hostport, "3306"));
    (h.to_string(), p.parse().unwrap_or(3306))
}

/// Writes a config for one source named `src` pointing at `server` as user dbtrail.
pub fn write_config(dir: &Path, server: Server, extra: &str) -> PathBuf {
    write_config_as(dir, server, "dbtrail", extra)
}

/// [`write_config`] as `user` (whose password is the test user's).
pub fn write_config_as(dir: &Path, server: Server, user: &str, extra: &str) -> PathBuf {
    let url = dbtrail_testkit::url(server).expect("server configured");
    let (host, port) = port_of(&url);
    write_config_at(dir, &host, port, user, extra)
}

/// A config for one source named `src` at `host:port` (a test server, or a proxy to one).
pub fn write_config_at(dir: &Path, host: &str, port: u16, user: &str, extra: &str) -> PathBuf {
    write_config_text(
        dir,
        &format!("url = \"mysql://{user}@{host}:{port}\""),
        extra,
    )
}

/// Writes a config for one source named `src` whose server line is `url_line` (`url = ...`
/// or `urls = [...]`).
fn write_config_text(dir: &Path, url_line: &str, extra: &str) -> PathBuf {
    let cfg = format!(
        "data_dir = \"{d}/data\"\nsocket = \"{d}/dbtrail.sock\"\nmetrics_addr = \"\"\n\
         [[sources]]\nname = \"src\"\n{url_line}\n\
         replica_server_id = {id}\nheartbeat_seconds = 1\nflush_interval_ms = 200\n{extra}\n",
        d = dir.display(),
        id = {
            // Unique per daemon: the server drops a replica whose server_id reconnects.
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            10_000 + (std::process::id() % 100_000) * 64 + n
        },
    );
    let path = dir.join("dbtrail.toml");
    std::fs::write(&path, cfg).expect("write config");
    path
}

impl Daemon {
    /// Starts a daemon in a fresh directory for `server`.
    pub fn start(server: Server, extra: &str) -> Daemon {
        Daemon::start_as(server, "dbtrail", extra)
    }

    /// [`Daemon::start`], connecting as `user` (with the test user's password).
    pub fn start_as(server: Server, user: &str, extra: &str) -> Daemon {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let config = write_config_as(&dir, server, user, extra);
        Daemon::launch(tmp, dir, config)
    }

    /// Starts a daemon in a fresh directory whose source lists `servers` (`urls`, in this
    /// order), connecting as user dbtrail.
    pub fn start_urls(servers: &[Server], extra: &str) -> Daemon {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let urls: Vec<String> = servers
            .iter()
            .map(|s| {
                let (host, port) = port_of(&dbtrail_testkit::url(*s).expect("server configured"));
                format!("\"mysql://dbtrail@{host}:{port}\"")
            })
            .collect();
        let config = write_config_text(&dir, &format!("urls = [{}]", urls.join(", ")), extra);
        Daemon::launch(tmp, dir, config)
    }

    /// [`Daemon::start`] with the source's url at `addr` (a [`proxy::Proxy`] to `server`).
    pub fn start_via(addr: std::net::SocketAddr, extra: &str) -> Daemon {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let config = write_config_at(&dir, &addr.ip().to_string(), addr.port(), "dbtrail", extra);
        Daemon::launch(tmp, dir, config)
    }

    /// Starts the process on `dir` (inside `tmp`, kept until the daemon is dropped).
    fn launch(tmp: tempfile::TempDir, dir: PathBuf, config: PathBuf) -> Daemon {
        let mut d = Daemon {
            child: None,
            socket: dir.join("dbtrail.sock"),
            dir,
            _tmp: Some(tmp),
            source: "src".into(),
            config,
        };
        d.spawn();
        d
    }

    /// (Re)starts the process on the same directory and config.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dbtraild.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_dbtraild"))
            .arg("--config")
            .arg(&self.config)
            .env("DBTRAIL_PASSWORD_SRC", PASSWORD)
            .env("DBTRAIL_LOG", "info,dbtraild=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn dbtraild");
        self.child = Some(child);
    }

    /// The daemon's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dbtraild.log")).unwrap_or_default()
    }

    pub fn client(&self) -> Client {
        Client::new(&self.socket)
    }

    /// kill -9.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls status until `pred` holds, or panics with the last status and the log.
    pub async fn wait_status(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&SourceStatus) -> bool,
    ) -> SourceStatus {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Ok(s) = self.client().status(&self.source).await {
                if pred(&s) {
                    return s;
                }
                last = Some(s);
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; last status: {last:#?}\n--- daemon log ---\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until capture streams.
    pub async fn wait_streaming(&self) -> SourceStatus {
        self.wait_status("streaming", Duration::from_secs(60), |s| {
            s.state == SourceState::Streaming
        })
        .await
    }

    /// Waits until everything the server has written so far is durable in the log.
    pub async fn wait_caught_up(&self, db: &TestDb) -> SourceStatus {
        let (file, pos) = db.binlog_position().await;
        self.wait_status(
            &format!("capture to reach {file}:{pos}"),
            Duration::from_secs(60),
            |s| (s.binlog_file.as_str(), s.binlog_pos) >= (file.as_str(), pos),
        )
        .await
    }
}

impl Daemon {
    /// Starts a backup through the API and waits for it to end.
    pub async fn backup(&self) -> dbtrail_core::baseline::BaselineManifest {
        let started = self
            .client()
            .start_backup(&self.source)
            .await
            .expect("start");
        let b = self
            .wait_job(&started.backup_id)
            .await
            .unwrap_or_else(|e| panic!("backup failed: {e}\n{}", self.log()));
        assert!(b.lock_held_us < 5_000_000);
        b
    }

    /// Waits for the backup (or import) job `id` to end: its baseline, or its error.
    pub async fn wait_job(
        &self,
        id: &str,
    ) -> Result<dbtrail_core::baseline::BaselineManifest, String> {
        use dbtrail_core::api::JobStatus;
        let client = self.client();
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let j = client.backup(&self.source, id).await.expect("job");
            match j.status {
                JobStatus::Running => {}
                JobStatus::Completed => {
                    return Ok(j.baseline.expect("completed job has its baseline"));
                }
                JobStatus::Failed => return Err(j.error.unwrap_or_default()),
            }
            assert!(
                std::time::Instant::now() < deadline,
                "job {id} too slow: {j:?}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every captured event of `db`'s table `table` (up to 100000).
    pub async fn table_events(
        &self,
        db: &TestDb,
        table: &str,
    ) -> dbtrail_core::api::EventsResponse {
        self.client()
            .events(
                &self.source,
                &[
                    ("table", format!("{}.{table}", db.db_name())),
                    ("limit", "100000".into()),
                ],
            )
            .await
            .unwrap_or_else(|e| panic!("events of {table}: {e:#}"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The type matrix: every column type (and variant) at its edge values, per server.
pub fn matrix_columns(server: Server) -> Vec<(&'static str, &'static str)> {
    let mut cols = vec![
        ("ti", "TINYINT"),
        ("tiu", "TINYINT UNSIGNED"),
        ("si", "SMALLINT"),
        ("siu", "SMALLINT UNSIGNED"),
        ("mi", "MEDIUMINT"),
        ("miu", "MEDIUMINT UNSIGNED"),
        ("i", "INT"),
        ("iu", "INT UNSIGNED"),
        ("bi", "BIGINT"),
        ("biu", "BIGINT UNSIGNED"),
        ("f", "FLOAT"),
        ("d", "DOUBLE"),
        ("dec1", "DECIMAL(65,30)"),
        ("dec2", "DECIMAL(10,2) UNSIGNED"),
        ("dec3", "DECIMAL(5,0)"),
        ("dec4", "DECIMAL(20,10)"),
        ("b1", "BIT(1)"),
        ("b13", "BIT(13)"),
        ("b64", "BIT(64)"),
        ("y", "YEAR"),
        ("dt", "DATE"),
        ("dt0", "DATETIME"),
        ("dt3", "DATETIME(3)"),
        ("dt6", "DATETIME(6)"),
        ("ts0", "TIMESTAMP NULL"),
        ("ts2", "TIMESTAMP(2) NULL"),
        ("ts6", "TIMESTAMP(6) NULL"),
        ("t0", "TIME"),
        ("t1", "TIME(1)"),
        ("t2", "TIME(2)"),
        ("t3", "TIME(3)"),
        ("t4", "TIME(4)"),
        ("t5", "TIME(5)"),
        ("t6", "TIME(6)"),
        ("c", "CHAR(10)"),
        ("vc", "VARCHAR(300)"),
        ("vcl", "VARCHAR(20) CHARACTER SET latin1"),
        ("bn", "BINARY(4)"),
        ("vb", "VARBINARY(10)"),
        ("tx", "TEXT"),
        ("bl", "BLOB"),
        ("mt", "MEDIUMTEXT CHARACTER SET utf8mb4"),
        ("lb", "LONGBLOB"),
        ("e", "ENUM('a','b','c')"),
        ("s", "SET('x','y','z')"),
        ("j", "JSON"),
        ("g", "GEOMETRY"),
    ];
    if !server.is_mariadb() {
        cols.push(("gen", "BIGINT AS (i + 1) VIRTUAL"));
    }
    cols
}

/// The type matrix's edge rows as column -> SQL literal (ids 1.. in order): maxima, minima,
/// and a row of defaults. FLOATs have at most 6 significant digits (the server prints 6).
pub fn matrix_rows() -> Vec<Vec<(&'static str, &'static str)>> {
    let max = vec![
        ("ti", "127"),
        ("tiu", "255"),
        ("si", "32767"),
        ("siu", "65535"),
        ("mi", "8388607"),
        ("miu", "16777215"),
        ("i", "2147483647"),
        ("iu", "4294967295"),
        ("bi", "9223372036854775807"),
        ("biu", "18446744073709551615"),
        ("f", "3.40282e38"),
        ("d", "1.7976931348623157e308"),
        (
            "dec1",
            "99999999999999999999999999999999999.999999999999999999999999999999",
        ),
        ("dec2", "99999999.99"),
        ("dec3", "-99999"),
        ("dec4", "-1234567890.0123456789"),
        ("b1", "b'1'"),
        ("b13", "b'1010101010101'"),
        ("b64", "0xFFFFFFFFFFFFFFFF"),
        ("y", "2155"),
        ("dt", "'9999-12-31'"),
        ("dt0", "'9999-12-31 23:59:59'"),
        ("dt3", "'9999-12-31 23:59:59.999'"),
        ("dt6", "'9999-12-31 23:59:59.999999'"),
        ("ts0", "'2038-01-19 03:14:07'"),
        ("ts2", "'2038-01-19 03:14:07.99'"),
        ("ts6", "'2038-01-19 03:14:07.999999'"),
        ("t0", "'838:59:59'"),
        ("t1", "'-838:59:58.9'"),
        ("t2", "'-00:00:00.01'"),
        ("t3", "'-12:34:56.789'"),
        ("t4", "'100:00:00.0001'"),
        ("t5", "'-00:00:00.00001'"),
        ("t6", "'-838:59:59.000000'"),
        ("c", "'abc'"),
        ("vc", "REPEAT('é', 300)"),
        ("vcl", "_latin1 X'E9FF41'"),
        ("bn", "X'00010000'"),
        ("vb", "X'FF00'"),
        ("tx", "'line1\\nline2 \\' \" \\\\'"),
        ("bl", "X'00FF7F80'"),
        ("mt", "'😀 ünï'"),
        ("lb", "REPEAT(X'AB00', 40000)"),
        ("e", "'c'"),
        ("s", "'x,z'"),
        (
            "j",
            "'{\"a\": [1, 2.5, \"x\", null, true], \"b\": {\"c\": 18446744073709551615, \"d\": -3}}'",
        ),
        ("g", "ST_GeomFromText('POINT(1 2)')"),
    ];
    let min = vec![
        ("ti", "-128"),
        ("tiu", "0"),
        ("si", "-32768"),
        ("siu", "0"),
        ("mi", "-8388608"),
        ("miu", "0"),
        ("i", "-2147483648"),
        ("iu", "0"),
        ("bi", "-9223372036854775808"),
        ("biu", "0"),
        ("f", "-1.17549e-38"),
        ("d", "-2.2250738585072014e-308"),
        (
            "dec1",
            "-99999999999999999999999999999999999.999999999999999999999999999999",
        ),
        ("dec2", "0.00"),
        ("dec3", "0"),
        ("dec4", "0.0000000001"),
        ("b1", "b'0'"),
        ("b13", "0"),
        ("b64", "0"),
        ("y", "0"),
        ("dt", "'0000-00-00'"),
        ("dt0", "'0000-00-00 00:00:00'"),
        ("dt3", "'1000-01-01 00:00:00.001'"),
        ("dt6", "'2000-02-29 12:00:00.000001'"),
        ("ts0", "'1970-01-01 00:00:01'"),
        ("ts2", "'0000-00-00 00:00:00'"),
        ("ts6", "'1970-01-01 00:00:01.000001'"),
        ("t0", "'-838:59:59'"),
        ("t1", "'-00:00:00.1'"),
        ("t2", "'-01:00:00.99'"),
        ("t3", "'00:00:00.001'"),
        ("t4", "'-23:59:59.9999'"),
        ("t5", "'24:00:00.00001'"),
        ("t6", "'838:59:59.000000'"),
        ("c", "''"),
        ("vc", "''"),
        ("vcl", "''"),
        ("bn", "X''"),
        ("vb", "X''"),
        ("tx", "''"),
        ("bl", "X''"),
        ("mt", "''"),
        ("lb", "X''"),
        ("e", "''"),
        ("s", "''"),
        ("j", "'[]'"),
        ("g", "ST_GeomFromText('LINESTRING(0 0, 1 1.5)')"),
    ];
    vec![max, min, Vec::new()]
}

/// The rows of a live table as the snapshot reader converts them (UTC, raw bytes), sorted by
/// their encoding: the form every test compares restored and reconstructed tables in.
pub async fn table_rows(db: &TestDb, table: &dbtrail_core::TableRef) -> Vec<dbtrail_core::Row> {
    use mysql_async::prelude::Queryable;
    let mut conn = db.conn().await;
    conn.query_drop("SET SESSION character_set_results = binary, time_zone = '+00:00'")
        .await
        .expect("session");
    let schema = dbtrail_binlog::snapshot::table_schema(&mut conn, table)
        .await
        .unwrap_or_else(|e| panic!("schema of {table}: {e}"));
    let mut rows = Vec::new();
    dbtrail_binlog::snapshot::read_table(&mut conn, &schema, |r| {
        rows.push(r);
        Ok(())
    })
    .await
    .expect("read");
    rows.sort_by_cached_key(dbtrail_core::codec::encode);
    rows
}

/// Starts a restore and waits for it; returns the output directory.
pub async fn restore(
    daemon: &Daemon,
    req: dbtrail_core::api::PitrRequest,
    out: &Path,
) -> Result<(), String> {
    let mut req = req;
    req.output = Some(out.display().to_string());
    let client = daemon.client();
    let started = client
        .pitr(&daemon.source, &req)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let id = started.pitr_id.expect("a job id");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let j = client.pitr_job(&daemon.source, &id).await.expect("job");
        match j.status {
            dbtrail_core::api::JobStatus::Running => {}
            dbtrail_core::api::JobStatus::Completed => {
                assert!(j.size_bytes.unwrap_or(0) > 0 && j.file_count.unwrap_or(0) > 0);
                return Ok(());
            }
            dbtrail_core::api::JobStatus::Failed => return Err(j.error.unwrap_or_default()),
        }
        assert!(std::time::Instant::now() < deadline, "restore too slow");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `myloader -d dir -B into -o`.
pub fn myloader(db: &TestDb, dir: &Path, into: &str) {
    let opts = mysql_async::Opts::from_url(db.server_url()).expect("url");
    let out = std::process::Command::new("myloader")
        .args(["-h", opts.ip_or_hostname()])
        .args(["-P", &opts.tcp_port().to_string()])
        .args(["-u", opts.user().unwrap_or("root")])
        .args(["-B", into, "-o", "-d"])
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("myloader is required (apt install mydumper): {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("CRITICAL"),
        "myloader failed: {stderr}"
    );
}

/// The rows of `db`.`table` as the server itself prints them: per row, `HEX()` of every
/// column (invisible and generated ones too, in table order; NULL as `NULL`), read in UTC,
/// sorted. The expected side of the restore oracles: it never goes through dbtrail's code.
pub async fn hex_rows(conn: &mut mysql_async::Conn, db: &str, table: &str) -> Vec<String> {
    use mysql_async::prelude::Queryable;
    conn.query_drop("SET SESSION time_zone = '+00:00'")
        .await
        .expect("time zone");
    let cols: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await
        .expect("columns");
    assert!(!cols.is_empty(), "{db}.{table} has no columns");
    let exprs: Vec<String> = cols
        .iter()
        .map(|c| format!("IFNULL(HEX(`{}`), 'NULL')", c.replace('`', "``")))
        .collect();
    let sql = format!(
        "SELECT CONCAT_WS('|', {}) FROM `{}`.`{}`",
        exprs.join(", "),
        db.replace('`', "``"),
        table.replace('`', "``")
    );
    let mut rows: Vec<String> = conn
        .query(&sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.sort();
    rows
}

/// `mydumper -B <test db> -o dir` (apt mydumper 0.10).
pub fn run_mydumper(db: &TestDb, dir: &Path) {
    let opts = mysql_async::Opts::from_url(db.server_url()).expect("server url");
    let out = std::process::Command::new("mydumper")
        .args(["-h", opts.ip_or_hostname()])
        .args(["-P", &opts.tcp_port().to_string()])
        .args(["-u", opts.user().unwrap_or("root")])
        .args(["-B", db.db_name()])
        .args(["--long-query-guard", "86400"])
        .arg("-o")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("mydumper is required for this test (apt install mydumper): {e}")
        });
    assert!(
        out.status.success(),
        "mydumper failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Connection arguments of the `mysql` client for `db`'s server (root over TCP).
pub fn mysql_client_args(db: &TestDb) -> Vec<String> {
    let opts = mysql_async::Opts::from_url(db.server_url()).expect("url");
    vec![
        "-h".into(),
        opts.ip_or_hostname().to_string(),
        "-P".into(),
        opts.tcp_port().to_string(),
        "-u".into(),
        opts.user().unwrap_or("root").to_string(),
    ]
}

/// The server's clock (µs, UTC): oracle points are placed on the source's own time.
pub async fn server_now_us(conn: &mut mysql_async::Conn) -> i64 {
    use mysql_async::prelude::Queryable;
    let v: Option<i64> = conn
        .query_first("SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)")
        .await
        .expect("now");
    v.expect("now")
}

/// Waits until the server's clock is in a later whole second than `us` (20 ms into it).
pub async fn next_second(conn: &mut mysql_async::Conn, us: i64) {
    let boundary = (us.div_euclid(1_000_000) + 1) * 1_000_000 + 20_000;
    loop {
        let now = server_now_us(conn).await;
        if now >= boundary {
            return;
        }
        tokio::time::sleep(Duration::from_micros((boundary - now) as u64)).await;
    }
}

/// The whole second of `us` as a `--at` target (UTC).
pub fn utc_second(us: i64) -> String {
    dbtrail_core::value::utc_datetime(us.div_euclid(1_000_000) * 1_000_000).to_mysql_string(0)
}

/// The source's executed GTID set now (None without GTIDs), read with its own SQL.
pub async fn gtid_now(db: &TestDb) -> Option<String> {
    match db.server() {
        Server::MariaDb => db.query_value("SELECT @@GLOBAL.gtid_binlog_pos").await,
        s if s.has_gtids() => Some(db.gtid_executed().await),
        _ => None,
    }
}

/// Polls the daemon's baselines until a table image holding `table` was taken after
/// `after_us` (the daemon's images after DDL); returns its id.
pub async fn wait_table_image(daemon: &Daemon, db: &TestDb, table: &str, after_us: i64) -> String {
    let t = dbtrail_core::TableRef::new(db.db_name(), table);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let b = daemon
            .client()
            .backups(&daemon.source)
            .await
            .expect("backups");
        if let Some(m) = b.baselines.iter().find(|m| {
            m.origin == dbtrail_core::baseline::BaselineOrigin::TableImage
                && m.snapshot_us > after_us
                && m.table(&t).is_some()
        }) {
            return m.id.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no table image of {t} after the DDL: {:#?}\n{}",
            b.baselines
                .iter()
                .map(|m| (&m.id, m.origin, m.tables.len()))
                .collect::<Vec<_>>(),
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The config lines of an S3 baseline store at `s3://BUCKET/{prefix}` of the test S3
/// server, its secret key `secret` written (mode 0600) to a file in `dir`.
pub fn s3_store_config(s3: &dbtrail_testkit::S3, dir: &Path, prefix: &str, secret: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let file = dir.join("s3-secret");
    std::fs::write(&file, secret).expect("secret");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    format!(
        "baseline_store = \"s3://{}/{prefix}\"\ns3_endpoint = \"{}\"\ns3_region = \"{}\"\n\
         s3_access_key_id = \"{}\"\ns3_secret_access_key_file = \"{}\"\n",
        s3.bucket,
        s3.endpoint,
        s3.region,
        s3.access_key,
        file.display()
    )
}

/// A small deterministic generator for test writers (xorshift): `next(n)` is in `0..n`.
pub fn xorshift(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut r: u64 = 0x9E37_79B9_7F4A_7C15 ^ seed;
    move |n: u64| {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        r % n.max(1)
    }
}

/// The `dbtrailctl` binary of this build, when it was built (next to `deps/`).
pub fn ctl_binary() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("dbtrailctl");
    p.exists().then_some(p)
}

/// Creates the type-matrix table `tm` (every column of [`matrix_columns`]) on `db` with
/// `rows` (ids 1, 2, ...).
pub async fn create_matrix(db: &TestDb, rows: &[Vec<(&str, &str)>]) {
    use mysql_async::prelude::Queryable;
    let defs: Vec<String> = matrix_columns(db.server())
        .iter()
        .map(|(c, t)| format!("`{c}` {t}"))
        .collect();
    let mut conn = db.conn().await;
    for s in [
        "SET SESSION sql_mode = ''".to_string(),
        "SET time_zone = '+00:00'".to_string(),
        format!(
            "CREATE TABLE tm (id INT NOT NULL PRIMARY KEY, {}) DEFAULT CHARSET=utf8mb4",
            defs.join(", ")
        ),
    ] {
        conn.query_drop(s).await.expect("setup");
    }
    for (n, row) in rows.iter().enumerate() {
        let names: Vec<String> = std::iter::once("id".to_string())
            .chain(row.iter().map(|(c, _)| format!("`{c}`")))
            .collect();
        let vals: Vec<String> = std::iter::once((n + 1).to_string())
            .chain(row.iter().map(|(_, v)| v.to_string()))
            .collect();
        conn.query_drop(format!(
            "INSERT INTO tm ({}) VALUES ({})",
            names.join(", "),
            vals.join(", ")
        ))
        .await
        .unwrap_or_else(|e| panic!("{}: insert row {}: {e}", db.server(), n + 1));
    }
}
