//! dbtrailctl: talk to dbtraild over its unix socket.
use clap::{Parser, Subcommand};
use dbtrail_core::api::SourcesResponse;
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

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = Client::new(&cli.socket);
    match cli.cmd {
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
