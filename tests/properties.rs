//! Property tests of the analytics layer: byte-exact transparency of request and response
//! bodies whatever their content and chunking, split-invariant SSE decoding, and event
//! accounting.
//!
//! Bodies are delivered exactly as the test splits them by [`TestBody`], a small
//! `http_body::Body` over a queue of frames that can return `Poll::Pending` (waking itself)
//! before each frame, end with trailers or an error, and report an exact or a vague
//! `size_hint` and an eager or lazy `is_end_stream`.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use http_body::{Body, SizeHint};
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_mcp_analytics::sink::{Batch, Sink, SinkError, SinkFuture};
use tower_mcp_analytics::{AnalyticsLayer, Event, MemorySink, Outcome, ReplayBody};

// ---------------------------------------------------------------------------------------
// A body that delivers frames exactly as split
// ---------------------------------------------------------------------------------------

#[path = "support/test_body.rs"]
mod test_body;

use test_body::{Item, TestBody, TestError, drain};

/// The bytes of the data frames, and how the body ended (trailers, error, or nothing),
/// checking that nothing but data came before the end.
fn summarise(items: &[Item]) -> (Vec<u8>, Option<Item>) {
    let mut data = Vec::new();
    let mut end = None;
    for item in items {
        assert!(
            end.is_none(),
            "a frame after the end of the body: {items:?}"
        );
        match item {
            Item::Data(bytes) => data.extend_from_slice(bytes),
            other => end = Some(other.clone()),
        }
    }
    (data, end)
}

fn hint(h: SizeHint) -> (u64, Option<u64>) {
    (h.lower(), h.upper())
}

/// `cases` cases, and no regression files written next to the tests.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Splits `bytes` at the given cut points (empty chunks included when cuts coincide).
fn split(bytes: &[u8], cuts: &[Index]) -> Vec<Bytes> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for point in points {
        chunks.push(Bytes::copy_from_slice(&bytes[start..point]));
        start = point;
    }
    chunks.push(Bytes::copy_from_slice(&bytes[start..]));
    chunks
}

/// An event without the fields that differ between runs (id, timestamp, duration).
fn essence(event: &Event) -> Event {
    let mut event = event.clone();
    event.id = String::new();
    event.timestamp = String::new();
    event.duration_ms = 0.0;
    // Anonymous events get a fresh session each.
    event.session_id = None;
    event
}

fn trailers() -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert("x-checksum", HeaderValue::from_static("abc123"));
    map.append("x-checksum", HeaderValue::from_static("second"));
    map
}

// ---------------------------------------------------------------------------------------
// JSON-RPC generators
// ---------------------------------------------------------------------------------------

/// JSON without floats (a float may not survive a text round trip bit for bit).
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..5)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn arb_arguments() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-z_]{1,8}", arb_json(), 0..5)
        .prop_map(|map| Value::Object(map.into_iter().collect()))
}

fn arb_id() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9-]{1,12}".prop_map(Value::String),
    ]
}

#[derive(Debug, Clone)]
struct ToolCall {
    id: Value,
    name: String,
    arguments: Value,
}

impl ToolCall {
    fn json(&self) -> Value {
        json!({
            "jsonrpc": "2.0",
            "id": self.id,
            "method": "tools/call",
            "params": { "name": self.name, "arguments": self.arguments }
        })
    }
}

fn arb_tool_call() -> impl Strategy<Value = ToolCall> {
    (arb_id(), ".{1,16}", arb_arguments()).prop_map(|(id, name, arguments)| ToolCall {
        id,
        name,
        arguments,
    })
}

/// A request body, and the tool call it is when it is exactly one valid tools/call.
#[derive(Debug, Clone)]
struct RequestBody {
    bytes: Vec<u8>,
    call: Option<ToolCall>,
}

fn arb_request_body() -> impl Strategy<Value = RequestBody> {
    let single = arb_tool_call().prop_map(|call| RequestBody {
        bytes: serde_json::to_vec(&call.json()).expect("json"),
        call: Some(call),
    });
    let batch = prop::collection::vec(
        prop_oneof![
            arb_tool_call().prop_map(|c| c.json()),
            Just(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})),
            arb_id().prop_map(|id| json!({"jsonrpc": "2.0", "id": id, "method": "ping"})),
        ],
        0..6,
    )
    .prop_map(|items| RequestBody {
        bytes: serde_json::to_vec(&items).expect("json"),
        call: None,
    });
    let malformed = (arb_tool_call(), any::<Index>(), any::<u8>(), any::<bool>()).prop_map(
        |(call, at, byte, truncate)| {
            let mut bytes = serde_json::to_vec(&call.json()).expect("json");
            let at = at.index(bytes.len());
            if truncate {
                bytes.truncate(at);
            } else {
                bytes.insert(at, byte);
            }
            RequestBody { bytes, call: None }
        },
    );
    let random = prop::collection::vec(any::<u8>(), 0..600)
        .prop_map(|bytes| RequestBody { bytes, call: None });
    let invalid_utf8 = prop::collection::vec(0x80u8..=0xff, 1..4).prop_map(|junk| {
        let mut bytes =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"s":""#
                .to_vec();
        bytes.extend_from_slice(&junk);
        bytes.extend_from_slice(br#""}}}"#);
        RequestBody { bytes, call: None }
    });
    prop_oneof![
        4 => single,
        2 => batch,
        2 => malformed,
        2 => random,
        1 => invalid_utf8,
        1 => Just(RequestBody { bytes: Vec::new(), call: None }),
    ]
}

/// How a body ends after its data.
#[derive(Debug, Clone)]
enum Ending {
    Plain,
    Trailers,
    /// An error after this many of the chunks (the rest are never sent).
    ErrorAfter(Index),
}

fn arb_ending() -> impl Strategy<Value = Ending> {
    prop_oneof![
        3 => Just(Ending::Plain),
        1 => Just(Ending::Trailers),
        1 => any::<Index>().prop_map(Ending::ErrorAfter),
    ]
}

/// The items of a body made of `chunks` ending as `ending`.
fn items(chunks: &[Bytes], ending: &Ending) -> Vec<Item> {
    match ending {
        Ending::Plain => chunks.iter().cloned().map(Item::Data).collect(),
        Ending::Trailers => chunks
            .iter()
            .cloned()
            .map(Item::Data)
            .chain([Item::Trailers(trailers())])
            .collect(),
        Ending::ErrorAfter(at) => {
            let n = at.index(chunks.len() + 1);
            chunks[..n]
                .iter()
                .cloned()
                .map(Item::Data)
                .chain([Item::Error("request body broke".into())])
                .collect()
        }
    }
}

// ---------------------------------------------------------------------------------------
// 1. Request transparency
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct RequestCase {
    body: RequestBody,
    cuts: Vec<Index>,
    ending: Ending,
    content_type: Option<&'static str>,
    method: Method,
    /// Which capture limit: 0, 1, len-1, len, len+1, len/2, default.
    limit_choice: u8,
    content_length: bool,
    pend: bool,
    eager_end: bool,
    exact_hint: bool,
}

fn arb_request_case() -> impl Strategy<Value = RequestCase> {
    (
        arb_request_body(),
        prop::collection::vec(any::<Index>(), 0..8),
        arb_ending(),
        prop_oneof![
            4 => Just(Some("application/json")),
            1 => Just(Some("Application/JSON; charset=utf-8")),
            1 => Just(Some("text/plain")),
            1 => Just(Some("application/jsonl")),
            1 => Just(None),
        ],
        prop_oneof![6 => Just(Method::POST), 1 => Just(Method::PUT), 1 => Just(Method::GET)],
        0u8..7,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                body,
                cuts,
                ending,
                content_type,
                method,
                limit_choice,
                content_length,
                pend,
                eager_end,
                exact_hint,
            )| {
                RequestCase {
                    body,
                    cuts,
                    ending,
                    content_type,
                    method,
                    limit_choice,
                    content_length,
                    pend,
                    eager_end,
                    exact_hint,
                }
            },
        )
}

/// The frames the inner service should see when the layer reads a body with `limit`: the
/// bytes read (up to and including the chunk that passed the limit) as one frame, then
/// whatever the original body still had, untouched.
fn expected_replay(original: &[Item], limit: usize) -> Vec<Item> {
    let mut read = Vec::new();
    for (i, item) in original.iter().enumerate() {
        match item {
            Item::Data(data) => {
                read.extend_from_slice(data);
                if read.len() > limit {
                    let mut frames = vec![Item::Data(Bytes::from(read))];
                    frames.extend_from_slice(&original[i + 1..]);
                    return frames;
                }
            }
            end => {
                let mut frames = Vec::new();
                if !read.is_empty() {
                    frames.push(Item::Data(Bytes::from(read)));
                }
                frames.push(end.clone());
                return frames;
            }
        }
    }
    if read.is_empty() {
        Vec::new()
    } else {
        vec![Item::Data(Bytes::from(read))]
    }
}

/// What the inner service saw of a request.
type SeenRequest = Arc<Mutex<Option<(http::request::Parts, Vec<Item>)>>>;

fn run_request_case(case: &RequestCase) -> Result<(), TestCaseError> {
    let bytes = &case.body.bytes;
    let len = bytes.len();
    let limit = match case.limit_choice {
        0 => 0,
        1 => 1,
        2 => len.saturating_sub(1),
        3 => len,
        4 => len + 1,
        5 => len / 2,
        _ => tower_mcp_analytics::DEFAULT_CAPTURE_LIMIT,
    };
    let chunks = split(bytes, &case.cuts);
    let original = items(&chunks, &case.ending);
    let is_json = case.content_type.is_some_and(|ct| {
        ct.to_ascii_lowercase().starts_with("application/json;")
            || ct.eq_ignore_ascii_case("application/json")
    });
    let read_by_layer =
        case.method == Method::POST && is_json && !(case.content_length && len > limit);

    runtime().block_on(async {
        let sink = MemorySink::new();
        let layer = AnalyticsLayer::builder()
            .sink(sink.clone())
            .capture_limit(limit)
            .build();
        let seen: SeenRequest = Arc::default();
        let seen_in = Arc::clone(&seen);
        let service = ServiceBuilder::new()
            .layer(layer.clone())
            .service(service_fn(move |request: Request<ReplayBody<TestBody>>| {
                let seen = Arc::clone(&seen_in);
                async move {
                    let (parts, body) = request.into_parts();
                    let frames = drain(body).await;
                    *seen.lock().unwrap() = Some((parts, frames));
                    let response = Response::builder()
                        .header("content-type", "application/json")
                        .body(TestBody::shaped(
                            vec![Item::Data(Bytes::from_static(
                                br#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
                            ))],
                            false,
                            false,
                            true,
                        ))
                        .unwrap();
                    Ok::<_, Infallible>(response)
                }
            }));

        let mut request = Request::builder()
            .method(case.method.clone())
            .uri("/mcp")
            .header("x-request-marker", "42");
        if let Some(ct) = case.content_type {
            request = request.header("content-type", ct);
        }
        if case.content_length {
            request = request.header("content-length", len.to_string());
        }
        let request = request
            .body(TestBody::shaped(
                original.clone(),
                case.pend,
                case.eager_end,
                case.exact_hint,
            ))
            .unwrap();
        let expected_headers = request.headers().clone();
        let response = service.oneshot(request).await.unwrap();
        let response_frames = drain(response.into_body()).await;
        prop_assert_eq!(
            summarise(&response_frames).0,
            br#"{"jsonrpc":"2.0","id":1,"result":{}}"#.to_vec()
        );

        let (parts, frames) = seen.lock().unwrap().take().expect("the inner service ran");
        prop_assert_eq!(&parts.method, &case.method);
        prop_assert_eq!(&parts.headers, &expected_headers);
        prop_assert_eq!(parts.uri.path(), "/mcp");

        // Same bytes, same ending (trailers, or the error after the same prefix).
        let (got_data, got_end) = summarise(&frames);
        let (want_data, want_end) = summarise(&original);
        prop_assert_eq!(&got_data, &want_data);
        prop_assert_eq!(&got_end, &want_end);
        if read_by_layer {
            // What was read is replayed as one frame, then the rest of the stream as it was.
            prop_assert_eq!(&frames, &expected_replay(&original, limit));
        } else {
            // Untouched: every frame as the client sent it, empty ones included.
            prop_assert_eq!(&frames, &original);
        }

        layer.flush().await;
        let stats = layer.stats();
        let events = sink.events();
        prop_assert_eq!(stats.in_queue, 0);
        prop_assert_eq!(
            stats.recorded,
            stats.delivered + stats.dropped.total() + stats.in_queue
        );
        prop_assert_eq!(stats.delivered as usize, events.len());
        let complete = !matches!(case.ending, Ending::ErrorAfter(_));
        if let (Some(call), true, true, true) =
            (&case.body.call, read_by_layer, complete, len <= limit)
        {
            prop_assert_eq!(events.len(), 1, "one tools/call, one event: {:?}", events);
            let event = &events[0];
            prop_assert_eq!(&event.method, "tools/call");
            prop_assert_eq!(event.resource_name.as_deref(), Some(call.name.as_str()));
            prop_assert_eq!(event.request_id.as_ref(), Some(&call.id));
            prop_assert_eq!(event.arguments_value(), Some(call.arguments.clone()));
        }
        if !read_by_layer || !complete {
            prop_assert_eq!(events.len(), 0, "nothing is known about this request");
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn request_bodies_reach_the_inner_service_unchanged(case in arb_request_case()) {
        run_request_case(&case)?;
    }
}

// ---------------------------------------------------------------------------------------
// 2. Response transparency
// ---------------------------------------------------------------------------------------

fn arb_sse_stream() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            ".{0,20}".prop_map(|s| format!("data: {}\n\n", json!({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data": s}}))),
            Just("data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n".to_owned()),
            Just(": keep-alive\r\n\r\n".to_owned()),
            Just("id: 0\nretry: 10\ndata:\n\n".to_owned()),
            "[ -~]{0,30}".prop_map(|s| format!("data: {s}\r\r")),
        ],
        0..8,
    )
    .prop_map(|events| events.concat().into_bytes())
}

#[derive(Debug, Clone)]
struct ResponseCase {
    status: u16,
    content_type: Option<&'static str>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    cuts: Vec<Index>,
    ending: Ending,
    pend: bool,
    eager_end: bool,
    exact_hint: bool,
    request_is_json: bool,
}

fn arb_response_case() -> impl Strategy<Value = ResponseCase> {
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..400),
        (arb_json(), any::<bool>()).prop_map(|(result, err)| {
            let message = if err {
                json!({"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad","data":result}})
            } else {
                json!({"jsonrpc":"2.0","id":1,"result":{"content":[],"structured":result}})
            };
            serde_json::to_vec(&message).unwrap()
        }),
        arb_sse_stream(),
    ];
    (
        prop_oneof![Just(200u16), Just(202), Just(400), Just(404), Just(500)],
        prop_oneof![
            Just(Some("application/json")),
            Just(Some("text/event-stream")),
            Just(Some("text/plain")),
            Just(None)
        ],
        prop::collection::vec(("x-[a-z]{1,8}", "[ -~]{0,20}"), 0..4),
        body,
        prop::collection::vec(any::<Index>(), 0..10),
        arb_ending(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                status,
                content_type,
                headers,
                body,
                cuts,
                ending,
                pend,
                eager_end,
                exact_hint,
                request_is_json,
            )| {
                ResponseCase {
                    status,
                    content_type,
                    headers,
                    body,
                    cuts,
                    ending,
                    pend,
                    eager_end,
                    exact_hint,
                    request_is_json,
                }
            },
        )
}

fn run_response_case(case: &ResponseCase) -> Result<(), TestCaseError> {
    let chunks = split(&case.body, &case.cuts);
    let original = items(&chunks, &case.ending);
    let mut head = Response::builder().status(case.status);
    if let Some(ct) = case.content_type {
        head = head.header("content-type", ct);
    }
    for (name, value) in &case.headers {
        head = head.header(name.as_str(), value.as_str());
    }
    let template = head
        .body(TestBody::shaped(
            original.clone(),
            case.pend,
            case.eager_end,
            case.exact_hint,
        ))
        .unwrap();
    let expected_status = template.status();
    let expected_headers = template.headers().clone();
    let shadow = template.body().clone();
    let template = Arc::new(Mutex::new(Some(template)));

    runtime().block_on(async {
        let sink = MemorySink::new();
        let layer = AnalyticsLayer::builder()
            .sink(sink.clone())
            .response_capture_limit(64)
            .build();
        let service = ServiceBuilder::new()
            .layer(layer.clone())
            .service(service_fn(move |request: Request<ReplayBody<TestBody>>| {
                let response = template.lock().unwrap().take().expect("called once");
                async move {
                    let _ = drain(request.into_body()).await;
                    Ok::<_, Infallible>(response)
                }
            }));
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}"#;
        let request = Request::builder()
            .method(Method::POST)
            .uri("/mcp")
            .header(
                "content-type",
                if case.request_is_json {
                    "application/json"
                } else {
                    "text/plain"
                },
            )
            .body(TestBody::shaped(
                vec![Item::Data(Bytes::from_static(body))],
                false,
                false,
                true,
            ))
            .unwrap();
        let response = service.oneshot(request).await.unwrap();
        prop_assert_eq!(response.status(), expected_status);
        prop_assert_eq!(response.headers(), &expected_headers);
        prop_assert_eq!(response.version(), http::Version::HTTP_11);

        // Lockstep with an identical copy of the inner body: same size hint, same end of
        // stream, same frame, at every step.
        let mut observed = response.into_body();
        let mut shadow = shadow;
        loop {
            prop_assert_eq!(hint(observed.size_hint()), hint(shadow.size_hint()));
            prop_assert_eq!(observed.is_end_stream(), shadow.is_end_stream());
            let got = observed.frame().await;
            let want = shadow.frame().await;
            let (got, want) = match (got, want) {
                (None, None) => break,
                (Some(Ok(g)), Some(Ok(w))) => (g, w),
                (Some(Err(g)), Some(Err(w))) => {
                    prop_assert_eq!(g, w);
                    break;
                }
                (g, w) => {
                    prop_assert!(false, "frames differ: {:?} vs {:?}", g, w);
                    unreachable!()
                }
            };
            prop_assert_eq!(got.data_ref(), want.data_ref());
            prop_assert_eq!(got.trailers_ref(), want.trailers_ref());
        }
        prop_assert_eq!(hint(observed.size_hint()), hint(shadow.size_hint()));
        prop_assert_eq!(observed.is_end_stream(), shadow.is_end_stream());
        drop(observed);

        layer.flush().await;
        let stats = layer.stats();
        prop_assert_eq!(stats.in_queue, 0);
        prop_assert_eq!(stats.recorded, stats.delivered + stats.dropped.total());
        let events = sink.events();
        prop_assert_eq!(events.len(), usize::from(case.request_is_json));
        if let Some(event) = events.first() {
            prop_assert_eq!(event.http_status, Some(case.status));
            prop_assert_eq!(&event.method, "tools/call");
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn response_bodies_reach_the_client_unchanged(case in arb_response_case()) {
        run_response_case(&case)?;
    }
}

// ---------------------------------------------------------------------------------------
// 3. SSE decoding is split-invariant
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Eol {
    Lf,
    CrLf,
    Cr,
}

impl Eol {
    fn text(self) -> &'static str {
        match self {
            Eol::Lf => "\n",
            Eol::CrLf => "\r\n",
            Eol::Cr => "\r",
        }
    }
}

fn arb_eol() -> impl Strategy<Value = Eol> {
    prop_oneof![Just(Eol::Lf), Just(Eol::CrLf), Just(Eol::Cr)]
}

/// One SSE event of a generated stream.
#[derive(Debug, Clone)]
enum SseEvent {
    /// A progress notification with the request's token (written as given).
    Progress { token: String, multiline: bool },
    /// A log notification.
    Log { text: String, multiline: bool },
    /// A progress and a log notification in one batch array.
    Batch,
    /// A notification the request does not count (e.g. a list change).
    OtherNotification,
    /// `: comment` line(s) only.
    Comment(String),
    /// `id:` / `retry:` lines and no data (or an empty `data:` line).
    Priming { empty_data: bool },
    /// `event:`/`id:` fields around a data line of plain text that is not JSON-RPC.
    Junk(String),
}

/// The lines of an event (without line endings); the blank line that ends it is added
/// by the serialiser.
fn event_lines(event: &SseEvent, token_json: &str, colon_space: bool) -> Vec<String> {
    let data = |payload: &str, multiline: bool| -> Vec<String> {
        let sep = if colon_space { "data: " } else { "data:" };
        if multiline {
            let value: Value = serde_json::from_str(payload).unwrap();
            serde_json::to_string_pretty(&value)
                .unwrap()
                .lines()
                .map(|line| format!("{sep}{line}"))
                .collect()
        } else {
            vec![format!("{sep}{payload}")]
        }
    };
    match event {
        SseEvent::Progress { token, multiline } => {
            let payload = format!(
                r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":{token},"progress":1,"total":3}}}}"#
            );
            let mut lines = vec!["event: message".to_owned(), "id: 7".to_owned()];
            lines.extend(data(&payload, *multiline));
            lines
        }
        SseEvent::Log { text, multiline } => {
            let payload = json!({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":text}}).to_string();
            data(&payload, *multiline)
        }
        SseEvent::Batch => {
            let payload = format!(
                r#"[{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":{token_json},"progress":2}}}},{{"jsonrpc":"2.0","method":"notifications/message","params":{{"level":"debug","data":"b"}}}}]"#
            );
            data(&payload, false)
        }
        SseEvent::OtherNotification => data(
            r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
            false,
        ),
        SseEvent::Comment(text) => vec![format!(":{text}"), ": keep-alive".to_owned()],
        SseEvent::Priming { empty_data } => {
            let mut lines = vec!["id: 0".to_owned(), "retry: 3000".to_owned()];
            if *empty_data {
                lines.push("data:".to_owned());
            }
            lines
        }
        SseEvent::Junk(text) => vec![format!("data: not json {text}"), "event: junk".to_owned()],
    }
}

fn arb_sse_event(token_json: String) -> impl Strategy<Value = SseEvent> {
    let token = token_json.clone();
    prop_oneof![
        3 => any::<bool>().prop_map(move |multiline| SseEvent::Progress { token: token.clone(), multiline }),
        2 => ("[ -~]{0,16}", any::<bool>()).prop_map(|(text, multiline)| SseEvent::Log { text, multiline }),
        1 => Just(SseEvent::Batch),
        1 => Just(SseEvent::OtherNotification),
        1 => "[ -~]{0,16}".prop_map(SseEvent::Comment),
        1 => any::<bool>().prop_map(|empty_data| SseEvent::Priming { empty_data }),
        1 => "[ -~]{0,16}".prop_map(SseEvent::Junk),
    ]
}

#[derive(Debug, Clone)]
enum Answer {
    Result { text: String, is_error: bool },
    Error { code: i64 },
}

#[derive(Debug, Clone)]
struct SseCase {
    /// The request's id and progress token, as JSON.
    id: Value,
    token: Value,
    /// The same token as the server writes it (possibly escaped differently).
    token_json: String,
    events: Vec<SseEvent>,
    answer: Answer,
    answer_multiline: bool,
    /// Per event: the data-line separator style, and the line endings of its lines.
    colon_space: Vec<bool>,
    eols: Vec<Eol>,
    cuts: Vec<Index>,
    pend: bool,
    eager_end: bool,
}

fn arb_sse_case() -> impl Strategy<Value = SseCase> {
    let token = prop_oneof![
        any::<u32>().prop_map(|n| (json!(n), n.to_string())),
        "[a-z]{1,6}".prop_map(|s| (json!(s), format!("\"{s}\""))),
        // Same string, escaped by the server.
        "[a-z]{1,6}".prop_map(|s| {
            let escaped: String = s.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
            (json!(s), format!("\"{escaped}\""))
        }),
    ];
    (arb_id(), token)
        .prop_flat_map(|(id, (token, token_json))| {
            let events = prop::collection::vec(arb_sse_event(token_json.clone()), 0..10);
            let answer = prop_oneof![
                3 => ("[ -~]{0,20}", any::<bool>()).prop_map(|(text, is_error)| Answer::Result { text, is_error }),
                1 => (-32700i64..-32000).prop_map(|code| Answer::Error { code }),
            ];
            (
                Just(id),
                Just(token),
                Just(token_json),
                events,
                answer,
                any::<bool>(),
                prop::collection::vec(any::<bool>(), 12),
                prop::collection::vec(arb_eol(), 200),
                prop::collection::vec(any::<Index>(), 0..24),
                any::<bool>(),
                any::<bool>(),
            )
        })
        .prop_map(
            |(id, token, token_json, events, answer, answer_multiline, colon_space, eols, cuts, pend, eager_end)| {
                SseCase {
                    id,
                    token,
                    token_json,
                    events,
                    answer,
                    answer_multiline,
                    colon_space,
                    eols,
                    cuts,
                    pend,
                    eager_end,
                }
            },
        )
}

impl SseCase {
    fn answer_json(&self) -> Value {
        match &self.answer {
            Answer::Result { text, is_error } => json!({
                "jsonrpc": "2.0",
                "id": self.id,
                "result": {"content": [{"type": "text", "text": text}], "isError": is_error}
            }),
            Answer::Error { code } => json!({
                "jsonrpc": "2.0",
                "id": self.id,
                "error": {"code": code, "message": "no such tool"}
            }),
        }
    }

    /// The serialised stream. A line ending `\r` followed by an empty line ending in
    /// `\n` would read as one `\r\n`, so an empty line after `\r` always ends in `\r`.
    fn stream(&self) -> Vec<u8> {
        let mut all_lines: Vec<Vec<String>> = self
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| event_lines(e, &self.token_json, self.colon_space[i % 12]))
            .collect();
        let answer = self.answer_json().to_string();
        let sep = if self.colon_space[11] {
            "data: "
        } else {
            "data:"
        };
        all_lines.push(if self.answer_multiline {
            serde_json::to_string_pretty(&self.answer_json())
                .unwrap()
                .lines()
                .map(|l| format!("{sep}{l}"))
                .collect()
        } else {
            vec![format!("{sep}{answer}")]
        });
        let mut out = String::new();
        let mut eols = self.eols.iter().cycle();
        let mut previous = Eol::Lf;
        for lines in all_lines {
            for line in lines.iter().chain([&String::new()]) {
                let mut eol = *eols.next().unwrap();
                if line.is_empty() && previous == Eol::Cr {
                    eol = Eol::Cr;
                }
                out.push_str(line);
                out.push_str(eol.text());
                previous = eol;
            }
        }
        out.into_bytes()
    }

    fn expected_counts(&self) -> (u32, u32) {
        let mut progress = 0;
        let mut logs = 0;
        for event in &self.events {
            match event {
                SseEvent::Progress { .. } => progress += 1,
                SseEvent::Log { .. } => logs += 1,
                SseEvent::Batch => {
                    progress += 1;
                    logs += 1;
                }
                _ => {}
            }
        }
        (progress, logs)
    }
}

/// Runs one tools/call whose SSE response is `chunks`; returns its single event.
async fn sse_event(
    case: &SseCase,
    chunks: Vec<Bytes>,
    limit: usize,
) -> Result<Event, TestCaseError> {
    let sink = MemorySink::new();
    let layer = AnalyticsLayer::builder()
        .sink(sink.clone())
        .response_capture_limit(limit)
        .build();
    let expected: Vec<u8> = chunks.concat();
    let body = TestBody::shaped(
        chunks.into_iter().map(Item::Data).collect(),
        case.pend,
        case.eager_end,
        false,
    );
    let slot = Arc::new(Mutex::new(Some(body)));
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(
            move |_request: Request<ReplayBody<TestBody>>| {
                let body = slot.lock().unwrap().take().unwrap();
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "text/event-stream")
                            .body(body)
                            .unwrap(),
                    )
                }
            },
        ));
    let request_body = json!({
        "jsonrpc": "2.0",
        "id": case.id,
        "method": "tools/call",
        "params": {"name": "progress", "arguments": {"steps": 3}, "_meta": {"progressToken": case.token}}
    })
    .to_string();
    let request = Request::post("/mcp")
        .header("content-type", "application/json")
        .body(TestBody::shaped(
            vec![Item::Data(Bytes::from(request_body))],
            false,
            true,
            true,
        ))
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    let (got, _) = summarise(&drain(response.into_body()).await);
    prop_assert_eq!(got, expected);
    layer.flush().await;
    let events = sink.take();
    prop_assert_eq!(events.len(), 1, "{:?}", events);
    Ok(essence(&events[0]))
}

/// Cuts at random places, plus one inside every `\r\n` of the stream.
fn sse_chunks(stream: &[u8], cuts: &[Index], split_crlf: bool) -> Vec<Bytes> {
    let mut chunks = split(stream, cuts);
    if split_crlf {
        chunks = chunks
            .into_iter()
            .flat_map(|chunk| {
                let mut parts = Vec::new();
                let mut start = 0;
                for i in 0..chunk.len().saturating_sub(1) {
                    if chunk[i] == b'\r' && chunk[i + 1] == b'\n' {
                        parts.push(chunk.slice(start..i + 1));
                        start = i + 1;
                    }
                }
                parts.push(chunk.slice(start..));
                parts
            })
            .collect();
    }
    chunks
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn sse_decoding_does_not_depend_on_how_the_stream_is_split(case in arb_sse_case()) {
        let stream = case.stream();
        let (progress, logs) = case.expected_counts();
        runtime().block_on(async {
            let limit = tower_mcp_analytics::DEFAULT_CAPTURE_LIMIT;
            let whole = sse_event(&case, vec![Bytes::from(stream.clone())], limit).await?;
            let split = sse_event(&case, sse_chunks(&stream, &case.cuts, false), limit).await?;
            let crlf = sse_event(&case, sse_chunks(&stream, &case.cuts, true), limit).await?;
            let bytes: Vec<Bytes> = stream.iter().map(|b| Bytes::copy_from_slice(&[*b])).collect();
            let byte_by_byte = sse_event(&case, bytes, limit).await?;

            let (outcome, result) = match &case.answer {
                Answer::Result { is_error: false, .. } => (Outcome::Success, case.answer_json().get("result").cloned()),
                Answer::Result { is_error: true, .. } => (Outcome::ToolError, case.answer_json().get("result").cloned()),
                Answer::Error { .. } => (Outcome::Error, None),
            };
            prop_assert_eq!(whole.outcome, outcome, "stream: {:?}", String::from_utf8_lossy(&stream));
            prop_assert_eq!(&whole.result_value(), &result);
            prop_assert_eq!(whole.progress_notifications, progress, "stream: {:?}", String::from_utf8_lossy(&stream));
            prop_assert_eq!(whole.log_notifications, logs);
            prop_assert_eq!(whole.request_id.as_ref(), Some(&case.id));
            if let Answer::Error { code } = case.answer {
                prop_assert_eq!(whole.error.as_ref().and_then(|e| e.code), Some(code));
            }
            prop_assert_eq!(&split, &whole);
            prop_assert_eq!(&crlf, &whole);
            prop_assert_eq!(&byte_by_byte, &whole);
            Ok(())
        })?;
    }

    /// The same with a response capture limit near the size of the stream's lines:
    /// whatever the limit, where the stream is cut must not change the outcome.
    #[test]
    fn sse_limits_do_not_depend_on_how_the_stream_is_split(case in arb_sse_case(), limit in 16usize..400) {
        let stream = case.stream();
        runtime().block_on(async {
            let whole = sse_event(&case, vec![Bytes::from(stream.clone())], limit).await?;
            let split = sse_event(&case, sse_chunks(&stream, &case.cuts, true), limit).await?;
            prop_assert_eq!(&split, &whole, "limit {}, stream {:?}", limit, String::from_utf8_lossy(&stream));
            Ok(())
        })?;
    }
}

// ---------------------------------------------------------------------------------------
// 4. Accounting
// ---------------------------------------------------------------------------------------

/// A request of the accounting property, and what it should record.
#[derive(Debug, Clone)]
enum Exchange {
    ToolCall,
    Notification,
    Batch(usize),
    Malformed,
    /// Over the capture limit, with or without `Mcp-Method`.
    OverLimit {
        header: bool,
    },
    NotJson,
    /// The client drops the response before reading it.
    Cancelled,
    /// The inner service fails.
    InnerError,
}

fn arb_exchange() -> impl Strategy<Value = Exchange> {
    prop_oneof![
        3 => Just(Exchange::ToolCall),
        1 => Just(Exchange::Notification),
        2 => (0usize..30).prop_map(Exchange::Batch),
        1 => Just(Exchange::Malformed),
        1 => any::<bool>().prop_map(|header| Exchange::OverLimit { header }),
        1 => Just(Exchange::NotJson),
        1 => Just(Exchange::Cancelled),
        1 => Just(Exchange::InnerError),
    ]
}

/// Fails every `every`-th batch (never when `every` is 0).
#[derive(Clone)]
struct FlakySink {
    every: usize,
    batches: Arc<AtomicUsize>,
    delivered: MemorySink,
}

impl Sink for FlakySink {
    fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a> {
        let n = self.batches.fetch_add(1, Ordering::SeqCst) + 1;
        let fail = self.every > 0 && n.is_multiple_of(self.every);
        Box::pin(async move {
            tokio::task::yield_now().await;
            if fail {
                return Err(SinkError::rejected("collector refused the batch"));
            }
            self.delivered.send(batch).await
        })
    }
}

const CAPTURE_LIMIT: usize = 4096;

fn exchange_request(exchange: &Exchange, i: usize) -> Request<TestBody> {
    let call = format!(
        r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/call","params":{{"name":"echo","arguments":{{"i":{i}}}}}}}"#
    );
    let (content_type, body, header) = match exchange {
        Exchange::ToolCall | Exchange::Cancelled | Exchange::InnerError => {
            ("application/json", call, false)
        }
        Exchange::Notification => (
            "application/json",
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_owned(),
            false,
        ),
        Exchange::Batch(n) => {
            let entries: Vec<String> = (0..*n)
                .map(|k| format!(r#"{{"jsonrpc":"2.0","id":{k},"method":"ping"}}"#))
                .collect();
            (
                "application/json",
                format!("[{}]", entries.join(",")),
                false,
            )
        }
        Exchange::Malformed => ("application/json", call[..call.len() - 3].to_owned(), false),
        Exchange::OverLimit { header } => {
            let padding = "x".repeat(CAPTURE_LIMIT);
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/call","params":{{"name":"big","arguments":{{"pad":"{padding}"}}}}}}"#
            );
            ("application/json", body, *header)
        }
        Exchange::NotJson => ("text/plain", call, false),
    };
    let bytes = Bytes::from(body);
    let chunks = vec![
        Item::Data(bytes.slice(..bytes.len() / 2)),
        Item::Data(bytes.slice(bytes.len() / 2..)),
    ];
    let mut request = Request::post("/mcp").header("content-type", content_type);
    if header {
        request = request
            .header("mcp-method", "tools/call")
            .header("mcp-name", "big");
    }
    if matches!(exchange, Exchange::InnerError) {
        request = request.header("x-fail", "1");
    }
    request
        .body(TestBody::shaped(
            chunks,
            i.is_multiple_of(2),
            i.is_multiple_of(3),
            true,
        ))
        .unwrap()
}

/// (events, events over the call cap, unparsed requests) an exchange should record.
fn expected_counts(exchange: &Exchange, cap: usize) -> (u64, u64, u64) {
    match exchange {
        Exchange::ToolCall
        | Exchange::Notification
        | Exchange::Cancelled
        | Exchange::InnerError => (1, 0, 0),
        // An empty batch holds no JSON-RPC message: unparsed.
        Exchange::Batch(0) => (0, 0, 1),
        Exchange::Batch(n) => (*n as u64, n.saturating_sub(cap) as u64, 0),
        Exchange::Malformed => (0, 0, 1),
        Exchange::OverLimit { header: true } => (1, 0, 0),
        Exchange::OverLimit { header: false } => (0, 0, 1),
        Exchange::NotJson => (0, 0, 0),
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn every_event_is_delivered_or_counted_as_dropped(
        exchanges in prop::collection::vec(arb_exchange(), 0..24),
        cap in 1usize..8,
        queue in 1usize..6,
        batch_size in 1usize..6,
        fail_every in 0usize..4,
        concurrent in any::<bool>(),
    ) {
        runtime().block_on(async {
            let delivered = MemorySink::new();
            let sink = FlakySink { every: fail_every, batches: Arc::default(), delivered: delivered.clone() };
            let layer = AnalyticsLayer::builder()
                .sink(sink)
                .capture_limit(CAPTURE_LIMIT)
                .max_calls_per_request(cap)
                .queue_capacity(queue)
                .batch_size(batch_size)
                .build();
            let service = ServiceBuilder::new().layer(layer.clone()).service(service_fn(
                |request: Request<ReplayBody<TestBody>>| async move {
                    let fail = request.headers().contains_key("x-fail");
                    let _ = drain(request.into_body()).await;
                    if fail {
                        return Err(TestError("inner service failed".into()));
                    }
                    Ok(Response::builder()
                        .header("content-type", "application/json")
                        .body(TestBody::shaped(
                            vec![Item::Data(Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#))],
                            true,
                            false,
                            true,
                        ))
                        .unwrap())
                },
            ));
            let run = |i: usize, exchange: Exchange| {
                let service = service.clone();
                async move {
                    let result = service.oneshot(exchange_request(&exchange, i)).await;
                    match (exchange, result) {
                        (Exchange::InnerError, Err(error)) => assert_eq!(error.0, "inner service failed"),
                        (Exchange::Cancelled, Ok(response)) => drop(response),
                        (_, Ok(response)) => {
                            let _ = drain(response.into_body()).await;
                        }
                        (exchange, Err(error)) => panic!("{exchange:?} failed: {error}"),
                    }
                }
            };
            if concurrent {
                let futures: Vec<_> = exchanges.iter().cloned().enumerate().map(|(i, e)| run(i, e)).collect();
                join_all(futures).await;
            } else {
                for (i, exchange) in exchanges.iter().cloned().enumerate() {
                    run(i, exchange).await;
                }
            }
            layer.flush().await;

            let stats = layer.stats();
            let (mut events, mut over_cap, mut unparsed) = (0, 0, 0);
            for exchange in &exchanges {
                let (e, o, u) = expected_counts(exchange, cap);
                events += e;
                over_cap += o;
                unparsed += u;
            }
            prop_assert_eq!(stats.in_queue, 0, "{:?}", stats);
            prop_assert_eq!(stats.recorded, stats.delivered + stats.dropped.total(), "{:?}", stats);
            prop_assert_eq!(stats.recorded, events, "{:?}", stats);
            prop_assert_eq!(stats.dropped.call_cap, over_cap, "{:?}", stats);
            prop_assert_eq!(stats.requests_unparsed, unparsed, "{:?}", stats);
            prop_assert_eq!(stats.dropped.shutdown, 0);
            prop_assert_eq!(stats.delivered as usize, delivered.events().len());
            if fail_every == 0 {
                prop_assert_eq!(stats.dropped.rejected, 0);
            }

            // And after shutdown, still balanced, nothing queued.
            let report = layer.shutdown(std::time::Duration::from_secs(5)).await;
            prop_assert!(report.flushed);
            prop_assert_eq!(report.stats.in_queue, 0);
            prop_assert_eq!(report.stats.recorded, report.stats.delivered + report.stats.dropped.total());
            Ok(())
        })?;
    }
}

/// Polls futures together on the current task (no `futures` crate here).
async fn join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut futures: Vec<Option<Pin<Box<F>>>> =
        futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for slot in futures.iter_mut() {
            if let Some(future) = slot {
                if future.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    pending = true;
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------
// 5. Junk in any field is a miss, never a lost event
// ---------------------------------------------------------------------------------------

/// A field that is either well typed or arbitrary JSON.
fn maybe(good: impl Strategy<Value = Value>) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        2 => Just(None),
        3 => good.prop_map(Some),
        2 => arb_json().prop_map(Some),
    ]
}

fn arb_object(
    fields: Vec<(&'static str, BoxedStrategy<Option<Value>>)>,
) -> impl Strategy<Value = Value> {
    let extra = prop::collection::btree_map("x[a-z]{0,6}", arb_json(), 0..3);
    (
        fields
            .into_iter()
            .map(|(k, v)| v.prop_map(move |v| (k, v)))
            .collect::<Vec<_>>(),
        extra,
    )
        .prop_map(|(fields, extra)| {
            let mut map: serde_json::Map<String, Value> = extra.into_iter().collect();
            for (k, v) in fields {
                if let Some(v) = v {
                    map.insert(k.to_owned(), v);
                }
            }
            Value::Object(map)
        })
}

fn arb_text() -> BoxedStrategy<Value> {
    ".{0,10}".prop_map(Value::String).boxed()
}

fn arb_junk_call() -> impl Strategy<Value = Value> {
    let client_info = arb_object(vec![
        ("name", maybe(arb_text()).boxed()),
        ("version", maybe(arb_text()).boxed()),
    ])
    .boxed();
    let meta = arb_object(vec![
        ("progressToken", maybe(arb_id()).boxed()),
        (
            "io.modelcontextprotocol/clientInfo",
            maybe(client_info.clone()).boxed(),
        ),
        (
            "io.modelcontextprotocol/protocolVersion",
            maybe(arb_text()).boxed(),
        ),
        ("traceparent", maybe(arb_text()).boxed()),
    ]);
    let params = arb_object(vec![
        ("name", maybe(arb_text()).boxed()),
        ("uri", maybe(arb_text()).boxed()),
        ("arguments", maybe(arb_arguments()).boxed()),
        ("_meta", maybe(meta).boxed()),
        ("clientInfo", maybe(client_info).boxed()),
        ("protocolVersion", maybe(arb_text()).boxed()),
    ]);
    arb_object(vec![
        ("jsonrpc", maybe(Just(json!("2.0"))).boxed()),
        ("id", arb_id().prop_map(Some).boxed()),
        ("method", Just(Some(json!("tools/call"))).boxed()),
        ("params", maybe(params).boxed()),
    ])
}

/// The string at `path` in `value`, if it is a string.
fn text_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(value, |v, key| v.get(*key))?.as_str()
}

proptest! {
    #![proptest_config(config(512))]

    /// Whatever junk the fields of a tools/call hold (wrong types, deep values, unknown
    /// keys), the call is still an event, and every well-typed field is read.
    #[test]
    fn junk_fields_never_lose_the_event(message in arb_junk_call(), batch in any::<bool>()) {
        let body = if batch { json!([message]) } else { message.clone() };
        let bytes = serde_json::to_vec(&body).unwrap();
        runtime().block_on(async {
            let sink = MemorySink::new();
            let layer = AnalyticsLayer::builder().sink(sink.clone()).build();
            let service = ServiceBuilder::new().layer(layer.clone()).service(service_fn(
                |request: Request<ReplayBody<TestBody>>| async move {
                    let _ = drain(request.into_body()).await;
                    Ok::<_, Infallible>(Response::builder().status(202).body(TestBody::shaped(Vec::new(), false, true, true)).unwrap())
                },
            ));
            let request = Request::post("/mcp")
                .header("content-type", "application/json")
                .body(TestBody::shaped(vec![Item::Data(Bytes::from(bytes.clone()))], false, true, true))
                .unwrap();
            let response = service.oneshot(request).await.unwrap();
            drain(response.into_body()).await;
            layer.flush().await;
            let events = sink.events();
            prop_assert_eq!(events.len(), 1, "body {}", String::from_utf8_lossy(&bytes));
            prop_assert_eq!(layer.stats().requests_unparsed, 0);
            let event = &events[0];
            let params = message.get("params").filter(|p| p.is_object());
            let meta = params.and_then(|p| p.get("_meta")).filter(|m| m.is_object());
            prop_assert_eq!(&event.method, "tools/call");
            prop_assert_eq!(event.request_id.as_ref(), message.get("id"));
            prop_assert_eq!(event.batch, batch);
            let name = params.and_then(|p| text_at(p, &["name"]).or_else(|| text_at(p, &["uri"])));
            prop_assert_eq!(event.resource_name.as_deref(), name);
            // (`"arguments": null` reads as no arguments.)
            prop_assert_eq!(
                event.arguments_value(),
                params.and_then(|p| p.get("arguments")).filter(|a| !a.is_null()).cloned()
            );
            let version = meta
                .and_then(|m| text_at(m, &["io.modelcontextprotocol/protocolVersion"]))
                .or_else(|| params.and_then(|p| text_at(p, &["protocolVersion"])));
            prop_assert_eq!(event.protocol_version.as_deref(), version);
            prop_assert_eq!(event.traceparent.as_deref(), meta.and_then(|m| text_at(m, &["traceparent"])));
            // clientInfo: `_meta`'s when present (even if junk), else the params'.
            let info = meta
                .and_then(|m| m.get("io.modelcontextprotocol/clientInfo"))
                .or_else(|| params.and_then(|p| p.get("clientInfo")));
            // A client is known by its name: a version without a usable name is no client.
            let name = info.and_then(|i| text_at(i, &["name"]));
            prop_assert_eq!(event.client_name.as_deref(), name);
            let version = name.and(info.and_then(|i| text_at(i, &["version"])));
            prop_assert_eq!(event.client_version.as_deref(), version);
            prop_assert_eq!(event.outcome, Outcome::NoResponse);
            Ok(())
        })?;
    }
}

// ---------------------------------------------------------------------------------------
// Deterministic reproductions found while writing the properties
// ---------------------------------------------------------------------------------------

/// A tools/call answered by an SSE stream of `chunks` with `limit`; its single event.
async fn sse_answer(chunks: &[&[u8]], limit: usize) -> Event {
    let case = SseCase {
        id: json!(1),
        token: json!("t"),
        token_json: "\"t\"".into(),
        events: Vec::new(),
        answer: Answer::Error { code: 0 },
        answer_multiline: false,
        colon_space: vec![true; 12],
        eols: vec![Eol::Lf],
        cuts: Vec::new(),
        pend: false,
        eager_end: false,
    };
    let chunks = chunks.iter().map(|c| Bytes::copy_from_slice(c)).collect();
    sse_event(&case, chunks, limit).await.expect("one event")
}

// Regression: a `data:` line whose value fits the limit but whose whole line (with the
// `data: ` field name) does not must be judged the same whether or not a chunk boundary
// cuts it.
#[test]
fn sse_line_just_over_the_limit_is_judged_the_same_split_or_not() {
    let payload = br#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
    let limit = payload.len() + 1; // the value and its newline fit exactly
    let stream = [&b"data: "[..], payload, b"\n\n"].concat();
    runtime().block_on(async {
        let whole = sse_answer(&[&stream], limit).await;
        assert_eq!(whole.outcome, Outcome::Success);
        let (a, b) = stream.split_at(10);
        let split = sse_answer(&[a, b], limit).await;
        assert_eq!(
            split.outcome,
            Outcome::Success,
            "cut after 10 bytes: {split:?}"
        );
    });
}

// Regression: an empty data frame between the `\r` and the `\n` of a `\r\n` line ending
// must not turn the `\n` into a second line ending (which would dispatch the event early).
#[test]
fn an_empty_frame_inside_a_crlf_is_not_a_line_ending() {
    // The answer is split over two data lines; an early dispatch leaves two halves of
    // JSON, neither of which is a response.
    let first = br#"data: {"jsonrpc":"2.0","id":1,"#;
    let second = br#"data: "result":{}}"#;
    let stream: Vec<&[u8]> = vec![first, b"\r", b"", b"\n", second, b"\r\n\r\n"];
    runtime().block_on(async {
        let whole = sse_answer(&[&stream.concat()], 1 << 20).await;
        assert_eq!(whole.outcome, Outcome::Success);
        let split = sse_answer(&stream, 1 << 20).await;
        assert_eq!(split.outcome, Outcome::Success, "{split:?}");
    });
}
