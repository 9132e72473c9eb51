//! The metrics task: `/metrics` (OpenMetrics text) on loopback TCP (`metrics_addr`).
//!
//! The metrics themselves are [`crate::metrics::Metrics`], updated by the tasks as they work;
//! this task only renders them, after refreshing what is a function of the time of the
//! scrape (each source's checkpoint age).
use crate::metrics::Metrics;
use crate::source::Source;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What the `/metrics` handler reads.
struct Exported {
    sources: Vec<Arc<Source>>,
    metrics: Arc<Metrics>,
}

/// Serves `/metrics` until `cancel`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    sources: Vec<Arc<Source>>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let state = Arc::new(Exported { sources, metrics });
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(s): State<Arc<Exported>>| async move {
                for src in &s.sources {
                    if let Some(age) = src.checkpoint_age() {
                        s.metrics
                            .checkpoint_age
                            .get_or_create(&Metrics::source(&src.config.name))
                            .set(age);
                    }
                }
                (
                    [(
                        "content-type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    s.metrics.render(),
                )
            }),
        )
        .with_state(state);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
    {
        tracing::error!(error = %e, "the metrics server stopped");
    }
}
