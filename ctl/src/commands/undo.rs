//! `undo`: SQL that undoes one transaction (`--gtid G`) or a time window (`--since T1
//! --until T2`, with filters), streamed to stdout or `--output FILE`.
use super::{json, pick_source, text};
use dbtrail_core::api::{UndoResponse, UndoWindowRequest, UndoWindowSummary};
use dbtrail_ctl::Client;
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Source name (optional when only one is configured).
    #[arg(long)]
    source: Option<String>,
    /// A transaction's GTID: alone, undo that transaction; with --since/--until, undo only
    /// these transactions of the window (repeatable).
    #[arg(long)]
    gtid: Vec<String>,
    /// Start of the window to undo (from the start of this time at its precision; UTC
    /// unless an offset is given).
    #[arg(long)]
    since: Option<String>,
    /// End of the window (through the end of this time at its precision: '14:05:00'
    /// includes 14:05:00.999999).
    #[arg(long)]
    until: Option<String>,
    /// Only these tables (db.table, comma-separated).
    #[arg(long, value_delimiter = ',')]
    tables: Vec<String>,
    /// Only these kinds of change: insert, update, delete (comma-separated).
    #[arg(long, value_delimiter = ',')]
    kind: Vec<String>,
    /// Only the row with this key ('id=42'; needs exactly one table in --tables).
    #[arg(long, conflicts_with = "keys_file")]
    where_key: Option<String>,
    /// Only the rows with these keys: one per line as --where-key ('#' comments, blank lines
    /// skipped).
    #[arg(long)]
    keys_file: Option<PathBuf>,
    /// Statements per transaction of the script (each batch its own; still newest first).
    #[arg(long)]
    batch_rows: Option<usize>,
    /// Write the script here instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Produce the script even if changes not undone touch the same rows later (warnings).
    #[arg(long, conflicts_with = "skip_conflicts")]
    force: bool,
    /// Leave the rows that conflict alone and undo the rest (says which).
    #[arg(long)]
    skip_conflicts: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Keys of a keys file: one per line, blank lines and `#` comments skipped.
pub fn keys_of_file(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The window request the arguments ask for, or None for a single-transaction undo.
fn window_request(args: &Args) -> anyhow::Result<Option<UndoWindowRequest>> {
    let window_only = !args.tables.is_empty()
        || !args.kind.is_empty()
        || args.where_key.is_some()
        || args.keys_file.is_some()
        || args.batch_rows.is_some()
        || args.skip_conflicts;
    let (since, until) = match (&args.since, &args.until) {
        (None, None) => {
            if args.gtid.len() != 1 || window_only {
                anyhow::bail!(
                    "give --since and --until to undo a time window (filters such as --tables \
                     need one), or exactly one --gtid to undo one transaction"
                );
            }
            return Ok(None);
        }
        (Some(s), Some(u)) => (s.clone(), u.clone()),
        _ => anyhow::bail!("a window needs both --since and --until"),
    };
    let keys = match (&args.where_key, &args.keys_file) {
        (Some(k), _) => vec![k.clone()],
        (None, Some(f)) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| anyhow::anyhow!("reading the keys file {}: {e}", f.display()))?;
            let keys = keys_of_file(&text);
            if keys.is_empty() {
                anyhow::bail!("the keys file {} holds no key", f.display());
            }
            keys
        }
        (None, None) => Vec::new(),
    };
    Ok(Some(UndoWindowRequest {
        since,
        until,
        tables: args.tables.clone(),
        kinds: args.kind.clone(),
        keys,
        gtids: args.gtid.clone(),
        batch_rows: args.batch_rows,
        force: args.force,
        skip_conflicts: args.skip_conflicts,
    }))
}

pub async fn run(client: &Client, args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    let source = pick_source(client, args.source.clone()).await?;
    let mut file = match &args.output {
        Some(p) => Some(
            std::fs::File::create(p)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let Some(req) = window_request(&args)? else {
        let resp = client.undo(&source, &args.gtid[0], args.force).await?;
        let dest: &mut dyn Write = match &mut file {
            Some(f) => f,
            None => out,
        };
        if args.json {
            dest.write_all(json(&resp)?.as_bytes())?;
        } else {
            eprint!("{}", warnings(&resp));
            dest.write_all(resp.sql.as_bytes())?;
        }
        return Ok(());
    };
    let bar = (std::io::IsTerminal::is_terminal(&std::io::stderr()) && !args.json).then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bytes} of undo SQL ({bytes_per_sec})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b
    });
    let mut collected = Vec::new();
    let summary = {
        let dest: &mut dyn Write = match &mut file {
            Some(f) => f,
            None => out,
        };
        let json_out = args.json;
        let mut sink = |data: &[u8]| -> anyhow::Result<()> {
            if json_out {
                collected.extend_from_slice(data);
            } else {
                dest.write_all(data)?;
            }
            if let Some(b) = &bar {
                b.inc(data.len() as u64);
            }
            Ok(())
        };
        let r = client.undo_window(&source, &req, &mut sink).await;
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        let summary = r?;
        dest.flush()?;
        if json_out {
            let v = serde_json::json!({
                "summary": summary,
                "sql": String::from_utf8_lossy(&collected),
            });
            dest.write_all(json(&v)?.as_bytes())?;
        }
        summary
    };
    if !args.json {
        eprint!("{}", window_notes(&summary));
    }
    Ok(())
}

/// The conflicts a forced undo overrides, for stderr (the script itself goes to stdout as is).
pub fn warnings(resp: &UndoResponse) -> String {
    text(|o| {
        for c in &resp.conflicts {
            writeln!(o, "warning: {c}")?;
        }
        Ok(())
    })
}

/// A window undo's warnings and keys left alone, and its size, for stderr.
pub fn window_notes(s: &UndoWindowSummary) -> String {
    text(|o| {
        if s.skipped_key_count == 0 {
            for c in &s.conflicts {
                writeln!(o, "warning: overwrites a change not undone: {c}")?;
            }
            if s.conflict_count as usize > s.conflicts.len() {
                writeln!(o, "warning: {} conflicts in all", s.conflict_count)?;
            }
        } else {
            writeln!(
                o,
                "left alone: {} key(s) ({} change(s) not undone), changed later by changes not \
                 undone:",
                s.skipped_key_count, s.skipped_statements
            )?;
            for k in &s.skipped_keys {
                writeln!(o, "  {k}")?;
            }
        }
        writeln!(
            o,
            "{} statement(s) in {} transaction(s) undoing {} .. {} on {}",
            s.statements,
            s.batches,
            s.since,
            s.until,
            if s.tables.is_empty() {
                "no table".to_string()
            } else {
                s.tables.join(", ")
            }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_conflict() {
        let mut resp = UndoResponse {
            gtid: "u1:7".into(),
            commit_time: "2026-11-24T20:10:27.580577Z".into(),
            tables: vec!["shop.orders".into()],
            statements: 1,
            conflicts: vec![],
            sql: "START TRANSACTION;\nCOMMIT;\n".into(),
        };
        assert_eq!(warnings(&resp), "");
        resp.conflicts = vec!["shop.orders id=1 changed by u1:9".into(), "again".into()];
        assert_eq!(
            warnings(&resp),
            "warning: shop.orders id=1 changed by u1:9\nwarning: again\n"
        );
    }

    fn args(argv: &[&str]) -> Args {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let mut all = vec!["undo"];
        all.extend_from_slice(argv);
        <Cli as clap::Parser>::try_parse_from(all)
            .map(|c| c.args)
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
    }

    #[test]
    fn one_gtid_alone_is_a_transaction_else_a_window() {
        assert!(
            window_request(&args(&["--gtid", "u:1"]))
                .expect("one")
                .is_none()
        );
        let w = window_request(&args(&[
            "--since",
            "2026-11-24 14:02:00",
            "--until",
            "2026-11-24 14:05:00",
            "--tables",
            "shop.orders,shop.bag",
            "--kind",
            "update,delete",
            "--gtid",
            "u:1",
            "--gtid",
            "u:2",
            "--batch-rows",
            "500",
            "--skip-conflicts",
        ]))
        .expect("window")
        .expect("a window");
        assert_eq!(w.tables, ["shop.orders", "shop.bag"]);
        assert_eq!(w.kinds, ["update", "delete"]);
        assert_eq!(w.gtids, ["u:1", "u:2"]);
        assert_eq!(
            (w.batch_rows, w.skip_conflicts, w.force),
            (Some(500), true, false)
        );
        for bad in [
            &["--gtid", "u:1", "--gtid", "u:2"][..],
            &["--gtid", "u:1", "--tables", "a.b"],
            &[],
            &["--since", "2026-11-24 14:02:00"],
        ] {
            assert!(window_request(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_files_skip_comments_and_blank_lines() {
        assert_eq!(
            keys_of_file("# wrong rows\nid=1\n\n  id=2  \n#id=3\n"),
            vec!["id=1".to_string(), "id=2".to_string()]
        );
    }

    #[test]
    fn window_notes_say_what_was_left_alone() {
        let mut s = UndoWindowSummary {
            since: "a".into(),
            until: "b".into(),
            statements: 3,
            batches: 1,
            tables: vec!["shop.orders".into()],
            ..UndoWindowSummary::default()
        };
        assert_eq!(
            window_notes(&s),
            "3 statement(s) in 1 transaction(s) undoing a .. b on shop.orders\n"
        );
        s.skipped_key_count = 1;
        s.skipped_statements = 2;
        s.skipped_keys = vec!["shop.orders key (id=420)".into()];
        assert!(
            window_notes(&s).starts_with(
                "left alone: 1 key(s) (2 change(s) not undone), changed later by changes not \
                 undone:\n  shop.orders key (id=420)\n"
            ),
            "{}",
            window_notes(&s)
        );
    }
}
