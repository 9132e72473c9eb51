//! backup_bench: baseline (backup) throughput of `dbtraild` beside mydumper, same table,
//! same machine, same run.
//!
//! On the MySQL test server with GTIDs, fills `bench_backup.sbtest1` (sysbench-like, default
//! 3M rows; `--reuse` keeps a table that already has the right row count), then times:
//! - **mydumper** `-t 4` (one table is dumped by one thread);
//! - **mydumper** `-t 4 -r 500000` (row chunks: one table is dumped by several threads);
//! - **dbtrail**: the real `dbtraild` (found next to this executable, release build), one
//!   source with `backup_connections = 4` and `backup_databases = ["bench_backup"]` (the
//!   table, above `backup_split_rows`, is read in 4 key ranges, one per connection), a
//!   backup asked through the API (`POST .../backups`) and polled every 50 ms until it ends;
//!   the baseline must hold the table's row count.
//!
//! Prints wall time, rows/s, MiB/s of the table's logical size (`DATA_LENGTH`), output
//! bytes, peak RSS and CPU time of each, and the ratio dbtrail / mydumper.
//! Goal (acceptance): dbtrail at least as fast as mydumper. Run from the workspace root:
//! `cargo build --release -p dbtraild -p dbtrail-benches` then
//! `cargo run --release -p dbtrail-benches --bin backup_bench`.
use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use dbtrail_benches::{
    Daemon, DaemonFiles, SOURCE, Server, clock_ticks, cpu_secs, dbtraild_path, digit_groups,
    dir_bytes, exec, gtid_server_url, mib, peak_rss_kib, server_pid,
};
use dbtrail_core::api::JobStatus;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The database the table lives in.
const DB: &str = "bench_backup";
/// server_id the daemon's capture registers with (capture_bench uses 4_242_001).
const REPLICA_SERVER_ID: u32 = 4_242_002;
/// Rows per generating INSERT ... SELECT.
const GEN_CHUNK: u64 = 100_000;

#[derive(Parser, Debug)]
#[command(about = "Backup throughput: dbtraild's baseline vs mydumper on the same table")]
struct Args {
    /// MySQL server with GTIDs [default: $DBTRAIL_TEST_MYSQL_GTID_URL, else the testdb env file]
    #[arg(long)]
    url: Option<String>,
    /// Rows in bench_backup.sbtest1.
    #[arg(long, default_value_t = 3_000_000)]
    rows: u64,
    /// Keep bench_backup.sbtest1 if it already holds --rows rows (and keep it afterwards).
    #[arg(long)]
    reuse: bool,
    /// Keep the bench_backup database afterwards.
    #[arg(long)]
    keep_database: bool,
    /// Threads of mydumper (-t) and backup_connections of dbtraild.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Rows per chunk of the second mydumper run (-r).
    #[arg(long, default_value_t = 500_000)]
    chunk_rows: u64,
    /// mydumper binary.
    #[arg(long, default_value = "/usr/bin/mydumper")]
    mydumper: PathBuf,
    /// dbtraild binary [default: next to this executable].
    #[arg(long)]
    dbtraild: Option<PathBuf>,
    /// backup_split_rows of dbtraild (a larger table is read in key ranges; 0: never)
    /// [default: dbtraild's, 1000000].
    #[arg(long)]
    split_rows: Option<u64>,
}

/// The table as the runs see it.
struct Table {
    version: String,
    buffer_pool: u64,
    flush_method: String,
    rows: u64,
    data_length: u64,
    index_length: u64,
    /// None when reused.
    generated_secs: Option<f64>,
}

async fn count_rows(conn: &mut Conn) -> Result<Option<u64>> {
    let exists: Option<u64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'sbtest1'",
            (DB,),
        )
        .await?;
    if exists.unwrap_or(0) == 0 {
        return Ok(None);
    }
    Ok(conn
        .query_first(format!("SELECT COUNT(*) FROM {DB}.sbtest1"))
        .await?)
}

/// Creates and fills bench_backup.sbtest1 (or reuses it), then reads its size.
async fn prepare(server: &Server, rows: u64, reuse: bool) -> Result<Table> {
    let mut conn = server.connect().await?;
    let (version, buffer_pool, flush_method): (String, u64, String) = conn
        .query_first("SELECT @@version, @@innodb_buffer_pool_size, @@innodb_flush_method")
        .await?
        .context("reading the server's version")?;
    let have = if reuse {
        count_rows(&mut conn).await?
    } else {
        None
    };
    let generated_secs = if have == Some(rows) {
        eprintln!("reusing {DB}.sbtest1 ({rows} rows)");
        None
    } else {
        if reuse {
            eprintln!(
                "{DB}.sbtest1 has {} rows, not {rows}: generating it again",
                have.map_or("no".into(), |n| n.to_string())
            );
        }
        eprintln!("generating {rows} rows in {DB}.sbtest1 ({GEN_CHUNK} rows per INSERT)");
        let started = Instant::now();
        // Not binlogged: nothing captures it, and it keeps the shared server's binlog small.
        exec(&mut conn, "SET SESSION sql_log_bin = 0").await?;
        exec(
            &mut conn,
            &format!("SET SESSION cte_max_recursion_depth = {}", GEN_CHUNK + 1),
        )
        .await?;
        exec(&mut conn, &format!("DROP DATABASE IF EXISTS {DB}")).await?;
        exec(&mut conn, &format!("CREATE DATABASE {DB}")).await?;
        exec(
            &mut conn,
            &format!(
                "CREATE TABLE {DB}.sbtest1 (id INT PRIMARY KEY, k INT NOT NULL, \
                 c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL, KEY k_1 (k))"
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
        Some(secs)
    };
    // Fresh statistics for DATA_LENGTH.
    let _: Vec<mysql_async::Row> = conn.query(format!("ANALYZE TABLE {DB}.sbtest1")).await?;
    exec(&mut conn, "SET SESSION information_schema_stats_expiry = 0").await?;
    let (data_length, index_length): (u64, u64) = conn
        .exec_first(
            "SELECT DATA_LENGTH, INDEX_LENGTH FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'sbtest1'",
            (DB,),
        )
        .await?
        .context("reading the table's size")?;
    let counted = count_rows(&mut conn).await?;
    ensure!(
        counted == Some(rows),
        "{DB}.sbtest1 holds {counted:?} rows, expected {rows}"
    );
    conn.disconnect().await?;
    Ok(Table {
        version,
        buffer_pool,
        flush_method,
        rows,
        data_length,
        index_length,
        generated_secs,
    })
}

/// user + system CPU seconds of each thread of a process so far, with the thread's name.
fn thread_cpu(pid: u32) -> HashMap<u32, (String, f64)> {
    let mut out = HashMap::new();
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    let tick = clock_ticks();
    for e in rd.filter_map(|e| e.ok()) {
        let Some(tid) = e.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let name = stat[open + 1..close].to_string();
        out.insert(tid, (name, (ticks(11) + ticks(12)) as f64 / tick));
    }
    out
}

/// What one run measured.
struct Run {
    label: String,
    secs: f64,
    rows: u64,
    out_bytes: u64,
    files: usize,
    peak_rss_kib: Option<u64>,
    cpu_secs: Option<f64>,
    server_cpu_secs: Option<f64>,
}

/// Runs mydumper under GNU time; `chunk_rows` adds `-r`.
fn mydumper(
    args: &Args,
    server: &Server,
    mysqld: Option<u32>,
    work: &Path,
    chunk_rows: Option<u64>,
) -> Result<Run> {
    let out = work.join(match chunk_rows {
        Some(_) => "mydumper-chunked",
        None => "mydumper",
    });
    // MySQL 9.x defaults explain_format to TREE; mydumper 0.10 reads the row estimate of a
    // chunk from a TRADITIONAL EXPLAIN and, without it, silently writes one file.
    let defaults = work.join("mydumper.cnf");
    std::fs::write(
        &defaults,
        "[mydumper]\ninit-command=SET SESSION explain_format=TRADITIONAL\n",
    )?;
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-v")
        .arg(&args.mydumper)
        .arg("--defaults-file")
        .arg(&defaults)
        .args(["-h", &server.host])
        .args(["-P", &server.port.to_string()])
        .args(["-u", &server.user])
        .args(["-B", DB])
        .args(["-t", &args.threads.to_string()])
        .arg("-o")
        .arg(&out);
    if let Some(p) = &server.password {
        cmd.args(["-p", p]);
    }
    let mut label = format!("mydumper -t {}", args.threads);
    if let Some(r) = chunk_rows {
        cmd.args(["-r", &r.to_string()]);
        label += &format!(" -r {r}");
    }
    eprintln!("{label} -o {}", out.display());
    let server_before = mysqld.and_then(cpu_secs);
    let started = Instant::now();
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .context("running /usr/bin/time -v mydumper (apt install time mydumper)")?;
    let secs = started.elapsed().as_secs_f64();
    let server_cpu_secs = match (server_before, mysqld.and_then(cpu_secs)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "{label} failed ({}):\n{stderr}",
        output.status
    );
    let field = |name: &str| -> Option<f64> {
        stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    let peak_rss_kib = field("Maximum resident set size (kbytes):").map(|k| k as u64);
    let cpu_secs = match (
        field("User time (seconds):"),
        field("System time (seconds):"),
    ) {
        (Some(u), Some(s)) => Some(u + s),
        _ => None,
    };
    // Data files: DB.sbtest1.sql, or DB.sbtest1.00000.sql ... when chunked.
    let prefix = format!("{DB}.sbtest1.");
    let mut files = Vec::new();
    for e in std::fs::read_dir(&out).with_context(|| format!("listing {}", out.display()))? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(".sql") {
            files.push(out.join(name));
        }
    }
    if chunk_rows.is_some() {
        ensure!(
            files.len() > 1,
            "{label} wrote {} data file(s), not chunks: did the init-command \
             SET SESSION explain_format=TRADITIONAL not apply?",
            files.len()
        );
    }
    // One row per line starting with '(' (mydumper 0.10 writes `INSERT INTO ... VALUES\n(..),`).
    let mut rows = 0;
    for f in &files {
        let file = std::fs::File::open(f).with_context(|| format!("opening {}", f.display()))?;
        let mut r = std::io::BufReader::with_capacity(1 << 20, file);
        let mut line = Vec::new();
        while r.read_until(b'\n', &mut line)? > 0 {
            if line.first() == Some(&b'(') {
                rows += 1;
            }
            line.clear();
        }
    }
    let out_bytes = dir_bytes(&out);
    std::fs::remove_dir_all(&out).ok();
    Ok(Run {
        label,
        secs,
        rows,
        out_bytes,
        files: files.len(),
        peak_rss_kib,
        cpu_secs,
        server_cpu_secs,
    })
}

/// What the dbtrail run measured beyond [`Run`].
struct DbtrailRun {
    run: Run,
    binary: PathBuf,
    duration_ms: Option<u64>,
    lock_held_ms: Option<f64>,
    parquet_bytes: u64,
    rss_before_kib: Option<u64>,
    exit: String,
    /// Each job phase with the time since the request it was first seen at (50 ms polls).
    phases: Vec<(String, f64)>,
    /// CPU seconds of dbtraild's threads during the backup, the busiest first.
    threads: Vec<(String, f64)>,
}

fn dbtrail(
    rt: &tokio::runtime::Runtime,
    args: &Args,
    server: &Server,
    mysqld: Option<u32>,
    work: &Path,
) -> Result<DbtrailRun> {
    let binary = dbtraild_path(args.dbtraild.as_deref())?;
    let files = DaemonFiles::write(work, server, REPLICA_SERVER_ID, args.threads, DB)?;
    if let Some(n) = args.split_rows {
        // The source's table is the config's last section.
        let mut cfg = std::fs::read_to_string(&files.config)?;
        cfg.push_str(&format!("backup_split_rows = {n}\n"));
        std::fs::write(&files.config, cfg)?;
    }
    let data_dir = files.data_dir.clone();
    let mut daemon = Daemon::start(&binary, &files.config, &files.log, server)?;
    let pid = daemon.pid();
    let client = dbtrail_ctl::Client::new(&files.socket);

    let measured = rt.block_on(async {
        // Up and streaming.
        daemon.wait_streaming(&client).await?;
        let rss_before = peak_rss_kib(pid);
        let cpu_before = cpu_secs(pid);
        let server_before = mysqld.and_then(cpu_secs);
        let threads_before = thread_cpu(pid);
        eprintln!("dbtrail: backup");
        let started = Instant::now();
        let job = client.start_backup(SOURCE).await?;
        let mut phases: Vec<(String, f64)> = Vec::new();
        let view = loop {
            let v = client.backup(SOURCE, &job.backup_id).await?;
            if phases.last().is_none_or(|(p, _)| *p != v.phase) {
                phases.push((v.phase.clone(), started.elapsed().as_secs_f64()));
            }
            if v.status != JobStatus::Running {
                break v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let secs = started.elapsed().as_secs_f64();
        let rss_after = peak_rss_kib(pid);
        let mut threads: Vec<(String, f64)> = thread_cpu(pid)
            .into_iter()
            .map(|(tid, (name, after))| {
                let before = threads_before.get(&tid).map_or(0.0, |(_, b)| *b);
                (format!("{name}/{tid}"), after - before)
            })
            .filter(|(_, s)| *s > 0.0)
            .collect();
        threads.sort_by(|a, b| b.1.total_cmp(&a.1));
        let cpu = match (cpu_before, cpu_secs(pid)) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let server_cpu = match (server_before, mysqld.and_then(cpu_secs)) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        if view.status == JobStatus::Failed {
            bail!(
                "the backup failed: {}\n{}",
                view.error.unwrap_or_default(),
                daemon.log_tail()
            );
        }
        anyhow::Ok((
            view, secs, rss_before, rss_after, cpu, server_cpu, phases, threads,
        ))
    });
    let (view, secs, rss_before, rss_after, cpu, server_cpu, phases, threads) = measured?;
    let exit = daemon.stop()?;
    let baseline = view
        .baseline
        .as_ref()
        .context("a completed job without its baseline")?;
    let out_bytes = dir_bytes(&data_dir.join("baselines"));
    Ok(DbtrailRun {
        run: Run {
            label: format!("dbtrail ({} conns)", args.threads),
            secs,
            // The manifest's count: the rows its files hold.
            rows: baseline.rows(),
            out_bytes,
            files: baseline.tables.iter().map(|t| t.files().len()).sum(),
            peak_rss_kib: rss_after,
            cpu_secs: cpu,
            server_cpu_secs: server_cpu,
        },
        binary,
        duration_ms: view.duration_ms,
        lock_held_ms: view.lock_held_ms,
        parquet_bytes: view.bytes,
        rss_before_kib: rss_before,
        exit: exit.to_string(),
        phases,
        threads,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.rows >= 1 && args.threads >= 1 && args.chunk_rows >= 1,
        "--rows, --threads and --chunk-rows must be >= 1"
    );
    let url = gtid_server_url(args.url.as_deref())?;
    let server = Server::from_url(&url)?;
    // Fail before the slow generation when the daemon is missing.
    dbtraild_path(args.dbtraild.as_deref())?;
    if cfg!(debug_assertions) {
        eprintln!("WARNING: a debug build of backup_bench; dbtraild next to it is one too");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let table = rt.block_on(prepare(&server, args.rows, args.reuse))?;
    let mysqld = rt.block_on(server_pid(&server));
    let work = tempfile::Builder::new().prefix("backup_bench.").tempdir()?;

    // Interleaved, so a drift of the machine does not favour one tool.
    let plain = mydumper(&args, &server, mysqld, work.path(), None)?;
    let d = dbtrail(&rt, &args, &server, mysqld, work.path())?;
    let chunked = mydumper(&args, &server, mysqld, work.path(), Some(args.chunk_rows))?;

    if !(args.keep_database || args.reuse) {
        rt.block_on(async {
            let mut conn = server.connect().await?;
            exec(&mut conn, "SET SESSION sql_log_bin = 0").await?;
            exec(&mut conn, &format!("DROP DATABASE IF EXISTS {DB}")).await?;
            conn.disconnect().await?;
            anyhow::Ok(())
        })?;
    }

    // The report.
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!("backup_bench report");
    println!(
        "  server            {} {}:{} (MySQL {}), innodb_buffer_pool_size {:.0} MiB, \
         innodb_flush_method {}; {cpus} CPUs on this machine (server and clients share them)",
        server.user,
        server.host,
        server.port,
        table.version,
        mib(table.buffer_pool),
        table.flush_method
    );
    println!(
        "  table             {DB}.sbtest1: {} rows, DATA_LENGTH {:.1} MiB (INDEX_LENGTH {:.1} \
         MiB), {}",
        table.rows,
        mib(table.data_length),
        mib(table.index_length),
        match table.generated_secs {
            Some(s) => format!("generated in {s:.1}s (not part of the comparison)"),
            None => "reused (--reuse)".into(),
        }
    );
    println!(
        "  {:<26} {:>8} {:>10} {:>8} {:>11} {:>6} {:>9} {:>8} {:>8}",
        "run", "wall s", "rows/s", "MiB/s", "output MiB", "files", "peak RSS", "CPU s", "mysqld"
    );
    let opt = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.1}"));
    let rows = [&plain, &d.run, &chunked];
    for r in rows {
        println!(
            "  {:<26} {:>8.2} {:>10.0} {:>8.1} {:>11.1} {:>6} {:>5} MiB {:>8} {:>8}",
            r.label,
            r.secs,
            r.rows as f64 / r.secs,
            mib(table.data_length) / r.secs,
            mib(r.out_bytes),
            r.files,
            r.peak_rss_kib
                .map_or("?".into(), |k| (k / 1024).to_string()),
            opt(r.cpu_secs),
            opt(r.server_cpu_secs),
        );
    }
    println!(
        "  (MiB/s: DATA_LENGTH / wall time; CPU s: user + system of the tool (dbtraild: during \
         the backup); mysqld: CPU seconds of the server during the run)"
    );
    println!(
        "  dbtrail job       duration_ms {}, lock held {} ms, Parquet {:.1} MiB ({:.1} \
         bytes/row); dbtraild peak RSS {} MiB before the backup, {} MiB after; {}",
        d.duration_ms.map_or("?".into(), |v| v.to_string()),
        d.lock_held_ms.map_or("?".into(), |v| format!("{v:.1}")),
        mib(d.parquet_bytes),
        d.parquet_bytes as f64 / table.rows as f64,
        d.rss_before_kib
            .map_or("?".into(), |k| (k / 1024).to_string()),
        d.run
            .peak_rss_kib
            .map_or("?".into(), |k| (k / 1024).to_string()),
        d.exit
    );
    let phases: Vec<String> = d
        .phases
        .iter()
        .map(|(p, t)| format!("{p} {t:.2}s"))
        .collect();
    println!(
        "  dbtrail phases    {} (first seen at, 50 ms polls)",
        phases.join(", ")
    );
    let threads: Vec<String> = d
        .threads
        .iter()
        .take(5)
        .map(|(n, s)| format!("{n} {s:.2}s"))
        .collect();
    println!(
        "  dbtraild threads  {} (CPU during the backup, busiest first)",
        threads.join(", ")
    );
    println!("  dbtraild          {}", d.binary.display());
    for m in [&plain, &chunked] {
        println!("  dbtrail / {:<26} {:6.2}", m.label, d.run.secs / m.secs);
    }
    let best = plain.secs.min(chunked.secs);
    println!(
        "  goal: dbtrail <= mydumper (the faster run, {best:.2}s): {}",
        if d.run.secs <= best { "met" } else { "NOT met" }
    );
    for r in rows {
        if r.rows != table.rows {
            println!(
                "  WARNING: {} holds {} rows, the table {}",
                r.label, r.rows, table.rows
            );
        }
    }
    ensure!(
        d.run.rows == table.rows,
        "the baseline holds {} rows, the table {}",
        d.run.rows,
        table.rows
    );
    Ok(())
}
