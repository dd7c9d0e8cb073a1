//! OpenTelemetry spans and metrics by the MCP semantic conventions (feature `otel`).
//!
//! With [`OpenTelemetry`] handed to
//! [`AnalyticsLayerBuilder::opentelemetry`](crate::AnalyticsLayerBuilder::opentelemetry),
//! every MCP request and notification the layer sees becomes:
//!
//! - one `mcp.server` span (kind `SERVER`) named `{mcp.method.name} {target}` (the tool or
//!   prompt name; the method alone otherwise), from the message's arrival to its response
//!   message, with status `ERROR` exactly when `error.type` is set (the JSON-RPC error
//!   code, `tool_error` for `isError: true`, the HTTP status of an error answer without
//!   JSON-RPC, `no_response` or `cancelled`) and the JSON-RPC error message as its
//!   description. Attributes: `mcp.method.name`, `error.type`, `rpc.response.status_code`,
//!   `gen_ai.tool.name`, `gen_ai.prompt.name`, `gen_ai.operation.name` (`execute_tool`),
//!   `jsonrpc.request.id`, `mcp.protocol.version`, `mcp.session.id` (for an MCP session:
//!   the id derived from `Mcp-Session-Id`, never the header's value), `network.protocol.name`,
//!   `network.protocol.version`, `network.transport`; opt-in `mcp.resource.uri`,
//!   `gen_ai.tool.call.arguments` and `gen_ai.tool.call.result` (as JSON text, after the
//!   same privacy stage as events: per-tool exclusions, sanitising, the `redact` and
//!   `redact_event` hooks, truncation). This crate's own, under `tower_mcp_analytics.`:
//!   `event.id` (the event the span was made from), `outcome`, `session.id` (the MCP
//!   session or the grouped one), `client.name`, `client.version`, `user.id`.
//! - a `mcp.server.operation.duration` measurement (seconds, the conventions' buckets, the
//!   span's low-cardinality attributes and never a session id), and a
//!   `mcp.server.session.duration` measurement for each session when it ends (its `DELETE`,
//!   or the inactivity window passing with no message; sessions still open when the worker
//!   stops are not recorded, since another instance may carry them on).
//!
//! **Context.** A span's parent is the W3C `traceparent` / `tracestate` the client put in
//! `params._meta` (SEP-414); the ambient HTTP context (the span current when the request
//! reached the layer, e.g. an outer `TraceLayer`'s, or else the request's `traceparent`
//! header) is linked. Without a context in `_meta`, the ambient one is the parent.
//!
//! **Where the work happens.** The request path reads the ambient context and two headers,
//! nothing more; spans and measurements are made by the layer's worker from finished
//! events, and exported by your providers' own processors (batching, queue bounds,
//! retries). Spans and metrics run next to the event sink, or
//! [`instead`](crate::AnalyticsLayerBuilder::without_sink) of it.
//!
//! ```
//! use tower_mcp_analytics::AnalyticsLayer;
//! use tower_mcp_analytics::otel::OpenTelemetry;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // The providers installed with `opentelemetry::global`:
//! let layer = AnalyticsLayer::builder()
//!     .opentelemetry(OpenTelemetry::global())
//!     .build();
//! # }
//! ```
//!
//! Owns the user-facing configuration and the worker's telemetry stage. Never runs an
//! exporter on the request path, and never records a header, a token or a query string.

mod context;
mod metrics;
mod names;
#[cfg(feature = "otel-otlp")]
mod otlp;
mod spans;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry::global::BoxedTracer;
use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry::trace::{Span, Tracer, TracerProvider};
use opentelemetry::{Context, InstrumentationScope};

pub(crate) use context::{AmbientFn, read_clues};

#[cfg(feature = "otel-otlp")]
pub use otlp::OtlpSetupError;

use crate::delivery::{Observer, ObserverFuture};
use crate::event::Event;
use crate::event::time::Clock;
use crate::stats::Counters;
use metrics::Durations;
use spans::{OptIn, operation_attributes, record_span};

/// How the layer reports to OpenTelemetry: where spans and metrics go, which opt-in
/// attributes they carry, and where the ambient context comes from. See the
/// [module docs](self) for what is recorded.
///
/// ```
/// use tower_mcp_analytics::otel::OpenTelemetry;
///
/// // Your own providers (e.g. `opentelemetry_sdk`'s, with the exporters and processors you
/// // chose); here, whatever `opentelemetry::global` holds.
/// let tracer_provider = opentelemetry::global::tracer_provider();
/// let meter_provider = opentelemetry::global::meter_provider();
/// let otel = OpenTelemetry::new()
///     .tracer_provider(&tracer_provider)
///     .meter_provider(meter_provider.as_ref())
///     .record_tool_arguments(true);
/// ```
pub struct OpenTelemetry {
    tracer: Option<BoxedTracer>,
    meter: Option<Meter>,
    opt_in: OptIn,
    ambient: AmbientFn,
    #[cfg(feature = "otel-otlp")]
    owned: Option<otlp::Owned>,
}

impl Default for OpenTelemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for OpenTelemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenTelemetry")
            .field("spans", &self.tracer.is_some())
            .field("metrics", &self.meter.is_some())
            .field("opt_in", &self.opt_in)
            .finish_non_exhaustive()
    }
}

impl OpenTelemetry {
    /// Neither spans nor metrics until a provider is given.
    ///
    /// ```
    /// let otel = tower_mcp_analytics::otel::OpenTelemetry::new();
    /// ```
    pub fn new() -> Self {
        Self {
            tracer: None,
            meter: None,
            opt_in: OptIn::default(),
            ambient: Arc::new(Context::current),
            #[cfg(feature = "otel-otlp")]
            owned: None,
        }
    }

    /// Spans and metrics through the providers installed with `opentelemetry::global`
    /// (as they are when the layer is built).
    ///
    /// ```
    /// let otel = tower_mcp_analytics::otel::OpenTelemetry::global();
    /// ```
    pub fn global() -> Self {
        let mut otel = Self::new();
        otel.tracer = Some(opentelemetry::global::tracer_with_scope(scope()));
        otel.meter = Some(opentelemetry::global::meter_with_scope(scope()));
        otel
    }

    /// Spans through this provider (e.g. an `opentelemetry_sdk` `SdkTracerProvider` with
    /// a batch exporter).
    ///
    /// ```
    /// let provider = opentelemetry::global::tracer_provider();
    /// let otel = tower_mcp_analytics::otel::OpenTelemetry::new().tracer_provider(&provider);
    /// ```
    pub fn tracer_provider<P, T, S>(mut self, provider: &P) -> Self
    where
        P: TracerProvider<Tracer = T>,
        T: Tracer<Span = S> + Send + Sync + 'static,
        S: Span + Send + Sync + 'static,
    {
        let tracer = provider.tracer_with_scope(scope());
        self.tracer = Some(BoxedTracer::new(Box::new(tracer)));
        self
    }

    /// Metrics through this provider (e.g. an `opentelemetry_sdk` `SdkMeterProvider` with
    /// a periodic reader).
    ///
    /// ```
    /// let provider = opentelemetry::global::meter_provider();
    /// let otel = tower_mcp_analytics::otel::OpenTelemetry::new().meter_provider(provider.as_ref());
    /// ```
    pub fn meter_provider<P: MeterProvider + ?Sized>(mut self, provider: &P) -> Self {
        self.meter = Some(provider.meter_with_scope(scope()));
        self
    }

    /// Records `gen_ai.tool.call.arguments` on tool-call spans (default off). The
    /// arguments are those events carry: not at all when
    /// [`capture_arguments`](crate::AnalyticsLayerBuilder::capture_arguments) is off or
    /// the tool is excluded, and otherwise sanitised, redacted and truncated.
    ///
    /// ```
    /// let otel = tower_mcp_analytics::otel::OpenTelemetry::global().record_tool_arguments(true);
    /// ```
    pub fn record_tool_arguments(mut self, on: bool) -> Self {
        self.opt_in.arguments = on;
        self
    }

    /// Records `gen_ai.tool.call.result` on spans of tool calls that succeeded (default
    /// off), under the same rules as [`record_tool_arguments`](Self::record_tool_arguments).
    ///
    /// ```
    /// let otel = tower_mcp_analytics::otel::OpenTelemetry::global().record_tool_results(true);
    /// ```
    pub fn record_tool_results(mut self, on: bool) -> Self {
        self.opt_in.results = on;
        self
    }

    /// Records `mcp.resource.uri` on `resources/*` spans (default off: a URI may name a
    /// user's file or record).
    ///
    /// ```
    /// let otel = tower_mcp_analytics::otel::OpenTelemetry::global().record_resource_uri(true);
    /// ```
    pub fn record_resource_uri(mut self, on: bool) -> Self {
        self.opt_in.resource_uri = on;
        self
    }

    /// Where the ambient context comes from when a request reaches the layer (default:
    /// `opentelemetry::Context::current`). With `tracing-opentelemetry`, where an outer
    /// `TraceLayer`'s span lives in `tracing`, pass
    /// `|| tracing::Span::current().context()`. Runs on the request path: keep it cheap.
    /// A panic counts as no ambient context.
    ///
    /// ```
    /// let otel = tower_mcp_analytics::otel::OpenTelemetry::global()
    ///     .ambient_context(opentelemetry::Context::current);
    /// ```
    pub fn ambient_context<F>(mut self, ambient: F) -> Self
    where
        F: Fn() -> Context + Send + Sync + 'static,
    {
        self.ambient = Arc::new(ambient);
        self
    }

    /// The request path's part: the ambient context function.
    pub(crate) fn ambient(&self) -> AmbientFn {
        Arc::clone(&self.ambient)
    }

    /// The worker's part: the stage that records spans and measurements.
    pub(crate) fn stage(
        self,
        window: Duration,
        clock: Option<Clock>,
        counters: Arc<Counters>,
    ) -> Telemetry {
        #[cfg(feature = "otel-otlp")]
        if let Some(owned) = &self.owned {
            counters.follow_exports(Arc::clone(&owned.failures));
        }
        Telemetry {
            durations: self
                .meter
                .as_ref()
                .map(|meter| Durations::new(meter, window)),
            tracer: self.tracer,
            opt_in: self.opt_in,
            clock,
            counters,
            #[cfg(feature = "otel-otlp")]
            owned: self.owned.map(Arc::new),
        }
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(names::SCOPE)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// The worker's telemetry stage.
pub(crate) struct Telemetry {
    tracer: Option<BoxedTracer>,
    durations: Option<Durations>,
    opt_in: OptIn,
    clock: Option<Clock>,
    counters: Arc<Counters>,
    #[cfg(feature = "otel-otlp")]
    owned: Option<Arc<otlp::Owned>>,
}

impl Observer for Telemetry {
    fn event(&mut self, event: &Event) {
        let Some(trace) = event.trace.as_deref() else {
            return;
        };
        let attributes = operation_attributes(event, trace);
        if let Some(durations) = &mut self.durations {
            durations.operation(event, trace, &attributes);
        }
        if let Some(tracer) = &self.tracer {
            record_span(tracer, event, trace, self.opt_in, attributes);
            self.counters.span_recorded();
        }
    }

    fn tick(&mut self) {
        let now = self
            .clock
            .as_ref()
            .map_or_else(SystemTime::now, |clock| clock());
        if let Some(durations) = &mut self.durations {
            durations.review(now);
        }
    }

    fn session_ended(&mut self, session: &str) {
        if let Some(durations) = &mut self.durations {
            durations.session_ended(session);
        }
    }

    fn flush(&self) -> Option<ObserverFuture> {
        #[cfg(feature = "otel-otlp")]
        if let Some(owned) = &self.owned {
            return Some(otlp::flush(Arc::clone(owned)));
        }
        None
    }

    fn close(&mut self) -> Option<ObserverFuture> {
        #[cfg(feature = "otel-otlp")]
        if let Some(owned) = self.owned.take() {
            return Some(otlp::shutdown(owned));
        }
        None
    }
}
