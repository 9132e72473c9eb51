//! dbtrailctl: talk to dbtraild over its unix socket.
use clap::{Parser, Subcommand};
use dbtrail_core::api::{
    BackupJobView, BackupStarted, JobStatus, PitrPlan, PitrRequest, SourcesResponse,
};
use dbtrail_core::render::rfc3339_micros;
use dbtrail_ctl::{Client, DEFAULT_SOCKET};
use std::path::PathBuf;

/// Control and inspect a running dbtraild.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// The daemon's API socket.
    #[arg(long, global = true, env = "DBTRAIL_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Capture status of every source.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decoded row changes from the log.
    Events {
        /// Source name (optional when only one is configured).
        #[arg(long)]
        source: Option<String>,
        /// Only this table (db.table).
        #[arg(long)]
        table: Option<String>,
        /// Committed at or after (UTC unless an offset is given).
        #[arg(long)]
        since: Option<String>,
        /// Committed at or before.
        #[arg(long)]
        until: Option<String>,
        /// Only the transaction with this GTID.
        #[arg(long)]
        gtid: Option<String>,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Take a baseline (consistent snapshot of every table) now.
    Backup {
        /// Source name (optional when only one is configured).
        #[arg(long)]
        source: Option<String>,
        /// Wait until it ends; exit non-zero if it fails.
        #[arg(long)]
        wait: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Baselines from elsewhere.
    Baseline {
        #[command(subcommand)]
        cmd: BaselineCmd,
    },
    /// Rebuild tables as they were at a past moment, as a mydumper dump.
    ///
    /// A transaction is included when its commit time, truncated to the target's precision,
    /// is at or before the target: `--at "2026-11-24 14:30:00"` includes everything committed
    /// during that second; `--at "2026-11-24 14:30:00.250000"` cuts inside it. Times without
    /// an offset are UTC.
    Pitr {
        /// Source name (optional when only one is configured).
        #[arg(long)]
        source: Option<String>,
        /// Target time: YYYY-MM-DD HH:MM:SS[.ffffff] (UTC) or RFC 3339.
        #[arg(long, conflicts_with = "gtid", required_unless_present = "gtid")]
        at: Option<String>,
        /// Target GTID set: the state right after these transactions.
        #[arg(long)]
        gtid: Option<String>,
        /// Only these tables (db.t1,db.t2).
        #[arg(long, value_delimiter = ',')]
        tables: Vec<String>,
        /// Restore across gaps recorded in the log.
        #[arg(long)]
        allow_gaps: bool,
        /// A new or empty directory (absolute), or s3://bucket/prefix.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Validate and print the plan; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Wait until it ends (progress on a terminal); exit non-zero if it fails.
        #[arg(long)]
        wait: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Status of a restore job.
    PitrStatus {
        /// The restore's id (pitr-...).
        id: String,
        /// Source name (optional when only one is configured).
        #[arg(long)]
        source: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// What can be restored: captured range, baselines, gaps, tainted tables.
    Coverage {
        /// Source name (optional when only one is configured).
        #[arg(long)]
        source: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List baselines and backup jobs.
    Backups {
        /// Source name (optional when only one is configured).
        #[arg(long)]
        source: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print SQL that undoes one transaction (apply it with `mysql`).
    Undo {
        /// Source name (optional when only one is configured).
        #[arg(long)]
        source: Option<String>,
        /// The transaction's GTID.
        #[arg(long)]
        gtid: String,
        /// Produce the script even if later transactions changed the same rows.
        #[arg(long)]
        force: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Packaging: write the man pages or the bash, zsh and fish completions into DIR.
    #[command(hide = true)]
    Generate {
        #[arg(value_parser = ["man", "completions"])]
        what: String,
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum BaselineCmd {
    /// Import a mydumper backup directory (on the daemon's host) whose metadata file records
    /// the binlog position, as a baseline.
    Import {
        /// The mydumper output directory (absolute path, readable by dbtraild).
        dir: PathBuf,
        /// Source name (optional when only one is configured).
        #[arg(long)]
        source: Option<String>,
        /// Wait until it ends; exit non-zero if it fails.
        #[arg(long)]
        wait: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dbtrailctl: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn pick_source(client: &Client, source: Option<String>) -> anyhow::Result<String> {
    if let Some(s) = source {
        return Ok(s);
    }
    let all = client.sources().await?;
    match all.as_slice() {
        [one] => Ok(one.name.clone()),
        [] => anyhow::bail!("dbtraild has no sources configured"),
        many => anyhow::bail!(
            "several sources are configured ({}); choose one with --source",
            many.iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `dbtrailctl generate man|completions DIR` (hidden; for packaging).
fn generate(what: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir)?;
    let cmd = Cli::command();
    if what == "man" {
        // dbtrailctl.1, and dbtrailctl-SUBCOMMAND.1 for each (visible) subcommand.
        clap_mangen::generate_to(cmd, dir)?;
    } else {
        // The same command without the hidden subcommands, which completions would offer.
        let mut cmd = clap::Command::new("dbtrailctl")
            .version(env!("CARGO_PKG_VERSION"))
            .args(cmd.get_arguments().cloned())
            .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
        use clap_complete::Shell;
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            clap_complete::generate_to(shell, &mut cmd, "dbtrailctl", dir)?;
        }
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = Client::new(&cli.socket);
    match cli.cmd {
        Cmd::Generate { what, dir } => generate(&what, &dir)?,
        Cmd::Status { json } => {
            let sources = client.sources().await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&SourcesResponse { sources })?
                );
                return Ok(());
            }
            for s in sources {
                let state = serde_json::to_value(s.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                println!("{}: {state}", s.name);
                if s.binlog_file.is_empty() {
                    println!("  position:     (not captured yet)");
                } else {
                    println!(
                        "  position:     {}:{} on {}",
                        s.binlog_file, s.binlog_pos, s.server_uuid
                    );
                }
                if !s.captured_gtid_set.is_empty() {
                    println!("  gtid set:     {}", s.captured_gtid_set.replace('\n', ""));
                }
                println!(
                    "  last commit:  {}",
                    s.last_commit_time.as_deref().unwrap_or("(none yet)")
                );
                if let Some(l) = s.lag_seconds {
                    println!("  lag:          {l:.3}s");
                }
                println!(
                    "  captured:     {} transactions, {} row events",
                    s.transactions_total, s.events_total
                );
                for g in &s.gaps {
                    println!(
                        "  GAP:          {} ({}; recorded {})",
                        g.missing, g.reason, g.recorded_at
                    );
                }
                for t in &s.tainted_tables {
                    println!(
                        "  TAINTED:      {} since {}: {}",
                        t.table, t.since, t.reason
                    );
                }
                for w in &s.warnings {
                    println!("  warning:      {w}");
                }
                if let Some(e) = &s.error {
                    println!("  error:        {e}");
                }
            }
        }
        Cmd::Backup { source, wait, json } => {
            let source = pick_source(&client, source).await?;
            let started = client.start_backup(&source).await?;
            follow(&client, &source, started, wait, json).await?;
        }
        Cmd::Baseline {
            cmd:
                BaselineCmd::Import {
                    dir,
                    source,
                    wait,
                    json,
                },
        } => {
            let source = pick_source(&client, source).await?;
            let dir = std::path::absolute(&dir)?;
            let started = client
                .import_baseline(&source, &dir.to_string_lossy())
                .await?;
            follow(&client, &source, started, wait, json).await?;
        }
        Cmd::Pitr {
            source,
            at,
            gtid,
            tables,
            allow_gaps,
            output,
            dry_run,
            wait,
            json,
        } => {
            let source = pick_source(&client, source).await?;
            let output = match output {
                Some(o) if o.to_string_lossy().starts_with("s3://") => {
                    Some(o.to_string_lossy().into_owned())
                }
                Some(o) => Some(std::path::absolute(&o)?.to_string_lossy().into_owned()),
                None => None,
            };
            let req = PitrRequest {
                target_time: at,
                target_gtid: gtid,
                tables,
                allow_gaps,
                output,
                dry_run,
            };
            let started = client.pitr(&source, &req).await?;
            if json && (dry_run || !wait) {
                println!("{}", serde_json::to_string_pretty(&started)?);
            } else if !json {
                print_plan(&started.plan);
            }
            let Some(id) = started.pitr_id else {
                return Ok(());
            };
            if !wait {
                if !json {
                    println!("restore {id} started; follow it with `dbtrailctl pitr-status {id}`");
                }
                return Ok(());
            }
            let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                let b = indicatif::ProgressBar::new(1000);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} [{elapsed_precise}] {bar:40} {percent}% {msg}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                Some(b)
            } else {
                None
            };
            let job = loop {
                let j = client.pitr_job(&source, &id).await?;
                if let Some(b) = &bar {
                    b.set_position((j.progress * 1000.0) as u64);
                    b.set_message(format!(
                        "{}: {}/{} tables, {} rows",
                        j.phase, j.tables_done, j.tables_total, j.rows
                    ));
                }
                if j.status != JobStatus::Running {
                    break j;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            };
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&job)?);
            }
            if job.status != JobStatus::Completed {
                anyhow::bail!(
                    "restore {id} failed: {}",
                    job.error.as_deref().unwrap_or("(no reason given)")
                );
            }
            if !json {
                println!(
                    "restored to {}: {} files, {}, {} rows in {:.1}s",
                    job.path,
                    job.file_count.unwrap_or(0),
                    human_bytes(job.size_bytes.unwrap_or(0)),
                    job.rows,
                    job.duration_ms.unwrap_or(0) as f64 / 1000.0
                );
                println!(
                    "import it with: myloader -d {} (or mysql < each file)",
                    job.path
                );
            }
        }
        Cmd::PitrStatus { id, source, json } => {
            let source = pick_source(&client, source).await?;
            let j = client.pitr_job(&source, &id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&j)?);
            } else {
                let status = serde_json::to_value(j.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                println!(
                    "restore {}: {status} ({}), {:.0}%, {}/{} tables, {} rows -> {}",
                    j.pitr_id,
                    j.phase,
                    j.progress * 100.0,
                    j.tables_done,
                    j.tables_total,
                    j.rows,
                    j.path
                );
                if let Some(e) = &j.error {
                    println!("  error: {e}");
                }
            }
            if j.status == JobStatus::Failed {
                std::process::exit(1);
            }
        }
        Cmd::Coverage { source, json } => {
            let source = pick_source(&client, source).await?;
            let c = client.coverage(&source).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&c)?);
                return Ok(());
            }
            println!(
                "captured commits: {} .. {}",
                c.oldest_commit.as_deref().unwrap_or("(none)"),
                c.newest_commit.as_deref().unwrap_or("(none)")
            );
            if c.baselines.is_empty() {
                println!("baselines: none (take one with `dbtrailctl backup`)");
            }
            for b in &c.baselines {
                println!("baseline {} at {} ({})", b.id, b.time, b.position);
            }
            for r in &c.restorable {
                println!("restorable: {} .. {}", r.from, r.to);
            }
            for g in &c.gaps {
                println!(
                    "GAP: {} ({}; recorded {})",
                    g.missing, g.reason, g.recorded_at
                );
            }
            for t in &c.tainted_tables {
                println!("TAINTED: {} since {}: {}", t.table, t.since, t.reason);
            }
        }
        Cmd::Backups { source, json } => {
            let source = pick_source(&client, source).await?;
            let resp = client.backups(&source).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&resp)?);
                return Ok(());
            }
            println!("store: {}", resp.store);
            if resp.baselines.is_empty() {
                println!("no baselines yet; take one with `dbtrailctl backup --source {source}`");
            }
            for b in &resp.baselines {
                println!(
                    "{}  snapshot {}  {} tables  {} rows  {}  took {:.1}s  lock {:.1}ms",
                    b.id,
                    rfc3339_micros(b.snapshot_us),
                    b.tables.len(),
                    b.rows(),
                    human_bytes(b.bytes()),
                    (b.finished_us - b.started_us) as f64 / 1e6,
                    b.lock_held_us as f64 / 1000.0
                );
                println!("    position {}", b.position);
            }
            for j in resp
                .jobs
                .iter()
                .filter(|j| j.status != JobStatus::Completed)
            {
                print_job(j);
            }
        }
        Cmd::Undo {
            source,
            gtid,
            force,
            json,
        } => {
            let source = pick_source(&client, source).await?;
            let resp = client.undo(&source, &gtid, force).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&resp)?);
            } else {
                for c in &resp.conflicts {
                    eprintln!("warning: {c}");
                }
                print!("{}", resp.sql);
            }
        }
        Cmd::Events {
            source,
            table,
            since,
            until,
            gtid,
            limit,
            json,
        } => {
            let source = pick_source(&client, source).await?;
            let mut q = vec![("limit", limit.to_string())];
            for (k, v) in [
                ("table", table),
                ("since", since),
                ("until", until),
                ("gtid", gtid),
            ] {
                if let Some(v) = v {
                    q.push((k, v));
                }
            }
            let resp = client.events(&source, &q).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&resp)?);
                return Ok(());
            }
            for e in &resp.events {
                println!(
                    "#{} {} {} {} gtid={}",
                    e.event_id,
                    e.commit_time,
                    e.kind,
                    e.table,
                    e.gtid.as_deref().unwrap_or("-")
                );
                let show = |label: &str, row: &Option<Vec<serde_json::Value>>| {
                    if let Some(r) = row {
                        let cols: Vec<String> = e
                            .columns
                            .iter()
                            .zip(r)
                            .map(|(c, v)| format!("{c}={v}"))
                            .collect();
                        println!("    {label}: {}", cols.join(" "));
                    }
                };
                show("before", &e.before);
                show("after ", &e.after);
            }
            if resp.truncated {
                println!("(more events: raise --limit or narrow --since/--until)");
            }
        }
    }
    Ok(())
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn print_job(j: &BackupJobView) {
    let status = serde_json::to_value(j.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    println!(
        "backup {}: {status} ({}) {}/{} tables, {} rows, {}{}",
        j.id,
        j.phase,
        j.tables_done,
        j.tables_total,
        j.rows,
        human_bytes(j.bytes),
        j.duration_ms
            .map(|d| format!(", {:.1}s", d as f64 / 1000.0))
            .unwrap_or_default()
    );
    if let Some(l) = j.lock_held_ms {
        println!("  global read lock held {l:.1} ms");
    }
    if let Some(b) = &j.baseline {
        println!("  position {}", b.position);
    }
    if let Some(e) = &j.error {
        println!("  error: {e}");
    }
}

/// Prints a started job, or with `wait` polls it to the end; fails when it failed.
async fn follow(
    client: &Client,
    source: &str,
    started: BackupStarted,
    wait: bool,
    json: bool,
) -> anyhow::Result<()> {
    if !wait {
        if json {
            println!("{}", serde_json::to_string_pretty(&started)?);
        } else {
            println!(
                "backup {} started; follow it with `dbtrailctl backups --source {source}`",
                started.backup_id
            );
        }
        return Ok(());
    }
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let job = loop {
        let j = client.backup(source, &started.backup_id).await?;
        if j.status != JobStatus::Running {
            break j;
        }
        if tty {
            eprint!(
                "\r{}: {} {}/{} tables, {} rows, {}      ",
                j.id,
                j.phase,
                j.tables_done,
                j.tables_total,
                j.rows,
                human_bytes(j.bytes)
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    if tty {
        eprintln!();
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&job)?);
    }
    match job.status {
        JobStatus::Completed => {
            if !json {
                print_job(&job);
            }
        }
        _ => anyhow::bail!(
            "backup {} failed: {}",
            job.id,
            job.error.as_deref().unwrap_or("(no reason given)")
        ),
    }
    Ok(())
}

fn print_plan(p: &PitrPlan) {
    println!("target:       {}", p.target);
    println!("rule:         {}", p.rule);
    println!(
        "baseline:     {} taken {} ({})",
        p.baseline_id, p.baseline_time, p.baseline_position
    );
    println!("tables:       {}", p.tables.join(", "));
    println!(
        "replay:       {} transactions, {} row events{}",
        p.transactions,
        p.events,
        if p.event_bytes > 0 {
            format!(" (~{} in the log)", human_bytes(p.event_bytes))
        } else {
            String::new()
        }
    );
    match (&p.last_commit_time, &p.last_gtid) {
        (Some(t), g) => println!(
            "last included: {} committed {t} (ends at {})",
            g.as_deref().unwrap_or("-"),
            p.last_position.as_deref().unwrap_or("-")
        ),
        (None, _) => println!("last included: none after the baseline"),
    }
    println!("gtid set reached: {}", p.gtid_set_reached);
    for g in &p.gaps {
        println!("GAP (allowed): {} ({})", g.missing, g.reason);
    }
    for t in &p.tainted_tables {
        println!("tainted: {} since {}: {}", t.table, t.since, t.reason);
    }
    if !p.not_in_baseline.is_empty() {
        println!(
            "not restorable from this baseline (created after it): {}",
            p.not_in_baseline.join(", ")
        );
    }
}
