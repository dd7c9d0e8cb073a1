//! The README's Rust examples compile: each one stands below, verbatim, inside a function
//! that gives it the names it uses, and a test checks that every Rust block of the README
//! is found here line for line. The functions are compiled, not run.

#![allow(dead_code, unused_variables, clippy::unused_async)]

#[path = "../examples/support/demo_server.rs"]
mod demo_server;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use demo_server::{DemoServer, Mode, config_for, mcp_service};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rmcp::transport::streamable_http_server::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use tower_mcp_analytics::{
    AnalyticsLayer, HttpSink, MemorySessionStore, PayloadLimits, SessionMode, WorkerRuntime,
    identity,
};

type McpService = StreamableHttpService<DemoServer, LocalSessionManager>;

#[rustfmt::skip]
async fn first_screen(mcp_service: McpService) -> anyhow::Result<()> {
    let analytics = AnalyticsLayer::builder()
        .identify(identity::from_header("x-user-id"))                 // runs on every request
        .sink(HttpSink::new("https://collector.example.com/v1/events")) // default: JSON lines on stdout
        .build();
    let app = Router::new()
        .nest_service("/mcp", mcp_service)
        .layer(analytics.clone());
    // ... on shutdown:
    analytics.shutdown(Duration::from_secs(5)).await;
    let _: Router = app;
    Ok(())
}

#[rustfmt::skip]
fn with_insights() {
    use tower_mcp_analytics::insights::{IntentCapture, MissingTools};

    let analytics = AnalyticsLayer::builder()
        .capture_intent(IntentCapture::new().exclude_tools(["login"]))
        .missing_tools(MissingTools::new())
        .build();
}

#[rustfmt::skip]
async fn with_axum(
    listener: tokio::net::TcpListener,
    signal: std::future::Pending<()>,
) -> anyhow::Result<()> {
    let factory = || Ok(DemoServer::new());
    let session_manager = Arc::new(LocalSessionManager::default());
    let config = config_for(Mode::StatelessJson);
    use tower_mcp_analytics::{AnalyticsLayer, JsonLinesSink};

    let analytics = AnalyticsLayer::new(JsonLinesSink::stdout());
    let app = axum::Router::new()
        .nest_service("/mcp", StreamableHttpService::new(factory, session_manager, config))
        .layer(analytics.clone());
    axum::serve(listener, app).with_graceful_shutdown(signal).await?;
    analytics.shutdown(std::time::Duration::from_secs(5)).await;
    Ok(())
}

#[rustfmt::skip]
fn with_service_builder(analytics: AnalyticsLayer, mcp_service: McpService) {
    let service = tower::ServiceBuilder::new()
        .layer(analytics.clone())
        .service(mcp_service);
}

#[rustfmt::skip]
async fn with_hyper(
    analytics: AnalyticsLayer,
    mcp_service: McpService,
    stream: tokio::net::TcpStream,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use tower::Layer;
    let service = hyper_util::service::TowerToHyperService::new(analytics.layer(mcp_service));
    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await?;
    Ok(())
}

#[cfg(feature = "redis")]
#[rustfmt::skip]
fn several_instances() -> anyhow::Result<()> {
    use tower_mcp_analytics::RedisSessionStore;
    let analytics = AnalyticsLayer::builder()
        .identify(identity::from_header("x-user-id"))
        .session_store(RedisSessionStore::open("redis://:password@redis.internal:6379/0")?)
        .build();
    Ok(())
}

#[rustfmt::skip]
fn worker_on_your_runtime(url: &str, background_runtime: tokio::runtime::Runtime) {
    let (analytics, worker) = AnalyticsLayer::builder()
        .sink(HttpSink::new(url))
        .build_with_worker();
    background_runtime.spawn(worker);
}

#[rustfmt::skip]
fn to_the_collector(ingest_key: String) {
    let analytics = AnalyticsLayer::builder()
        .identify(identity::from_header("x-user-id"))
        .sink(HttpSink::new("http://analytics.internal:8700/v1/events").api_key(ingest_key))
        .build();
}

#[rustfmt::skip]
fn configuration(url: &str, key: String) {
    use tower_mcp_analytics::insights::{IntentCapture, MissingTools};

    let analytics = AnalyticsLayer::builder()
        .sink(HttpSink::new(url).api_key(key))      // default: JSON lines on stdout
        .identify(identity::from_header("x-user-id"))
        .session_mode(SessionMode::Auto)            // Auto, Stateless, Stateful, Backend
        .inactivity_window(Duration::from_secs(30 * 60))
        .session_store(MemorySessionStore::new())   // or RedisSessionStore, or your own
        .session_store_timeout(Duration::from_secs(1)) // longest wait for a shared store
        .identity_capacity(100_000)                 // users, sessions, clients remembered
        .capture_limit(4 << 20)                     // request bytes read before the server sees them
        .response_capture_limit(4 << 20)            // bytes of one answer read for its outcome
        .max_calls_per_request(100)                 // events per HTTP request (batches)
        .in_flight_bytes(8 << 20)                   // large arguments kept by calls in flight
        .queue_capacity(10_000)                     // events waiting for the worker
        .queue_bytes(16 << 20)                      // bytes those events may keep alive
        .batch_size(2_000)                          // most events per batch
        .batch_bytes(1 << 20)                       // most bytes of event JSON per batch (starts at 64 KiB)
        .flush_interval(Duration::from_secs(1))     // longest wait before a batch goes out
        .max_in_flight(16)                          // most batches being sent at once (starts at 2)
        .max_attempts(5)                            // attempts per batch
        .worker_runtime(WorkerRuntime::Current)     // or Dedicated: a thread and runtime of its own
        .backoff(Duration::from_millis(500), Duration::from_secs(30))
        .capture_headers(["x-tenant"])              // none by default; secrets masked
        .exclude_tool_payloads(["read_medical_record"])
        .redact(|text| text.contains("sk_live_").then(|| "[secret]".to_owned()))
        .payload_limits(PayloadLimits::default())   // 10 KiB strings, depth 10, 500 items, 100 KiB events
    .capture_intent(IntentCapture::new())       // off by default: asks agents why (user_intent)
    .missing_tools(MissingTools::new())         // off by default: the virtual get_more_tools
        .build();
}

#[cfg(feature = "otel-otlp")]
#[rustfmt::skip]
fn opentelemetry_from_env() -> anyhow::Result<()> {
use tower_mcp_analytics::otel::OpenTelemetry;

let analytics = AnalyticsLayer::builder()
    .identify(identity::from_header("x-user-id"))
    .opentelemetry(OpenTelemetry::otlp_from_env()?) // OTEL_EXPORTER_OTLP_ENDPOINT, ..._HEADERS, OTEL_SERVICE_NAME
    .without_sink()                                 // spans and metrics instead of events; drop to keep both
    .build();
    Ok(())
}

#[cfg(feature = "otel-otlp")]
#[rustfmt::skip]
fn opentelemetry_own_providers(
    tracer_provider: opentelemetry_sdk::trace::SdkTracerProvider,
    meter_provider: opentelemetry_sdk::metrics::SdkMeterProvider,
) {
    use tower_mcp_analytics::otel::OpenTelemetry;
let otel = OpenTelemetry::new()
    .tracer_provider(&tracer_provider) // e.g. opentelemetry_sdk's SdkTracerProvider
    .meter_provider(&meter_provider)
    .record_tool_arguments(true)       // opt-in: gen_ai.tool.call.arguments
    .ambient_context(opentelemetry::Context::current); // with tracing-opentelemetry: || tracing::Span::current().context()
let analytics = AnalyticsLayer::builder().opentelemetry(otel).build();
}

/// The Rust blocks of a Markdown text, each as its lines.
fn rust_blocks(markdown: &str) -> Vec<Vec<&str>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```rust") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), line) => block.push(line),
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_rust_block_of_the_readme_is_compiled_here() {
    let readme = include_str!("../README.md");
    let here: Vec<&str> = include_str!("readme.rs").lines().map(str::trim).collect();
    let blocks = rust_blocks(readme);
    assert!(blocks.len() >= 8, "found {} Rust blocks", blocks.len());
    for block in blocks {
        let lines: Vec<&str> = block.iter().map(|line| line.trim()).collect();
        let found = here
            .windows(lines.len())
            .any(|window| window == lines.as_slice());
        assert!(
            found,
            "this README block is not compiled in tests/readme.rs:\n{}",
            block.join("\n")
        );
    }
}

#[test]
fn the_demo_service_builds() {
    let _ = mcp_service(Mode::StatelessJson);
}
