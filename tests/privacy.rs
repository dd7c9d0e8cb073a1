//! Privacy and payload control, proved on live events: secrets in headers, query strings
//! and arguments never reach a sink; payloads of any shape come out bounded by the
//! configured caps; redaction reaches every depth; binary content and huge answers are
//! cut with markers while the client still gets every byte; failing hooks drop events and
//! are counted while requests succeed; capture toggles and tag validation.

mod common;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use common::Mode;
use common::collector::Collector;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_mcp_analytics::sink::{Batch, Sink, SinkError, SinkFuture};
use tower_mcp_analytics::{
    AnalyticsLayer, AnalyticsLayerBuilder, Event, HttpSink, JsonLinesSink, MemorySink, Outcome,
    PayloadLimits, RawJson, ReplayBody, Stats,
};

const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Sinks and writers
// ---------------------------------------------------------------------------------------

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An in-memory `AsyncWrite` a `JsonLinesSink` writes to.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    fn bytes(&self) -> Vec<u8> {
        lock(&self.0).clone()
    }
}

impl tokio::io::AsyncWrite for SharedBuf {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        lock(&self.0).extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Hands every batch to two sinks, one after the other.
struct Both<A, B>(A, B);

impl<A: Sink, B: Sink> Sink for Both<A, B> {
    fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a> {
        Box::pin(async move {
            self.0.send(batch).await?;
            self.1.send(batch).await
        })
    }
}

/// Keeps each delivered event with the exact JSON text the sinks were given.
#[derive(Clone, Default)]
struct RawSink(Arc<Mutex<Vec<(Event, String)>>>);

impl RawSink {
    fn delivered(&self) -> Vec<(Event, String)> {
        lock(&self.0).clone()
    }
}

impl Sink for RawSink {
    fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a> {
        let mut kept = lock(&self.0);
        assert_eq!(batch.events().len(), batch.events_json().len());
        for (event, raw) in batch.events().iter().zip(batch.events_json()) {
            kept.push((event.clone(), raw.get().to_owned()));
        }
        Box::pin(async { Ok::<(), SinkError>(()) })
    }
}

// ---------------------------------------------------------------------------------------
// An in-process MCP responder
// ---------------------------------------------------------------------------------------

/// A JSON-RPC `tools/call` request body.
fn tools_call(id: i64, name: &str, arguments: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": { "name": name, "arguments": arguments }
    }))
    .unwrap()
}

/// A JSON-RPC response body answering id 1 with `result`.
fn answer(result: Value) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&json!({ "jsonrpc": "2.0", "id": 1, "result": result })).unwrap(),
    )
}

/// Sends `request` through `layer` to an inner service that reads the request and answers
/// `response` as `application/json`; returns the status and every byte the client got.
async fn exchange(layer: &AnalyticsLayer, request: Vec<u8>, response: Bytes) -> (u16, Bytes) {
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(move |req: Request<ReplayBody<Full<Bytes>>>| {
            let response = response.clone();
            async move {
                let _ = req.into_body().collect().await;
                Ok::<_, Infallible>(
                    Response::builder()
                        .status(200)
                        .header("content-type", "application/json")
                        .body(Full::new(response))
                        .unwrap(),
                )
            }
        }));
    let request = Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("x-region", "eu-west")
        .body(Full::new(Bytes::from(request)))
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body)
}

/// A text tool result.
fn text_result(text: &str) -> Value {
    json!({ "content": [{ "type": "text", "text": text }], "isError": false })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn limits(string_bytes: usize, depth: usize, items: usize, event_bytes: usize) -> PayloadLimits {
    PayloadLimits {
        string_bytes,
        depth,
        items,
        event_bytes,
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

// ---------------------------------------------------------------------------------------
// 1. End to end: secrets never leave the process
// ---------------------------------------------------------------------------------------

const SECRET1: &str = "s3cr3t-bearer-7f1c2a9d";
const SECRET2: &str = "s3cr3t-cookie-0b8e4d61";
const SECRET3: &str = "s3cr3t-query-5a2f9c3e";
const SECRET4: &str = "s3cr3t-argument-9d7e1b40";

/// A request with a bearer token, a session cookie, a token in the query string and a
/// secret inside a tool argument, through a real rmcp server: the collector's raw and
/// decoded bodies and the JSON lines written hold none of the secrets; `x-tenant` is
/// captured, `authorization` and `cookie` appear only masked.
#[tokio::test]
async fn secrets_in_headers_query_and_arguments_never_reach_a_sink() {
    let collector = Collector::start().await;
    let lines = SharedBuf::default();
    let sink = Both(
        HttpSink::new(collector.url()).timeout(Duration::from_secs(5)),
        JsonLinesSink::writer(lines.clone()),
    );
    let analytics = AnalyticsLayer::builder()
        .sink(sink)
        .capture_headers(["authorization", "cookie", "x-tenant"])
        .redact(|text| {
            text.contains(SECRET4)
                .then(|| text.replace(SECRET4, "[secret]"))
        })
        .build();
    let server = common::spawn(Mode::StatelessJson, |r| r.layer(analytics.clone())).await;

    let url = format!("{}?token={SECRET3}", server.url);
    let bearer = format!("Bearer {SECRET1}");
    let cookie = format!("session={SECRET2}");
    let mut headers = common::legacy_headers("2025-11-25");
    headers.push(("authorization", bearer));
    headers.push(("cookie", cookie));
    headers.push(("x-tenant", "acme-corp".to_owned()));
    let text = format!("please remember {SECRET4} for later");
    let body = common::legacy_tools_call_body(7, "echo", json!({ "text": text }), None);
    let response = common::raw_post_json(&url, &headers, &body).await;
    assert_eq!(response.status, 200, "{}", response.text());
    // The server itself saw and echoed the secret: the client's answer is untouched.
    let answer = response.response_message().unwrap();
    assert!(answer.to_string().contains(SECRET4), "{answer}");

    tokio::time::timeout(WAIT, analytics.flush())
        .await
        .expect("flush finishes");
    let events = collector.wait_for_events(1, WAIT).await;
    assert_eq!(events.len(), 1, "{}", collector.describe());
    let event = &events[0];
    assert_eq!(event["method"], "tools/call");
    assert_eq!(event["resource_name"], "echo");
    assert_eq!(event["outcome"], "success");
    assert_eq!(event["headers"]["x-tenant"], "acme-corp");
    assert_eq!(event["headers"]["authorization"], "[redacted]");
    assert_eq!(event["headers"]["cookie"], "[redacted]");
    assert_eq!(
        event["headers"].as_object().map(|h| h.len()),
        Some(3),
        "{event}"
    );
    // The payloads are there, redacted (the hook ran on arguments and result).
    assert_eq!(
        event["arguments"]["text"],
        "please remember [secret] for later"
    );
    assert!(event["result"].to_string().contains("[secret]"), "{event}");

    let received = collector.received();
    assert!(!received.is_empty());
    let jsonl = lines.bytes();
    assert!(!jsonl.is_empty(), "the JSON lines sink wrote nothing");
    let line: Value = serde_json::from_slice(jsonl.trim_ascii_end()).expect("one JSON line");
    assert_eq!(line["headers"], event["headers"]);
    for secret in [SECRET1, SECRET2, SECRET3, SECRET4] {
        for request in &received {
            assert!(request.decode_error.is_none(), "{:?}", request.decode_error);
            assert!(
                !contains(&request.raw_body, secret),
                "raw collector body holds {secret}"
            );
            assert!(
                !contains(&request.decoded_body, secret),
                "decoded collector body holds {secret}: {}",
                String::from_utf8_lossy(&request.decoded_body)
            );
            for (name, value) in request.headers.iter() {
                assert!(
                    !contains(value.as_bytes(), secret),
                    "collector request header {name} holds {secret}"
                );
            }
        }
        assert!(
            !contains(&jsonl, secret),
            "JSON lines hold {secret}: {}",
            String::from_utf8_lossy(&jsonl)
        );
    }
    let stats = analytics.stats();
    assert_eq!((stats.recorded, stats.delivered), (1, 1), "{stats:?}");
}

/// `force_capture_headers` is the only way a sensitive header's value is captured.
/// One `tools/call` with these request headers through `layer`, answered `ok`; flushed.
async fn call_with_headers(layer: &AnalyticsLayer, headers: &[(&str, &str)]) {
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(
            |_req: Request<ReplayBody<Full<Bytes>>>| async move {
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(answer(text_result("ok"))))
                        .unwrap(),
                )
            },
        ));
    let mut request = Request::post("/mcp").header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(tools_call(1, "echo", json!({})))))
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    let _ = response.into_body().collect().await.unwrap();
    layer.flush().await;
}

#[tokio::test]
async fn sensitive_headers_are_masked_unless_forced() {
    let sink = MemorySink::new();
    let analytics = AnalyticsLayer::builder()
        .sink(sink.clone())
        .capture_headers(["proxy-authorization", "set-cookie", "Authorization"])
        .force_capture_headers(["X-Api-Key"])
        .build();
    call_with_headers(
        &analytics,
        &[
            ("proxy-authorization", "Basic czNjcjN0"),
            ("set-cookie", "a=b"),
            ("x-api-key", "key-123"),
            ("authorization", "Bearer abc"),
        ],
    )
    .await;
    let events = sink.events();
    assert_eq!(events.len(), 1);
    let headers = &events[0].headers;
    assert_eq!(
        headers.get("proxy-authorization").map(String::as_str),
        Some("[redacted]")
    );
    assert_eq!(
        headers.get("set-cookie").map(String::as_str),
        Some("[redacted]")
    );
    assert_eq!(
        headers.get("authorization").map(String::as_str),
        Some("[redacted]")
    );
    // Forced: captured as sent.
    assert_eq!(
        headers.get("x-api-key").map(String::as_str),
        Some("key-123")
    );
    assert_eq!(headers.len(), 4, "{headers:?}");
}

// ---------------------------------------------------------------------------------------
// 2. Properties: bounded payloads, redaction at every depth
// ---------------------------------------------------------------------------------------

fn arb_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => ".{0,12}",
        // Multi-byte characters, repeated past the string cap.
        2 => ("[é日本語😀ßž]{1,3}", 1..120usize).prop_map(|(s, n)| s.repeat(n)),
        2 => ("\\PC{1,6}", 1..80usize).prop_map(|(s, n)| s.repeat(n)),
        1 => (1..2_000usize).prop_map(|n| "a".repeat(n)),
    ]
    .boxed()
}

fn arb_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        arb_text().prop_map(Value::String),
    ]
    .boxed()
}

/// Leaves that survive a JSON text round trip exactly (no floats: the event's payloads
/// are parsed from the wire without exact float round trips).
fn arb_exact_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        arb_text().prop_map(Value::String),
    ]
    .boxed()
}

/// Trees of nested objects and arrays, some wide.
fn arb_tree(leaf: BoxedStrategy<Value>, key: BoxedStrategy<String>) -> BoxedStrategy<Value> {
    leaf.prop_recursive(6, 128, 24, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..24).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..24)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
    .boxed()
}

/// `value` wrapped in one array or object per entry of `levels`.
fn wrap(value: Value, levels: &[bool]) -> Value {
    levels.iter().fold(value, |inner, &array| {
        if array {
            json!([inner])
        } else {
            json!({ "k": inner })
        }
    })
}

/// A tree, then wrapped up to 60 levels deep.
fn arb_payload() -> BoxedStrategy<Value> {
    (
        arb_tree(arb_leaf(), "[a-z]{1,6}".boxed()),
        prop::collection::vec(any::<bool>(), 0..60),
    )
        .prop_map(|(tree, levels)| wrap(tree, &levels))
        .boxed()
}

/// Nesting depth: 0 for a scalar, 1 + the deepest child for a collection.
fn nesting(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(nesting).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(nesting).max().unwrap_or(0),
        _ => 0,
    }
}

/// Checks the string and collection caps everywhere in `value`.
fn check_caps(value: &Value, limits: &PayloadLimits) -> Result<(), String> {
    match value {
        Value::String(text) if text.len() > limits.string_bytes => {
            Err(format!("string of {} bytes: {text:?}", text.len()))
        }
        Value::Array(items) => {
            if items.len() > limits.items + 1 {
                return Err(format!("array of {} items", items.len()));
            }
            items.iter().try_for_each(|item| check_caps(item, limits))
        }
        Value::Object(map) => {
            if map.len() > limits.items + 1 {
                return Err(format!("object of {} keys", map.len()));
            }
            map.values().try_for_each(|item| check_caps(item, limits))
        }
        _ => Ok(()),
    }
}

proptest! {
    #![proptest_config(config(96))]

    /// Whatever JSON a tool call carries as arguments and answers as its result, the
    /// delivered event is valid JSON within `event_bytes`, with no string value over
    /// `string_bytes`, no collection over `items` (+1 marker) and no payload nested deeper
    /// than `depth`.
    #[test]
    fn delivered_events_respect_every_cap(arguments in arb_payload(), result in arb_payload()) {
        let caps = limits(64, 4, 8, 4096);
        runtime().block_on(async {
            let sink = RawSink::default();
            let layer = AnalyticsLayer::builder().sink(sink.clone()).payload_limits(caps).build();
            let request = tools_call(1, "tool", json!({ "payload": arguments }));
            let response = answer(json!({
                "content": [{ "type": "text", "text": "ok" }],
                "structuredContent": result
            }));
            let (status, body) = exchange(&layer, request, response.clone()).await;
            prop_assert_eq!(status, 200);
            prop_assert_eq!(&body, &response);
            layer.flush().await;
            let delivered = sink.delivered();
            let stats = layer.stats();
            prop_assert_eq!(delivered.len(), 1, "{:?}", stats);
            prop_assert_eq!(stats.dropped.total(), 0, "{:?}", stats);
            let (event, raw) = &delivered[0];
            prop_assert!(raw.len() <= caps.event_bytes, "event of {} bytes", raw.len());
            prop_assert!(std::str::from_utf8(raw.as_bytes()).is_ok());
            let parsed: Value = serde_json::from_str(raw).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&parsed["outcome"], "success");
            prop_assert_eq!(event.outcome, Outcome::Success);
            for field in ["arguments", "result"] {
                let payload = &parsed[field];
                prop_assert!(!payload.is_null(), "{} missing: {}", field, raw);
                prop_assert!(nesting(payload) <= caps.depth, "{} nested {} deep: {}", field, nesting(payload), payload);
                check_caps(payload, &caps).map_err(|e| TestCaseError::fail(format!("{field}: {e}")))?;
            }
            prop_assert!(event.arguments.is_some() && event.result.is_some());
            Ok(())
        })?;
    }
}

const MARK: &str = "TOPSECRET";
const MARK_KEY: &str = "key-TOPSECRET";

fn arb_marked_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        2 => arb_exact_leaf(),
        1 => (".{0,4}", ".{0,4}").prop_map(|(a, b)| Value::String(format!("{a}{MARK}{b}"))),
    ]
    .boxed()
}

fn arb_marked_payload() -> BoxedStrategy<Value> {
    let key = prop_oneof![4 => "[a-z]{1,6}", 1 => Just(MARK_KEY.to_owned())].boxed();
    (
        arb_tree(arb_marked_leaf(), key),
        prop::collection::vec(any::<bool>(), 0..60),
        ".{0,4}",
    )
        .prop_map(|(tree, levels, tail)| {
            json!({
                "tree": tree,
                "deep": wrap(json!({ MARK_KEY: format!("{MARK}{tail}") }), &levels),
            })
        })
        .boxed()
}

fn scrub(text: &str) -> Option<String> {
    text.contains(MARK).then(|| text.replace(MARK, "[gone]"))
}

/// What the `redact` hook should make of `value`: every string value scrubbed, keys kept.
fn scrubbed(value: &Value) -> Value {
    match value {
        Value::String(text) => Value::String(scrub(text).unwrap_or_else(|| text.clone())),
        Value::Array(items) => Value::Array(items.iter().map(scrubbed).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| (key.clone(), scrubbed(item)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn string_values(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(text) => out.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| string_values(item, out)),
        Value::Object(map) => map.values().for_each(|item| string_values(item, out)),
        _ => {}
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// A marker planted at any depth of arguments and result is replaced by the `redact`
    /// hook everywhere; object keys are left exactly as they were.
    #[test]
    fn redaction_reaches_every_depth(arguments in arb_marked_payload(), result in arb_marked_payload()) {
        // Caps out of the way, so the structure comes back whole.
        let caps = limits(1 << 20, 256, 10_000, 8 << 20);
        runtime().block_on(async {
            let sink = MemorySink::new();
            let layer = AnalyticsLayer::builder()
                .sink(sink.clone())
                .payload_limits(caps)
                .redact(scrub)
                // The hook alone (the built-in scrubber would take `key-TOPSECRET` first).
                .redact_secrets(false)
                .build();
            let request = tools_call(1, "tool", arguments.clone());
            let result = json!({ "content": [{ "type": "text", "text": MARK }], "structuredContent": result });
            let (status, _) = exchange(&layer, request, answer(result.clone())).await;
            prop_assert_eq!(status, 200);
            layer.flush().await;
            let events = sink.events();
            prop_assert_eq!(events.len(), 1, "{:?}", layer.stats());
            let event = &events[0];
            let mut strings = Vec::new();
            for payload in [event.arguments_value(), event.result_value()] {
                let payload = payload.ok_or_else(|| TestCaseError::fail("payload missing"))?;
                string_values(&payload, &mut strings);
            }
            for text in &strings {
                prop_assert!(!text.contains(MARK), "{:?} survived", text);
            }
            prop_assert_eq!(event.arguments_value(), Some(scrubbed(&arguments)));
            prop_assert_eq!(event.result_value(), Some(scrubbed(&result)));
            Ok(())
        })?;
    }
}

// ---------------------------------------------------------------------------------------
// 3. Images and huge answers
// ---------------------------------------------------------------------------------------

/// A tool answering with a large image: the event stands the image's data for a marker
/// with its size, the event is small, and the client gets every byte.
#[tokio::test]
async fn an_image_result_is_replaced_by_a_marker_and_the_client_gets_it_whole() {
    let sink = RawSink::default();
    let layer = AnalyticsLayer::builder().sink(sink.clone()).build();
    let pixels: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let data = base64::engine::general_purpose::STANDARD.encode(&pixels);
    let response = answer(json!({
        "content": [
            { "type": "image", "data": data, "mimeType": "image/png" },
            { "type": "text", "text": "a chart" }
        ]
    }));
    let (status, body) =
        exchange(&layer, tools_call(1, "chart", json!({})), response.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(body, response, "the client got the whole answer");
    layer.flush().await;
    let delivered = sink.delivered();
    assert_eq!(delivered.len(), 1, "{:?}", layer.stats());
    let (event, raw) = &delivered[0];
    assert!(
        raw.len() < PayloadLimits::default().event_bytes,
        "{}",
        raw.len()
    );
    assert!(raw.len() < 2048, "event of {} bytes: {raw}", raw.len());
    let result = event.result_value().expect("result kept");
    assert_eq!(
        result["content"][0]["data"],
        format!("[image removed: {} bytes]", data.len())
    );
    assert_eq!(result["content"][0]["mimeType"], "image/png");
    assert_eq!(result["content"][1]["text"], "a chart");
    assert_eq!(event.outcome, Outcome::Success);
}

const TWENTY_MB: usize = 20_000_000;

/// The demo server's `big` tool answering 20 MB of text through a layer with the default
/// 4 MiB response capture limit: the answer is not read, the event says `too_large` and
/// how big the answer was; the client gets all of it.
#[tokio::test]
async fn a_20_mb_answer_over_the_capture_limit_is_reported_too_large() {
    let (delivered, stats) = twenty_mb_answer(AnalyticsLayer::builder()).await;
    assert_eq!(delivered.len(), 1, "{stats:?}");
    let (event, raw) = &delivered[0];
    assert!(raw.len() < PayloadLimits::default().event_bytes);
    assert_eq!(event.outcome, Outcome::TooLarge, "{raw}");
    assert!(!event.is_error);
    // The result stands as a marker with the size of the unread answer (the JSON-RPC
    // envelope around 20 MB of text).
    let bytes = event
        .result_value()
        .and_then(|r| r["_truncated"]["bytes"].as_u64());
    assert!(
        bytes.is_some_and(|b| b > TWENTY_MB as u64 && b < TWENTY_MB as u64 + 1024),
        "{raw}"
    );
}

/// The demo server's `big` tool answering 20 MB through a layer built by `builder`; checks
/// the client got the whole text and returns what was delivered and the stats.
async fn twenty_mb_answer(builder: AnalyticsLayerBuilder) -> (Vec<(Event, String)>, Stats) {
    let sink = RawSink::default();
    let analytics = builder.sink(sink.clone()).build();
    let server = common::spawn(Mode::StatelessJson, |r| r.layer(analytics.clone())).await;
    let response = common::raw_legacy_tools_call(
        &server.url,
        "2025-11-25",
        "big",
        json!({ "bytes": TWENTY_MB }),
        None,
    )
    .await;
    assert_eq!(response.status, 200);
    let message = response.response_message().unwrap();
    let text = message["result"]["content"][0]["text"].as_str().unwrap();
    assert_eq!(text.len(), TWENTY_MB, "the client got the whole text");
    tokio::time::timeout(WAIT, analytics.flush())
        .await
        .expect("flush finishes");
    (sink.delivered(), analytics.stats())
}

/// The answer was read and its text replaced by a marker naming its size; the event stays
/// under its cap. The demo's text is all `x`, which the sanitiser takes for base64 (only
/// base64 characters, over 10 KiB), so its marker is the base64 one.
fn assert_cut_text(delivered: &[(Event, String)], stats: &Stats) {
    assert_eq!(delivered.len(), 1, "{stats:?}");
    let (event, raw) = &delivered[0];
    let limits = PayloadLimits::default();
    assert!(raw.len() < limits.event_bytes, "{}", raw.len());
    assert_eq!(event.outcome, Outcome::Success, "{raw}");
    let result = event.result_value().expect("result kept");
    assert_eq!(
        result["content"][0]["text"],
        format!("[base64 removed: {TWENTY_MB} bytes]"),
        "{raw}"
    );
}

/// 20 MB of prose (not base64) answered by an in-process tool with a 32 MiB response
/// capture limit: the text is cut to the string cap, ending with a marker naming its
/// size; the event is under its cap and the client gets every byte.
#[tokio::test]
async fn a_20_mb_prose_answer_is_truncated_with_a_marker() {
    let sink = RawSink::default();
    let layer = AnalyticsLayer::builder()
        .sink(sink.clone())
        .response_capture_limit(32 << 20)
        .queue_bytes(64 << 20)
        .build();
    let text = "word ".repeat(TWENTY_MB / 5);
    let response = answer(text_result(&text));
    let (status, body) = exchange(&layer, tools_call(1, "book", json!({})), response.clone()).await;
    assert_eq!(status, 200);
    assert!(body == response, "the client got the whole answer");
    tokio::time::timeout(WAIT, layer.flush())
        .await
        .expect("flush finishes");
    let delivered = sink.delivered();
    assert_eq!(delivered.len(), 1, "{:?}", layer.stats());
    let (event, raw) = &delivered[0];
    let limits = PayloadLimits::default();
    assert!(raw.len() < limits.event_bytes, "{}", raw.len());
    assert_eq!(event.outcome, Outcome::Success);
    let result = event.result_value().expect("result kept");
    let cut = result["content"][0]["text"].as_str().expect("text kept");
    assert!(cut.len() <= limits.string_bytes, "{}", cut.len());
    assert!(cut.starts_with("word word "));
    assert!(
        cut.ends_with(&format!("…[truncated: {TWENTY_MB} bytes]")),
        "{}",
        &cut[cut.len().saturating_sub(60)..]
    );
}

/// With a 32 MiB response capture limit (and a queue allowed to hold the answer while the
/// worker reads it), the 20 MB answer is read and its text replaced by a sized marker.
#[tokio::test]
async fn a_20_mb_answer_within_the_capture_limit_is_cut_with_a_marker() {
    let (delivered, stats) = twenty_mb_answer(
        AnalyticsLayer::builder()
            .response_capture_limit(32 << 20)
            .queue_bytes(64 << 20),
    )
    .await;
    assert_cut_text(&delivered, &stats);
}

/// Only the response capture limit raised: the exchange alone holds more than
/// `queue_bytes` (16 MiB), and an empty queue still takes it, so the event comes out.
#[tokio::test]
async fn a_20_mb_answer_with_only_the_capture_limit_raised_still_makes_an_event() {
    let (delivered, stats) =
        twenty_mb_answer(AnalyticsLayer::builder().response_capture_limit(32 << 20)).await;
    assert_eq!(stats.dropped.queue_full, 0, "{stats:?}");
    assert_cut_text(&delivered, &stats);
}

// ---------------------------------------------------------------------------------------
// 4. Failing hooks
// ---------------------------------------------------------------------------------------

/// Sends one echo call through a layer built from `builder` (with a `MemorySink`); checks
/// the client got the inner service's answer whole, and returns what was delivered and the
/// stats.
async fn one_call(builder: AnalyticsLayerBuilder) -> (Vec<Event>, Stats) {
    let sink = MemorySink::new();
    let layer = builder.sink(sink.clone()).build();
    let response = answer(text_result("hello"));
    let (status, body) = exchange(
        &layer,
        tools_call(1, "echo", json!({ "text": "hello" })),
        response.clone(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, response, "the request is unaffected");
    tokio::time::timeout(WAIT, layer.flush())
        .await
        .expect("flush finishes");
    (sink.events(), layer.stats())
}

#[tokio::test]
async fn a_panicking_redact_hook_drops_the_event_and_counts_it() {
    let (events, stats) = one_call(
        AnalyticsLayer::builder().redact(|_: &str| -> Option<String> { panic!("redact fails") }),
    )
    .await;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(stats.recorded, 1, "{stats:?}");
    assert_eq!(stats.dropped.redaction_failed, 1, "{stats:?}");
    assert_eq!(stats.dropped.total(), 1, "{stats:?}");
    assert_eq!(stats.delivered, 0);
}

#[tokio::test]
async fn a_panicking_redact_event_hook_drops_the_event_and_counts_it() {
    let (events, stats) = one_call(
        AnalyticsLayer::builder().redact_event(|_: &mut Event| -> bool { panic!("hook fails") }),
    )
    .await;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(stats.dropped.redaction_failed, 1, "{stats:?}");
    assert_eq!(stats.dropped.total(), 1, "{stats:?}");
}

#[tokio::test]
async fn redact_event_returning_false_filters_the_event() {
    let (events, stats) = one_call(AnalyticsLayer::builder().redact_event(|_| false)).await;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(stats.dropped.filtered, 1, "{stats:?}");
    assert_eq!(stats.dropped.total(), 1, "{stats:?}");
    assert_eq!(stats.dropped.redaction_failed, 0);
}

/// `redact_event` may change an event, and runs before `redact`.
#[tokio::test]
async fn redact_event_changes_reach_the_sink_and_redact_runs_after_it() {
    let (events, stats) = one_call(
        AnalyticsLayer::builder()
            .redact_event(|event| {
                event.arguments =
                    RawJson::from_value(&json!({ "replaced": "by redact_event" })).ok();
                event.tags.insert("seen".into(), "yes".into());
                true
            })
            .redact(|text| (text == "by redact_event").then(|| "then by redact".to_owned())),
    )
    .await;
    assert_eq!(events.len(), 1, "{stats:?}");
    assert_eq!(
        events[0].arguments_value(),
        Some(json!({ "replaced": "then by redact" }))
    );
    assert_eq!(events[0].tags.get("seen").map(String::as_str), Some("yes"));
}

#[tokio::test]
async fn a_panicking_tags_hook_drops_the_events_and_counts_it() {
    let (events, stats) = one_call(
        AnalyticsLayer::builder().tags(|_| -> Vec<(String, String)> { panic!("tags fail") }),
    )
    .await;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(stats.hook_panics.tags, 1, "{stats:?}");
    assert_eq!(stats.hook_panics.properties, 0, "{stats:?}");
    assert_eq!(stats.dropped.hook_failed, 1, "{stats:?}");
    assert_eq!(stats.dropped.total(), 1, "{stats:?}");
}

#[tokio::test]
async fn a_panicking_properties_hook_drops_the_events_and_counts_it() {
    let (events, stats) = one_call(
        AnalyticsLayer::builder().properties(|_| -> Option<Value> { panic!("properties fail") }),
    )
    .await;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(stats.hook_panics.properties, 1, "{stats:?}");
    assert_eq!(stats.hook_panics.tags, 0, "{stats:?}");
    assert_eq!(stats.dropped.hook_failed, 1, "{stats:?}");
    assert_eq!(stats.dropped.total(), 1, "{stats:?}");
}

// ---------------------------------------------------------------------------------------
// 5. Capture toggles
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn capture_toggles_and_exclusions_leave_payloads_out_but_keep_events() {
    let (events, _) = one_call(AnalyticsLayer::builder()).await;
    assert!(events[0].arguments.is_some() && events[0].result.is_some());

    let (events, stats) = one_call(AnalyticsLayer::builder().capture_arguments(false)).await;
    assert_eq!(events.len(), 1, "{stats:?}");
    assert_eq!(events[0].resource_name.as_deref(), Some("echo"));
    assert_eq!(events[0].outcome, Outcome::Success);
    assert_eq!(events[0].arguments, None);
    assert_eq!(events[0].result_value(), Some(text_result("hello")));

    let (events, stats) = one_call(AnalyticsLayer::builder().capture_results(false)).await;
    assert_eq!(events.len(), 1, "{stats:?}");
    assert_eq!(events[0].outcome, Outcome::Success);
    assert_eq!(
        events[0].arguments_value(),
        Some(json!({ "text": "hello" }))
    );
    assert_eq!(events[0].result, None);

    let (events, stats) = one_call(AnalyticsLayer::builder().exclude_tool_payloads(["echo"])).await;
    assert_eq!(events.len(), 1, "{stats:?}");
    assert_eq!(events[0].resource_name.as_deref(), Some("echo"));
    assert_eq!(events[0].outcome, Outcome::Success);
    assert_eq!((&events[0].arguments, &events[0].result), (&None, &None));

    let (events, stats) =
        one_call(AnalyticsLayer::builder().exclude_tool_payloads(["other", "tools"])).await;
    assert_eq!(events.len(), 1, "{stats:?}");
    assert!(events[0].arguments.is_some() && events[0].result.is_some());
}

// ---------------------------------------------------------------------------------------
// 6. Tags and properties
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn invalid_tags_are_dropped_and_properties_carried() {
    let long_key = "k".repeat(33);
    let max_key = "k".repeat(32);
    let long_value = "v".repeat(201);
    let max_value = "é".repeat(200);
    let tags = vec![
        ("region".to_owned(), "eu".to_owned()),
        ("$plan:tier_1.x-y z".to_owned(), "gold".to_owned()),
        (max_key.clone(), max_value.clone()),
        ("bad/key".to_owned(), "x".to_owned()),
        ("ключ".to_owned(), "x".to_owned()),
        (String::new(), "x".to_owned()),
        (long_key, "x".to_owned()),
        ("multi".to_owned(), "line\nvalue".to_owned()),
        ("carriage".to_owned(), "a\rb".to_owned()),
        ("toolong".to_owned(), long_value),
    ];
    let (events, stats) = one_call(
        AnalyticsLayer::builder()
            .tags(move |_| tags.clone())
            .properties(|view| {
                Some(json!({
                    "region": view.header("x-region"),
                    "nested": { "list": [1, 2, 3] }
                }))
            }),
    )
    .await;
    assert_eq!(events.len(), 1, "{stats:?}");
    let kept: Vec<(&str, &str)> = events[0]
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut expected = vec![
        ("region", "eu"),
        ("$plan:tier_1.x-y z", "gold"),
        (max_key.as_str(), max_value.as_str()),
    ];
    expected.sort();
    assert_eq!(kept, expected);
    assert_eq!(
        events[0].properties,
        Some(json!({ "region": "eu-west", "nested": { "list": [1, 2, 3] } }))
    );
    assert_eq!(stats.dropped.total(), 0);
}

#[tokio::test]
async fn more_than_fifty_tags_are_capped_at_fifty() {
    let (events, stats) = one_call(AnalyticsLayer::builder().tags(|_| {
        (0..60)
            .map(|i| (format!("tag{i:02}"), i.to_string()))
            .collect()
    }))
    .await;
    assert_eq!(events.len(), 1, "{stats:?}");
    let tags = &events[0].tags;
    assert_eq!(tags.len(), 50, "{tags:?}");
    for (key, value) in tags {
        assert_eq!(format!("tag{value:0>2}"), *key);
    }
    assert_eq!(stats.dropped.total(), 0);
}

// ---------------------------------------------------------------------------------------
// 7. The built-in secret scrubber, on by default
// ---------------------------------------------------------------------------------------

/// One call through a layer built from `builder`, with `arguments` and a text result of
/// `result_text`: the event it made.
async fn scrubbed_call(builder: AnalyticsLayerBuilder, arguments: Value, result: Value) -> Event {
    let sink = MemorySink::new();
    let layer = builder.sink(sink.clone()).build();
    let (status, _) = exchange(&layer, tools_call(1, "search", arguments), answer(result)).await;
    assert_eq!(status, 200);
    layer.flush().await;
    let mut events = sink.events();
    assert_eq!(events.len(), 1, "{:?}", layer.stats());
    events.remove(0)
}

/// Secrets of every shape the scrubber knows, each with where it sits.
const SECRETS: [&str; 14] = [
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "sk_test_51HxYzAbCdEfGhIjKlMnOpQr",
    "sk-proj-Ab3dEfGh1jKlMn0pQrStUvWxYz123456AbCd",
    "sk-ant-api03-Xy7Kq2Lm9Np4Rs6Tu8Vw0Ab1Cd3Ef5Gh",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123456789",
    "AKIAIOSFODNN7EXAMPLE",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI",
    "npm_abcdefghijklmnopqrstuvwxyz0123456789",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "hunter2-password-value",
    "correct horse battery staple",
    "u53r:p4ssw0rd",
];

#[tokio::test]
async fn every_secret_shape_is_caught_in_nested_arguments_and_results() {
    let arguments = json!({
        "query": "deploy with key sk_live_4eC39HqLyjWDarjtT1zdp7dc please",
        "config": {
            "nested": [
                { "note": "use sk_test_51HxYzAbCdEfGhIjKlMnOpQr for tests" },
                { "openai": "sk-proj-Ab3dEfGh1jKlMn0pQrStUvWxYz123456AbCd" },
                "anthropic sk-ant-api03-Xy7Kq2Lm9Np4Rs6Tu8Vw0Ab1Cd3Ef5Gh",
            ],
            "repo": "https://u53r:p4ssw0rd@git.example.com/team/repo.git",
            "password": "hunter2-password-value",
            "api_key": { "primary": "whatever-format" },
            "client_secret": "correct horse battery staple",
            "max_tokens": 1024,
        },
        "headers": { "Authorization": "Bearer abcdefghijklmnopqrstuvwxyz012345" },
    });
    let result = text_result(
        "found ghp_16C7e42F292c6912E7710c838347Ae178B4a and \
         github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123456789, AKIAIOSFODNN7EXAMPLE, \
         xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx, \
         AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI, npm_abcdefghijklmnopqrstuvwxyz0123456789, \
         token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    );
    let event = scrubbed_call(AnalyticsLayer::builder(), arguments, result).await;
    let json = serde_json::to_string(&event).unwrap();
    for secret in SECRETS {
        assert!(!json.contains(secret), "{secret} leaked: {json}");
    }
    assert!(!json.contains("abcdefghijklmnopqrstuvwxyz012345"), "{json}");
    let arguments = event.arguments_value().unwrap();
    assert_eq!(arguments["query"], "deploy with key [redacted] please");
    assert_eq!(
        arguments["config"]["repo"],
        "https://[redacted]@git.example.com/team/repo.git"
    );
    assert_eq!(arguments["config"]["password"], "[redacted]");
    assert_eq!(arguments["config"]["api_key"], "[redacted]");
    assert_eq!(arguments["config"]["max_tokens"], 1024);
    assert_eq!(arguments["headers"]["Authorization"], "[redacted]");
    let text = event.result_value().unwrap()["content"][0]["text"].clone();
    assert!(
        text.as_str()
            .unwrap()
            .starts_with("found [redacted] and [redacted], [redacted]")
    );
}

/// Realistic values that are not secrets: they must pass the scrubber untouched.
const ORDINARY: [&str; 56] = [
    "550e8400-e29b-41d4-a716-446655440000",
    "f47ac10b-58cc-4372-a567-0e02b2c3d479",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "d41d8cd98f00b204e9800998ecf8427e",
    "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 fixed it",
    "https://example.com/docs/getting-started?lang=en#install",
    "https://api.github.com/repos/rust-lang/rust/issues/12345",
    "mailto:support@example.com",
    "alice@example.com",
    "The password reset link was sent to your inbox.",
    "Rotate your API key every 90 days.",
    "Tokens are counted per request; max_tokens defaults to 4096.",
    "Use a bearer token in the Authorization header.",
    "Bearer",
    "See the secret garden chapter",
    "2026-11-30T12:34:56.789Z",
    "2026-11-30",
    "/home/alice/projects/tower-mcp-analytics/src/lib.rs",
    "C:\\Users\\bob\\Documents\\report.docx",
    "SELECT id, name FROM users WHERE created_at > now() - interval '7 days'",
    "fn main() { println!(\"hello\"); }",
    "risk-free-investment-strategies-for-2026-and-beyond",
    "sk-learn is a machine learning library",
    "scikit-learn-1.5.2-cp312-cp312-manylinux_2_17_x86_64.whl",
    "desk-lamp-with-usb-charging-port-and-wireless-pad",
    "AKIA is how AWS access key ids begin",
    "ghp is a prefix GitHub uses",
    "eyJ is what base64 JSON starts with",
    "aGVsbG8gd29ybGQ=",
    "SGVsbG8sIFdvcmxkIQ==",
    "#ff8800",
    "rgb(255, 136, 0)",
    "+1 (555) 010-9999",
    "ISBN 978-3-16-148410-0",
    "v1.2.3-beta.4+build.567",
    "docker.io/library/postgres:16-alpine",
    "registry.example.com/team/app@sha256:4f6b3a1c9d",
    "ssh://git@github.com/rust-lang/cargo.git",
    "git@github.com:rust-lang/cargo.git",
    "postgres://db.internal:5432/analytics",
    "redis://127.0.0.1:6379/0",
    "http://localhost:8080/mcp",
    "user:alice role:admin",
    "key=value&other=thing",
    "The quick brown fox jumps over the lazy dog",
    "Ünïcödé text with émojis 🎉 and 日本語",
    "42",
    "3.14159",
    "true",
    "null",
    "",
    "   ",
    "token_count: 1532",
    "session started at 10:42",
    "x-request-id: 7f3c9a2e-1b4d-4e8f-9a6b-2c5d8e1f0a3b",
];

#[tokio::test]
async fn ordinary_text_passes_untouched() {
    let values: Vec<Value> = ORDINARY.iter().map(|text| json!(text)).collect();
    let arguments = json!({
        "items": values,
        "nested": { "query": ORDINARY[10], "limit": 20, "max_tokens": 4096, "tokens": 12 },
        "page_token": "CiAKGjBpNDd2Nmp2Zml2cXRwYjBpOXA3",
        "author": "Alice",
    });
    let result = json!({ "content": [{ "type": "text", "text": ORDINARY.join("\n") }] });
    let event = scrubbed_call(AnalyticsLayer::builder(), arguments.clone(), result.clone()).await;
    assert_eq!(event.arguments_value(), Some(arguments));
    assert_eq!(event.result_value(), Some(result));
}

#[tokio::test]
async fn the_redact_hook_sees_scrubbed_text_and_the_scrubber_can_be_turned_off() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let builder = AnalyticsLayer::builder().redact(move |text| {
        lock(&log).push(text.to_owned());
        None
    });
    let arguments = json!({ "query": "key sk_live_4eC39HqLyjWDarjtT1zdp7dc", "password": "p" });
    let event = scrubbed_call(builder, arguments.clone(), text_result("ok")).await;
    assert_eq!(event.arguments_value().unwrap()["query"], "key [redacted]");
    let seen = lock(&seen).clone();
    assert!(
        seen.iter().all(|text| !text.contains("sk_live_")),
        "{seen:?}"
    );
    // Off: the payload stands as sent.
    let event = scrubbed_call(
        AnalyticsLayer::builder().redact_secrets(false),
        arguments.clone(),
        text_result("ok"),
    )
    .await;
    assert_eq!(event.arguments_value(), Some(arguments));
}

#[tokio::test]
async fn an_argument_allowlist_keeps_only_the_named_fields() {
    let arguments = json!({
        "query": "rust tower layers",
        "limit": 10,
        "email": "alice@example.com",
        "filters": { "query": "nested keys are not top-level" },
    });
    let event = scrubbed_call(
        AnalyticsLayer::builder().capture_arguments_only(["query", "limit"]),
        arguments,
        text_result("ok"),
    )
    .await;
    assert_eq!(
        event.arguments_value(),
        Some(json!({
            "query": "rust tower layers",
            "limit": 10,
            "email": "[redacted]",
            "filters": "[redacted]",
        }))
    );
    // Results are not affected by the arguments' allowlist.
    assert_eq!(event.result_value(), Some(text_result("ok")));
}

#[tokio::test]
async fn an_mcp_session_id_is_masked_like_a_credential_unless_forced() {
    for (forced, expected) in [(false, "[redacted]"), (true, "session-credential-123")] {
        let sink = MemorySink::new();
        let builder = AnalyticsLayer::builder().sink(sink.clone());
        let builder = match forced {
            false => builder.capture_headers(["Mcp-Session-Id"]),
            true => builder.force_capture_headers(["Mcp-Session-Id"]),
        };
        let layer = builder.build();
        call_with_headers(&layer, &[("mcp-session-id", "session-credential-123")]).await;
        let events = sink.events();
        assert_eq!(
            events[0].headers.get("mcp-session-id").map(String::as_str),
            Some(expected)
        );
        if !forced {
            let json = serde_json::to_string(&events).unwrap();
            assert!(!json.contains("session-credential-123"), "{json}");
        }
    }
}
