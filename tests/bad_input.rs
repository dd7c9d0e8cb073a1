//! Hostile and broken input: whatever a client, the inner service or a sink does, the
//! request reaches the inner service byte for byte, the client gets exactly what the inner
//! service produced, nothing panics, and `stats()` tells what happened.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_mcp_analytics::sink::{Batch, Sink, SinkError, SinkFuture};
use tower_mcp_analytics::{
    AnalyticsLayer, AnalyticsLayerBuilder, MemorySink, ObservedBody, Outcome, PayloadLimits,
    RawJson, ReplayBody, ResponseKind, Stats,
};

// ---------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------

#[path = "support/test_body.rs"]
mod test_body;

use test_body::{Item, TestBody, TestError, chunked, data_of, drain};

/// A response body fed by the test through a channel: pending while the sender lives.
struct ChannelBody(mpsc::UnboundedReceiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = TestError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, TestError>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

/// Polls once without waiting: true when the body has nothing to give right now.
fn is_pending<B: Body + Unpin>(body: &mut B) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    Pin::new(body).poll_frame(&mut cx).is_pending()
}

// ---------------------------------------------------------------------------------------
// The service under test
// ---------------------------------------------------------------------------------------

type ResBody = UnsyncBoxBody<Bytes, TestError>;
type Seen = Arc<Mutex<Vec<Vec<Item>>>>;

fn boxed(body: impl Body<Data = Bytes, Error = TestError> + Send + 'static) -> ResBody {
    body.boxed_unsync()
}

fn json_response(status: u16, body: impl Into<Bytes>) -> Response<ResBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-inner", "yes")
        .body(boxed(TestBody::bytes(body)))
        .unwrap()
}

/// A 200 response of `content_type` streaming `body`.
fn streaming(
    content_type: &'static str,
    body: impl Body<Data = Bytes, Error = TestError> + Send + 'static,
) -> Response<ResBody> {
    Response::builder()
        .header("content-type", content_type)
        .body(boxed(body))
        .unwrap()
}

fn sse_response(
    body: impl Body<Data = Bytes, Error = TestError> + Send + 'static,
) -> Response<ResBody> {
    streaming("text/event-stream", body)
}

/// A layer over an inner service that reads the whole request body (recording its frames
/// in `seen`) and answers with `respond(request bytes)`.
fn service<F>(
    layer: &AnalyticsLayer,
    seen: &Seen,
    respond: F,
) -> impl Service<
    Request<TestBody>,
    Response = Response<ObservedBody<ResBody>>,
    Error = TestError,
    Future: Send,
> + Clone
where
    F: Fn(&[u8]) -> Result<Response<ResBody>, TestError> + Clone + Send + 'static,
{
    let seen = Arc::clone(seen);
    ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(move |request: Request<ReplayBody<TestBody>>| {
            let seen = Arc::clone(&seen);
            let respond = respond.clone();
            async move {
                let frames = drain(request.into_body()).await;
                let bytes = data_of(&frames);
                seen.lock().unwrap().push(frames);
                respond(&bytes)
            }
        }))
}

fn post(content_type: &str, body: TestBody) -> Request<TestBody> {
    Request::post("/mcp")
        .header("content-type", content_type)
        .body(body)
        .unwrap()
}

fn post_json(bytes: impl Into<Bytes>) -> Request<TestBody> {
    post("application/json", TestBody::bytes(bytes))
}

/// A sink, a layer delivering to it as `configure` sets it up, and an empty log of what
/// the inner service saw.
fn rig(
    configure: impl FnOnce(AnalyticsLayerBuilder) -> AnalyticsLayerBuilder,
) -> (MemorySink, AnalyticsLayer, Seen) {
    let sink = MemorySink::new();
    let layer = configure(AnalyticsLayer::builder().sink(sink.clone())).build();
    (sink, layer, Seen::default())
}

/// The frames the inner service read of the latest request, taken off the log.
fn take_seen(seen: &Seen) -> Vec<Item> {
    seen.lock()
        .unwrap()
        .pop()
        .expect("the inner service read a request")
}

/// Flushes, then checks that nothing was recorded and `unparsed` requests were counted
/// as unparsed; returns the stats.
async fn assert_unparsed_only(layer: &AnalyticsLayer, unparsed: u64) -> Stats {
    layer.flush().await;
    let stats = layer.stats();
    assert_eq!(stats.recorded, 0, "{stats:?}");
    assert_eq!(stats.requests_unparsed, unparsed, "{stats:?}");
    stats
}

/// Sends a request, reads the whole response; returns (status, headers, frames).
async fn send<S>(service: &S, request: Request<TestBody>) -> (StatusCode, HeaderMap, Vec<Item>)
where
    S: Service<Request<TestBody>, Response = Response<ObservedBody<ResBody>>, Error = TestError>
        + Clone,
{
    let response = service
        .clone()
        .oneshot(request)
        .await
        .expect("inner service answered");
    let (head, body) = response.into_parts();
    (head.status, head.headers, drain(body).await)
}

/// Sends a request and checks that the client got the inner service's 200 with [`OK`];
/// returns the response headers.
async fn send_ok<S>(service: &S, request: Request<TestBody>) -> HeaderMap
where
    S: Service<Request<TestBody>, Response = Response<ObservedBody<ResBody>>, Error = TestError>
        + Clone,
{
    let (status, headers, frames) = send(service, request).await;
    assert_eq!(status, 200);
    assert_eq!(data_of(&frames), OK);
    headers
}

fn assert_balanced(stats: &Stats) {
    assert_eq!(stats.in_queue, 0, "{stats:?}");
    assert_eq!(
        stats.recorded,
        stats.delivered + stats.dropped.total(),
        "{stats:?}"
    );
}

const OK: &[u8] = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}"#;

fn tools_call(id: i64, name: &str, arguments: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{name}","arguments":{arguments}}}}}"#
    )
}

// ---------------------------------------------------------------------------------------
// Malformed, mistyped, empty and non-UTF-8 requests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_json_reaches_the_server_unchanged_and_is_counted_unparsed() {
    let (sink, layer, seen) = rig(|b| b);
    let svc = service(&layer, &seen, |_| Ok(json_response(200, OK)));
    let bodies: &[&[u8]] = &[
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","#,
        b"}{",
        br#"{"jsonrpc":"2.0","id":1,"method":"ping"}{"jsonrpc":"2.0","id":2,"method":"ping"}"#,
        br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},"#,
        b"nul",
        b"42",
        b"\"tools/call\"",
        b"null",
        // A byte-order mark is not JSON whitespace.
        "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}".as_bytes(),
        b"\x00\x01\x02\xff",
    ];
    for body in bodies {
        let chunks: Vec<Bytes> = chunked(body, 3);
        let (status, headers, frames) = send(&svc, post_chunks(&chunks, &[])).await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-inner"], "yes");
        assert_eq!(data_of(&frames), OK);
        let inner = take_seen(&seen);
        assert_eq!(data_of(&inner), *body, "the server saw other bytes");
    }
    let stats = assert_unparsed_only(&layer, bodies.len() as u64).await;
    assert!(sink.events().is_empty());
    assert_balanced(&stats);
}

#[tokio::test]
async fn a_malformed_body_falls_back_to_the_mcp_method_headers() {
    let (sink, layer, seen) = rig(|b| b);
    let svc = service(&layer, &seen, |_| Ok(json_response(200, OK)));
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo""#;
    let request = Request::post("/mcp")
        .header("content-type", "application/json")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "echo")
        .body(TestBody::bytes(&body[..]))
        .unwrap();
    let (_, _, frames) = send(&svc, request).await;
    assert_eq!(data_of(&frames), OK);
    assert_eq!(data_of(&seen.lock().unwrap()[0]), body);
    layer.flush().await;
    let events = sink.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].method, "tools/call");
    assert_eq!(events[0].resource_name.as_deref(), Some("echo"));
    assert_eq!(events[0].request_id, None);
    // A call known from its headers takes the first response in the body.
    assert_eq!(events[0].outcome, Outcome::Success);
    assert_eq!(layer.stats().requests_unparsed, 0);
}

#[tokio::test]
async fn json_without_requests_makes_no_event() {
    let (sink, layer, seen) = rig(|b| b);
    let svc = service(&layer, &seen, |_| Ok(json_response(202, "")));
    let bodies: &[&[u8]] = &[
        // A client's answer to a server request is JSON-RPC, and no event.
        br#"{"jsonrpc":"2.0","id":7,"result":{}}"#,
        br#"[{"jsonrpc":"2.0","id":7,"result":{}},{"jsonrpc":"2.0","id":8,"error":{"code":1,"message":"no"}}]"#,
        b"{}",
        b"[]",
        b"[1,2,3]",
        br#"{"jsonrpc":"2.0","id":1,"method":42}"#,
    ];
    for (i, body) in bodies.iter().enumerate() {
        let (status, _, _) = send(&svc, post_json(&body[..])).await;
        assert_eq!(status, 202);
        assert_eq!(data_of(&take_seen(&seen)), *body);
        if i == 1 {
            assert_eq!(
                layer.stats().requests_unparsed,
                0,
                "client responses are JSON-RPC"
            );
        }
    }
    layer.flush().await;
    let stats = layer.stats();
    assert_eq!(stats.recorded, 0, "{stats:?}");
    assert!(sink.events().is_empty());
}

// Valid JSON holding no request, notification or client response (`{}`, `[]`,
// `[1,2,3]`, a `method` that is not a string, a 10,000-deep object) makes no event and is
// counted in `requests_unparsed`, so such requests still show in `stats()`.
#[tokio::test]
async fn json_that_is_not_json_rpc_counts_as_unparsed() {
    let (_sink, layer, seen) = rig(|b| b);
    let svc = service(&layer, &seen, |_| Ok(json_response(400, "")));
    let deep_object = format!("{}1{}", r#"{"a":"#.repeat(DEPTH), "}".repeat(DEPTH));
    let bodies: Vec<&[u8]> = vec![
        b"{}",
        b"[]",
        b"[1,2,3]",
        br#"{"jsonrpc":"2.0","id":1,"method":42}"#,
        deep_object.as_bytes(),
    ];
    for body in &bodies {
        send(&svc, post_json(body.to_vec())).await;
    }
    assert_unparsed_only(&layer, bodies.len() as u64).await;
}

// A duplicate key inside `params` or `_meta` (`"name"` twice, `"progressToken"` twice)
// must not lose the event: servers that keep `_meta` as a JSON map (rmcp does; last key
// wins) still run the call, so otherwise a client could hide tool calls from analytics.
#[tokio::test]
async fn a_duplicate_key_inside_params_loses_only_that_key() {
    let (sink, layer, seen) = rig(|b| b);
    let svc = service(&layer, &seen, |_| Ok(json_response(200, OK)));
    let bodies = [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","_meta":{"progressToken":1,"progressToken":2}}}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","name":"echo"}}"#,
    ];
    for body in bodies {
        send(&svc, post_json(body)).await;
        assert_eq!(data_of(&take_seen(&seen)), body.as_bytes());
    }
    layer.flush().await;
    let stats = layer.stats();
    let events = sink.events();
    assert_eq!(events.len(), 2, "{stats:?}");
    assert!(events.iter().all(|e| e.method == "tools/call"));
    assert_eq!(stats.requests_unparsed, 0);
}

// JSON-RPC messages are objects: a batch entry that is an array is not read as a message
// (the request is counted as unparsed), whatever its positional contents.
#[tokio::test]
async fn an_array_inside_a_batch_is_not_a_message() {
    let (sink, layer, seen) = rig(|b| b);
    let svc = service(&layer, &seen, |_| {
        Ok(json_response(
            200,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request"}}"#,
        ))
    });
    let body = br#"[[1,"tools/call",{"name":"echo"}]]"#;
    send(&svc, post_json(&body[..])).await;
    assert_eq!(data_of(&seen.lock().unwrap()[0]), body);
    layer.flush().await;
    assert!(sink.events().is_empty());
    assert_eq!(layer.stats().requests_unparsed, 1);
}

#[tokio::test]
async fn requests_that_are_not_json_posts_are_passed_through_untouched() {
    let (_sink, layer, seen) = rig(|b| b);
    let svc = service(&layer, &seen, |_| Ok(json_response(200, OK)));
    let body = tools_call(1, "echo", r#"{"text":"hi"}"#);
    let mut chunks = chunked(body.as_bytes(), 7);
    chunks.push(Bytes::new());
    let original: Vec<Item> = chunks.iter().cloned().map(Item::Data).collect();
    let cases: Vec<(Method, Option<&str>)> = vec![
        (Method::POST, Some("text/plain")),
        (Method::POST, Some("application/jsonl")),
        (Method::POST, Some("application/json-seq")),
        (Method::POST, Some("json")),
        (Method::POST, None),
        (Method::PUT, Some("application/json")),
        (Method::GET, Some("application/json")),
        (Method::DELETE, Some("application/json")),
    ];
    for (method, content_type) in &cases {
        let mut request = Request::builder().method(method.clone()).uri("/mcp");
        if let Some(ct) = content_type {
            request = request.header("content-type", *ct);
        }
        let request = request.body(TestBody::chunks(&chunks)).unwrap();
        send_ok(&svc, request).await;
        // Not read at all: the very same frames, the empty one included.
        assert_eq!(take_seen(&seen), original, "{method} {content_type:?}");
    }
    // A content type that is not valid UTF-8 is not JSON either.
    let request = Request::post("/mcp")
        .header(
            "content-type",
            HeaderValue::from_bytes(b"application/json\xff").unwrap(),
        )
        .body(TestBody::chunks(&chunks))
        .unwrap();
    send(&svc, request).await;
    assert_eq!(take_seen(&seen), original);

    assert_unparsed_only(&layer, 0).await;
}

#[tokio::test]
async fn empty_bodies_are_unparsed() {
    let (_sink, layer, seen) = rig(|b| b);
    let svc = service(&layer, &seen, |_| Ok(json_response(400, "")));
    let bodies = vec![
        TestBody::new(Vec::new()),
        TestBody::chunks(&[Bytes::new()]),
        TestBody::chunks(&[Bytes::new(), Bytes::new()]),
        TestBody::chunks(&[Bytes::from_static(b" \r\n\t ")]),
    ];
    let expected: Vec<&[u8]> = vec![b"", b"", b"", b" \r\n\t "];
    for (body, want) in bodies.into_iter().zip(&expected) {
        let (status, _, frames) = send(&svc, post("application/json", body)).await;
        assert_eq!(status, 400);
        assert!(data_of(&frames).is_empty());
        assert_eq!(data_of(&take_seen(&seen)), *want);
    }
    assert_unparsed_only(&layer, 4).await;
}

#[tokio::test]
async fn invalid_utf8_inside_json_strings() {
    let (sink, layer, seen) = rig(|b| b);
    let svc = service(&layer, &seen, |_| Ok(json_response(200, OK)));
    let with_junk = |template: &str| -> Vec<u8> {
        let (a, b) = template.split_once("JUNK").unwrap();
        [a.as_bytes(), b"\xff\xfe\xc3", b.as_bytes()].concat()
    };
    // In the arguments, in the tool name, in the method, in a field nobody reads.
    let bodies = [
        with_junk(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"JUNK"}}}"#,
        ),
        with_junk(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"eJUNK","arguments":{}}}"#,
        ),
        with_junk(r#"{"jsonrpc":"2.0","id":1,"method":"tools/JUNK"}"#),
        with_junk(r#"{"jsonrpc":"2.JUNK","id":1,"method":"ping"}"#),
    ];
    for body in &bodies {
        let (_, _, frames) = send(&svc, post_json(body.clone())).await;
        assert_eq!(data_of(&frames), OK);
        assert_eq!(&data_of(&take_seen(&seen)), body);
    }
    layer.flush().await;
    let stats = layer.stats();
    let events = sink.events();
    // serde_json validates UTF-8 wherever it keeps a value (a raw value or a string it
    // reads), so the first three bodies are not JSON-RPC; the junk in an ignored string
    // field is skipped without validation and the ping is recorded.
    assert_eq!(stats.requests_unparsed, 3, "{stats:?} {events:?}");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].method, "ping");
    assert_balanced(&stats);
}

// ---------------------------------------------------------------------------------------
// Bodies over the capture limit
// ---------------------------------------------------------------------------------------

/// A 10 KiB tools/call in ten 1,000-byte chunks and a remainder.
fn big_call() -> (Vec<u8>, Vec<Bytes>) {
    let padding = "x".repeat(10 * 1024);
    let body = tools_call(1, "upload", &format!(r#"{{"data":"{padding}"}}"#)).into_bytes();
    let chunks = chunked(&body, 1000);
    (body, chunks)
}

/// A JSON POST of `chunks`, with `headers` besides the content type.
fn post_chunks(chunks: &[Bytes], headers: &[(&str, &str)]) -> Request<TestBody> {
    let mut request = Request::post("/mcp").header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(TestBody::chunks(chunks)).unwrap()
}

#[tokio::test]
async fn a_body_over_the_capture_limit_is_replayed_exactly_and_not_parsed() {
    let (_sink, layer, seen) = rig(|b| b.capture_limit(1024));
    let svc = service(&layer, &seen, |_| Ok(json_response(200, OK)));
    let (body, chunks) = big_call();
    assert!(chunks.len() > 10);

    send_ok(&svc, post_chunks(&chunks, &[])).await;
    let inner = take_seen(&seen);
    assert_eq!(data_of(&inner), body);
    // The first two chunks (2,000 bytes: past the 1,024 limit) come as one frame, the
    // rest as the client sent them.
    let mut expected = vec![Item::Data(Bytes::from(chunks[..2].concat()))];
    expected.extend(chunks[2..].iter().cloned().map(Item::Data));
    assert_eq!(inner, expected);

    assert_unparsed_only(&layer, 1).await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_known_from_its_mcp_headers() {
    let (sink, layer, seen) = rig(|b| b.capture_limit(1024));
    let svc = service(&layer, &seen, |request: &[u8]| {
        if request.starts_with(br#"{"jsonrpc":"2.0","method":"notifications"#) {
            Ok(json_response(202, ""))
        } else {
            Ok(json_response(200, OK))
        }
    });
    let (body, chunks) = big_call();
    let name = "héllo wörld/ツール";
    let encoded = format!(
        "=?base64?{}?=",
        base64::engine::general_purpose::STANDARD.encode(name)
    );

    // Plain and base64 `Mcp-Name`.
    send(
        &svc,
        post_chunks(
            &chunks,
            &[("mcp-method", "tools/call"), ("mcp-name", "upload")],
        ),
    )
    .await;
    send(
        &svc,
        post_chunks(
            &chunks,
            &[("mcp-method", "tools/call"), ("mcp-name", &encoded)],
        ),
    )
    .await;
    // A base64 `Mcp-Method`.
    let method = format!(
        "=?base64?{}?=",
        base64::engine::general_purpose::STANDARD.encode("prompts/get")
    );
    send(&svc, post_chunks(&chunks, &[("mcp-method", &method)])).await;
    // Broken base64 in the name: the name is dropped, the event stays.
    send(
        &svc,
        post_chunks(
            &chunks,
            &[("mcp-method", "tools/call"), ("mcp-name", "=?base64?***?=")],
        ),
    )
    .await;
    // Broken base64 in the method, and a method header over 1,024 bytes: no event.
    send(
        &svc,
        post_chunks(&chunks, &[("mcp-method", "=?base64?%%%?=")]),
    )
    .await;
    let long = "m".repeat(2000);
    send(&svc, post_chunks(&chunks, &[("mcp-method", &long)])).await;
    // A notification known from its header.
    let padding = "y".repeat(4096);
    let notification = format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/initialized","params":{{"pad":"{padding}"}}}}"#
    );
    let note_chunks: Vec<Bytes> = chunked(notification.as_bytes(), 512);
    send(
        &svc,
        post_chunks(&note_chunks, &[("mcp-method", "notifications/initialized")]),
    )
    .await;

    for (i, frames) in seen.lock().unwrap().iter().enumerate() {
        let want = if i == 6 {
            notification.as_bytes()
        } else {
            &body[..]
        };
        assert_eq!(data_of(frames), want, "request {i}");
    }
    layer.flush().await;
    let events = sink.events();
    let summary: Vec<(String, Option<String>, Outcome)> = events
        .iter()
        .map(|e| (e.method.clone(), e.resource_name.clone(), e.outcome))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("tools/call".into(), Some("upload".into()), Outcome::Success),
            ("tools/call".into(), Some(name.into()), Outcome::Success),
            ("prompts/get".into(), None, Outcome::Success),
            ("tools/call".into(), None, Outcome::Success),
            ("notifications/initialized".into(), None, Outcome::Accepted),
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e.request_id.is_none() && e.arguments.is_none())
    );
    assert_eq!(
        events[0].result_value(),
        Some(json!({"content":[{"type":"text","text":"ok"}]}))
    );
    let stats = layer.stats();
    assert_eq!(stats.requests_unparsed, 2, "{stats:?}");
    assert_balanced(&stats);
}

#[tokio::test]
async fn a_declared_content_length_over_the_limit_is_not_read_at_all() {
    let (sink, layer, seen) = rig(|b| b.capture_limit(1024));
    let svc = service(&layer, &seen, |_| Ok(json_response(200, OK)));
    let (body, chunks) = big_call();
    let length = body.len().to_string();
    let original: Vec<Item> = chunks.iter().cloned().map(Item::Data).collect();

    send(&svc, post_chunks(&chunks, &[("content-length", &length)])).await;
    send(
        &svc,
        post_chunks(
            &chunks,
            &[
                ("content-length", &length),
                ("mcp-method", "tools/call"),
                ("mcp-name", "upload"),
            ],
        ),
    )
    .await;
    // A declared length that lies (small) or is junk: the body is read up to the limit.
    send(&svc, post_chunks(&chunks, &[("content-length", "10")])).await;
    send(&svc, post_chunks(&chunks, &[("content-length", "lots")])).await;

    let inner = seen.lock().unwrap().clone();
    // Not read: the very same frames.
    assert_eq!(inner[0], original);
    assert_eq!(inner[1], original);
    for frames in &inner[2..] {
        assert_eq!(data_of(frames), body);
    }
    layer.flush().await;
    let events = sink.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].resource_name.as_deref(), Some("upload"));
    assert_eq!(events[0].outcome, Outcome::Success);
    assert_eq!(layer.stats().requests_unparsed, 3);
}

#[tokio::test]
async fn a_body_that_fails_while_being_read_reaches_the_server_as_the_same_failure() {
    let (_sink, layer, seen) = rig(|b| b.capture_limit(1024));
    let svc = service(&layer, &seen, |_| Ok(json_response(200, OK)));
    let body = tools_call(1, "echo", "{}");
    let (a, b) = body.as_bytes().split_at(20);
    // Fails before the limit, and after it.
    let early = vec![
        Item::Data(Bytes::copy_from_slice(a)),
        Item::Data(Bytes::copy_from_slice(b)),
        Item::Error("connection reset".into()),
    ];
    let (_, big) = big_call();
    let mut late: Vec<Item> = big[..4].iter().cloned().map(Item::Data).collect();
    late.push(Item::Error("connection reset".into()));
    for items in [early, late] {
        send(&svc, post("application/json", TestBody::new(items.clone()))).await;
        let inner = take_seen(&seen);
        assert_eq!(data_of(&inner), data_of(&items));
        assert_eq!(inner.last(), Some(&Item::Error("connection reset".into())));
    }
    // The first request's body never completed: no event. The second went over the limit
    // first: unparsed.
    assert_unparsed_only(&layer, 1).await;
}

// ---------------------------------------------------------------------------------------
// Deep nesting
// ---------------------------------------------------------------------------------------

const DEPTH: usize = 10_000;

#[tokio::test]
async fn deeply_nested_json_neither_overflows_nor_changes_a_byte() {
    let (sink, layer, seen) = rig(|b| b);
    let svc = service(&layer, &seen, |_| Ok(json_response(200, OK)));
    let arrays = format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(DEPTH), "}".repeat(DEPTH));
    let unclosed = "[".repeat(DEPTH);
    let deep_method = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":{}"x"{}}}"#,
        "[".repeat(DEPTH),
        "]".repeat(DEPTH)
    );
    let deep_meta = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"m","_meta":{{"progressToken":{}0{}}}}}}}"#,
        "[".repeat(DEPTH),
        "]".repeat(DEPTH)
    );
    let mut unparsed = Vec::new();
    for body in [&arrays, &objects, &unclosed, &deep_method, &deep_meta] {
        let before = layer.stats().requests_unparsed;
        let chunks: Vec<Bytes> = chunked(body.as_bytes(), 4096);
        send_ok(&svc, post_chunks(&chunks, &[])).await;
        assert_eq!(data_of(&take_seen(&seen)), body.as_bytes());
        unparsed.push(layer.stats().requests_unparsed - before);
    }
    layer.flush().await;
    let events = sink.events();
    // Only the tools/call with a deep (unusable) progress token is a request.
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].resource_name.as_deref(), Some("m"));
    assert_eq!(events[0].outcome, Outcome::Success);
    // The unclosed array is malformed. (The others parse; see
    // json_that_is_not_json_rpc_counts_as_unparsed for why they are not counted.)
    assert_eq!(unparsed[2], 1, "{unparsed:?}");
    assert_eq!(unparsed[4], 0, "{unparsed:?}");
    assert_balanced(&layer.stats());
}

#[tokio::test]
async fn deeply_nested_arguments_still_make_an_event() {
    let (sink, layer, seen) = rig(|b| b);
    let deep_result = format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":{{"content":[],"isError":true,"deep":{}0{}}}}}"#,
        "[".repeat(DEPTH),
        "]".repeat(DEPTH)
    );
    let svc = service(&layer, &seen, {
        let deep_result = deep_result.clone();
        move |_| Ok(json_response(200, deep_result.clone()))
    });
    let args = format!(r#"{{"x":{}1{}}}"#, "[".repeat(DEPTH), "]".repeat(DEPTH));
    let body = tools_call(1, "deep", &args);
    let chunks: Vec<Bytes> = chunked(body.as_bytes(), 999);
    let (_, _, frames) = send(&svc, post_chunks(&chunks, &[])).await;
    assert_eq!(data_of(&frames), deep_result.as_bytes());
    assert_eq!(data_of(&seen.lock().unwrap()[0]), body.as_bytes());

    // Deep objects too, and deep data inside an SSE answer.
    let objects = format!("{}1{}", r#"{"a":"#.repeat(DEPTH), "}".repeat(DEPTH));
    let body2 = tools_call(2, "deep2", &objects);
    let sse_svc = service(&layer, &seen, move |_| {
        let deep = format!(
            "data: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{{\"data\":{}0{}}}}}\n\ndata: {{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{{\"v\":{}0{}}}}}\n\n",
            "[".repeat(DEPTH),
            "]".repeat(DEPTH),
            r#"{"a":"#.repeat(DEPTH),
            "}".repeat(DEPTH),
        );
        Ok(sse_response(TestBody::bytes(deep)))
    });
    send(&sse_svc, post_json(body2.clone())).await;
    assert_eq!(data_of(&seen.lock().unwrap()[1]), body2.as_bytes());

    layer.flush().await;
    let events = sink.events();
    assert_eq!(events.len(), 2, "{events:?}");
    let first = &events[0];
    assert_eq!(first.method, "tools/call");
    assert_eq!(first.resource_name.as_deref(), Some("deep"));
    assert_eq!(first.request_id, Some(json!(1)));
    // Payloads nested at any depth are cut at the depth limit, with a marker saying what
    // was there.
    let cut = |payload: Option<&RawJson>, marker: &str| {
        payload.is_some_and(|json| json.get().contains(marker) && json.to_value() != Value::Null)
    };
    assert!(
        cut(first.arguments.as_ref(), "array of 1 items nested too deep"),
        "{first:?}"
    );
    assert!(cut(
        first.result.as_ref(),
        "array of 1 items nested too deep"
    ));
    let second = &events[1];
    assert_eq!(second.resource_name.as_deref(), Some("deep2"));
    assert!(cut(
        second.arguments.as_ref(),
        "object of 1 keys nested too deep"
    ));
    assert_eq!(second.outcome, Outcome::Success);
    assert!(second.result.is_some());
    assert_eq!(second.log_notifications, 1);
}

// A failed tool call whose result holds something nested deeper than serde_json's 128
// levels (e.g. a `structuredContent` tree) is still a `ToolError`: the flags are read
// from the raw result when it cannot become a value.
#[tokio::test]
async fn deep_results_keep_their_is_error_flag() {
    let (sink, layer, seen) = rig(|b| b);
    let svc = service(&layer, &seen, |_| {
        Ok(json_response(
            200,
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"result":{{"content":[{{"type":"text","text":"failed"}}],"isError":true,"structuredContent":{{"tree":{}0{}}}}}}}"#,
                "[".repeat(200),
                "]".repeat(200)
            ),
        ))
    });
    send(&svc, post_json(tools_call(1, "deep", "{}"))).await;
    layer.flush().await;
    let events = sink.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].outcome, Outcome::ToolError, "{:?}", events[0]);
    assert!(events[0].is_error);
}

// ---------------------------------------------------------------------------------------
// Huge batches
// ---------------------------------------------------------------------------------------

const ENTRIES: usize = 100_000;

fn ping_batch() -> Vec<u8> {
    let mut body = Vec::with_capacity(ENTRIES * 48);
    body.push(b'[');
    for n in 0..ENTRIES {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(
            format!(r#"{{"jsonrpc":"2.0","id":{n},"method":"ping"}}"#).as_bytes(),
        );
    }
    body.push(b']');
    body
}

fn pong_batch() -> Vec<u8> {
    let mut body = Vec::with_capacity(ENTRIES * 40);
    body.push(b'[');
    for n in 0..ENTRIES {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(format!(r#"{{"jsonrpc":"2.0","id":{n},"result":{{}}}}"#).as_bytes());
    }
    body.push(b']');
    body
}

#[tokio::test]
async fn a_batch_of_100_000_requests_is_capped() {
    let body = ping_batch();
    // 100,000 pings are ~4.6 MB: over the default 4 MiB capture limit, so raise it.
    assert!(body.len() > tower_mcp_analytics::DEFAULT_CAPTURE_LIMIT);
    let (sink, layer, seen) = rig(|b| b.capture_limit(8 << 20).response_capture_limit(8 << 20));
    // The server answers every ping in one SSE stream, one event per answer.
    let svc = service(&layer, &seen, |_| {
        let events: Vec<Bytes> = (0..ENTRIES)
            .map(|n| {
                Bytes::from(format!(
                    "data: {{\"jsonrpc\":\"2.0\",\"id\":{n},\"result\":{{}}}}\n\n"
                ))
            })
            .collect();
        Ok(sse_response(TestBody::chunks(&events)))
    });
    let chunks: Vec<Bytes> = chunked(&body, 64 * 1024);
    let (status, _, frames) = send(&svc, post_chunks(&chunks, &[])).await;
    assert_eq!(status, 200);
    assert_eq!(frames.len(), ENTRIES, "every SSE frame reaches the client");
    assert_eq!(data_of(&seen.lock().unwrap()[0]), body);

    layer.flush().await;
    let events = sink.events();
    assert_eq!(events.len(), 100);
    for (n, event) in events.iter().enumerate() {
        assert_eq!(event.method, "ping");
        assert_eq!(event.request_id, Some(json!(n)));
        assert_eq!(event.outcome, Outcome::Success);
        assert!(event.batch);
    }
    let stats = layer.stats();
    assert_eq!(stats.recorded, ENTRIES as u64, "{stats:?}");
    assert_eq!(stats.dropped.call_cap, (ENTRIES - 100) as u64, "{stats:?}");
    assert_eq!(stats.delivered, 100);
    assert_balanced(&stats);
}

#[tokio::test]
async fn a_batch_of_100_000_ids_answered_by_one_json_array() {
    let body = ping_batch();
    let answer = pong_batch();
    let (sink, layer, seen) = rig(|b| {
        b.capture_limit(8 << 20)
            .response_capture_limit(8 << 20)
            .max_calls_per_request(100)
    });
    let svc = service(&layer, &seen, {
        let answer = Bytes::from(answer.clone());
        move |_| {
            let chunks: Vec<Bytes> = chunked(&answer, 100_000);
            Ok(streaming("application/json", TestBody::chunks(&chunks)))
        }
    });
    let (_, _, frames) = send(&svc, post_json(body.clone())).await;
    assert_eq!(data_of(&frames), answer);
    assert_eq!(data_of(&seen.lock().unwrap()[0]), body);
    // The worker resolves each of the 100 calls by re-reading the whole 4 MB answer
    // (`find_response` per call): by far the slowest step of this file.
    layer.flush().await;
    let events = sink.events();
    assert_eq!(events.len(), 100);
    assert!(events.iter().all(|e| e.outcome == Outcome::Success));
    assert_eq!(events[99].request_id, Some(json!(99)));
    let stats = layer.stats();
    assert_eq!(stats.recorded, ENTRIES as u64);
    assert_eq!(stats.dropped.call_cap, (ENTRIES - 100) as u64);
    assert_balanced(&stats);

    // With the default 4 MiB capture limit the same batch is too large to read.
    let sink = MemorySink::new();
    let default_layer = AnalyticsLayer::new(sink.clone());
    let svc = service(&default_layer, &seen, |_| Ok(json_response(202, "")));
    send(&svc, post_json(body.clone())).await;
    assert_eq!(data_of(seen.lock().unwrap().last().unwrap()), body);
    assert_unparsed_only(&default_layer, 1).await;
}

// ---------------------------------------------------------------------------------------
// Responses: endless, huge, failing
// ---------------------------------------------------------------------------------------

fn progress_call() -> String {
    r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"watch","_meta":{"progressToken":"tok"}}}"#.to_owned()
}

#[tokio::test]
async fn an_endless_sse_stream_flows_and_a_dropped_one_is_cancelled() {
    let (sink, layer, seen) = rig(|b| b);
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let rx = Arc::new(Mutex::new(Some(rx)));
    let svc = service(&layer, &seen, move |_| {
        let rx = rx.lock().unwrap().take().expect("one request");
        Ok(sse_response(ChannelBody(rx)))
    });
    let response = svc
        .clone()
        .oneshot(post_json(progress_call()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    for step in 1..=5 {
        let event = Bytes::from(format!(
            "data: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progressToken\":\"tok\",\"progress\":{step}}}}}\n\n"
        ));
        tx.send(event.clone()).unwrap();
        let frame = body.frame().await.expect("a frame").expect("data");
        assert_eq!(
            frame.into_data().unwrap(),
            event,
            "the frame arrives as produced"
        );
        assert!(
            is_pending(&mut body),
            "nothing more until the server sends it"
        );
    }
    layer.flush().await;
    assert_eq!(layer.stats().recorded, 0, "still running");
    assert!(!body.is_end_stream());

    drop(body);
    layer.flush().await;
    let events = sink.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].outcome, Outcome::Cancelled);
    assert_eq!(events[0].progress_notifications, 5);
    assert_eq!(events[0].response_kind, Some(ResponseKind::Sse));
    assert_eq!(events[0].http_status, Some(200));
    drop(tx);
    assert_balanced(&layer.stats());
}

#[tokio::test]
async fn ten_thousand_keep_alives_then_silence() {
    let (sink, layer, seen) = rig(|b| b);
    let keep_alive = Bytes::from_static(b": keep-alive\n\n");
    let svc = service(&layer, &seen, {
        let keep_alive = keep_alive.clone();
        move |_| {
            let items = vec![Item::Data(keep_alive.clone()); 10_000];
            Ok(sse_response(TestBody::endless(items)))
        }
    });
    let response = svc
        .clone()
        .oneshot(post_json(progress_call()))
        .await
        .unwrap();
    let mut body = response.into_body();
    for _ in 0..10_000 {
        let frame = body.frame().await.expect("a frame").expect("data");
        assert_eq!(frame.into_data().unwrap(), keep_alive);
    }
    assert!(is_pending(&mut body));
    assert!(is_pending(&mut body));
    layer.flush().await;
    assert!(sink.events().is_empty());
    drop(body);
    layer.flush().await;
    let events = sink.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].outcome, Outcome::Cancelled);
    assert_eq!(events[0].progress_notifications, 0);
}

#[tokio::test]
async fn a_response_dropped_before_its_head_is_cancelled() {
    let (sink, layer, _) = rig(|b| b);
    // The inner service never answers.
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(
            |request: Request<ReplayBody<TestBody>>| async move {
                let _ = drain(request.into_body()).await;
                std::future::pending::<Result<Response<ResBody>, TestError>>().await
            },
        ));
    let mut future = Box::pin(svc.oneshot(post_json(progress_call())));
    let mut cx = Context::from_waker(std::task::Waker::noop());
    for _ in 0..10 {
        assert!(future.as_mut().poll(&mut cx).is_pending());
    }
    drop(future);
    layer.flush().await;
    let events = sink.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].outcome, Outcome::Cancelled);
    assert_eq!(events[0].http_status, None);
}

#[tokio::test]
async fn an_sse_event_over_the_response_limit_is_too_large_but_delivered() {
    let (sink, layer, seen) = rig(|b| b.response_capture_limit(1 << 20));
    let text = "x".repeat(10 << 20);
    let huge_answer = format!(
        "data: {{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{{\"content\":[{{\"type\":\"text\",\"text\":\"{text}\"}}]}}}}\n\n"
    );
    let huge_progress = format!(
        "data: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progressToken\":\"tok\",\"progress\":1,\"message\":\"{text}\"}}}}\n\ndata: {{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{{}}}}\n\n"
    );
    for stream in [&huge_answer, &huge_progress] {
        let stream = Bytes::from(stream.clone());
        let chunks: Vec<Bytes> = chunked(&stream, 64 * 1024);
        let svc = service(&layer, &seen, move |_| {
            Ok(sse_response(TestBody::chunks(&chunks)))
        });
        let (_, _, frames) = send(&svc, post_json(progress_call())).await;
        assert_eq!(data_of(&frames), stream, "the client gets every byte");
    }
    layer.flush().await;
    let events = sink.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].outcome, Outcome::TooLarge);
    assert_eq!(events[0].result, None);
    // An oversized notification is skipped (not counted); the answer after it is read.
    assert_eq!(events[1].outcome, Outcome::Success);
    assert_eq!(events[1].progress_notifications, 0);
}

#[tokio::test]
async fn a_json_response_over_the_limit_is_too_large_but_delivered() {
    let limit = 1 << 20;
    let (sink, layer, seen) = rig(|b| b.response_capture_limit(limit));
    let prefix = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"pad":""#;
    let suffix = r#""}}"#;
    let sized = |len: usize| {
        let pad = "p".repeat(len - prefix.len() - suffix.len());
        Bytes::from(format!("{prefix}{pad}{suffix}"))
    };
    for body in [sized(2 * limit), sized(limit + 1), sized(limit)] {
        let chunks: Vec<Bytes> = chunked(&body, 100_000);
        let svc = service(&layer, &seen, move |_| {
            Ok(streaming("application/json", TestBody::chunks(&chunks)))
        });
        let (_, _, frames) = send(&svc, post_json(tools_call(1, "big", "{}"))).await;
        assert_eq!(data_of(&frames), body);
    }
    layer.flush().await;
    let outcomes: Vec<Outcome> = sink.events().iter().map(|e| e.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::TooLarge, Outcome::TooLarge, Outcome::Success]
    );
}

#[tokio::test]
async fn an_inner_service_error_comes_out_unchanged() {
    let (sink, layer, seen) = rig(|b| b);
    let svc = service(&layer, &seen, |_| Err(TestError("database on fire".into())));
    let body = tools_call(1, "echo", "{}");
    let error = svc
        .clone()
        .oneshot(post_json(body.clone()))
        .await
        .unwrap_err();
    assert_eq!(error, TestError("database on fire".into()));
    assert_eq!(data_of(&seen.lock().unwrap()[0]), body.as_bytes());
    // Not read by the layer (not JSON): the error still passes, no event.
    let error = svc
        .clone()
        .oneshot(post("text/plain", TestBody::bytes(body.clone())))
        .await
        .unwrap_err();
    assert_eq!(error.0, "database on fire");
    layer.flush().await;
    let events = sink.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].outcome, Outcome::NoResponse);
    assert_eq!(events[0].http_status, None);
    assert!(events[0].is_error);
}

#[tokio::test]
async fn a_response_body_failing_mid_stream_reaches_the_client() {
    let (sink, layer, seen) = rig(|b| b);
    let json_items = vec![
        Item::Data(Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"#)),
        Item::Error("upstream reset".into()),
    ];
    let sse_items = vec![
        Item::Data(Bytes::from_static(
            b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"tok\",\"progress\":1}}\n\n",
        )),
        Item::Data(Bytes::from_static(b"data: {\"jsonrpc\":\"2.0\",\"id\":9,")),
        Item::Error("upstream reset".into()),
    ];
    let json_svc = service(&layer, &seen, {
        let items = json_items.clone();
        move |_| Ok(streaming("application/json", TestBody::new(items.clone())))
    });
    let (_, _, frames) = send(&json_svc, post_json(tools_call(1, "echo", "{}"))).await;
    assert_eq!(frames, json_items);
    let sse_svc = service(&layer, &seen, {
        let items = sse_items.clone();
        move |_| Ok(sse_response(TestBody::new(items.clone())))
    });
    let (_, _, frames) = send(&sse_svc, post_json(progress_call())).await;
    assert_eq!(frames, sse_items);

    layer.flush().await;
    let events = sink.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].outcome, Outcome::NoResponse);
    assert_eq!(events[0].http_status, Some(200));
    assert_eq!(events[1].outcome, Outcome::NoResponse);
    assert_eq!(events[1].progress_notifications, 1);
}

// ---------------------------------------------------------------------------------------
// Sinks that fail, panic or hang
// ---------------------------------------------------------------------------------------

struct ErrorSink(AtomicUsize);

impl Sink for ErrorSink {
    fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a> {
        self.0.fetch_add(batch.events().len(), Ordering::SeqCst);
        Box::pin(async { Err(SinkError::rejected("collector refused the batch")) })
    }
}

/// Panics inside the future it returns.
struct PanickingFutureSink;

impl Sink for PanickingFutureSink {
    fn send<'a>(&'a self, _batch: &'a Batch) -> SinkFuture<'a> {
        Box::pin(async {
            tokio::task::yield_now().await;
            panic!("sink future exploded (expected by the test)");
        })
    }
}

/// Panics in `send` itself, before returning a future.
struct PanickingSink;

impl Sink for PanickingSink {
    fn send<'a>(&'a self, _batch: &'a Batch) -> SinkFuture<'a> {
        panic!("sink exploded (expected by the test)");
    }
}

async fn three_tool_calls(layer: &AnalyticsLayer) {
    let seen = Seen::default();
    let svc = service(layer, &seen, |_| Ok(json_response(200, OK)));
    for i in 0..3 {
        let body = tools_call(i, "echo", "{}");
        send_ok(&svc, post_json(body.clone())).await;
        assert_eq!(data_of(&seen.lock().unwrap()[i as usize]), body.as_bytes());
        layer.flush().await;
    }
}

#[tokio::test]
async fn a_failing_sink_loses_only_its_events() {
    let layer = AnalyticsLayer::builder()
        .sink(ErrorSink(AtomicUsize::new(0)))
        .build();
    three_tool_calls(&layer).await;
    let stats = layer.stats();
    assert_eq!(stats.recorded, 3, "{stats:?}");
    assert_eq!(stats.dropped.rejected, 3, "{stats:?}");
    assert_eq!(stats.delivered, 0);
    assert_balanced(&stats);
}

#[tokio::test]
async fn a_sink_whose_future_panics_loses_only_its_events() {
    let layer = AnalyticsLayer::builder().sink(PanickingFutureSink).build();
    three_tool_calls(&layer).await;
    let stats = layer.stats();
    assert_eq!(stats.recorded, 3, "{stats:?}");
    assert_eq!(stats.dropped.sink_panicked, 3, "{stats:?}");
    assert_balanced(&stats);
}

// A sink that panics in `send` itself (before returning its future) loses only its
// batch, counted as `sink_panicked`; the worker carries on.
#[tokio::test]
async fn a_sink_that_panics_in_send_loses_only_its_events() {
    let layer = AnalyticsLayer::builder().sink(PanickingSink).build();
    three_tool_calls(&layer).await;
    let stats = layer.stats();
    assert_eq!(stats.recorded, 3, "{stats:?}");
    assert_eq!(stats.dropped.sink_panicked, 3, "{stats:?}");
    assert_balanced(&stats);
}

/// Waits for a permit before storing each batch: blocks until the test adds one.
struct GatedSink {
    gate: Arc<Semaphore>,
    store: MemorySink,
}

impl Sink for GatedSink {
    fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a> {
        Box::pin(async move {
            let _permit = self.gate.acquire().await.expect("gate open");
            self.store.send(batch).await
        })
    }
}

#[tokio::test]
async fn a_full_queue_drops_events_but_never_requests() {
    let gate = Arc::new(Semaphore::new(0));
    let store = MemorySink::new();
    let layer = AnalyticsLayer::builder()
        .sink(GatedSink {
            gate: Arc::clone(&gate),
            store: store.clone(),
        })
        .queue_capacity(1)
        .build();
    let seen = Seen::default();
    let svc = service(&layer, &seen, |_| Ok(json_response(200, OK)));
    let n = 20;
    for i in 0..n {
        let body = tools_call(i, "echo", "{}");
        send_ok(&svc, post_json(body.clone())).await;
        // Let the worker pick up what it can.
        tokio::task::yield_now().await;
    }
    assert_eq!(seen.lock().unwrap().len(), n as usize);
    let stats = layer.stats();
    assert_eq!(stats.recorded, n as u64, "{stats:?}");
    assert!(stats.dropped.queue_full > 0, "{stats:?}");
    assert_eq!(stats.delivered, 0, "the sink is blocked: {stats:?}");

    gate.add_permits(1);
    layer.flush().await;
    let stats = layer.stats();
    assert_balanced(&stats);
    assert_eq!(stats.delivered as usize, store.events().len());
    assert_eq!(
        stats.delivered + stats.dropped.queue_full,
        n as u64,
        "{stats:?}"
    );
}

/// An exchange larger than the whole byte budget goes into an empty queue (so that a large
/// answer still makes its event), but not into one that already holds something.
#[tokio::test]
async fn a_queue_byte_budget_smaller_than_one_exchange_admits_it_only_when_empty() {
    // The worker waits for its hour-long interval or a flush: the first exchange stays queued.
    let (_sink, layer, seen) = rig(|b| {
        b.queue_bytes(16)
            .flush_interval(std::time::Duration::from_secs(3600))
    });
    let svc = service(&layer, &seen, |_| Ok(json_response(200, OK)));
    send(&svc, post_json(tools_call(1, "echo", "{}"))).await;
    send(&svc, post_json(tools_call(2, "echo", "{}"))).await;
    layer.flush().await;
    let stats = layer.stats();
    assert_eq!(stats.recorded, 2);
    assert_eq!(stats.delivered, 1, "{stats:?}");
    assert_eq!(stats.dropped.queue_full, 1, "{stats:?}");
    assert_balanced(&stats);
}

/// Never finishes a batch.
struct HungSink(Arc<AtomicUsize>);

impl Sink for HungSink {
    fn send<'a>(&'a self, _batch: &'a Batch) -> SinkFuture<'a> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn shutdown_with_a_hung_sink_gives_up_and_accounts_for_everything() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = AnalyticsLayer::builder()
        .sink(HungSink(Arc::clone(&calls)))
        .batch_size(2)
        .build();
    let seen = Seen::default();
    let svc = service(&layer, &seen, |_| Ok(json_response(200, OK)));
    for i in 0..5 {
        send(&svc, post_json(tools_call(i, "echo", "{}"))).await;
    }
    tokio::task::yield_now().await;
    let report = layer.shutdown(Duration::from_millis(300)).await;
    assert!(!report.flushed, "{report:?}");
    let stats = report.stats;
    assert_eq!(stats.recorded, 5, "{stats:?}");
    assert_eq!(stats.delivered, 0);
    assert_eq!(stats.dropped.shutdown, 5, "{stats:?}");
    assert_balanced(&stats);
    assert!(calls.load(Ordering::SeqCst) >= 1, "the sink was called");

    // After shutdown requests still pass; their events are counted as lost to shutdown.
    send_ok(&svc, post_json(tools_call(9, "echo", "{}"))).await;
    layer.flush().await; // returns at once: the worker is gone
    let stats = layer.stats();
    assert_eq!(stats.recorded, 6);
    assert_eq!(stats.dropped.shutdown, 6);
    assert_balanced(&stats);
    let again = layer.shutdown(Duration::from_millis(300)).await;
    assert_eq!(again.stats, stats);
}

#[test]
fn a_layer_built_outside_a_runtime_still_delivers() {
    let sink = MemorySink::new();
    let layer = AnalyticsLayer::builder().sink(sink.clone()).build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let seen = Seen::default();
        let svc = service(&layer, &seen, |_| Ok(json_response(200, OK)));
        send_ok(&svc, post_json(tools_call(1, "echo", r#"{"a":1}"#))).await;
        layer.flush().await;
        let events = sink.wait_for(1, Duration::from_secs(10)).await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].arguments_value(), Some(json!({"a": 1})));
        assert_eq!(events[0].outcome, Outcome::Success);
        let report = layer.shutdown(Duration::from_secs(5)).await;
        assert!(report.flushed);
        assert_eq!(report.stats.delivered, 1);
        assert_balanced(&report.stats);
    });
    // And from a second runtime, after the first is gone.
    drop(runtime);
    let layer2 = AnalyticsLayer::builder().sink(sink.clone()).build();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let seen = Seen::default();
        let svc = service(&layer2, &seen, |_| Ok(json_response(200, OK)));
        send(&svc, post_json(tools_call(2, "echo", "{}"))).await;
        layer2.flush().await;
        assert_eq!(sink.events().len(), 2);
    });
}

/// The event cap holds for system fields too: a 3 MiB string id or method still makes an
/// event within 100 KiB, with the strings cut and marked.
#[tokio::test]
async fn huge_ids_and_methods_are_cut_to_fit_the_event_cap() {
    let (sink, analytics, seen) = rig(|b| b);
    let svc = service(&analytics, &seen, |_| {
        Ok(json_response(
            200,
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
        ))
    });
    let id = "i".repeat(3 << 20);
    let method = "m".repeat(3 << 20);
    let bodies = [
        format!(
            r#"{{"jsonrpc":"2.0","id":"{id}","method":"tools/call","params":{{"name":"echo"}}}}"#
        ),
        format!(r#"{{"jsonrpc":"2.0","id":2,"method":"{method}"}}"#),
    ];
    for body in &bodies {
        let (status, _, _) = send(&svc, post_json(body.clone())).await;
        assert_eq!(status, StatusCode::OK);
    }
    analytics.flush().await;
    let events = sink.events();
    assert_eq!(events.len(), 2, "{:?}", analytics.stats());
    for event in &events {
        let json = serde_json::to_string(event).expect("serialises");
        assert!(
            json.len() <= PayloadLimits::default().event_bytes,
            "{} bytes",
            json.len()
        );
    }
    let cut_id = events[0]
        .request_id
        .as_ref()
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(
        cut_id.starts_with("iii") && cut_id.ends_with(&format!("[truncated: {} bytes]", 3 << 20))
    );
    assert!(events[1].method.starts_with("mmm") && events[1].method.contains("[truncated:"));
}

/// A batch the server refuses as a whole (an error status, e.g. 415 from a server that
/// takes no batches) is one `http_error` event, not one per entry.
#[tokio::test]
async fn a_batch_refused_as_a_whole_is_one_event() {
    let (sink, analytics, seen) = rig(|b| b);
    let svc = service(&analytics, &seen, |_| {
        Ok(json_response(
            415,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"batches are not supported"}}"#,
        ))
    });
    let entries: Vec<String> = (0..100)
        .map(|n| tools_call(n, "add", r#"{"a":1}"#))
        .collect();
    let (status, _, _) = send(&svc, post_json(format!("[{}]", entries.join(",")))).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let svc = service(&analytics, &seen, |_| Ok(json_response(415, "not json")));
    send(&svc, post_json(format!("[{}]", entries[..3].join(",")))).await;
    analytics.flush().await;
    let events = sink.events();
    let stats = analytics.stats();
    assert_eq!(events.len(), 2, "{stats:?}");
    assert_eq!(stats.recorded, 2);
    assert!(
        events
            .iter()
            .all(|e| e.batch && e.method == "tools/call" && e.is_error)
    );
    assert_eq!(events[0].outcome, Outcome::Error);
    let message = |n: usize| {
        events[n]
            .error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_default()
    };
    assert!(
        message(0).contains("a batch of 100 messages, refused as a whole"),
        "{}",
        message(0)
    );
    assert_eq!(events[1].outcome, Outcome::HttpError);
    assert!(message(1).starts_with("HTTP 415"), "{}", message(1));
    assert!(message(1).contains("a batch of 3 messages"));
}

/// What calls in flight keep of their requests is bounded by `in_flight_bytes`: past it,
/// large arguments become size markers (counted), and the server still gets every byte.
#[tokio::test]
async fn large_arguments_past_the_in_flight_budget_become_size_markers() {
    let (sink, analytics, seen) = rig(|b| b.in_flight_bytes(1 << 20));
    let gate = Arc::new(Semaphore::new(0));
    let svc = service(&analytics, &seen, |_| {
        Ok(json_response(
            200,
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
        ))
    });
    // Three calls of 600 KiB in flight at once: the first fits the 1 MiB budget.
    let big = format!(r#"{{"text":"{}"}}"#, "word ".repeat(120 * 1024));
    let bodies: Vec<String> = (1..=3).map(|n| tools_call(n, "echo", &big)).collect();
    let call = |body: &String| {
        let svc = svc.clone();
        let request = post_json(body.clone());
        let gate = Arc::clone(&gate);
        async move {
            let mut response = svc.oneshot(request).await.expect("answer");
            // Hold the answer (and the call) open until every request was read.
            let _permit = gate.acquire().await;
            while response.body_mut().frame().await.is_some() {}
        }
    };
    let open = async {
        while seen.lock().unwrap().len() < 3 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(3);
    };
    tokio::join!(call(&bodies[0]), call(&bodies[1]), call(&bodies[2]), open);
    analytics.flush().await;
    let events = sink.events();
    assert_eq!(events.len(), 3);
    let markers = events
        .iter()
        .filter(|e| {
            e.arguments
                .as_ref()
                .is_some_and(|a| a.get().starts_with(r#"{"_truncated""#))
        })
        .count();
    assert_eq!(markers, 2, "{events:?}");
    assert_eq!(analytics.stats().payloads_withheld, 2);
    for (n, body) in bodies.iter().enumerate() {
        assert_eq!(data_of(&seen.lock().unwrap()[n]).len(), body.len());
    }
}
