//! Benchmarks, and the setup the drivers in src/bin share: the test server (its settings,
//! connections and the SQL helpers of the workloads), the real `dbtraild` process (its
//! configuration, start, stop and waits), and what /proc says about a process (CPU time,
//! peak RSS).
use anyhow::{Context, Result, bail};
use dbtrail_binlog::stream::SourceSpec;
use dbtrail_core::api::SourceState;
use dbtrail_core::gtid::MysqlGtidSet;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where `scripts/testdb up` writes the test servers' connection settings.
pub const TESTDB_ENV: &str = "/var/tmp/dbtrail-testdb/env";
/// The name of the one source of the daemons the benches run.
pub const SOURCE: &str = "bench";

/// A setting from the environment, else from the testdb env file.
pub fn testdb_setting(key: &str) -> Option<String> {
    if let Ok(v) = std::env::var(key)
        && !v.is_empty()
    {
        return Some(v);
    }
    let text = std::fs::read_to_string(TESTDB_ENV).ok()?;
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
}

/// `--url`, else the MySQL test server with GTIDs.
pub fn gtid_server_url(url: Option<&str>) -> Result<String> {
    url.map(str::to_string)
        .or_else(|| testdb_setting("DBTRAIL_TEST_MYSQL_GTID_URL"))
        .context("no --url, no $DBTRAIL_TEST_MYSQL_GTID_URL and no testdb env file")
}

/// `--sid-root`, else the test bed's chroot; an empty path means none (tools from PATH).
pub fn sid_root(arg: Option<&Path>) -> Option<PathBuf> {
    match arg {
        Some(p) if p.as_os_str().is_empty() => None,
        Some(p) => Some(p.to_path_buf()),
        None => testdb_setting("DBTRAIL_TEST_SID_ROOT").map(PathBuf::from),
    }
}

/// The server's address and account.
pub struct Server {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password, when the URL has one.
    pub password: Option<String>,
    opts: mysql_async::Opts,
}

impl Server {
    /// The server of a `mysql://` URL.
    pub fn from_url(url: &str) -> Result<Server> {
        let opts =
            mysql_async::Opts::from_url(url).with_context(|| format!("parsing the url {url}"))?;
        Ok(Server {
            host: opts.ip_or_hostname().to_string(),
            port: opts.tcp_port(),
            user: opts.user().unwrap_or("root").to_string(),
            password: opts.pass().map(str::to_string),
            opts,
        })
    }

    /// A client connection.
    pub async fn connect(&self) -> Result<Conn> {
        Conn::new(self.opts.clone())
            .await
            .with_context(|| format!("connecting to {}:{}", self.host, self.port))
    }

    /// `-h HOST -P PORT -u USER [-p PW]` for mydumper and myloader.
    pub fn my_args(&self, cmd: &mut Command) {
        cmd.args(["-h", &self.host])
            .args(["-P", &self.port.to_string()])
            .args(["-u", &self.user]);
        if let Some(p) = &self.password {
            cmd.args(["-p", p]);
        }
    }

    /// The URL a dbtraild source names it by (without the password, which dbtraild refuses
    /// in a URL).
    pub fn daemon_url(&self) -> String {
        format!("mysql://{}@{}:{}", self.user, self.host, self.port)
    }

    /// How dbtrail's replication stream connects, registering as `replica_server_id`.
    pub fn spec(&self, replica_server_id: u32) -> SourceSpec {
        SourceSpec {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            password: self.password.clone(),
            replica_server_id,
            heartbeat: Duration::from_secs(5),
            tls: Default::default(),
        }
    }
}

/// Runs `sql` and returns its affected rows.
pub async fn exec(conn: &mut Conn, sql: &str) -> Result<u64> {
    conn.query_drop(sql)
        .await
        .with_context(|| format!("running {}", sql.chars().take(100).collect::<String>()))?;
    Ok(conn.affected_rows())
}

/// `c`/`pad` values as sysbench makes them: groups of 11 random digits joined by '-'.
pub fn digit_groups(groups: usize) -> String {
    let g = "LPAD(CAST(FLOOR(RAND() * 99999999999) AS UNSIGNED), 11, '0')";
    format!("CONCAT_WS('-', {})", vec![g; groups].join(", "))
}

/// `@@GLOBAL.gtid_executed`.
pub async fn gtid_executed(conn: &mut Conn) -> Result<MysqlGtidSet> {
    let s: String = conn
        .query_first("SELECT @@GLOBAL.gtid_executed")
        .await?
        .context("reading @@gtid_executed")?;
    s.parse::<MysqlGtidSet>()
        .with_context(|| format!("parsing @@gtid_executed {s:?}"))
}

/// Bytes of the files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Bytes in MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Clock ticks per second (`getconf CLK_TCK`).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// user + system CPU seconds of a process so far.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks())
}

/// Peak resident set size (VmHWM) of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The server's process on this host, for its CPU time (the testdb servers run in a chroot:
/// the pid file is looked up there too).
pub async fn server_pid(server: &Server) -> Option<u32> {
    let mut conn = server.connect().await.ok()?;
    let file: Option<String> = conn.query_first("SELECT @@pid_file").await.ok()?;
    let _ = conn.disconnect().await;
    let file = PathBuf::from(file?);
    let mut candidates = vec![file.clone()];
    if let Some(root) = testdb_setting("DBTRAIL_TEST_SID_ROOT") {
        candidates.push(Path::new(&root).join(file.strip_prefix("/").unwrap_or(&file)));
    }
    candidates.into_iter().find_map(|p| {
        let pid: u32 = std::fs::read_to_string(p).ok()?.trim().parse().ok()?;
        cpu_secs(pid).map(|_| pid)
    })
}

/// The `dbtraild` binary: `arg`, else the one next to this executable.
pub fn dbtraild_path(arg: Option<&Path>) -> Result<PathBuf> {
    let path = match arg {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()?
            .parent()
            .context("this executable has no directory")?
            .join("dbtraild"),
    };
    if !path.is_file() {
        bail!(
            "{} not found: build it first with \
             `CARGO_TARGET_DIR=/var/cache/dbtrail-target cargo build --release -p dbtraild` \
             (the same target directory and profile as this bench), or pass --dbtraild",
            path.display()
        );
    }
    Ok(path)
}

/// The files of a bench's daemon, under its work directory.
pub struct DaemonFiles {
    /// `dbtrail.toml`.
    pub config: PathBuf,
    /// `dbtraild/`: its data_dir.
    pub data_dir: PathBuf,
    /// `dbtrail.sock`: its API socket.
    pub socket: PathBuf,
    /// `dbtraild.log`: its stdout and stderr.
    pub log: PathBuf,
}

impl DaemonFiles {
    /// Writes the configuration of a daemon with one source, [`SOURCE`], on `server`,
    /// registering as `replica_server_id`, whose backups read `db` over `backup_connections`
    /// connections.
    pub fn write(
        work: &Path,
        server: &Server,
        replica_server_id: u32,
        backup_connections: usize,
        db: &str,
    ) -> Result<DaemonFiles> {
        let files = DaemonFiles {
            config: work.join("dbtrail.toml"),
            data_dir: work.join("dbtraild"),
            socket: work.join("dbtrail.sock"),
            log: work.join("dbtraild.log"),
        };
        std::fs::write(
            &files.config,
            format!(
                "data_dir = {:?}\nsocket = {:?}\nmetrics_addr = \"\"\n\n[[sources]]\n\
                 name = \"{SOURCE}\"\nurl = {:?}\nreplica_server_id = {replica_server_id}\n\
                 backup_connections = {backup_connections}\nbackup_databases = [\"{db}\"]\n",
                files.data_dir.display().to_string(),
                files.socket.display().to_string(),
                server.daemon_url(),
            ),
        )
        .with_context(|| format!("writing {}", files.config.display()))?;
        Ok(files)
    }
}

/// The daemon, stopped with SIGTERM (then SIGKILL) when dropped.
pub struct Daemon {
    /// The process.
    pub child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `binary --config config`, its output appended to `log`, the server's password
    /// (if any) in the environment.
    pub fn start(binary: &Path, config: &Path, log: &Path, server: &Server) -> Result<Daemon> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut cmd = Command::new(binary);
        cmd.arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        if let Some(p) = &server.password {
            cmd.env("DBTRAIL_PASSWORD_BENCH", p);
        }
        eprintln!(
            "dbtrail: {} --config {}",
            binary.display(),
            config.display()
        );
        Ok(Daemon {
            child: cmd
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?,
            log: log.to_path_buf(),
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last 20 lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM, then wait up to 30 s; returns the exit status.
    pub fn stop(&mut self) -> Result<std::process::ExitStatus> {
        if let Some(s) = self.child.try_wait()? {
            return Ok(s);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        Ok(self.child.wait()?)
    }

    /// Waits until the source streams.
    pub async fn wait_streaming(&mut self, client: &dbtrail_ctl::Client) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = self.child.try_wait()? {
                bail!(
                    "dbtraild exited ({s}) before streaming:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(st) = client.status(SOURCE).await {
                match st.state {
                    SourceState::Streaming => return Ok(()),
                    SourceState::Failed => bail!(
                        "dbtraild's source failed: {}\n{}",
                        st.error.unwrap_or_default(),
                        self.log_tail()
                    ),
                    _ => {}
                }
            }
            if Instant::now() > deadline {
                bail!("dbtraild is not streaming after 60s:\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until capture holds `want` and reports itself caught up (lag < 1 s).
    pub async fn wait_captured(
        &mut self,
        client: &dbtrail_ctl::Client,
        want: &MysqlGtidSet,
    ) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(s) = self.child.try_wait()? {
                bail!("dbtraild exited ({s}):\n{}", self.log_tail());
            }
            let st = client.status(SOURCE).await?;
            if st.state == SourceState::Failed {
                bail!(
                    "dbtraild's source failed: {}\n{}",
                    st.error.unwrap_or_default(),
                    self.log_tail()
                );
            }
            let have: MysqlGtidSet = st
                .captured_gtid_set
                .parse()
                .with_context(|| format!("parsing {:?}", st.captured_gtid_set))?;
            if st.state == SourceState::Streaming
                && want.is_subset(&have)
                && st.lag_seconds.is_some_and(|l| l < 1.0)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "capture does not hold the changes after 300s (captured {}, want {want}, \
                     lag {:?})",
                    st.captured_gtid_set,
                    st.lag_seconds
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
