//! [`AnalyticsLayerBuilder`]: every setting of a layer, and building it.
//!
//! Owns the user-facing settings. Each setter writes into the part of the configuration
//! it belongs to ([`Limits`] of the request path, [`HeaderCapture`], [`Privacy`],
//! [`SessionConfig`], [`DeliveryConfig`]), each with its own defaults; `build` hands each
//! part to the stage that uses it and starts the worker. Never touches a request.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::delivery::{self, AnalyticsWorker, Counters, DeliveryConfig, Enricher, WorkerRuntime};
use crate::event::Event;
use crate::hooks::{Hooks, RequestView, UserIdentity};
use crate::layer::AnalyticsLayer;
use crate::privacy::{HeaderCapture, PayloadLimits, Privacy};
use crate::service::{Clock, Limits, Shared};
use crate::session::{SessionConfig, SessionMode, SessionStore};
use crate::sink::{JsonLinesSink, Sink};

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
        self.sessions.mode = mode;
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
        self.sessions.window = window;
        self
    }

    /// Where session grouping state lives (default: a [`MemorySessionStore`](crate::MemorySessionStore) of
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
        self.sessions.store = Some(Arc::new(store));
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
        self.sessions.store_timeout = timeout;
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
        self.sessions.capacity = entries.max(1);
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
        self.headers.add(names, false);
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
        self.headers.add(names, true);
        self
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
        self.limits.capture_limit = bytes;
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
        self.limits.response_capture_limit = bytes;
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
        self.limits.max_calls_per_request = calls.max(1);
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
        self.limits.in_flight_bytes = bytes;
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
        self.delivery.queue_capacity = events.max(1);
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
        self.delivery.queue_bytes = bytes;
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
        self.delivery.batch_bytes = bytes.max(1);
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
        self.delivery.max_in_flight = batches.max(1);
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
        self.delivery.retry.max_attempts = attempts.max(1);
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
        self.delivery.retry.base = base;
        self.delivery.retry.cap = cap.max(base);
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
        self.delivery.batch_size = events.max(1);
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
        self.delivery.flush_interval = interval.max(Duration::from_millis(1));
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
        self.delivery.runtime = runtime;
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
        delivery::spawn(worker, runtime);
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
        let enricher = Enricher::new(self.sessions, Arc::clone(&counters));
        let (recorder, worker, control) = delivery::pipeline(
            self.delivery,
            sink,
            enricher,
            Arc::new(self.privacy),
            counters,
        );
        let shared = Shared::new(self.limits, recorder, self.hooks, self.headers, self.clock);
        (AnalyticsLayer::from_parts(shared, control), worker)
    }
}
