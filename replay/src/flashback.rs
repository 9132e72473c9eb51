//! Undoing a time window (flashback): the reverse SQL of every selected row change of the
//! window, newest first, after the checks of [`crate::undo`] generalised to many
//! transactions.
//!
//! **Selection.** A change is selected when its transaction committed in
//! `since_us ..= until_us` and it passes every filter given: its table, its kind, its key
//! (either image has one of the given keys), its transaction (one of the given GTIDs). DDL
//! transactions of the window have no row changes and are skipped.
//!
//! **Order.** The undo of change `c` must run on the table as `c` left it. Undoing the
//! selected changes in reverse log order gives that for every key whose changes after its
//! first selected change are all selected: when the undo of `c` runs, every later change to
//! its key has been undone already (newest first), so the row is as `c` left it. Batches
//! (`batch_rows`) only cut that sequence into transactions; applying them in file order
//! keeps the order.
//!
//! **Conflict rule** (docs/correctness.md, C23). A change *not* selected (after the window,
//! or inside it but filtered out) that touches a key a selected change touches, at an event
//! id after the *first* selected change of that key, is a conflict: the undo would run on a
//! row that change wrote and overwrite it (or fail on it). A non-selected change before the
//! first selected change is not one: it is part of the state the undo goes back to. For a
//! table without a primary key rows are only told apart by all their columns, so any
//! non-selected change of the table after its first selected change conflicts. Conflicts are
//! refused ([`UndoRefused::Conflict`], the first [`MAX_CONFLICTS`] named with the count),
//! returned as warnings (`Force`), or left alone (`Skip`): every selected change of a
//! conflicting key is dropped (of the whole table, for a key-less one), and with it every
//! selected change of a key it is linked to by a selected re-keying update (the undo of
//! that update moves the row between both keys), transitively. What remains satisfies the
//! premise of the order argument.
//!
//! **Schemas.** The SQL names the columns of each change's schema version. When a selected
//! table's schema changed after its first selected change (a newer schema version was
//! logged, or a DDL statement that may change it was), the undo is refused.
//!
//! **Cascades.** As for one transaction ([`crate::undo::blocker`]): if a selected change
//! deleted or re-keyed a parent row of a cascading foreign key where the server did not log
//! the child rows, the undo is refused with the restore that derives them. Deriving those
//! child rows into the undo is not done here.
//!
//! **Memory.** Pass 1 ([`prepare`]) reads the transactions once (keeping the window's bounds,
//! its GTID ranges, one chunk boundary per [`CHUNK_EVENTS`] events and the DDL statements
//! after it) and each selected table's changes from the window's start on, keeping one entry
//! per distinct key a selected change touches (its bytes, a link and two counters), the
//! first [`MAX_CONFLICTS`] conflicts, and at most [`BLOCKER_BATCH`] changes for the cascade
//! check. Pass 2 ([`Plan::write`]) reads the window again by chunks of about
//! [`CHUNK_EVENTS`] events, newest chunk first (commit-time ranges; one transaction larger
//! than a chunk is split by event-id ranges), holding one chunk's selected changes to
//! reverse them. Nothing grows with the number of changes but the key set.
use crate::fold::key_bytes;
use crate::keys::{Key, KeySpec, describe_row_key};
use crate::plan::ddl_touches;
use crate::undo::{MAX_CONFLICTS, UndoRefused, blocker};
use dbtrail_core::api::{UndoWindowRequest, UndoWindowSummary};
use dbtrail_core::history::{Catalog, ChangeLog, LoggedChange, TxnInfo};
use dbtrail_core::render::rfc3339_micros;
use dbtrail_core::time::parse_time;
use dbtrail_core::{ForeignKey, Gtid, RowChange, TableRef, TableSchema};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

/// Events read per chunk of pass 2 (about).
pub const CHUNK_EVENTS: u64 = 50_000;
/// Changes held for one cascade check of pass 1.
pub const BLOCKER_BATCH: usize = 10_000;

/// What to do about conflicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnConflict {
    /// Refuse the undo (HTTP 409).
    Refuse,
    /// Give the script, the conflicts as warnings.
    Force,
    /// Leave the conflicting keys alone.
    Skip,
}

/// A validated window undo request.
#[derive(Clone, Debug)]
pub struct Window {
    /// First microsecond of the window.
    pub since_us: i64,
    /// Last microsecond (inclusive).
    pub until_us: i64,
    /// Tables; empty: every table changed in the window.
    pub tables: Vec<TableRef>,
    /// Kinds undone: insert, update, delete.
    pub kinds: [bool; 3],
    /// Keys of the one table in `tables`; empty: every row.
    pub keys: Vec<KeySpec>,
    /// Transactions; empty: all of the window.
    pub gtids: Vec<Gtid>,
    /// Statements per transaction of the script; 0: one transaction.
    pub batch_rows: usize,
    /// Conflicts refused, forced or skipped.
    pub on_conflict: OnConflict,
}

fn kind_index(c: &RowChange) -> usize {
    match c {
        RowChange::Insert { .. } => 0,
        RowChange::Update { .. } => 1,
        RowChange::Delete { .. } => 2,
    }
}

impl Window {
    /// Reads an API request; every error names the problem and the fix (HTTP 400).
    pub fn from_request(req: &UndoWindowRequest) -> Result<Window, UndoRefused> {
        let bad = UndoRefused::Bad;
        let since = parse_time(&req.since).map_err(|e| bad(format!("since: {e}")))?;
        let until = parse_time(&req.until).map_err(|e| bad(format!("until: {e}")))?;
        let (since_us, until_us) = (since.micros, until.end_inclusive());
        if since_us > until_us {
            return Err(bad(format!(
                "the window starts after it ends: since {} ({}) is later than until {} ({}); \
                 swap them",
                req.since,
                rfc3339_micros(since_us),
                req.until,
                rfc3339_micros(until_us)
            )));
        }
        let mut tables = Vec::new();
        for t in &req.tables {
            let t: TableRef = t.trim().parse().map_err(|_| {
                bad(format!(
                    "bad table name {t:?}: expected db.table, e.g. shop.orders"
                ))
            })?;
            if !tables.contains(&t) {
                tables.push(t);
            }
        }
        let mut kinds = [req.kinds.is_empty(); 3];
        for k in &req.kinds {
            match k.trim().to_ascii_lowercase().as_str() {
                "insert" => kinds[0] = true,
                "update" => kinds[1] = true,
                "delete" => kinds[2] = true,
                other => {
                    return Err(bad(format!(
                        "unknown change kind {other:?}: expected insert, update or delete \
                         (comma-separated)"
                    )));
                }
            }
        }
        let keys = req
            .keys
            .iter()
            .map(|k| KeySpec::parse(k).map_err(bad))
            .collect::<Result<Vec<_>, _>>()?;
        if !keys.is_empty() && tables.len() != 1 {
            return Err(bad(format!(
                "keys name rows of one table: give exactly one table with them (--tables \
                 db.t), not {}",
                tables.len()
            )));
        }
        let gtids = req
            .gtids
            .iter()
            .map(|g| {
                g.trim()
                    .parse::<Gtid>()
                    .map_err(|e| bad(format!("bad gtid {g:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if req.force && req.skip_conflicts {
            return Err(bad(
                "force and skip_conflicts exclude each other: --force undoes the conflicting \
                 keys anyway, --skip-conflicts leaves them alone; pass one"
                    .into(),
            ));
        }
        let batch_rows = match req.batch_rows {
            None => 0,
            Some(0) => {
                return Err(bad(
                    "batch_rows must be at least 1 (or left out for one transaction)".into(),
                ));
            }
            Some(n) => n,
        };
        Ok(Window {
            since_us,
            until_us,
            tables,
            kinds,
            keys,
            gtids,
            batch_rows,
            on_conflict: if req.force {
                OnConflict::Force
            } else if req.skip_conflicts {
                OnConflict::Skip
            } else {
                OnConflict::Refuse
            },
        })
    }
}

/// One chunk of pass 2: a commit-time range and an event-id range.
#[derive(Clone, Debug, PartialEq)]
struct Chunk {
    since_us: i64,
    until_us: i64,
    ids: Range<u64>,
}

/// The keys a table's selected changes touch (pass 1), as a union-find over key indexes:
/// a selected re-keying update links its two keys.
#[derive(Default)]
struct KeySet {
    index: HashMap<Vec<u8>, u32>,
    parent: Vec<u32>,
    /// Selected changes per key (counted once, at the change's first key).
    statements: Vec<u32>,
    conflicting: Vec<bool>,
    /// Per root after [`KeySet::settle`]: left alone.
    skipped: Vec<bool>,
}

impl KeySet {
    fn get(&self, k: &[u8]) -> Option<u32> {
        self.index.get(k).copied()
    }
    fn add(&mut self, k: Vec<u8>) -> u32 {
        let n = self.parent.len() as u32;
        *self.index.entry(k).or_insert_with(|| {
            self.parent.push(n);
            self.statements.push(0);
            self.conflicting.push(false);
            n
        })
    }
    fn find(&mut self, mut i: u32) -> u32 {
        while self.parent[i as usize] != i {
            let p = self.parent[i as usize];
            self.parent[i as usize] = self.parent[p as usize];
            i = p;
        }
        i
    }
    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[rb as usize] = ra;
        }
    }
    /// Marks every root with a conflicting member as left alone; returns (keys left alone,
    /// their selected changes).
    fn settle(&mut self) -> (u64, u64) {
        self.skipped = vec![false; self.parent.len()];
        for i in 0..self.parent.len() as u32 {
            if self.conflicting[i as usize] {
                let r = self.find(i);
                self.skipped[r as usize] = true;
            }
        }
        let (mut keys, mut stmts) = (0, 0);
        for i in 0..self.parent.len() as u32 {
            let r = self.find(i);
            if self.skipped[r as usize] {
                keys += 1;
                stmts += u64::from(self.statements[i as usize]);
            }
        }
        (keys, stmts)
    }
    fn left_alone(&mut self, k: &[u8]) -> bool {
        match self.get(k) {
            Some(i) => {
                let r = self.find(i);
                self.skipped.get(r as usize).copied().unwrap_or(false)
            }
            None => false,
        }
    }
}

/// One selected table.
struct Sel {
    id: u32,
    table: TableRef,
    /// Newest logged schema version.
    newest: u32,
    schemas: HashMap<u32, Arc<TableSchema>>,
    /// Keys resolved per schema version (empty: no key filter).
    keys: HashMap<u32, Vec<Key>>,
    set: KeySet,
    /// Key-less table: its first selected change (event id, commit time).
    first: Option<(u64, i64)>,
    /// Key-less table conflicting (left alone with `Skip`).
    table_conflict: bool,
    statements: u64,
}

impl Sel {
    fn schema(
        &mut self,
        log: &dyn ChangeLog,
        version: u32,
    ) -> Result<Arc<TableSchema>, UndoRefused> {
        if let Some(s) = self.schemas.get(&version) {
            return Ok(s.clone());
        }
        let s = Arc::new(log.schema(self.id, version)?.ok_or_else(|| {
            UndoRefused::Internal(format!(
                "schema version {version} of {} missing from the log",
                self.table
            ))
        })?);
        self.schemas.insert(version, s.clone());
        Ok(s)
    }
}

/// What pass 1 found: everything pass 2 needs to write the script.
pub struct Plan {
    window: Window,
    chunks: Vec<Chunk>,
    /// Event-id ranges of the selected transactions (empty: no GTID filter), ascending.
    txn_ranges: Vec<Range<u64>>,
    sels: Vec<Sel>,
    key_specs: Vec<KeySpec>,
    /// The summary (written as the script's header).
    pub summary: UndoWindowSummary,
}

fn keys_of(schema: &TableSchema, c: &RowChange) -> (Vec<u8>, Option<Vec<u8>>) {
    let pk = &schema.primary_key;
    match c {
        RowChange::Insert { after } => (key_bytes(pk, after), None),
        RowChange::Delete { before } => (key_bytes(pk, before), None),
        RowChange::Update { before, after } => {
            let (b, a) = (key_bytes(pk, before), key_bytes(pk, after));
            if a == b { (b, None) } else { (b, Some(a)) }
        }
    }
}

fn images(c: &RowChange) -> (&[dbtrail_core::Value], Option<&[dbtrail_core::Value]>) {
    match c {
        RowChange::Insert { after } => (after, None),
        RowChange::Delete { before } => (before, None),
        RowChange::Update { before, after } => (before, Some(after)),
    }
}

fn describe_change(ev: &LoggedChange) -> String {
    format!(
        "{} at {} ({})",
        ev.change.kind(),
        rfc3339_micros(ev.commit_us),
        ev.gtid
            .as_ref()
            .map(|g| g.to_string())
            .unwrap_or_else(|| format!("event {}", ev.event_id))
    )
}

/// Whether `ev` (of `sel`, decoded with `schema`) is selected, the window's time aside.
fn selected(
    window: &Window,
    txn_ranges: &[Range<u64>],
    specs: &[KeySpec],
    sel: &mut Sel,
    schema: &TableSchema,
    ev: &LoggedChange,
) -> Result<bool, UndoRefused> {
    if ev.commit_us < window.since_us || ev.commit_us > window.until_us {
        return Ok(false);
    }
    if !window.kinds[kind_index(&ev.change)] {
        return Ok(false);
    }
    if !txn_ranges.is_empty() {
        let i = txn_ranges.partition_point(|r| r.end <= ev.event_id);
        if !txn_ranges.get(i).is_some_and(|r| r.contains(&ev.event_id)) {
            return Ok(false);
        }
    }
    if !specs.is_empty() {
        if !sel.keys.contains_key(&ev.schema_version) {
            let keys = specs
                .iter()
                .map(|k| k.resolve(schema))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    UndoRefused::Bad(format!(
                        "{e} (the key is read with the schema of {} at {})",
                        sel.table,
                        rfc3339_micros(ev.commit_us)
                    ))
                })?;
            sel.keys.insert(ev.schema_version, keys);
        }
        let keys = &sel.keys[&ev.schema_version];
        let (a, b) = images(&ev.change);
        if !keys
            .iter()
            .any(|k| k.matches(a) || b.is_some_and(|b| k.matches(b)))
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Pass 1 (module doc): validates the window against the log, collects the selected keys and
/// the conflicts, and checks schemas and cascades. `cascading_keys` gives every known
/// cascading foreign key of the source (asked once, when a selected change may need it).
pub fn prepare(
    catalog: &dyn Catalog,
    log: &dyn ChangeLog,
    window: Window,
    cascading_keys: &mut dyn FnMut() -> Result<Vec<(TableRef, ForeignKey)>, String>,
) -> Result<Plan, UndoRefused> {
    let span = format!(
        "{} .. {}",
        rfc3339_micros(window.since_us),
        rfc3339_micros(window.until_us)
    );
    // The transactions: window bounds, GTID ranges, chunk boundaries, tables, later DDL.
    let names: HashMap<u32, TableRef> = catalog.tables()?.into_iter().collect();
    let mut window_ids: Option<Range<u64>> = None;
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut cur: Option<(i64, i64, Range<u64>, u64)> = None;
    let mut ddls: Vec<(i64, String)> = Vec::new();
    let mut touched: Vec<u32> = Vec::new();
    let mut txn_ranges: Vec<Range<u64>> = Vec::new();
    let mut found = vec![false; window.gtids.len()];
    let close = |chunks: &mut Vec<Chunk>, (a, b, ids, n): (i64, i64, Range<u64>, u64)| {
        if n > 2 * CHUNK_EVENTS {
            let mut s = ids.start;
            while s < ids.end {
                let e = (s + CHUNK_EVENTS).min(ids.end);
                chunks.push(Chunk {
                    since_us: a,
                    until_us: b,
                    ids: s..e,
                });
                s = e;
            }
        } else if n > 0 {
            chunks.push(Chunk {
                since_us: a,
                until_us: b,
                ids,
            });
        }
    };
    catalog.scan_txns(&mut |t: TxnInfo| {
        if t.commit_us < window.since_us {
            return true;
        }
        if let Some(d) = &t.ddl {
            ddls.push((t.commit_us, d.clone()));
        }
        if t.commit_us > window.until_us || t.event_count == 0 {
            return true;
        }
        let end = t.first_event_id + t.event_count;
        let w = window_ids.get_or_insert(t.first_event_id..end);
        w.end = end;
        for id in &t.tables {
            if !touched.contains(id) {
                touched.push(*id);
            }
        }
        if let Some(g) = &t.gtid
            && let Some(i) = window.gtids.iter().position(|x| x == g)
        {
            found[i] = true;
            txn_ranges.push(t.first_event_id..end);
        }
        match &mut cur {
            Some((_, b, ids, n)) if *n < CHUNK_EVENTS || t.commit_us == *b => {
                *b = t.commit_us;
                ids.end = end;
                *n += t.event_count;
            }
            _ => {
                if let Some((a, _, ids, n)) = cur.take() {
                    // The chunk ends just before this commit time (times are monotonic).
                    close(&mut chunks, (a, t.commit_us - 1, ids, n));
                }
                cur = Some((
                    t.commit_us,
                    t.commit_us,
                    t.first_event_id..end,
                    t.event_count,
                ));
            }
        }
        true
    })?;
    if let Some(c) = cur.take() {
        let c = (c.0, window.until_us, c.2, c.3);
        close(&mut chunks, c);
    }
    if let Some(c) = chunks.first_mut() {
        c.since_us = window.since_us;
    }
    for (i, g) in window.gtids.iter().enumerate() {
        if !found[i] {
            return Err(match catalog.txn_by_gtid(g)? {
                None => UndoRefused::NotFound(format!("transaction {g} is not in the log")),
                Some(t) if t.ddl.is_some() => UndoRefused::Bad(format!(
                    "transaction {g} is a statement; only row changes can be undone"
                )),
                Some(t) => UndoRefused::Bad(format!(
                    "transaction {g} committed at {}, outside the window {span}; widen the \
                     window or leave it out",
                    rfc3339_micros(t.commit_us)
                )),
            });
        }
    }
    txn_ranges.sort_by_key(|r| r.start);
    // The tables.
    let ids: Vec<(u32, TableRef)> = if window.tables.is_empty() {
        let mut v: Vec<(u32, TableRef)> = touched
            .iter()
            .map(|id| {
                names.get(id).cloned().map(|t| (*id, t)).ok_or_else(|| {
                    UndoRefused::Internal(format!("table id {id} missing from the catalog"))
                })
            })
            .collect::<Result<_, _>>()?;
        v.sort_by_key(|t| t.1.to_string());
        v
    } else {
        let mut v = Vec::new();
        for t in &window.tables {
            match log.table_id(t)? {
                Some(id) => v.push((id, t.clone())),
                None => {
                    return Err(UndoRefused::NotFound(format!(
                        "table {t} is not in the log (no change of it was ever captured); \
                         check the name"
                    )));
                }
            }
        }
        v
    };
    let mut sels = Vec::new();
    for (id, table) in ids {
        let mut newest = 0;
        while log.schema(id, newest + 1)?.is_some() {
            newest += 1;
        }
        let mut sel = Sel {
            id,
            table,
            newest,
            schemas: HashMap::new(),
            keys: HashMap::new(),
            set: KeySet::default(),
            first: None,
            table_conflict: false,
            statements: 0,
        };
        // Keys are checked against the newest schema up front, so a bad key is a 400 even
        // when the window holds no change of the table.
        if !window.keys.is_empty() && newest > 0 {
            let s = sel.schema(log, newest)?;
            for k in &window.keys {
                k.resolve(&s).map_err(UndoRefused::Bad)?;
            }
        }
        sels.push(sel);
    }
    let mut summary = UndoWindowSummary {
        since: rfc3339_micros(window.since_us),
        until: rfc3339_micros(window.until_us),
        ..UndoWindowSummary::default()
    };
    let mut fks: Option<Vec<(TableRef, ForeignKey)>> = None;
    let mut pending: Vec<(u64, TableSchema, RowChange)> = Vec::new();
    let check = |pending: &mut Vec<(u64, TableSchema, RowChange)>,
                 fks: &mut Option<Vec<(TableRef, ForeignKey)>>,
                 cascading_keys: &mut dyn FnMut()
        -> Result<Vec<(TableRef, ForeignKey)>, String>|
     -> Result<(), UndoRefused> {
        if pending.is_empty() {
            return Ok(());
        }
        if fks.is_none() {
            *fks = Some(cascading_keys().map_err(UndoRefused::Internal)?);
        }
        let why = blocker(log, fks.as_deref().unwrap_or(&[]), pending)?;
        pending.clear();
        match why {
            None => Ok(()),
            Some(why) => Err(UndoRefused::Bad(format!(
                "the window {span} cannot be undone row by row: {why}. Restore the affected \
                 tables as they were just before it with `dbtrailctl pitr --tables ... --at \
                 '{}'` (the restore derives the cascaded rows) instead",
                rfc3339_micros(window.since_us - 1)
            ))),
        }
    };
    if let Some(wids) = &window_ids {
        for sel in &mut sels {
            let mut err: Option<UndoRefused> = None;
            let from = wids.start;
            let mut first_commit: Option<i64> = None;
            log.scan_table(
                sel.id,
                window.since_us,
                i64::MAX,
                from..u64::MAX,
                &mut |ev| {
                    let r = (|| -> Result<(), UndoRefused> {
                        let schema = sel.schema(log, ev.schema_version)?;
                        let keyed = schema.has_primary_key();
                        if selected(&window, &txn_ranges, &window.keys, sel, &schema, &ev)? {
                            if ev.schema_version != sel.newest {
                                return Err(UndoRefused::Bad(format!(
                                    "{}'s schema changed after the change {} this undo would \
                                     reverse (schema version {} then, {} now): the undo SQL \
                                     would name columns as they were then. Restore the table \
                                     as it was with `dbtrailctl pitr --tables {} --at '{}'` \
                                     instead",
                                    sel.table,
                                    describe_change(&ev),
                                    ev.schema_version,
                                    sel.newest,
                                    sel.table,
                                    rfc3339_micros(window.since_us - 1)
                                )));
                            }
                            first_commit.get_or_insert(ev.commit_us);
                            sel.statements += 1;
                            if keyed {
                                let (a, b) = keys_of(&schema, &ev.change);
                                let ia = sel.set.add(a);
                                sel.set.statements[ia as usize] += 1;
                                if let Some(b) = b {
                                    let ib = sel.set.add(b);
                                    sel.set.union(ia, ib);
                                }
                            } else if sel.first.is_none() {
                                sel.first = Some((ev.event_id, ev.commit_us));
                            }
                            if !matches!(ev.change, RowChange::Insert { .. }) {
                                if fks.is_none() {
                                    fks = Some(cascading_keys().map_err(UndoRefused::Internal)?);
                                }
                                // Only a parent of a cascading key can block (blocker).
                                if fks
                                    .as_deref()
                                    .unwrap_or(&[])
                                    .iter()
                                    .any(|(_, fk)| fk.parent == sel.table)
                                {
                                    pending.push((ev.event_id, (*schema).clone(), ev.change));
                                }
                                if pending.len() >= BLOCKER_BATCH {
                                    check(&mut pending, &mut fks, cascading_keys)?;
                                }
                            }
                        } else {
                            // Which image touches a selected key (None: no conflict).
                            let hit: Option<&[dbtrail_core::Value]> = if keyed {
                                let (a, b) = keys_of(&schema, &ev.change);
                                let ia = sel.set.get(&a);
                                let ib = b.and_then(|b| sel.set.get(&b));
                                for i in [ia, ib].into_iter().flatten() {
                                    sel.set.conflicting[i as usize] = true;
                                }
                                let (before, after) = images(&ev.change);
                                match (ia, ib) {
                                    (Some(_), _) => Some(before),
                                    (None, Some(_)) => after,
                                    (None, None) => None,
                                }
                            } else if sel.first.is_some() {
                                sel.table_conflict = true;
                                Some(images(&ev.change).0)
                            } else {
                                None
                            };
                            if let Some(img) = hit {
                                summary.conflict_count += 1;
                                if summary.conflicts.len() < MAX_CONFLICTS {
                                    let k = describe_row_key(&schema, img);
                                    let key = if keyed {
                                        format!("key ({k})")
                                    } else {
                                        format!("(no primary key) row ({k})")
                                    };
                                    summary.conflicts.push(format!(
                                        "{} {key}: {}",
                                        sel.table,
                                        describe_change(&ev)
                                    ));
                                }
                            }
                        }
                        Ok(())
                    })();
                    match r {
                        Ok(()) => true,
                        Err(e) => {
                            err = Some(e);
                            false
                        }
                    }
                },
            )?;
            if let Some(e) = err {
                return Err(e);
            }
            check(&mut pending, &mut fks, cascading_keys)?;
            if let Some(first) = first_commit
                && let Some((at, ddl)) = ddls
                    .iter()
                    .find(|(at, d)| *at >= first && ddl_touches(d, &sel.table))
            {
                return Err(UndoRefused::Bad(format!(
                    "{}'s schema may have changed after changes this undo would reverse: \
                     {ddl:?} at {}; the undo SQL would name columns as they were before it. \
                     Restore the table as it was with `dbtrailctl pitr --tables {} --at '{}'` \
                     instead",
                    sel.table,
                    rfc3339_micros(*at),
                    sel.table,
                    rfc3339_micros(window.since_us - 1)
                )));
            }
        }
    }
    if summary.conflict_count > 0 && window.on_conflict == OnConflict::Refuse {
        return Err(UndoRefused::Conflict(format!(
            "{} change(s) not undone touch rows the undo of {span} would change, after the \
             undone changes (undoing would overwrite them){}: {}. Inspect them with \
             `dbtrailctl events`; pass --force to get the script anyway, or --skip-conflicts \
             to leave those keys alone and undo the rest",
            summary.conflict_count,
            if summary.conflict_count as usize > summary.conflicts.len() {
                format!("; the first {}", summary.conflicts.len())
            } else {
                String::new()
            },
            summary.conflicts.join("; ")
        )));
    }
    let skip = window.on_conflict == OnConflict::Skip;
    for sel in &mut sels {
        if !skip {
            sel.set.skipped = vec![false; sel.set.parent.len()];
        } else if sel.table_conflict {
            summary.skipped_key_count += 1;
            summary.skipped_statements += sel.statements;
            sel.statements = 0;
            if summary.skipped_keys.len() < MAX_CONFLICTS {
                summary
                    .skipped_keys
                    .push(format!("{} (no primary key: the whole table)", sel.table));
            }
        } else {
            let (keys, stmts) = sel.set.settle();
            summary.skipped_key_count += keys;
            summary.skipped_statements += stmts;
            sel.statements -= stmts;
        }
        if sel.statements > 0 {
            summary.tables.push(sel.table.to_string());
        }
        summary.statements += sel.statements;
    }
    if skip {
        // Name the keys left alone: the conflicting ones are named by the conflicts; the
        // keys linked to them only counted. Describe them from the conflicts' text.
        for c in &summary.conflicts {
            if let Some((k, _)) = c.split_once(": ")
                && !summary.skipped_keys.iter().any(|s| s == k)
                && summary.skipped_keys.len() < MAX_CONFLICTS
                && !k.contains("(no primary key)")
            {
                summary.skipped_keys.push(k.to_string());
            }
        }
    }
    summary.batches = match (window.batch_rows, summary.statements) {
        (_, 0) | (0, _) => 1,
        (n, s) => s.div_ceil(n as u64),
    };
    Ok(Plan {
        key_specs: window.keys.clone(),
        window,
        chunks,
        txn_ranges,
        sels,
        summary,
    })
}

impl Plan {
    /// Visits the statements of the script newest first: each selected change not left
    /// alone, with its schema (pass 2, module doc).
    pub fn visit(
        &mut self,
        log: &dyn ChangeLog,
        f: &mut dyn FnMut(&TableSchema, &RowChange) -> Result<(), String>,
    ) -> Result<(), UndoRefused> {
        let skip = self.window.on_conflict == OnConflict::Skip;
        for chunk in self.chunks.iter().rev() {
            let mut held: Vec<(u64, Arc<TableSchema>, RowChange)> = Vec::new();
            for sel in self.sels.iter_mut() {
                if sel.statements == 0 {
                    continue;
                }
                let mut err = None;
                log.scan_table(
                    sel.id,
                    chunk.since_us,
                    chunk.until_us,
                    chunk.ids.clone(),
                    &mut |ev| {
                        let r = (|| -> Result<(), UndoRefused> {
                            let schema = sel.schema(log, ev.schema_version)?;
                            if !selected(
                                &self.window,
                                &self.txn_ranges,
                                &self.key_specs,
                                sel,
                                &schema,
                                &ev,
                            )? {
                                return Ok(());
                            }
                            if skip && schema.has_primary_key() {
                                let (a, _) = keys_of(&schema, &ev.change);
                                if sel.set.left_alone(&a) {
                                    return Ok(());
                                }
                            }
                            held.push((ev.event_id, schema, ev.change));
                            Ok(())
                        })();
                        match r {
                            Ok(()) => true,
                            Err(e) => {
                                err = Some(e);
                                false
                            }
                        }
                    },
                )?;
                if let Some(e) = err {
                    return Err(e);
                }
            }
            held.sort_by_key(|h| std::cmp::Reverse(h.0));
            for (_, schema, change) in &held {
                f(schema, change).map_err(UndoRefused::Internal)?;
            }
        }
        Ok(())
    }

    /// The script's header comment lines (window, counts, tables, warnings, keys left alone).
    fn title(&self) -> String {
        let s = &self.summary;
        let mut t = format!(
            "Undo of the window {} .. {}: {} row change(s) of {}, newest first, in {} \
             transaction(s).",
            s.since,
            s.until,
            s.statements,
            if s.tables.is_empty() {
                "no table".to_string()
            } else {
                s.tables.join(", ")
            },
            s.batches
        );
        if s.batches > 1 {
            t.push_str(&format!(
                "\nIn batches of {} statements, each committed on its own: a ROLLBACK undoes only \
                 its batch; the batches before it stay applied.",
                self.window.batch_rows
            ));
        }
        if self.window.on_conflict == OnConflict::Force {
            for c in &s.conflicts {
                t.push_str(&format!("\nwarning: overwrites a change not undone: {c}"));
            }
            if s.conflict_count as usize > s.conflicts.len() {
                t.push_str(&format!("\nwarning: {} conflicts in all", s.conflict_count));
            }
        }
        if self.window.on_conflict == OnConflict::Skip && s.skipped_key_count > 0 {
            t.push_str(&format!(
                "\nLeft alone ({} key(s), {} change(s) not undone: changes not undone touch \
                 them later):",
                s.skipped_key_count, s.skipped_statements
            ));
            for k in &s.skipped_keys {
                t.push_str(&format!("\nleft alone: {k}"));
            }
            for c in &s.conflicts {
                t.push_str(&format!("\nbecause of: {c}"));
            }
        }
        t
    }

    /// Pass 2: writes the script to `out` (module doc), flushing it every statement batch
    /// of about 64 KiB.
    pub fn write(
        &mut self,
        log: &dyn ChangeLog,
        out: &mut dyn std::io::Write,
    ) -> Result<(), UndoRefused> {
        let io = |e: std::io::Error| e.to_string();
        let mut buf = Vec::with_capacity(1 << 16);
        crate::reverse::script_header(
            &mut buf,
            &self.title(),
            "Each statement is followed by the rows it must affect (`-- expect N row`); if one\n\
             affects a different count, ROLLBACK: the table no longer holds what the window left.",
        );
        buf.extend_from_slice(b"START TRANSACTION;\n");
        let batch = self.window.batch_rows;
        let mut n = 0usize;
        self.visit(log, &mut |schema, change| {
            if batch > 0 && n > 0 && n.is_multiple_of(batch) {
                buf.extend_from_slice(b"COMMIT;\nSTART TRANSACTION;\n");
            }
            n += 1;
            crate::reverse::undo_change(&mut buf, schema, change);
            buf.pop();
            let noop = matches!(change, RowChange::Update { before, after }
                if dbtrail_core::codec::encode(before) == dbtrail_core::codec::encode(after));
            buf.extend_from_slice(if noop {
                b" -- expect 0 rows\n".as_slice()
            } else {
                b" -- expect 1 row\n".as_slice()
            });
            if buf.len() >= 1 << 16 {
                out.write_all(&buf).map_err(io)?;
                buf.clear();
            }
            Ok(())
        })?;
        buf.extend_from_slice(b"COMMIT;\n");
        out.write_all(&buf)
            .and_then(|()| out.flush())
            .map_err(|e| UndoRefused::Internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests;
