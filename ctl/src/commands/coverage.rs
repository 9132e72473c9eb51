//! `coverage`: what can be restored.
use super::{json, pick_source, text};
use dbtrail_core::api::CoverageView;
use dbtrail_ctl::Client;
use std::fmt::Write as _;
use std::io::Write;

#[derive(clap::Args)]
pub struct Args {
    /// Source name (optional when only one is configured).
    #[arg(long)]
    source: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(client: &Client, args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    let source = pick_source(client, args.source).await?;
    let c = client.coverage(&source).await?;
    let s = if args.json { json(&c)? } else { render(&c) };
    out.write_all(s.as_bytes())?;
    Ok(())
}

/// Captured range, baselines, restorable ranges, gaps, tainted tables.
pub fn render(c: &CoverageView) -> String {
    text(|o| {
        writeln!(
            o,
            "captured commits: {} .. {}",
            c.oldest_commit.as_deref().unwrap_or("(none)"),
            c.newest_commit.as_deref().unwrap_or("(none)")
        )?;
        if c.baselines.is_empty() {
            writeln!(o, "baselines: none (take one with `dbtrailctl backup`)")?;
        }
        for b in &c.baselines {
            writeln!(o, "baseline {} at {} ({})", b.id, b.time, b.position)?;
        }
        for r in &c.restorable {
            writeln!(o, "restorable: {} .. {}", r.from, r.to)?;
        }
        for g in &c.gaps {
            writeln!(
                o,
                "GAP: {} ({}; recorded {})",
                g.missing, g.reason, g.recorded_at
            )?;
        }
        for t in &c.tainted_tables {
            writeln!(o, "TAINTED: {} since {}: {}", t.table, t.since, t.reason)?;
        }
        for i in &c.table_images {
            writeln!(o, "table image {} at {} ({})", i.id, i.time, i.position)?;
        }
        for h in &c.holes {
            writeln!(
                o,
                "NO IMAGE: {} since {} ({}): not restorable past that DDL until it is imaged",
                h.table, h.since, h.ddl
            )?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fixtures::{gap, taint};
    use dbtrail_core::api::{CoverageBaseline, TimeRange};

    #[test]
    fn everything() {
        let range = |from: &str, to: &str| TimeRange {
            from: from.into(),
            to: to.into(),
        };
        let c = CoverageView {
            oldest_commit: Some("2026-11-24T09:00:00Z".into()),
            newest_commit: Some("2026-11-24T16:00:00Z".into()),
            baselines: vec![CoverageBaseline {
                id: "B1".into(),
                time: "2026-11-24T10:00:00Z".into(),
                position: "binlog.000003:4711".into(),
            }],
            gaps: vec![gap()],
            tainted_tables: vec![taint()],
            restorable: vec![
                range("2026-11-24T10:00:00Z", "2026-11-24T12:00:00Z"),
                range("2026-11-24T13:00:00Z", "2026-11-24T16:00:00Z"),
            ],
            table_images: vec![CoverageBaseline {
                id: "I1".into(),
                time: "2026-11-24T14:00:00Z".into(),
                position: "binlog.000004:99 (shop.t)".into(),
            }],
            holes: vec![dbtrail_core::api::CoverageHole {
                table: "shop.u".into(),
                since: "2026-11-24T15:00:00Z".into(),
                ddl: "ALTER TABLE u ADD c INT".into(),
            }],
        };
        assert_eq!(
            render(&c),
            "\
captured commits: 2026-11-24T09:00:00Z .. 2026-11-24T16:00:00Z
baseline B1 at 2026-11-24T10:00:00Z (binlog.000003:4711)
restorable: 2026-11-24T10:00:00Z .. 2026-11-24T12:00:00Z
restorable: 2026-11-24T13:00:00Z .. 2026-11-24T16:00:00Z
GAP: u1:5-7 (purged; recorded 2026-11-24T10:00:00Z)
TAINTED: shop.t since 2026-11-24T11:00:00Z: statement-format DML
table image I1 at 2026-11-24T14:00:00Z (binlog.000004:99 (shop.t))
NO IMAGE: shop.u since 2026-11-24T15:00:00Z (ALTER TABLE u ADD c INT): not restorable past that DDL until it is imaged
"
        );
    }

    #[test]
    fn nothing_yet() {
        let c = CoverageView {
            oldest_commit: None,
            newest_commit: None,
            baselines: vec![],
            gaps: vec![],
            tainted_tables: vec![],
            restorable: vec![],
            table_images: vec![],
            holes: vec![],
        };
        assert_eq!(
            render(&c),
            "captured commits: (none) .. (none)\nbaselines: none (take one with `dbtrailctl backup`)\n"
        );
    }
}
