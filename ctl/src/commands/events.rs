//! `events`: decoded row changes from the log.
use super::{json, pick_source, text};
use dbtrail_core::api::{EventView, EventsResponse};
use dbtrail_ctl::Client;
use std::fmt::Write as _;
use std::io::Write;

#[derive(clap::Args)]
pub struct Args {
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
}

pub async fn run(client: &Client, args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    let source = pick_source(client, args.source.clone()).await?;
    let resp = client.events(&source, &query(&args)).await?;
    let s = if args.json {
        json(&resp)?
    } else {
        render(&resp)
    };
    out.write_all(s.as_bytes())?;
    Ok(())
}

/// The query string's pairs: `limit` first, then the filters given.
fn query(args: &Args) -> Vec<(&'static str, String)> {
    let mut q = vec![("limit", args.limit.to_string())];
    for (k, v) in [
        ("table", &args.table),
        ("since", &args.since),
        ("until", &args.until),
        ("gtid", &args.gtid),
    ] {
        if let Some(v) = v {
            q.push((k, v.clone()));
        }
    }
    q
}

/// One header line per event, then its before and after images as `column=value`.
pub fn render(resp: &EventsResponse) -> String {
    text(|o| {
        for e in &resp.events {
            writeln!(
                o,
                "#{} {} {} {} gtid={}",
                e.event_id,
                e.commit_time,
                e.kind,
                e.table,
                e.gtid.as_deref().unwrap_or("-")
            )?;
            image(o, e, "before", &e.before)?;
            image(o, e, "after ", &e.after)?;
        }
        if resp.truncated {
            writeln!(o, "(more events: raise --limit or narrow --since/--until)")?;
        }
        Ok(())
    })
}

fn image(
    o: &mut String,
    e: &EventView,
    label: &str,
    row: &Option<Vec<serde_json::Value>>,
) -> std::fmt::Result {
    if let Some(r) = row {
        let cols: Vec<String> = e
            .columns
            .iter()
            .zip(r)
            .map(|(c, v)| format!("{c}={v}"))
            .collect();
        writeln!(o, "    {label}: {}", cols.join(" "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    fn event(id: u64, kind: &str, gtid: Option<&str>) -> EventView {
        EventView {
            event_id: id,
            table: "shop.orders".into(),
            kind: kind.into(),
            gtid: gtid.map(Into::into),
            commit_time: "2026-11-24T20:10:27.580577Z".into(),
            commit_us: 1_795_000_000_000_000,
            schema_version: 1,
            columns: vec!["id".into(), "name".into()],
            before: None,
            after: None,
        }
    }

    #[test]
    fn images_and_truncation() {
        let resp = EventsResponse {
            events: vec![
                EventView {
                    before: Some(vec![json!(1), json!("Ada")]),
                    after: Some(vec![json!(1), json!({"hex": "00ff"})]),
                    ..event(7, "update", Some("u1:7"))
                },
                EventView {
                    after: Some(vec![json!(2), json!(null)]),
                    ..event(8, "insert", None)
                },
                EventView {
                    before: Some(vec![json!(3), json!("x y")]),
                    ..event(9, "delete", Some("u1:8"))
                },
            ],
            truncated: true,
        };
        assert_eq!(
            render(&resp),
            "\
#7 2026-11-24T20:10:27.580577Z update shop.orders gtid=u1:7
    before: id=1 name=\"Ada\"
    after : id=1 name={\"hex\":\"00ff\"}
#8 2026-11-24T20:10:27.580577Z insert shop.orders gtid=-
    after : id=2 name=null
#9 2026-11-24T20:10:27.580577Z delete shop.orders gtid=u1:8
    before: id=3 name=\"x y\"
(more events: raise --limit or narrow --since/--until)
"
        );
    }

    #[test]
    fn nothing_matched() {
        let resp = EventsResponse {
            events: vec![],
            truncated: false,
        };
        assert_eq!(render(&resp), "");
    }

    #[derive(clap::Parser)]
    struct Wrap {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn query_pairs() {
        let q = |argv: &[&str]| query(&Wrap::parse_from(argv).args);
        assert_eq!(q(&["x"]), [("limit", "100".to_string())]);
        assert_eq!(
            q(&[
                "x",
                "--gtid",
                "u1:7",
                "--since",
                "2026-11-24 20:10",
                "--limit",
                "5"
            ]),
            [
                ("limit", "5".to_string()),
                ("since", "2026-11-24 20:10".to_string()),
                ("gtid", "u1:7".to_string()),
            ]
        );
    }
}
