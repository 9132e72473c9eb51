//! capture_bench: capture throughput against a real MySQL binlog.
//!
//! Generates a sysbench-like workload (`bench_capture.sbtest1`: multi-row INSERT, UPDATE and
//! DELETE transactions) on a MySQL server with GTIDs, then times three readers of the binlog
//! files it wrote:
//! - **A** `mysqlbinlog --read-from-remote-server --raw`: fetch only (the floor for any
//!   remote reader);
//! - **B** `mysqlbinlog -vv --base64-output=decode-rows` on the fetched files: decode only;
//! - **C** dbtrail: the daemon's own capture task and log writer (`dbtraild::capture`, the
//!   code `dbtraild` runs: capture on tokio, the writer on its own thread behind a bounded
//!   channel, a batch every 1000 row events, fsync once per `flush_interval_ms` = 1 s) on a
//!   source opened as `dbtraild` opens one (`dbtraild::tasks::SourceTasks::open`), whose
//!   fresh log starts at the workload's first binlog file; timed until the log's durable
//!   position holds every transaction of the workload and capture has stopped (everything
//!   fsynced);
//! - **D** (breakdown) dbtrail's stream + decode alone, items dropped.
//!
//! Goals (acceptance): C <= 2 x A, and C < B. Run from the workspace root:
//! `cargo run --release -p dbtrail-benches --bin capture_bench -- --events 2000000`.
//! The workload's binlog files stay on the server (they are not purged).
use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use dbtrail_benches::{
    SOURCE, Server, digit_groups, dir_bytes, exec, gtid_executed, gtid_server_url, mib,
    peak_rss_kib, sid_root,
};
use dbtrail_binlog::checks::{Flavor, ServerInfo, check_server};
use dbtrail_binlog::stream::{self, Capture, CaptureItem, SourceSpec, connect};
use dbtrail_core::api::SourceState;
use dbtrail_core::gtid::MysqlGtidSet;
use dbtrail_core::{GtidSet, Position, TableRef};
use dbtrail_storage::Writer;
use dbtraild::capture::{self, writer::FlushPolicy};
use dbtraild::config::Config;
use dbtraild::metrics::Metrics;
use dbtraild::source::Source;
use dbtraild::tasks::SourceTasks;
use dbtraild::util::lock;
use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

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
    /// Row events per writer batch (dbtraild writes one at 1000; fsync once a second).
    #[arg(long, default_value_t = 1000)]
    flush_every: usize,
    /// Skip run D (dbtrail decode without the log).
    #[arg(long)]
    no_decode_only: bool,
    /// Keep the bench_capture database afterwards.
    #[arg(long)]
    keep_database: bool,
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

/// The position just before the workload: where run C's log starts.
fn workload_start(w: &Workload) -> Position {
    Position {
        gtid_set: GtidSet::Mysql(w.start.clone()),
        file: w.start_file.clone(),
        pos: 4,
        server_uuid: w.info.server_uuid.clone(),
    }
}

/// Run D: streams from the workload's start until the captured set holds the workload's end,
/// counting rows and commits, items dropped.
async fn stream_workload(spec: &SourceSpec, w: &Workload) -> Result<CaptureStats> {
    let mut conn = connect(spec).await?;
    let info = check_server(&mut conn).await?;
    let mut from = workload_start(w);
    from.server_uuid = info.server_uuid.clone();
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
        items.clear();
        if committed
            && let GtidSet::Mysql(have) = capture.gtid_set()
            && w.end.is_subset(have)
        {
            return Ok(stats);
        }
    }
}

/// A source of `server` configured as a dbtraild source, with its data under `data_dir`.
fn daemon_config(server: &Server, data_dir: &Path) -> Result<Config> {
    let mut source = format!(
        "[[sources]]\nname = \"{SOURCE}\"\nurl = {:?}\nreplica_server_id = {REPLICA_SERVER_ID}\n",
        server.daemon_url()
    );
    if let Some(p) = &server.password {
        use std::os::unix::fs::OpenOptionsExt;
        let file = data_dir.join("password");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .with_context(|| format!("creating {}", file.display()))?;
        std::io::Write::write_all(&mut f, p.as_bytes())?;
        source += &format!("password_file = {:?}\n", file.display().to_string());
    }
    Config::parse(&format!(
        "data_dir = {:?}\nsocket = {:?}\nmetrics_addr = \"\"\n\n{source}",
        data_dir.display().to_string(),
        data_dir.join("unused.sock").display().to_string(),
    ))
}

/// Waits until `source`'s durable position holds every transaction of the workload; fails
/// when capture stops or is interrupted.
async fn wait_durable(source: &Source, w: &Workload) -> Result<()> {
    loop {
        {
            let s = lock(&source.shared);
            let stopped = match s.state {
                Some(SourceState::Failed) => Some("failed"),
                Some(SourceState::Reconnecting) => Some("was interrupted"),
                _ => None,
            };
            if let Some(how) = stopped {
                bail!(
                    "capture {how}: {}",
                    s.error.as_deref().unwrap_or("(no error recorded)")
                );
            }
            if let Some(GtidSet::Mysql(have)) = s.position.as_ref().map(|p| &p.gtid_set)
                && w.end.is_subset(have)
            {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Run C: the daemon's capture task and log writer on a source opened as dbtraild opens one,
/// its fresh log starting at the workload's first binlog file. Returns the source (its log
/// is measured afterwards).
fn capture_to_log(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    w: &Workload,
    data_dir: &Path,
    flush_every: usize,
) -> Result<(CaptureStats, f64, Arc<Source>)> {
    let cfg = daemon_config(server, data_dir)?;
    let metrics = Arc::new(Metrics::new());
    let tasks = SourceTasks::open(&cfg, &cfg.sources[0], metrics.clone())?;
    let source = tasks.source.clone();
    // The log's first checkpoint: capture resumes from it, as after a restart.
    Writer::open(&source.log, workload_start(w))?.flush()?;
    let policy = FlushPolicy {
        batch_events: flush_every,
        ..FlushPolicy::of(&source.config)
    };
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let waited = rt.block_on(async {
        let task = tokio::spawn(capture::run_with(source.clone(), policy, cancel.clone()));
        let waited = wait_durable(&source, w).await;
        // Capture stops: the writer writes and fsyncs what it holds, then exits.
        cancel.cancel();
        let _ = task.await;
        waited
    });
    let secs = started.elapsed().as_secs_f64();
    waited?;
    let ckpt = source
        .log
        .checkpoint()?
        .context("the log has no checkpoint")?;
    let bench = TableRef::new(DB, "sbtest1");
    if let Some(t) = source.log.taints()?.into_iter().find(|t| t.table == bench) {
        bail!("capture tainted {}: {}", t.table, t.reason);
    }
    let bench_rows = match source.log.table_id(&bench)? {
        Some(id) => source
            .log
            .count_table_events(id, i64::MIN, i64::MAX, 0..u64::MAX)?,
        None => 0,
    };
    // The writer's batch writes, as `/metrics` shows them.
    let text = metrics.render();
    let sample = |name: &str| -> Option<f64> {
        let prefix = format!("dbtrail_capture_batch_write_seconds_{name}{{source=\"{SOURCE}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
    };
    let stats = CaptureStats {
        rows: ckpt.next_event_id,
        bench_rows,
        txns: ckpt.txns_total,
        flushes: sample("count").context("no batch count in the metrics")? as u64,
        flush_secs: sample("sum").context("no batch seconds in the metrics")?,
    };
    Ok((stats, secs, source))
}

/// Run D: stream + decode only.
fn decode_only(
    rt: &tokio::runtime::Runtime,
    spec: &SourceSpec,
    w: &Workload,
) -> Result<(CaptureStats, f64)> {
    let started = Instant::now();
    let stats = rt.block_on(stream_workload(spec, w))?;
    Ok((stats, started.elapsed().as_secs_f64()))
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.events >= 10 && args.rows_per_txn >= 1,
        "--events must be >= 10 and --rows-per-txn >= 1"
    );
    let url = gtid_server_url(args.url.as_deref())?;
    let root = sid_root(args.sid_root.as_deref());
    let server = Server::from_url(&url)?;
    let spec = server.spec(REPLICA_SERVER_ID);
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
    let data_dir = tempfile::Builder::new()
        .prefix("capture_bench_log.")
        .tempdir()?;
    eprintln!("C: dbtrail capture into {}", data_dir.path().display());
    let (c, capture_secs, source) =
        capture_to_log(&rt, &server, &w, data_dir.path(), args.flush_every)?;
    let settle = Instant::now();
    source.log.flush()?;
    source.log.compact_events()?;
    let settle_secs = settle.elapsed().as_secs_f64();
    let events_disk = source.log.events_disk_bytes();
    let log_disk = dir_bytes(&data_dir.path().join("sources").join(SOURCE).join("log"));
    drop(source);
    drop(data_dir);
    let rss_after_c = peak_rss_kib(std::process::id());

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
        peak_rss_kib(std::process::id()).map_or("?".into(), |k| (k / 1024).to_string())
    );
    if c.bench_rows != w.rows {
        println!(
            "  WARNING: the workload reported {} row events but capture saw {} in sbtest1",
            w.rows, c.bench_rows
        );
    }
    Ok(())
}
