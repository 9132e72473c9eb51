//! The API task: HTTP/1.1 + JSON on a unix socket.
//!
//! Errors are `{"error":{"code":..,"message":..}}` with a 4xx status for bad requests and
//! 404 for unknown sources; handlers never panic on input.
pub use crate::apierror::ApiError;
use crate::backup::StartError;
use crate::source::Source;
use crate::tasks::SourceTasks;
use anyhow::Context;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use dbtrail_core::api::{BackupJobView, BackupRequest, BackupStarted, BackupsResponse, JobStatus};
use dbtrail_core::api::{EventView, EventsResponse, SourcesResponse};
use dbtrail_core::render::{render_value, rfc3339_micros};
use dbtrail_core::time::parse_time;
use dbtrail_core::{Gtid, RowChange, TableRef, TableSchema};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[path = "flashback.rs"]
mod flashback;
#[path = "verifyapi.rs"]
mod verifyapi;

/// What handlers see.
pub struct AppState {
    /// Configured sources.
    pub sources: Vec<SourceTasks>,
    /// Cancelled at shutdown (jobs started by the API stop with it).
    pub cancel: CancellationToken,
}

/// Binds the unix socket (mode 0660), replacing a stale socket file.
pub fn bind_socket(path: &std::path::Path) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the socket directory {}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another dbtraild is already listening on {}; stop it or set a different socket",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let l = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("binding the API socket {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(l)
}

/// Request bodies larger than this are refused (413): every request body is a few fields.
const MAX_BODY: usize = 64 * 1024;

/// A JSON body, or the error that says what was expected.
fn json_body<T>(
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
    expected: &str,
) -> Result<T, ApiError> {
    match body {
        Ok(Json(v)) => Ok(v),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "too_large",
            message: format!("the request body is larger than {MAX_BODY} bytes"),
        }),
        Err(e) => Err(ApiError::bad(format!("{e}; expected {expected}"))),
    }
}

/// A JSON body that may be absent (then `T::default()`); `expected` completes the error.
fn optional_json_body<T: serde::de::DeserializeOwned + Default>(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    expected: &str,
) -> Result<T, ApiError> {
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(ApiError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: "too_large",
                message: format!("the request body is larger than {MAX_BODY} bytes"),
            });
        }
        Err(e) => return Err(ApiError::bad(e.to_string())),
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("{e}; expected {expected}")))
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/servers", get(list_servers))
        .route("/api/v1/servers/{name}/status", get(server_status))
        .route("/api/v1/servers/{name}/events", get(events))
        .route("/api/v1/servers/{name}/transactions/{gtid}/undo", get(undo))
        .route(
            "/api/v1/servers/{name}/undo",
            axum::routing::post(flashback::undo_window),
        )
        .route(
            "/api/v1/servers/{name}/backups",
            get(list_backups).post(start_backup),
        )
        .route("/api/v1/servers/{name}/backups/{id}", get(backup_job))
        .route(
            "/api/v1/servers/{name}/pitr",
            axum::routing::post(start_pitr),
        )
        .route("/api/v1/servers/{name}/pitr/{id}", get(pitr_job))
        .route("/api/v1/servers/{name}/coverage", get(coverage))
        .route(
            "/api/v1/servers/{name}/tables/{table}/rows",
            get(table_rows),
        )
        .route(
            "/api/v1/servers/{name}/tables/{table}/diff",
            get(table_diff),
        )
        .route(
            "/api/v1/servers/{name}/tables/{table}/history",
            get(table_history),
        )
        .route(
            "/api/v1/servers/{name}/verify",
            get(verifyapi::list).post(verifyapi::start),
        )
        .route("/api/v1/servers/{name}/verify/{id}", get(verifyapi::get))
        .route(
            "/api/v1/servers/{name}/baselines/import",
            axum::routing::post(import_baseline),
        )
        .fallback(|| async { ApiError::not_found("no such API endpoint; see `dbtrailctl --help`") })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Serves the API until `cancel`.
pub async fn serve(
    listener: tokio::net::UnixListener,
    state: Arc<AppState>,
    cancel: CancellationToken,
) {
    let app = router(state);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
    {
        tracing::error!(error = %e, "the API server stopped");
    }
}

fn find<'a>(state: &'a AppState, name: &str) -> Result<&'a SourceTasks, ApiError> {
    state
        .sources
        .iter()
        .find(|s| s.source.config.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = state
                .sources
                .iter()
                .map(|s| s.source.config.name.as_str())
                .collect();
            ApiError::not_found(format!(
                "no source named {name:?}; configured sources: {}",
                names.join(", ")
            ))
        })
}

async fn list_servers(
    State(state): State<Arc<AppState>>,
) -> Result<Json<SourcesResponse>, ApiError> {
    let mut sources = Vec::new();
    for s in &state.sources {
        sources.push(s.source.status().map_err(ApiError::internal)?);
    }
    Ok(Json(SourcesResponse { sources }))
}

async fn server_status(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let s = find(&state, &name)?;
    Ok(Json(s.source.status().map_err(ApiError::internal)?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    table: Option<String>,
    since: Option<String>,
    until: Option<String>,
    gtid: Option<String>,
    limit: Option<usize>,
}

const MAX_LIMIT: usize = 100_000;

async fn events(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<EventsResponse>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad(format!("bad query string: {}", e.body_text())))?;
    let source = find(&state, &name)?.source.clone();
    let limit = q.limit.unwrap_or(1000);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad(format!("limit must be 1..={MAX_LIMIT}")));
    }
    let since = match &q.since {
        Some(s) => parse_time(s).map_err(ApiError::bad)?.micros,
        None => i64::MIN,
    };
    let until = match &q.until {
        Some(s) => parse_time(s).map_err(ApiError::bad)?.end_inclusive(),
        None => i64::MAX,
    };
    let table: Option<TableRef> = match &q.table {
        Some(t) => Some(
            t.parse()
                .map_err(|e: dbtrail_core::schema::TableRefError| ApiError::bad(e.to_string()))?,
        ),
        None => None,
    };
    let gtid: Option<Gtid> = match &q.gtid {
        Some(g) => Some(
            g.parse()
                .map_err(|e| ApiError::bad(format!("bad gtid {g:?}: {e}")))?,
        ),
        None => None,
    };
    tokio::task::spawn_blocking(move || collect_events(&source, table, since, until, gtid, limit))
        .await
        .map_err(ApiError::internal)?
        .map(Json)
}

fn collect_events(
    source: &Source,
    table: Option<TableRef>,
    mut since: i64,
    mut until: i64,
    gtid: Option<Gtid>,
    limit: usize,
) -> Result<EventsResponse, ApiError> {
    let log = &source.log;
    let mut event_range = (0u64, u64::MAX);
    let mut tables: Vec<(u32, TableRef)> = log.tables().map_err(ApiError::internal)?;
    if let Some(g) = &gtid {
        let Some(txn) = log.txn_by_gtid(g).map_err(ApiError::internal)? else {
            return Err(ApiError::not_found(format!(
                "transaction {g} is not in the log"
            )));
        };
        since = since.max(txn.commit_us);
        until = until.min(txn.commit_us);
        event_range = (txn.first_event_id, txn.first_event_id + txn.event_count);
        tables.retain(|(id, _)| txn.tables.contains(id));
    }
    if let Some(t) = &table {
        tables.retain(|(_, tr)| tr == t);
        if tables.is_empty() && gtid.is_none() {
            return Err(ApiError::not_found(format!("table {t} is not in the log")));
        }
    }
    let mut out = Vec::new();
    let mut truncated = false;
    let mut schemas: HashMap<(u32, u32), TableSchema> = HashMap::new();
    // Each table yields its events in log order; the first `limit` of every table are
    // enough to find the first `limit` overall after merging by event id.
    for (id, tref) in &tables {
        let mut err = None;
        let mut taken = 0usize;
        log.scan_table(*id, since, until, |commit_us, event_id, ev| {
            if event_id < event_range.0 || event_id >= event_range.1 {
                return true;
            }
            if taken >= limit {
                truncated = true;
                return false;
            }
            taken += 1;
            let schema = match schemas.get(&(*id, ev.schema_version)) {
                Some(s) => s.clone(),
                None => match log.schema(*id, ev.schema_version) {
                    Ok(Some(s)) => {
                        schemas.insert((*id, ev.schema_version), s.clone());
                        s
                    }
                    Ok(None) => {
                        err = Some(format!(
                            "schema version {} of {tref} missing",
                            ev.schema_version
                        ));
                        return false;
                    }
                    Err(e) => {
                        err = Some(e.to_string());
                        return false;
                    }
                },
            };
            let render = |row: &Vec<dbtrail_core::Value>| {
                row.iter()
                    .zip(&schema.columns)
                    .map(|(v, c)| render_value(c, v))
                    .collect::<Vec<_>>()
            };
            let (before, after) = match &ev.change {
                RowChange::Insert { after } => (None, Some(render(after))),
                RowChange::Update { before, after } => (Some(render(before)), Some(render(after))),
                RowChange::Delete { before } => (Some(render(before)), None),
            };
            out.push(EventView {
                event_id,
                table: tref.to_string(),
                kind: ev.change.kind().to_string(),
                gtid: ev.gtid.as_ref().map(|g| g.to_string()),
                commit_time: rfc3339_micros(commit_us),
                commit_us,
                schema_version: ev.schema_version,
                columns: schema.columns.iter().map(|c| c.name.clone()).collect(),
                before,
                after,
            });
            true
        })
        .map_err(ApiError::internal)?;
        if let Some(e) = err {
            return Err(ApiError::internal(e));
        }
    }
    out.sort_by_key(|e| e.event_id);
    if out.len() > limit {
        out.truncate(limit);
        truncated = true;
    }
    Ok(EventsResponse {
        events: out,
        truncated,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UndoQuery {
    force: Option<bool>,
}

async fn undo(
    State(state): State<Arc<AppState>>,
    Path((name, gtid)): Path<(String, String)>,
    q: Result<Query<UndoQuery>, QueryRejection>,
) -> Result<Json<dbtrail_core::api::UndoResponse>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad(format!("bad query string: {}", e.body_text())))?;
    let source = find(&state, &name)?.source.clone();
    let gtid: Gtid = gtid
        .parse()
        .map_err(|e| ApiError::bad(format!("bad gtid {gtid:?}: {e}")))?;
    let force = q.force.unwrap_or(false);
    tokio::task::spawn_blocking(move || build_undo(&source, &gtid, force))
        .await
        .map_err(ApiError::internal)?
        .map(Json)
}

/// The undo of one transaction (`dbtrail_replay::undo`), its refusals mapped to HTTP.
fn build_undo(
    source: &Source,
    gtid: &Gtid,
    force: bool,
) -> Result<dbtrail_core::api::UndoResponse, ApiError> {
    use dbtrail_replay::undo::UndoRefused;
    let mut keys = || crate::cascades::cascading_keys(source).map_err(|e| format!("{e:#}"));
    dbtrail_replay::undo::undo(&*source.log, &*source.log, gtid, force, &mut keys).map_err(|r| {
        match r {
            UndoRefused::NotFound(m) => ApiError::not_found(m),
            UndoRefused::Bad(m) => ApiError::bad(m),
            UndoRefused::Conflict(m) => ApiError::conflict(m),
            UndoRefused::Internal(m) => ApiError::internal(m),
        }
    })
}

async fn list_backups(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<BackupsResponse>, ApiError> {
    let s = find(&state, &name)?;
    Ok(Json(BackupsResponse {
        store: s.source.store.url.clone(),
        baselines: s.source.log.baselines().map_err(ApiError::internal)?,
        jobs: s.backups.jobs(),
    }))
}

async fn start_backup(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let s = find(&state, &name)?;
    // No body (or `{}`) is a snapshot; unknown fields are refused.
    let req: BackupRequest = optional_json_body(body, "no body, {} or {\"from_log\": true}")?;
    let started = if req.from_log {
        s.backups
            .start_from_log(s.source.clone(), state.cancel.clone())
    } else {
        s.backups.start(s.source.clone(), state.cancel.clone())
    };
    backup_started(&name, started)
}

/// 202 with the job id, or 409 naming the job that is running.
fn backup_started(
    name: &str,
    started: Result<(String, tokio::task::JoinHandle<()>), StartError>,
) -> Result<Response, ApiError> {
    match started {
        Ok((id, _)) => Ok((
            StatusCode::ACCEPTED,
            Json(BackupStarted {
                backup_id: id,
                status: JobStatus::Running,
            }),
        )
            .into_response()),
        Err(StartError::Running(id)) => Err(ApiError::conflict(format!(
            "a backup of source {name} is already running ({id}); wait for it to end \
             (`dbtrailctl backups --source {name}`)"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportRequest {
    /// A mydumper backup directory on the daemon's host.
    dir: String,
}

async fn import_baseline(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<Json<ImportRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let s = find(&state, &name)?;
    let req = json_body(body, "{\"dir\": \"/path/to/mydumper/backup\"}")?;
    let dir = std::path::PathBuf::from(&req.dir);
    if !dir.is_absolute() || !dir.join("metadata").is_file() {
        return Err(ApiError::bad(format!(
            "{} is not a mydumper backup directory (an absolute path holding a `metadata` file, \
             readable by dbtraild)",
            req.dir
        )));
    }
    backup_started(
        &name,
        s.backups
            .start_import(s.source.clone(), state.cancel.clone(), dir),
    )
}

async fn backup_job(
    State(state): State<Arc<AppState>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<BackupJobView>, ApiError> {
    let s = find(&state, &name)?;
    if let Some(j) = s.backups.job(&id) {
        return Ok(Json(j));
    }
    let b = s
        .source
        .log
        .baselines()
        .map_err(ApiError::internal)?
        .into_iter()
        .find(|b| b.id == id)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no backup {id:?} of source {name}; list them with `dbtrailctl backups`"
            ))
        })?;
    Ok(Json(BackupJobView {
        id: b.id.clone(),
        source: b.source.clone(),
        status: JobStatus::Completed,
        phase: "complete".into(),
        started_at: rfc3339_micros(b.started_us),
        finished_at: Some(rfc3339_micros(b.finished_us)),
        duration_ms: Some(((b.finished_us - b.started_us) / 1000).max(0) as u64),
        tables_total: b.tables.len() as u64,
        tables_done: b.tables.len() as u64,
        rows: b.rows(),
        bytes: b.bytes(),
        lock_held_ms: Some(b.lock_held_us as f64 / 1000.0),
        error: None,
        baseline: Some(b),
    }))
}

async fn start_pitr(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<Json<dbtrail_core::api::PitrRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let s = find(&state, &name)?;
    let req = json_body(
        body,
        "{\"target_time\" | \"target_gtid\", \"tables\", \"allow_gaps\", \"output\", \"dry_run\", \"image\", \"with_triggers\"}",
    )?;
    if let Some(out) = &req.output {
        crate::pitr::check_output(out).map_err(|r| ApiError::bad(r.0))?;
    }
    if let Some(t) = &req.into {
        if req.output.is_some() {
            return Err(ApiError::bad(
                "give either output (a dump) or into (a server), not both",
            ));
        }
        if req.with_triggers {
            return Err(ApiError::bad(
                "into loads tables only: write a dump (without into) to restore triggers",
            ));
        }
        crate::into::check(t).map_err(ApiError::bad)?;
    }
    let source = s.source.clone();
    let req2 = req.clone();
    let mut plan = tokio::task::spawn_blocking(move || crate::pitr::plan(&source, &req2))
        .await
        .map_err(ApiError::internal)?
        .map_err(|r| ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "not_restorable",
            message: r.0,
        })?;
    crate::pitr::plan_objects(&s.source, &mut plan, &req)
        .await
        .map_err(|r| ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "not_restorable",
            message: r.0,
        })?;
    let not_restorable = |message: String| ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "not_restorable",
        message,
    };
    let placement = match &req.into {
        Some(t) => {
            if !plan.view.objects.is_empty() {
                return Err(not_restorable(format!(
                    "into loads tables only, and this restore also has {} views, triggers,                      routines or events: restore --tables, or write a dump (without into)",
                    plan.view.objects.len()
                )));
            }
            let tables: Vec<dbtrail_core::TableRef> =
                plan.tables.iter().map(|t| t.table.clone()).collect();
            Some(
                crate::into::preflight(&s.source, t, &tables)
                    .await
                    .map_err(not_restorable)?,
            )
        }
        None => None,
    };
    if req.dry_run {
        return Ok(Json(dbtrail_core::api::PitrStarted {
            pitr_id: None,
            status: JobStatus::Completed,
            plan: plan.view,
        })
        .into_response());
    }
    let live = plan.live();
    if !live.is_empty() {
        crate::pitr::check_live(&s.source, &live)
            .await
            .map_err(|r| ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "not_restorable",
                message: r.0,
            })?;
    }
    let view = plan.view.clone();
    let id = s.restores.start(
        s.source.clone(),
        plan,
        req.clone(),
        placement,
        s.backups.clone(),
        state.cancel.clone(),
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(dbtrail_core::api::PitrStarted {
            pitr_id: Some(id),
            status: JobStatus::Running,
            plan: view,
        }),
    )
        .into_response())
}

async fn pitr_job(
    State(state): State<Arc<AppState>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<dbtrail_core::api::PitrJobView>, ApiError> {
    let s = find(&state, &name)?;
    s.restores
        .job(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no restore {id:?} of source {name}")))
}

async fn coverage(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<dbtrail_core::api::CoverageView>, ApiError> {
    use dbtrail_core::api::{CoverageBaseline, CoverageView, TimeRange};
    let s = find(&state, &name)?;
    let log = s.source.log.clone();
    let view = tokio::task::spawn_blocking(move || -> anyhow::Result<CoverageView> {
        let mut oldest = None;
        log.scan_txns(0, |_, t| {
            oldest = Some(t.commit_us);
            false
        })?;
        let newest = log
            .checkpoint()?
            .map(|c| c.last_commit_us)
            .filter(|c| *c > 0);
        let (baselines, images): (Vec<_>, Vec<_>) = log
            .baselines()?
            .into_iter()
            .partition(|b| b.origin.is_full());
        let holes = crate::images::holes(&log)?;
        let gaps = log.gaps()?;
        let mut restorable = Vec::new();
        if let (Some(first), Some(newest)) = (baselines.first(), newest) {
            let mut from = first.snapshot_us;
            let mut cuts: Vec<i64> = gaps.iter().map(|g| g.after_commit_us).collect();
            cuts.sort();
            for c in cuts {
                if c < from {
                    continue;
                }
                restorable.push(TimeRange {
                    from: rfc3339_micros(from),
                    to: rfc3339_micros(c),
                });
                // After a gap, restores need a baseline taken after it.
                match baselines.iter().find(|b| b.snapshot_us > c) {
                    Some(b) => from = b.snapshot_us,
                    None => {
                        from = i64::MAX;
                        break;
                    }
                }
            }
            if from <= newest {
                restorable.push(TimeRange {
                    from: rfc3339_micros(from),
                    to: rfc3339_micros(newest),
                });
            }
        }
        Ok(CoverageView {
            oldest_commit: oldest.map(rfc3339_micros),
            newest_commit: newest.map(rfc3339_micros),
            baselines: baselines
                .iter()
                .map(|b| CoverageBaseline {
                    id: b.id.clone(),
                    time: rfc3339_micros(b.snapshot_us),
                    position: b.position.to_string(),
                })
                .collect(),
            gaps: gaps.into_iter().map(crate::source::gap_view).collect(),
            tainted_tables: log
                .taints()?
                .into_iter()
                .map(crate::source::taint_view)
                .collect(),
            restorable,
            table_images: images
                .iter()
                .map(|b| CoverageBaseline {
                    id: b.id.clone(),
                    time: rfc3339_micros(b.snapshot_us),
                    position: format!(
                        "{} ({})",
                        b.position,
                        b.tables
                            .iter()
                            .map(|t| t.table.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
                .collect(),
            holes: holes
                .into_iter()
                .map(|h| dbtrail_core::api::CoverageHole {
                    table: h.table.to_string(),
                    since: rfc3339_micros(h.since_us),
                    ddl: h.ddl,
                })
                .collect(),
        })
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok(Json(view))
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad(format!("bad query string: {}", e.body_text())))
}

async fn table_rows(
    State(state): State<Arc<AppState>>,
    Path((name, table)): Path<(String, String)>,
    q: Result<Query<crate::lookback::RowsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    crate::lookback::rows(find(&state, &name)?, &table, q).await
}

async fn table_diff(
    State(state): State<Arc<AppState>>,
    Path((name, table)): Path<(String, String)>,
    q: Result<Query<crate::lookback::DiffQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    crate::lookback::diff(find(&state, &name)?.source.clone(), &table, q).await
}

async fn table_history(
    State(state): State<Arc<AppState>>,
    Path((name, table)): Path<(String, String)>,
    q: Result<Query<crate::lookback::HistoryQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    crate::lookback::history(find(&state, &name)?.source.clone(), &table, q).await
}
