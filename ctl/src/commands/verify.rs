//! `verify`: rebuild tables from the history at a fresh position of the live tables and
//! compare (`dbtraild`'s `verify` module); `--list` shows the runs kept.
use super::{json, pick_source, text, wire_name};
use crate::exit::Reported;
use dbtrail_core::api::{VerifyOutcome, VerifyRequest, VerifyRun};
use dbtrail_ctl::Client;
use std::fmt::Write as _;
use std::io::Write;

#[derive(clap::Args)]
pub struct Args {
    /// Source name (optional when only one is configured).
    #[arg(long)]
    source: Option<String>,
    /// Tables to verify (`db.table`, comma-separated or repeated); default: the least
    /// recently verified tables (`verify_tables` of them).
    #[arg(long, value_delimiter = ',')]
    tables: Vec<String>,
    /// List the verifications kept instead of starting one.
    #[arg(long, conflicts_with_all = ["tables", "detach"])]
    list: bool,
    /// Start it and print its id without waiting for the result.
    #[arg(long)]
    detach: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Starts a verification and waits for it (exit 1 on a mismatch or failure), or lists them.
pub async fn run(client: &Client, args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    let source = pick_source(client, args.source).await?;
    if args.list {
        let runs = client.verifications(&source).await?;
        let s = if args.json {
            json(&runs)?
        } else {
            list(&runs, &source)
        };
        out.write_all(s.as_bytes())?;
        return Ok(());
    }
    let req = VerifyRequest {
        tables: args.tables,
    };
    let mut run = client.start_verify(&source, &req).await?;
    if !args.detach {
        while run.outcome == VerifyOutcome::Running {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            run = client.verification(&source, &run.id).await?;
        }
    }
    let s = if args.json { json(&run)? } else { report(&run) };
    out.write_all(s.as_bytes())?;
    match run.outcome {
        VerifyOutcome::Mismatch | VerifyOutcome::Failed => Err(Reported.into()),
        _ => Ok(()),
    }
}

/// One run in full: the outcome, the position, each table, the differences named.
pub fn report(r: &VerifyRun) -> String {
    text(|s| {
        writeln!(s, "verification {}: {}", r.id, wire_name(&r.outcome))?;
        writeln!(s, "  tables      {}", r.tables.join(", "))?;
        if let Some(p) = &r.position {
            writeln!(s, "  position    {p}")?;
        }
        if let Some(i) = &r.image_id {
            writeln!(s, "  live image  {i}")?;
        }
        if let Some(b) = &r.baseline_id {
            writeln!(
                s,
                "  rebuilt     from baseline {b} and {} logged changes",
                r.events
            )?;
        }
        for t in &r.results {
            let verdict = if t.mismatched_rows == 0 {
                "equal".to_string()
            } else {
                format!(
                    "{}{} rows differ",
                    if t.truncated { "at least " } else { "" },
                    t.mismatched_rows
                )
            };
            writeln!(
                s,
                "  {}: {verdict} (live {} rows, rebuilt {})",
                t.table, t.live_rows, t.rebuilt_rows
            )?;
            for d in &t.differences {
                match d.kind.as_str() {
                    "differs" => {
                        let cols: Vec<String> = d
                            .columns
                            .iter()
                            .map(|c| format!("{} live {} rebuilt {}", c.column, c.live, c.rebuilt))
                            .collect();
                        writeln!(s, "    {}: {}", d.key, cols.join("; "))?;
                    }
                    "missing" => writeln!(
                        s,
                        "    {}: in the live table, not in the rebuild (x{})",
                        d.key, d.copies
                    )?,
                    _ => writeln!(
                        s,
                        "    {}: in the rebuild, not in the live table (x{})",
                        d.key, d.copies
                    )?,
                }
            }
        }
        if let Some(e) = &r.error {
            writeln!(s, "  error: {e}")?;
        }
        if r.outcome == VerifyOutcome::Mismatch {
            writeln!(
                s,
                "  The history does not give the live tables: restores of these tables are \
                 not exact. Look for writes that bypassed the binlog (sql_log_bin=0, a \
                 replica written directly) or a damaged baseline, then take a new baseline \
                 (`dbtrailctl backup`)."
            )?;
        }
        Ok(())
    })
}

/// One line per run, oldest first.
pub fn list(runs: &[VerifyRun], source: &str) -> String {
    text(|s| {
        if runs.is_empty() {
            return writeln!(
                s,
                "no verification of source {source} yet: run `dbtrailctl verify`"
            );
        }
        writeln!(
            s,
            "{:<38} {:<9} {:<28} {:>8}  tables",
            "id", "outcome", "started", "differ"
        )?;
        for r in runs {
            let bad: u64 = r.results.iter().map(|t| t.mismatched_rows).sum();
            writeln!(
                s,
                "{:<38} {:<9} {:<28} {:>8}  {}",
                r.id,
                wire_name(&r.outcome),
                r.started_at,
                bad,
                r.tables.join(", ")
            )?;
        }
        Ok(())
    })
}
