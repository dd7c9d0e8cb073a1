//! # tower-mcp-analytics
//!
//! Product analytics for MCP servers, as one tower layer: which tools are called, from
//! which AI client, with what result and latency, without touching the server's code.
//!
//! [`AnalyticsLayer`] goes in front of any tower HTTP MCP service (an axum `Router`,
//! rmcp's `StreamableHttpService`, a hyper server through `hyper_util`'s
//! `TowerToHyperService`). It reads JSON-RPC request bodies (single messages and
//! 2025-03-26 batches), taps responses (JSON or server-sent events, streamed, never
//! buffered) and turns every MCP request and notification into an [`Event`]: who
//! ([`identity`]), from which AI client, in which session (grouped by user + client +
//! inactivity window on stateless servers, see [`SessionMode`]; across every instance of a
//! deployment with `RedisSessionStore`, cargo feature `redis`), with what outcome and
//! latency. A background worker makes each event safe and bounded (no headers, tokens or
//! query strings unless named; binary content removed; redaction hooks; truncation to
//! [`PayloadLimits`]) and batches events to a [`Sink`](sink::Sink): an HTTP collector
//! ([`HttpSink`]) with retries, or JSON lines on stdout by default.
//!
//! The server and its clients cannot tell the layer is there: the inner service receives
//! the exact request bytes, the client receives the exact response bytes, status and
//! headers, and server-sent events pass the moment they are produced. Analytics never
//! delays, changes or fails a request: a malformed body, a panicking hook, a full queue or
//! a dead collector only shows in [`AnalyticsLayer::stats`], which accounts for every
//! event. The only exceptions are the two [`insights`] you may turn on: intent capture
//! (an optional argument added to every tool's schema and taken back out of calls) and
//! the virtual `get_more_tools` tool, which the layer lists and answers itself.
//!
//! Every setting is a method of [`AnalyticsLayerBuilder`]; every function of yours the
//! layer calls is listed in [`hooks`]. The worker runs on the runtime the layer is built
//! on, on a thread of its own ([`WorkerRuntime`]), or wherever you spawn it
//! ([`AnalyticsLayerBuilder::build_with_worker`]). Cargo features: `http-sink` (on by
//! default: [`HttpSink`]), `redis` (`RedisSessionStore`), `otel` (the `otel` module:
//! OpenTelemetry spans and metrics by the MCP semantic conventions, beside events or
//! instead of them), `otel-otlp` (`otel`, exported over OTLP/HTTP as the
//! `OTEL_EXPORTER_OTLP_*` variables say), `bench-internals` (entry points for the crate's
//! own benchmarks, no stability promise).
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::post};
//! use tower_mcp_analytics::{AnalyticsLayer, HttpSink, identity};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let analytics = AnalyticsLayer::builder()
//!     .identify(identity::from_header("x-user-id"))
//!     .sink(HttpSink::new("http://127.0.0.1:4318/v1/events"))
//!     .build();
//! let app: Router = Router::new()
//!     .route("/mcp", post(|body: String| async move { body }))
//!     .layer(analytics.clone());
//! // serve `app` with axum::serve(...); on shutdown:
//! analytics.shutdown(Duration::from_secs(5)).await;
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

// The crate, in the order a request's data flows:
//
//   layer.rs, builder.rs  the handle users keep (stats, flush, shutdown) and every setting
//   service/              the request path: the service, its future, opening an exchange
//   body/                 the bodies put in place: ReplayBody (request), ObservedBody (response)
//   protocol/             the wire formats read: JSON-RPC, MCP headers, server-sent events
//   exchange/             one request's calls in flight, its facts (Origin), their byte budget
//   hooks/                everything a server can hook, and running the request hooks
//   insights/             opt-in rewrites: intent capture, the virtual get_more_tools
//   delivery/             the worker and its stages: recorder -> build -> enrich -> privacy
//                         -> observers -> batch -> sink, and where it runs
//   otel/                 an observer: OpenTelemetry spans and metrics (feature `otel`)
//   stats.rs              the counters that account for every event
//   privacy/              what of a request may leave the process, and how big
//   session/              the session rules and their stores (memory, Redis)
//   event/                the Event record, its ids and times
//   sink/                 where events go
#[cfg(feature = "bench-internals")]
pub mod bench_internals;
mod body;
mod builder;
mod delivery;
mod event;
mod exchange;
pub mod hooks;
pub mod insights;
mod layer;
#[cfg(feature = "otel")]
pub mod otel;
mod privacy;
mod protocol;
mod service;
mod session;
pub mod sink;
mod stats;

pub use body::{ObservedBody, ReplayBody};
pub use builder::AnalyticsLayerBuilder;
pub use delivery::{AnalyticsWorker, WorkerRuntime};
pub use event::{Event, EventError, Outcome, RawJson, ResponseKind};
pub use hooks::identity;
pub use hooks::{McpMessage, RequestView, UserIdentity};
pub use layer::AnalyticsLayer;
pub use privacy::PayloadLimits;
pub use service::{AnalyticsService, DEFAULT_CAPTURE_LIMIT, ResponseFuture};
#[cfg(feature = "redis")]
pub use session::RedisSessionStore;
pub use session::{
    ClientNote, ClientQuery, ClientUpdate, ClientsFuture, MemorySessionStore, SessionMode,
    SessionRequest, SessionStore, SharedClient, StoreError, StoreFuture,
};
pub use stats::{Dropped, HookPanics, ShutdownReport, Stats, TelemetryStats};

/// The Redis client the [`RedisSessionStore`] is built on (cargo feature `redis`), for
/// [`RedisSessionStore::with_connection`].
///
/// ```no_run
/// use tower_mcp_analytics::redis::Client;
///
/// let client = Client::open("redis://127.0.0.1/").expect("a valid URL");
/// ```
#[cfg(feature = "redis")]
pub use ::redis;
#[cfg(feature = "http-sink")]
pub use sink::HttpSink;
pub use sink::{JsonLinesSink, MemorySink};
