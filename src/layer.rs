//! [`AnalyticsLayer`]: the tower layer, and the handle users keep for `stats`, `flush`
//! and `shutdown`.
//!
//! Owns the handle's side of the worker's lifetime: flushing, and stopping it once at
//! `shutdown` with full accounting of what was left. Never touches a request (that is
//! [`AnalyticsService`]'s job) and holds no setting (that is
//! [`AnalyticsLayerBuilder`](crate::AnalyticsLayerBuilder)'s, which also makes layers:
//! `AnalyticsLayer::new` and `AnalyticsLayer::builder` are there).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tower_layer::Layer;

use crate::delivery::WorkerControl;
use crate::service::{AnalyticsService, Shared};
use crate::stats::{ShutdownReport, Stats};

/// A tower [`Layer`] that turns the MCP traffic of an HTTP server into analytics events.
///
/// Put it in front of any tower HTTP MCP service (axum, hyper, rmcp's
/// `StreamableHttpService`): requests and responses pass through byte for byte, and
/// each JSON-RPC request or notification becomes an [`Event`](crate::Event) delivered by a
/// background worker to the configured [`Sink`](crate::sink::Sink). Clones share one worker and one set of
/// counters.
///
/// ```
/// use std::time::Duration;
/// use axum::{Router, routing::post};
/// use tower_mcp_analytics::{AnalyticsLayer, JsonLinesSink};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let analytics = AnalyticsLayer::new(JsonLinesSink::stdout());
/// let app: Router = Router::new()
///     .route("/mcp", post(|| async { "an MCP server goes here" }))
///     .layer(analytics.clone());
/// // ... serve `app`; on shutdown:
/// let report = analytics.shutdown(Duration::from_secs(5)).await;
/// assert!(report.flushed);
/// # }
/// ```
///
/// Dropping every clone of the layer and of the services it built lets the worker deliver
/// what is queued and stop on its own, provided the runtime keeps running; call
/// [`shutdown`](Self::shutdown) to wait for that with a deadline.
#[derive(Clone)]
pub struct AnalyticsLayer {
    shared: Arc<Shared>,
    worker: Arc<WorkerControl>,
}

impl AnalyticsLayer {
    /// The counters so far: recorded, delivered, queued and dropped by reason.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::new(tower_mcp_analytics::MemorySink::new());
    /// assert_eq!(layer.stats().recorded, 0);
    /// # }
    /// ```
    pub fn stats(&self) -> Stats {
        self.shared.recorder.counters().snapshot()
    }

    /// Waits until everything recorded before this call has been handed to the sink.
    /// Returns at once if the worker has stopped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::new(tower_mcp_analytics::MemorySink::new());
    /// layer.flush().await;
    /// # }
    /// ```
    pub async fn flush(&self) {
        let (ack, acked) = oneshot::channel();
        if self.shared.recorder.request_flush(ack).await {
            let _ = acked.await;
        }
    }

    /// Stops recording, delivers what is queued within `timeout`, stops the worker and
    /// reports. Events recorded afterwards, and events still queued at the deadline, are
    /// counted as `dropped.shutdown`. Calling it again returns the first call's outcome
    /// with the current counters. Once it returns, nothing the layer started can hold up
    /// the runtime's drop or the process's exit: a send still under way at the deadline
    /// is dropped with the worker, and the JSON-lines sink writes stdout and files on a
    /// detached thread of its own (a write blocked for good on a pipe nobody reads ends
    /// with the process).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::new(tower_mcp_analytics::MemorySink::new());
    /// let report = layer.shutdown(Duration::from_secs(5)).await;
    /// assert_eq!(report.stats.dropped.total(), 0);
    /// # }
    /// ```
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let recorder = &self.shared.recorder;
        recorder.close();
        let Some(stopper) = self.worker.take() else {
            return ShutdownReport::new(self.worker.flushed(), self.stats());
        };
        let flushed = tokio::time::timeout(timeout, self.flush()).await.is_ok();
        stopper.stop(timeout).await;
        recorder.counters().abandon_in_worker();
        self.worker.set_flushed(flushed);
        ShutdownReport::new(flushed, self.stats())
    }

    /// A layer over the request path's shared state and the control of its worker.
    pub(crate) fn from_parts(shared: Shared, worker: WorkerControl) -> Self {
        Self {
            shared: Arc::new(shared),
            worker: Arc::new(worker),
        }
    }
}

impl<S> Layer<S> for AnalyticsLayer {
    type Service = AnalyticsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AnalyticsService::new(inner, Arc::clone(&self.shared))
    }
}

impl std::fmt::Debug for AnalyticsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyticsLayer")
            .field("limits", &self.shared.limits)
            .field("stats", &self.stats())
            .finish()
    }
}
