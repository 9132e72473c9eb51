//! `POST /api/v1/servers/{name}/undo`: the undo of a time window ([`dbtrail_replay::flashback`]).
//!
//! Pass 1 (validation, conflicts, schema and cascade checks) runs before the answer starts,
//! so every refusal is a JSON error (400/404/409). The script then streams as `text/plain`
//! from a blocking task through a small bounded channel (memory stays one chunk of the
//! window plus a few 64 KiB buffers, whatever the window's size); its summary travels in the
//! [`UNDO_SUMMARY_HEADER`] header. A failure while streaming ends the body with a comment
//! saying the script is incomplete, without its final `COMMIT`, and aborts the response.
use super::{ApiError, AppState, find, json_body};
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use dbtrail_core::api::{UNDO_SUMMARY_HEADER, UndoWindowRequest, UndoWindowSummary};
use dbtrail_replay::flashback::{Window, prepare};
use dbtrail_replay::undo::UndoRefused;
use std::sync::Arc;

fn refused(r: UndoRefused) -> ApiError {
    match r {
        UndoRefused::NotFound(m) => ApiError::not_found(m),
        UndoRefused::Bad(m) => ApiError::bad(m),
        UndoRefused::Conflict(m) => ApiError::conflict(m),
        UndoRefused::Internal(m) => ApiError::internal(m),
    }
}

/// The summary as JSON with every non-ASCII character escaped (a header value).
fn summary_header(s: &UndoWindowSummary) -> Result<HeaderValue, ApiError> {
    let text = serde_json::to_string(s).map_err(ApiError::internal)?;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    HeaderValue::from_str(&out).map_err(ApiError::internal)
}

/// Writes into the response body's channel, one chunk per write (the plan buffers).
struct ChannelWriter(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(super) async fn undo_window(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<Json<UndoWindowRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = json_body(
        body,
        "{\"since\": \"2026-11-24 14:02:00\", \"until\": \"2026-11-24 14:05:00\"} with optional \
         tables, kinds, keys, gtids (lists), batch_rows, force, skip_conflicts",
    )?;
    let source = find(&state, &name)?.source.clone();
    let window = Window::from_request(&req).map_err(refused)?;
    let src = source.clone();
    let mut plan = tokio::task::spawn_blocking(move || {
        let mut keys = || crate::cascades::cascading_keys(&src).map_err(|e| format!("{e:#}"));
        prepare(&*src.log, &*src.log, window, &mut keys)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(refused)?;
    let summary = summary_header(&plan.summary)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter(tx);
        if let Err(e) = plan.write(&*source.log, &mut w) {
            if w.0.is_closed() {
                // The client stopped reading (`dbtrailctl undo ... | head`): nothing to report.
                tracing::debug!(source = %source.config.name, error = %e, "window undo abandoned");
                return;
            }
            tracing::error!(source = %source.config.name, error = %e, "writing a window undo");
            let _ = w.0.blocking_send(Ok(Bytes::from(format!(
                "\n-- ERROR: {e}\n-- This script is incomplete (no COMMIT): do not apply it.\n"
            ))));
            let _ = w.0.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(UNDO_SUMMARY_HEADER, summary)
        .body(Body::from_stream(stream))
        .map_err(ApiError::internal)
}
