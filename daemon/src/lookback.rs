//! Looking back without a restore, over the API: a table's rows at a moment (whole, or one
//! key read by key), the net change between two moments, and every version of one row
//! (`dbtrail_replay::lookback` has the rules and why they are exact).
//!
//! A look back is planned like a restore of the one table (`crate::pitr::plan_stored`: the
//! same target rule, gaps, taints and images, forward or backward) but only from stored
//! images: it never takes a lock or an image on the source. Diffs and histories read the log
//! alone; a window that the log does not cover entirely (before it begins, past what capture
//! has made durable, across a gap, or a tainted table) is refused, never answered partly.
use crate::apierror::ApiError;
use crate::source::Source;
use crate::tasks::SourceTasks;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use dbtrail_core::api::{
    ColumnChange, DiffResponse, DiffRow, HistoryResponse, PitrRequest, RowsResponse, StreamEnd,
    VersionView,
};
use dbtrail_core::history::{Catalog, ChangeLog};
use dbtrail_core::render::{render_value, rfc3339_micros};
use dbtrail_core::time::parse_time;
use dbtrail_core::{Row, RowChange, TableRef, TableSchema};
use dbtrail_replay::keys::{KeySpec, describe_row_key};
use dbtrail_replay::lookback::{self, Span};
use dbtrail_replay::restore::{Output, RestoreError, RowSink, TableInput};
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Rows a JSON (not streamed) answer holds at most.
pub const MAX_JSON_ROWS: u64 = 100_000;
/// Rows, diff rows or versions answered when no limit is given.
pub const DEFAULT_LIMIT: u64 = 1_000;

fn unprocessable(message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "not_restorable",
        message: message.into(),
    }
}

fn table_of(text: &str) -> Result<TableRef, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad(format!(
            "table {text:?} is not db.table (e.g. shop.orders; quote nothing)"
        ))
    })
}

fn key_of(text: &str) -> Result<KeySpec, ApiError> {
    KeySpec::parse(text).map_err(ApiError::bad)
}

fn limit_of(limit: Option<u64>, max: u64) -> Result<u64, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT.min(max)),
        Some(0) => Err(ApiError::bad("limit must be at least 1")),
        Some(n) if n > max => Err(ApiError::bad(format!(
            "limit {n} is above {max}; ask for format=ndjson to stream more rows, or restore \
             the table with `dbtrailctl pitr --tables`"
        ))),
        Some(n) => Ok(n),
    }
}

fn render(schema: &TableSchema, row: &Row) -> Vec<serde_json::Value> {
    schema
        .columns
        .iter()
        .zip(row)
        .map(|(c, v)| render_value(c, v))
        .collect()
}

fn columns(schema: &TableSchema) -> Vec<String> {
    schema.columns.iter().map(|c| c.name.clone()).collect()
}

/// `rows` query string.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowsQuery {
    at: Option<String>,
    gtid: Option<String>,
    key: Option<String>,
    limit: Option<u64>,
    format: Option<String>,
}

/// Sends the rebuilt rows of one table, rendered, to a channel (or a vector), up to a limit.
struct Sender {
    schema: TableSchema,
    key: Option<dbtrail_replay::keys::Key>,
    limit: u64,
    sent: AtomicU64,
    full: AtomicBool,
    tx: Option<tokio::sync::mpsc::Sender<Bytes>>,
    kept: std::sync::Mutex<Vec<Vec<serde_json::Value>>>,
}

impl Sender {
    fn push(&self, row: &Row) -> Result<(), RestoreError> {
        if let Some(k) = &self.key
            && !k.matches(row)
        {
            return Ok(());
        }
        if self.sent.fetch_add(1, Ordering::SeqCst) >= self.limit {
            self.full.store(true, Ordering::SeqCst);
            return Err(RestoreError::Table {
                table: self.schema.table.clone(),
                detail: "the limit was reached".into(),
            });
        }
        let values = render(&self.schema, row);
        match &self.tx {
            Some(tx) => {
                let mut line = serde_json::to_vec(&values).unwrap_or_default();
                line.push(b'\n');
                tx.blocking_send(Bytes::from(line))
                    .map_err(|_| RestoreError::Table {
                        table: self.schema.table.clone(),
                        detail: "the client went away".into(),
                    })
            }
            None => {
                crate::util::lock(&self.kept).push(values);
                Ok(())
            }
        }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst).min(self.limit)
    }
}

struct Lane<'a>(&'a Sender);

impl RowSink for Lane<'_> {
    fn push(&mut self, row: &Row) -> Result<(), RestoreError> {
        self.0.push(row)
    }

    fn finish(self: Box<Self>) -> Result<(), RestoreError> {
        Ok(())
    }
}

impl Output for Sender {
    fn begin_table(&self, _: &TableInput, _: &TableSchema) -> Result<(), RestoreError> {
        Ok(())
    }

    fn writer(
        &self,
        _: &TableInput,
        _: &TableSchema,
        _: u32,
        _: u32,
    ) -> Result<Box<dyn RowSink + '_>, RestoreError> {
        Ok(Box::new(Lane(self)))
    }

    fn lanes(&self) -> bool {
        true
    }
}

/// The answer's header: what the plan chose.
fn header(plan: &crate::pitr::Plan, table: &TableRef, key: Option<&KeySpec>) -> RowsResponse {
    let image = match plan.tables.first() {
        Some(t) => match &t.image {
            Some((id, _)) => format!(
                "{id}, {} ({} changes)",
                if t.backward {
                    "backward: the changes after the target undone"
                } else {
                    "forward: the changes up to the target applied"
                },
                t.events
            ),
            None => "none".into(),
        },
        None => "none".into(),
    };
    RowsResponse {
        table: table.to_string(),
        target: plan.view.target.clone(),
        rule: plan.view.rule.clone(),
        image,
        key: key.map(|k| {
            k.0.iter()
                .map(|(c, _)| c.clone())
                .collect::<Vec<_>>()
                .join(", ")
        }),
        ..RowsResponse::default()
    }
}

/// `GET .../tables/{table}/rows?at=|gtid=&key=&limit=&format=json|ndjson`.
pub async fn rows(s: &SourceTasks, table: &str, q: RowsQuery) -> Result<Response, ApiError> {
    let table = table_of(table)?;
    let key = q.key.as_deref().map(key_of).transpose()?;
    let stream = match q.format.as_deref().unwrap_or("json") {
        "json" => false,
        "ndjson" => true,
        other => {
            return Err(ApiError::bad(format!(
                "unknown format {other:?}: use json (one answer, at most {MAX_JSON_ROWS} rows) \
                 or ndjson (streamed: a header line, one line per row, an end line)"
            )));
        }
    };
    let limit = if stream {
        q.limit.unwrap_or(u64::MAX)
    } else {
        limit_of(q.limit, MAX_JSON_ROWS)?
    };
    if limit == 0 {
        return Err(ApiError::bad("limit must be at least 1"));
    }
    let req = PitrRequest {
        target_time: q.at.clone(),
        target_gtid: q.gtid.clone(),
        tables: vec![table.to_string()],
        image: Some("baseline".into()),
        ..PitrRequest::default()
    };
    if req.target_time.is_none() == req.target_gtid.is_none() {
        return Err(ApiError::bad(
            "give exactly one of at (a time: YYYY-MM-DD HH:MM:SS[.ffffff] UTC, or RFC 3339) and \
             gtid (a GTID set)",
        ));
    }
    let source = s.source.clone();
    let req2 = req.clone();
    let plan = tokio::task::spawn_blocking(move || crate::pitr::plan_stored(&source, &req2))
        .await
        .map_err(ApiError::internal)?
        .map_err(|r| unprocessable(r.0))?;
    let tmp = tempfile::Builder::new()
        .prefix("lookback-")
        .tempdir_in(s.restores.tmp_dir())
        .or_else(|_| tempfile::tempdir())
        .map_err(ApiError::internal)?;
    let inputs = crate::inputs::plan_inputs(&s.source, &plan, tmp.path())
        .await
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    let mut head = header(&plan, &table, key.as_ref());
    let source = s.source.clone();
    let input = inputs
        .iter()
        .find(|i| i.requested)
        .cloned()
        .ok_or_else(|| ApiError::internal("the plan has no table"))?;
    let schema = input
        .schema()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    head.columns = columns(&schema);
    if let Some(spec) = &key {
        let resolved = spec.resolve(&schema).map_err(ApiError::bad)?;
        head.key = Some(resolved.describe(&schema));
    }
    // One key of a table whose rows do not depend on its parents: read by key.
    let by_key = match &key {
        Some(_) => {
            let (log, input2, schema2) = (source.log.clone(), input.clone(), schema.clone());
            !tokio::task::spawn_blocking(move || {
                lookback::needs_full_rebuild(&*log, &input2, &schema2)
            })
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| ApiError::internal(e.to_string()))?
        }
        None => false,
    };
    if let (true, Some(spec)) = (by_key, key.clone()) {
        let log = source.log.clone();
        let (rows, schema, st) =
            tokio::task::spawn_blocking(move || lookback::key_at(&*log, &input, &spec))
                .await
                .map_err(ApiError::internal)?
                .map_err(|e| unprocessable(e.to_string()))?;
        drop(tmp);
        head.read = format!(
            "{} of {} image rows (by key), {} of the table's {} changes in the window",
            st.image_read, st.image_rows, st.changes_applied, st.changes_scanned
        );
        let total = rows.len() as u64;
        head.truncated = total > limit;
        let rendered: Vec<Vec<serde_json::Value>> = rows
            .iter()
            .take(limit.min(usize::MAX as u64) as usize)
            .map(|r| render(&schema, r))
            .collect();
        if !stream {
            head.rows = rendered;
            return Ok(axum::Json(head).into_response());
        }
        let mut body = serde_json::to_vec(&head).unwrap_or_default();
        body.push(b'\n');
        for r in &rendered {
            body.extend(serde_json::to_vec(r).unwrap_or_default());
            body.push(b'\n');
        }
        let end = StreamEnd {
            rows: rendered.len() as u64,
            truncated: head.truncated,
            read: head.read.clone(),
        };
        body.extend(serde_json::to_vec(&serde_json::json!({ "end": end })).unwrap_or_default());
        body.push(b'\n');
        return Ok(ndjson(axum::body::Body::from(body)));
    }
    // The whole table rebuilt by the restore engine, rows filtered by the key if any.
    let filter = key
        .as_ref()
        .map(|k| k.resolve(&schema))
        .transpose()
        .map_err(ApiError::bad)?;
    let settings = crate::inputs::rows_settings(&source);
    let image_rows: u64 = inputs.iter().filter(|i| i.requested).map(|i| i.rows).sum();
    let events = plan.tables.first().map_or(0, |t| t.events);
    let read = format!("{image_rows} image rows, {events} changes (the table rebuilt)");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let sender = Arc::new(Sender {
        schema: schema.clone(),
        key: filter,
        limit,
        sent: AtomicU64::new(0),
        full: AtomicBool::new(false),
        tx: stream.then(|| tx.clone()),
        kept: std::sync::Mutex::new(Vec::new()),
    });
    let (log, out) = (source.log.clone(), sender.clone());
    let job = tokio::task::spawn_blocking(move || {
        let r = dbtrail_replay::restore::rebuild_to(&*log, inputs, &*out, &settings, &Quiet);
        drop(tmp);
        match r {
            Err(_) if out.full.load(Ordering::SeqCst) => Ok(true),
            Err(e) => Err(e.to_string()),
            Ok(()) => Ok(false),
        }
    });
    if !stream {
        let truncated = job
            .await
            .map_err(ApiError::internal)?
            .map_err(unprocessable)?;
        head.rows = std::mem::take(&mut *crate::util::lock(&sender.kept));
        head.truncated = truncated;
        head.read = read;
        return Ok(axum::Json(head).into_response());
    }
    let mut first = serde_json::to_vec(&head).unwrap_or_default();
    first.push(b'\n');
    // The end (or error) line once the rebuild is over.
    let sender2 = sender.clone();
    tokio::spawn(async move {
        let line = match job.await {
            Ok(Ok(truncated)) => serde_json::json!({ "end": StreamEnd {
                rows: sender2.sent(),
                truncated,
                read,
            }}),
            Ok(Err(e)) => {
                serde_json::json!({ "error": { "code": "not_restorable", "message": e } })
            }
            Err(e) => {
                serde_json::json!({ "error": { "code": "internal", "message": e.to_string() } })
            }
        };
        let mut b = serde_json::to_vec(&line).unwrap_or_default();
        b.push(b'\n');
        let _ = tx.send(Bytes::from(b)).await;
    });
    let body =
        futures_util::stream::once(
            async move { Ok::<_, std::convert::Infallible>(Bytes::from(first)) },
        )
        .chain(futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx).map(|b| b.map(Ok))
        }));
    Ok(ndjson(axum::body::Body::from_stream(body)))
}

use futures_util::StreamExt as _;

fn ndjson(body: axum::body::Body) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        body,
    )
        .into_response()
}

struct Quiet;

impl dbtrail_replay::restore::Progress for Quiet {
    fn table_done(&self, _: &TableRef) {}
    fn rows(&self, _: u64) {}
}

/// The last commit time a target text covers (its last microsecond at its precision).
fn moment(name: &str, text: &str) -> Result<i64, ApiError> {
    parse_time(text)
        .map(|t| t.end_inclusive())
        .map_err(|e| ApiError::bad(format!("{name}: {e}")))
}

/// Refuses a window `(after_us, until_us]` of `table` that the log does not cover entirely.
fn check_covered(
    source: &Source,
    table: &TableRef,
    after_us: i64,
    until_us: i64,
) -> Result<Option<i64>, ApiError> {
    let log: &dyn Catalog = &*source.log;
    let internal = |e: dbtrail_core::history::HistoryError| ApiError::internal(e.to_string());
    let mut first = None;
    log.scan_txns(&mut |t| {
        first = Some(t.commit_us);
        false
    })
    .map_err(internal)?;
    let covered = source
        .covered_until_us()
        .or(log.horizon().map_err(internal)?.map(|h| h.last_commit_us));
    match covered {
        Some(c) if c >= until_us => {}
        Some(c) => {
            return Err(unprocessable(format!(
                "{} is past what the log holds durably ({}): capture has not reached it yet \
                 (see `dbtrailctl status`); ask again, or for an earlier moment",
                rfc3339_micros(until_us),
                rfc3339_micros(c)
            )));
        }
        None => return Err(unprocessable("the log holds nothing yet")),
    }
    // The log holds every change after its first transaction, and after the snapshot moment of
    // any full baseline its capture had begun by (what restores anchor on).
    let origin = log.origin().map_err(internal)?;
    let anchored = log
        .baselines()
        .map_err(internal)?
        .into_iter()
        .filter(|b| b.origin.is_full())
        .filter(|b| {
            origin
                .as_ref()
                .is_some_and(|o| dbtrail_replay::plan::log_reaches(o, &b.position))
        })
        .map(|b| b.snapshot_us)
        .min();
    let begins = match (first, anchored) {
        (Some(f), Some(a)) => Some(f.min(a)),
        (f, a) => f.or(a),
    };
    if let Some(f) = begins
        && after_us != i64::MIN
        && after_us < f
    {
        return Err(unprocessable(format!(
            "the log begins at {} (its first transaction, or its oldest baseline); what changed \
             before that is not known: ask from a later moment",
            rfc3339_micros(f)
        )));
    }
    for g in log.gaps().map_err(internal)? {
        if g.after_commit_us >= after_us && g.after_commit_us < until_us {
            return Err(unprocessable(format!(
                "the log has a gap inside the window: {} ({}); the changes in it are not known",
                g.missing, g.reason
            )));
        }
    }
    for t in log.taints().map_err(internal)? {
        if table.matched_by(&t.table) && t.since_us <= until_us {
            return Err(unprocessable(format!(
                "the coverage of {table} is tainted since {}: {}",
                rfc3339_micros(t.since_us),
                t.reason
            )));
        }
    }
    Ok(first)
}

fn table_id(source: &Source, table: &TableRef) -> Result<Option<u32>, ApiError> {
    source
        .log
        .table_id(table)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// `diff` query string.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    from: String,
    to: String,
    limit: Option<u64>,
}

/// `GET .../tables/{table}/diff?from=&to=&limit=`.
pub async fn diff(source: Arc<Source>, table: &str, q: DiffQuery) -> Result<Response, ApiError> {
    let table = table_of(table)?;
    let from = moment("from", &q.from)?;
    let to = moment("to", &q.to)?;
    if from > to {
        return Err(ApiError::bad(format!(
            "from ({}) is after to ({}): give the earlier moment first",
            q.from, q.to
        )));
    }
    let limit = limit_of(q.limit, MAX_JSON_ROWS)?;
    tokio::task::spawn_blocking(move || {
        check_covered(&source, &table, from, to)?;
        let mut resp = DiffResponse {
            table: table.to_string(),
            from: format!("{} (through {})", q.from, rfc3339_micros(from)),
            to: format!("{} (through {})", q.to, rfc3339_micros(to)),
            ..DiffResponse::default()
        };
        let Some(tid) = table_id(&source, &table)? else {
            return Ok(axum::Json(resp).into_response());
        };
        let span = Span {
            since_us: from.saturating_add(1),
            until_us: to,
        };
        let log = &*source.log;
        resp.changes = log
            .count_table_changes(tid, span.since_us, span.until_us, 0..u64::MAX)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let bound = source.config.restore_keys_in_memory.max(1);
        let parts = resp.changes.div_ceil(bound).max(1);
        for p in 0..parts {
            let (entries, schema) =
                lookback::diff_pass(log, tid, span, (parts, p)).map_err(unprocessable)?;
            let Some(schema) = schema else { continue };
            if resp.columns.is_empty() {
                resp.columns = columns(&schema);
            }
            for e in entries {
                let (kind, key_row) = match (&e.before, &e.after) {
                    (None, Some(a)) => ("inserted", a),
                    (Some(b), None) => ("deleted", b),
                    (Some(b), Some(_)) => ("changed", b),
                    (None, None) => continue,
                };
                let n = e.copies.unsigned_abs().max(1);
                match kind {
                    "inserted" => resp.inserted += n,
                    "deleted" => resp.deleted += n,
                    _ => resp.changed += 1,
                }
                if resp.rows.len() as u64 >= limit {
                    resp.truncated = true;
                    continue;
                }
                let changed = match (&e.before, &e.after) {
                    (Some(b), Some(a)) => changes(&schema, b, a),
                    _ => Vec::new(),
                };
                resp.rows.push(DiffRow {
                    kind: kind.into(),
                    key: describe_row_key(&schema, key_row),
                    before: e.before.as_ref().map(|r| render(&schema, r)),
                    after: e.after.as_ref().map(|r| render(&schema, r)),
                    changed,
                    copies: (!schema.has_primary_key()).then_some(n),
                });
            }
        }
        Ok(axum::Json(resp).into_response())
    })
    .await
    .map_err(ApiError::internal)?
}

fn changes(schema: &TableSchema, before: &Row, after: &Row) -> Vec<ColumnChange> {
    lookback::changed_columns(schema, before, after)
        .into_iter()
        .map(|i| {
            let c = &schema.columns[i];
            ColumnChange {
                column: c.name.clone(),
                old: before
                    .get(i)
                    .map_or(serde_json::Value::Null, |v| render_value(c, v)),
                new: after
                    .get(i)
                    .map_or(serde_json::Value::Null, |v| render_value(c, v)),
            }
        })
        .collect()
}

/// `history` query string.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    key: String,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u64>,
}

/// `GET .../tables/{table}/history?key=&since=&until=&limit=`.
pub async fn history(
    source: Arc<Source>,
    table: &str,
    q: HistoryQuery,
) -> Result<Response, ApiError> {
    let table = table_of(table)?;
    let spec = key_of(&q.key)?;
    let since = match &q.since {
        Some(t) => parse_time(t)
            .map(|t| t.micros)
            .map_err(|e| ApiError::bad(format!("since: {e}")))?,
        None => i64::MIN,
    };
    let until = match &q.until {
        Some(t) => moment("until", t)?,
        None => i64::MAX,
    };
    if since > until {
        return Err(ApiError::bad(format!(
            "since ({}) is after until ({})",
            q.since.as_deref().unwrap_or_default(),
            q.until.as_deref().unwrap_or_default()
        )));
    }
    let limit = limit_of(q.limit, MAX_JSON_ROWS)?;
    tokio::task::spawn_blocking(move || {
        let log = &*source.log;
        let internal = |e: String| ApiError::internal(e);
        let mut resp = HistoryResponse {
            table: table.to_string(),
            key: q.key.clone(),
            ..HistoryResponse::default()
        };
        if until != i64::MAX {
            check_covered(&source, &table, i64::MIN, until)?;
        }
        Catalog::scan_txns(&*source.log, &mut |t| {
            resp.log_begins = Some(rfc3339_micros(t.commit_us));
            false
        })
        .map_err(|e| internal(e.to_string()))?;
        let Some(tid) = table_id(&source, &table)? else {
            return Err(ApiError::not_found(format!(
                "the log has no change of {table} (is the name right? `dbtrailctl status` lists \
                 what is captured)"
            )));
        };
        let span = Span {
            since_us: since,
            until_us: until,
        };
        let mut bad_key = None;
        let scanned = lookback::history(log, tid, &spec, span, &mut |v| {
            if resp.versions.len() as u64 >= limit {
                resp.truncated = true;
                return false;
            }
            let s = &v.schema;
            if resp.columns.is_empty() || resp.columns.len() != s.columns.len() {
                resp.columns = columns(s);
            }
            let (kind, row, changed) = match &v.change.change {
                RowChange::Insert { after } => ("insert", after, Vec::new()),
                RowChange::Delete { before } => ("delete", before, Vec::new()),
                RowChange::Update { before, after } => ("update", after, changes(s, before, after)),
            };
            resp.versions.push(VersionView {
                commit_time: rfc3339_micros(v.change.commit_us),
                gtid: v.change.gtid.as_ref().map(|g| g.to_string()),
                event_id: v.change.event_id,
                kind: kind.into(),
                row: render(s, row),
                changed,
            });
            true
        });
        match scanned {
            Ok(n) => resp.scanned = n,
            Err(e) => bad_key = Some(e),
        }
        if let Some(e) = bad_key {
            return Err(ApiError::bad(e));
        }
        Ok(axum::Json(resp).into_response())
    })
    .await
    .map_err(ApiError::internal)?
}
