//! Planning a point-in-time restore: a target validated against the log's [`Catalog`] into
//! a [`Plan`]: per table, the image it is rebuilt from and the window of changes
//! [`crate::restore::rebuild`] replays onto it, forward or backward. Every refusal here is
//! one a DBA must see before any work starts (docs/correctness.md, C19); it is always the
//! caller's to fix.
//!
//! Which transactions a target includes (documented in README.md, "Restores"):
//! - `--at T`: those whose commit time (µs, from the binlog; docs/correctness.md, C1),
//!   truncated to T's precision, is at or before T: `--at 14:30:00` includes all of second
//!   14:30:00, `--at 14:30:00.250000` cuts inside it. In µs: `commit_us <= T.end_inclusive()`.
//!   Commit times are monotonic in log order, so the included transactions are a prefix of
//!   the log.
//! - `--gtid S`: those whose GTID is in S; they must be a prefix of the log after the
//!   anchor baseline (the state "right after those transactions" must exist), which the walk
//!   checks.
//!
//! # Images, in both directions
//! An image is a snapshot of tables at an exact position: a full baseline, or a table image
//! (some tables only, taken after a DDL changed them or of the live tables for a restore).
//! Which logged transactions an image holds is [`dbtrail_core::history::held_by`] (by GTID,
//! or by binlog file:pos without GTIDs). For one table `t` the transactions that change it
//! and that an image holds are a prefix of t's transactions: a full baseline's snapshot is
//! taken while every commit is blocked, a table image's while `t` is locked for reading,
//! after every transaction that wrote `t` has committed. The walk checks that prefix.
//! - Forward, from an image `I` at or before the target: every t-transaction `I` holds is
//!   included, and `state(T) = I + fold(t's changes not held by I and included)`: the events
//!   of t with `cut <= event_id < end`, where `cut` is the first t-transaction not held (for
//!   a full baseline: the first transaction it does not hold, the same for every table) and
//!   `end` the first transaction not included.
//! - Backward, from an image `I` after the target: every included t-transaction is held, and
//!   `state(T) = I + fold_backward(t's changes held by I and not included)`: the events with
//!   `end(T) <= event_id < e`, `e` one past the last t-transaction `I` holds.
//!
//! Both are exact by [`crate::fold`] when the window holds every change of t between the
//! image and the target, decoded with the image's layout: so an image is unusable for t when a
//! DDL on t lies between it and the target (the schema written is the image's `SHOW CREATE
//! TABLE`, which is then the one valid at the target), when the log has a gap or t a taint
//! there, or when the prefix property fails. Per table the planner considers the newest image
//! at or before the target, the oldest after it, and the live table (a table image taken
//! when the restore starts: its window runs to the log's horizon), and picks the usable one
//! with the least work (`--image auto`): a stored image costs the events it replays, the live
//! table those plus the rows its snapshot reads plus [`LIVE_OVERHEAD`] (so it wins when the
//! changes since an older image outnumber the table's rows); forward on a tie.
//!
//! The log must reach back to an anchor: the newest full baseline at or before the target
//! (its origin at or before it), so every transaction after the anchor is logged, which is
//! what every window above needs.
use dbtrail_core::GtidSet;
use dbtrail_core::TableRef;
use dbtrail_core::api::{GapView, ImageOption, PitrPlan, PitrRequest, TableImagePlan, TaintView};
use dbtrail_core::baseline::{BaselineManifest, BaselineTable};
use dbtrail_core::history::{
    Catalog, ChangeLog, GapInfo, HistoryError, TaintInfo, TxnInfo, cmp_binlog,
};
use dbtrail_core::render::rfc3339_micros;
use dbtrail_core::time::{TimePoint, parse_time};
use std::collections::HashMap;

use crate::restore::{Derivable, Window, cascading_parents};

/// What taking a live image costs besides its rows (connections, the lock, the files), in
/// replayed events: `--image auto` never images a small table to save a few events.
pub const LIVE_OVERHEAD: u64 = 10_000;

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
    /// Whether the caller can take a live table image when the restore starts (Err: it
    /// cannot, with the reason).
    pub live: Result<(), String>,
    /// The databases baselines cover (None: all): tables created after the anchor elsewhere
    /// are not part of a restore of everything.
    pub databases: Option<Vec<String>>,
    /// The table image taken for this restore from the live tables: the tables it holds are
    /// rebuilt from it (and only from it).
    pub live_image: Option<String>,
    /// An image the plan must not use (a verification rebuilds the tables of the image it
    /// just took from everything else, to compare the two).
    pub exclude_image: Option<String>,
}

/// Where the tables' images may come from (`--image`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageMode {
    /// The usable image with the fewest events to replay.
    Auto,
    /// Stored baselines and table images only, forward or backward.
    Baseline,
    /// The live tables, with the changes since the target undone.
    Live,
}

impl ImageMode {
    /// From the request's `image` (None: auto).
    pub fn parse(v: Option<&str>) -> Result<ImageMode, Refused> {
        match v.unwrap_or("auto") {
            "auto" => Ok(ImageMode::Auto),
            "baseline" => Ok(ImageMode::Baseline),
            "live" => Ok(ImageMode::Live),
            other => refuse!(
                "unknown image {other:?}: use auto (the image needing the fewest events \
                 replayed), baseline (stored baselines and table images only) or live (the live \
                 table, with the changes since the target undone)"
            ),
        }
    }
}

/// Whether a log whose capture began at `origin` holds every transaction after `position`
/// (the origin is at or before it: by GTID set when both have one, else by binlog file:pos).
pub fn log_reaches(
    origin: &dbtrail_core::position::Position,
    position: &dbtrail_core::position::Position,
) -> bool {
    if !origin.gtid_set.is_empty() && !position.gtid_set.is_empty() {
        origin.gtid_set.is_subset(&position.gtid_set)
    } else {
        cmp_binlog((&origin.file, origin.pos), (&position.file, position.pos))
            != std::cmp::Ordering::Greater
    }
}

/// One table of a plan.
#[derive(Clone, Debug)]
pub struct TablePlan {
    /// The table.
    pub table: TableRef,
    /// Its id in the log (None: never changed since capture began).
    pub table_id: Option<u32>,
    /// The image's id and the table's entry in it; None: the live table, imaged when the
    /// restore starts (the caller then plans again with that image).
    pub image: Option<(String, BaselineTable)>,
    /// The image is after the target.
    pub backward: bool,
    /// The changes replayed onto the image.
    pub window: Window,
    /// How many (row events of this table).
    pub events: u64,
}

/// A validated restore.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The public view (its `cascades` are the caller's to describe).
    pub view: PitrPlan,
    /// The anchor: the newest full baseline at or before the target.
    pub baseline: BaselineManifest,
    /// The requested tables.
    pub tables: Vec<TablePlan>,
    /// The anchor's forward window (for tables rebuilt from it only to derive cascades).
    pub anchor_window: Window,
    /// The last transaction included (None: none after the anchor).
    pub last: Option<TxnInfo>,
    /// The source's `restore_keys_in_memory` (at least 1).
    pub keys_in_memory: u64,
    /// The DDL statements after the anchor up to the target, in log order (recorded, with
    /// capture's `USE` prefix): what [`crate::objects::objects_at_target`] applies.
    pub ddls: Vec<String>,
}

impl Plan {
    /// Tables to image live before the restore can run.
    pub fn live(&self) -> Vec<TableRef> {
        self.tables
            .iter()
            .filter(|t| t.image.is_none())
            .map(|t| t.table.clone())
            .collect()
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

/// Whether the recorded DDL statement `text` may change `t` ([`dbtrail_core::ddl`]; names
/// compared without case, since `lower_case_table_names` may fold them): a statement it does
/// not understand counts when it mentions t's name at all.
pub fn ddl_touches(text: &str, t: &TableRef) -> bool {
    use dbtrail_core::ddl::{Ddl, DdlEffect, classify_recorded};
    let same =
        |a: &TableRef| a.db.eq_ignore_ascii_case(&t.db) && a.table.eq_ignore_ascii_case(&t.table);
    match classify_recorded(text) {
        Ddl::NoTables => false,
        Ddl::Tables(effects) => effects.iter().any(|e| match e {
            DdlEffect::Create { table, .. }
            | DdlEffect::Alter(table)
            | DdlEffect::Truncate(table)
            | DdlEffect::Drop(table) => same(table),
            DdlEffect::Rename { from, to } => same(from) || same(to),
            DdlEffect::DropDatabase(db) => db.eq_ignore_ascii_case(&t.db),
        }),
        Ddl::Unknown(_) => ddl_may_touch(text, t),
    }
}

/// Whether the DDL statement `text` may change `t` (conservative: any mention of its name).
pub fn ddl_may_touch(text: &str, t: &TableRef) -> bool {
    let norm = text.replace('`', "").to_ascii_lowercase();
    let name = t.table.to_ascii_lowercase();
    let qualified = format!("{}.{name}", t.db.to_ascii_lowercase());
    norm.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$' || c == '.'))
        .any(|w| w == name || w == qualified)
}

/// One candidate image of one table, as the walk sees it.
struct Cand {
    /// Index into the images (None: live).
    image: Option<usize>,
    backward: bool,
    /// Why it cannot be used.
    bad: Option<String>,
    /// A t-transaction the image does not hold was seen.
    seen_not_held: bool,
    /// Forward: the first t-transaction not held (first event id, commit time).
    first: Option<(u64, i64)>,
    /// Backward: one past the last t-transaction held and not included (event id, commit).
    last: Option<(u64, i64)>,
}

impl Cand {
    fn new(image: Option<usize>, backward: bool) -> Cand {
        Cand {
            image,
            backward,
            bad: None,
            seen_not_held: false,
            first: None,
            last: None,
        }
    }

    fn fail(&mut self, why: String) {
        if self.bad.is_none() {
            self.bad = Some(why);
        }
    }
}

/// The per-table state of the walk.
struct TableState {
    table: TableRef,
    id: Option<u32>,
    cands: Vec<Cand>,
    /// Some schema version has a cascading foreign key: its parents' changes from the
    /// image's point on fire its actions.
    cascading: bool,
    /// Its newest schema has no primary key (a multiset: see `lock-free images` below).
    keyless: bool,
}

fn image_name(m: &BaselineManifest) -> String {
    if m.origin.is_full() {
        format!("baseline {}", m.id)
    } else {
        format!("table image {}", m.id)
    }
}

/// Validates `req` against the catalog into a plan (the module doc has the rules).
pub fn plan(
    catalog: &dyn Catalog,
    log: &dyn ChangeLog,
    req: &PitrRequest,
    ctx: &PlanContext,
) -> Result<Plan, Refused> {
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
    let mode = ImageMode::parse(req.image.as_deref())?;
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
    let mut images = catalog.baselines()?;
    images.retain(|b| ctx.exclude_image.as_ref() != Some(&b.id));
    let before = |b: &BaselineManifest| match &target {
        Target::Time(tp) => b.snapshot_us <= tp.end_inclusive(),
        Target::Gtid(set) => !b.position.gtid_set.is_empty() && b.position.gtid_set.is_subset(set),
    };
    let Some(oldest) = images.iter().find(|b| b.origin.is_full()) else {
        refuse!(
            "no baseline snapshot found for source {}: take one with `dbtrailctl backup`, \
             then restore to a time after it",
            ctx.source_name
        );
    };
    let Some(baseline) = images
        .iter()
        .rev()
        .find(|b| b.origin.is_full() && before(b))
        .cloned()
    else {
        refuse!(
            "no baseline snapshot found at or before {target_text}; the oldest baseline is {} \
             taken {} (position {})",
            oldest.id,
            rfc3339_micros(oldest.snapshot_us),
            oldest.position
        );
    };
    // The log must hold everything after the anchor.
    if let Some(o) = catalog.origin()?
        && !log_reaches(&o, &baseline.position)
    {
        refuse!(
            "baseline {} ({}) predates the log, which begins at {o}: the changes in between \
             were never captured",
            baseline.id,
            baseline.position
        );
    }
    // Tables.
    let known = catalog.tables()?;
    let requested: Vec<TableRef> = if req.tables.is_empty() {
        let mut v = tables_at_target(catalog, &baseline, &|t: &TxnInfo| match &target {
            Target::Time(tp) => t.commit_us <= tp.end_inclusive(),
            Target::Gtid(set) => t.gtid.as_ref().is_some_and(|g| set.contains(g)),
        })?;
        v.retain(|t| {
            baseline.table(t).is_some()
                || ctx.databases.as_ref().is_none_or(|dbs| dbs.contains(&t.db))
        });
        v
    } else {
        let mut v = Vec::new();
        for name in &req.tables {
            let t: TableRef = name
                .parse()
                .map_err(|_| Refused(format!("table {name:?} is not db.table")))?;
            if !images.iter().any(|b| b.table(&t).is_some()) {
                let have: Vec<String> = baseline
                    .tables
                    .iter()
                    .map(|t| t.table.to_string())
                    .collect();
                refuse!(
                    "table {t} is not in baseline {} (it holds: {}) nor in any table image",
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
    // Candidates per table: the newest image at or before the target (never older than the
    // anchor: the log need not reach before it), the oldest after it, and the live table.
    let anchor_ix = images
        .iter()
        .position(|b| b.id == baseline.id)
        .unwrap_or_default();
    let mut states: Vec<TableState> = Vec::new();
    for t in &requested {
        let mut cands = Vec::new();
        let fwd = (anchor_ix..images.len())
            .rev()
            .find(|&i| images[i].table(t).is_some() && before(&images[i]));
        if let Some(i) = fwd {
            cands.push(Cand::new(Some(i), false));
        }
        if mode != ImageMode::Live
            && let Some(i) = (anchor_ix..images.len())
                .find(|&i| images[i].table(t).is_some() && !before(&images[i]))
        {
            cands.push(Cand::new(Some(i), true));
        }
        if mode != ImageMode::Baseline {
            let mut live = Cand::new(None, true);
            if let Err(why) = &ctx.live {
                live.fail(why.clone());
            }
            cands.push(live);
        }
        if mode == ImageMode::Live {
            cands.retain(|c| c.image.is_none());
        }
        if let Some(id) = &ctx.live_image
            && let Some(ix) = images
                .iter()
                .position(|b| &b.id == id && b.table(t).is_some())
        {
            cands = vec![Cand::new(Some(ix), !before(&images[ix]))];
        }
        let id = known.iter().find(|(_, k)| k == t).map(|(id, _)| *id);
        let cascading = match id {
            Some(id) => has_cascading_parents(log, id)?,
            None => false,
        };
        let keyless = match id {
            Some(id) => newest_schema(log, id)?.is_some_and(|s| s.primary_key.is_empty()),
            None => false,
        };
        // Lock-free images (exact only somewhere in position .. upper) are used forward.
        for c in &mut cands {
            let Some(m) = c.image.map(|ix| &images[ix]) else {
                continue;
            };
            if m.upper.is_some() && c.backward {
                c.fail(format!(
                    "{} was taken without a lock (exact only after {}), so it is only used \
                     for targets after it",
                    image_name(m),
                    m.upper.as_ref().map(|u| u.to_string()).unwrap_or_default()
                ));
            }
            if m.upper.is_some() && cascading {
                c.fail(format!(
                    "{} was taken without a lock, and {t} has cascading foreign keys whose \
                     actions are not replayed onto such an image; take a baseline with \
                     baseline_lock = \"tables\" or \"global\"",
                    image_name(m)
                ));
            }
        }
        states.push(TableState {
            table: t.clone(),
            id,
            cands,
            cascading,
            keyless,
        });
    }
    let by_id: HashMap<u32, usize> = states
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.id.map(|id| (id, i)))
        .collect();
    // Per candidate image: the first transaction it does not hold (a full baseline's cut).
    let mut global_cut: HashMap<usize, (u64, i64)> = HashMap::new();
    // ... and the newest commit it holds (where its point is, for gaps).
    let mut held_commit: HashMap<usize, i64> = HashMap::new();
    let cand_images: Vec<usize> = {
        let mut v: Vec<usize> = states
            .iter()
            .flat_map(|s| s.cands.iter().filter_map(|c| c.image))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let walk_all = matches!(target, Target::Gtid(_))
        || states
            .iter()
            .any(|s| s.cands.iter().any(|c| c.backward && c.bad.is_none()));
    // Walk the transactions: each is included or not, held by each candidate or not.
    let mut first_after: Option<TxnInfo> = None;
    let mut last: Option<TxnInfo> = None;
    let mut txns = 0u64;
    let mut ddls: Vec<String> = Vec::new();
    let mut events = 0u64;
    let mut reached = baseline.position.gtid_set.clone();
    let mut problem: Option<String> = None;
    let mut ended = false;
    // Lock-free images need the transactions up to their `upper` seen, included or not.
    let upper_end: Option<(String, u64)> = cand_images
        .iter()
        .filter_map(|&i| images[i].upper.as_ref())
        .map(|u| (u.file.clone(), u.pos))
        .max_by(|a, b| cmp_binlog((&a.0, a.1), (&b.0, b.1)));
    let within_upper = |t: &TxnInfo| {
        upper_end.as_ref().is_some_and(|(f, p)| {
            cmp_binlog((&t.end_file, t.end_pos), (f, *p)) != std::cmp::Ordering::Greater
        })
    };
    catalog.scan_txns(&mut |t| {
        let included = match &target {
            Target::Time(tp) => t.commit_us <= tp.end_inclusive(),
            Target::Gtid(set) => t.gtid.as_ref().is_some_and(|g| set.contains(g)),
        };
        if ended && !walk_all && !within_upper(&t) {
            return false;
        }
        if ended && included {
            problem = Some(format!(
                "the target is not a prefix of the log: transaction {} is in it but an \
                 earlier one is not",
                describe(&t)
            ));
            return false;
        }
        if !included && !ended {
            ended = true;
            first_after = Some(t.clone());
            if !walk_all && !within_upper(&t) {
                return false;
            }
        }
        for &i in &cand_images {
            if t.held_by(&images[i].position) {
                let c = held_commit.entry(i).or_insert(i64::MIN);
                *c = (*c).max(t.commit_us);
            } else {
                global_cut
                    .entry(i)
                    .or_insert((t.first_event_id, t.commit_us));
            }
        }
        if included && !t.held_by(&baseline.position) {
            if let Some(d) = &t.ddl {
                ddls.push(d.clone());
            }
            txns += 1;
            events += t.event_count;
            if let Some(g) = &t.gtid {
                let _ = reached.insert(g);
            }
            last = Some(t.clone());
        }
        // The tables it changes, and those its DDL may change.
        let mut touched: Vec<usize> = t
            .tables
            .iter()
            .filter_map(|id| by_id.get(id).copied())
            .collect();
        if let Some(text) = &t.ddl {
            for (i, s) in states.iter().enumerate() {
                if ddl_touches(text, &s.table) && !touched.contains(&i) {
                    touched.push(i);
                }
            }
        }
        for i in touched {
            let s = &mut states[i];
            for c in &mut s.cands {
                let held = c.image.is_some_and(|ix| t.held_by(&images[ix].position));
                let ddl = t
                    .ddl
                    .as_ref()
                    .filter(|d| ddl_touches(d, &s.table))
                    .map(|d| {
                        format!(
                            "DDL on {} at {} ({}): {d:?} lies between the image and the target",
                            s.table,
                            rfc3339_micros(t.commit_us),
                            describe(&t)
                        )
                    });
                if held && c.seen_not_held {
                    c.fail(format!(
                        "the image holds transaction {} but not an earlier one of {}",
                        describe(&t),
                        s.table
                    ));
                }
                // A cascading table's window starts at the image's first unheld transaction
                // of any table: none of its own after that may be held.
                if held
                    && s.cascading
                    && c.image.is_some_and(|ix| {
                        global_cut.get(&ix).is_some_and(|g| g.0 < t.first_event_id)
                    })
                {
                    c.fail(format!(
                        "the image holds transaction {} of {} but not an earlier one of another \
                         table, so its cascades from there cannot be replayed exactly",
                        describe(&t),
                        s.table
                    ));
                }
                // Lock-free: a change after `position` that the image may or may not hold
                // (it ends by `upper`) must be replayed, and is harmless only for keyed tables.
                if let Some(ix) = c.image
                    && let Some(u) = &images[ix].upper
                    && !held
                    && cmp_binlog((&t.end_file, t.end_pos), (&u.file, u.pos))
                        != std::cmp::Ordering::Greater
                {
                    if !included {
                        c.fail(format!(
                            "the target is inside the interval of {} (taken without a lock: \
                             exact for {} only from {} on, after transaction {})",
                            image_name(&images[ix]),
                            s.table,
                            u,
                            describe(&t)
                        ));
                    }
                    if s.keyless {
                        c.fail(format!(
                            "{} has no primary key and transaction {} changed it while {} \
                             (taken without a lock) started",
                            s.table,
                            describe(&t),
                            image_name(&images[ix])
                        ));
                    }
                }
                match (c.backward, held, included) {
                    // Live: the table now holds everything; what is after the target is undone.
                    (true, false, _) if c.image.is_none() => {
                        if !included {
                            c.last = Some((t.first_event_id + t.event_count, t.commit_us));
                            if let Some(d) = ddl {
                                c.fail(format!(
                                    "the live table's layout may have changed since the \
                                     target: {d}"
                                ));
                            }
                        }
                        continue;
                    }
                    // Forward: held ones must be included; the others included are replayed.
                    (false, true, false) => c.fail(format!(
                        "the image holds transaction {}, which is after the target",
                        describe(&t)
                    )),
                    (false, false, true) => {
                        c.first.get_or_insert((t.first_event_id, t.commit_us));
                        if let Some(d) = ddl {
                            c.fail(d);
                        }
                    }
                    // Backward: included ones must be held; the others held are undone.
                    (true, false, true) => c.fail(format!(
                        "the image does not hold transaction {}, which the target includes",
                        describe(&t)
                    )),
                    (true, true, false) => {
                        c.last = Some((t.first_event_id + t.event_count, t.commit_us));
                        if let Some(d) = ddl {
                            c.fail(d);
                        }
                    }
                    _ => {}
                }
                if !held {
                    c.seen_not_held = true;
                }
            }
        }
        true
    })?;
    if let Some(p) = problem {
        refuse!("{p}");
    }
    let horizon = catalog.horizon()?;
    match &target {
        Target::Time(tp) => {
            let newest = horizon.map(|h| h.last_commit_us).unwrap_or(0);
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
    let until_us = match (&target, &last) {
        (Target::Time(tp), _) => tp.end_inclusive(),
        (Target::Gtid(_), Some(l)) => l.commit_us,
        (Target::Gtid(_), None) => i64::MIN,
    };
    let next_event = horizon.map(|h| h.next_event_id).unwrap_or(0);
    let end = first_after
        .as_ref()
        .map(|t| t.first_event_id)
        .unwrap_or(next_event);
    let after_us = first_after
        .as_ref()
        .map(|t| t.commit_us)
        .unwrap_or(i64::MAX);
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
    let all_gaps = catalog.gaps()?;
    let derivable = Derivable::new(log).map_err(|e| Refused(e.to_string()))?;
    let anchor_cut = global_cut.get(&anchor_ix).copied();
    let anchor_window = Window {
        cut: anchor_cut.map_or(u64::MAX, |c| c.0),
        end: if anchor_cut.is_some() { end } else { u64::MAX },
        since_us: anchor_cut.map_or(i64::MAX, |c| c.1),
        until_us,
    };
    let mut gaps_used: Vec<GapInfo> = Vec::new();
    let mut tables = Vec::new();
    let mut views = Vec::new();
    for s in states {
        let cascading = s.cascading;
        let mut options: Vec<(Cand, Window, u64, ImageOption)> = Vec::new();
        for mut c in s.cands {
            let window = match (c.image, c.backward) {
                (Some(ix), false) if images[ix].origin.is_full() => {
                    if ix == anchor_ix {
                        anchor_window
                    } else {
                        let cut = global_cut.get(&ix).copied();
                        Window {
                            cut: cut.map_or(end, |c| c.0),
                            end,
                            since_us: cut.map_or(i64::MAX, |c| c.1),
                            until_us,
                        }
                    }
                }
                // A table with cascading keys replays from the first transaction the image
                // does not hold, of any table: its parents' changes from there on fire its
                // actions (the walk checked that the image holds none of its own after it).
                (Some(ix), false) if cascading => {
                    let cut = global_cut.get(&ix).copied();
                    Window {
                        cut: cut.map_or(end, |c| c.0),
                        end,
                        since_us: cut.map_or(i64::MAX, |c| c.1),
                        until_us,
                    }
                }
                (_, false) => Window {
                    cut: c.first.map_or(end, |f| f.0),
                    end,
                    since_us: c.first.map_or(i64::MAX, |f| f.1),
                    until_us,
                },
                (_, true) => Window {
                    cut: end,
                    end: c.last.map_or(end, |l| l.0),
                    since_us: after_us,
                    until_us: c.last.map_or(i64::MIN, |l| l.1),
                },
            };
            // Gaps and taints between the image and the target.
            let (lo, hi) = match (c.image, c.backward) {
                (Some(ix), false) => (held_commit.get(&ix).copied().unwrap_or(i64::MIN), until_us),
                (Some(ix), true) => (until_us, held_commit.get(&ix).copied().unwrap_or(i64::MAX)),
                (None, _) => (until_us, i64::MAX),
            };
            let gaps: Vec<&GapInfo> = all_gaps
                .iter()
                .filter(|g| g.after_commit_us >= lo && g.after_commit_us < hi)
                .collect();
            if let Some(g) = gaps.first()
                && (c.backward || !req.allow_gaps)
            {
                c.fail(format!(
                    "the log has a gap between the image and the target: {} ({}){}",
                    g.missing,
                    g.reason,
                    if c.backward {
                        ""
                    } else {
                        "; pass --allow-gaps to accept a result without those transactions"
                    }
                ));
            }
            if c.backward
                && let Some(t) = tainted
                    .iter()
                    .find(|t| s.table.matched_by(&t.table) && t.since_us <= hi)
            {
                c.fail(format!(
                    "the coverage of {} is tainted since {}: {}",
                    s.table,
                    rfc3339_micros(t.since_us),
                    t.reason
                ));
            }
            if c.backward && cascading && derivable.any_in(window.cut, window.end.max(next_event)) {
                c.fail(
                    "its foreign-key cascades were not logged by the server, and a backward \
                     restore cannot un-derive them"
                        .into(),
                );
            }
            let n = match (s.id, c.bad.is_none()) {
                (Some(id), true) if window.cut < window.end || c.image.is_none() => {
                    let to = if c.image.is_none() {
                        next_event
                    } else {
                        window.end
                    };
                    log.count_table_changes(
                        id,
                        window.since_us,
                        if c.image.is_none() {
                            i64::MAX
                        } else {
                            window.until_us
                        },
                        window.cut..to.max(window.cut),
                    )
                    .map_err(|e| Refused(e.to_string()))?
                }
                _ => 0,
            };
            let option = ImageOption {
                image: c.image.map_or("live".into(), |ix| image_name(&images[ix])),
                direction: if c.backward { "backward" } else { "forward" }.into(),
                events: n,
                unusable: c.bad.clone(),
            };
            if c.bad.is_none() && !c.backward && req.allow_gaps {
                gaps_used.extend(gaps.into_iter().cloned());
            }
            options.push((c, window, n, option));
        }
        // The usable option with the least work: a stored image costs its events; the live
        // table also costs the rows its snapshot reads (the table's size in its images).
        // Forward, then stored images, on a tie.
        let rows = options
            .iter()
            .filter_map(|o| o.0.image)
            .filter_map(|ix| images[ix].table(&s.table).map(|e| e.rows))
            .max()
            .unwrap_or(0);
        let best = options
            .iter()
            .enumerate()
            .filter(|(_, o)| o.0.bad.is_none())
            .min_by_key(|(_, o)| {
                let cost = if o.0.image.is_none() && mode != ImageMode::Live {
                    o.2.saturating_add(rows).saturating_add(LIVE_OVERHEAD)
                } else {
                    o.2
                };
                (cost, o.0.backward, o.0.image.is_none())
            })
            .map(|(i, _)| i);
        let Some(best) = best else {
            let why: Vec<String> = options
                .iter()
                .map(|o| {
                    format!(
                        "{} {}: {}",
                        o.3.image,
                        o.3.direction,
                        o.3.unusable.as_deref().unwrap_or("usable")
                    )
                })
                .collect();
            refuse!(
                "{} has no usable image for {target_text}{}; capture takes a table image after \
                 each DDL (see `dbtrailctl coverage`), or take a baseline with `dbtrailctl \
                 backup`",
                s.table,
                if why.is_empty() {
                    " (none was found)".to_string()
                } else {
                    format!(" ({})", why.join("; "))
                }
            );
        };
        let (c, window, n, chosen) = options.remove(best);
        let image = match c.image {
            Some(ix) => {
                let entry = images[ix].table(&s.table).cloned().ok_or_else(|| {
                    Refused(format!(
                        "internal error: {} lost {}",
                        images[ix].id, s.table
                    ))
                })?;
                Some((images[ix].id.clone(), entry))
            }
            None => None,
        };
        views.push(TableImagePlan {
            table: s.table.to_string(),
            chosen,
            alternatives: options.into_iter().map(|o| o.3).collect(),
        });
        tables.push(TablePlan {
            table: s.table,
            table_id: s.id,
            image,
            backward: c.backward,
            window,
            events: n,
        });
    }
    let not_in_baseline: Vec<String> = known
        .into_iter()
        .filter(|(_, t)| baseline.table(t).is_none() && !requested.contains(t))
        .map(|(_, t)| t.to_string())
        .collect();
    gaps_used.sort_by(|a, b| a.missing.cmp(&b.missing));
    gaps_used.dedup();
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
        gaps: gaps_used.into_iter().map(gap_view).collect(),
        tainted_tables: tainted.into_iter().map(taint_view).collect(),
        not_in_baseline,
        cascades: Vec::new(),
        images: views,
        objects: Vec::new(),
    };
    Ok(Plan {
        view,
        baseline,
        tables,
        anchor_window,
        last,
        keys_in_memory: ctx.keys_in_memory.max(1),
        ddls,
    })
}

/// The tables that exist at the target, for a restore of everything: the anchor's, then the
/// DDLs after it up to the target applied in log order (CREATE adds a table, DROP and DROP
/// DATABASE remove, RENAME moves the name). A statement the classifier does not understand
/// changes nothing here; each table's own check then refuses an image across it.
fn tables_at_target(
    catalog: &dyn Catalog,
    anchor: &BaselineManifest,
    included: &dyn Fn(&TxnInfo) -> bool,
) -> Result<Vec<TableRef>, Refused> {
    use dbtrail_core::ddl::{Ddl, DdlEffect, classify_recorded};
    // The anchor's skipped tables exist too: a restore of everything must name them (an
    // image of them is used, or the restore is refused), never leave them out silently.
    let mut set: std::collections::BTreeSet<TableRef> = anchor
        .tables
        .iter()
        .map(|t| t.table.clone())
        .chain(anchor.skipped.iter().map(|t| t.table.clone()))
        .collect();
    catalog.scan_txns(&mut |t| {
        if !included(&t) {
            return false;
        }
        if t.held_by(&anchor.position) {
            return true;
        }
        if let Some(text) = &t.ddl
            && let Ddl::Tables(effects) = classify_recorded(text)
        {
            for e in effects {
                match e {
                    DdlEffect::Create { table, .. } => {
                        set.insert(table);
                    }
                    DdlEffect::Drop(table) => {
                        set.remove(&table);
                    }
                    DdlEffect::Rename { from, to } => {
                        set.remove(&from);
                        set.insert(to);
                    }
                    DdlEffect::DropDatabase(db) => set.retain(|t| t.db != db),
                    DdlEffect::Alter(_) | DdlEffect::Truncate(_) => {}
                }
            }
        }
        true
    })?;
    Ok(set.into_iter().collect())
}

/// The table's newest schema version.
fn newest_schema(
    log: &dyn ChangeLog,
    id: u32,
) -> Result<Option<dbtrail_core::TableSchema>, Refused> {
    let mut v = 1;
    let mut newest = None;
    while let Some(s) = log.schema(id, v)? {
        newest = Some(s);
        v += 1;
    }
    Ok(newest)
}

/// Whether some schema version of the table has a cascading foreign key.
fn has_cascading_parents(log: &dyn ChangeLog, id: u32) -> Result<bool, Refused> {
    let mut v = 1;
    while let Some(s) = log.schema(id, v)? {
        if !cascading_parents(&s).is_empty() {
            return Ok(true);
        }
        v += 1;
    }
    Ok(false)
}

#[cfg(test)]
pub(crate) mod tests;
