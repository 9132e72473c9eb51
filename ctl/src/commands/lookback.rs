//! `show`, `diff`, `history`: a table at a past moment, the net change between two moments,
//! and a row's versions, without a restore.
use super::{json, pick_source, text};
use anyhow::Context;
use dbtrail_core::api::{DiffResponse, HistoryResponse, RowsResponse, StreamEnd};
use dbtrail_ctl::{Client, encode};
use std::fmt::Write as _;
use std::io::Write;

#[derive(clap::Args)]
pub struct ShowArgs {
    /// The table, `db.table`.
    table: String,
    /// The moment: `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC) or RFC 3339; the state after every
    /// transaction committed at or before it (at its precision).
    #[arg(long, conflicts_with = "gtid", required_unless_present = "gtid")]
    at: Option<String>,
    /// The moment as a GTID set: the state right after these transactions.
    #[arg(long)]
    gtid: Option<String>,
    /// Only the row(s) with this key, read by key: `id=42`, `a=1, b='x'`.
    #[arg(long)]
    where_key: Option<String>,
    /// At most this many rows (default: all, streamed; 1000 with --json).
    #[arg(long)]
    limit: Option<u64>,
    /// Print the API's JSON answer (at most 100000 rows).
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV (a header line, then one line per row).
    #[arg(long)]
    csv: bool,
    /// Source name (optional when only one is configured).
    #[arg(long)]
    source: Option<String>,
}

#[derive(clap::Args)]
pub struct DiffArgs {
    /// The table, `db.table`.
    table: String,
    /// The first moment (its state includes what committed at or before it).
    #[arg(long)]
    from: String,
    /// The second moment.
    #[arg(long)]
    to: String,
    /// At most this many rows listed (the counts are always whole; default 1000).
    #[arg(long)]
    limit: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Source name (optional when only one is configured).
    #[arg(long)]
    source: Option<String>,
}

#[derive(clap::Args)]
pub struct HistoryArgs {
    /// The table, `db.table`.
    table: String,
    /// The row's key: `id=42`, `a=1, b='x'`.
    #[arg(long)]
    key: String,
    /// Only changes committed at or after this moment.
    #[arg(long)]
    since: Option<String>,
    /// Only changes committed at or before this moment.
    #[arg(long)]
    until: Option<String>,
    /// At most this many versions (default 1000).
    #[arg(long)]
    limit: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Source name (optional when only one is configured).
    #[arg(long)]
    source: Option<String>,
}

fn table_path(source: &str, table: &str, what: &str) -> String {
    format!(
        "/api/v1/servers/{}/tables/{}/{what}?",
        encode(source),
        encode(table)
    )
}

fn push(q: &mut String, name: &str, v: Option<&str>) {
    if let Some(v) = v {
        if !q.ends_with('?') {
            q.push('&');
        }
        let _ = write!(q, "{name}={}", encode(v));
    }
}

/// A value as text: strings as they are, `NULL`, hex objects as `0x..`, numbers as JSON.
pub fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "NULL".into(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(o) => match o.get("hex").and_then(|h| h.as_str()) {
            Some(h) => format!("0x{h}"),
            None => v.to_string(),
        },
        other => other.to_string(),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One row as a line: tab-separated text, or CSV.
pub fn row_line(values: &[serde_json::Value], csv: bool) -> String {
    let cells: Vec<String> = values
        .iter()
        .map(|v| {
            let t = value_text(v);
            if csv {
                // NULL in CSV is an empty unquoted field; an empty string is "".
                match v {
                    serde_json::Value::Null => String::new(),
                    _ if t.is_empty() => "\"\"".into(),
                    _ => csv_field(&t),
                }
            } else {
                t.replace(['\t', '\n'], " ")
            }
        })
        .collect();
    cells.join(if csv { "," } else { "\t" })
}

pub async fn show(client: &Client, args: ShowArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let source = pick_source(client, args.source).await?;
    let mut q = table_path(&source, &args.table, "rows");
    push(&mut q, "at", args.at.as_deref());
    push(&mut q, "gtid", args.gtid.as_deref());
    push(&mut q, "key", args.where_key.as_deref());
    push(
        &mut q,
        "limit",
        args.limit.map(|l| l.to_string()).as_deref(),
    );
    if args.json {
        push(&mut q, "format", Some("json"));
        let resp: RowsResponse = client.get(&q).await?;
        out.write_all(json(&resp)?.as_bytes())?;
        return Ok(());
    }
    push(&mut q, "format", Some("ndjson"));
    let csv = args.csv;
    let mut head: Option<RowsResponse> = None;
    let mut end: Option<StreamEnd> = None;
    let mut buf: Vec<u8> = Vec::new();
    let mut lines = 0u64;
    // Lines are written as they arrive; the answer is only complete with its end line.
    let result = {
        let mut on_line = |l: &[u8]| -> anyhow::Result<()> {
            if l.is_empty() {
                return Ok(());
            }
            if head.is_none() {
                let h: RowsResponse =
                    serde_json::from_slice(l).context("decoding the answer's first line")?;
                let cols: Vec<serde_json::Value> = h
                    .columns
                    .iter()
                    .map(|c| serde_json::Value::String(c.clone()))
                    .collect();
                writeln!(buf, "{}", row_line(&cols, csv))?;
                head = Some(h);
                return Ok(());
            }
            if l.first() == Some(&b'[') {
                let values: Vec<serde_json::Value> =
                    serde_json::from_slice(l).context("decoding a row")?;
                writeln!(buf, "{}", row_line(&values, csv))?;
                lines += 1;
                if buf.len() > 1 << 16 {
                    out.write_all(&buf)?;
                    buf.clear();
                }
                return Ok(());
            }
            let v: serde_json::Value = serde_json::from_slice(l).context("decoding a line")?;
            if let Some(e) = v.get("end") {
                end = Some(serde_json::from_value(e.clone())?);
            } else if let Some(e) = v.get("error") {
                anyhow::bail!(
                    "the answer failed after {lines} rows (they are not the whole table): {}",
                    e.get("message").and_then(|m| m.as_str()).unwrap_or("?")
                );
            }
            Ok(())
        };
        client.get_lines(&q, &mut on_line).await
    };
    out.write_all(&buf)?;
    result?;
    let (Some(h), Some(end)) = (head, end) else {
        anyhow::bail!("the answer was cut off before its end: the rows shown are not complete");
    };
    eprintln!(
        "{} row(s) of {} at {}{}; from {}; read {}",
        end.rows,
        h.table,
        h.target,
        if end.truncated {
            " (cut by --limit)"
        } else {
            ""
        },
        h.image,
        end.read
    );
    Ok(())
}

/// The text of a diff.
pub fn diff_text(d: &DiffResponse) -> String {
    text(|o| {
        writeln!(
            o,
            "{}: {} inserted, {} deleted, {} changed between {} and {} ({} row changes in the log)",
            d.table, d.inserted, d.deleted, d.changed, d.from, d.to, d.changes
        )?;
        for r in &d.rows {
            let copies = r.copies.map(|c| format!(" x{c}")).unwrap_or_default();
            match r.kind.as_str() {
                "inserted" => writeln!(
                    o,
                    "+ {}{copies}: {}",
                    r.key,
                    row_line(r.after.as_deref().unwrap_or_default(), false)
                )?,
                "deleted" => writeln!(
                    o,
                    "- {}{copies}: {}",
                    r.key,
                    row_line(r.before.as_deref().unwrap_or_default(), false)
                )?,
                _ => {
                    let cols: Vec<String> = r
                        .changed
                        .iter()
                        .map(|c| {
                            format!(
                                "{}: {} -> {}",
                                c.column,
                                value_text(&c.old),
                                value_text(&c.new)
                            )
                        })
                        .collect();
                    writeln!(o, "~ {}: {}", r.key, cols.join(", "))?
                }
            }
        }
        if d.truncated {
            writeln!(o, "... (more rows: raise --limit)")?;
        }
        Ok(())
    })
}

pub async fn diff(client: &Client, args: DiffArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let source = pick_source(client, args.source).await?;
    let mut q = table_path(&source, &args.table, "diff");
    push(&mut q, "from", Some(&args.from));
    push(&mut q, "to", Some(&args.to));
    let resp: DiffResponse = get_limited(client, q, args.limit).await?;
    print(out, &resp, args.json, diff_text)
}

/// GET `q` with `limit` added.
async fn get_limited<T: serde::de::DeserializeOwned>(
    client: &Client,
    mut q: String,
    limit: Option<u64>,
) -> anyhow::Result<T> {
    push(&mut q, "limit", limit.map(|l| l.to_string()).as_deref());
    client.get(&q).await
}

/// The answer as JSON or as its text.
fn print<T: serde::Serialize>(
    out: &mut dyn Write,
    resp: &T,
    as_json: bool,
    as_text: fn(&T) -> String,
) -> anyhow::Result<()> {
    let text = if as_json { json(resp)? } else { as_text(resp) };
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// The text of a row's history.
pub fn history_text(h: &HistoryResponse) -> String {
    text(|o| {
        writeln!(
            o,
            "{} {}: {} version(s){}",
            h.table,
            h.key,
            h.versions.len(),
            h.log_begins
                .as_ref()
                .map(|b| format!(" (the log begins at {b})"))
                .unwrap_or_default()
        )?;
        for v in &h.versions {
            let what = match v.kind.as_str() {
                "update" => v
                    .changed
                    .iter()
                    .map(|c| {
                        format!(
                            "{}: {} -> {}",
                            c.column,
                            value_text(&c.old),
                            value_text(&c.new)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => row_line(&v.row, false),
            };
            writeln!(
                o,
                "{}  {:<6}  {}  {}",
                v.commit_time,
                v.kind,
                v.gtid
                    .clone()
                    .unwrap_or_else(|| format!("event {}", v.event_id)),
                what
            )?;
        }
        if h.truncated {
            writeln!(
                o,
                "... (more versions: raise --limit or narrow --since/--until)"
            )?;
        }
        Ok(())
    })
}

pub async fn history(
    client: &Client,
    args: HistoryArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let source = pick_source(client, args.source).await?;
    let mut q = table_path(&source, &args.table, "history");
    push(&mut q, "key", Some(&args.key));
    push(&mut q, "since", args.since.as_deref());
    push(&mut q, "until", args.until.as_deref());
    let resp: HistoryResponse = get_limited(client, q, args.limit).await?;
    print(out, &resp, args.json, history_text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_as_text_and_csv() {
        let row = vec![
            json!(1),
            json!("a,b"),
            json!(null),
            json!({"hex": "00ff"}),
            json!(""),
        ];
        assert_eq!(row_line(&row, false), "1\ta,b\tNULL\t0x00ff\t");
        assert_eq!(row_line(&row, true), "1,\"a,b\",,0x00ff,\"\"");
    }
}
