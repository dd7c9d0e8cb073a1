//! OpenTelemetry end to end: the real rmcp demo server behind the layer over loopback
//! HTTP, real rmcp clients (and raw requests where the test needs exact bytes), and a real
//! OTLP/HTTP receiver decoding the exporter's protobuf requests with the official proto
//! types. Spans are matched to the events a `MemorySink` received beside them.

#![cfg(feature = "otel-otlp")]

mod common;
#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::json;
use tower_mcp_analytics::otel::OpenTelemetry;
use tower_mcp_analytics::{AnalyticsLayer, AnalyticsLayerBuilder, Event, MemorySink, identity};

use common::Mode;
use otlp_receiver::{Mode as ReceiverMode, OtlpReceiver, ReceivedSpan};

/// The semantic conventions' bucket boundaries for both duration histograms.
const BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// A bearer token the client sends: it must appear in no span and no measurement.
const SECRET: &str = "sk-live-4f9a7c1e2b";

/// A server behind a layer exporting to a receiver, with the events it delivered.
struct Setup {
    receiver: OtlpReceiver,
    layer: AnalyticsLayer,
    sink: MemorySink,
    server: common::Server,
}

/// Starts a receiver, and the demo server in `mode` behind a layer that exports to it
/// with `otel` (given the receiver's base URL) and delivers events to a `MemorySink`.
async fn setup(
    mode: Mode,
    otel: impl FnOnce(OpenTelemetry) -> OpenTelemetry,
    builder: impl FnOnce(AnalyticsLayerBuilder) -> AnalyticsLayerBuilder,
) -> Setup {
    let receiver = OtlpReceiver::start().await;
    let exporter = OpenTelemetry::otlp_http(&receiver.endpoint()).expect("exporters build");
    let sink = MemorySink::new();
    let layer = builder(
        AnalyticsLayer::builder()
            .identify(identity::from_header("x-user-id"))
            .sink(sink.clone()),
    )
    .opentelemetry(otel(exporter))
    .build();
    let wrap = layer.clone();
    let server = common::spawn(mode, move |router| router.layer(wrap)).await;
    Setup {
        receiver,
        layer,
        sink,
        server,
    }
}

impl Setup {
    /// Delivers every event and exports every span and measurement.
    async fn flushed(&self) -> (Vec<Event>, Vec<ReceivedSpan>) {
        self.layer.flush().await;
        let events: Vec<Event> = self
            .sink
            .events()
            .into_iter()
            .filter(|event| event.method != "identify")
            .collect();
        let spans = self
            .receiver
            .wait_for_spans(events.len(), Duration::from_secs(10))
            .await;
        (events, spans)
    }
}

/// The span made from `event` (there must be exactly one).
fn span_of<'a>(spans: &'a [ReceivedSpan], event: &Event) -> &'a ReceivedSpan {
    let matching: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|span| span.str_attr("tower_mcp_analytics.event.id") == Some(event.id.as_str()))
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "one span for {} {:?}",
        event.method,
        event.resource_name
    );
    matching[0]
}

/// What `error.type` must be for `event` (the demo's messages end in a result, a tool
/// error, a JSON-RPC error, or an accepted notification).
fn expected_error_type(event: &Event) -> Option<String> {
    use tower_mcp_analytics::Outcome;
    match event.outcome {
        Outcome::ToolError => Some("tool_error".to_owned()),
        Outcome::Error => event
            .error
            .as_ref()
            .and_then(|e| e.code)
            .map(|c| c.to_string()),
        outcome => {
            assert!(!outcome.is_error(), "unexpected outcome {outcome:?}");
            None
        }
    }
}

/// A legacy client (with an MCP session in `LegacyStateful`) or a 2026-07-28 one, sending
/// a bearer token and a user header, runs every kind of message the demo server has.
async fn exercise(url: &str, modern: bool) -> anyhow::Result<()> {
    let headers = [
        ("authorization", &*format!("Bearer {SECRET}")),
        ("x-user-id", "alice"),
    ];
    let http = common::http_client_with("otel-test/1.0", &headers)?;
    let client = if modern {
        common::modern_client_over(http, url, "cursor-vscode").await?
    } else {
        common::legacy_client_over(http, url, "claude-ai").await?
    };
    common::list_tools(&client).await?;
    common::call_tool(&client, "echo", json!({ "text": "hello" })).await?;
    common::call_tool(&client, "fail", json!({ "reason": "quota exceeded" })).await?;
    assert!(
        common::call_tool(&client, "no_such_tool", json!({}))
            .await
            .is_err()
    );
    common::call_tool_with_progress(&client, "progress", json!({ "steps": 2 }), 2).await?;
    common::get_greeting(&client, "bob").await?;
    common::read_readme(&client).await?;
    common::close(client).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_one_server_span_by_the_conventions() -> anyhow::Result<()> {
    for (mode, modern) in [(Mode::LegacyStateful, false), (Mode::StatelessSse, true)] {
        let setup = setup(mode, |otel| otel, |builder| builder).await;
        exercise(&setup.server.url, modern).await?;
        let (events, spans) = setup.flushed().await;
        let label = format!("{mode:?}");
        assert!(events.len() >= 8, "{label}: {} events", events.len());
        assert_eq!(spans.len(), events.len(), "{label}: one span per event");
        for event in &events {
            let span = span_of(&spans, event);
            let what = format!("{label} {} {:?}", event.method, event.resource_name);
            assert!(span.is_server(), "{what}: kind SERVER");
            let target = match event.method.as_str() {
                "tools/call" | "prompts/get" => event.resource_name.clone(),
                _ => None,
            };
            let name = match &target {
                Some(target) => format!("{} {target}", event.method),
                None => event.method.clone(),
            };
            assert_eq!(span.name, name, "{what}: name");
            assert_eq!(
                span.str_attr("mcp.method.name"),
                Some(event.method.as_str())
            );
            let error_type = expected_error_type(event);
            assert_eq!(
                span.str_attr("error.type").map(str::to_owned),
                error_type,
                "{what}: error.type"
            );
            // Status ERROR exactly when error.type is set, with the JSON-RPC message.
            assert_eq!(
                span.status_code == 2,
                error_type.is_some(),
                "{what}: status"
            );
            if let Some(error) = event.error.as_ref().filter(|_| error_type.is_some()) {
                assert_eq!(span.status_message, error.message, "{what}: description");
            }
            let code = event
                .error
                .as_ref()
                .and_then(|e| e.code)
                .map(|c| c.to_string());
            assert_eq!(
                span.str_attr("rpc.response.status_code").map(str::to_owned),
                code,
                "{what}: rpc.response.status_code"
            );
            let tool = (event.method == "tools/call").then(|| event.resource_name.clone());
            assert_eq!(
                span.str_attr("gen_ai.tool.name").map(str::to_owned),
                tool.flatten(),
                "{what}: gen_ai.tool.name"
            );
            assert_eq!(
                span.str_attr("gen_ai.operation.name"),
                (event.method == "tools/call").then_some("execute_tool"),
                "{what}: gen_ai.operation.name"
            );
            let prompt = (event.method == "prompts/get").then(|| event.resource_name.clone());
            assert_eq!(
                span.str_attr("gen_ai.prompt.name").map(str::to_owned),
                prompt.flatten(),
                "{what}: gen_ai.prompt.name"
            );
            let id = event.request_id.as_ref().map(|id| match id {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            });
            assert_eq!(
                span.str_attr("jsonrpc.request.id").map(str::to_owned),
                id,
                "{what}: jsonrpc.request.id"
            );
            assert_eq!(
                span.str_attr("mcp.protocol.version"),
                event.protocol_version.as_deref(),
                "{what}: mcp.protocol.version"
            );
            assert_eq!(span.str_attr("network.protocol.name"), Some("http"));
            assert_eq!(span.str_attr("network.protocol.version"), Some("1.1"));
            assert_eq!(span.str_attr("network.transport"), Some("tcp"));
            // An MCP session only where there is one, by its derived id.
            let session = event.session_id.as_deref();
            assert_eq!(
                span.str_attr("mcp.session.id"),
                session.filter(|_| mode.is_stateful()),
                "{what}: mcp.session.id"
            );
            assert_eq!(span.str_attr("tower_mcp_analytics.session.id"), session);
            assert_eq!(
                span.str_attr("tower_mcp_analytics.client.name"),
                event.client_name.as_deref()
            );
            assert_eq!(span.str_attr("tower_mcp_analytics.user.id"), Some("alice"));
            // Opt-in attributes stay out unless opted in.
            for key in [
                "gen_ai.tool.call.arguments",
                "gen_ai.tool.call.result",
                "mcp.resource.uri",
            ] {
                assert!(span.attr(key).is_none(), "{what}: {key} without opting in");
            }
            // Start and end are the exchange's.
            let elapsed = span.end_unix_nanos.saturating_sub(span.start_unix_nanos);
            let expected = (event.duration_ms * 1e6) as u64;
            assert!(elapsed.abs_diff(expected) <= 1_000_000, "{what}: duration");
        }
        let outcomes: Vec<Option<&str>> = spans.iter().map(|s| s.str_attr("error.type")).collect();
        assert!(
            outcomes.contains(&Some("tool_error")),
            "{label}: {outcomes:?}"
        );
        assert!(
            outcomes.iter().flatten().any(|e| e.starts_with("-32")),
            "{label}: a JSON-RPC error code: {outcomes:?}"
        );
        assert_no_secret(&setup.receiver, &label);
        assert_operation_histogram(&setup.receiver, &events, &label);
        assert_eq!(setup.layer.stats().telemetry.spans, events.len() as u64);
    }
    Ok(())
}

/// No span or measurement carries the bearer token, the user header's name, or a cookie.
fn assert_no_secret(receiver: &OtlpReceiver, label: &str) {
    for span in receiver.spans() {
        for (key, value) in &span.attributes {
            let text = format!("{key}={value:?}");
            assert!(!text.contains(SECRET), "{label}: {text}");
            assert!(!key.contains("authorization"), "{label}: {text}");
            assert!(!key.starts_with("http.request.header"), "{label}: {text}");
        }
    }
    for point in receiver.histogram_points("mcp.server.operation.duration") {
        let text = format!("{:?}", point.attributes);
        assert!(!text.contains(SECRET), "{label}: {text}");
    }
}

/// `mcp.server.operation.duration`: seconds, the conventions' buckets, as many
/// measurements per method and `error.type` as there were events, no session id.
fn assert_operation_histogram(receiver: &OtlpReceiver, events: &[Event], label: &str) {
    let points = receiver.latest_histogram_points("mcp.server.operation.duration");
    assert!(!points.is_empty(), "{label}: the histogram was exported");
    let mut measured: BTreeMap<(String, Option<String>), u64> = BTreeMap::new();
    for point in &points {
        assert_eq!(point.unit, "s", "{label}: unit");
        assert_eq!(point.explicit_bounds, BUCKETS.to_vec(), "{label}: buckets");
        assert!(
            point.attributes.keys().all(|key| !key.contains("session")),
            "{label}: no session on metrics: {:?}",
            point.attributes
        );
        let method = point
            .attributes
            .get("mcp.method.name")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let error = point
            .attributes
            .get("error.type")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        *measured.entry((method, error)).or_default() += point.count;
    }
    let mut expected: BTreeMap<(String, Option<String>), u64> = BTreeMap::new();
    for event in events {
        *expected
            .entry((event.method.clone(), expected_error_type(event)))
            .or_default() += 1;
    }
    assert_eq!(measured, expected, "{label}: counts per method and outcome");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_in_meta_is_the_parent_and_the_http_context_is_linked() {
    let setup = setup(Mode::StatelessJson, |otel| otel, |builder| builder).await;
    let meta_parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let http_parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let call = |id: i64, meta: Option<&str>| {
        let mut body =
            common::modern_tools_call_body(id, "echo", json!({ "text": "x" }), "raw", None);
        if let Some(parent) = meta {
            body["params"]["_meta"]["traceparent"] = json!(parent);
            body["params"]["_meta"]["tracestate"] = json!("rojo=00f067aa0ba902b7");
        }
        body
    };
    let mut headers = common::modern_headers("tools/call", Some("echo"));
    headers.push(("traceparent", http_parent.to_owned()));
    let plain = common::modern_headers("tools/call", Some("echo"));
    // 1. Both: `_meta` is the parent, the HTTP request's context is linked.
    let response =
        common::raw_post_json(&setup.server.url, &headers, &call(1, Some(meta_parent))).await;
    assert_eq!(response.status, 200);
    // 2. The HTTP context alone: it is the parent.
    let response = common::raw_post_json(&setup.server.url, &headers, &call(2, None)).await;
    assert_eq!(response.status, 200);
    // 3. Neither: a root span.
    let response = common::raw_post_json(&setup.server.url, &plain, &call(3, None)).await;
    assert_eq!(response.status, 200);
    let (events, spans) = setup.flushed().await;
    assert_eq!(events.len(), 3);
    let by_id = |id: &str| {
        spans
            .iter()
            .find(|span| span.str_attr("jsonrpc.request.id") == Some(id))
            .expect("a span per request")
    };
    let both = by_id("1");
    assert_eq!(both.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(both.parent_span_id, "00f067aa0ba902b7");
    assert_eq!(
        both.links,
        vec![(
            "0af7651916cd43dd8448eb211c80319c".to_owned(),
            "b7ad6b7169203331".to_owned()
        )]
    );
    let http_only = by_id("2");
    assert_eq!(http_only.trace_id, "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(http_only.parent_span_id, "b7ad6b7169203331");
    assert!(http_only.links.is_empty());
    let root = by_id("3");
    assert!(root.parent_span_id.is_empty(), "a root span");
    assert_ne!(root.trace_id, both.trace_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_in_payloads_pass_the_privacy_stage_first() -> anyhow::Result<()> {
    let setup = setup(
        Mode::StatelessJson,
        |otel| {
            otel.record_tool_arguments(true)
                .record_tool_results(true)
                .record_resource_uri(true)
        },
        |builder| {
            builder
                .redact(|text| text.contains("hunter2").then(|| "[redacted]".to_owned()))
                .exclude_tool_payloads(["add"])
        },
    )
    .await;
    let client = common::modern_client(&setup.server.url, "cursor-vscode").await;
    common::call_tool(&client, "echo", json!({ "text": "my password is hunter2" })).await?;
    common::call_tool(&client, "add", json!({ "a": 1, "b": 2 })).await?;
    common::call_tool(&client, "fail", json!({ "reason": "nope" })).await?;
    common::read_readme(&client).await?;
    common::close(client).await?;
    let (events, spans) = setup.flushed().await;
    let tool = |name: &str| {
        let event = events
            .iter()
            .find(|e| e.resource_name.as_deref() == Some(name))
            .expect("the call's event");
        span_of(&spans, event)
    };
    let echo = tool("echo");
    let arguments = echo
        .str_attr("gen_ai.tool.call.arguments")
        .expect("opted in");
    assert!(
        arguments.contains("[redacted]") && !arguments.contains("hunter2"),
        "{arguments}"
    );
    let _: serde_json::Value = serde_json::from_str(arguments)?;
    let result = echo.str_attr("gen_ai.tool.call.result").expect("opted in");
    assert!(
        result.contains("[redacted]") && !result.contains("hunter2"),
        "{result}"
    );
    // An excluded tool's payloads are not captured, so not on its span either.
    let add = tool("add");
    assert!(add.attr("gen_ai.tool.call.arguments").is_none());
    assert!(add.attr("gen_ai.tool.call.result").is_none());
    // A failed call's result is not recorded (the conventions: only when successful).
    let fail = tool("fail");
    assert!(fail.attr("gen_ai.tool.call.arguments").is_some());
    assert!(fail.attr("gen_ai.tool.call.result").is_none());
    let readme = events
        .iter()
        .find(|e| e.method == "resources/read")
        .expect("the read's event");
    let read = span_of(&spans, readme);
    assert_eq!(read.name, "resources/read", "no URI in the span's name");
    assert_eq!(
        read.str_attr("mcp.resource.uri"),
        readme.resource_name.as_deref()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_changes_nothing_for_requests_and_its_losses_are_counted() {
    let dead = OtlpReceiver::dead_endpoint();
    let sink = MemorySink::new();
    let layer = AnalyticsLayer::builder()
        .sink(sink.clone())
        .opentelemetry(OpenTelemetry::otlp_http(&dead).expect("exporters build"))
        .build();
    let wrap = layer.clone();
    let server = common::spawn(Mode::StatelessJson, move |router| router.layer(wrap)).await;
    for i in 0..30 {
        let response =
            common::raw_modern_tools_call(&server.url, "add", json!({ "a": i, "b": 1 }), None)
                .await;
        assert_eq!(response.status, 200);
        let answer = response.response_message().expect("a JSON-RPC answer");
        assert_eq!(
            answer["result"]["content"][0]["text"],
            json!((i + 1).to_string())
        );
    }
    layer.flush().await;
    let stats = layer.stats();
    // Events are unaffected; every span was made; their export failed, and says so.
    assert_eq!(stats.delivered, 30);
    assert_eq!(stats.telemetry.spans, 30);
    assert_eq!(stats.telemetry.spans_export_failed, 30);
    assert!(stats.telemetry.metric_exports_failed >= 1);
    let report = layer.shutdown(Duration::from_secs(10)).await;
    assert!(report.flushed);
}

/// The caller's own providers: a batch span processor whose exporter times out on a
/// collector that never answers, beside the event sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_collector_behind_your_own_providers_holds_nothing_up() {
    let receiver = OtlpReceiver::start().await;
    receiver.set_mode(ReceiverMode::Hang);
    let url = receiver.traces_url();
    let provider = tokio::task::spawn_blocking(move || {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .with_timeout(Duration::from_millis(300))
            .build()
            .expect("exporter builds");
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .build()
    })
    .await
    .expect("provider built");
    let sink = MemorySink::new();
    let layer = AnalyticsLayer::builder()
        .sink(sink.clone())
        .opentelemetry(OpenTelemetry::new().tracer_provider(&provider))
        .build();
    let wrap = layer.clone();
    let server = common::spawn(Mode::StatelessJson, move |router| router.layer(wrap)).await;
    for _ in 0..20 {
        let response =
            common::raw_modern_tools_call(&server.url, "echo", json!({ "text": "hi" }), None).await;
        assert_eq!(response.status, 200);
    }
    layer.flush().await;
    assert_eq!(layer.stats().delivered, 20);
    assert_eq!(layer.stats().telemetry.spans, 20);
    // The exporter tried, and gave up within its timeout.
    let flushed = tokio::task::spawn_blocking(move || provider.force_flush())
        .await
        .expect("flush ran");
    assert!(flushed.is_err(), "the hung collector never answered");
    assert!(receiver.trace_requests() >= 1);
}

/// Spans instead of events, through the caller's own providers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_sink_spans_and_metrics_take_every_event() -> anyhow::Result<()> {
    let receiver = OtlpReceiver::start().await;
    let (traces, metrics) = (receiver.traces_url(), receiver.metrics_url());
    let (tracer_provider, meter_provider) = tokio::task::spawn_blocking(move || {
        let spans = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(traces)
            .build()
            .expect("span exporter builds");
        let measurements = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_endpoint(metrics)
            .build()
            .expect("metric exporter builds");
        (
            SdkTracerProvider::builder()
                .with_batch_exporter(spans)
                .build(),
            SdkMeterProvider::builder()
                .with_periodic_exporter(measurements)
                .build(),
        )
    })
    .await?;
    let layer = AnalyticsLayer::builder()
        .opentelemetry(
            OpenTelemetry::new()
                .tracer_provider(&tracer_provider)
                .meter_provider(&meter_provider),
        )
        .without_sink()
        .build();
    let wrap = layer.clone();
    let server = common::spawn(Mode::StatelessSse, move |router| router.layer(wrap)).await;
    let client = common::modern_client(&server.url, "claude-ai").await;
    common::call_tool(&client, "echo", json!({ "text": "one" })).await?;
    common::call_tool(&client, "add", json!({ "a": 1, "b": 2 })).await?;
    common::close(client).await?;
    layer.flush().await;
    let stats = layer.stats();
    assert!(stats.recorded >= 2);
    assert_eq!(
        stats.delivered, stats.recorded,
        "handed to OpenTelemetry: {stats:?}"
    );
    assert_eq!(stats.batches, 0, "nothing was batched");
    assert_eq!(stats.telemetry.spans, stats.recorded);
    tokio::task::spawn_blocking(move || {
        let _ = tracer_provider.force_flush();
        let _ = meter_provider.force_flush();
    })
    .await?;
    let spans = receiver
        .wait_for_spans(stats.recorded as usize, Duration::from_secs(10))
        .await;
    assert_eq!(spans.len() as u64, stats.recorded);
    let calls: u64 = receiver
        .latest_histogram_points("mcp.server.operation.duration")
        .iter()
        .map(|p| p.count)
        .sum();
    assert_eq!(calls, stats.recorded);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_measured_when_it_ends() -> anyhow::Result<()> {
    // An MCP session ends with the client's DELETE.
    let setup = setup(Mode::LegacyStateful, |otel| otel, |builder| builder).await;
    let client = common::legacy_client(&setup.server.url, "claude-ai").await;
    common::call_tool(&client, "echo", json!({ "text": "hi" })).await?;
    common::close(client).await?;
    setup.flushed().await;
    let points = setup
        .receiver
        .latest_histogram_points("mcp.server.session.duration");
    let sessions: u64 = points.iter().map(|p| p.count).sum();
    assert_eq!(sessions, 1, "{points:?}");
    assert_eq!(points[0].unit, "s");
    assert_eq!(points[0].explicit_bounds, BUCKETS.to_vec());
    assert!(points[0].attributes.contains_key("mcp.protocol.version"));

    // A grouped (stateless) session ends when 30 minutes pass without a message.
    let minutes = Arc::new(AtomicU64::new(0));
    let start = SystemTime::now();
    let clock = Arc::clone(&minutes);
    let setup =
        setup_with_clock(move || start + Duration::from_secs(60 * clock.load(Ordering::Relaxed)))
            .await;
    let headers = [("x-user-id", "alice")];
    let http = common::http_client_with("otel-test/1.0", &headers)?;
    let client = common::modern_client_over(http, &setup.server.url, "cursor-vscode").await?;
    common::call_tool(&client, "echo", json!({ "text": "first" })).await?;
    minutes.store(5, Ordering::Relaxed);
    common::call_tool(&client, "echo", json!({ "text": "five minutes later" })).await?;
    common::close(client).await?;
    setup.layer.flush().await;
    let open: u64 = setup
        .receiver
        .latest_histogram_points("mcp.server.session.duration")
        .iter()
        .map(|p| p.count)
        .sum();
    assert_eq!(open, 0, "the session is still open");
    minutes.store(40, Ordering::Relaxed);
    // The worker reviews sessions every flush interval (50 ms here).
    let mut ended = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        setup.layer.flush().await;
        ended = setup
            .receiver
            .latest_histogram_points("mcp.server.session.duration");
        if !ended.is_empty() {
            break;
        }
    }
    assert_eq!(ended.iter().map(|p| p.count).sum::<u64>(), 1, "{ended:?}");
    // About five minutes long (the calls' own time is on the real clock).
    assert!((ended[0].sum - 300.0).abs() < 5.0, "{ended:?}");
    Ok(())
}

async fn setup_with_clock(clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Setup {
    setup(
        Mode::StatelessJson,
        |otel| otel,
        move |builder| {
            builder
                .clock(clock)
                .flush_interval(Duration::from_millis(50))
        },
    )
    .await
}
