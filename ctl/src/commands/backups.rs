//! `backup`, `baseline import` and `backups`: start baselines, follow their jobs, list them.
use super::{human_bytes, json, pick_source, text, wire_name};
use dbtrail_core::api::{BackupJobView, BackupStarted, BackupsResponse, JobStatus};
use dbtrail_core::render::rfc3339_micros;
use dbtrail_ctl::Client;
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct BackupArgs {
    /// Source name (optional when only one is configured).
    #[arg(long)]
    source: Option<String>,
    /// Wait until it ends; exit non-zero if it fails.
    #[arg(long)]
    wait: bool,
    /// Compute the baseline from the newest baseline and the log, reading nothing from the
    /// source (refused, naming the table, when a table cannot be: take a snapshot then).
    #[arg(long)]
    from_log: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
pub enum BaselineCmd {
    /// Import a mydumper backup directory (on the daemon's host) whose metadata file records
    /// the binlog position, as a baseline.
    Import(ImportArgs),
}

#[derive(clap::Args)]
pub struct ImportArgs {
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
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// Source name (optional when only one is configured).
    #[arg(long)]
    source: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `backup`: starts a baseline.
pub async fn run_backup(
    client: &Client,
    args: BackupArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let source = pick_source(client, args.source).await?;
    let req = dbtrail_core::api::BackupRequest {
        from_log: args.from_log,
    };
    let started = client.start_backup_with(&source, &req).await?;
    follow(client, &source, started, args.wait, args.json, out).await
}

/// `baseline import DIR`: the directory is sent as an absolute path (the daemon reads it).
pub async fn run_baseline(
    client: &Client,
    cmd: BaselineCmd,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let BaselineCmd::Import(args) = cmd;
    let source = pick_source(client, args.source).await?;
    let dir = std::path::absolute(&args.dir)?;
    let started = client
        .import_baseline(&source, &dir.to_string_lossy())
        .await?;
    follow(client, &source, started, args.wait, args.json, out).await
}

/// `backups`: the baselines and the jobs that did not complete.
pub async fn run_list(client: &Client, args: ListArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let source = pick_source(client, args.source).await?;
    let resp = client.backups(&source).await?;
    let s = if args.json {
        json(&resp)?
    } else {
        list(&resp, &source)
    };
    out.write_all(s.as_bytes())?;
    Ok(())
}

/// Prints a started job, or with `wait` polls it to the end; fails when it failed.
async fn follow(
    client: &Client,
    source: &str,
    started: BackupStarted,
    wait: bool,
    json_out: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if !wait {
        let s = if json_out {
            json(&started)?
        } else {
            started_text(&started, source)
        };
        out.write_all(s.as_bytes())?;
        return Ok(());
    }
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let job = loop {
        let j = client.backup(source, &started.backup_id).await?;
        if j.status != JobStatus::Running {
            break j;
        }
        if tty {
            eprint!("{}", progress(&j));
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    if tty {
        eprintln!();
    }
    if json_out {
        out.write_all(json(&job)?.as_bytes())?;
    }
    match job.status {
        JobStatus::Completed => {
            if !json_out {
                out.write_all(job_text(&job).as_bytes())?;
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

/// What `backup` without `--wait` prints.
pub fn started_text(started: &BackupStarted, source: &str) -> String {
    format!(
        "backup {} started; follow it with `dbtrailctl backups --source {source}`\n",
        started.backup_id
    )
}

/// The progress line `--wait` redraws on a terminal (stderr).
pub fn progress(j: &BackupJobView) -> String {
    format!(
        "\r{}: {} {}/{} tables, {} rows, {}      ",
        j.id,
        j.phase,
        j.tables_done,
        j.tables_total,
        j.rows,
        human_bytes(j.bytes)
    )
}

/// One job: status line, then the lock time, position and error when known.
pub fn job_text(j: &BackupJobView) -> String {
    text(|o| {
        writeln!(
            o,
            "backup {}: {} ({}) {}/{} tables, {} rows, {}{}",
            j.id,
            wire_name(&j.status),
            j.phase,
            j.tables_done,
            j.tables_total,
            j.rows,
            human_bytes(j.bytes),
            j.duration_ms
                .map(|d| format!(", {:.1}s", d as f64 / 1000.0))
                .unwrap_or_default()
        )?;
        if let Some(l) = j.lock_held_ms {
            writeln!(o, "  global read lock held {l:.1} ms")?;
        }
        if let Some(b) = &j.baseline {
            writeln!(o, "  position {}", b.position)?;
        }
        if let Some(e) = &j.error {
            writeln!(o, "  error: {e}")?;
        }
        Ok(())
    })
}

/// `backups`: the store, each baseline (two lines), then the jobs not completed.
pub fn list(resp: &BackupsResponse, source: &str) -> String {
    text(|o| {
        writeln!(o, "store: {}", resp.store)?;
        if resp.baselines.is_empty() {
            writeln!(
                o,
                "no baselines yet; take one with `dbtrailctl backup --source {source}`"
            )?;
        }
        for b in &resp.baselines {
            writeln!(
                o,
                "{}  snapshot {}  {} tables  {} rows  {}  took {:.1}s  lock {:.1}ms",
                b.id,
                rfc3339_micros(b.snapshot_us),
                b.tables.len(),
                b.rows(),
                human_bytes(b.bytes()),
                (b.finished_us - b.started_us) as f64 / 1e6,
                b.lock_held_us as f64 / 1000.0
            )?;
            writeln!(o, "    position {}", b.position)?;
            writeln!(
                o,
                "    {}, method {} ({})",
                wire_name(&b.origin),
                b.method.name(),
                b.lock_mode
            )?;
            if let Some(u) = &b.upper {
                writeln!(
                    o,
                    "    taken without a lock: exact for keyed tables at targets after {u}"
                )?;
            }
            for t in &b.skipped {
                writeln!(o, "    skipped {}: {}", t.table, t.reason)?;
            }
        }
        for j in resp
            .jobs
            .iter()
            .filter(|j| j.status != JobStatus::Completed)
        {
            o.push_str(&job_text(j));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbtrail_core::baseline::{BaselineManifest, BaselineOrigin, BaselineTable};
    use dbtrail_core::{Position, TableRef};

    fn manifest() -> BaselineManifest {
        let table = |name: &str, rows, bytes| BaselineTable {
            table: TableRef {
                db: "shop".into(),
                table: name.into(),
            },
            file: format!("shop/{name}.parquet"),
            rows,
            bytes,
            create_table: String::new(),
            parts: Vec::new(),
        };
        BaselineManifest {
            format_version: 1,
            id: "20261124T100000.000000Z".into(),
            source: "demo".into(),
            origin: BaselineOrigin::Snapshot,
            position: Position {
                gtid_set: "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10".parse().unwrap(),
                file: "binlog.000003".into(),
                pos: 4711,
                server_uuid: "u1".into(),
            },
            snapshot_us: 1_795_000_000_123_456,
            started_us: 1_795_000_000_000_000,
            finished_us: 1_795_000_002_500_000,
            lock_held_us: 1234,
            lock_mode: "FLUSH TABLES WITH READ LOCK".into(),
            method: Default::default(),
            upper: None,
            tables: vec![table("orders", 6, 2048), table("c", 4, 5_000_000)],
            skipped: vec![],
            checksums: Default::default(),
        }
    }

    fn job(status: JobStatus) -> BackupJobView {
        BackupJobView {
            id: "20261124T100000.000000Z".into(),
            source: "demo".into(),
            status,
            phase: "complete".into(),
            started_at: "2026-11-24T10:00:00Z".into(),
            finished_at: Some("2026-11-24T10:00:02Z".into()),
            duration_ms: Some(2500),
            tables_total: 2,
            tables_done: 2,
            rows: 10,
            bytes: 5_002_048,
            lock_held_ms: Some(1.234),
            error: None,
            baseline: Some(manifest()),
        }
    }

    fn failed() -> BackupJobView {
        BackupJobView {
            phase: "reading".into(),
            duration_ms: None,
            bytes: 12,
            lock_held_ms: None,
            error: Some("disk full".into()),
            baseline: None,
            ..job(JobStatus::Failed)
        }
    }

    const POSITION: &str =
        "binlog.000003:4711 on u1 (gtid set: 3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10)";

    #[test]
    fn started() {
        let s = BackupStarted {
            backup_id: "20261124T100000.000000Z".into(),
            status: JobStatus::Running,
        };
        assert_eq!(
            started_text(&s, "demo"),
            "backup 20261124T100000.000000Z started; follow it with `dbtrailctl backups --source demo`\n"
        );
    }

    #[test]
    fn completed_job() {
        assert_eq!(
            job_text(&job(JobStatus::Completed)),
            format!(
                "backup 20261124T100000.000000Z: completed (complete) 2/2 tables, 10 rows, \
                 4.8 MiB, 2.5s\n  global read lock held 1.2 ms\n  position {POSITION}\n"
            )
        );
    }

    #[test]
    fn failed_job() {
        assert_eq!(
            job_text(&failed()),
            "backup 20261124T100000.000000Z: failed (reading) 2/2 tables, 10 rows, 12 B\n  \
             error: disk full\n"
        );
    }

    #[test]
    fn progress_line() {
        let j = BackupJobView {
            phase: "reading".into(),
            tables_done: 1,
            rows: 4,
            bytes: 1 << 20,
            ..job(JobStatus::Running)
        };
        assert_eq!(
            progress(&j),
            "\r20261124T100000.000000Z: reading 1/2 tables, 4 rows, 1.0 MiB      "
        );
    }

    #[test]
    fn list_baselines_and_unfinished_jobs() {
        let running = BackupJobView {
            phase: "reading".into(),
            duration_ms: None,
            lock_held_ms: None,
            baseline: None,
            bytes: 1 << 20,
            ..job(JobStatus::Running)
        };
        let resp = BackupsResponse {
            store: "file:///var/lib/dbtrail/baselines".into(),
            baselines: vec![
                manifest(),
                BaselineManifest {
                    id: "20261124T110000.000000Z".into(),
                    origin: BaselineOrigin::FromLog,
                    lock_held_us: 0,
                    lock_mode: "none (computed from baseline 20261124T100000.000000Z and the log)"
                        .into(),
                    method: dbtrail_core::baseline::SnapshotMethod::NotApplicable,
                    ..manifest()
                },
            ],
            jobs: vec![job(JobStatus::Completed), failed(), running],
        };
        assert_eq!(
            list(&resp, "demo"),
            format!(
                "\
store: file:///var/lib/dbtrail/baselines
20261124T100000.000000Z  snapshot 2026-11-18T11:06:40.123456Z  2 tables  10 rows  4.8 MiB  took 2.5s  lock 1.2ms
    position {POSITION}
    snapshot, method global (FLUSH TABLES WITH READ LOCK)
20261124T110000.000000Z  snapshot 2026-11-18T11:06:40.123456Z  2 tables  10 rows  4.8 MiB  took 2.5s  lock 0.0ms
    position {POSITION}
    from_log, method - (none (computed from baseline 20261124T100000.000000Z and the log))
backup 20261124T100000.000000Z: failed (reading) 2/2 tables, 10 rows, 12 B
  error: disk full
backup 20261124T100000.000000Z: running (reading) 2/2 tables, 10 rows, 1.0 MiB
"
            )
        );
    }

    #[test]
    fn list_without_baselines() {
        let resp = BackupsResponse {
            store: "s3://b/p".into(),
            baselines: vec![],
            jobs: vec![],
        };
        assert_eq!(
            list(&resp, "a"),
            "store: s3://b/p\nno baselines yet; take one with `dbtrailctl backup --source a`\n"
        );
    }
}
