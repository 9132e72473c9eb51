//! `pitr` and `pitr-status`: plan, start and follow point-in-time restores.
use super::{human_bytes, json, pick_source, text, wire_name};
use crate::exit::Reported;
use dbtrail_core::api::{JobStatus, PitrJobView, PitrPlan, PitrRequest};
use dbtrail_ctl::Client;
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
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
    /// Where each table's image comes from: auto (the one needing the fewest events
    /// replayed), baseline (stored baselines and table images), live (the live table, with
    /// the changes since the target undone).
    #[arg(long, value_parser = ["auto", "baseline", "live"])]
    image: Option<String>,
    /// With --tables: also write those tables' triggers as they were at the target (a
    /// restore of everything writes every view, trigger, routine and event).
    #[arg(long)]
    with_triggers: bool,
    /// Load the restored tables straight into this server, mysql://USER@HOST:PORT[/DB],
    /// instead of writing a dump (tables are loaded into a staging database and renamed into
    /// place at the end, all at once).
    #[arg(long, conflicts_with = "output")]
    into: Option<String>,
    /// With --into: put every table into this database (needed when the target is the
    /// source itself); default: the URL's database, else each table's own.
    #[arg(long, requires = "into")]
    into_database: Option<String>,
    /// With --into: file holding the target user's password (else $DBTRAIL_INTO_PASSWORD).
    #[arg(long, requires = "into")]
    into_password_file: Option<PathBuf>,
    /// With --into: parallel connections (1..=32).
    #[arg(long, requires = "into", default_value_t = 4)]
    into_connections: usize,
    /// With --into: TLS to the target (disabled or required).
    #[arg(long, requires = "into", value_parser = ["disabled", "required"])]
    into_ssl_mode: Option<String>,
    /// With --into: write the loaded rows to the target's binlog (default: not, as myloader;
    /// turning it off needs SYSTEM_VARIABLES_ADMIN or SUPER on the target).
    #[arg(long, requires = "into")]
    into_binlog: bool,
    /// With --into: replace tables that exist in the target (swapped out at the end, then
    /// dropped); without it an existing table is refused.
    #[arg(long, requires = "into")]
    replace: bool,
    /// Wait until it ends (progress on a terminal); exit non-zero if it fails.
    #[arg(long)]
    wait: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    /// The restore's id (pitr-...).
    id: String,
    /// Source name (optional when only one is configured).
    #[arg(long)]
    source: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `pitr`: prints the plan, then (unless a dry run) starts the restore and with `--wait`
/// follows it to the end; fails when it failed.
pub async fn run(client: &Client, args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    let source = pick_source(client, args.source.clone()).await?;
    let (dry_run, wait, json_out) = (args.dry_run, args.wait, args.json);
    let started = client.pitr(&source, &request(args)?).await?;
    if json_out && (dry_run || !wait) {
        out.write_all(json(&started)?.as_bytes())?;
    } else if !json_out {
        out.write_all(plan_text(&started.plan).as_bytes())?;
    }
    let Some(id) = started.pitr_id else {
        return Ok(());
    };
    if !wait {
        if !json_out {
            out.write_all(started_text(&id).as_bytes())?;
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
            b.set_message(progress(&j));
        }
        if j.status != JobStatus::Running {
            break j;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if json_out {
        out.write_all(json(&job)?.as_bytes())?;
    }
    if job.status != JobStatus::Completed {
        anyhow::bail!(
            "restore {id} failed: {}",
            job.error.as_deref().unwrap_or("(no reason given)")
        );
    }
    if !json_out {
        out.write_all(done_text(&job).as_bytes())?;
    }
    Ok(())
}

/// `pitr-status ID`: the job; a failed restore exits 1 after printing it.
pub async fn run_status(
    client: &Client,
    args: StatusArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let source = pick_source(client, args.source).await?;
    let j = client.pitr_job(&source, &args.id).await?;
    let s = if args.json {
        json(&j)?
    } else {
        status_text(&j)
    };
    out.write_all(s.as_bytes())?;
    if j.status == JobStatus::Failed {
        return Err(Reported.into());
    }
    Ok(())
}

/// The request: a local output directory is made absolute here (the daemon writes it).
fn request(args: Args) -> anyhow::Result<PitrRequest> {
    let output = match args.output {
        Some(o) if o.to_string_lossy().starts_with("s3://") => {
            Some(o.to_string_lossy().into_owned())
        }
        Some(o) => Some(std::path::absolute(&o)?.to_string_lossy().into_owned()),
        None => None,
    };
    let into = match args.into {
        Some(url) => {
            let password = match &args.into_password_file {
                Some(f) => Some(
                    std::fs::read_to_string(f)
                        .map_err(|e| {
                            anyhow::anyhow!("reading --into-password-file {}: {e}", f.display())
                        })?
                        .trim_end_matches(['\n', '\r'])
                        .to_string(),
                ),
                None => std::env::var("DBTRAIL_INTO_PASSWORD").ok(),
            };
            Some(dbtrail_core::api::IntoTarget {
                url,
                password,
                database: args.into_database,
                replace: args.replace,
                connections: Some(args.into_connections),
                ssl_mode: args.into_ssl_mode,
                binlog: args.into_binlog,
            })
        }
        None => None,
    };
    Ok(PitrRequest {
        into,
        target_time: args.at,
        target_gtid: args.gtid,
        tables: args.tables,
        allow_gaps: args.allow_gaps,
        output,
        dry_run: args.dry_run,
        image: args.image,
        with_triggers: args.with_triggers,
    })
}

/// What a restore will do, one fact a line.
pub fn plan_text(p: &PitrPlan) -> String {
    text(|o| {
        writeln!(o, "target:       {}", p.target)?;
        writeln!(o, "rule:         {}", p.rule)?;
        writeln!(
            o,
            "baseline:     {} taken {} ({})",
            p.baseline_id, p.baseline_time, p.baseline_position
        )?;
        writeln!(o, "tables:       {}", p.tables.join(", "))?;
        writeln!(
            o,
            "replay:       {} transactions, {} row events{}",
            p.transactions,
            p.events,
            if p.event_bytes > 0 {
                format!(" (~{} in the log)", human_bytes(p.event_bytes))
            } else {
                String::new()
            }
        )?;
        match (&p.last_commit_time, &p.last_gtid) {
            (Some(t), g) => writeln!(
                o,
                "last included: {} committed {t} (ends at {})",
                g.as_deref().unwrap_or("-"),
                p.last_position.as_deref().unwrap_or("-")
            )?,
            (None, _) => writeln!(o, "last included: none after the baseline")?,
        }
        writeln!(o, "gtid set reached: {}", p.gtid_set_reached)?;
        for g in &p.gaps {
            writeln!(o, "GAP (allowed): {} ({})", g.missing, g.reason)?;
        }
        for t in &p.tainted_tables {
            writeln!(o, "tainted: {} since {}: {}", t.table, t.since, t.reason)?;
        }
        if !p.not_in_baseline.is_empty() {
            writeln!(
                o,
                "not restorable from this baseline (created after it): {}",
                p.not_in_baseline.join(", ")
            )?;
        }
        for c in &p.cascades {
            writeln!(o, "foreign key: {c}")?;
        }
        for x in &p.objects {
            writeln!(o, "schema object: {x}")?;
        }
        for t in &p.images {
            writeln!(
                o,
                "image of {}: {} {}, {} events",
                t.table, t.chosen.image, t.chosen.direction, t.chosen.events
            )?;
            for a in &t.alternatives {
                match &a.unusable {
                    None => writeln!(
                        o,
                        "  instead:  {} {}, {} events",
                        a.image, a.direction, a.events
                    )?,
                    Some(why) => writeln!(o, "  unusable: {} {}: {why}", a.image, a.direction)?,
                }
            }
        }
        Ok(())
    })
}

/// What `pitr` without `--wait` prints after the plan.
pub fn started_text(id: &str) -> String {
    format!("restore {id} started; follow it with `dbtrailctl pitr-status {id}`\n")
}

/// The progress bar's message.
pub fn progress(j: &PitrJobView) -> String {
    format!(
        "{}: {}/{} tables, {} rows",
        j.phase, j.tables_done, j.tables_total, j.rows
    )
}

/// A completed restore: where it is and how to import it.
pub fn done_text(j: &PitrJobView) -> String {
    text(|o| {
        writeln!(
            o,
            "restored to {}: {} files, {}, {} rows in {:.1}s",
            j.path,
            j.file_count.unwrap_or(0),
            human_bytes(j.size_bytes.unwrap_or(0)),
            j.rows,
            j.duration_ms.unwrap_or(0) as f64 / 1000.0
        )?;
        writeln!(
            o,
            "import it with: myloader -d {} (or mysql < each file)",
            j.path
        )
    })
}

/// `pitr-status`: one line, and the error if any.
pub fn status_text(j: &PitrJobView) -> String {
    text(|o| {
        writeln!(
            o,
            "restore {}: {} ({}), {:.0}%, {}/{} tables, {} rows -> {}",
            j.pitr_id,
            wire_name(&j.status),
            j.phase,
            j.progress * 100.0,
            j.tables_done,
            j.tables_total,
            j.rows,
            j.path
        )?;
        if let Some(e) = &j.error {
            writeln!(o, "  error: {e}")?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fixtures::{gap, taint};
    use clap::Parser;

    fn plan() -> PitrPlan {
        PitrPlan {
            target: "2026-11-24 14:30:00".into(),
            rule: "commit time <= target".into(),
            baseline_id: "B1".into(),
            baseline_time: "2026-11-24T10:00:00Z".into(),
            baseline_position: "binlog.000003:4711".into(),
            tables: vec!["shop.orders".into(), "shop.c".into()],
            transactions: 3,
            events: 7,
            event_bytes: 4096,
            last_gtid: Some("u1:12".into()),
            last_commit_time: Some("2026-11-24T14:29:59Z".into()),
            last_position: Some("binlog.000003:9000".into()),
            gtid_set_reached: "u1:1-12".into(),
            gaps: vec![gap()],
            tainted_tables: vec![taint()],
            not_in_baseline: vec!["shop.new1".into(), "shop.new2".into()],
            cascades: vec![
                "shop.c <- shop.orders (fk_c: ON DELETE CASCADE, ON UPDATE RESTRICT): replayed"
                    .into(),
            ],
            images: vec![],
            objects: vec![],
        }
    }

    fn job(status: JobStatus) -> PitrJobView {
        PitrJobView {
            pitr_id: "pitr-1".into(),
            status,
            phase: "complete".into(),
            progress: 1.0,
            tables_done: 2,
            tables_total: 2,
            rows: 10,
            started_at: "2026-11-24T15:00:00Z".into(),
            path: "/tmp/out".into(),
            size_bytes: Some(3_000_000),
            file_count: Some(5),
            duration_ms: Some(1234),
            error: None,
            plan: plan(),
        }
    }

    #[test]
    fn full_plan() {
        assert_eq!(
            plan_text(&plan()),
            "\
target:       2026-11-24 14:30:00
rule:         commit time <= target
baseline:     B1 taken 2026-11-24T10:00:00Z (binlog.000003:4711)
tables:       shop.orders, shop.c
replay:       3 transactions, 7 row events (~4.0 KiB in the log)
last included: u1:12 committed 2026-11-24T14:29:59Z (ends at binlog.000003:9000)
gtid set reached: u1:1-12
GAP (allowed): u1:5-7 (purged)
tainted: shop.t since 2026-11-24T11:00:00Z: statement-format DML
not restorable from this baseline (created after it): shop.new1, shop.new2
foreign key: shop.c <- shop.orders (fk_c: ON DELETE CASCADE, ON UPDATE RESTRICT): replayed
"
        );
    }

    #[test]
    fn plan_of_the_baseline_alone() {
        let p = PitrPlan {
            transactions: 0,
            events: 0,
            event_bytes: 0,
            last_gtid: None,
            last_commit_time: None,
            last_position: None,
            gaps: vec![],
            tainted_tables: vec![],
            not_in_baseline: vec![],
            cascades: vec![],
            images: vec![],
            ..plan()
        };
        assert_eq!(
            plan_text(&p),
            "\
target:       2026-11-24 14:30:00
rule:         commit time <= target
baseline:     B1 taken 2026-11-24T10:00:00Z (binlog.000003:4711)
tables:       shop.orders, shop.c
replay:       0 transactions, 0 row events
last included: none after the baseline
gtid set reached: u1:1-12
"
        );
    }

    #[test]
    fn last_included_without_gtid_or_position() {
        let p = PitrPlan {
            last_gtid: None,
            last_position: None,
            ..plan()
        };
        assert!(
            plan_text(&p)
                .contains("\nlast included: - committed 2026-11-24T14:29:59Z (ends at -)\n")
        );
    }

    #[test]
    fn started_and_progress() {
        assert_eq!(
            started_text("pitr-1"),
            "restore pitr-1 started; follow it with `dbtrailctl pitr-status pitr-1`\n"
        );
        let j = PitrJobView {
            phase: "reconstructing".into(),
            tables_done: 1,
            ..job(JobStatus::Running)
        };
        assert_eq!(progress(&j), "reconstructing: 1/2 tables, 10 rows");
    }

    #[test]
    fn done() {
        assert_eq!(
            done_text(&job(JobStatus::Completed)),
            "restored to /tmp/out: 5 files, 2.9 MiB, 10 rows in 1.2s\n\
             import it with: myloader -d /tmp/out (or mysql < each file)\n"
        );
        let j = PitrJobView {
            size_bytes: None,
            file_count: None,
            duration_ms: None,
            ..job(JobStatus::Completed)
        };
        assert!(done_text(&j).starts_with("restored to /tmp/out: 0 files, 0 B, 10 rows in 0.0s\n"));
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            status_text(&job(JobStatus::Completed)),
            "restore pitr-1: completed (complete), 100%, 2/2 tables, 10 rows -> /tmp/out\n"
        );
        let j = PitrJobView {
            phase: "reconstructing".into(),
            progress: 0.456,
            tables_done: 1,
            error: Some("table changed".into()),
            ..job(JobStatus::Failed)
        };
        assert_eq!(
            status_text(&j),
            "restore pitr-1: failed (reconstructing), 46%, 1/2 tables, 10 rows -> /tmp/out\n  \
             error: table changed\n"
        );
    }

    #[derive(clap::Parser)]
    struct Wrap {
        #[command(flatten)]
        args: Args,
    }

    fn req(argv: &[&str]) -> PitrRequest {
        request(Wrap::parse_from(argv).args).unwrap()
    }

    #[test]
    fn request_from_arguments() {
        let r = req(&["x", "--at", "2026-11-24 14:30:00", "--tables", "a.b,c.d"]);
        assert_eq!(
            r,
            PitrRequest {
                target_time: Some("2026-11-24 14:30:00".into()),
                tables: vec!["a.b".into(), "c.d".into()],
                ..Default::default()
            }
        );
        let r = req(&["x", "--gtid", "u1:1-3", "--allow-gaps", "--dry-run"]);
        assert_eq!(r.target_gtid.as_deref(), Some("u1:1-3"));
        assert!(r.allow_gaps && r.dry_run && r.target_time.is_none());
    }

    #[test]
    fn request_output_is_absolute_or_s3() {
        let s3 = req(&["x", "--at", "t", "--output", "s3://bucket/prefix"]);
        assert_eq!(s3.output.as_deref(), Some("s3://bucket/prefix"));
        let abs = req(&["x", "--at", "t", "--output", "/srv/restore"]);
        assert_eq!(abs.output.as_deref(), Some("/srv/restore"));
        let rel = req(&["x", "--at", "t", "--output", "out"]);
        let expected = std::env::current_dir().unwrap().join("out");
        assert_eq!(rel.output.as_deref(), expected.to_str());
    }
}
