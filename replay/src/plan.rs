//! Planning a point-in-time restore: a target validated against the log's
//! [`Catalog`] into a [`Plan`], the window of changes [`crate::restore::rebuild`] replays on
//! top of one baseline. Every refusal here is one a DBA must see before any work starts
//! (docs/correctness.md, C19); it is always the caller's to fix.
//!
//! Which transactions a target includes (documented in README.md, "Restores"):
//! - `--at T`: those whose commit time (µs, from the binlog; docs/correctness.md, C1),
//!   truncated to T's precision, is at or before T: `--at 14:30:00` includes all of second
//!   14:30:00, `--at 14:30:00.250000` cuts inside it. In µs: `commit_us <= T.end_inclusive()`.
//!   Commit times are monotonic in log order, so the included transactions are a prefix of
//!   the log.
//! - `--gtid S`: those whose GTID is in S; they must be a prefix of the log after the
//!   baseline (the state "right after those transactions" must exist), which the walk checks.
//!
//! The restored state is `baseline(B) + fold(changes not held by B, up to the last included
//! transaction)`, per table (see [`crate::fold`]): B is the newest baseline whose snapshot is
//! at or before the target. Why that is exact: B's snapshot was taken while commits were
//! blocked, so the transactions it holds ([`dbtrail_core::history::held_by`]: by GTID, or by
//! binlog file:pos without GTIDs) are a prefix of the binlog, hence of the log. The log thus
//! splits at one transaction into "held by B" then "not held", and the included ones are a
//! prefix too: the changes replayed are exactly the events with `cut <= event_id < end`
//! (`cut`: the first event not held, `end`: one past the last included), each applied once
//! and in log order. The log must reach back to B (its origin at or before B), hold no
//! recorded gap in between (unless allowed), no DDL on a restored table (the baseline's
//! schema is the one written) and no taint on one: otherwise the fold would miss changes.
use dbtrail_core::GtidSet;
use dbtrail_core::TableRef;
use dbtrail_core::api::{GapView, PitrPlan, PitrRequest, TaintView};
use dbtrail_core::baseline::{BaselineManifest, BaselineTable};
use dbtrail_core::history::{Catalog, GapInfo, HistoryError, TaintInfo, TxnInfo, cmp_binlog};
use dbtrail_core::render::rfc3339_micros;
use dbtrail_core::time::{TimePoint, parse_time};

use crate::restore::Window;

/// Why a request cannot be planned: always the caller's to fix (HTTP 4xx).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl From<HistoryError> for Refused {
    fn from(e: HistoryError) -> Self {
        Refused(e.to_string())
    }
}

macro_rules! refuse {
    ($($t:tt)*) => { return Err(Refused(format!($($t)*))) };
}

/// What planning needs from the caller besides the log.
#[derive(Clone, Debug)]
pub struct PlanContext {
    /// The current time (µs): a time target after it is refused.
    pub now_us: i64,
    /// Up to which commit time (µs) nothing committed on the source can still be missing
    /// from the log (capture streaming, its durable view minus lag); None when not known.
    pub covered_until_us: Option<i64>,
    /// The source's `restore_keys_in_memory`.
    pub keys_in_memory: u64,
    /// The source's name (for messages).
    pub source_name: String,
}

/// A validated restore.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The public view (its `cascades` are the caller's to describe).
    pub view: PitrPlan,
    /// The baseline it starts from.
    pub baseline: BaselineManifest,
    /// The requested tables' baseline entries, with their ids in the log (None: never
    /// changed since capture began).
    pub tables: Vec<(BaselineTable, Option<u32>)>,
    /// First event id not held by the baseline.
    cut: u64,
    /// Events with ids at or above this are after the target.
    end: u64,
    /// Scan the events table keys from this commit time ...
    since_us: i64,
    /// ... to this one (inclusive).
    until_us: i64,
    /// The last transaction included (None: none after the baseline).
    pub last: Option<TxnInfo>,
    /// The source's `restore_keys_in_memory` (at least 1).
    pub keys_in_memory: u64,
}

impl Plan {
    /// The changes a restore of this plan replays.
    pub fn window(&self) -> Window {
        Window {
            cut: self.cut,
            end: self.end,
            since_us: self.since_us,
            until_us: self.until_us,
        }
    }
}

enum Target {
    Time(TimePoint),
    Gtid(GtidSet),
}

/// A transaction as messages name it: its GTID and end position, or its end position.
pub fn describe(t: &TxnInfo) -> String {
    match &t.gtid {
        Some(g) => format!("{g} (ends at {}:{})", t.end_file, t.end_pos),
        None => format!("ending at {}:{}", t.end_file, t.end_pos),
    }
}

/// A gap as the API shows it.
pub fn gap_view(g: GapInfo) -> GapView {
    GapView {
        missing: g.missing,
        recorded_at: rfc3339_micros(g.recorded_us),
        reason: g.reason,
    }
}

/// A tainted table as the API shows it.
pub fn taint_view(t: TaintInfo) -> TaintView {
    TaintView {
        table: t.table.to_string(),
        reason: t.reason,
        since: rfc3339_micros(t.since_us),
    }
}

/// Validates `req` against the catalog into a plan (the module doc has the rules).
pub fn plan(catalog: &dyn Catalog, req: &PitrRequest, ctx: &PlanContext) -> Result<Plan, Refused> {
    let (target, target_text) = match (&req.target_time, &req.target_gtid) {
        (Some(t), None) => (Target::Time(parse_time(t).map_err(Refused)?), t.clone()),
        (None, Some(g)) => {
            let set: GtidSet = g
                .parse()
                .map_err(|e| Refused(format!("target_gtid {g:?} is not a GTID set: {e}")))?;
            if set.is_empty() {
                refuse!("target_gtid is empty");
            }
            (Target::Gtid(set), g.clone())
        }
        _ => refuse!("give exactly one of target_time (--at) and target_gtid (--gtid)"),
    };
    let rule = match &target {
        Target::Time(tp) => format!(
            "transactions whose commit time, truncated to {} fractional digit(s), is at or \
             before the target, i.e. committed at or before {}",
            tp.digits,
            rfc3339_micros(tp.end_inclusive())
        ),
        Target::Gtid(_) => "transactions whose GTID is in the target set".to_string(),
    };
    if let Target::Time(tp) = &target
        && tp.micros > ctx.now_us
    {
        refuse!("the target {target_text} is in the future");
    }
    let baselines = catalog.baselines()?;
    let Some(oldest) = baselines.first() else {
        refuse!(
            "no baseline snapshot found for source {}: take one with `dbtrailctl backup`, \
             then restore to a time after it",
            ctx.source_name
        );
    };
    let chosen = baselines.iter().rev().find(|b| match &target {
        Target::Time(tp) => b.snapshot_us <= tp.end_inclusive(),
        Target::Gtid(set) => !b.position.gtid_set.is_empty() && b.position.gtid_set.is_subset(set),
    });
    let Some(baseline) = chosen.cloned() else {
        refuse!(
            "no baseline snapshot found at or before {target_text}; the oldest baseline is {} \
             taken {} (position {})",
            oldest.id,
            rfc3339_micros(oldest.snapshot_us),
            oldest.position
        );
    };
    // The log must hold everything after the baseline.
    if let Some(o) = catalog.origin()? {
        let covered = if !o.gtid_set.is_empty() && !baseline.position.gtid_set.is_empty() {
            o.gtid_set.is_subset(&baseline.position.gtid_set)
        } else {
            cmp_binlog(
                (&o.file, o.pos),
                (&baseline.position.file, baseline.position.pos),
            ) != std::cmp::Ordering::Greater
        };
        if !covered {
            refuse!(
                "baseline {} ({}) predates the log, which begins at {o}: the changes in between \
                 were never captured",
                baseline.id,
                baseline.position
            );
        }
    }
    // Walk the transactions: held by the baseline, then included, then after the target.
    let mut cut_found = false;
    let mut last_held: Option<TxnInfo> = None;
    let mut first_after: Option<TxnInfo> = None;
    let mut last: Option<TxnInfo> = None;
    let mut txns = 0u64;
    let mut events = 0u64;
    let mut ddls: Vec<TxnInfo> = Vec::new();
    let mut reached = baseline.position.gtid_set.clone();
    let mut problem: Option<String> = None;
    let mut ended = false;
    catalog.scan_txns(&mut |t| {
        if !cut_found {
            if t.held_by(&baseline.position) {
                last_held = Some(t);
                return true;
            }
            cut_found = true;
            first_after = Some(t.clone());
        }
        let included = match &target {
            Target::Time(tp) => t.commit_us <= tp.end_inclusive(),
            Target::Gtid(set) => t.gtid.as_ref().is_some_and(|g| set.contains(g)),
        };
        if ended {
            if included {
                problem = Some(format!(
                    "the target is not a prefix of the log: transaction {} is in it but an \
                     earlier one is not",
                    describe(&t)
                ));
                return false;
            }
            // Time targets end at the first later commit; GTID targets check the rest.
            return matches!(target, Target::Gtid(_));
        }
        if !included {
            ended = true;
            return matches!(target, Target::Gtid(_));
        }
        txns += 1;
        events += t.event_count;
        if let Some(g) = &t.gtid {
            let _ = reached.insert(g);
        }
        if t.ddl.is_some() {
            ddls.push(t.clone());
        }
        last = Some(t);
        true
    })?;
    if let Some(p) = problem {
        refuse!("{p}");
    }
    match &target {
        Target::Time(tp) => {
            let newest = catalog.horizon()?.map(|h| h.last_commit_us).unwrap_or(0);
            if tp.end_inclusive() > newest {
                // Past the newest captured commit: fine only if nothing committed on the
                // source up to the target can still be missing, i.e. capture is streaming and
                // its durable view (last checkpoint minus lag) is past the target.
                if ctx.covered_until_us.is_none_or(|c| tp.end_inclusive() > c) {
                    refuse!(
                        "the target {target_text} is after the newest captured transaction \
                         ({}) and capture is not known to be caught up to it; wait for capture \
                         (`dbtrailctl status`) or choose an earlier target",
                        if newest > 0 {
                            rfc3339_micros(newest)
                        } else {
                            "none".into()
                        }
                    );
                }
            }
        }
        Target::Gtid(set) => {
            if !set.is_subset(&reached) {
                refuse!(
                    "the target GTID set {target_text} holds transactions the log does not have \
                     after baseline {} (reachable: {reached})",
                    baseline.id
                );
            }
        }
    }
    // Tables.
    let requested: Vec<TableRef> = if req.tables.is_empty() {
        baseline.tables.iter().map(|t| t.table.clone()).collect()
    } else {
        let mut v = Vec::new();
        for name in &req.tables {
            let t: TableRef = name
                .parse()
                .map_err(|_| Refused(format!("table {name:?} is not db.table")))?;
            if baseline.table(&t).is_none() {
                let have: Vec<String> = baseline
                    .tables
                    .iter()
                    .map(|t| t.table.to_string())
                    .collect();
                refuse!(
                    "table {t} is not in baseline {} (it holds: {})",
                    baseline.id,
                    have.join(", ")
                );
            }
            if !v.contains(&t) {
                v.push(t);
            }
        }
        v
    };
    let until_us = match (&target, &last) {
        (Target::Time(tp), _) => tp.end_inclusive(),
        (Target::Gtid(_), Some(l)) => l.commit_us,
        (Target::Gtid(_), None) => i64::MIN,
    };
    let held_commit = last_held.as_ref().map(|t| t.commit_us).unwrap_or(i64::MIN);
    let tainted = catalog.taints()?;
    for t in &tainted {
        if let Some(r) = requested.iter().find(|r| r.matched_by(&t.table))
            && t.since_us <= until_us
        {
            refuse!(
                "the coverage of {r} is tainted since {}{}: {}; it cannot be restored exactly \
                 past that point (leave it out with --tables, or restore to a target before it)",
                rfc3339_micros(t.since_us),
                if &t.table == r {
                    String::new()
                } else {
                    format!(" (by a change to {})", t.table)
                },
                t.reason
            );
        }
    }
    let gaps: Vec<GapView> = catalog
        .gaps()?
        .into_iter()
        .filter(|g| g.after_commit_us >= held_commit && g.after_commit_us < until_us)
        .map(gap_view)
        .collect();
    if let Some(g) = gaps.first()
        && !req.allow_gaps
    {
        refuse!(
            "the log has a gap between baseline {} and the target: {} ({}); restore to an \
             earlier target, or pass --allow-gaps to accept a result without those transactions",
            baseline.id,
            g.missing,
            g.reason
        );
    }
    for d in &ddls {
        let text = d.ddl.as_deref().unwrap_or("");
        let norm = text.replace('`', "").to_ascii_lowercase();
        if let Some(t) = requested.iter().find(|t| {
            let name = t.table.to_ascii_lowercase();
            norm.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$' || c == '.'))
                .any(|w| w == name || w == format!("{}.{name}", t.db.to_ascii_lowercase()))
        }) {
            refuse!(
                "DDL on {t} at {} ({}): {text:?}; restoring across DDL is not supported yet: \
                 choose a target before it, or take a baseline after it",
                rfc3339_micros(d.commit_us),
                describe(d)
            );
        }
    }
    let known = catalog.tables()?;
    let mut tables = Vec::new();
    for t in &requested {
        let entry = baseline
            .table(t)
            .cloned()
            .ok_or_else(|| Refused(format!("table {t} is not in baseline {}", baseline.id)))?;
        let id = known.iter().find(|(_, k)| k == t).map(|(id, _)| *id);
        tables.push((entry, id));
    }
    let not_in_baseline: Vec<String> = known
        .into_iter()
        .filter(|(_, t)| baseline.table(t).is_none())
        .map(|(_, t)| t.to_string())
        .collect();
    let cut = first_after
        .as_ref()
        .map(|t| t.first_event_id)
        .unwrap_or(u64::MAX);
    let end = last
        .as_ref()
        .map(|t| t.first_event_id + t.event_count)
        .unwrap_or(cut);
    let per_event = catalog.event_bytes()?;
    let view = PitrPlan {
        target: target_text,
        rule,
        baseline_id: baseline.id.clone(),
        baseline_time: rfc3339_micros(baseline.snapshot_us),
        baseline_position: baseline.position.to_string(),
        tables: requested.iter().map(|t| t.to_string()).collect(),
        transactions: txns,
        events,
        event_bytes: events * per_event,
        last_gtid: last
            .as_ref()
            .and_then(|t| t.gtid.as_ref().map(|g| g.to_string())),
        last_commit_time: last.as_ref().map(|t| rfc3339_micros(t.commit_us)),
        last_position: last
            .as_ref()
            .map(|t| format!("{}:{}", t.end_file, t.end_pos)),
        gtid_set_reached: reached.to_compact_string(),
        gaps,
        tainted_tables: tainted.into_iter().map(taint_view).collect(),
        not_in_baseline,
        cascades: Vec::new(),
    };
    Ok(Plan {
        view,
        since_us: first_after
            .as_ref()
            .map(|t| t.commit_us)
            .unwrap_or(i64::MAX),
        baseline,
        tables,
        cut,
        end,
        until_us,
        last,
        keys_in_memory: ctx.keys_in_memory.max(1),
    })
}

#[cfg(test)]
pub(crate) mod tests;
