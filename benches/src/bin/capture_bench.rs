//! capture_bench: capture throughput against a real MySQL binlog.
//!
//! Generates a sysbench-like workload (`bench_capture.sbtest1`: multi-row INSERT, UPDATE and
//! DELETE transactions) on a MySQL server with GTIDs, then times three readers of the binlog
//! files it wrote:
//! - **A** `mysqlbinlog --read-from-remote-server --raw`: fetch only (the floor for any
//!   remote reader);
//! - **B** `mysqlbinlog -vv --base64-output=decode-rows` on the fetched files: decode only;
//! - **C** dbtrail: replication stream + decode + log write into a fresh RocksDB log, shaped
//!   as in `dbtraild` (capture on tokio, writer on its own thread behind a bounded channel,
//!   a fsynced batch every 1000 row events), stopping once the captured GTID set holds every
//!   transaction of the workload;
//! - **D** (breakdown) dbtrail's stream + decode alone, items dropped.
//!
//! Goals (acceptance): C <= 2 x A, and C < B. Run from the workspace root:
//! `cargo run --release -p dbtrail-benches --bin capture_bench -- --events 2000000`.
//! The workload's binlog files stay on the server (they are not purged).
use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use dbtrail_binlog::checks::{Flavor, ServerInfo, check_server};
use dbtrail_binlog::stream::{self, Capture, CaptureItem, SourceSpec, connect};
use dbtrail_core::gtid::MysqlGtidSet;
use dbtrail_core::{GtidSet, Position, TableRef, TableSchema};
use dbtrail_storage::{Log, Writer};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Where `scripts/testdb up` writes the test servers' connection settings.
const TESTDB_ENV: &str = "/var/tmp/dbtrail-testdb/env";
/// The database the workload lives in (dropped and re-created).
const DB: &str = "bench_capture";
/// server_id the capture registers with.
const REPLICA_SERVER_ID: u32 = 4_242_001;

#[derive(Parser, Debug)]
#[command(about = "Capture throughput: dbtrail vs mysqlbinlog fetch and decode")]
struct Args {
    /// MySQL server with GTIDs [default: $DBTRAIL_TEST_MYSQL_GTID_URL, else the testdb env file]
    #[arg(long)]
    url: Option<String>,
    /// Row events the workload generates (70% inserts, 20% updates, 10% deletes).
    #[arg(long, default_value_t = 2_000_000)]
    events: u64,
    /// Rows per generated transaction.
    #[arg(long, default_value_t = 1000)]
    rows_per_txn: u64,
    /// Root of the chroot that holds /usr/bin/mysqlbinlog [default: $DBTRAIL_TEST_SID_ROOT,
    /// else the testdb env file]; pass an empty string to run `mysqlbinlog` from PATH.
    #[arg(long)]
    sid_root: Option<PathBuf>,
    /// Row events per writer batch (dbtraild flushes at 1000; fsync at most once a second).
    #[arg(long, default_value_t = 1000)]
    flush_every: usize,
    /// Skip run D (dbtrail decode without the log).
    #[arg(long)]
    no_decode_only: bool,
    /// Keep the bench_capture database afterwards.
    #[arg(long)]
    keep_database: bool,
}

/// A setting from the environment, else from the testdb env file.
fn testdb_setting(key: &str) -> Option<String> {
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

fn spec_from_url(url: &str) -> Result<SourceSpec> {
    let opts =
        mysql_async::Opts::from_url(url).with_context(|| format!("parsing the url {url}"))?;
    Ok(SourceSpec {
        host: opts.ip_or_hostname().to_string(),
        port: opts.tcp_port(),
        user: opts.user().unwrap_or("root").to_string(),
        password: opts.pass().map(str::to_string),
        replica_server_id: REPLICA_SERVER_ID,
        heartbeat: Duration::from_secs(5),
        tls: Default::default(),
    })
}

/// What the workload left in the binlog.
struct Workload {
    info: ServerInfo,
    /// `@@gtid_executed` before the workload.
    start: MysqlGtidSet,
    /// The binlog file the workload starts in.
    start_file: String,
    /// `@@gtid_executed` after the workload.
    end: MysqlGtidSet,
    /// Binlog files written during the workload, with their sizes.
    files: Vec<(String, u64)>,
    /// Row events the workload's statements reported (affected rows).
    rows: u64,
    seconds: f64,
}

/// `c`/`pad` values as sysbench makes them: groups of 11 random digits joined by '-'.
fn digit_groups(groups: usize) -> String {
    let g = "LPAD(CAST(FLOOR(RAND() * 99999999999) AS UNSIGNED), 11, '0')";
    format!("CONCAT_WS('-', {})", vec![g; groups].join(", "))
}

async fn gtid_executed(conn: &mut Conn) -> Result<MysqlGtidSet> {
    let s: String = conn
        .query_first("SELECT @@GLOBAL.gtid_executed")
        .await?
        .context("reading @@gtid_executed")?;
    s.parse::<MysqlGtidSet>()
        .with_context(|| format!("parsing @@gtid_executed {s:?}"))
}

/// Runs `sql` and returns its affected rows.
async fn exec(conn: &mut Conn, sql: &str) -> Result<u64> {
    conn.query_drop(sql)
        .await
        .with_context(|| format!("running {}", sql.chars().take(100).collect::<String>()))?;
    Ok(conn.affected_rows())
}

async fn generate(spec: &SourceSpec, events: u64, per_txn: u64) -> Result<Workload> {
    let mut conn = connect(spec).await?;
    let info = check_server(&mut conn).await?;
    ensure!(
        info.flavor == Flavor::Mysql && info.gtid_mode,
        "capture_bench needs MySQL with gtid_mode=ON; {} is {:?} with gtid_mode={}",
        spec.host,
        info.flavor,
        info.gtid_mode
    );
    exec(&mut conn, &format!("DROP DATABASE IF EXISTS {DB}")).await?;
    exec(&mut conn, "FLUSH BINARY LOGS").await?;
    let start = gtid_executed(&mut conn).await?;
    let (start_file, _) = stream::binlog_status(&mut conn, &info).await?;

    let updates = events / 5;
    let deletes = events / 10;
    let inserts = events - updates - deletes;
    eprintln!(
        "generating {events} row events in {DB}.sbtest1 ({inserts} inserted, {updates} \
         updated, {deletes} deleted; {per_txn} rows per transaction)"
    );
    let started = Instant::now();
    exec(&mut conn, &format!("CREATE DATABASE {DB}")).await?;
    exec(
        &mut conn,
        &format!(
            "CREATE TABLE {DB}.sbtest1 (id INT PRIMARY KEY, k INT NOT NULL, \
             c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL, KEY k_1 (k))"
        ),
    )
    .await?;
    exec(
        &mut conn,
        &format!(
            "SET SESSION cte_max_recursion_depth = {}",
            per_txn.max(1000)
        ),
    )
    .await?;
    let (c, pad) = (digit_groups(10), digit_groups(5));
    let mut rows = 0;
    let chunks = |from: u64, to: u64| {
        (from..=to)
            .step_by(per_txn as usize)
            .map(move |a| (a, (a + per_txn - 1).min(to)))
    };
    for (a, b) in chunks(1, inserts) {
        rows += exec(
            &mut conn,
            &format!(
                "INSERT INTO {DB}.sbtest1 (id, k, c, pad) \
                 WITH RECURSIVE seq(n) AS (SELECT {a} UNION ALL SELECT n + 1 FROM seq WHERE n < {b}) \
                 SELECT n, FLOOR(1 + RAND() * {inserts}), {c}, {pad} FROM seq"
            ),
        )
        .await?;
    }
    eprintln!(
        "  inserts done after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    // Alternate sysbench's index and non-index updates, one range per transaction.
    for (i, (a, b)) in chunks(1, updates).enumerate() {
        let set = if i % 2 == 0 {
            "k = k + 1".to_string()
        } else {
            format!("c = {c}")
        };
        rows += exec(
            &mut conn,
            &format!("UPDATE {DB}.sbtest1 SET {set} WHERE id BETWEEN {a} AND {b}"),
        )
        .await?;
    }
    // Delete from the tail, away from the updated rows.
    for (a, b) in chunks(inserts - deletes + 1, inserts) {
        rows += exec(
            &mut conn,
            &format!("DELETE FROM {DB}.sbtest1 WHERE id BETWEEN {a} AND {b}"),
        )
        .await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let end = gtid_executed(&mut conn).await?;
    // Close the last file so every file of the workload is complete and stays as measured.
    exec(&mut conn, "FLUSH BINARY LOGS").await?;
    let (current, _) = stream::binlog_status(&mut conn, &info).await?;
    let logs: Vec<(String, u64)> = conn
        .query("SHOW BINARY LOGS")
        .await
        .context("reading SHOW BINARY LOGS")?
        .into_iter()
        .map(|r: mysql_async::Row| -> Result<(String, u64)> {
            let name = r.get_opt::<String, _>(0).context("no Log_name")??;
            let size = r.get_opt::<u64, _>(1).context("no File_size")??;
            Ok((name, size))
        })
        .collect::<Result<_>>()?;
    let first = logs.iter().position(|(n, _)| *n == start_file);
    let last = logs.iter().position(|(n, _)| *n == current);
    let (Some(first), Some(last)) = (first, last) else {
        bail!("binlog files {start_file} .. {current} are not both in SHOW BINARY LOGS (purged?)");
    };
    let files = logs[first..last].to_vec();
    conn.disconnect().await?;
    Ok(Workload {
        info,
        start,
        start_file,
        end,
        files,
        rows,
        seconds,
    })
}

/// Runs mysqlbinlog (inside `root` when given) and returns its wall time.
fn mysqlbinlog(
    root: Option<&Path>,
    spec: &SourceSpec,
    args: &[String],
    stdout: Stdio,
) -> Result<f64> {
    let mut cmd = match root {
        Some(r) => {
            let mut c = Command::new("chroot");
            c.arg(r).arg("/usr/bin/mysqlbinlog");
            c
        }
        None => Command::new("mysqlbinlog"),
    };
    cmd.arg("--no-defaults").args(args).stdout(stdout);
    if let Some(p) = &spec.password {
        cmd.env("MYSQL_PWD", p);
    }
    let started = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("running mysqlbinlog {}", args.join(" ")))?;
    let secs = started.elapsed().as_secs_f64();
    ensure!(
        status.success(),
        "mysqlbinlog {} failed: {status}",
        args.join(" ")
    );
    Ok(secs)
}

/// What a dbtrail run saw.
#[derive(Default)]
struct CaptureStats {
    /// Row events, all tables.
    rows: u64,
    /// Row events of bench_capture.sbtest1.
    bench_rows: u64,
    /// Transactions committed.
    txns: u64,
    /// Writer flushes (batches) and the time spent in them.
    flushes: u64,
    flush_secs: f64,
}

/// Streams from the workload's start until the captured set holds the workload's end,
/// counting rows and commits and sending each event's items to `tx` when given.
async fn stream_workload(
    spec: &SourceSpec,
    w: &Workload,
    tx: Option<mpsc::Sender<Vec<CaptureItem>>>,
) -> Result<CaptureStats> {
    let mut conn = connect(spec).await?;
    let info = check_server(&mut conn).await?;
    let from = Position {
        gtid_set: GtidSet::Mysql(w.start.clone()),
        file: w.start_file.clone(),
        pos: 4,
        server_uuid: info.server_uuid.clone(),
    };
    let mut capture = Capture::start(conn, &info, &from, spec).await?;
    let mut stats = CaptureStats::default();
    let mut items = Vec::with_capacity(64);
    loop {
        capture.next(&mut items).await?;
        let mut committed = false;
        for i in &items {
            match i {
                CaptureItem::Row { .. } => stats.rows += 1,
                CaptureItem::Commit { .. } => {
                    stats.txns += 1;
                    committed = true;
                }
                _ => {}
            }
        }
        match &tx {
            Some(tx) if !items.is_empty() => tx
                .send(std::mem::take(&mut items))
                .await
                .map_err(|_| anyhow::anyhow!("the writer thread stopped"))?,
            _ => items.clear(),
        }
        if committed
            && let GtidSet::Mysql(have) = capture.gtid_set()
            && w.end.is_subset(have)
        {
            return Ok(stats);
        }
    }
}

/// Applies items to the writer as dbtraild's writer thread does.
struct Applier<'a> {
    writer: Writer<'a>,
    ids: HashMap<*const TableSchema, (Arc<TableSchema>, u32, u32)>,
    bench: TableRef,
    stats: CaptureStats,
}

impl Applier<'_> {
    /// As dbtraild does: size-triggered batches are written without fsync, and the WAL is
    /// fsynced at least once a second (and at the end).
    fn flush(&mut self, last_sync: &mut Instant, end: bool) -> Result<()> {
        let started = Instant::now();
        let sync = end || last_sync.elapsed() >= std::time::Duration::from_secs(1);
        if self.writer.flush_with(sync)? {
            self.stats.flushes += 1;
            self.stats.flush_secs += started.elapsed().as_secs_f64();
        }
        if sync {
            *last_sync = Instant::now();
        }
        Ok(())
    }

    fn apply(&mut self, item: CaptureItem) -> Result<()> {
        let w = &mut self.writer;
        match item {
            CaptureItem::Begin { gtid, commit_us } => w.begin(gtid, commit_us),
            CaptureItem::Row { schema, change } => {
                let key = Arc::as_ptr(&schema);
                let (id, version) = match self.ids.get(&key) {
                    Some((_, id, v)) => (*id, *v),
                    None => {
                        let (id, v) = w.ensure_schema((*schema).clone())?;
                        self.ids.insert(key, (schema.clone(), id, v));
                        (id, v)
                    }
                };
                self.stats.rows += 1;
                if schema.table == self.bench {
                    self.stats.bench_rows += 1;
                }
                w.add(id, version, change)?;
            }
            CaptureItem::Commit {
                position,
                commit_us,
                ddl,
            } => {
                if ddl.is_some() {
                    self.ids.clear();
                }
                w.commit(position, commit_us, ddl)?;
                self.stats.txns += 1;
            }
            CaptureItem::Rollback => w.rollback()?,
            CaptureItem::Taint { table, reason } => {
                // Other clients of the shared test server may taint their own tables.
                if table == self.bench {
                    bail!("capture tainted {table}: {reason}")
                }
            }
            CaptureItem::Heartbeat { .. } => {}
        }
        Ok(())
    }
}

/// Run C: stream + decode on the runtime, log writes on a writer thread.
fn capture_to_log(
    rt: &tokio::runtime::Runtime,
    spec: &SourceSpec,
    w: &Workload,
    log: &Log,
    flush_every: usize,
) -> Result<(CaptureStats, f64)> {
    let (tx, mut rx) = mpsc::channel::<Vec<CaptureItem>>(256);
    let initial = Position {
        gtid_set: GtidSet::Mysql(w.start.clone()),
        file: w.start_file.clone(),
        pos: 4,
        server_uuid: w.info.server_uuid.clone(),
    };
    let started = Instant::now();
    let (streamed, written) = std::thread::scope(|s| {
        let writer = s.spawn(move || -> Result<CaptureStats> {
            let mut a = Applier {
                writer: Writer::open(log, initial)?,
                ids: HashMap::new(),
                bench: TableRef::new(DB, "sbtest1"),
                stats: CaptureStats::default(),
            };
            let mut last_sync = Instant::now();
            while let Some(items) = rx.blocking_recv() {
                for item in items {
                    a.apply(item)?;
                }
                if a.writer.batch_events() >= flush_every {
                    a.flush(&mut last_sync, false)?;
                }
            }
            a.flush(&mut last_sync, true)?;
            Ok(a.stats)
        });
        let streamed = rt.block_on(stream_workload(spec, w, Some(tx)));
        let written = writer
            .join()
            .map_err(|_| anyhow::anyhow!("the writer thread panicked"));
        (streamed, written)
    });
    let secs = started.elapsed().as_secs_f64();
    // A writer error explains a stream error ("writer stopped"), so report it first.
    let stats = written??;
    streamed?;
    Ok((stats, secs))
}

/// Run D: stream + decode only.
fn decode_only(
    rt: &tokio::runtime::Runtime,
    spec: &SourceSpec,
    w: &Workload,
) -> Result<(CaptureStats, f64)> {
    let started = Instant::now();
    let stats = rt.block_on(stream_workload(spec, w, None))?;
    Ok((stats, started.elapsed().as_secs_f64()))
}

fn dir_bytes(dir: &Path) -> u64 {
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

/// Peak resident set size of this process, in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.events >= 10 && args.rows_per_txn >= 1,
        "--events must be >= 10 and --rows-per-txn >= 1"
    );
    let url = args
        .url
        .clone()
        .or_else(|| testdb_setting("DBTRAIL_TEST_MYSQL_GTID_URL"))
        .context("no --url, no $DBTRAIL_TEST_MYSQL_GTID_URL and no testdb env file")?;
    let root = match &args.sid_root {
        Some(p) if p.as_os_str().is_empty() => None,
        Some(p) => Some(p.clone()),
        None => testdb_setting("DBTRAIL_TEST_SID_ROOT").map(PathBuf::from),
    };
    let spec = spec_from_url(&url)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let w = rt.block_on(generate(&spec, args.events, args.rows_per_txn))?;
    let binlog_bytes: u64 = w.files.iter().map(|(_, s)| s).sum();
    let names: Vec<&str> = w.files.iter().map(|(n, _)| n.as_str()).collect();
    eprintln!(
        "generated {} row events in {:.1}s; binlog files {} ({:.1} MiB)",
        w.rows,
        w.seconds,
        names.join(" "),
        mib(binlog_bytes)
    );

    // A: fetch only, into a directory the chroot sees.
    let tmp_parent = match &root {
        Some(r) => r.join("tmp"),
        None => std::env::temp_dir(),
    };
    let fetched = tempfile::Builder::new()
        .prefix("capture_bench.")
        .tempdir_in(&tmp_parent)
        .with_context(|| format!("creating a directory in {}", tmp_parent.display()))?;
    let seen = |p: &Path| -> String {
        match &root {
            Some(r) => Path::new("/").join(p.strip_prefix(r).unwrap_or(p)),
            None => p.to_path_buf(),
        }
        .display()
        .to_string()
    };
    let fetched_dir = seen(fetched.path());
    let mut fetch_args = vec![
        "--read-from-remote-server".to_string(),
        "--raw".into(),
        format!("--host={}", spec.host),
        format!("--port={}", spec.port),
        format!("--user={}", spec.user),
        // dbtrail's connection is plain TCP too.
        "--ssl-mode=DISABLED".into(),
        "--get-server-public-key".into(),
        format!("--result-file={fetched_dir}/"),
    ];
    fetch_args.extend(names.iter().map(|n| n.to_string()));
    eprintln!("A: mysqlbinlog --read-from-remote-server --raw ...");
    let fetch_secs = mysqlbinlog(root.as_deref(), &spec, &fetch_args, Stdio::null())?;
    let fetched_bytes = dir_bytes(fetched.path());
    ensure!(
        fetched_bytes == binlog_bytes,
        "mysqlbinlog fetched {fetched_bytes} bytes, SHOW BINARY LOGS says {binlog_bytes}"
    );

    // B: decode the fetched files.
    let mut decode_args = vec!["-vv".to_string(), "--base64-output=decode-rows".into()];
    decode_args.extend(names.iter().map(|n| format!("{fetched_dir}/{n}")));
    eprintln!("B: mysqlbinlog -vv --base64-output=decode-rows ... > /dev/null");
    let mysqlbinlog_secs = mysqlbinlog(root.as_deref(), &spec, &decode_args, Stdio::null())?;
    drop(fetched);

    // C: dbtrail decode + log write.
    let log_dir = tempfile::Builder::new()
        .prefix("capture_bench_log.")
        .tempdir()?;
    let log = Log::open(log_dir.path())?;
    eprintln!("C: dbtrail capture into {}", log_dir.path().display());
    let (c, capture_secs) = capture_to_log(&rt, &spec, &w, &log, args.flush_every)?;
    let settle = Instant::now();
    log.flush()?;
    log.compact_events()?;
    let settle_secs = settle.elapsed().as_secs_f64();
    let events_disk = log.events_disk_bytes();
    let log_disk = dir_bytes(log_dir.path());
    drop(log);
    drop(log_dir);
    let rss_after_c = peak_rss_kib();

    // D: dbtrail decode alone.
    let d = if args.no_decode_only {
        None
    } else {
        eprintln!("D: dbtrail stream + decode only");
        Some(decode_only(&rt, &spec, &w)?)
    };

    if !args.keep_database {
        rt.block_on(async {
            let mut conn = connect(&spec).await?;
            exec(&mut conn, &format!("DROP DATABASE IF EXISTS {DB}")).await?;
            conn.disconnect().await?;
            anyhow::Ok(())
        })?;
    }

    // The report.
    let n = c.rows as f64;
    let per_s = |secs: f64| n / secs;
    println!();
    println!("capture_bench report");
    println!(
        "  server            {} {}:{} (MySQL {})",
        spec.user, spec.host, spec.port, w.info.version
    );
    println!(
        "  workload          {} row events in {}.sbtest1 ({} rows/txn), generated in {:.1}s",
        w.rows, DB, args.rows_per_txn, w.seconds
    );
    println!(
        "  captured          {} row events ({} in sbtest1), {} transactions",
        c.rows, c.bench_rows, c.txns
    );
    println!(
        "  binlog            {} files, {:.1} MiB, {:.1} bytes/event",
        w.files.len(),
        mib(binlog_bytes),
        binlog_bytes as f64 / n
    );
    println!(
        "  A fetch (raw)     {fetch_secs:8.2}s  {:>10.0} events/s",
        per_s(fetch_secs)
    );
    println!(
        "  B mysqlbinlog -vv {mysqlbinlog_secs:8.2}s  {:>10.0} events/s",
        per_s(mysqlbinlog_secs)
    );
    println!(
        "  C dbtrail capture {capture_secs:8.2}s  {:>10.0} events/s  (decode + log write; \
         writer spent {:.2}s in {} flushes of >= {} events, fsync once a second)",
        per_s(capture_secs),
        c.flush_secs,
        c.flushes,
        args.flush_every
    );
    if let Some((d, secs)) = &d {
        println!(
            "  D dbtrail decode  {secs:8.2}s  {:>10.0} events/s  (stream + decode only, {} events)",
            d.rows as f64 / secs,
            d.rows
        );
    }
    println!(
        "  C/A               {:8.2}   (goal <= 2.00: {})",
        capture_secs / fetch_secs,
        if capture_secs <= 2.0 * fetch_secs {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "  C/B               {:8.2}   (goal < 1.00: {})",
        capture_secs / mysqlbinlog_secs,
        if capture_secs < mysqlbinlog_secs {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "  on disk           {:.1} bytes/event in the events column family ({:.1} MiB after \
         flush + compaction, {settle_secs:.1}s); whole log directory {:.1} MiB",
        events_disk as f64 / n,
        mib(events_disk),
        mib(log_disk)
    );
    println!(
        "  peak RSS          {} MiB after C, {} MiB at the end",
        rss_after_c.map_or("?".into(), |k| (k / 1024).to_string()),
        peak_rss_kib().map_or("?".into(), |k| (k / 1024).to_string())
    );
    if c.bench_rows != w.rows {
        println!(
            "  WARNING: the workload reported {} row events but capture saw {} in sbtest1",
            w.rows, c.bench_rows
        );
    }
    Ok(())
}
