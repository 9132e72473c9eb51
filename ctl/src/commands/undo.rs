//! `undo`: SQL that undoes one transaction.
use super::{json, pick_source, text};
use dbtrail_core::api::UndoResponse;
use dbtrail_ctl::Client;
use std::fmt::Write as _;
use std::io::Write;

#[derive(clap::Args)]
pub struct Args {
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
}

pub async fn run(client: &Client, args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    let source = pick_source(client, args.source).await?;
    let resp = client.undo(&source, &args.gtid, args.force).await?;
    if args.json {
        out.write_all(json(&resp)?.as_bytes())?;
    } else {
        eprint!("{}", warnings(&resp));
        out.write_all(resp.sql.as_bytes())?;
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
}
