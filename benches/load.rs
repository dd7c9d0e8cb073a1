//! Load benchmark: a real rmcp 3.9 stateless MCP server, bare and behind `AnalyticsLayer`,
//! driven over loopback HTTP by a load generator, variants alternating in one run.
//!
//! ```text
//! cargo bench --bench load
//! ```
//!
//! Each server variant runs in a process of its own (this binary, started again with
//! `LOAD_BENCH_SERVER` set), so each has its own peak memory. The variants share one
//! handler, the demo server of the examples, served statelessly with JSON answers (rmcp
//! answers with SSE when a tool reports progress):
//!
//! * `bare`: the rmcp service alone;
//! * `healthy`: behind the layer, delivering to a collector on loopback that answers 202;
//! * `slow`: `healthy` with a collector 50 ms away: it answers every batch (202) only
//!   after `LOAD_BENCH_COLLECTOR_DELAY_MS` (default 50), many batches at once. It runs
//!   only when `LOAD_BENCH_VARIANTS` names it;
//! * `dead`: behind the layer, the collector's port refuses connections;
//! * `hung`: behind the layer, the collector accepts and never answers;
//! * `thread` (only when named): `healthy` with `.worker_runtime(WorkerRuntime::Dedicated)`,
//!   the worker on a thread of its own instead of the server's runtime threads;
//! * `shared-memory`: `healthy` with the memory store presented as a shared one, so that
//!   the layer takes its shared-store path (a backlog gathered per store call, the memory
//!   mirror, the timeout) with no Redis behind it;
//! * `redis` (only with the cargo feature `redis`): `healthy` with
//!   `.session_store(RedisSessionStore::open(url)?)`, on a `redis-server` this bench starts
//!   on a free loopback port (no persistence) and stops at the end. Every batch of grouped
//!   events costs the worker one round trip to it. Compare its ratio to `bare` with
//!   `healthy`'s (the memory store);
//! * `otel` (only with the cargo feature `otel-otlp`): `healthy`'s layer with
//!   `.opentelemetry(OpenTelemetry::otlp_http(url)?).without_sink()`: spans and metrics
//!   instead of events (no event is serialised or batched), exported over OTLP/HTTP
//!   (protobuf, a batch span processor and a periodic metric reader with the SDK's
//!   defaults, or the `OTEL_BSP_*` and `OTEL_METRIC_EXPORT_INTERVAL` set for this bench)
//!   to an OTLP collector of this bench (on CPU 0) that answers 200 to every export;
//! * `otel+events` (only with `otel-otlp`): `healthy` (its `HttpSink`) with
//!   `.opentelemetry(OpenTelemetry::otlp_http(url)?)`: events, spans and metrics.
//!
//! The layer is configured as a user would: `identify` from the bearer token, the default
//! queue, batches and payload limits, an `HttpSink` with gzip. No request carries
//! `Mcp-Session-Id`, so every event is grouped by user + client into sessions.
//!
//! The load generator (hyper's client, `CONNECTIONS` keep-alive connections, each sending
//! its next request when the previous answer is read) sends protocol 2026-07-28
//! `tools/call` requests, each naming its client in `_meta`, from 50 users (bearer tokens)
//! and two clients, in one or more mixes (`LOAD_BENCH_MIXES`), run one after the other,
//! each against fresh server processes and reported in a section of its own:
//!
//! * `mix` (the default), in tens:
//!   * 5: `add`, small arguments, JSON answer;
//!   * 2: `echo` with 64 KiB of text, JSON answer of the same size;
//!   * 3: `progress` of 3 steps with a progress token, SSE answer (3 progress
//!     notifications, then the result);
//! * `small`: `add` only;
//! * `16k`: `echo` with 16 KiB of text only, JSON answer of the same size.
//!
//! With `taskset` present, the servers run on CPU 1 (with every thread they start: the
//! OTLP exporters' too) and the load generator, collectors and `redis-server` on CPU 0, so
//! the server's own CPU is what limits throughput. Every answer is read to its end and
//! checked to be a 200.
//!
//! Two phases, variants alternating round by round (the order reversed every other
//! round):
//!
//! 1. **Saturated**: each connection sends its next request as soon as the previous
//!    answer is read. Requests/s is the server's capacity; latency is mostly queueing.
//! 2. **Fixed rate**: the connections together send 30% of the bare server's saturated
//!    rate on a fixed schedule, the same rate for every variant: the latency a request
//!    sees on a server with headroom.
//!
//! Each phase reports medians over its rounds of requests/s, p50 and p99 latency and the
//! server's CPU time per request (from `/proc/<pid>/stat`), each with its ratio to
//! `bare`, and the server CPU each layered variant adds per request (its median minus
//! `bare`'s, in µs); then latency per request kind, and the resident memory of each
//! server after its first round and at the end, and its peak (`VmHWM`).
//!
//! At the end of a mix every server stops serving and shuts its layer down, with up to
//! 10 s to deliver what it still holds, then reports the layer's counters: events
//! recorded, delivered, and lost in all and by reason (`queue_full`, `retries_exhausted`,
//! `shutdown`, ... as `Stats` counts them), the events still queued when the load
//! stopped, and whether the shutdown delivered everything within its deadline. For
//! `redis`, the scripts Redis ran, its own time per script, and the group keys it holds
//! follow. For `otel` and `otel+events`, what OpenTelemetry recording did
//! (`Stats::telemetry`: spans recorded, spans in exports the exporter gave up on, failed
//! metric exports) and what their OTLP collector received (trace and metric export
//! requests, their bytes, and the spans in them, counted from the protobuf) follow too.
//!
//! Environment:
//!
//! * `LOAD_BENCH_ROUNDS`: saturated rounds, default 5; the fixed-rate phase runs half as
//!   many;
//! * `LOAD_BENCH_SECS`: seconds per round, default 5;
//! * `LOAD_BENCH_CONNECTIONS`: default 16;
//! * `LOAD_BENCH_VARIANTS`: a comma separated subset of the variants;
//! * `LOAD_BENCH_MIXES`: a comma separated list of `mix`, `small`, `16k`; default `mix`;
//! * `LOAD_BENCH_ONLY`: a comma separated subset of `add`, `echo`, `progress`: each mix
//!   sends one of each of those kinds it has, in turn, to see what each costs;
//! * `LOAD_BENCH_COLLECTOR_DELAY_MS`: how long the `slow` collector takes to answer,
//!   default 50.
//!
//! ```text
//! cargo bench --features redis --bench load
//! LOAD_BENCH_VARIANTS=bare,healthy,redis LOAD_BENCH_ROUNDS=3 cargo bench --features redis --bench load
//! LOAD_BENCH_VARIANTS=bare,healthy,slow LOAD_BENCH_MIXES=small,16k cargo bench --bench load
//! LOAD_BENCH_VARIANTS=bare,healthy,otel,otel+events LOAD_BENCH_MIXES=small,mix LOAD_BENCH_ROUNDS=3 LOAD_BENCH_SECS=4 cargo bench --features otel-otlp --bench load
//! ```

#[path = "support/closing.rs"]
mod closing;
#[path = "../examples/support/demo_server.rs"]
mod demo_server;
#[path = "support/process.rs"]
mod process;
#[cfg(feature = "redis")]
#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use process::{ChildServer, env_number, pin_self, serve_until_stdin_closes};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use closing::Closing;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
#[cfg(feature = "otel-otlp")]
use tower_mcp_analytics::otel::OpenTelemetry;
use tower_mcp_analytics::{
    AnalyticsLayer, HttpSink, MemorySessionStore, SessionRequest, SessionStore, StoreFuture,
    WorkerRuntime, identity,
};

const VARIANTS: &[&str] = &[
    "bare",
    "healthy",
    "thread",
    "slow",
    "shared-memory",
    #[cfg(feature = "redis")]
    "redis",
    #[cfg(feature = "otel-otlp")]
    "otel",
    #[cfg(feature = "otel-otlp")]
    "otel+events",
    "dead",
    "hung",
];
/// Variants run only when `LOAD_BENCH_VARIANTS` names them, so that the default run
/// keeps its length.
const OPT_IN: &[&str] = &["slow", "thread"];
const USERS: usize = 50;
const CLIENTS: [&str; 2] = ["claude-ai", "cursor-vscode"];
const WARM_UP: Duration = Duration::from_secs(1);

fn main() {
    if let Ok(variant) = std::env::var("LOAD_BENCH_SERVER") {
        server_main(&variant);
        return;
    }
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let rounds = env_number("LOAD_BENCH_ROUNDS", 5) as usize;
    let round = Duration::from_secs(env_number("LOAD_BENCH_SECS", 5));
    let connections = env_number("LOAD_BENCH_CONNECTIONS", 16) as usize;
    let variants: Vec<&'static str> = match std::env::var("LOAD_BENCH_VARIANTS") {
        Ok(list) => {
            let named = |variant: &str| list.split(',').any(|wanted| wanted.trim() == variant);
            if !cfg!(feature = "redis") && named("redis") {
                eprintln!("load: the redis variant needs `--features redis`; skipped");
            }
            if !cfg!(feature = "otel-otlp") && (named("otel") || named("otel+events")) {
                eprintln!("load: the otel variants need `--features otel-otlp`; skipped");
            }
            VARIANTS
                .iter()
                .copied()
                .filter(|variant| named(variant))
                .collect()
        }
        Err(_) => VARIANTS
            .iter()
            .copied()
            .filter(|variant| !OPT_IN.contains(variant))
            .collect(),
    };
    let collector_delay = Duration::from_millis(env_number("LOAD_BENCH_COLLECTOR_DELAY_MS", 50));
    let mixes = mixes();
    let pinned = pin_self(0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let settings = Settings {
        variants,
        rounds,
        round,
        connections,
        collector_delay,
        pinned,
    };
    runtime.block_on(drive(settings, mixes));
}

// ---------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------

fn server_main(variant: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mcp = demo_server::mcp_service(demo_server::Mode::StatelessJson);
        let mut router = Router::new().route_service("/mcp", mcp);
        let layer = match analytics_layer(variant) {
            Ok(layer) => layer,
            Err(error) => {
                eprintln!("load: server {variant}: {error:#}");
                std::process::exit(1);
            }
        };
        if let Some(layer) = &layer {
            router = router.layer(layer.clone());
        }
        serve_until_stdin_closes(router).await;
        // The load has stopped: what is still queued or in flight gets up to
        // `SHUTDOWN_DEADLINE` to reach the collector before it counts as lost.
        closing::shut_down_and_print(layer, SHUTDOWN_DEADLINE).await;
    });
}

/// The layer of `variant`, configured from the parent's environment: none for `bare`
/// (or with neither a collector nor an OTLP collector), a Redis session store for
/// `redis`, OpenTelemetry for `otel` (without the sink) and `otel+events`.
fn analytics_layer(variant: &str) -> anyhow::Result<Option<AnalyticsLayer>> {
    let collector = std::env::var("LOAD_BENCH_COLLECTOR").ok();
    let otlp = std::env::var("LOAD_BENCH_OTLP").ok();
    if variant == "bare" || (collector.is_none() && otlp.is_none()) {
        return Ok(None);
    }
    let mut builder = AnalyticsLayer::builder().identify(identity::from_bearer_token());
    if let Some(url) = collector {
        builder = builder.sink(HttpSink::new(url));
    }
    if variant == "shared-memory" {
        builder = builder.session_store(SharedMemory(MemorySessionStore::new()));
    }
    if variant == "thread" {
        builder = builder.worker_runtime(WorkerRuntime::Dedicated);
    }
    #[cfg(feature = "redis")]
    let builder = if variant == "redis" {
        let redis = std::env::var("LOAD_BENCH_REDIS")
            .map_err(|_| anyhow::anyhow!("LOAD_BENCH_REDIS is not set"))?;
        builder.session_store(tower_mcp_analytics::RedisSessionStore::open(&redis)?)
    } else {
        builder
    };
    #[cfg(feature = "otel-otlp")]
    let builder = match otlp {
        Some(base) => {
            let builder = builder.opentelemetry(OpenTelemetry::otlp_http(&base)?);
            if variant == "otel" {
                builder.without_sink()
            } else {
                builder
            }
        }
        None => builder,
    };
    #[cfg(not(feature = "otel-otlp"))]
    if otlp.is_some() {
        anyhow::bail!("LOAD_BENCH_OTLP needs `--features otel-otlp`");
    }
    Ok(Some(builder.build()))
}

/// The memory store, presented to the layer as shared: the layer's path for a shared
/// store (gathering a backlog per call, the memory mirror, the timeout) with a store that
/// answers on its next poll, in process. Beside `healthy` and `redis` it tells the cost of
/// that path from the cost of Redis itself.
struct SharedMemory(MemorySessionStore);

impl SessionStore for SharedMemory {
    fn assign<'a>(&'a self, requests: &'a [SessionRequest], window: Duration) -> StoreFuture<'a> {
        let ids = self.0.assign(requests, window);
        Box::pin(async move {
            tokio::task::yield_now().await;
            ids.await
        })
    }
}

/// One variant's server process.
struct ServerProcess {
    variant: &'static str,
    server: ChildServer,
    /// What its OTLP collector received (`otel` variants).
    otlp: Option<Arc<OtlpReceived>>,
}

/// Where a server process sends: its collector, its Redis, its OTLP collector.
struct Endpoints {
    collector: Option<String>,
    redis: Option<String>,
    otlp: Option<(String, Arc<OtlpReceived>)>,
}

impl ServerProcess {
    fn start(variant: &'static str, endpoints: Endpoints, pinned: bool) -> Self {
        let Endpoints {
            collector,
            redis,
            otlp,
        } = endpoints;
        let server = ChildServer::start(pinned, |command| {
            command.env("LOAD_BENCH_SERVER", variant);
            if let Some(url) = &collector {
                command.env("LOAD_BENCH_COLLECTOR", url);
            }
            if let Some(url) = &redis {
                command.env("LOAD_BENCH_REDIS", url);
            }
            if let Some((url, _)) = &otlp {
                command.env("LOAD_BENCH_OTLP", url);
            }
        });
        Self {
            variant,
            server,
            otlp: otlp.map(|(_, received)| received),
        }
    }

    /// Asks the server to stop: it stops serving, then shuts its layer down (waiting up
    /// to `SHUTDOWN_DEADLINE` for what is still queued) and prints its counters.
    fn request_stop(&mut self) {
        self.server.request_stop();
    }

    /// Stops the server (asking first if not done yet) and returns its counters.
    fn stop(self) -> Closing {
        Closing::parse(&self.server.stop())
    }
}

/// How long a stopping server's layer may take to deliver what it still holds.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// The collector
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum CollectorState {
    Healthy,
    /// Answers every batch (202) after this long, as a collector one round trip away
    /// would. Batches wait concurrently: each is a task of its own.
    Slow(Duration),
    Dead,
    Hung,
}

async fn collect(
    State((state, received)): State<(CollectorState, Arc<AtomicU64>)>,
    body: Bytes,
) -> StatusCode {
    match state {
        CollectorState::Hung => std::future::pending::<()>().await,
        CollectorState::Slow(delay) => tokio::time::sleep(delay).await,
        CollectorState::Healthy | CollectorState::Dead => {}
    }
    received.fetch_add(body.len() as u64, Ordering::Relaxed);
    StatusCode::ACCEPTED
}

async fn collector(state: CollectorState) -> String {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("address");
    if state == CollectorState::Dead {
        drop(listener);
    } else {
        let app = Router::new()
            .route("/v1/events", post(collect))
            .with_state((state, Arc::new(AtomicU64::new(0))));
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    format!("http://{addr}/v1/events")
}

/// What an OTLP collector received: export requests and their bytes per signal, and the
/// spans in the trace exports.
#[derive(Default)]
struct OtlpReceived {
    trace_requests: AtomicU64,
    trace_bytes: AtomicU64,
    spans: AtomicU64,
    metric_requests: AtomicU64,
    metric_bytes: AtomicU64,
}

/// `POST /v1/traces`: an OTLP/HTTP trace export (`ExportTraceServiceRequest`, protobuf).
async fn otlp_traces(
    State(received): State<Arc<OtlpReceived>>,
    headers: http::HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    received.trace_requests.fetch_add(1, Ordering::Relaxed);
    received
        .trace_bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    // The layer's exporter gzips by default.
    let gzipped = headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let spans = if gzipped {
        let mut plain = Vec::new();
        match std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain) {
            Ok(_) => count_spans(&plain),
            Err(_) => 0,
        }
    } else {
        count_spans(&body)
    };
    received.spans.fetch_add(spans, Ordering::Relaxed);
    otlp_success()
}

/// `POST /v1/metrics`: an OTLP/HTTP metric export.
async fn otlp_metrics(State(received): State<Arc<OtlpReceived>>, body: Bytes) -> impl IntoResponse {
    received.metric_requests.fetch_add(1, Ordering::Relaxed);
    received
        .metric_bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    otlp_success()
}

/// A full success: 200, and an empty `Export*ServiceResponse` (no partial success).
fn otlp_success() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
    )
}

/// An OTLP/HTTP collector on loopback that accepts every export (on this process's CPU),
/// for the `otel` variants: its base URL (`/v1/traces` and `/v1/metrics` are appended by
/// the exporter) and what it received.
async fn otlp_collector() -> (String, Arc<OtlpReceived>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("address");
    let received = Arc::new(OtlpReceived::default());
    let app = Router::new()
        .route("/v1/traces", post(otlp_traces))
        .route("/v1/metrics", post(otlp_metrics))
        .layer(DefaultBodyLimit::disable())
        .with_state(Arc::clone(&received));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

/// The spans in an `ExportTraceServiceRequest`, counted on the protobuf wire without
/// decoding them: `resource_spans` (field 1), their `scope_spans` (2), their `spans` (2).
fn count_spans(request: &[u8]) -> u64 {
    embedded(request, 1)
        .into_iter()
        .flat_map(|resource_spans| embedded(resource_spans, 2))
        .map(|scope_spans| embedded(scope_spans, 2).len() as u64)
        .sum()
}

/// The length-delimited fields numbered `number` of a protobuf message, in order; what
/// follows a malformed field is not read.
fn embedded(mut message: &[u8], number: u64) -> Vec<&[u8]> {
    let mut found = Vec::new();
    while let Some(key) = varint(&mut message) {
        let length = match key & 7 {
            0 => match varint(&mut message) {
                Some(_) => continue,
                None => break,
            },
            1 => 8,
            2 => match varint(&mut message).and_then(|length| usize::try_from(length).ok()) {
                Some(length) => length,
                None => break,
            },
            5 => 4,
            _ => break,
        };
        let Some((value, rest)) = message.split_at_checked(length) else {
            break;
        };
        if key == number << 3 | 2 {
            found.push(value);
        }
        message = rest;
    }
    found
}

/// A protobuf varint read off the front of `bytes`.
fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// The load generator
// ---------------------------------------------------------------------------------------

/// One kind of request the load generator sends.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// `add`: small arguments, JSON answer.
    Add,
    /// `echo` of `bytes` of text: a JSON answer of the same size.
    Echo { bytes: usize },
    /// `progress` of 3 steps with a progress token: an SSE answer.
    Progress,
}

/// Latencies are kept per slot: one per tool.
const SLOTS: usize = 3;

impl Kind {
    fn slot(self) -> usize {
        match self {
            Self::Add => 0,
            Self::Echo { .. } => 1,
            Self::Progress => 2,
        }
    }

    fn tool(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Echo { .. } => "echo",
            Self::Progress => "progress",
        }
    }

    fn label(self) -> String {
        match self {
            Self::Add => "add (JSON)".to_owned(),
            Self::Echo { bytes } => format!("echo {} KiB (JSON)", bytes / 1024),
            Self::Progress => "progress (SSE)".to_owned(),
        }
    }

    fn body(self, id: u64, client: &str, big: &str) -> Bytes {
        let meta = format!(
            r#""_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{{"name":"{client}","version":"1.0.0"}},"io.modelcontextprotocol/clientCapabilities":{{}}"#
        );
        let body = match self {
            Self::Add => format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"add","arguments":{{"a":{id},"b":2}},{meta}}}}}}}"#
            ),
            Self::Echo { bytes } => {
                let text = &big[..bytes.min(big.len())];
                format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{text}"}},{meta}}}}}}}"#
                )
            }
            Self::Progress => format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"progress","arguments":{{"steps":3}},{meta},"progressToken":{id}}}}}}}"#
            ),
        };
        Bytes::from(body)
    }
}

/// A sequence of requests each connection sends over and over, run as one section of
/// the report (`LOAD_BENCH_MIXES`).
struct Mix {
    name: &'static str,
    description: &'static str,
    sequence: Vec<Kind>,
}

impl Mix {
    fn named(name: &str) -> Option<Self> {
        use Kind::{Add, Echo, Progress};
        const ECHO_64K: Kind = Echo { bytes: 64 * 1024 };
        let mix = match name {
            "mix" => Self {
                name: "mix",
                description: "in tens: 5 add, 2 echo of 64 KiB, 3 progress of 3 steps",
                sequence: vec![
                    Add, Progress, Add, ECHO_64K, Add, Progress, Add, ECHO_64K, Add, Progress,
                ],
            },
            "small" => Self {
                name: "small",
                description: "add only",
                sequence: vec![Add],
            },
            "16k" => Self {
                name: "16k",
                description: "echo of 16 KiB only",
                sequence: vec![Echo { bytes: 16 * 1024 }],
            },
            _ => return None,
        };
        Some(mix)
    }

    /// With `LOAD_BENCH_ONLY` (a comma separated subset of `add`, `echo`, `progress`),
    /// one request of each named kind the mix has, in turn, to see what each costs.
    fn only(mut self, only: &str) -> Self {
        let mut kinds: Vec<Kind> = Vec::new();
        for kind in &self.sequence {
            if only.split(',').any(|name| name.trim() == kind.tool()) && !kinds.contains(kind) {
                kinds.push(*kind);
            }
        }
        kinds.sort_by_key(|kind| kind.slot());
        self.sequence = kinds;
        self
    }

    /// The longest `echo` text of the mix.
    fn big_text(&self) -> usize {
        self.sequence
            .iter()
            .map(|kind| match kind {
                Kind::Echo { bytes } => *bytes,
                _ => 0,
            })
            .max()
            .unwrap_or(0)
    }

    /// The label of the kind in `slot`, if the mix has one.
    fn label(&self, slot: usize) -> Option<String> {
        self.sequence
            .iter()
            .find(|kind| kind.slot() == slot)
            .map(|kind| kind.label())
    }
}

/// The mixes of `LOAD_BENCH_MIXES` (default `mix`), each narrowed by `LOAD_BENCH_ONLY`.
fn mixes() -> Vec<Mix> {
    let names = std::env::var("LOAD_BENCH_MIXES").unwrap_or_else(|_| "mix".to_owned());
    let only = std::env::var("LOAD_BENCH_ONLY").ok();
    let mut mixes = Vec::new();
    for name in names
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let Some(mut mix) = Mix::named(name) else {
            eprintln!("load: unknown mix {name:?} (known: mix, small, 16k); skipped");
            continue;
        };
        if let Some(only) = &only {
            mix = mix.only(only);
        }
        if mix.sequence.is_empty() {
            eprintln!("load: mix {name:?} has none of LOAD_BENCH_ONLY's kinds; skipped");
            continue;
        }
        mixes.push(mix);
    }
    mixes
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Latencies (µs) of one round, per request kind, and the number of failed requests.
struct RoundResult {
    latencies: [Vec<u32>; SLOTS],
    failures: u64,
    elapsed: Duration,
}

impl RoundResult {
    fn requests(&self) -> usize {
        self.latencies.iter().map(Vec::len).sum()
    }
}

/// How a connection sends: as soon as its previous answer is read, or on a fixed
/// schedule (one request per `every`, starting after `offset`).
#[derive(Clone, Copy)]
enum Pace {
    Closed,
    Fixed { every: Duration, offset: Duration },
}

async fn one_connection(
    client: HttpClient,
    url: Arc<str>,
    worker: usize,
    until: Instant,
    mix: Arc<[Kind]>,
    big: Arc<str>,
    pace: Pace,
) -> ([Vec<u32>; SLOTS], u64) {
    let mut latencies: [Vec<u32>; SLOTS] = Default::default();
    let mut failures = 0;
    let token = format!("Bearer user-{}", worker % USERS);
    let client_name = CLIENTS[worker % CLIENTS.len()];
    let mut sequence = worker as u64 * 1_000_000;
    let mut next = match pace {
        Pace::Fixed { offset, .. } => Instant::now() + offset,
        Pace::Closed => Instant::now(),
    };
    while Instant::now() < until {
        if let Pace::Fixed { every, .. } = pace {
            tokio::time::sleep_until(next.into()).await;
            next += every;
            if Instant::now() >= until {
                break;
            }
        }
        sequence += 1;
        let kind = mix[sequence as usize % mix.len()];
        let request = Request::post(&*url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(header::AUTHORIZATION, &token)
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", kind.tool())
            .body(Full::new(kind.body(sequence, client_name, &big)))
            .expect("request");
        let start = Instant::now();
        let ok = match client.request(request).await {
            Ok(response) => {
                let status = response.status();
                let body = response.into_body().collect().await;
                status == StatusCode::OK && body.is_ok()
            }
            Err(_) => false,
        };
        let micros = start.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        if ok {
            latencies[kind.slot()].push(micros);
        } else {
            failures += 1;
        }
    }
    (latencies, failures)
}

/// What every connection sends: a mix's sequence of requests, and the text its `echo`
/// requests take their argument from.
struct Load {
    sequence: Arc<[Kind]>,
    big: Arc<str>,
}

impl Load {
    fn new(mix: &Mix) -> Self {
        Self {
            sequence: Arc::from(mix.sequence.as_slice()),
            big: Arc::from("x".repeat(mix.big_text()).as_str()),
        }
    }
}

/// Runs `connections` connections against `url` for `length`. With `rate`, the
/// connections together send that many requests per second on a fixed schedule;
/// without, each sends its next request as soon as its previous answer is read.
async fn run_load(
    client: &HttpClient,
    url: &str,
    load: &Load,
    connections: usize,
    length: Duration,
    rate: Option<f64>,
) -> RoundResult {
    let url: Arc<str> = Arc::from(url);
    let start = Instant::now();
    let until = start + length;
    let tasks: Vec<_> = (0..connections)
        .map(|worker| {
            let pace = match rate {
                Some(rate) => {
                    let every = Duration::from_secs_f64(connections as f64 / rate);
                    let offset = every.mul_f64(worker as f64 / connections as f64);
                    Pace::Fixed { every, offset }
                }
                None => Pace::Closed,
            };
            tokio::spawn(one_connection(
                client.clone(),
                url.clone(),
                worker,
                until,
                load.sequence.clone(),
                load.big.clone(),
                pace,
            ))
        })
        .collect();
    let mut result = RoundResult {
        latencies: Default::default(),
        failures: 0,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (latencies, failures) = task.await.expect("load task");
        for (all, mine) in result.latencies.iter_mut().zip(latencies) {
            all.extend(mine);
        }
        result.failures += failures;
    }
    result.elapsed = start.elapsed();
    result
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[index])
}

/// Throughput and latency figures of one round.
#[derive(Clone, Copy, Default)]
struct Figures {
    rps: f64,
    cpu_us: f64,
    p50: f64,
    p99: f64,
    kind_p50: [f64; SLOTS],
    kind_p99: [f64; SLOTS],
}

fn figures(mut result: RoundResult) -> Figures {
    let rps = result.requests() as f64 / result.elapsed.as_secs_f64();
    let mut all: Vec<u32> = result.latencies.iter().flatten().copied().collect();
    all.sort_unstable();
    let mut figures = Figures {
        rps,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
        ..Figures::default()
    };
    for (kind, latencies) in result.latencies.iter_mut().enumerate() {
        latencies.sort_unstable();
        figures.kind_p50[kind] = percentile(latencies, 0.50);
        figures.kind_p99[kind] = percentile(latencies, 0.99);
    }
    figures
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The run's settings, from the environment.
struct Settings {
    variants: Vec<&'static str>,
    rounds: usize,
    round: Duration,
    connections: usize,
    collector_delay: Duration,
    pinned: bool,
}

async fn drive(settings: Settings, mixes: Vec<Mix>) {
    // The Redis of the `redis` variant: started here, so it runs on this process's CPU,
    // and stopped when `redis` is dropped at the end.
    #[cfg(feature = "redis")]
    let redis = if settings.variants.contains(&"redis") {
        match redis_server::RedisServer::start() {
            Ok(server) => Some(server),
            Err(error) => {
                eprintln!("load: cannot start redis-server: {error:#}");
                std::process::exit(1);
            }
        }
    } else {
        None
    };
    #[cfg(feature = "redis")]
    let redis_url = redis.as_ref().map(redis_server::RedisServer::url);
    #[cfg(not(feature = "redis"))]
    let redis_url: Option<String> = None;

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(settings.connections)
        .build(connector);
    eprintln!(
        "load: {} variants, {} mixes, {} rounds of {:?}, {} connections, pinned: {}",
        settings.variants.len(),
        mixes.len(),
        settings.rounds,
        settings.round,
        settings.connections,
        settings.pinned,
    );
    for mix in &mixes {
        // Fresh server processes for every mix, so that memory and counters are the mix's.
        let mut servers = Vec::new();
        for &variant in &settings.variants {
            let state = match variant {
                "healthy" | "thread" | "shared-memory" | "redis" | "otel+events" => {
                    Some(CollectorState::Healthy)
                }
                "slow" => Some(CollectorState::Slow(settings.collector_delay)),
                "dead" => Some(CollectorState::Dead),
                "hung" => Some(CollectorState::Hung),
                _ => None,
            };
            let endpoints = Endpoints {
                collector: match state {
                    Some(state) => Some(collector(state).await),
                    None => None,
                },
                redis: redis_url.clone().filter(|_| variant == "redis"),
                otlp: match variant {
                    "otel" | "otel+events" => Some(otlp_collector().await),
                    _ => None,
                },
            };
            servers.push(ServerProcess::start(variant, endpoints, settings.pinned));
        }
        run_mix(&settings, mix, &client, servers).await;
        #[cfg(feature = "redis")]
        if let Some(redis) = &redis {
            println!();
            println!(
                "Redis (`redis`), since the run began:{}",
                redis_usage(redis)
            );
        }
    }
}

/// Runs both phases of `mix` against `servers`, prints the mix's section of the report
/// and stops the servers.
async fn run_mix(settings: &Settings, mix: &Mix, client: &HttpClient, servers: Vec<ServerProcess>) {
    let Settings {
        rounds,
        round,
        connections,
        ..
    } = *settings;
    let load = Load::new(mix);
    eprintln!("load: mix {} ({})", mix.name, mix.description);
    // 1. Saturation: each connection sends as soon as its previous answer is read.
    let mut results: Vec<Vec<Figures>> = vec![Vec::new(); servers.len()];
    let mut failures = vec![0u64; servers.len()];
    let mut first_rss = vec![0u64; servers.len()];
    let mut last_rss = vec![0u64; servers.len()];
    for round_index in 0..rounds {
        for index in round_order(round_index, servers.len()) {
            let server = &servers[index];
            let _ = run_load(
                client,
                &server.server.url,
                &load,
                connections,
                WARM_UP,
                None,
            )
            .await;
            let (figures, failed) = measured(client, server, &load, connections, round, None).await;
            failures[index] += failed;
            log_round("saturated", round_index, server.variant, &figures);
            results[index].push(figures);
            let rss = server.server.memory_kib("VmRSS:");
            if round_index == 0 {
                first_rss[index] = rss;
            }
            last_rss[index] = rss;
        }
    }
    let saturated: Vec<Figures> = results.iter().map(|rounds| medians(rounds)).collect();
    let names: Vec<&str> = servers.iter().map(|server| server.variant).collect();
    let bare = names.iter().position(|variant| *variant == "bare");

    // 2. Fixed rate: a moderate load, the same for every variant.
    let base = bare.map_or(saturated[0].rps, |index| saturated[index].rps);
    let rate = (base * PACED_SHARE).max(1.0);
    let paced_rounds = rounds.div_ceil(2).max(1);
    let mut paced_results: Vec<Vec<Figures>> = vec![Vec::new(); servers.len()];
    for round_index in 0..paced_rounds {
        for index in round_order(round_index, servers.len()) {
            let server = &servers[index];
            let (figures, failed) =
                measured(client, server, &load, connections, round, Some(rate)).await;
            failures[index] += failed;
            log_round("paced", round_index, server.variant, &figures);
            paced_results[index].push(figures);
            last_rss[index] = server.server.memory_kib("VmRSS:");
        }
    }
    let paced: Vec<Figures> = paced_results.iter().map(|rounds| medians(rounds)).collect();

    println!();
    println!("## Mix `{}`: {}", mix.name, mix.description);
    println!();
    println!(
        "Saturated: {connections} connections, each sending as soon as its answer is read \
         (medians of {rounds} rounds of {}s)",
        round.as_secs()
    );
    println!();
    print_table(&names, &saturated, bare, &failures, true);
    println!();
    println!(
        "Fixed rate: {rate:.0} requests/s ({:.0}% of the bare server's saturated rate), \
         {connections} connections (medians of {paced_rounds} rounds of {}s)",
        PACED_SHARE * 100.0,
        round.as_secs()
    );
    println!();
    print_table(&names, &paced, bare, &failures, false);
    println!();
    println!("Latency by request kind, at the fixed rate:");
    println!();
    println!("| server | request | p50 | vs bare | p99 | vs bare |");
    println!("|---|---|---|---|---|---|");
    for (index, name) in names.iter().enumerate() {
        let m = paced[index];
        for slot in 0..SLOTS {
            let Some(label) = mix.label(slot) else {
                continue;
            };
            if m.kind_p50[slot].is_nan() {
                continue;
            }
            println!(
                "| {name} | {label} | {:.0} µs | {} | {:.0} µs | {} |",
                m.kind_p50[slot],
                ratio(m.kind_p50[slot], bare.map(|b| paced[b].kind_p50[slot])),
                m.kind_p99[slot],
                ratio(m.kind_p99[slot], bare.map(|b| paced[b].kind_p99[slot])),
            );
        }
    }

    // Peaks are read before the servers stop; all are asked to stop at once, so the
    // layers' shutdown deadlines run together.
    let peaks: Vec<u64> = servers
        .iter()
        .map(|server| server.server.memory_kib("VmHWM:"))
        .collect();
    let mut servers = servers;
    for server in &mut servers {
        server.request_stop();
    }
    let otlp: Vec<Option<Arc<OtlpReceived>>> =
        servers.iter().map(|server| server.otlp.clone()).collect();
    let closings: Vec<(&'static str, Closing)> = servers
        .into_iter()
        .map(|server| (server.variant, server.stop()))
        .collect();
    println!();
    println!("| server | resident after saturated round 1 | at the end | peak (VmHWM) |");
    println!("|---|---|---|---|");
    for (index, name) in names.iter().enumerate() {
        println!(
            "| {name} | {:.1} MiB | {:.1} MiB | {:.1} MiB |",
            first_rss[index] as f64 / 1024.0,
            last_rss[index] as f64 / 1024.0,
            peaks[index] as f64 / 1024.0,
        );
    }
    println!();
    println!(
        "Events, after the layer's shutdown (up to {} s to deliver what it still held):",
        SHUTDOWN_DEADLINE.as_secs()
    );
    println!();
    println!("| server | {}", Closing::HEADER);
    println!("|---|{}", Closing::RULE);
    for (variant, closing) in &closings {
        println!("| {variant} | {}", closing.row());
    }
    if otlp.iter().any(Option::is_some) {
        print_telemetry(&closings, &otlp);
    }
}

/// For each `otel` variant, after the layer's shutdown: what OpenTelemetry recording did
/// (`Stats::telemetry`) and what its OTLP collector received.
fn print_telemetry(closings: &[(&str, Closing)], otlp: &[Option<Arc<OtlpReceived>>]) {
    use closing::thousands;
    println!();
    println!(
        "OpenTelemetry, after the layer's shutdown: the layer's counters (`Stats::telemetry`) \
         and what the OTLP collector received:"
    );
    println!();
    println!(
        "| server | spans recorded | spans in failed exports | failed metric exports | telemetry panics | trace exports received | spans received | spans not received | trace bytes (as sent) | metric exports received | metric bytes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for ((variant, closing), received) in closings.iter().zip(otlp) {
        let Some(received) = received else {
            continue;
        };
        let telemetry = match closing {
            Closing::Layered { report, .. } => report["stats"]["telemetry"].clone(),
            _ => serde_json::Value::Null,
        };
        let count = |name: &str| telemetry[name].as_u64().unwrap_or(0);
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let spans = load(&received.spans);
        println!(
            "| {variant} | {} | {} | {} | {} | {} | {} | **{}** | {:.1} MiB | {} | {:.1} KiB |",
            thousands(count("spans")),
            thousands(count("spans_export_failed")),
            thousands(count("metric_exports_failed")),
            thousands(count("panics")),
            thousands(load(&received.trace_requests)),
            thousands(spans),
            thousands(count("spans").saturating_sub(spans)),
            load(&received.trace_bytes) as f64 / (1024.0 * 1024.0),
            thousands(load(&received.metric_requests)),
            load(&received.metric_bytes) as f64 / 1024.0,
        );
    }
}

/// What the `redis` variant did to Redis: the scripts it ran (one per batch of grouped
/// events), the mean time Redis spent in one, and the group keys it holds.
#[cfg(feature = "redis")]
fn redis_usage(server: &redis_server::RedisServer) -> String {
    let usage = || -> anyhow::Result<String> {
        let mut connection = server.connection()?;
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut connection)?;
        // `cmdstat_evalsha:calls=12,usec=345,...`; a script not yet cached runs as `eval`.
        let (mut calls, mut usec) = (0u64, 0u64);
        for command in ["cmdstat_evalsha:", "cmdstat_eval:"] {
            let fields = stats
                .lines()
                .find_map(|line| line.strip_prefix(command))
                .unwrap_or_default();
            for field in fields.split(',') {
                match field.split_once('=') {
                    Some(("calls", value)) => calls += value.parse::<u64>().unwrap_or(0),
                    Some(("usec", value)) => usec += value.parse::<u64>().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let keys: u64 = redis::cmd("DBSIZE").query(&mut connection)?;
        Ok(format!(
            " redis_scripts={calls} redis_usec_per_script={:.0} redis_keys={keys}",
            usec as f64 / calls.max(1) as f64
        ))
    };
    usage().unwrap_or_else(|error| format!(" redis: {error:#}"))
}

/// The share of the bare server's saturated rate offered in the fixed-rate phase.
const PACED_SHARE: f64 = 0.3;

/// Variants in turn, the order reversed every other round so none always runs first.
fn round_order(round: usize, variants: usize) -> Vec<usize> {
    if round.is_multiple_of(2) {
        (0..variants).collect()
    } else {
        (0..variants).rev().collect()
    }
}

/// One measured round against `server`: its figures (with the server's CPU time per
/// request) and the number of failed requests.
async fn measured(
    client: &HttpClient,
    server: &ServerProcess,
    load: &Load,
    connections: usize,
    length: Duration,
    rate: Option<f64>,
) -> (Figures, u64) {
    let cpu_before = server.server.cpu_time();
    let result = run_load(client, &server.server.url, load, connections, length, rate).await;
    let cpu = server.server.cpu_time().saturating_sub(cpu_before);
    let failures = result.failures;
    let requests = result.requests().max(1);
    let mut figures = figures(result);
    figures.cpu_us = cpu.as_secs_f64() * 1e6 / requests as f64;
    (figures, failures)
}

fn log_round(phase: &str, round: usize, variant: &str, figures: &Figures) {
    eprintln!(
        "{phase} round {} {variant:>8}: {:>7.0} req/s  cpu {:>5.1} µs/req  p50 {:>6.0} µs  p99 {:>6.0} µs",
        round + 1,
        figures.rps,
        figures.cpu_us,
        figures.p50,
        figures.p99
    );
}

/// Medians of each figure over rounds.
fn medians(rounds: &[Figures]) -> Figures {
    let of = |pick: &dyn Fn(&Figures) -> f64| median(rounds.iter().map(pick).collect());
    Figures {
        rps: of(&|f| f.rps),
        cpu_us: of(&|f| f.cpu_us),
        p50: of(&|f| f.p50),
        p99: of(&|f| f.p99),
        kind_p50: std::array::from_fn(|k| of(&|f| f.kind_p50[k])),
        kind_p99: std::array::from_fn(|k| of(&|f| f.kind_p99[k])),
    }
}

fn ratio(value: f64, base: Option<f64>) -> String {
    match base {
        Some(base) => format!("{:.3}", value / base),
        None => "-".to_owned(),
    }
}

/// `value - base` in µs, signed (the difference of two medians).
fn added(value: f64, base: Option<f64>) -> String {
    match base {
        Some(base) => format!("**{:+.1} µs**", value - base),
        None => "-".to_owned(),
    }
}

fn print_table(
    names: &[&str],
    figures: &[Figures],
    bare: Option<usize>,
    failures: &[u64],
    with_failures: bool,
) {
    println!(
        "| server | requests/s | vs bare | p50 | vs bare | p99 | vs bare | server CPU per request | vs bare | server CPU added per request vs bare |{}",
        if with_failures {
            " failed (all phases) |"
        } else {
            ""
        }
    );
    println!(
        "|---|---|---|---|---|---|---|---|---|---|{}",
        if with_failures { "---|" } else { "" }
    );
    let base = bare.map(|index| figures[index]);
    for (index, name) in names.iter().enumerate() {
        let m = figures[index];
        print!(
            "| {name} | {:.0} | {} | {:.0} µs | {} | {:.0} µs | {} | {:.1} µs | {} | {} |",
            m.rps,
            ratio(m.rps, base.map(|b| b.rps)),
            m.p50,
            ratio(m.p50, base.map(|b| b.p50)),
            m.p99,
            ratio(m.p99, base.map(|b| b.p99)),
            m.cpu_us,
            ratio(m.cpu_us, base.map(|b| b.cpu_us)),
            added(
                m.cpu_us,
                base.map(|b| b.cpu_us).filter(|_| Some(index) != bare)
            ),
        );
        if with_failures {
            print!(" {} |", failures[index]);
        }
        println!();
    }
}
