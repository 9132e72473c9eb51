//! lag_bench: does capture keep up with a steady concurrent write load, and does its memory
//! stay flat? sysbench's `oltp_write_only` (the real client, from apt) with `--threads`
//! writers on the MySQL test server with GTIDs, for `--duration` seconds, while the real
//! `dbtraild` (release build, next to this executable) captures it.
//!
//! Every `--sample-ms` the driver reads the daemon's status (`GET .../status`) and records:
//! - **staleness**: now minus the commit time of the newest durable transaction (the same
//!   host's clock on both sides): how far the restorable log trails the source, what a
//!   restore to "now" would miss. Under a steady load it is the durable lag of the oldest
//!   transaction not yet durable, plus at most one commit interval;
//! - **durable lag** as capture reports it (commit to durable of the last transaction of its
//!   last batch);
//! - dbtraild's RSS.
//!
//! Prints p50/p90/p99/max of both lags over the run (the first 10 s excluded as warm-up),
//! RSS after warm-up and at the end, sysbench's transactions/s, capture's transactions and
//! row events per second, CPU seconds of dbtraild and mysqld, and whether capture held the
//! source's `gtid_executed` at the end. Goal (issue 15/17): p99 < 1 s, memory flat.
//! Run from the workspace root:
//! `cargo build --release -p dbtraild -p dbtrail-benches` then
//! `cargo run --release -p dbtrail-benches --bin lag_bench -- --duration 600`.
use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use dbtrail_benches::{
    Daemon, DaemonFiles, SOURCE, Server, cpu_secs, dbtraild_path, exec, gtid_executed,
    gtid_server_url, server_pid,
};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The database sysbench writes.
const DB: &str = "bench_lag";
/// server_id the daemon registers with (the other benches use 4_242_001..4).
const REPLICA_SERVER_ID: u32 = 4_242_005;
/// Samples before this many seconds are warm-up.
const WARMUP_S: f64 = 10.0;

#[derive(Parser, Debug)]
#[command(about = "Capture under a steady sysbench write load: durable lag p50/p99, memory")]
struct Args {
    /// MySQL server with GTIDs [default: $DBTRAIL_TEST_MYSQL_GTID_URL, else the testdb env file]
    #[arg(long)]
    url: Option<String>,
    /// Seconds of load.
    #[arg(long, default_value_t = 600)]
    duration: u64,
    /// sysbench threads (concurrent writers).
    #[arg(long, default_value_t = 8)]
    threads: u32,
    /// sysbench tables.
    #[arg(long, default_value_t = 8)]
    tables: u32,
    /// Rows per sysbench table.
    #[arg(long, default_value_t = 100_000)]
    table_size: u64,
    /// Transactions per second sysbench aims at (0: as fast as it can).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Milliseconds between samples.
    #[arg(long, default_value_t = 200)]
    sample_ms: u64,
    /// sysbench binary.
    #[arg(long, default_value = "/usr/bin/sysbench")]
    sysbench: PathBuf,
    /// dbtraild binary [default: next to this executable].
    #[arg(long)]
    dbtraild: Option<PathBuf>,
}

struct Sample {
    at: f64,
    staleness: f64,
    lag: f64,
    rss_kib: u64,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn sysbench(args: &Args, server: &Server, command: &str, extra: &[String]) -> Command {
    let mut cmd = Command::new(&args.sysbench);
    cmd.arg("oltp_write_only")
        .arg(format!("--mysql-host={}", server.host))
        .arg(format!("--mysql-port={}", server.port))
        .arg(format!("--mysql-user={}", server.user))
        .arg(format!("--mysql-db={DB}"))
        .arg(format!("--tables={}", args.tables))
        .arg(format!("--table-size={}", args.table_size))
        .args(extra)
        .arg(command);
    if let Some(p) = &server.password {
        cmd.arg(format!("--mysql-password={p}"));
    }
    cmd
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.duration >= 20 && args.threads >= 1 && args.tables >= 1 && args.sample_ms >= 10,
        "--duration must be >= 20 s, --threads and --tables >= 1, --sample-ms >= 10"
    );
    if !args.sysbench.is_file() {
        bail!(
            "{} not found: install sysbench (`apt-get install sysbench`) or pass --sysbench",
            args.sysbench.display()
        );
    }
    let url = gtid_server_url(args.url.as_deref())?;
    let server = Server::from_url(&url)?;
    let binary = dbtraild_path(args.dbtraild.as_deref())?;
    if cfg!(debug_assertions) {
        eprintln!("WARNING: a debug build of lag_bench; dbtraild next to it is one too");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let work = tempfile::Builder::new().prefix("lag_bench.").tempdir()?;
    let files = DaemonFiles::write(work.path(), &server, REPLICA_SERVER_ID, 1, DB)?;
    let client = dbtrail_ctl::Client::new(&files.socket);
    let mut conn = rt.block_on(server.connect())?;
    rt.block_on(async {
        exec(&mut conn, &format!("DROP DATABASE IF EXISTS {DB}")).await?;
        exec(&mut conn, &format!("CREATE DATABASE {DB}")).await?;
        anyhow::Ok(())
    })?;
    eprintln!(
        "sysbench: preparing {} tables of {} rows",
        args.tables, args.table_size
    );
    let prep = sysbench(&args, &server, "prepare", &[])
        .stdout(Stdio::null())
        .status()
        .context("running sysbench prepare")?;
    ensure!(prep.success(), "sysbench prepare failed ({prep})");
    let mut daemon = Daemon::start(&binary, &files.config, &files.log, &server)?;
    rt.block_on(daemon.wait_streaming(&client))?;
    // Whatever the binlog held before (sysbench's prepare, other work) is captured first.
    let before = rt.block_on(gtid_executed(&mut conn))?;
    rt.block_on(daemon.wait_captured(&client, &before))?;
    let pid = daemon.pid();
    let mysqld = rt.block_on(server_pid(&server));
    let (cpu0, mcpu0) = (cpu_secs(pid), mysqld.and_then(cpu_secs));
    let st0 = rt.block_on(client.status(SOURCE))?;
    eprintln!(
        "sysbench: oltp_write_only --threads={} --time={} --rate={}",
        args.threads, args.duration, args.rate
    );
    let mut run = sysbench(
        &args,
        &server,
        "run",
        &[
            format!("--threads={}", args.threads),
            format!("--time={}", args.duration),
            format!("--rate={}", args.rate),
            "--report-interval=0".into(),
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .context("starting sysbench run")?;
    let start = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut errors = 0u64;
    while run.try_wait()?.is_none() {
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_micros() as i64;
        match rt.block_on(client.status(SOURCE)) {
            Ok(st) => {
                let commit = st
                    .last_commit_time
                    .as_deref()
                    .and_then(|t| dbtrail_core::time::parse_time(t).ok())
                    .map(|t| t.micros);
                if let Some(c) = commit {
                    samples.push(Sample {
                        at: start.elapsed().as_secs_f64(),
                        staleness: (now_us - c).max(0) as f64 / 1e6,
                        lag: st.lag_seconds.unwrap_or(0.0),
                        rss_kib: rss_kib(pid),
                    });
                }
            }
            Err(_) => errors += 1,
        }
        std::thread::sleep(Duration::from_millis(args.sample_ms));
    }
    let load_s = start.elapsed().as_secs_f64();
    let out = run.wait_with_output()?;
    ensure!(out.status.success(), "sysbench run failed ({})", out.status);
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    let tps = report
        .lines()
        .find(|l| l.trim_start().starts_with("transactions:"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    // Everything the source executed is captured afterwards.
    let want = rt.block_on(gtid_executed(&mut conn))?;
    let caught = Instant::now();
    rt.block_on(daemon.wait_captured(&client, &want))?;
    let catch_up = caught.elapsed().as_secs_f64();
    let st1 = rt.block_on(client.status(SOURCE))?;
    let (cpu1, mcpu1) = (cpu_secs(pid), mysqld.and_then(cpu_secs));
    let steady: Vec<&Sample> = samples.iter().filter(|s| s.at >= WARMUP_S).collect();
    ensure!(!steady.is_empty(), "no samples after the warm-up");
    let mut stale: Vec<f64> = steady.iter().map(|s| s.staleness).collect();
    let mut lag: Vec<f64> = steady.iter().map(|s| s.lag).collect();
    stale.sort_by(f64::total_cmp);
    lag.sort_by(f64::total_cmp);
    let rss_first = steady.first().map_or(0, |s| s.rss_kib);
    let rss_last = steady.last().map_or(0, |s| s.rss_kib);
    let rss_max = steady.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let txns = st1
        .transactions_total
        .saturating_sub(st0.transactions_total);
    let events = st1.events_total.saturating_sub(st0.events_total);
    let p99 = percentile(&stale, 0.99);
    println!();
    println!("lag_bench report");
    println!(
        "  load              sysbench oltp_write_only, {} threads, {} tables x {} rows, rate {}, {:.0} s; {tps}",
        args.threads,
        args.tables,
        args.table_size,
        if args.rate == 0 {
            "unlimited".to_string()
        } else {
            args.rate.to_string()
        },
        load_s
    );
    println!(
        "  captured          {txns} transactions ({:.0}/s), {events} row events ({:.0}/s); caught up {:.2} s after the load ended",
        txns as f64 / load_s,
        events as f64 / load_s,
        catch_up
    );
    println!(
        "  samples           {} every {} ms after {WARMUP_S:.0} s of warm-up ({errors} status errors)",
        steady.len(),
        args.sample_ms
    );
    println!("                    p50      p90      p99      max");
    for (name, v) in [("staleness s", &stale), ("durable lag s", &lag)] {
        println!(
            "  {name:<16} {:>7.3}  {:>7.3}  {:>7.3}  {:>7.3}",
            percentile(v, 0.5),
            percentile(v, 0.9),
            percentile(v, 0.99),
            v.last().copied().unwrap_or(f64::NAN)
        );
    }
    println!(
        "  dbtraild RSS      {:.1} MiB after warm-up, {:.1} MiB at the end, {:.1} MiB max",
        rss_first as f64 / 1024.0,
        rss_last as f64 / 1024.0,
        rss_max as f64 / 1024.0
    );
    let cpu = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.1}", b - a),
        _ => "?".into(),
    };
    println!(
        "  CPU s             dbtraild {}, mysqld {} ({} cores on this machine, shared with sysbench)",
        cpu(cpu0, cpu1),
        cpu(mcpu0, mcpu1),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  goal              staleness p99 < 1 s: {}",
        if p99 < 1.0 { "met" } else { "NOT met" }
    );
    let status = daemon.stop()?;
    println!("  dbtraild          exit {status}");
    rt.block_on(exec(&mut conn, &format!("DROP DATABASE IF EXISTS {DB}")))?;
    Ok(())
}
