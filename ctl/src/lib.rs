//! Client library for the dbtrail daemon's API on its unix socket.
//!
//! [`Client`] sends one HTTP/1.1 request per connection and decodes the JSON answer into the
//! wire types of [`dbtrail_core::api`]. Its methods return `anyhow` errors; the two failures a
//! caller may act on are an [`Error`] in the chain: the socket could not be connected to
//! ([`Error::Unreachable`]), or the daemon answered with an error status ([`Error::Api`],
//! [`Error::Status`]). `dbtrailctl` maps them to its exit status.
use anyhow::Context;
use dbtrail_core::api::{
    BackupJobView, BackupStarted, BackupsResponse, ErrorBody, EventsResponse, SourceStatus,
    SourcesResponse,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// The default socket path.
pub const DEFAULT_SOCKET: &str = "/run/dbtrail/dbtrail.sock";

/// A failure of a request that callers tell apart from the others.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting to the socket failed: no such file, nobody listening, or permission denied.
    #[error(
        "cannot connect to dbtraild at {} (is it running? set --socket or DBTRAIL_SOCKET)",
        socket.display()
    )]
    Unreachable {
        /// The socket path.
        socket: PathBuf,
        /// Why the connection failed.
        #[source]
        source: std::io::Error,
    },
    /// The daemon refused or failed the request, with its error body.
    #[error("{message} ({code})")]
    Api {
        /// The HTTP status.
        status: hyper::StatusCode,
        /// The machine-readable code (`bad_request`, `not_found`, `conflict`...).
        code: String,
        /// What went wrong and what to do.
        message: String,
    },
    /// The daemon answered an error status without an error body.
    #[error("dbtraild answered {status}: {body}")]
    Status {
        /// The HTTP status.
        status: hyper::StatusCode,
        /// The body as text.
        body: String,
    },
}

/// The error for an answer with error status `status` and `body`.
fn failure(status: hyper::StatusCode, body: &[u8]) -> anyhow::Error {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => Error::Api {
            status,
            code: e.error.code,
            message: e.error.message,
        }
        .into(),
        Err(_) => Error::Status {
            status,
            body: String::from_utf8_lossy(body).into_owned(),
        }
        .into(),
    }
}

/// A client bound to one socket.
pub struct Client {
    socket: PathBuf,
}

/// Percent-encodes a query-string value.
pub fn encode(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    /// A client for `socket`.
    pub fn new(socket: impl AsRef<Path>) -> Self {
        Client {
            socket: socket.as_ref().to_path_buf(),
        }
    }

    /// GET `path` and decode JSON; API errors become their message.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.request(hyper::Method::GET, path, None).await
    }

    /// POST `body` (JSON) to `path` and decode the JSON answer.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<T> {
        self.request(hyper::Method::POST, path, Some(body.to_string()))
            .await
    }

    /// Sends one request on a new connection; the answer's head, its body still to read.
    async fn send(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| Error::Unreachable {
                socket: self.socket.clone(),
                source,
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake with dbtraild")?;
        tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "dbtraild")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .context("building the request")?;
        sender
            .send_request(req)
            .await
            .context("sending the request")
    }

    async fn request<T: DeserializeOwned>(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<T> {
        let resp = self.send(method, path, body).await?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .context("reading the response")?
            .to_bytes();
        if !status.is_success() {
            return Err(failure(status, &body));
        }
        serde_json::from_slice(&body).with_context(|| format!("decoding the answer to {path}"))
    }

    /// GET `path` and pass each line of a streamed (`ndjson`) answer to `line`, as it
    /// arrives; API errors (before the stream starts) become their message.
    pub async fn get_lines(
        &self,
        path: &str,
        line: &mut dyn FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let resp = self.send(hyper::Method::GET, path, None).await?;
        let status = resp.status();
        let mut body = resp.into_body();
        if !status.is_success() {
            let body = body
                .collect()
                .await
                .context("reading the response")?
                .to_bytes();
            return Err(failure(status, &body));
        }
        let mut pending: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.context("reading the response")?;
            let Some(data) = frame.data_ref() else {
                continue;
            };
            pending.extend_from_slice(data);
            let mut start = 0;
            while let Some(n) = pending[start..].iter().position(|b| *b == b'\n') {
                line(&pending[start..start + n])?;
                start += n + 1;
            }
            pending.drain(..start);
        }
        if !pending.is_empty() {
            line(&pending)?;
        }
        Ok(())
    }

    /// All sources.
    pub async fn sources(&self) -> anyhow::Result<Vec<SourceStatus>> {
        Ok(self
            .get::<SourcesResponse>("/api/v1/servers")
            .await?
            .sources)
    }

    /// One source's status.
    pub async fn status(&self, source: &str) -> anyhow::Result<SourceStatus> {
        self.get(&format!("/api/v1/servers/{}/status", encode(source)))
            .await
    }

    /// SQL undoing one transaction.
    pub async fn undo(
        &self,
        source: &str,
        gtid: &str,
        force: bool,
    ) -> anyhow::Result<dbtrail_core::api::UndoResponse> {
        self.get(&format!(
            "/api/v1/servers/{}/transactions/{}/undo?force={force}",
            encode(source),
            encode(gtid)
        ))
        .await
    }

    /// The undo of a time window: streams the script into `sink` as it arrives and returns
    /// its summary (the answer's header). Refusals are [`Error::Api`] before any byte is
    /// given to `sink`; a failure while streaming is an error after some were.
    pub async fn undo_window(
        &self,
        source: &str,
        req: &dbtrail_core::api::UndoWindowRequest,
        sink: &mut dyn FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<dbtrail_core::api::UndoWindowSummary> {
        let path = format!("/api/v1/servers/{}/undo", encode(source));
        let resp = self
            .send(
                hyper::Method::POST,
                &path,
                Some(serde_json::to_string(req)?),
            )
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp
                .into_body()
                .collect()
                .await
                .context("reading the response")?
                .to_bytes();
            return Err(failure(status, &body));
        }
        let summary = resp
            .headers()
            .get(dbtrail_core::api::UNDO_SUMMARY_HEADER)
            .map(|v| serde_json::from_slice(v.as_bytes()))
            .transpose()
            .context("decoding the undo summary")?
            .unwrap_or_default();
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.context("reading the undo script (it is incomplete)")?;
            if let Some(data) = frame.data_ref() {
                sink(data)?;
            }
        }
        Ok(summary)
    }

    /// Starts a backup.
    pub async fn start_backup(&self, source: &str) -> anyhow::Result<BackupStarted> {
        self.start_backup_with(source, &dbtrail_core::api::BackupRequest::default())
            .await
    }

    /// Starts a backup as `req` asks (a snapshot, or a baseline from the log).
    pub async fn start_backup_with(
        &self,
        source: &str,
        req: &dbtrail_core::api::BackupRequest,
    ) -> anyhow::Result<BackupStarted> {
        let body = if req.from_log {
            serde_json::to_value(req)?
        } else {
            serde_json::json!({})
        };
        self.post(
            &format!("/api/v1/servers/{}/backups", encode(source)),
            &body,
        )
        .await
    }

    /// Starts importing a mydumper backup directory (on the daemon's host) as a baseline.
    pub async fn import_baseline(&self, source: &str, dir: &str) -> anyhow::Result<BackupStarted> {
        self.post(
            &format!("/api/v1/servers/{}/baselines/import", encode(source)),
            &serde_json::json!({ "dir": dir }),
        )
        .await
    }

    /// Plans (dry run) or starts a point-in-time restore.
    pub async fn pitr(
        &self,
        source: &str,
        req: &dbtrail_core::api::PitrRequest,
    ) -> anyhow::Result<dbtrail_core::api::PitrStarted> {
        self.post(
            &format!("/api/v1/servers/{}/pitr", encode(source)),
            &serde_json::to_value(req)?,
        )
        .await
    }

    /// One restore job.
    pub async fn pitr_job(
        &self,
        source: &str,
        id: &str,
    ) -> anyhow::Result<dbtrail_core::api::PitrJobView> {
        self.get(&format!(
            "/api/v1/servers/{}/pitr/{}",
            encode(source),
            encode(id)
        ))
        .await
    }

    /// What can be restored.
    pub async fn coverage(&self, source: &str) -> anyhow::Result<dbtrail_core::api::CoverageView> {
        self.get(&format!("/api/v1/servers/{}/coverage", encode(source)))
            .await
    }

    /// One backup job.
    pub async fn backup(&self, source: &str, id: &str) -> anyhow::Result<BackupJobView> {
        self.get(&format!(
            "/api/v1/servers/{}/backups/{}",
            encode(source),
            encode(id)
        ))
        .await
    }

    /// Starts a verification of `tables` (none: the source's rotation).
    pub async fn start_verify(
        &self,
        source: &str,
        req: &dbtrail_core::api::VerifyRequest,
    ) -> anyhow::Result<dbtrail_core::api::VerifyRun> {
        self.post(
            &format!("/api/v1/servers/{}/verify", encode(source)),
            &serde_json::to_value(req)?,
        )
        .await
    }

    /// One verification.
    pub async fn verification(
        &self,
        source: &str,
        id: &str,
    ) -> anyhow::Result<dbtrail_core::api::VerifyRun> {
        self.get(&format!(
            "/api/v1/servers/{}/verify/{}",
            encode(source),
            encode(id)
        ))
        .await
    }

    /// The verifications kept, oldest first.
    pub async fn verifications(
        &self,
        source: &str,
    ) -> anyhow::Result<Vec<dbtrail_core::api::VerifyRun>> {
        self.get(&format!("/api/v1/servers/{}/verify", encode(source)))
            .await
    }

    /// Baselines and backup jobs.
    pub async fn backups(&self, source: &str) -> anyhow::Result<BackupsResponse> {
        self.get(&format!("/api/v1/servers/{}/backups", encode(source)))
            .await
    }

    /// Decoded events; `query` pairs are encoded here.
    pub async fn events(
        &self,
        source: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<EventsResponse> {
        let qs: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        self.get(&format!(
            "/api/v1/servers/{}/events?{}",
            encode(source),
            qs.join("&")
        ))
        .await
    }
}
