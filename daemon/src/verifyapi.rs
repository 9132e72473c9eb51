//! `POST /api/v1/servers/{name}/verify` (start a verification), `GET .../verify` (the runs
//! kept, oldest first) and `GET .../verify/{id}` ([`crate::verify`]).
use super::{ApiError, AppState, find, optional_json_body};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dbtrail_core::TableRef;
use dbtrail_core::api::{VerifyRequest, VerifyRun};
use std::sync::Arc;

pub(super) async fn start(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let s = find(&state, &name)?;
    let req: VerifyRequest =
        optional_json_body(body, "no body or {\"tables\": [\"db.table\", ...]}")?;
    let mut tables: Vec<TableRef> = Vec::new();
    for t in &req.tables {
        let t: TableRef = t.parse().map_err(|_| {
            ApiError::bad(format!("table {t:?} is not db.table (e.g. shop.orders)"))
        })?;
        if !tables.contains(&t) {
            tables.push(t);
        }
    }
    let stored = s.source.log.baselines().map_err(ApiError::internal)?;
    if !stored.iter().any(|b| b.origin.is_full()) {
        return Err(ApiError::conflict(format!(
            "source {name} has no baseline yet, so there is no history to verify: take one \
             with `dbtrailctl backup`"
        )));
    }
    for t in &tables {
        if !stored.iter().any(|b| b.table(t).is_some()) {
            return Err(ApiError::not_found(format!(
                "table {t} is in no baseline or table image of source {name}: a verification \
                 rebuilds tables the history holds (`dbtrailctl backups` lists them)"
            )));
        }
    }
    if s.source.covered_until_us().is_none() {
        return Err(ApiError::conflict(format!(
            "capture of source {name} is not streaming, so the live tables cannot be placed \
             in the log; see `dbtrailctl status`"
        )));
    }
    match s.verifications.start(
        s.source.clone(),
        s.backups.clone(),
        state.cancel.clone(),
        tables,
    ) {
        Ok((run, _)) => Ok((StatusCode::ACCEPTED, Json(run)).into_response()),
        Err(id) => Err(ApiError::conflict(format!(
            "verification {id} of source {name} is still running; wait for it \
             (`dbtrailctl verify --list`)"
        ))),
    }
}

pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Vec<VerifyRun>>, ApiError> {
    Ok(Json(find(&state, &name)?.verifications.list()))
}

pub(super) async fn get(
    State(state): State<Arc<AppState>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<VerifyRun>, ApiError> {
    find(&state, &name)?
        .verifications
        .get(&id)
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no verification {id:?} of source {name} (the newest {} are kept); list them \
                 with `dbtrailctl verify --list`",
                crate::verify::KEEP
            ))
        })
}
