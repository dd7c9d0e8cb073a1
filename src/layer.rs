//! [`AnalyticsLayer`]: configuration, the background worker's lifetime, and the handle
//! users keep for `stats`, `flush` and `shutdown`.
//!
//! Owns the builder and its defaults, and the worker's lifetime: started where
//! [`WorkerRuntime`] says (the current tokio runtime, or a small thread of its own), stopped
//! by `shutdown`. Never touches a request: that is [`AnalyticsService`]'s job.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use http::HeaderName;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tower_layer::Layer;

use crate::delivery::{
    self, Counters, Recorder, RetryPolicy, ShutdownReport, Stats, WorkerConfig, WorkerRuntime,
};
use crate::enrich::Enricher;
use crate::event::Event;
use crate::hooks::Hooks;
use crate::identity::{RequestView, UserIdentity};
use crate::privacy::{MASK, PayloadLimits, Privacy, SENSITIVE_HEADERS};
use crate::retention::Retention;
use crate::service::AnalyticsService;
use crate::session::{GuardedStore, MemorySessionStore, SessionMode, SessionStore, Sessions};
use crate::sink::{JsonLinesSink, Sink};

/// Default most bytes of a request body read before the request reaches the server.
pub const DEFAULT_CAPTURE_LIMIT: usize = 4 * 1024 * 1024;

/// Request-path settings shared by every service the layer builds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    pub(crate) capture_limit: usize,
    pub(crate) response_capture_limit: usize,
    pub(crate) max_calls_per_request: usize,
}

/// A source of wall-clock time (injectable for tests and demos).
pub(crate) type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) hooks: Hooks,
    /// What calls in flight may keep of their requests.
    pub(crate) retention: Retention,
    /// Headers to copy into events, and whether each is forced past the sensitive mask.
    captured_headers: Vec<(HeaderName, bool)>,
    clock: Option<Clock>,
    worker: Mutex<Option<JoinHandle<()>>>,
    /// Whether the first shutdown delivered everything before its deadline.
    flushed: AtomicBool,
}

/// A tower [`Layer`] that turns the MCP traffic of an HTTP server into analytics events.
///
/// Put it in front of any tower HTTP MCP service (axum, hyper, rmcp's
/// `StreamableHttpService`): requests and responses pass through byte for byte, and
/// each JSON-RPC request or notification becomes an [`Event`](crate::Event) delivered by a
/// background worker to the configured [`Sink`]. Clones share one worker and one set of
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
}

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
        let worker = self
            .shared
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(worker) = worker else {
            let flushed = self.shared.flushed.load(Ordering::Acquire);
            return ShutdownReport::new(flushed, self.stats());
        };
        let flushed = tokio::time::timeout(timeout, self.flush()).await.is_ok();
        worker.abort();
        let _ = worker.await;
        recorder.counters().abandon_in_worker();
        self.shared.flushed.store(flushed, Ordering::Release);
        ShutdownReport::new(flushed, self.stats())
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Shared {
    /// The captured headers of a request, sensitive ones masked unless forced.
    pub(crate) fn capture_headers(&self, headers: &http::HeaderMap) -> Vec<(String, String)> {
        self.captured_headers
            .iter()
            .filter_map(|(name, forced)| {
                let value = headers.get(name)?;
                let sensitive = SENSITIVE_HEADERS.contains(&name.as_str());
                let text = if sensitive && !forced {
                    MASK.to_owned()
                } else {
                    String::from_utf8_lossy(value.as_bytes()).into_owned()
                };
                Some((name.as_str().to_owned(), text))
            })
            .collect()
    }

    /// The wall-clock time of a request's arrival.
    pub(crate) fn now(&self) -> SystemTime {
        self.clock
            .as_ref()
            .map_or_else(SystemTime::now, |clock| clock())
    }
}

impl<S> Layer<S> for AnalyticsLayer {
    type Service = AnalyticsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AnalyticsService::new(inner, self)
    }
}

impl std::fmt::Debug for AnalyticsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyticsLayer")
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Default `max_calls_per_request`.
pub(crate) const DEFAULT_MAX_CALLS_PER_REQUEST: usize = 100;
/// Default `in_flight_bytes`.
pub(crate) const DEFAULT_IN_FLIGHT_BYTES: usize = 8 * 1024 * 1024;
/// Default `queue_bytes`.
pub(crate) const DEFAULT_QUEUE_BYTES: usize = 16 * 1024 * 1024;
/// Default `batch_size`.
pub(crate) const DEFAULT_BATCH_SIZE: usize = 2_000;
/// Default `batch_bytes`.
pub(crate) const DEFAULT_BATCH_BYTES: usize = 1024 * 1024;
/// Default `max_in_flight`.
pub(crate) const DEFAULT_MAX_IN_FLIGHT: usize = 16;

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
pub struct AnalyticsLayerBuilder {
    sink: Option<Arc<dyn Sink>>,
    hooks: Hooks,
    session_mode: SessionMode,
    inactivity_window: Duration,
    session_store: Option<Arc<dyn SessionStore>>,
    session_store_timeout: Duration,
    identity_capacity: usize,
    clock: Option<Clock>,
    privacy: Privacy,
    captured_headers: Vec<(HeaderName, bool)>,
    capture_limit: usize,
    response_capture_limit: usize,
    in_flight_bytes: usize,
    max_calls_per_request: usize,
    queue_capacity: usize,
    queue_bytes: usize,
    batch_size: usize,
    batch_bytes: usize,
    flush_interval: Duration,
    max_in_flight: usize,
    retry: RetryPolicy,
    worker_runtime: WorkerRuntime,
}

impl Default for AnalyticsLayerBuilder {
    fn default() -> Self {
        Self {
            sink: None,
            hooks: Hooks::default(),
            session_mode: SessionMode::Auto,
            inactivity_window: Duration::from_secs(30 * 60),
            session_store: None,
            session_store_timeout: Duration::from_secs(1),
            identity_capacity: 100_000,
            clock: None,
            privacy: Privacy::default(),
            captured_headers: Vec::new(),
            capture_limit: DEFAULT_CAPTURE_LIMIT,
            response_capture_limit: DEFAULT_CAPTURE_LIMIT,
            in_flight_bytes: DEFAULT_IN_FLIGHT_BYTES,
            max_calls_per_request: DEFAULT_MAX_CALLS_PER_REQUEST,
            queue_capacity: 10_000,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            batch_size: DEFAULT_BATCH_SIZE,
            batch_bytes: DEFAULT_BATCH_BYTES,
            flush_interval: Duration::from_secs(1),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            retry: RetryPolicy::default(),
            worker_runtime: WorkerRuntime::Current,
        }
    }
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

    /// Who made each request. Runs on the request path, synchronously, before the server
    /// sees the request, for every request that produces events: keep it lightweight (read
    /// a header, an extension an auth layer set, a field of the arguments; no I/O). A
    /// panic in it is caught and counted (`stats().hook_panics.identify`); the event then
    /// goes out anonymous. An identify event is emitted when a user is new or their name
    /// or data changed. See [`identity::from_header`](crate::identity::from_header) and
    /// [`identity::from_bearer_token`](crate::identity::from_bearer_token).
    ///
    /// ```
    /// use tower_mcp_analytics::{AnalyticsLayer, UserIdentity};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = AnalyticsLayer::builder()
    ///     .identify(|request| request.header("x-user-id").map(UserIdentity::new))
    ///     .build();
    /// # }
    /// ```
    pub fn identify<F>(mut self, identify: F) -> Self
    where
        F: Fn(&RequestView<'_>) -> Option<UserIdentity> + Send + Sync + 'static,
    {
        self.hooks.identify = Some(Arc::new(identify));
        self
    }

    /// The server's own session key for a request (e.g. an explicit state handle among
    /// the arguments): events with the same key share a session whose id is derived from
    /// the key. Runs on the request path like [`identify`](Self::identify); a panic is
    /// caught and counted, and the event is then grouped as if no key was given.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .session_key(|request| request.header("x-conversation-id").map(String::from))
    ///     .build();
    /// # }
    /// ```
    pub fn session_key<F>(mut self, key: F) -> Self
    where
        F: Fn(&RequestView<'_>) -> Option<String> + Send + Sync + 'static,
    {
        self.hooks.session_key = Some(Arc::new(key));
        self
    }

    /// How events get their session (default [`SessionMode::Auto`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .session_mode(tower_mcp_analytics::SessionMode::Backend)
    ///     .build();
    /// # }
    /// ```
    pub fn session_mode(mut self, mode: SessionMode) -> Self {
        self.session_mode = mode;
        self
    }

    /// Longest gap between two events of a user and client that keeps them in one session
    /// (default 30 minutes). Also how long a session's client is remembered.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .inactivity_window(Duration::from_secs(15 * 60))
    ///     .build();
    /// # }
    /// ```
    pub fn inactivity_window(mut self, window: Duration) -> Self {
        self.inactivity_window = window;
        self
    }

    /// Where session grouping state lives (default: a [`MemorySessionStore`] of
    /// `identity_capacity` groups).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .session_store(tower_mcp_analytics::MemorySessionStore::with_capacity(10_000))
    ///     .build();
    /// # }
    /// ```
    pub fn session_store(mut self, store: impl SessionStore) -> Self {
        self.session_store = Some(Arc::new(store));
        self
    }

    /// Longest wait for a shared session store's answer (default 1 s). Past it, or when
    /// the store fails, the batch's sessions are decided in memory (counted in
    /// `stats().session_store_errors`) and the store is left alone for a while; no event
    /// waits longer or is lost.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .session_store_timeout(Duration::from_millis(250))
    ///     .build();
    /// # }
    /// ```
    pub fn session_store_timeout(mut self, timeout: Duration) -> Self {
        self.session_store_timeout = timeout;
        self
    }

    /// Most users, sessions and clients remembered in memory (default 100,000 each; least
    /// recently seen evicted), so that a client inventing identities cannot grow memory.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().identity_capacity(10_000).build();
    /// # }
    /// ```
    pub fn identity_capacity(mut self, entries: usize) -> Self {
        self.identity_capacity = entries.max(1);
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

    /// Request headers to copy into events (none by default). `authorization`,
    /// `proxy-authorization`, `cookie`, `set-cookie` and `x-api-key` are masked as
    /// `[redacted]` even when named here; see [`force_capture_headers`](Self::force_capture_headers).
    /// Invalid names are ignored.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .capture_headers(["x-tenant", "x-request-id"])
    ///     .build();
    /// # }
    /// ```
    pub fn capture_headers<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.add_headers(names, false);
        self
    }

    /// Request headers to copy into events as they are, sensitive ones included. Only for
    /// headers you know carry no secret in your deployment.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .force_capture_headers(["x-api-key"])
    ///     .build();
    /// # }
    /// ```
    pub fn force_capture_headers<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.add_headers(names, true);
        self
    }

    fn add_headers<'a>(&mut self, names: impl IntoIterator<Item = &'a str>, forced: bool) {
        for name in names {
            match HeaderName::try_from(name.to_ascii_lowercase()) {
                Ok(name) => {
                    self.captured_headers.retain(|(known, _)| *known != name);
                    self.captured_headers.push((name, forced));
                }
                Err(_) => tracing::warn!(header = name, "invalid header name to capture; ignored"),
            }
        }
    }

    /// Whether events carry the request's `params.arguments` (default true).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().capture_arguments(false).build();
    /// # }
    /// ```
    pub fn capture_arguments(mut self, capture: bool) -> Self {
        self.privacy.capture_arguments = capture;
        self
    }

    /// Whether events carry the response's `result` (default true).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().capture_results(false).build();
    /// # }
    /// ```
    pub fn capture_results(mut self, capture: bool) -> Self {
        self.privacy.capture_results = capture;
        self
    }

    /// Tools whose calls are recorded without their arguments and results.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .exclude_tool_payloads(["read_medical_record"])
    ///     .build();
    /// # }
    /// ```
    pub fn exclude_tool_payloads<'a>(mut self, tools: impl IntoIterator<Item = &'a str>) -> Self {
        self.privacy
            .excluded_tools
            .extend(tools.into_iter().map(String::from));
        self
    }

    /// A function applied to every string in arguments, results, errors and user data
    /// (object keys and system fields such as ids, event type and tool name are left
    /// alone): return a replacement, or `None` to keep the string. Runs in the worker. If
    /// it panics, the event is dropped, never sent unredacted, and counted as
    /// `dropped.redaction_failed`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .redact(|text| text.contains("sk_live_").then(|| "[secret]".to_owned()))
    ///     .build();
    /// # }
    /// ```
    pub fn redact<F>(mut self, redact: F) -> Self
    where
        F: Fn(&str) -> Option<String> + Send + Sync + 'static,
    {
        self.privacy.redact = Some(Arc::new(redact));
        self
    }

    /// A function that sees each whole event before [`redact`](Self::redact): it may
    /// change it, or return `false` to drop it (counted as `dropped.filtered`). Runs in
    /// the worker; if it panics the event is dropped and counted as
    /// `dropped.redaction_failed`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .redact_event(|event| event.method != "ping")
    ///     .build();
    /// # }
    /// ```
    pub fn redact_event<F>(mut self, redact: F) -> Self
    where
        F: Fn(&mut Event) -> bool + Send + Sync + 'static,
    {
        self.privacy.redact_event = Some(Arc::new(redact));
        self
    }

    /// Short labels for a request's events, from the same view as `identify` (on the
    /// request path: keep it light). Invalid entries are dropped (keys: at most 32
    /// characters of `[a-zA-Z0-9$_.:- ]`; values: at most 200 characters, no newlines; at
    /// most 50 tags) and logged once. If it panics, the request's events are dropped
    /// (`dropped.hook_failed`); the request is unaffected.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .tags(|request| {
    ///         request.header("x-region").map(|r| vec![("region".to_owned(), r.to_owned())]).unwrap_or_default()
    ///     })
    ///     .build();
    /// # }
    /// ```
    pub fn tags<F>(mut self, tags: F) -> Self
    where
        F: Fn(&RequestView<'_>) -> Vec<(String, String)> + Send + Sync + 'static,
    {
        self.hooks.tags = Some(Arc::new(tags));
        self
    }

    /// Free-form JSON properties for a request's events, like [`tags`](Self::tags).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .properties(|request| Some(serde_json::json!({ "path": request.parts().uri.path() })))
    ///     .build();
    /// # }
    /// ```
    pub fn properties<F>(mut self, properties: F) -> Self
    where
        F: Fn(&RequestView<'_>) -> Option<serde_json::Value> + Send + Sync + 'static,
    {
        self.hooks.properties = Some(Arc::new(properties));
        self
    }

    /// Caps on payloads: strings, nesting, collection sizes and whole events (defaults
    /// 10 KiB, depth 10, 500 items, 100 KiB). Cut values carry markers saying their
    /// original size.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tower_mcp_analytics::PayloadLimits;
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .payload_limits(PayloadLimits { event_bytes: 32 * 1024, ..PayloadLimits::default() })
    ///     .build();
    /// # }
    /// ```
    pub fn payload_limits(mut self, limits: PayloadLimits) -> Self {
        self.privacy.limits = limits;
        self
    }

    /// Most bytes of a JSON POST body read before the request reaches the server (default
    /// 4 MiB). A larger body is passed on untouched without being read (its event then
    /// comes from the `Mcp-Method` / `Mcp-Name` headers when the client sent them).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().capture_limit(64 * 1024).build();
    /// # }
    /// ```
    pub fn capture_limit(mut self, bytes: usize) -> Self {
        self.capture_limit = bytes;
        self
    }

    /// Most bytes of one JSON response, or one SSE message, read to learn the outcome
    /// (default 4 MiB). Larger answers still reach the client in full; their event says
    /// [`Outcome::TooLarge`](crate::Outcome::TooLarge).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().response_capture_limit(1 << 20).build();
    /// # }
    /// ```
    pub fn response_capture_limit(mut self, bytes: usize) -> Self {
        self.response_capture_limit = bytes;
        self
    }

    /// Most events made from one HTTP request (default 100). Entries of a batch beyond it
    /// are counted as `dropped.call_cap`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().max_calls_per_request(10).build();
    /// # }
    /// ```
    pub fn max_calls_per_request(mut self, calls: usize) -> Self {
        self.max_calls_per_request = calls.max(1);
        self
    }

    /// Most bytes of request arguments that calls in flight keep for their events
    /// (default 8 MiB), whatever the number of calls. Arguments up to 4 KiB are copied and
    /// always kept; larger ones are kept while the budget lasts, and past it the event
    /// carries a size marker (`{"_truncated":{"bytes":N}}`) instead, counted in
    /// `stats().payloads_withheld`. Only what is kept counts: the request itself goes to
    /// the server untouched.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().in_flight_bytes(32 << 20).build();
    /// # }
    /// ```
    pub fn in_flight_bytes(mut self, bytes: usize) -> Self {
        self.in_flight_bytes = bytes;
        self
    }

    /// Most events waiting between the request path and the worker (default 10,000);
    /// the worker itself also holds at most this many (batched, in flight, awaiting a
    /// retry). Past it new events are dropped and counted as `queue_full`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().queue_capacity(1_000).build();
    /// # }
    /// ```
    pub fn queue_capacity(mut self, events: usize) -> Self {
        self.queue_capacity = events.max(1);
        self
    }

    /// Most bytes of request and response data the queue may keep alive (default 16 MiB);
    /// the worker itself also holds at most this many bytes of event JSON (batched, in
    /// flight, awaiting a retry). A single exchange larger than this is let into an empty
    /// queue only.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().queue_bytes(4 << 20).build();
    /// # }
    /// ```
    pub fn queue_bytes(mut self, bytes: usize) -> Self {
        self.queue_bytes = bytes;
        self
    }

    /// Most bytes of event JSON in one batch (default 1 MiB): the ceiling of the adaptive
    /// batch size. Batches are sealed at 64 KiB (or at this, when lower) to begin with; each
    /// batch delivered after a sealed batch had to wait for a sending slot doubles that, up
    /// to this; every flush interval without such a wait halves it back. A collector
    /// answering 413 to a batch of several events caps it at half that batch from then on.
    /// A single event larger than this is sent in a batch of its own.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().batch_bytes(256 * 1024).build();
    /// # }
    /// ```
    pub fn batch_bytes(mut self, bytes: usize) -> Self {
        self.batch_bytes = bytes.max(1);
        self
    }

    /// Most batches being sent at once (default 16): the ceiling of the adaptive sending
    /// window. Sending starts with 2 slots (or this, when lower); each batch delivered after
    /// a sealed batch had to wait for a slot opens one more, up to this; every flush
    /// interval without such a wait halves the window back, and any retryable failure
    /// (transport error, timeout, 429, 5xx) drops it to 2 at once, so that a failing
    /// collector never sees more than 2 new requests at a time. Events in flight still
    /// count against `queue_capacity` and `queue_bytes`, which bound the worker.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().max_in_flight(4).build();
    /// # }
    /// ```
    pub fn max_in_flight(mut self, batches: usize) -> Self {
        self.max_in_flight = batches.max(1);
        self
    }

    /// Most attempts at one batch, the first included (default 5). Retries follow
    /// transport errors, timeouts, 408, 429, 500, 502, 503 and 504.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().max_attempts(3).build();
    /// # }
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.retry.max_attempts = attempts.max(1);
        self
    }

    /// Retry backoff: full jitter over `base * 2^(attempt - 1)`, at most `cap` (defaults
    /// 500 ms and 30 s). A `Retry-After` pauses all sending for at least the backoff and at
    /// most 60 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .backoff(Duration::from_millis(100), Duration::from_secs(5))
    ///     .build();
    /// # }
    /// ```
    pub fn backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.retry.base = base;
        self.retry.cap = cap.max(base);
        self
    }

    /// Most events handed to the sink in one call (default 2,000). Batches are sized by
    /// bytes first (see [`batch_bytes`](Self::batch_bytes)); this caps how many small
    /// events one batch carries. The worker is also woken as soon as 100 exchanges (or this
    /// many, when fewer) wait.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().batch_size(500).build();
    /// # }
    /// ```
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = events.max(1);
        self
    }

    /// Longest time a recorded event waits before its batch is sealed and sent (default 1 s):
    /// an event recorded at `t` is in a batch handed to the sink by `t + interval`, unless
    /// every sending slot is busy or the destination asked for a pause. The worker also wakes as soon as enough exchanges are queued to seal a batch (at
    /// most 100), and on [`flush`](AnalyticsLayer::flush); it is never woken once per
    /// request.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .flush_interval(Duration::from_millis(100))
    ///     .build();
    /// # }
    /// ```
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Where the background worker runs (default [`WorkerRuntime::Current`]: a task on the
    /// runtime the layer is built on). [`WorkerRuntime::Dedicated`] gives it a thread and a
    /// current-thread runtime of its own, keeping event building, compression and sending
    /// off the server's runtime threads; `stats`, `flush` and `shutdown` work the same.
    ///
    /// ```
    /// use tower_mcp_analytics::{AnalyticsLayer, WorkerRuntime};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = AnalyticsLayer::builder()
    ///     .worker_runtime(WorkerRuntime::Dedicated)
    ///     .build();
    /// let report = layer.shutdown(std::time::Duration::from_secs(5)).await;
    /// assert!(report.flushed);
    /// # }
    /// ```
    pub fn worker_runtime(mut self, runtime: WorkerRuntime) -> Self {
        self.worker_runtime = runtime;
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
        let (tx, rx) = mpsc::channel(self.queue_capacity);
        let counters = Arc::new(Counters::default());
        let wake = Arc::new(Notify::new());
        let wake_at = delivery::WAKE_EVERY
            .min(self.batch_size)
            .min(self.queue_capacity);
        let recorder = Arc::new(Recorder::new(
            tx,
            Arc::clone(&wake),
            wake_at,
            Arc::clone(&counters),
            self.queue_bytes,
            self.queue_capacity,
        ));
        let sink = self
            .sink
            .unwrap_or_else(|| Arc::new(JsonLinesSink::stdout()));
        let config = WorkerConfig {
            batch_size: self.batch_size,
            batch_bytes: self.batch_bytes,
            flush_interval: self.flush_interval,
            max_in_flight: self.max_in_flight,
            max_events: self.queue_capacity,
            max_bytes: self.queue_bytes,
            retry: self.retry,
        };
        let capacity = NonZeroUsize::new(self.identity_capacity).unwrap_or(NonZeroUsize::MIN);
        let store = self
            .session_store
            .unwrap_or_else(|| Arc::new(MemorySessionStore::with_capacity(self.identity_capacity)));
        let sessions = Sessions {
            mode: self.session_mode,
            window: self.inactivity_window,
            store: GuardedStore::new(
                store,
                self.identity_capacity,
                self.session_store_timeout,
                Arc::clone(&counters),
            ),
        };
        let enricher = Enricher::new(sessions, capacity, Arc::clone(&counters));
        let privacy = Arc::new(self.privacy);
        let worker = delivery::spawn(
            delivery::run(rx, wake, sink, enricher, privacy, counters, config),
            self.worker_runtime,
        );
        AnalyticsLayer {
            shared: Arc::new(Shared {
                config: Config {
                    capture_limit: self.capture_limit,
                    response_capture_limit: self.response_capture_limit,
                    max_calls_per_request: self.max_calls_per_request,
                },
                recorder,
                hooks: self.hooks,
                retention: Retention::new(self.in_flight_bytes),
                captured_headers: self.captured_headers,
                clock: self.clock,
                worker: Mutex::new(worker),
                flushed: AtomicBool::new(true),
            }),
        }
    }
}
