//! [`AnalyticsLayerBuilder`]: every setting of a layer, and building it.
//!
//! Owns the user-facing settings. Each setter writes into the part of the configuration
//! it belongs to, each with its own defaults: the request path's `Limits` (setters in
//! `limits`), `HeaderCapture` and `Privacy` (`privacy`), `SessionConfig` (`sessions`),
//! `DeliveryConfig` (`delivery`), and the functions the layer calls (`hooks`). `build`
//! hands each part to the stage that uses it and starts the worker. Never touches a
//! request.

mod delivery;
mod hooks;
mod insights;
mod limits;
mod privacy;
mod sessions;
#[cfg(feature = "otel")]
mod telemetry;

use std::sync::Arc;
use std::time::SystemTime;

use crate::delivery::{AnalyticsWorker, DeliveryConfig, Enricher, Outlets, pipeline, spawn};
use crate::hooks::Hooks;
use crate::layer::AnalyticsLayer;
use crate::privacy::{HeaderCapture, Privacy};
use crate::service::{Clock, Limits, Shared};
use crate::session::SessionConfig;
use crate::sink::{JsonLinesSink, Sink};
use crate::stats::Counters;

impl AnalyticsLayer {
    /// A layer with default settings delivering to `sink`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::new(tower_mcp_analytics::MemorySink::new());
    /// # }
    /// ```
    pub fn new(sink: impl Sink) -> Self {
        Self::builder().sink(sink).build()
    }

    /// A builder with every default: JSON lines to stdout, 4 MiB capture limits, 100 calls
    /// per request, a queue of 10,000 events or 16 MiB, batches sent at least every second
    /// (from 64 KiB up to 1 MiB or 2,000 events, 2 to 16 in flight, as the backlog needs),
    /// sessions grouped over 30 minutes of inactivity.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .capture_limit(1024 * 1024)
    ///     .build();
    /// # }
    /// ```
    pub fn builder() -> AnalyticsLayerBuilder {
        AnalyticsLayerBuilder::default()
    }
}

/// Builds an [`AnalyticsLayer`]; every setting has a default.
///
/// ```
/// use tower_mcp_analytics::{AnalyticsLayer, MemorySink};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = AnalyticsLayer::builder()
///     .sink(MemorySink::new())
///     .capture_limit(1 << 20)
///     .response_capture_limit(8 << 20)
///     .max_calls_per_request(50)
///     .queue_capacity(5_000)
///     .queue_bytes(8 << 20)
///     .batch_size(200)
///     .batch_bytes(256 * 1024)
///     .max_in_flight(2)
///     .max_attempts(5)
///     .flush_interval(std::time::Duration::from_secs(1))
///     .build();
/// # }
/// ```
#[must_use]
#[derive(Default)]
pub struct AnalyticsLayerBuilder {
    /// Where events go; JSON lines on stdout when `None`.
    sink: Option<Arc<dyn Sink>>,
    /// The request hooks (`identify`, `session_key`, `tags`, `properties`).
    hooks: Hooks,
    /// What the request path reads and keeps.
    limits: Limits,
    /// Which request headers events carry.
    headers: HeaderCapture,
    /// What of a request may leave the process, and how big (with the event hooks).
    privacy: Privacy,
    /// How sessions are decided and where their state lives.
    sessions: SessionConfig,
    /// How the worker queues, batches and delivers, and where it runs.
    delivery: DeliveryConfig,
    clock: Option<Clock>,
    /// Intent capture (opt-in).
    intent: Option<crate::insights::IntentCapture>,
    /// The virtual tool for missing capabilities (opt-in).
    missing_tools: Option<crate::insights::MissingTools>,
    /// Spans and metrics, beside the sink or instead of it.
    #[cfg(feature = "otel")]
    telemetry: Option<crate::otel::OpenTelemetry>,
    /// No sink: only observers (OpenTelemetry) take events.
    #[cfg(feature = "otel")]
    without_sink: bool,
}

impl AnalyticsLayerBuilder {
    /// Where events go (default: [`JsonLinesSink::stdout`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .sink(tower_mcp_analytics::JsonLinesSink::stdout())
    ///     .build();
    /// # }
    /// ```
    pub fn sink(mut self, sink: impl Sink) -> Self {
        self.sink = Some(Arc::new(sink));
        self
    }

    /// The wall clock requests are stamped with (default `SystemTime::now`); sessions are
    /// grouped by these times. For tests and demos.
    ///
    /// ```
    /// # use std::time::{Duration, SystemTime};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().clock(move || start).build();
    /// # }
    /// ```
    pub fn clock<F>(mut self, clock: F) -> Self
    where
        F: Fn() -> SystemTime + Send + Sync + 'static,
    {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Builds the layer and starts its worker where
    /// [`worker_runtime`](Self::worker_runtime) says: by default on the current tokio
    /// runtime when there is one, otherwise on a dedicated thread.
    ///
    /// ```
    /// // Outside a runtime works too: the worker gets a thread of its own.
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().build();
    /// ```
    pub fn build(self) -> AnalyticsLayer {
        let runtime = self.delivery.runtime;
        let (layer, worker) = self.build_with_worker();
        spawn(worker, runtime);
        layer
    }

    /// Builds the layer and hands its worker to the caller, to run on an executor of their
    /// choice (a tokio runtime: the worker uses tokio's timers and tasks);
    /// [`worker_runtime`](Self::worker_runtime) is then ignored. Events wait in the queue,
    /// within its bounds, until the worker runs. [`AnalyticsLayer::shutdown`] stops it as
    /// it stops a worker the layer started.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_analytics::{AnalyticsLayer, MemorySink};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// // e.g. a runtime kept for background work, apart from the server's
    /// let background = tokio::runtime::Builder::new_multi_thread()
    ///     .worker_threads(1)
    ///     .enable_all()
    ///     .build()
    ///     .unwrap();
    /// let (layer, worker) = AnalyticsLayer::builder()
    ///     .sink(MemorySink::new())
    ///     .build_with_worker();
    /// background.spawn(worker);
    /// let report = layer.shutdown(Duration::from_secs(5)).await;
    /// assert!(report.flushed);
    /// background.shutdown_background();
    /// # }
    /// ```
    pub fn build_with_worker(self) -> (AnalyticsLayer, AnalyticsWorker) {
        let counters = Arc::new(Counters::default());
        let sink = self
            .sink
            .unwrap_or_else(|| Arc::new(JsonLinesSink::stdout()));
        #[cfg_attr(not(feature = "otel"), allow(unused_mut))]
        let mut outlets = Outlets {
            sink: Some(sink),
            observer: None,
        };
        #[cfg(feature = "otel")]
        let ambient = {
            if self.without_sink {
                outlets.sink = None;
            }
            self.telemetry.map(|otel| {
                let ambient = otel.ambient();
                let stage = otel.stage(
                    self.sessions.window,
                    self.clock.clone(),
                    Arc::clone(&counters),
                );
                outlets.observer = Some(Box::new(stage));
                ambient
            })
        };
        let enricher = Enricher::new(self.sessions, Arc::clone(&counters));
        let (recorder, worker, control) = pipeline(
            self.delivery,
            outlets,
            enricher,
            Arc::new(self.privacy),
            counters,
        );
        let mut shared = Shared::new(self.limits, recorder, self.hooks, self.headers, self.clock);
        shared.insights =
            crate::insights::Insights::new(self.intent, self.missing_tools).map(Arc::new);
        #[cfg(feature = "otel")]
        {
            shared.ambient = ambient;
        }
        (AnalyticsLayer::from_parts(shared, control), worker)
    }
}
