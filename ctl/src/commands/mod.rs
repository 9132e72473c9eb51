//! One module per command family. Each holds its clap arguments, the requests it sends through
//! [`dbtrail_ctl::Client`], and its output as pure functions from the API types
//! ([`dbtrail_core::api`]) to text; `run` writes that text to the `out` it is given (stdout,
//! from `main`). Progress and warnings go to stderr.
pub mod backups;
pub mod coverage;
pub mod events;
pub mod generate;
pub mod lookback;
pub mod pitr;
pub mod status;
pub mod undo;
pub mod verify;

use dbtrail_ctl::Client;
use serde::Serialize;

/// The source to talk about: the one given, or the only one configured.
pub async fn pick_source(client: &Client, source: Option<String>) -> anyhow::Result<String> {
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

/// `--json` output: the API's answer, pretty-printed, one trailing newline.
pub fn json<T: Serialize>(v: &T) -> serde_json::Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(v)?))
}

/// Text built with `write!`/`writeln!` (writing to a `String` cannot fail).
pub fn text(f: impl FnOnce(&mut String) -> std::fmt::Result) -> String {
    let mut s = String::new();
    let _ = f(&mut s);
    s
}

/// The wire name of an enum value (`streaming`, `failed`), as the JSON output spells it.
pub fn wire_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `1536` -> `1.5 KiB`; bytes below 1 KiB as `N B`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Fixed API values for the renderers' tests.
#[cfg(test)]
pub mod fixtures {
    use dbtrail_core::api::{GapView, TaintView};

    pub fn gap() -> GapView {
        GapView {
            missing: "u1:5-7".into(),
            recorded_at: "2026-11-24T10:00:00Z".into(),
            reason: "purged".into(),
        }
    }

    pub fn taint() -> TaintView {
        TaintView {
            table: "shop.t".into(),
            reason: "statement-format DML".into(),
            since: "2026-11-24T11:00:00Z".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbtrail_core::api::{JobStatus, SourceState};

    #[test]
    fn human_bytes_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5_002_048), "4.8 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_bytes(1 << 50), "1024.0 TiB");
    }

    #[test]
    fn wire_names() {
        assert_eq!(wire_name(&SourceState::Reconnecting), "reconnecting");
        assert_eq!(wire_name(&JobStatus::Completed), "completed");
        assert_eq!(wire_name(&3), "");
    }

    #[test]
    fn json_is_pretty_with_a_newline() {
        let v = serde_json::json!({"a": [1], "b": null});
        assert_eq!(
            json(&v).unwrap(),
            "{\n  \"a\": [\n    1\n  ],\n  \"b\": null\n}\n"
        );
    }
}
