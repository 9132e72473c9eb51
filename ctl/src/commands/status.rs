//! `status`: the capture status of every source.
use super::{json, text, wire_name};
use dbtrail_core::api::{SourceStatus, SourcesResponse};
use dbtrail_ctl::Client;
use std::fmt::Write as _;
use std::io::Write;

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(client: &Client, args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    let sources = client.sources().await?;
    let s = if args.json {
        json(&SourcesResponse { sources })?
    } else {
        render(&sources)
    };
    out.write_all(s.as_bytes())?;
    Ok(())
}

/// Each source: its state, then one indented line per fact.
pub fn render(sources: &[SourceStatus]) -> String {
    text(|o| {
        for s in sources {
            writeln!(o, "{}: {}", s.name, wire_name(&s.state))?;
            if s.binlog_file.is_empty() {
                writeln!(o, "  position:     (not captured yet)")?;
            } else {
                writeln!(
                    o,
                    "  position:     {}:{} on {}",
                    s.binlog_file, s.binlog_pos, s.server_uuid
                )?;
            }
            if !s.captured_gtid_set.is_empty() {
                writeln!(
                    o,
                    "  gtid set:     {}",
                    s.captured_gtid_set.replace('\n', "")
                )?;
            }
            writeln!(
                o,
                "  last commit:  {}",
                s.last_commit_time.as_deref().unwrap_or("(none yet)")
            )?;
            if let Some(l) = s.lag_seconds {
                writeln!(o, "  lag:          {l:.3}s")?;
            }
            writeln!(
                o,
                "  captured:     {} transactions, {} row events",
                s.transactions_total, s.events_total
            )?;
            for g in &s.gaps {
                writeln!(
                    o,
                    "  GAP:          {} ({}; recorded {})",
                    g.missing, g.reason, g.recorded_at
                )?;
            }
            for t in &s.tainted_tables {
                writeln!(
                    o,
                    "  TAINTED:      {} since {}: {}",
                    t.table, t.since, t.reason
                )?;
            }
            for x in &s.prepared_xa {
                writeln!(
                    o,
                    "  XA PREPARED:  {} since {}{}: {} rows in {} (not in restores until XA COMMIT)",
                    x.xid,
                    x.prepared_at,
                    x.prepare_gtid
                        .as_deref()
                        .map(|g| format!(" ({g})"))
                        .unwrap_or_default(),
                    x.rows,
                    x.tables.join(", ")
                )?;
            }
            for w in &s.warnings {
                writeln!(o, "  warning:      {w}")?;
            }
            if let Some(e) = &s.error {
                writeln!(o, "  error:        {e}")?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fixtures::{gap, taint};
    use dbtrail_core::api::{SourceState, XaView};

    fn streaming() -> SourceStatus {
        SourceStatus {
            name: "demo".into(),
            state: SourceState::Streaming,
            captured_gtid_set: "u1:1-10,\nu2:1-3".into(),
            binlog_file: "binlog.000003".into(),
            binlog_pos: 4711,
            server_uuid: "u1".into(),
            last_commit_time: Some("2026-11-24T12:00:00.123456Z".into()),
            lag_seconds: Some(0.25),
            error: Some("boom".into()),
            warnings: vec!["w1".into(), "w2".into()],
            events_total: 99,
            transactions_total: 12,
            tainted_tables: vec![taint()],
            gaps: vec![gap()],
            prepared_xa: vec![XaView {
                xid: "X'6131',X'',1".into(),
                prepared_at: "2026-11-24T11:59:00Z".into(),
                prepare_gtid: Some("u1:9".into()),
                tables: vec!["db.t".into(), "db.u".into()],
                rows: 3,
            }],
        }
    }

    fn starting() -> SourceStatus {
        SourceStatus {
            name: "b".into(),
            state: SourceState::Starting,
            captured_gtid_set: String::new(),
            binlog_file: String::new(),
            binlog_pos: 0,
            server_uuid: String::new(),
            last_commit_time: None,
            lag_seconds: None,
            error: None,
            warnings: vec![],
            events_total: 0,
            transactions_total: 0,
            tainted_tables: vec![],
            gaps: vec![],
            prepared_xa: vec![],
        }
    }

    #[test]
    fn every_field() {
        assert_eq!(
            render(&[streaming(), starting()]),
            "\
demo: streaming
  position:     binlog.000003:4711 on u1
  gtid set:     u1:1-10,u2:1-3
  last commit:  2026-11-24T12:00:00.123456Z
  lag:          0.250s
  captured:     12 transactions, 99 row events
  GAP:          u1:5-7 (purged; recorded 2026-11-24T10:00:00Z)
  TAINTED:      shop.t since 2026-11-24T11:00:00Z: statement-format DML
  XA PREPARED:  X'6131',X'',1 since 2026-11-24T11:59:00Z (u1:9): 3 rows in db.t, db.u (not in restores until XA COMMIT)
  warning:      w1
  warning:      w2
  error:        boom
b: starting
  position:     (not captured yet)
  last commit:  (none yet)
  captured:     0 transactions, 0 row events
"
        );
    }

    #[test]
    fn no_sources_no_text() {
        assert_eq!(render(&[]), "");
    }

    #[test]
    fn json_wraps_the_sources() {
        let s = json(&SourcesResponse { sources: vec![] }).unwrap();
        assert_eq!(s, "{\n  \"sources\": []\n}\n");
    }
}
