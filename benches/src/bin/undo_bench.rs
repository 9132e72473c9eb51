//! undo_bench: dbtrail's window undo (flashback) of `--changes` row changes.
//!
//! On the MySQL test server with GTIDs:
//! 1. fills `bench_undo.t (id INT PRIMARY KEY, k INT, c CHAR(60))` with `--rows` rows,
//!    starts the real `dbtraild` (release build next to this executable);
//! 2. records T1 (the second after the fill) and the table's checksum, makes `--changes` row
//!    changes in transactions of `--rows-per-txn` (90% updates of `k` and `c` over id ranges,
//!    10% deletes), records T2 (the second they ended in);
//! 3. restarts `dbtraild` (so its peak RSS is the undo's, not capture's), waits until capture
//!    holds every change, then times `POST .../undo` for [T1, T2], the script streamed to a
//!    file, and reads the daemon's VmHWM;
//! 4. times the `mysql` client applying the script (for scale: MySQL has no flashback tool
//!    to compare with), and checks that the table's checksum is T1's again.
//!
//! Run from the workspace root: `cargo build --release -p dbtraild -p dbtrail-benches` then
//! `cargo run --release -p dbtrail-benches --bin undo_bench`.
use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use dbtrail_benches::{
    Daemon, DaemonFiles, SOURCE, Server, dbtraild_path, exec, gtid_executed, gtid_server_url, mib,
    peak_rss_kib,
};
use dbtrail_core::api::UndoWindowRequest;
use dbtrail_core::value::timestamp_to_utc_string;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The database of the table.
const DB: &str = "bench_undo";
/// server_id the daemon's capture registers with (capture_bench: 4_242_001, backup_bench:
/// 4_242_002, pitr_bench: 4_242_003).
const REPLICA_SERVER_ID: u32 = 4_242_004;

#[derive(Parser, Debug)]
#[command(about = "Window undo: dbtraild's flashback SQL for a window of row changes")]
struct Args {
    /// MySQL server with GTIDs [default: $DBTRAIL_TEST_MYSQL_GTID_URL, else the testdb env file]
    #[arg(long)]
    url: Option<String>,
    /// Rows in bench_undo.t.
    #[arg(long, default_value_t = 200_000)]
    rows: u64,
    /// Row changes in the window.
    #[arg(long, default_value_t = 100_000)]
    changes: u64,
    /// Rows per change transaction.
    #[arg(long, default_value_t = 1000)]
    rows_per_txn: u64,
    /// Statements per transaction of the script (0: one transaction).
    #[arg(long, default_value_t = 10_000)]
    batch_rows: usize,
    /// dbtraild binary [default: next to this executable].
    #[arg(long)]
    dbtraild: Option<PathBuf>,
    /// Keep the database and the work directory afterwards.
    #[arg(long)]
    keep: bool,
}

/// `COUNT(*)` and `BIT_XOR(CRC32(CONCAT_WS('#', id, k, c)))` of the table.
async fn checksum(conn: &mut Conn) -> Result<(u64, u64)> {
    conn.query_first(format!(
        "SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS('#', id, k, c))) FROM {DB}.t"
    ))
    .await
    .context("checksumming the table")?
    .context("no checksum row")
}

async fn server_now_us(conn: &mut Conn) -> Result<i64> {
    let v: Option<i64> = conn
        .query_first("SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)")
        .await?;
    v.context("NOW(6)")
}

/// Waits until the server's clock is past the second of `us`.
async fn next_second(conn: &mut Conn, us: i64) -> Result<()> {
    let boundary = (us.div_euclid(1_000_000) + 1) * 1_000_000 + 20_000;
    loop {
        let now = server_now_us(conn).await?;
        if now >= boundary {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_micros((boundary - now) as u64)).await;
    }
}

fn second(us: i64) -> String {
    timestamp_to_utc_string(us.div_euclid(1_000_000) * 1_000_000, 0)
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.rows >= 1000 && args.changes >= 10 && args.rows_per_txn >= 1,
        "--rows must be >= 1000, --changes >= 10, --rows-per-txn >= 1"
    );
    let url = gtid_server_url(args.url.as_deref())?;
    let server = Server::from_url(&url)?;
    let binary = dbtraild_path(args.dbtraild.as_deref())?;
    if cfg!(debug_assertions) {
        eprintln!("WARNING: a debug build of undo_bench; dbtraild next to it is one too");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let work = tempfile::Builder::new().prefix("undo_bench.").tempdir()?;
    let w = work.path();
    let files = DaemonFiles::write(w, &server, REPLICA_SERVER_ID, 1, DB)?;
    let client = dbtrail_ctl::Client::new(&files.socket);
    let mut conn = rt.block_on(server.connect())?;
    rt.block_on(async {
        exec(&mut conn, &format!("DROP DATABASE IF EXISTS {DB}")).await?;
        exec(&mut conn, &format!("CREATE DATABASE {DB}")).await?;
        exec(
            &mut conn,
            &format!("CREATE TABLE {DB}.t (id INT PRIMARY KEY, k INT NOT NULL, c CHAR(60))"),
        )
        .await?;
        exec(&mut conn, "SET SESSION cte_max_recursion_depth = 100000000").await?;
        // The recursive CTE of `INSERT ... WITH` is resolved in the default database.
        exec(&mut conn, &format!("USE {DB}")).await?;
        let mut start = 1;
        while start <= args.rows {
            let end = (start + 99_999).min(args.rows);
            exec(
                &mut conn,
                &format!(
                    "INSERT INTO {DB}.t WITH RECURSIVE s(n) AS (SELECT {start} UNION ALL \
                     SELECT n + 1 FROM s WHERE n < {end}) SELECT n, n % 1000, CONCAT('row-', n) FROM s"
                ),
            )
            .await?;
            start = end + 1;
        }
        anyhow::Ok(())
    })?;
    let mut daemon = Daemon::start(&binary, &files.config, &files.log, &server)?;
    rt.block_on(daemon.wait_streaming(&client))?;
    // The window.
    let (since, before, until, txns) = rt.block_on(async {
        let now = server_now_us(&mut conn).await?;
        next_second(&mut conn, now).await?;
        let before = checksum(&mut conn).await?;
        let since = server_now_us(&mut conn).await?;
        let (mut done, mut txns, mut at) = (0u64, 0u64, 1u64);
        while done < args.changes {
            let n = args.rows_per_txn.min(args.changes - done);
            if at + n > args.rows {
                at = 1;
            }
            let sql = if txns % 10 == 9 {
                format!(
                    "DELETE FROM {DB}.t WHERE id BETWEEN {at} AND {}",
                    at + n - 1
                )
            } else {
                format!(
                    "UPDATE {DB}.t SET k = k + 1, c = CONCAT('u', RAND()) WHERE id BETWEEN {at} AND {}",
                    at + n - 1
                )
            };
            done += exec(&mut conn, &sql).await?.max(1);
            txns += 1;
            at += n;
        }
        let until = server_now_us(&mut conn).await?;
        next_second(&mut conn, until).await?;
        anyhow::Ok((since, before, until, txns))
    })?;
    let want = rt.block_on(gtid_executed(&mut conn))?;
    // Restart: the peak RSS below is the undo's.
    rt.block_on(daemon.wait_captured(&client, &want))?;
    daemon.stop()?;
    let mut daemon = Daemon::start(&binary, &files.config, &files.log, &server)?;
    rt.block_on(async {
        daemon.wait_streaming(&client).await?;
        daemon.wait_captured(&client, &want).await
    })?;
    let rss_before = peak_rss_kib(daemon.pid());
    let script = w.join("undo.sql");
    let req = UndoWindowRequest {
        since: second(since),
        until: second(until),
        tables: vec![format!("{DB}.t")],
        batch_rows: (args.batch_rows > 0).then_some(args.batch_rows),
        ..UndoWindowRequest::default()
    };
    let started = Instant::now();
    let summary = rt.block_on(async {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&script)?);
        let s = client
            .undo_window(SOURCE, &req, &mut |d| {
                out.write_all(d)?;
                Ok(())
            })
            .await?;
        out.flush()?;
        anyhow::Ok(s)
    });
    let undo_secs = started.elapsed().as_secs_f64();
    let summary = match summary {
        Ok(s) => s,
        Err(e) => bail!("the undo failed: {e:#}\n{}", daemon.log_tail()),
    };
    let rss = peak_rss_kib(daemon.pid());
    daemon.stop()?;
    let bytes = std::fs::metadata(&script).map(|m| m.len()).unwrap_or(0);
    // Apply with the mysql client.
    let started = Instant::now();
    let mut cmd = Command::new("mysql");
    server.my_args(&mut cmd);
    let out = cmd
        .stdin(std::fs::File::open(&script)?)
        .output()
        .context("running the mysql client")?;
    ensure!(
        out.status.success(),
        "mysql failed applying the undo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let apply_secs = started.elapsed().as_secs_f64();
    let after = rt.block_on(checksum(&mut conn))?;
    println!(
        "undo_bench: {} rows, window {} .. {}",
        args.rows, req.since, req.until
    );
    println!(
        "  changes in the window: {} in {txns} transactions; statements: {} in {} transaction(s)",
        args.changes, summary.statements, summary.batches
    );
    println!(
        "  dbtrail undo SQL: {undo_secs:.2} s ({:.0} statements/s), {:.1} MiB, daemon peak RSS \
         {} (before the undo: {})",
        summary.statements as f64 / undo_secs.max(1e-9),
        mib(bytes),
        rss.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
        rss_before.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
    );
    println!("  mysql applying it: {apply_secs:.2} s (for scale)");
    println!(
        "  table at T1 again: {} (count, checksum before {before:?}, after {after:?})",
        if before == after { "yes" } else { "NO" }
    );
    if !args.keep {
        rt.block_on(exec(&mut conn, &format!("DROP DATABASE {DB}")))?;
    } else {
        eprintln!("kept {} and {DB}", work.keep().display());
    }
    ensure!(before == after, "the undo did not bring the table back");
    Ok(())
}
