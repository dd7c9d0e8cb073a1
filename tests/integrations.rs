//! The layer fits every way users mount a tower HTTP MCP service: as an axum
//! router layer, in a `tower::ServiceBuilder` stack (with other layers)
//! served by axum, directly around rmcp's `StreamableHttpService` served by
//! hyper over HTTP/1 and HTTP/2, around a plain non-rmcp tower service called
//! in process, built before any runtime exists, delivering to a JSON lines
//! file, and with errors of the inner stack passing through. Each test sends
//! real requests through and checks their events.

mod common;

use std::{convert::Infallible, time::Duration};

use axum::Router;
use bytes::Bytes;
use common::Mode;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use serde_json::{Value, json};
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};
use tower_mcp_analytics::{
    AnalyticsLayer, Event, JsonLinesSink, MemorySink, ObservedBody, Outcome, ReplayBody,
    ResponseKind,
};

/// Generous upper bound for asynchronous delivery; only there to avoid hangs.
const WAIT: Duration = Duration::from_secs(10);

fn layer() -> (AnalyticsLayer, MemorySink) {
    let sink = MemorySink::new();
    (AnalyticsLayer::builder().sink(sink.clone()).build(), sink)
}

/// A stateless echo call through the real server at `url`; checks the reply.
async fn echo_through(url: &str, text: &str) {
    let response =
        common::raw_legacy_tools_call(url, "2025-11-25", "echo", json!({ "text": text }), None)
            .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let answer = response.response_message().expect("a JSON-RPC answer");
    assert_eq!(answer["result"]["content"][0]["text"], text);
}

/// Waits for exactly one event and checks it is the echo call that was sent.
async fn assert_one_echo_event(
    analytics: &AnalyticsLayer,
    sink: &MemorySink,
    text: &str,
    kind: ResponseKind,
) -> Event {
    sink.wait_for(1, WAIT).await;
    // Anything recorded alongside it is delivered too, so extras would show.
    analytics.flush().await;
    let events = sink.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = events.into_iter().next().unwrap();
    assert_eq!(event.method, "tools/call", "{event:?}");
    assert_eq!(event.resource_name.as_deref(), Some("echo"), "{event:?}");
    assert_eq!(
        event.arguments_value(),
        Some(json!({ "text": text })),
        "{event:?}"
    );
    assert_eq!(event.outcome, Outcome::Success, "{event:?}");
    assert_eq!(
        event
            .result_value()
            .map(|r| r["content"][0]["text"].clone()),
        Some(json!(text)),
        "{event:?}"
    );
    assert_eq!(event.http_status, Some(200), "{event:?}");
    assert_eq!(event.response_kind, Some(kind), "{event:?}");
    assert_eq!(event.protocol_version.as_deref(), Some("2025-11-25"));
    let stats = analytics.stats();
    assert_eq!((stats.recorded, stats.delivered), (1, 1), "{stats:?}");
    assert_eq!(stats.dropped.total(), 0, "{stats:?}");
    event
}

/// Mount 1: `Router::new().nest_service("/mcp", mcp_service(..)).layer(analytics)`:
/// the layer around a whole axum router.
#[tokio::test]
async fn axum_router_layer() {
    let (analytics, sink) = layer();
    let router = Router::new()
        .nest_service("/mcp", common::mcp_service(Mode::StatelessJson))
        .layer(analytics.clone());
    let server = common::spawn_router(Mode::StatelessJson, router).await;
    echo_through(&server.url, "router layer").await;
    assert_one_echo_event(&analytics, &sink, "router layer", ResponseKind::Json).await;
}

/// Mount 2: `ServiceBuilder::new().layer(analytics).service(mcp_service(..))`
/// nested into an axum router, with other tower layers around and inside it
/// (tower-http tracing outside, a concurrency limit inside, which relies on
/// the layer calling the very service it drove to readiness).
#[tokio::test]
async fn tower_service_builder_served_by_axum() {
    let (analytics, sink) = layer();
    let service = ServiceBuilder::new()
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(analytics.clone())
        .concurrency_limit(1)
        .service(common::mcp_service(Mode::StatelessSse));
    let router = Router::new().nest_service("/mcp", service);
    let server = common::spawn_router(Mode::StatelessSse, router).await;
    echo_through(&server.url, "service builder").await;
    assert_one_echo_event(&analytics, &sink, "service builder", ResponseKind::Sse).await;

    // The plain builder form from the README, without anything else around it.
    let (analytics, sink) = layer();
    let service = ServiceBuilder::new()
        .layer(analytics.clone())
        .service(common::mcp_service(Mode::StatelessJson));
    let router = Router::new().nest_service("/mcp", service);
    let server = common::spawn_router(Mode::StatelessJson, router).await;
    echo_through(&server.url, "plain builder").await;
    assert_one_echo_event(&analytics, &sink, "plain builder", ResponseKind::Json).await;
}

/// Serves `service` with hyper's auto (HTTP/1 and HTTP/2) connection builder
/// on a plain accept loop; abort the returned task to stop.
async fn serve_with_hyper<S>(service: S) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>)
where
    S: tower::Service<
            Request<hyper::body::Incoming>,
            Response = Response<ObservedBody<RmcpBody>>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let accept_loop = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, accept_loop)
}

/// The response body type of rmcp's `StreamableHttpService`.
type RmcpBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// Mount 3: Directly around rmcp's `StreamableHttpService`, served by hyper with
/// `TowerToHyperService` and the auto (HTTP/1 + HTTP/2) connection builder on
/// a plain accept loop; the request body type is `hyper::body::Incoming`.
#[tokio::test]
async fn hyper_directly_around_streamable_http_service() {
    for mode in [Mode::StatelessJson, Mode::LegacyStateful] {
        let (analytics, sink) = layer();
        let (addr, accept_loop) =
            serve_with_hyper(analytics.layer(common::mcp_service(mode))).await;
        // Any path reaches the service: there is no router.
        let url = format!("http://{addr}/mcp");
        match mode {
            Mode::LegacyStateful => {
                let client = common::legacy_client(&url, "hyper-client").await;
                let result = common::call_tool(&client, "echo", json!({ "text": "hyper" }))
                    .await
                    .unwrap();
                assert_eq!(common::result_text(&result), "hyper");
                common::close(client).await.unwrap();
                analytics.flush().await;
                let events = sink.events();
                let methods: Vec<&str> = events.iter().map(|e| e.method.as_str()).collect();
                assert_eq!(
                    methods,
                    ["initialize", "notifications/initialized", "tools/call"],
                    "{events:#?}"
                );
                let session = events[0].session_id.clone();
                assert!(session.is_some(), "{events:#?}");
                assert!(
                    events.iter().all(|e| e.session_id == session),
                    "{events:#?}"
                );
                assert_eq!(events[0].client_name.as_deref(), Some("hyper-client"));
                assert_eq!(events[2].outcome, Outcome::Success);
                assert_eq!(events[2].response_kind, Some(ResponseKind::Sse));
                let stats = analytics.stats();
                assert_eq!((stats.recorded, stats.delivered), (3, 3), "{stats:?}");
            }
            _ => {
                echo_through(&url, "hyper").await;
                assert_one_echo_event(&analytics, &sink, "hyper", ResponseKind::Json).await;
            }
        }
        accept_loop.abort();
    }
}

/// A minimal MCP-ish tower service that is not rmcp: answers every JSON-RPC
/// request with a fixed result, echoing the request's id and the body length
/// it received, and notifications with `202`.
async fn fixed_json_rpc(
    request: Request<ReplayBody<Full<Bytes>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = request
        .into_body()
        .collect()
        .await
        .expect("infallible body")
        .to_bytes();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let answer = |message: &Value| {
        message.get("id").map(|id| {
            json!({
                "jsonrpc": "2.0",
                "id": id,
                "result": { "content": [{ "type": "text", "text": "fixed" }], "bodyLen": body.len() }
            })
        })
    };
    let reply = match &parsed {
        Value::Array(batch) => {
            let answers: Vec<Value> = batch.iter().filter_map(answer).collect();
            (!answers.is_empty()).then_some(Value::Array(answers))
        }
        message => answer(message),
    };
    Ok(match reply {
        Some(reply) => Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(reply.to_string())))
            .unwrap(),
        None => Response::builder()
            .status(202)
            .body(Full::new(Bytes::new()))
            .unwrap(),
    })
}

fn json_post(body: &'static str) -> Request<Full<Bytes>> {
    Request::builder()
        .method("POST")
        .uri("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

/// Mount 4: A custom non-rmcp tower service (`service_fn`) in a `ServiceBuilder`,
/// called in-process with `oneshot` and `Full<Bytes>` bodies: no network.
#[tokio::test]
async fn custom_service_fn_with_oneshot() {
    let (analytics, sink) = layer();
    let service = ServiceBuilder::new()
        .layer(analytics.clone())
        .service(service_fn(fixed_json_rpc));

    const CALL: &str = r#"{"jsonrpc":"2.0","id":"req-1","method":"tools/call","params":{"name":"lookup","arguments":{"q":"tower"},"_meta":{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}}"#;
    let response = service.clone().oneshot(json_post(CALL)).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    // The inner service saw the exact request body.
    assert_eq!(body["result"]["bodyLen"], CALL.len());
    assert_eq!(body["id"], "req-1");

    let events = sink.wait_for(1, WAIT).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(event.method, "tools/call");
    assert_eq!(event.resource_name.as_deref(), Some("lookup"));
    assert_eq!(event.request_id, Some(json!("req-1")));
    assert_eq!(event.arguments_value(), Some(json!({ "q": "tower" })));
    assert_eq!(event.outcome, Outcome::Success);
    assert_eq!(event.result_value().unwrap()["content"][0]["text"], "fixed");
    assert_eq!(event.http_status, Some(200));
    assert_eq!(event.response_kind, Some(ResponseKind::Json));
    assert_eq!(
        event.traceparent.as_deref(),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    );
    assert_eq!(event.protocol_version, None);
    assert!(
        event.session_id.is_some(),
        "anonymous: a session of its own"
    );

    // Not observed: a GET, and a POST whose content type is not JSON.
    let get = Request::builder()
        .method("GET")
        .uri("/mcp")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(service.clone().oneshot(get).await.unwrap().status(), 202);
    let mut text = json_post(CALL);
    text.headers_mut()
        .insert("content-type", "text/plain".parse().unwrap());
    assert_eq!(service.clone().oneshot(text).await.unwrap().status(), 200);

    // A notification: 202, empty body.
    let notification = json_post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    let response = service.clone().oneshot(notification).await.unwrap();
    assert_eq!(response.status(), 202);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(body.is_empty());

    analytics.flush().await;
    let events = sink.events();
    assert_eq!(events.len(), 2, "{events:#?}");
    let accepted = &events[1];
    assert_eq!(accepted.method, "notifications/initialized");
    assert_eq!(accepted.outcome, Outcome::Accepted);
    assert_eq!(accepted.http_status, Some(202));
    assert_eq!(accepted.response_kind, Some(ResponseKind::Empty));
    let stats = analytics.stats();
    assert_eq!((stats.recorded, stats.delivered), (2, 2), "{stats:?}");
}

/// Mount 4b: The same custom service with a 2025-03-26 batch: one event per entry,
/// each matched to its own answer in the batch response.
#[tokio::test]
async fn custom_service_fn_with_a_batch() {
    let (analytics, sink) = layer();
    let service = ServiceBuilder::new()
        .layer(analytics.clone())
        .service(service_fn(fixed_json_rpc));
    const BATCH: &str = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"n":1}}},{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}},{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"p"}}]"#;
    let response = service.oneshot(json_post(BATCH)).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body.as_array().map(Vec::len), Some(2));

    let events = sink.wait_for(3, WAIT).await;
    assert_eq!(events.len(), 3, "{events:#?}");
    assert!(events.iter().all(|e| e.batch), "{events:#?}");
    assert_eq!(events[0].resource_name.as_deref(), Some("a"));
    assert_eq!(events[0].request_id, Some(json!(1)));
    assert_eq!(events[0].outcome, Outcome::Success);
    // A notification inside a batch answered with 200 was accepted.
    assert_eq!(events[1].method, "notifications/progress");
    assert_eq!(events[1].outcome, Outcome::Accepted);
    assert_eq!(events[2].method, "prompts/get");
    assert_eq!(events[2].resource_name.as_deref(), Some("p"));
    assert_eq!(events[2].request_id, Some(json!(2)));
    assert_eq!(events[2].outcome, Outcome::Success);
}

/// Mount 5: Built before any tokio runtime exists (in a synchronous `main`, say):
/// the worker runs on a thread of its own and events still arrive when the
/// layer is then used inside a runtime.
#[test]
fn layer_built_outside_a_runtime() {
    let (analytics, sink) = layer();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let server = common::spawn(Mode::StatelessJson, |r| r.layer(analytics.clone())).await;
        echo_through(&server.url, "no runtime").await;
        assert_one_echo_event(&analytics, &sink, "no runtime", ResponseKind::Json).await;
        let report = analytics.shutdown(WAIT).await;
        assert!(report.flushed, "{report:?}");
        assert_eq!(report.stats.delivered, 1, "{report:?}");
    });
}

/// Mount 3b: The same hyper server speaking HTTP/2 (prior knowledge): calls are
/// streams of one connection, and a client that resets one stream mid-answer
/// (dropping the response body) yields `Cancelled` for that call only, while
/// the connection carries on.
#[tokio::test]
async fn hyper_http2_streams_and_a_stream_reset() {
    let (analytics, sink) = layer();
    let (addr, accept_loop) =
        serve_with_hyper(analytics.layer(common::mcp_service(Mode::StatelessSse))).await;
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
    let connection = tokio::spawn(connection);
    let url = format!("http://{addr}/mcp");
    let post = |id: i64, name: &str, args: Value, token: Option<&str>| {
        let body = common::legacy_tools_call_body(id, name, args, token).to_string();
        let mut request = Request::builder().method("POST").uri(&url);
        for (name, value) in common::legacy_headers("2025-11-25") {
            request = request.header(name, value);
        }
        request.body(Full::new(Bytes::from(body))).unwrap()
    };

    let response = sender
        .send_request(post(1, "echo", json!({ "text": "h2" }), None))
        .await
        .expect("h2 response");
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains(r#""text":"h2""#));

    // A call that cannot finish while nobody reads: read one frame, reset.
    let response = sender
        .send_request(post(
            2,
            "progress",
            json!({ "steps": 1_000_000 }),
            Some("tok-h2"),
        ))
        .await
        .expect("h2 response");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut seen = String::new();
    tokio::time::timeout(WAIT, async {
        while !seen.contains("notifications/progress") {
            let frame = body.frame().await.expect("a frame").expect("no error");
            if let Some(data) = frame.data_ref() {
                seen.push_str(&String::from_utf8_lossy(data));
            }
        }
    })
    .await
    .expect("progress arrives");
    drop(body);

    // The connection is still good for the next stream.
    let response = sender
        .send_request(post(3, "add", json!({ "a": 1, "b": 2 }), None))
        .await
        .expect("h2 response after a reset");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains(r#""text":"3""#));

    let events = sink.wait_for(3, WAIT).await;
    assert_eq!(events.len(), 3, "{events:#?}");
    let by_id = |id: i64| {
        events
            .iter()
            .find(|e| e.request_id == Some(json!(id)))
            .unwrap_or_else(|| panic!("no event {id}: {events:#?}"))
    };
    assert_eq!(by_id(1).outcome, Outcome::Success);
    assert_eq!(by_id(3).outcome, Outcome::Success);
    let reset = by_id(2);
    assert_eq!(reset.outcome, Outcome::Cancelled, "{reset:?}");
    assert!(reset.progress_notifications >= 1, "{reset:?}");
    assert_eq!(reset.http_status, Some(200), "{reset:?}");
    assert_eq!(reset.response_kind, Some(ResponseKind::Sse), "{reset:?}");
    assert!(
        !connection.is_finished(),
        "the connection survived the reset"
    );
    connection.abort();
    accept_loop.abort();
}

/// Mount 6: The JSON lines sink writing to a file, as in production: after a real
/// client session and `shutdown`, the file holds one parseable event per
/// line, snake_case keys, empty fields omitted.
#[tokio::test]
async fn json_lines_sink_to_a_file() {
    let path = std::env::temp_dir().join(format!(
        "tower-mcp-analytics-integrations-{}-{}.jsonl",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let analytics = AnalyticsLayer::builder()
        .sink(JsonLinesSink::file(&path).expect("temp file"))
        .build();
    let server = common::spawn(Mode::StatelessSse, |r| r.layer(analytics.clone())).await;
    let client = common::legacy_client(&server.url, "jsonl-client").await;
    let echo = common::call_tool(&client, "echo", json!({ "text": "to a file" }))
        .await
        .unwrap();
    assert_eq!(common::result_text(&echo), "to a file");
    common::close(client).await.unwrap();
    let report = analytics.shutdown(WAIT).await;
    assert!(report.flushed, "{report:?}");
    assert_eq!(report.stats.dropped.total(), 0, "{report:?}");

    let text = std::fs::read_to_string(&path).expect("events file");
    let _ = std::fs::remove_file(&path);
    assert!(text.ends_with('\n'), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() as u64, report.stats.delivered, "{text}");
    assert_eq!(lines.len(), 3, "initialize, initialized, echo:\n{text}");
    let events: Vec<Event> = lines
        .iter()
        .map(|line| serde_json::from_str(line).expect("each line is an event"))
        .collect();
    let methods: Vec<&str> = events.iter().map(|e| e.method.as_str()).collect();
    assert_eq!(
        methods,
        ["initialize", "notifications/initialized", "tools/call"]
    );
    assert_eq!(events[0].client_name.as_deref(), Some("jsonl-client"));
    assert_eq!(
        events[2].arguments_value(),
        Some(json!({ "text": "to a file" }))
    );
    assert_eq!(events[2].outcome, Outcome::Success);
    let raw: Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(raw["outcome"], "success");
    assert_eq!(raw["response_kind"], "sse");
    assert_eq!(raw["event_type"], "mcp:tools/call");
    assert!(
        raw["session_id"]
            .as_str()
            .is_some_and(|s| s.starts_with("ses_"))
    );
    for absent in ["user", "tags", "properties", "error", "traceparent"] {
        assert!(raw.get(absent).is_none(), "{absent} in {raw}");
    }
}

/// Mount 7: Errors of the inner stack pass through unchanged: here a
/// `tower::timeout` inside the layer gives up on a service that never
/// answers. The caller gets the very same error; the call's event has no
/// HTTP status and says `NoResponse` (no answer ever came).
#[tokio::test]
async fn inner_service_errors_pass_through() {
    let (analytics, sink) = layer();
    let service = ServiceBuilder::new()
        .layer(analytics.clone())
        .timeout(Duration::from_millis(50))
        .service(service_fn(|_: Request<ReplayBody<Full<Bytes>>>| async {
            std::future::pending::<Result<Response<Full<Bytes>>, Infallible>>().await
        }));
    let error = service
        .oneshot(json_post(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"stuck"}}"#,
        ))
        .await
        .expect_err("the timeout fires");
    assert!(error.is::<tower::timeout::error::Elapsed>(), "{error}");

    let events = sink.wait_for(1, WAIT).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(event.resource_name.as_deref(), Some("stuck"));
    assert_eq!(event.outcome, Outcome::NoResponse, "{event:?}");
    assert!(event.is_error);
    assert_eq!(event.http_status, None, "{event:?}");
    assert_eq!(event.response_kind, None, "{event:?}");
}

// ---------------------------------------------------------------------------
// Response compression (Content-Encoding)
// ---------------------------------------------------------------------------

/// CRC-32 (IEEE), for the gzip trailer.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A valid gzip stream of `data` made of stored (uncompressed) deflate blocks:
/// what a compression layer produces, minus the compression, without a
/// compression crate in the dev-dependencies.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    if data.is_empty() {
        out.extend([1, 0, 0, 0xff, 0xff]);
    }
    let mut blocks = data.chunks(65_535).peekable();
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend(len.to_le_bytes());
        out.extend((!len).to_le_bytes());
        out.extend(block);
    }
    out.extend(crc32(data).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}

/// Middleware doing what tower-http's `CompressionLayer` does to MCP traffic
/// (its default predicate leaves `text/event-stream` alone): gzip JSON
/// responses for clients that accept gzip. rmcp's reqwest client does
/// (`Accept-Encoding: gzip`, decoded transparently).
fn gzip_json_responses(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(
        |request: axum::extract::Request, next: axum::middleware::Next| async move {
            let accepts_gzip = request
                .headers()
                .get("accept-encoding")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("gzip"));
            let response = next.run(request).await;
            let is_json = response
                .headers()
                .get("content-type")
                .is_some_and(|v| v == "application/json");
            if !(accepts_gzip && is_json) {
                return response;
            }
            let (mut parts, body) = response.into_parts();
            let plain = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            parts
                .headers
                .insert("content-encoding", "gzip".parse().unwrap());
            parts.headers.remove("content-length");
            axum::response::Response::from_parts(parts, axum::body::Body::from(gzip_stored(&plain)))
        },
    ))
}

/// An rmcp client `gzip-client` calls `echo` with `zipped` through the server at `url`
/// (the client decodes gzip either way) and closes; returns the
/// events delivered to `sink`.
async fn zipped_echo(url: &str, analytics: &AnalyticsLayer, sink: &MemorySink) -> Vec<Event> {
    let client = common::legacy_client(url, "gzip-client").await;
    let echo = common::call_tool(&client, "echo", json!({ "text": "zipped" }))
        .await
        .expect("the echo call succeeds");
    assert_eq!(common::result_text(&echo), "zipped");
    common::close(client).await.expect("the client closes");
    analytics.flush().await;
    sink.events()
}

/// Compression mounted outside the analytics layer (axum: `.layer(analytics)`
/// first, then `.layer(compression)`): the layer reads plain JSON while the
/// client gets gzip. This is the order to use.
#[tokio::test]
async fn compression_outside_the_layer() {
    let (analytics, sink) = layer();
    let router = Router::new()
        .nest_service("/mcp", common::mcp_service(Mode::StatelessJson))
        .layer(analytics.clone());
    let server = common::spawn_router(Mode::StatelessJson, gzip_json_responses(router)).await;

    // On the wire the answer really is gzip.
    let mut headers = common::legacy_headers("2025-11-25");
    headers.push(("accept-encoding", "gzip".to_owned()));
    let body = common::legacy_tools_call_body(1, "echo", json!({ "text": "raw" }), None);
    let raw = common::raw_post_json(&server.url, &headers, &body).await;
    assert_eq!(raw.header("content-encoding"), Some("gzip"));
    assert_eq!(&raw.body[..2], &[0x1f, 0x8b]);

    let events = zipped_echo(&server.url, &analytics, &sink).await;
    assert_eq!(events.len(), 4, "{events:#?}");
    for event in events.iter().filter(|e| e.request_id.is_some()) {
        assert_eq!(event.outcome, Outcome::Success, "{event:?}");
        assert!(event.result.is_some(), "{event:?}");
    }
}

// With a compression layer *inside* the analytics layer (axum:
// `.layer(compression).layer(analytics)`), answers reach the layer gzip-encoded. The
// layer does not decode them: the calls are `Unreadable` (outcome unknown, not an
// error), never a false "no answer". The README says to mount analytics inside the
// compression (`compression_outside_the_layer` above).
#[tokio::test]
async fn compression_inside_the_layer_marks_answers_unreadable() {
    let (analytics, sink) = layer();
    let router = gzip_json_responses(
        Router::new().nest_service("/mcp", common::mcp_service(Mode::StatelessJson)),
    )
    .layer(analytics.clone());
    let server = common::spawn_router(Mode::StatelessJson, router).await;
    let events = zipped_echo(&server.url, &analytics, &sink).await;
    assert_eq!(
        events.len(),
        3,
        "initialize, initialized, echo: {events:#?}"
    );
    for event in events.iter().filter(|e| e.request_id.is_some()) {
        assert_eq!(
            event.outcome,
            Outcome::Unreadable,
            "{} {event:?}",
            event.method
        );
        assert!(!event.is_error);
        assert_eq!(event.error, None);
    }
}
