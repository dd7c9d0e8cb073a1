//! Counters for every event the layer saw, and the public [`Stats`] snapshot.
//!
//! Owns the accounting invariant: `recorded = delivered + dropped.total() + in_queue`.
//! Never decides anything; it only counts.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use serde::Serialize;

/// Why events were lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DropReason {
    QueueFull,
    CallCap,
    TooLarge,
    Rejected,
    RetriesExhausted,
    SinkPanicked,
    Filtered,
    RedactionFailed,
    HookFailed,
    Shutdown,
}

/// A user hook.
#[derive(Clone, Copy, Debug)]
pub(crate) enum HookKind {
    Identify,
    SessionKey,
    Tags,
    Properties,
}

impl HookKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Identify => "identify",
            Self::SessionKey => "session_key",
            Self::Tags => "tags",
            Self::Properties => "properties",
        }
    }
}

/// Live counters shared by the recorder, the worker and the layer handle.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    recorded: AtomicU64,
    delivered: AtomicU64,
    batches: AtomicU64,
    retries: AtomicU64,
    queue_full: AtomicU64,
    call_cap: AtomicU64,
    too_large: AtomicU64,
    rejected: AtomicU64,
    retries_exhausted: AtomicU64,
    sink_panicked: AtomicU64,
    filtered: AtomicU64,
    redaction_failed: AtomicU64,
    hook_failed: AtomicU64,
    shutdown: AtomicU64,
    requests_unparsed: AtomicU64,
    identify_panics: AtomicU64,
    session_key_panics: AtomicU64,
    tags_panics: AtomicU64,
    properties_panics: AtomicU64,
    session_store_errors: AtomicU64,
    payloads_withheld: AtomicU64,
    spans: AtomicU64,
    telemetry_panics: AtomicU64,
    /// What the layer's own OTLP exporters lost, once it has them.
    export_failures: OnceLock<Arc<ExportFailures>>,
    /// Events the worker has taken off the queue and not yet delivered or dropped.
    pub(crate) in_worker: AtomicU64,
    /// Bytes kept alive by queued exchanges.
    pub(crate) queued_bytes: AtomicUsize,
    /// Events in queued exchanges.
    pub(crate) queued_events: AtomicUsize,
    /// The request path has woken the worker, which has not taken the queue in since.
    pub(crate) wake_requested: AtomicBool,
    /// The request path has warned that the queue is full, and the worker has not yet
    /// summed up that episode (see `episodes`).
    pub(crate) queue_full_warned: AtomicBool,
    /// About how many more events get the worker's open batch sealed (published by the
    /// worker; 0 until it has said).
    pub(crate) seal_in: AtomicUsize,
}

impl Counters {
    pub(crate) fn recorded(&self, n: u64) {
        self.recorded.fetch_add(n, Relaxed);
    }

    pub(crate) fn delivered(&self, n: u64) {
        self.delivered.fetch_add(n, Relaxed);
    }

    pub(crate) fn batch_delivered(&self) {
        self.batches.fetch_add(1, Relaxed);
    }

    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Relaxed);
    }

    pub(crate) fn dropped(&self, reason: DropReason, n: u64) {
        let counter = match reason {
            DropReason::QueueFull => &self.queue_full,
            DropReason::CallCap => &self.call_cap,
            DropReason::TooLarge => &self.too_large,
            DropReason::Rejected => &self.rejected,
            DropReason::RetriesExhausted => &self.retries_exhausted,
            DropReason::SinkPanicked => &self.sink_panicked,
            DropReason::Filtered => &self.filtered,
            DropReason::RedactionFailed => &self.redaction_failed,
            DropReason::HookFailed => &self.hook_failed,
            DropReason::Shutdown => &self.shutdown,
        };
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn unparsed_request(&self) {
        self.requests_unparsed.fetch_add(1, Relaxed);
    }

    pub(crate) fn hook_panicked(&self, kind: HookKind) {
        let counter = match kind {
            HookKind::Identify => &self.identify_panics,
            HookKind::SessionKey => &self.session_key_panics,
            HookKind::Tags => &self.tags_panics,
            HookKind::Properties => &self.properties_panics,
        };
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn session_store_failed(&self) {
        self.session_store_errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn payload_withheld(&self) {
        self.payloads_withheld.fetch_add(1, Relaxed);
    }

    #[cfg_attr(not(feature = "otel"), allow(dead_code))]
    pub(crate) fn span_recorded(&self) {
        self.spans.fetch_add(1, Relaxed);
    }

    pub(crate) fn telemetry_panicked(&self) {
        self.telemetry_panics.fetch_add(1, Relaxed);
    }

    /// Counts, from now on, what these exporters lose.
    #[cfg_attr(not(feature = "otel-otlp"), allow(dead_code))]
    pub(crate) fn follow_exports(&self, failures: Arc<ExportFailures>) {
        let _ = self.export_failures.set(failures);
    }

    /// Counts the events a stopped worker still held as lost to shutdown.
    pub(crate) fn abandon_in_worker(&self) {
        let n = self.in_worker.swap(0, Relaxed);
        self.dropped(DropReason::Shutdown, n);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let dropped = Dropped {
            queue_full: self.queue_full.load(Relaxed),
            call_cap: self.call_cap.load(Relaxed),
            too_large: self.too_large.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            retries_exhausted: self.retries_exhausted.load(Relaxed),
            sink_panicked: self.sink_panicked.load(Relaxed),
            filtered: self.filtered.load(Relaxed),
            redaction_failed: self.redaction_failed.load(Relaxed),
            hook_failed: self.hook_failed.load(Relaxed),
            shutdown: self.shutdown.load(Relaxed),
        };
        let recorded = self.recorded.load(Relaxed);
        let delivered = self.delivered.load(Relaxed);
        Stats {
            recorded,
            delivered,
            batches: self.batches.load(Relaxed),
            retries: self.retries.load(Relaxed),
            in_queue: recorded.saturating_sub(delivered + dropped.total()),
            dropped,
            requests_unparsed: self.requests_unparsed.load(Relaxed),
            hook_panics: HookPanics {
                identify: self.identify_panics.load(Relaxed),
                session_key: self.session_key_panics.load(Relaxed),
                tags: self.tags_panics.load(Relaxed),
                properties: self.properties_panics.load(Relaxed),
            },
            session_store_errors: self.session_store_errors.load(Relaxed),
            payloads_withheld: self.payloads_withheld.load(Relaxed),
            telemetry: TelemetryStats {
                spans: self.spans.load(Relaxed),
                panics: self.telemetry_panics.load(Relaxed),
                spans_export_failed: self
                    .export_failures
                    .get()
                    .map_or(0, |f| f.spans.load(Relaxed)),
                metric_exports_failed: self
                    .export_failures
                    .get()
                    .map_or(0, |f| f.metric_exports.load(Relaxed)),
            },
        }
    }
}

/// A snapshot of the layer's counters.
///
/// `recorded = delivered + dropped.total() + in_queue` (`in_queue` includes events being
/// written to the sink). Counters only grow.
///
/// ```
/// use tower_mcp_analytics::{AnalyticsLayer, MemorySink};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = AnalyticsLayer::new(MemorySink::new());
/// let stats = layer.stats();
/// assert_eq!(stats.recorded, stats.delivered + stats.dropped.total() + stats.in_queue);
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Events the layer produced: one per MCP request or notification observed, plus one
    /// identify event each time a user is new or changed.
    pub recorded: u64,
    /// Events a sink accepted.
    pub delivered: u64,
    /// Batches a sink accepted.
    pub batches: u64,
    /// Attempts that were retries of a failed batch.
    pub retries: u64,
    /// Events queued, batched, being sent or waiting for a retry.
    pub in_queue: u64,
    /// Events lost, by reason.
    pub dropped: Dropped,
    /// POST JSON requests that produced no event and no client response: bodies that are
    /// not JSON (malformed, invalid UTF-8), JSON with no JSON-RPC message in it, or bodies
    /// too large to read, when no `Mcp-Method` header gave a fallback. The request itself
    /// passes through untouched.
    pub requests_unparsed: u64,
    /// Hooks that panicked (the request was unaffected; the event went out without what
    /// the hook would have given).
    pub hook_panics: HookPanics,
    /// Batches whose sessions were decided in memory because the shared session store
    /// failed, answered too late, or was being left alone after failing (no event is lost
    /// for it).
    pub session_store_errors: u64,
    /// Request arguments replaced by a size marker because the calls in flight already
    /// held `in_flight_bytes` of request data (the event went out with the marker).
    pub payloads_withheld: u64,
    /// What OpenTelemetry recording did (feature `otel`; zeros without it).
    pub telemetry: TelemetryStats,
}

/// Spans recorded and what was lost on the way to OpenTelemetry.
///
/// With your own providers, their processors and exporters report their own losses (the
/// SDK logs them); with `OpenTelemetry::otlp_from_env` (feature `otel-otlp`) the layer
/// counts failed exports here too.
///
/// ```
/// use tower_mcp_analytics::TelemetryStats;
///
/// assert_eq!(TelemetryStats::default().spans, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TelemetryStats {
    /// Spans handed to the tracer (one per MCP message event).
    pub spans: u64,
    /// Events whose span or measurements were not recorded because recording panicked
    /// (the event itself still went to the sink).
    pub panics: u64,
    /// Spans in exports the layer's own OTLP exporter gave up on.
    pub spans_export_failed: u64,
    /// Metric exports the layer's own OTLP exporter gave up on.
    pub metric_exports_failed: u64,
}

/// What an exporter the layer made lost, counted by the exporter.
#[derive(Debug, Default)]
pub(crate) struct ExportFailures {
    pub(crate) spans: AtomicU64,
    pub(crate) metric_exports: AtomicU64,
}

/// Panics caught in user hooks, by hook.
///
/// ```
/// use tower_mcp_analytics::HookPanics;
///
/// assert_eq!(HookPanics::default().identify, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HookPanics {
    /// `identify` panicked: the event went out anonymous.
    pub identify: u64,
    /// `session_key` panicked: the event was grouped as if no key was given.
    pub session_key: u64,
    /// `tags` panicked: the request's events were dropped (`dropped.hook_failed`).
    pub tags: u64,
    /// `properties` panicked: the request's events were dropped (`dropped.hook_failed`).
    pub properties: u64,
}

/// Events lost, by reason.
///
/// ```
/// use tower_mcp_analytics::Dropped;
///
/// assert_eq!(Dropped::default().total(), 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Dropped {
    /// The queue between the request path and the worker was full.
    pub queue_full: u64,
    /// Batch entries beyond the per-request cap (`max_calls_per_request`).
    pub call_cap: u64,
    /// Alone larger than a batch may be, or than the destination accepts.
    pub too_large: u64,
    /// The destination refused them for good (e.g. HTTP 400, 401, 403).
    pub rejected: u64,
    /// Every attempt failed (transport errors, timeouts, 429, 5xx).
    pub retries_exhausted: u64,
    /// The sink panicked while sending them.
    pub sink_panicked: u64,
    /// The `redact_event` hook chose to drop them.
    pub filtered: u64,
    /// A `redact` or `redact_event` hook panicked: dropped rather than sent unredacted.
    pub redaction_failed: u64,
    /// A `tags` or `properties` hook panicked: dropped rather than sent half-made.
    pub hook_failed: u64,
    /// Recorded after shutdown began, or still held when its deadline passed.
    pub shutdown: u64,
}

impl Dropped {
    /// All events lost.
    ///
    /// ```
    /// # use tower_mcp_analytics::Dropped;
    /// let dropped = Dropped::default();
    /// assert_eq!(dropped.total(), 0);
    /// ```
    pub fn total(&self) -> u64 {
        self.queue_full
            + self.call_cap
            + self.too_large
            + self.rejected
            + self.retries_exhausted
            + self.sink_panicked
            + self.filtered
            + self.redaction_failed
            + self.hook_failed
            + self.shutdown
    }
}

/// What [`AnalyticsLayer::shutdown`](crate::AnalyticsLayer::shutdown) achieved.
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_analytics::{AnalyticsLayer, MemorySink};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = AnalyticsLayer::new(MemorySink::new());
/// let report = layer.shutdown(Duration::from_secs(1)).await;
/// assert!(report.flushed);
/// assert_eq!(report.stats.in_queue, 0);
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Everything queued before shutdown reached the sink (or was counted as dropped by
    /// the sink) before the deadline.
    pub flushed: bool,
    /// The counters once the worker stopped.
    pub stats: Stats,
}

impl ShutdownReport {
    pub(crate) fn new(flushed: bool, stats: Stats) -> Self {
        Self { flushed, stats }
    }
}
