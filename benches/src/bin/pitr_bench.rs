//! pitr_bench: dbtrail's point-in-time restore beside the classic procedure and beside a
//! plain mydumper of the same state, same table, same machine, same run.
//!
//! On the MySQL test server with GTIDs:
//! 1. fills `bench_pitr.sbtest1` (sysbench-like, default 2M rows, not binlogged), starts the
//!    real `dbtraild` (release build next to this executable; one source, `backup_connections
//!    = 4`, `backup_databases = ["bench_pitr"]`), takes a baseline through the API and, right
//!    after it, `mydumper -B bench_pitr` (the classic procedure's starting dump; nothing writes
//!    to bench_pitr in between), and records the baseline's binlog position;
//! 2. makes `--changes` row changes (UPDATE `k = k + 1` and a new `c` of random ids, DELETE
//!    of random ids, INSERT of new ids; 1000 rows per transaction), then picks the target
//!    second T: the first whole second after the last change committed, and waits until it
//!    is past; records the final state's row count and checksum; with
//!    `--changes-after-target N`, then makes N more changes, which every restore must leave
//!    out (the target is then "a while before now");
//! 3. restarts `dbtraild` (so its peak RSS is the restore's, not the backup's), waits until
//!    capture holds every change, then times `POST .../pitr` with `target_time = T` and an
//!    output directory, polled every 50 ms until the job completes; reads the daemon's
//!    VmHWM; then the same target with `--image baseline` (forward from the baseline) and
//!    `--image live` (a table image of the live table, nothing to undo), each printed with
//!    the events it replayed; stops the daemon;
//! 4. times the classic procedure: `myloader` of the starting dump into
//!    `bench_pitr_classic`, `mysqlbinlog --read-from-remote-server --start-position=POS
//!    --stop-datetime=T+1s --rewrite-db=... --database=... --skip-gtids --disable-log-bin
//!    FILES | mysql`, then `mydumper -B bench_pitr_classic`;
//! 5. times `mydumper -B bench_pitr` of the final state alone;
//! 6. imports dbtrail's output with myloader into `bench_pitr_dbtrail` and the live-image
//!    restore into `bench_pitr_live` (not timed) and compares `COUNT(*)` and `BIT_XOR(CRC32(CONCAT_WS('#', id, k, c, pad)))` of the three.
//!
//! Goals (acceptance): classic / dbtrail >= 20, dbtrail / mydumper-of-state <= 1. Run from
//! the workspace root: `cargo build --release -p dbtraild -p dbtrail-benches` then
//! `cargo run --release -p dbtrail-benches --bin pitr_bench`.
use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use dbtrail_benches::{
    Daemon, DaemonFiles, SOURCE, Server, cpu_secs, dbtraild_path, digit_groups, dir_bytes, exec,
    gtid_executed, gtid_server_url, mib, peak_rss_kib, server_pid, sid_root,
};
use dbtrail_core::api::{JobStatus, PitrJobView, PitrRequest};
use dbtrail_core::gtid::MysqlGtidSet;
use dbtrail_core::value::timestamp_to_utc_string;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The database the table lives in (the live final state).
const DB: &str = "bench_pitr";
/// Where the classic procedure restores to.
const DB_CLASSIC: &str = "bench_pitr_classic";
/// Where dbtrail's output is imported for the check.
const DB_DBTRAIL: &str = "bench_pitr_dbtrail";
/// Where the restore from the live table is imported for the check.
const DB_LIVE: &str = "bench_pitr_live";
/// Where `pitr --into` loads the table (on the same server, next to the live one).
const DB_INTO: &str = "bench_pitr_into";
/// server_id the daemon's capture registers with (capture_bench: 4_242_001, backup_bench:
/// 4_242_002).
const REPLICA_SERVER_ID: u32 = 4_242_003;
/// Rows per generating INSERT ... SELECT.
const GEN_CHUNK: u64 = 100_000;

#[derive(Parser, Debug)]
#[command(about = "PITR: dbtraild's restore vs myloader + mysqlbinlog | mysql + mydumper")]
struct Args {
    /// MySQL server with GTIDs [default: $DBTRAIL_TEST_MYSQL_GTID_URL, else the testdb env file]
    #[arg(long)]
    url: Option<String>,
    /// Rows in bench_pitr.sbtest1 at the baseline.
    #[arg(long, default_value_t = 2_000_000)]
    rows: u64,
    /// Row changes after the baseline (80% updates, 10% deletes, 10% inserts).
    #[arg(long, default_value_t = 300_000)]
    changes: u64,
    /// Rows per change transaction.
    #[arg(long, default_value_t = 1000)]
    rows_per_txn: u64,
    /// Row changes made AFTER the target (the restores must undo or skip them): with them the
    /// target is "a while before now", the case a restore from the live table is for.
    #[arg(long, default_value_t = 0)]
    changes_after_target: u64,
    /// Threads of mydumper/myloader (-t) and backup_connections of dbtraild.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Seed of the random ids the changes touch.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Root of the chroot that holds mysqlbinlog and mysql 9.x [default:
    /// $DBTRAIL_TEST_SID_ROOT, else the testdb env file]; an empty string runs them from PATH.
    #[arg(long)]
    sid_root: Option<PathBuf>,
    /// mydumper binary.
    #[arg(long, default_value = "/usr/bin/mydumper")]
    mydumper: PathBuf,
    /// myloader binary.
    #[arg(long, default_value = "/usr/bin/myloader")]
    myloader: PathBuf,
    /// dbtraild binary [default: next to this executable].
    #[arg(long)]
    dbtraild: Option<PathBuf>,
    /// Keep the databases (bench_pitr, bench_pitr_classic, bench_pitr_dbtrail) and the
    /// work directory afterwards.
    #[arg(long)]
    keep: bool,
}

/// xorshift64*: reproducible random ids without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in 1..=n.
    fn id(&mut self, n: u64) -> u64 {
        1 + self.next() % n
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// The 1-minute load average (other work on the machine skews every figure).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// CPU seconds of mysqld between two readings.
struct ServerCpu(Option<u32>);

impl ServerCpu {
    fn now(&self) -> Option<f64> {
        self.0.and_then(cpu_secs)
    }
}

fn delta(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(b? - a?)
}

/// What one timed step measured.
#[derive(Clone, Debug, Default)]
struct Step {
    label: String,
    secs: f64,
    /// Rows the step handled (for rows/s).
    rows: u64,
    peak_rss_kib: Option<u64>,
    cpu_secs: Option<f64>,
    server_cpu_secs: Option<f64>,
    out_bytes: Option<u64>,
}

/// The fields GNU time -v wrote to `file`.
fn time_fields(file: &Path) -> (Option<u64>, Option<f64>) {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let field = |name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    let rss = field("Maximum resident set size (kbytes):").map(|k| k as u64);
    let cpu = match (
        field("User time (seconds):"),
        field("System time (seconds):"),
    ) {
        (Some(u), Some(s)) => Some(u + s),
        _ => None,
    };
    (rss, cpu)
}

/// `/usr/bin/time -v -o TIMEFILE program`.
fn timed_command(program: impl AsRef<std::ffi::OsStr>, time_file: &Path) -> Command {
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-v").arg("-o").arg(time_file).arg(program);
    cmd
}

/// Runs `cmd` (built by [`timed_command`]) to completion; fails with its stderr.
fn run_timed(
    label: &str,
    mut cmd: Command,
    time_file: &Path,
    mysqld: &ServerCpu,
    rows: u64,
) -> Result<Step> {
    eprintln!("{label}");
    let server_before = mysqld.now();
    let started = Instant::now();
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {label} (apt install time mydumper)"))?;
    let secs = started.elapsed().as_secs_f64();
    let server_cpu_secs = delta(server_before, mysqld.now());
    ensure!(
        output.status.success(),
        "{label} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let (peak_rss_kib, cpu_secs) = time_fields(time_file);
    Ok(Step {
        label: label.to_string(),
        secs,
        rows,
        peak_rss_kib,
        cpu_secs,
        server_cpu_secs,
        out_bytes: None,
    })
}

/// The init-command mydumper needs on MySQL 9.x: it defaults explain_format to TREE, and
/// mydumper 0.10 reads row estimates from a TRADITIONAL EXPLAIN (only used with -r, which
/// this bench does not pass; kept so every mydumper run here is the same as backup_bench's).
fn mydumper_defaults(work: &Path) -> Result<PathBuf> {
    let defaults = work.join("mydumper.cnf");
    std::fs::write(
        &defaults,
        "[mydumper]\ninit-command=SET SESSION explain_format=TRADITIONAL\n",
    )?;
    Ok(defaults)
}

/// What the mydumper and myloader runs share.
struct Tools<'a> {
    args: &'a Args,
    server: &'a Server,
    mysqld: &'a ServerCpu,
    work: &'a Path,
}

impl Tools<'_> {
    /// `mydumper -B db -t N -o out` under GNU time.
    fn mydumper(&self, db: &str, out: &Path, label: &str, rows: u64) -> Result<Step> {
        let tf = self.work.join(format!("time.{db}.mydumper"));
        let mut cmd = timed_command(&self.args.mydumper, &tf);
        cmd.arg("--defaults-file")
            .arg(mydumper_defaults(self.work)?);
        self.server.my_args(&mut cmd);
        cmd.args(["-B", db])
            .args(["-t", &self.args.threads.to_string()])
            .arg("-o")
            .arg(out);
        let mut step = run_timed(label, cmd, &tf, self.mysqld, rows)?;
        step.out_bytes = Some(dir_bytes(out));
        Ok(step)
    }

    /// `myloader -d dir -B db -o -t N` under GNU time.
    fn myloader(&self, dir: &Path, db: &str, label: &str, rows: u64) -> Result<Step> {
        let tf = self.work.join(format!("time.{db}.myloader"));
        let mut cmd = timed_command(&self.args.myloader, &tf);
        self.server.my_args(&mut cmd);
        cmd.arg("-d")
            .arg(dir)
            .args(["-B", db, "-o"])
            .args(["-t", &self.args.threads.to_string()]);
        run_timed(label, cmd, &tf, self.mysqld, rows)
    }
}

/// A client program of the sid chroot (or of PATH) under GNU time.
fn chroot_tool(root: Option<&Path>, tool: &str, time_file: &Path) -> Command {
    match root {
        Some(r) => {
            let mut c = timed_command("chroot", time_file);
            c.arg(r).arg(format!("/usr/bin/{tool}"));
            c
        }
        None => timed_command(tool, time_file),
    }
}

/// The classic replay: `mysqlbinlog ... FILES | mysql`, both under GNU time. Returns the
/// step (peak RSS: the larger of the two; CPU: both).
#[allow(clippy::too_many_arguments)]
fn binlog_replay(
    root: Option<&Path>,
    server: &Server,
    mysqld: &ServerCpu,
    work: &Path,
    start_pos: u64,
    files: &[String],
    stop_datetime: &str,
    rows: u64,
) -> Result<(Step, String)> {
    let tf_binlog = work.join("time.mysqlbinlog");
    let tf_mysql = work.join("time.mysql");
    let mut binlog_args = vec![
        "--no-defaults".to_string(),
        "--read-from-remote-server".into(),
        format!("--host={}", server.host),
        format!("--port={}", server.port),
        format!("--user={}", server.user),
        // dbtrail's connection is plain TCP too.
        "--ssl-mode=DISABLED".into(),
        "--get-server-public-key".into(),
        format!("--start-position={start_pos}"),
        // In the local time zone of mysqlbinlog: TZ=UTC below.
        format!("--stop-datetime={stop_datetime}"),
        // Apply bench_pitr's row events to the restored copy, and only those (the shared
        // server's binlog holds other clients' transactions).
        format!("--rewrite-db={DB}->{DB_CLASSIC}"),
        format!("--database={DB_CLASSIC}"),
        // The transactions are already in @@gtid_executed: applied with their GTIDs they would
        // be skipped.
        "--skip-gtids".into(),
        // As myloader (which does not binlog the restore by default).
        "--disable-log-bin".into(),
    ];
    binlog_args.extend(files.iter().cloned());
    let quoted: Vec<String> = binlog_args[1..]
        .iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) if v.contains([' ', '>']) => format!("{k}='{v}'"),
            _ => a.clone(),
        })
        .collect();
    let shown = format!("TZ=UTC mysqlbinlog {} | mysql", quoted.join(" "));
    eprintln!("{shown}");
    let mut binlog_cmd = chroot_tool(root, "mysqlbinlog", &tf_binlog);
    binlog_cmd
        .args(&binlog_args)
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut mysql_cmd = chroot_tool(root, "mysql", &tf_mysql);
    mysql_cmd
        .args([
            "--no-defaults",
            &format!("--host={}", server.host),
            &format!("--port={}", server.port),
            &format!("--user={}", server.user),
            "--ssl-mode=DISABLED",
            "--get-server-public-key",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(p) = &server.password {
        binlog_cmd.env("MYSQL_PWD", p);
        mysql_cmd.env("MYSQL_PWD", p);
    }
    let server_before = mysqld.now();
    let started = Instant::now();
    let mut binlog = binlog_cmd.spawn().context("starting mysqlbinlog")?;
    let pipe = binlog.stdout.take().context("mysqlbinlog's stdout")?;
    let mysql = mysql_cmd
        .stdin(Stdio::from(pipe))
        .spawn()
        .context("starting mysql")?;
    let mysql_out = mysql.wait_with_output()?;
    let binlog_out = binlog.wait_with_output()?;
    let secs = started.elapsed().as_secs_f64();
    let server_cpu_secs = delta(server_before, mysqld.now());
    ensure!(
        binlog_out.status.success(),
        "mysqlbinlog failed ({}):\n{}",
        binlog_out.status,
        String::from_utf8_lossy(&binlog_out.stderr)
    );
    ensure!(
        mysql_out.status.success(),
        "mysql failed ({}):\n{}\n{}",
        mysql_out.status,
        String::from_utf8_lossy(&mysql_out.stdout),
        String::from_utf8_lossy(&mysql_out.stderr)
    );
    let (rss_a, cpu_a) = time_fields(&tf_binlog);
    let (rss_b, cpu_b) = time_fields(&tf_mysql);
    Ok((
        Step {
            label: "mysqlbinlog | mysql".into(),
            secs,
            rows,
            peak_rss_kib: rss_a.max(rss_b),
            cpu_secs: match (cpu_a, cpu_b) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            },
            server_cpu_secs,
            out_bytes: None,
        },
        shown,
    ))
}

/// `COUNT(*)` and `BIT_XOR(CRC32(CONCAT_WS('#', id, k, c, pad)))` of `db.sbtest1`.
async fn checksum(conn: &mut Conn, db: &str) -> Result<(u64, u64)> {
    conn.query_first(format!(
        "SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS('#', id, k, c, pad))) FROM {db}.sbtest1"
    ))
    .await
    .with_context(|| format!("checksumming {db}.sbtest1"))?
    .context("no checksum row")
}

/// Drops the bench's databases without binlogging it.
async fn drop_databases(server: &Server) -> Result<()> {
    let mut conn = server.connect().await?;
    exec(&mut conn, "SET SESSION sql_log_bin = 0").await?;
    for db in [DB, DB_CLASSIC, DB_DBTRAIL, DB_LIVE, DB_INTO] {
        exec(&mut conn, &format!("DROP DATABASE IF EXISTS {db}")).await?;
    }
    conn.disconnect().await?;
    Ok(())
}

/// Creates and fills bench_pitr.sbtest1 (not binlogged: the baseline holds it). Returns
/// the server version and the generation time.
async fn prepare(server: &Server, rows: u64) -> Result<(String, f64)> {
    drop_databases(server).await?;
    let mut conn = server.connect().await?;
    let version: String = conn
        .query_first("SELECT @@version")
        .await?
        .context("reading the version")?;
    eprintln!("generating {rows} rows in {DB}.sbtest1 ({GEN_CHUNK} rows per INSERT)");
    let started = Instant::now();
    exec(&mut conn, "SET SESSION sql_log_bin = 0").await?;
    exec(
        &mut conn,
        &format!("SET SESSION cte_max_recursion_depth = {}", GEN_CHUNK + 1),
    )
    .await?;
    exec(&mut conn, &format!("CREATE DATABASE {DB}")).await?;
    exec(
        &mut conn,
        &format!(
            "CREATE TABLE {DB}.sbtest1 (id INT PRIMARY KEY, k INT NOT NULL, \
             c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL)"
        ),
    )
    .await?;
    let (c, pad) = (digit_groups(10), digit_groups(5));
    let mut a = 1;
    while a <= rows {
        let b = (a + GEN_CHUNK - 1).min(rows);
        exec(
            &mut conn,
            &format!(
                "INSERT INTO {DB}.sbtest1 (id, k, c, pad) \
                 WITH RECURSIVE seq(n) AS (SELECT {a} UNION ALL SELECT n + 1 FROM seq WHERE n < {b}) \
                 SELECT n, FLOOR(1 + RAND() * {rows}), {c}, {pad} FROM seq"
            ),
        )
        .await?;
        a = b + 1;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!("  generated in {secs:.1}s");
    conn.disconnect().await?;
    Ok((version, secs))
}

/// What the changes after the baseline did.
struct Changes {
    updated: u64,
    deleted: u64,
    inserted: u64,
    transactions: u64,
    secs: f64,
    /// `@@gtid_executed` after the last change.
    end: MysqlGtidSet,
    /// The server's clock right after the last change committed (µs, UTC).
    last_us: i64,
    /// The largest id the changes inserted.
    max_id: u64,
}

impl Changes {
    fn rows(&self) -> u64 {
        self.updated + self.deleted + self.inserted
    }
}

/// Row changes of random ids, `per_txn` rows per transaction, until `total` rows changed:
/// of every 10 transactions, 8 UPDATE, 1 DELETE, 1 INSERT.
async fn make_changes(
    server: &Server,
    baseline_rows: u64,
    first_new_id: u64,
    total: u64,
    per_txn: u64,
    seed: u64,
) -> Result<Changes> {
    let mut conn = server.connect().await?;
    exec(
        &mut conn,
        &format!(
            "SET SESSION cte_max_recursion_depth = {}",
            per_txn.max(1000)
        ),
    )
    .await?;
    let mut rng = Rng(seed.max(1) ^ 0x9E37_79B9_7F4A_7C15);
    let (c, pad) = (digit_groups(10), digit_groups(5));
    let (mut updated, mut deleted, mut inserted, mut txns) = (0, 0, 0, 0);
    let mut max_id = first_new_id.max(baseline_rows);
    eprintln!(
        "changing {total} rows of {DB}.sbtest1 ({per_txn} rows per transaction: 80% UPDATE, \
         10% DELETE, 10% INSERT)"
    );
    let started = Instant::now();
    let mut i = 0u64;
    while updated + deleted + inserted < total {
        let n = per_txn.min(total - (updated + deleted + inserted));
        match i % 10 {
            4 => {
                let list: Vec<String> = (0..n).map(|_| rng.id(max_id).to_string()).collect();
                deleted += exec(
                    &mut conn,
                    &format!("DELETE FROM {DB}.sbtest1 WHERE id IN ({})", list.join(",")),
                )
                .await?;
            }
            9 => {
                let (a, b) = (max_id + 1, max_id + n);
                inserted += exec(
                    &mut conn,
                    &format!(
                        "INSERT INTO {DB}.sbtest1 (id, k, c, pad) \
                         WITH RECURSIVE seq(n) AS (SELECT {a} UNION ALL SELECT n + 1 FROM seq WHERE n < {b}) \
                         SELECT n, FLOOR(1 + RAND() * {baseline_rows}), {c}, {pad} FROM seq"
                    ),
                )
                .await?;
                max_id = b;
            }
            _ => {
                let list: Vec<String> = (0..n).map(|_| rng.id(max_id).to_string()).collect();
                updated += exec(
                    &mut conn,
                    &format!(
                        "UPDATE {DB}.sbtest1 SET k = k + 1, c = {c} WHERE id IN ({})",
                        list.join(",")
                    ),
                )
                .await?;
            }
        }
        txns += 1;
        i += 1;
    }
    let last_us: i64 = {
        let v: f64 = conn
            .query_first("SELECT UNIX_TIMESTAMP(NOW(6))")
            .await?
            .context("reading the server's clock")?;
        (v * 1e6).ceil() as i64
    };
    let secs = started.elapsed().as_secs_f64();
    let end = gtid_executed(&mut conn).await?;
    conn.disconnect().await?;
    Ok(Changes {
        updated,
        deleted,
        inserted,
        transactions: txns,
        secs,
        end,
        last_us,
        max_id,
    })
}

/// What dbtrail's restore measured.
struct DbtrailRun {
    step: Step,
    job: PitrJobView,
    /// (phase, seconds since the request) at each phase change the 50 ms poll saw.
    phases: Vec<(String, f64)>,
    /// Refused requests before the accepted one (capture not yet known caught up).
    refused: Vec<String>,
    rss_before_kib: Option<u64>,
}

/// Times one restore through the API, polling every 50 ms.
async fn dbtrail_pitr(
    daemon: &mut Daemon,
    client: &dbtrail_ctl::Client,
    mysqld: &ServerCpu,
    target: &str,
    output: &Path,
    image: Option<&str>,
    into: Option<dbtrail_core::api::IntoTarget>,
) -> Result<DbtrailRun> {
    let pid = daemon.pid();
    let label = match (&into, image) {
        (Some(_), _) => "dbtrail pitr --into".to_string(),
        (None, Some(i)) => format!("dbtrail pitr --image {i}"),
        (None, None) => "dbtrail pitr".into(),
    };
    let req = PitrRequest {
        target_time: Some(target.to_string()),
        output: into.is_none().then(|| output.display().to_string()),
        image: image.map(str::to_string),
        into,
        ..Default::default()
    };
    let mut refused = Vec::new();
    let rss_before_kib = peak_rss_kib(pid);
    loop {
        let cpu_before = cpu_secs(pid);
        let server_before = mysqld.now();
        let started = Instant::now();
        let job = match client.pitr(SOURCE, &req).await {
            Ok(j) => j,
            Err(e) if format!("{e:#}").contains("caught up") && refused.len() < 60 => {
                refused.push(format!("{e:#}"));
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => return Err(e.context("POST .../pitr")),
        };
        let id = job.pitr_id.context("no pitr_id: was it a dry run?")?;
        // The plan (validation) is made before the answer.
        let mut phases = vec![("accepted".to_string(), started.elapsed().as_secs_f64())];
        let view = loop {
            let v = client.pitr_job(SOURCE, &id).await?;
            if phases
                .last()
                .is_none_or(|(p, _): &(String, f64)| *p != v.phase)
            {
                phases.push((v.phase.clone(), started.elapsed().as_secs_f64()));
            }
            if v.status != JobStatus::Running {
                break v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let secs = started.elapsed().as_secs_f64();
        let peak = peak_rss_kib(pid);
        let cpu = delta(cpu_before, cpu_secs(pid));
        let server_cpu_secs = delta(server_before, mysqld.now());
        if view.status == JobStatus::Failed {
            bail!(
                "dbtrail's restore FAILED: {}\n{}",
                view.error.unwrap_or_default(),
                daemon.log_tail()
            );
        }
        return Ok(DbtrailRun {
            step: Step {
                label,
                secs,
                rows: view.rows,
                peak_rss_kib: peak,
                cpu_secs: cpu,
                server_cpu_secs,
                out_bytes: view.size_bytes,
            },
            job: view,
            phases,
            refused,
            rss_before_kib,
        });
    }
}

/// Looking back without a restore (`show`, `diff`), on the same table and target.
struct LookBack {
    /// `show --where-key` wall times, ms, one per key.
    key_ms: Vec<f64>,
    /// What the first key lookup read.
    key_read: String,
    /// `show` of the whole table, streamed: wall s and rows.
    whole_secs: f64,
    whole_rows: u64,
    whole_read: String,
    /// `diff` from the baseline to the target: wall s and its counts.
    diff_secs: f64,
    diff: String,
    /// dbtraild VmHWM after them (KiB).
    rss_kib: Option<u64>,
}

async fn look_back(
    daemon: &Daemon,
    client: &dbtrail_ctl::Client,
    target: &str,
    from: &str,
    rows: u64,
    seed: u64,
) -> Result<LookBack> {
    let table = dbtrail_ctl::encode(&format!("{DB}.sbtest1"));
    let base = format!("/api/v1/servers/{SOURCE}/tables/{table}");
    let at = dbtrail_ctl::encode(target);
    eprintln!("dbtrail: show --where-key (20 keys), show (whole table), diff");
    let mut rng = Rng(seed.wrapping_mul(31) | 1);
    let mut key_ms = Vec::new();
    let mut key_read = String::new();
    for _ in 0..20 {
        let key = dbtrail_ctl::encode(&format!("id={}", rng.id(rows)));
        let started = Instant::now();
        let r: dbtrail_core::api::RowsResponse = client
            .get(&format!("{base}/rows?at={at}&key={key}"))
            .await
            .context("show --where-key")?;
        key_ms.push(started.elapsed().as_secs_f64() * 1e3);
        if key_read.is_empty() {
            key_read = r.read;
        }
    }
    let started = Instant::now();
    let mut lines = 0u64;
    let mut end = String::new();
    client
        .get_lines(&format!("{base}/rows?at={at}&format=ndjson"), &mut |l| {
            if l.first() == Some(&b'[') {
                lines += 1;
            } else if l.starts_with(b"{\"end\"") || l.starts_with(b"{\"error\"") {
                end = String::from_utf8_lossy(l).into_owned();
            }
            Ok(())
        })
        .await
        .context("show (whole table)")?;
    let whole_secs = started.elapsed().as_secs_f64();
    ensure!(
        end.starts_with("{\"end\""),
        "show of the whole table failed: {end}"
    );
    let started = Instant::now();
    let d: dbtrail_core::api::DiffResponse = client
        .get(&format!(
            "{base}/diff?from={}&to={at}&limit=10",
            dbtrail_ctl::encode(from)
        ))
        .await
        .context("diff")?;
    let diff_secs = started.elapsed().as_secs_f64();
    Ok(LookBack {
        key_ms,
        key_read,
        whole_secs,
        whole_rows: lines,
        whole_read: end,
        diff_secs,
        diff: format!(
            "{} inserted, {} deleted, {} changed from {} row changes",
            d.inserted, d.deleted, d.changed, d.changes
        ),
        rss_kib: peak_rss_kib(daemon.pid()),
    })
}

fn print_look_back(l: &LookBack, pitr: &Step) {
    let mut ms = l.key_ms.clone();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        ms.get(((ms.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "  look back  show --where-key: {} keys, median {:.1} ms, max {:.1} ms ({})",
        ms.len(),
        at(0.5),
        at(1.0),
        l.key_read
    );
    println!(
        "             show (whole table, streamed): {:.2} s for {} rows ({:.0} rows/s) vs \
         dbtrail pitr {:.2} s; {}",
        l.whole_secs,
        l.whole_rows,
        l.whole_rows as f64 / l.whole_secs.max(1e-9),
        pitr.secs,
        l.whole_read
    );
    println!(
        "             diff baseline..target: {:.2} s ({}); dbtraild VmHWM after {}",
        l.diff_secs,
        l.diff,
        kib_mib(l.rss_kib)
    );
}

fn kib_mib(k: Option<u64>) -> String {
    k.map_or("?".into(), |k| format!("{}", k / 1024))
}

fn opt1(v: Option<f64>) -> String {
    v.map_or("?".into(), |v| format!("{v:.1}"))
}

fn print_row(s: &Step, indent: &str) {
    println!(
        "  {:<32} {:>8.2} {:>10} {:>10} {:>5} MiB {:>8} {:>8} {:>11}",
        format!("{indent}{}", s.label),
        s.secs,
        if s.rows == 0 {
            "-".to_string()
        } else {
            format!("{:.0}", s.rows as f64 / s.secs)
        },
        s.rows,
        kib_mib(s.peak_rss_kib),
        opt1(s.cpu_secs),
        opt1(s.server_cpu_secs),
        s.out_bytes.map_or("".into(), |b| format!("{:.1}", mib(b))),
    );
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.rows >= 1000 && args.changes >= 10 && args.rows_per_txn >= 1 && args.threads >= 1,
        "--rows must be >= 1000, --changes >= 10, --rows-per-txn and --threads >= 1"
    );
    let url = gtid_server_url(args.url.as_deref())?;
    let server = Server::from_url(&url)?;
    let root = sid_root(args.sid_root.as_deref());
    // Fail before the slow generation when the daemon is missing.
    let binary = dbtraild_path(args.dbtraild.as_deref())?;
    if cfg!(debug_assertions) {
        eprintln!("WARNING: a debug build of pitr_bench; dbtraild next to it is one too");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (version, gen_secs) = rt.block_on(prepare(&server, args.rows))?;
    let mysqld = ServerCpu(rt.block_on(server_pid(&server)));
    let work = tempfile::Builder::new().prefix("pitr_bench.").tempdir()?;
    let w = work.path();
    let tools = Tools {
        args: &args,
        server: &server,
        mysqld: &mysqld,
        work: w,
    };
    let (basedump, classicdump, statedump, pitr_out) = (
        w.join("basedump"),
        w.join("classicdump"),
        w.join("statedump"),
        w.join("pitr-out"),
    );

    // 1. The daemon and its baseline.
    let files = DaemonFiles::write(w, &server, REPLICA_SERVER_ID, args.threads, DB)?;
    let (config, daemon_log) = (&files.config, &files.log);
    let client = dbtrail_ctl::Client::new(&files.socket);
    let mut daemon = Daemon::start(&binary, config, daemon_log, &server)?;
    let baseline = rt.block_on(async {
        daemon.wait_streaming(&client).await?;
        eprintln!("dbtrail: baseline");
        let started = Instant::now();
        let job = client.start_backup(SOURCE).await?;
        let view = loop {
            let v = client.backup(SOURCE, &job.backup_id).await?;
            if v.status != JobStatus::Running {
                break v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if view.status == JobStatus::Failed {
            bail!(
                "the baseline failed: {}\n{}",
                view.error.unwrap_or_default(),
                daemon.log_tail()
            );
        }
        let secs = started.elapsed().as_secs_f64();
        let manifest = view
            .baseline
            .context("a completed backup job without its baseline")?;
        anyhow::Ok((manifest, secs, view.bytes))
    })?;
    let (manifest, baseline_secs, baseline_bytes) = baseline;
    let baseline_rss = peak_rss_kib(daemon.pid());
    eprintln!(
        "  baseline {} in {baseline_secs:.1}s: {} rows at {}:{}",
        manifest.id,
        manifest.rows(),
        manifest.position.file,
        manifest.position.pos
    );
    ensure!(
        manifest.rows() == args.rows,
        "the baseline holds {} rows, the table {}",
        manifest.rows(),
        args.rows
    );
    // The classic procedure's starting dump: the same state (nothing writes bench_pitr yet).
    let basedump_step = tools.mydumper(DB, &basedump, "mydumper (starting dump)", args.rows)?;

    // The baseline state's checksum, to show that the changes changed it.
    let baseline_sum = rt.block_on(async {
        let mut conn = server.connect().await?;
        let r = checksum(&mut conn, DB).await?;
        conn.disconnect().await?;
        anyhow::Ok(r)
    })?;

    // 2. Changes after the baseline, and the target second.
    let changes = rt.block_on(make_changes(
        &server,
        args.rows,
        args.rows,
        args.changes,
        args.rows_per_txn,
        args.seed,
    ))?;
    // The first whole second after the last commit: everything committed is at or before it.
    let t_secs = changes.last_us.div_euclid(1_000_000) + 1;
    let target = timestamp_to_utc_string(t_secs * 1_000_000, 0);
    let stop_datetime = timestamp_to_utc_string((t_secs + 1) * 1_000_000, 0);
    // Wait until the target second is over (and a little more).
    let past = (t_secs + 1) * 1_000_000 + 200_000;
    let wait = past - now_us();
    if wait > 0 {
        std::thread::sleep(Duration::from_micros(wait as u64));
    }
    eprintln!(
        "  {} rows changed ({} updated, {} deleted, {} inserted) in {} transactions, {:.1}s; \
         target {target}",
        changes.rows(),
        changes.updated,
        changes.deleted,
        changes.inserted,
        changes.transactions,
        changes.secs
    );
    let (final_rows, final_sum) = rt.block_on(async {
        let mut conn = server.connect().await?;
        let r = checksum(&mut conn, DB).await?;
        conn.disconnect().await?;
        anyhow::Ok(r)
    })?;

    // 3. dbtrail's restore, on a restarted daemon (its VmHWM then reflects the restore).
    // Changes after the target, which every restore must leave out.
    let after = if args.changes_after_target > 0 {
        let a = rt.block_on(make_changes(
            &server,
            args.rows,
            changes.max_id,
            args.changes_after_target,
            args.rows_per_txn,
            args.seed.wrapping_add(1),
        ))?;
        eprintln!(
            "  {} rows changed after the target in {} transactions",
            a.rows(),
            a.transactions
        );
        Some(a)
    } else {
        None
    };
    let captured_end = after.as_ref().map_or(&changes.end, |a| &a.end).clone();
    rt.block_on(daemon.wait_captured(&client, &captured_end))?;
    let first_exit = daemon.stop()?;
    drop(daemon);
    eprintln!("dbtrail: restarting the daemon (exit {first_exit})");
    let mut daemon = Daemon::start(&binary, config, daemon_log, &server)?;
    let load_before = load_average();
    let run = rt.block_on(async {
        daemon.wait_streaming(&client).await?;
        daemon.wait_captured(&client, &captured_end).await?;
        eprintln!(
            "dbtrail: pitr --at '{target}' --output {}",
            pitr_out.display()
        );
        let main = dbtrail_pitr(
            &mut daemon,
            &client,
            &mysqld,
            &target,
            &pitr_out,
            None,
            None,
        )
        .await?;
        // The same restore loaded straight into the server, next to the live table.
        eprintln!(
            "dbtrail: pitr --at '{target}' --into {} --into-database {DB_INTO}",
            server.daemon_url()
        );
        let into = dbtrail_core::api::IntoTarget {
            url: server.daemon_url(),
            password: server.password.clone(),
            database: Some(DB_INTO.into()),
            connections: Some(args.threads),
            ..Default::default()
        };
        let into_run = dbtrail_pitr(
            &mut daemon,
            &client,
            &mysqld,
            &target,
            &pitr_out,
            None,
            Some(into),
        )
        .await?;
        // Looking back at the same target before the live image exists: the baseline forward,
        // with every change of the window scanned.
        let from = timestamp_to_utc_string(manifest.snapshot_us, 6);
        let look = look_back(&daemon, &client, &target, &from, args.rows, args.seed).await?;
        // The same target from the stored baseline (forward) and from the live table
        // (backward: what changed since the target undone; here nothing, the target being
        // the second after the last change, so it is a snapshot of the table).
        let mut by_image = Vec::new();
        for image in ["baseline", "live"] {
            let out = pitr_out.with_file_name(format!("pitr-{image}"));
            eprintln!("dbtrail: pitr --at '{target}' --image {image}");
            by_image.push(
                dbtrail_pitr(
                    &mut daemon,
                    &client,
                    &mysqld,
                    &target,
                    &out,
                    Some(image),
                    None,
                )
                .await?,
            );
        }
        anyhow::Ok((main, by_image, look, into_run))
    });
    let (run, by_image, look, into_run) = match run {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dbtraild log tail:\n{}", daemon.log_tail());
            return Err(e);
        }
    };
    let second_exit = daemon.stop()?;
    drop(daemon);
    let pitr_files = std::fs::read_dir(&pitr_out)
        .map(|rd| rd.count())
        .unwrap_or(0);

    // 4. The classic procedure (dbtraild stopped: it does not compete for the CPUs).
    let (binlogs, create_secs) = rt.block_on(async {
        let mut conn = server.connect().await?;
        let logs: Vec<String> = conn
            .query("SHOW BINARY LOGS")
            .await
            .context("reading SHOW BINARY LOGS")?
            .into_iter()
            .map(|r: mysql_async::Row| -> Result<String> {
                Ok(r.get_opt::<String, _>(0).context("no Log_name")??)
            })
            .collect::<Result<_>>()?;
        let first = logs
            .iter()
            .position(|n| *n == manifest.position.file)
            .with_context(|| {
                format!(
                    "the baseline's binlog file {} is no longer on the server",
                    manifest.position.file
                )
            })?;
        let started = Instant::now();
        exec(&mut conn, "SET SESSION sql_log_bin = 0").await?;
        exec(&mut conn, &format!("CREATE DATABASE {DB_CLASSIC}")).await?;
        let secs = started.elapsed().as_secs_f64();
        conn.disconnect().await?;
        anyhow::Ok((logs[first..].to_vec(), secs))
    })?;
    let load = tools.myloader(&basedump, DB_CLASSIC, "myloader (starting dump)", args.rows)?;
    let (replay, replay_cmd) = binlog_replay(
        root.as_deref(),
        &server,
        &mysqld,
        w,
        manifest.position.pos,
        &binlogs,
        &stop_datetime,
        changes.rows(),
    )?;
    let classic_dump = tools.mydumper(
        DB_CLASSIC,
        &classicdump,
        "mydumper (the result)",
        final_rows,
    )?;
    let classic_total = Step {
        label: "classic total".into(),
        secs: create_secs + load.secs + replay.secs + classic_dump.secs,
        rows: final_rows,
        peak_rss_kib: [
            load.peak_rss_kib,
            replay.peak_rss_kib,
            classic_dump.peak_rss_kib,
        ]
        .into_iter()
        .flatten()
        .max(),
        cpu_secs: [load.cpu_secs, replay.cpu_secs, classic_dump.cpu_secs]
            .into_iter()
            .sum(),
        server_cpu_secs: [
            load.server_cpu_secs,
            replay.server_cpu_secs,
            classic_dump.server_cpu_secs,
        ]
        .into_iter()
        .sum(),
        out_bytes: classic_dump.out_bytes,
    };

    // 5. mydumper of the final state alone.
    let state_dump = tools.mydumper(DB, &statedump, "mydumper of the final state", final_rows)?;

    // 6. The check: dbtrail's output imported (not timed) and the three checksums.
    let import = tools.myloader(
        &pitr_out,
        DB_DBTRAIL,
        "myloader of dbtrail's output",
        run.job.rows,
    );
    let live_out = pitr_out.with_file_name("pitr-live");
    let live_import = tools.myloader(
        &live_out,
        DB_LIVE,
        "myloader of the restore from the live table (check only)",
        final_rows,
    );
    let (classic_sum, dbtrail_sum, live_sum, into_sum) = rt.block_on(async {
        let mut conn = server.connect().await?;
        let c = checksum(&mut conn, DB_CLASSIC).await?;
        let i = checksum(&mut conn, DB_INTO).await?;
        let d = match &import {
            Ok(_) => Some(checksum(&mut conn, DB_DBTRAIL).await),
            Err(_) => None,
        };
        let l = match &live_import {
            Ok(_) => Some(checksum(&mut conn, DB_LIVE).await?),
            Err(_) => None,
        };
        conn.disconnect().await?;
        anyhow::Ok((c, d, l, i))
    })?;
    if !args.keep {
        rt.block_on(drop_databases(&server))?;
    }

    // The report.
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load_after = load_average();
    println!();
    println!("pitr_bench report");
    println!(
        "  server     {} {}:{} (MySQL {version}); {cpus} CPUs on this machine (server, \
         dbtraild and the tools share them); 1-min load average {load_before} before the timed \
         runs, {load_after} after",
        server.user, server.host, server.port
    );
    println!(
        "  baseline   {DB}.sbtest1: {} rows (generated in {gen_secs:.1}s, not binlogged); \
         dbtrail baseline {} ({:.1} MiB of Parquet) in {baseline_secs:.1}s at {}:{}; \
         starting dump by mydumper ({:.1} MiB) in {:.1}s",
        args.rows,
        manifest.id,
        mib(baseline_bytes),
        manifest.position.file,
        manifest.position.pos,
        mib(basedump_step.out_bytes.unwrap_or(0)),
        basedump_step.secs
    );
    println!(
        "  changes    {} row changes after it ({} updated, {} deleted, {} inserted) in {} \
         transactions, {:.1}s",
        changes.rows(),
        changes.updated,
        changes.deleted,
        changes.inserted,
        changes.transactions,
        changes.secs
    );
    println!(
        "  target     {target} UTC (the second after the last change before it); state there \
         {final_rows} rows{}",
        match &after {
            Some(a) => format!(
                "; then {} row changes after the target in {} transactions, which every \
                 restore leaves out",
                a.rows(),
                a.transactions
            ),
            None => String::new(),
        }
    );
    println!(
        "  plan       {} transactions, {} row events replayed over baseline {}; last {}",
        run.job.plan.transactions,
        run.job.plan.events,
        run.job.plan.baseline_id,
        run.job.plan.last_gtid.as_deref().unwrap_or("-")
    );
    println!();
    println!(
        "  {:<32} {:>8} {:>10} {:>10} {:>9} {:>8} {:>8} {:>11}",
        "run", "wall s", "rows/s", "rows", "peak RSS", "CPU s", "mysqld", "output MiB"
    );
    print_row(&run.step, "");
    print_row(&into_run.step, "");
    let create = Step {
        label: "CREATE DATABASE".into(),
        secs: create_secs,
        ..Default::default()
    };
    print_row(&classic_total, "");
    for s in [&create, &load, &replay, &classic_dump] {
        print_row(s, "  ");
    }
    print_row(&state_dump, "");
    for r in &by_image {
        print_row(&r.step, "");
        for i in &r.job.plan.images {
            println!(
                "      image of {}: {} {}, {} events replayed{}",
                i.table,
                i.chosen.image,
                i.chosen.direction,
                i.chosen.events,
                i.alternatives
                    .iter()
                    .map(|a| format!(
                        "; instead {} {}: {}",
                        a.image,
                        a.direction,
                        a.unusable
                            .clone()
                            .unwrap_or_else(|| format!("{} events", a.events))
                    ))
                    .collect::<String>()
            );
        }
    }
    print_look_back(&look, &run.step);
    println!(
        "  (rows: dbtrail: rows written; classic total and mydumper: rows of the final state; \
         myloader: rows of the starting dump; mysqlbinlog | mysql: row changes replayed. \
         peak RSS: of the tool (dbtraild: VmHWM of the restarted daemon after the restore; \
         classic: the largest of its tools; mysqld's memory is not counted anywhere). CPU s: \
         user + system of the tool(s); mysqld: CPU seconds of the server during the run)"
    );
    println!(
        "  dbtrail    job duration_ms {}, {} files in the output, phases {}; dbtraild VmHWM {} \
         MiB after the baseline (first process), {} MiB after restart + catch-up, {} MiB \
         after the restore; exits {first_exit} / {second_exit}{}",
        run.job.duration_ms.map_or("?".into(), |v| v.to_string()),
        pitr_files,
        run.phases
            .iter()
            .map(|(p, t)| format!("{p}@{t:.2}s"))
            .collect::<Vec<_>>()
            .join(" "),
        kib_mib(baseline_rss),
        kib_mib(run.rss_before_kib),
        kib_mib(run.step.peak_rss_kib),
        if run.refused.is_empty() {
            String::new()
        } else {
            format!(
                "; {} refused request(s) before it: {}",
                run.refused.len(),
                run.refused[0]
            )
        }
    );
    println!("  replay     {replay_cmd}");
    println!("  dbtraild   {}", binary.display());

    // The check.
    let show = |s: (u64, u64)| format!("{} rows, crc {:08x}", s.0, s.1);
    println!("  checksums  COUNT(*), BIT_XOR(CRC32(CONCAT_WS('#', id, k, c, pad))):");
    println!("    {DB:<20} (baseline)    {}", show(baseline_sum));
    println!(
        "    {DB:<20} (final state) {}",
        show((final_rows, final_sum))
    );
    println!("    {DB_CLASSIC:<20} (classic)     {}", show(classic_sum));
    let mut ok = classic_sum == (final_rows, final_sum);
    match (&import, &dbtrail_sum) {
        (Ok(step), Some(Ok(s))) => {
            println!(
                "    {DB_DBTRAIL:<20} (dbtrail)     {} (imported by myloader in {:.1}s)",
                show(*s),
                step.secs
            );
            ok &= *s == (final_rows, final_sum);
        }
        (Err(e), _) => {
            println!("    {DB_DBTRAIL:<20} (dbtrail)     IMPORT FAILED: {e:#}");
            ok = false;
        }
        (_, Some(Err(e))) => {
            println!("    {DB_DBTRAIL:<20} (dbtrail)     CHECKSUM FAILED: {e:#}");
            ok = false;
        }
        (Ok(_), None) => unreachable!("a checksum is taken when the import succeeded"),
    }
    match &live_sum {
        Some(l) => {
            println!("    {DB_LIVE:<20} (live image)  {}", show(*l));
            ok &= *l == (final_rows, final_sum);
        }
        None => {
            println!("    {DB_LIVE:<20} (live image)  IMPORT FAILED");
            ok = false;
        }
    }
    println!("    {DB_INTO:<20} (--into)      {}", show(into_sum));
    ok &= into_sum == (final_rows, final_sum);
    if ok {
        println!("  result     all checksums match");
    } else {
        println!("  FAILED     the checksums differ: a restore is wrong (see above)");
    }

    let r1 = classic_total.secs / run.step.secs;
    let r2 = run.step.secs / state_dump.secs;
    println!(
        "  classic / dbtrail      {r1:7.2}   (goal >= 20: {})",
        if r1 >= 20.0 { "met" } else { "NOT met" }
    );
    println!(
        "  dbtrail / mydumper     {r2:7.2}   (goal <= 1: {})",
        if r2 <= 1.0 { "met" } else { "NOT met" }
    );
    // To a queryable table: the dump and its import, against the load straight in.
    if let Ok(imp) = &import {
        let both = run.step.secs + imp.secs;
        let r3 = into_run.step.secs / both;
        println!(
            "  queryable  dbtrail pitr + myloader {:.2}s ({:.2} + {:.2}); dbtrail pitr --into {:.2}s \
             (dbtraild CPU {:.1}s, mysqld {:.1}s)",
            both,
            run.step.secs,
            imp.secs,
            into_run.step.secs,
            into_run.step.cpu_secs.unwrap_or(0.0),
            into_run.step.server_cpu_secs.unwrap_or(0.0)
        );
        println!(
            "  --into / (pitr + myloader) {r3:5.2}   (goal <= 0.5: {})",
            if r3 <= 0.5 { "met" } else { "NOT met" }
        );
    }
    if args.keep {
        let kept = work.keep();
        println!("  kept       the databases and {}", kept.display());
    }
    ensure!(ok, "the checksums differ");
    Ok(())
}
