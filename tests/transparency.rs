//! The layer is invisible: two servers of the same mode, one bare and one
//! behind the analytics layer, get the same sequence of raw requests and must
//! answer with the same status, headers and body bytes. Every sequence runs
//! twice: with the servers exactly as `spawn(mode, |r| r)` and
//! `spawn(mode, |r| r.layer(analytics))` build them, and with a recorder in
//! front of each MCP service, which shows that the service behind the layer
//! receives the same request bytes and headers as the bare one. Meanwhile the
//! layered server's events must match the JSON-RPC messages that were sent.
//!
//! What is *not* compared, and why:
//! * the `date` response header: a clock reading, it differs between any two
//!   responses.
//! * the *value* of `mcp-session-id` (its presence and position are
//!   compared): rmcp's `LocalSessionManager` makes a random UUID per session,
//!   so two servers never agree on it. Requests that carry it are given each
//!   server its own session id, so that header's value is also left out of
//!   the request-side comparison.
//! * the `host` request header on the request side: it names each server's
//!   own port.
//!
//! SSE event ids need no exclusion: rmcp 3.9 formats them as
//! `<index>/<http_request_id>` (`EventId` in
//! `transport/streamable_http_server/session/local.rs`), where
//! `http_request_id` is a per-session counter starting at 0, and the priming
//! event of a session's streams is `0`; neither embeds the session id, so two
//! sessions driven by the same requests produce the same ids. The stateless
//! modes send no ids at all. Keep-alive pings, which would depend on timing,
//! are disabled by the demo server's config.

mod common;

use std::{
    collections::VecDeque,
    convert::Infallible,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::Request,
    middleware::{self, Next},
};
use common::{Mode, RawResponse};
use reqwest::Method;
use serde_json::{Value, json};
use tower_mcp_analytics::{
    AnalyticsLayer, AnalyticsLayerBuilder, Event, MemorySink, Outcome, ResponseKind,
};

/// Generous upper bound for anything asynchronous; only there to avoid hangs.
const WAIT: Duration = Duration::from_secs(10);

/// Response headers left out of the comparison (see the module docs).
const IGNORED_RESPONSE_HEADERS: &[&str] = &["date"];
/// Headers whose presence and position are compared but not their value.
const OPAQUE_HEADERS: &[&str] = &["mcp-session-id"];
/// Request headers the two servers legitimately see differently.
const IGNORED_REQUEST_HEADERS: &[&str] = &["host"];

// ---------------------------------------------------------------------------
// What the MCP service receives
// ---------------------------------------------------------------------------

/// A request as the MCP service (inside the analytics layer) received it.
#[derive(Debug, Clone, PartialEq)]
struct Received {
    method: String,
    uri: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

type ReceivedLog = Arc<Mutex<Vec<Received>>>;

/// Records every request right in front of the MCP service, then hands it on
/// with the same bytes.
fn record_received(router: Router, log: ReceivedLog) -> Router {
    router.layer(middleware::from_fn(move |request: Request, next: Next| {
        let log = log.clone();
        async move {
            let (parts, body) = request.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .expect("request body readable");
            log.lock().unwrap().push(Received {
                method: parts.method.to_string(),
                uri: parts.uri.to_string(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                    .collect(),
                body: bytes.to_vec(),
            });
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    }))
}

// ---------------------------------------------------------------------------
// The pair of servers
// ---------------------------------------------------------------------------

struct Pair {
    bare: common::Server,
    layered: common::Server,
    /// What each MCP service received, when the pair records it.
    received: Option<(ReceivedLog, ReceivedLog)>,
    analytics: AnalyticsLayer,
    sink: MemorySink,
}

/// How the two servers are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// Exactly `spawn(mode, |r| r)` and `spawn(mode, |r| r.layer(analytics))`:
    /// rmcp reads the very body the layer hands on.
    Plain,
    /// The same, plus a recorder right in front of each MCP service, to
    /// compare the requests they receive (it re-buffers the body, identically
    /// for both servers).
    Recorded,
}

const SETUPS: [Setup; 2] = [Setup::Plain, Setup::Recorded];

async fn pair(mode: Mode, setup: Setup) -> Pair {
    pair_with(mode, setup, AnalyticsLayer::builder()).await
}

/// [`pair`] with a layer configured by `builder` (its sink is replaced).
async fn pair_with(mode: Mode, setup: Setup, builder: AnalyticsLayerBuilder) -> Pair {
    let sink = MemorySink::new();
    let analytics = builder.sink(sink.clone()).build();
    let (bare, layered, received) = match setup {
        Setup::Plain => {
            let layer = analytics.clone();
            (
                common::spawn(mode, |r| r).await,
                common::spawn(mode, move |r| r.layer(layer)).await,
                None,
            )
        }
        Setup::Recorded => {
            let bare_received = ReceivedLog::default();
            let layered_received = ReceivedLog::default();
            let inner = |log: ReceivedLog| {
                record_received(
                    Router::new().nest_service("/mcp", common::mcp_service(mode)),
                    log,
                )
            };
            let bare = common::spawn_router(mode, inner(bare_received.clone())).await;
            let layered = common::spawn_router(
                mode,
                inner(layered_received.clone()).layer(analytics.clone()),
            )
            .await;
            (bare, layered, Some((bare_received, layered_received)))
        }
    };
    Pair {
        bare,
        layered,
        received,
        analytics,
        sink,
    }
}

/// One raw request of a sequence.
#[derive(Debug, Clone)]
struct Step {
    label: String,
    method: Method,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// JSON-RPC messages the layer must turn into events: those of a POST
    /// with a JSON content type whose body parses (0 otherwise).
    messages: usize,
}

impl Step {
    fn post(
        label: &str,
        headers: Vec<(&'static str, String)>,
        body: Value,
        messages: usize,
    ) -> Self {
        Self::raw(
            label,
            Method::POST,
            headers,
            body.to_string().into_bytes(),
            messages,
        )
    }

    fn raw(
        label: &str,
        method: Method,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
        messages: usize,
    ) -> Self {
        Self {
            label: label.to_owned(),
            method,
            headers,
            body,
            messages,
        }
    }

    /// This step with `mcp-session-id: session` added.
    fn in_session(&self, session: Option<&str>) -> Vec<(&'static str, String)> {
        let mut headers = self.headers.clone();
        if let Some(session) = session {
            headers.push(("mcp-session-id", session.to_owned()));
        }
        headers
    }
}

/// Status and headers with the excluded ones removed and opaque values
/// blanked, in wire order.
fn comparable_head(response: &RawResponse) -> (u16, Vec<(String, Vec<u8>)>) {
    let headers = response
        .headers
        .iter()
        .filter(|(name, _)| !IGNORED_RESPONSE_HEADERS.contains(&name.as_str()))
        .map(|(name, value)| {
            if OPAQUE_HEADERS.contains(&name.as_str()) {
                (name.clone(), b"<opaque>".to_vec())
            } else {
                (name.clone(), value.clone())
            }
        })
        .collect();
    (response.status, headers)
}

fn show(response: &RawResponse) -> String {
    let headers: Vec<String> = response
        .headers
        .iter()
        .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v)))
        .collect();
    let text = response.text();
    let text = if text.len() > 600 {
        format!("{}… ({} bytes)", &text[..600], text.len())
    } else {
        text
    };
    format!("{} {headers:?}\n{text}", response.status)
}

fn assert_same_response(label: &str, bare: &RawResponse, layered: &RawResponse) {
    assert_eq!(
        comparable_head(bare),
        comparable_head(layered),
        "{label}: heads differ\nbare:    {}\nlayered: {}",
        show(bare),
        show(layered)
    );
    assert!(
        bare.body == layered.body,
        "{label}: bodies differ\nbare:    {}\nlayered: {}",
        show(bare),
        show(layered)
    );
}

fn comparable_received(received: &Received) -> Received {
    let mut received = received.clone();
    received.headers.retain(|(name, _)| {
        !IGNORED_REQUEST_HEADERS.contains(&name.as_str())
            && !OPAQUE_HEADERS.contains(&name.as_str())
    });
    received
}

impl Pair {
    /// Sends `step` to both servers (each with its own session id, if any)
    /// and checks both answers are identical.
    async fn send(
        &self,
        step: &Step,
        bare_session: Option<&str>,
        layered_session: Option<&str>,
    ) -> (RawResponse, RawResponse) {
        let bare_headers = step.in_session(bare_session);
        let layered_headers = step.in_session(layered_session);
        let bare = common::raw_request(
            step.method.clone(),
            &self.bare.url,
            &common::header_refs(&bare_headers),
            step.body.clone(),
        )
        .await;
        let layered = common::raw_request(
            step.method.clone(),
            &self.layered.url,
            &common::header_refs(&layered_headers),
            step.body.clone(),
        )
        .await;
        assert_same_response(&step.label, &bare, &layered);
        (bare, layered)
    }

    /// The MCP service behind the layer received exactly what the bare one
    /// did, and the bodies are the bytes that were sent.
    fn assert_same_requests_received(&self, steps: &[Step]) {
        let Some((bare, layered)) = &self.received else {
            return;
        };
        let bare = bare.lock().unwrap().clone();
        let layered = layered.lock().unwrap().clone();
        assert_eq!(bare.len(), steps.len(), "bare server saw {bare:#?}");
        assert_eq!(
            layered.len(),
            steps.len(),
            "layered server saw {layered:#?}"
        );
        for ((step, bare), layered) in steps.iter().zip(&bare).zip(&layered) {
            assert_eq!(
                comparable_received(bare),
                comparable_received(layered),
                "{}: the service behind the layer received something else",
                step.label
            );
            assert!(layered.body == step.body, "{}: body changed", step.label);
            assert_eq!(layered.method, step.method.as_str(), "{}", step.label);
        }
    }

    /// One event per JSON-RPC message sent; nothing lost.
    async fn assert_events_match(&self, steps: &[Step], unparsed: u64) -> Vec<Event> {
        let expected: usize = steps.iter().map(|s| s.messages).sum();
        self.sink.wait_for(expected, WAIT).await;
        self.analytics.flush().await;
        let events = self.sink.events();
        assert_eq!(
            events.len(),
            expected,
            "events:\n{}",
            events
                .iter()
                .map(|e| serde_json::to_string(e).unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        );
        let stats = self.analytics.stats();
        assert_eq!(stats.recorded, expected as u64, "{stats:?}");
        assert_eq!(stats.delivered, expected as u64, "{stats:?}");
        assert_eq!(stats.dropped.total(), 0, "{stats:?}");
        assert_eq!(stats.requests_unparsed, unparsed, "{stats:?}");
        events
    }
}

fn find(events: &[Event], id: i64) -> &Event {
    events
        .iter()
        .find(|e| e.request_id == Some(json!(id)))
        .unwrap_or_else(|| panic!("no event with id {id}: {events:#?}"))
}

// ---------------------------------------------------------------------------
// Stateless modes
// ---------------------------------------------------------------------------

fn legacy() -> Vec<(&'static str, String)> {
    common::legacy_headers("2025-11-25")
}

fn call(id: i64, name: &str, args: Value, token: Option<&str>) -> Value {
    common::legacy_tools_call_body(id, name, args, token)
}

/// A POST of `body` with the [`legacy`] headers.
fn legacy_post(label: &str, body: Value, messages: usize) -> Step {
    Step::post(label, legacy(), body, messages)
}

/// A 2026-07-28 `tools/call echo` of `text` from client `transparency`.
fn modern_echo(id: i64, text: &str) -> Value {
    common::modern_tools_call_body(id, "echo", json!({ "text": text }), "transparency", None)
}

/// The legacy `initialize` from client `transparency`, as the first request of a
/// sequence (no `MCP-Protocol-Version` yet).
fn initialize_step() -> Step {
    let init = json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": { "name": "transparency", "version": "1.0.0" }
        }
    });
    let headers = vec![
        ("accept", "application/json, text/event-stream".to_owned()),
        ("content-type", "application/json".to_owned()),
    ];
    Step::post("initialize", headers, init, 1)
}

/// The `notifications/initialized` that follows [`initialize_step`].
fn initialized_step() -> Step {
    let body = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    legacy_post("notifications/initialized", body, 1)
}

fn stateless_steps() -> Vec<Step> {
    let accept_both = ("accept", "application/json, text/event-stream".to_owned());
    let json_type = ("content-type", "application/json".to_owned());
    vec![
        initialize_step(),
        initialized_step(),
        legacy_post(
            "echo",
            call(1, "echo", json!({ "text": "héllo ✓" }), None),
            1,
        ),
        legacy_post("big", call(2, "big", json!({ "bytes": 100_000 }), None), 1),
        legacy_post(
            "progress with token",
            call(3, "progress", json!({ "steps": 3 }), Some("tok-1")),
            1,
        ),
        legacy_post(
            "progress without token (logs)",
            call(4, "progress", json!({ "steps": 2 }), None),
            1,
        ),
        legacy_post(
            "fail",
            call(5, "fail", json!({ "reason": "nope" }), None),
            1,
        ),
        legacy_post("unknown tool", call(6, "no_such_tool", json!({}), None), 1),
        Step::post(
            "2026-07-28 echo",
            common::modern_headers("tools/call", Some("echo")),
            modern_echo(7, "modern"),
            1,
        ),
        Step::post(
            "2026-07-28 without Mcp-Method",
            common::legacy_headers("2026-07-28"),
            modern_echo(8, "x"),
            1,
        ),
        Step::raw(
            "malformed JSON",
            Method::POST,
            legacy(),
            br#"{"jsonrpc":"2.0","id":9,"method":"tools/call","#.to_vec(),
            0,
        ),
        Step::post(
            "batch array",
            legacy(),
            json!([
                call(10, "echo", json!({ "text": "b1" }), None),
                call(11, "add", json!({ "a": 1, "b": 2 }), None)
            ]),
            // rmcp refuses the batch as a whole (415): one event stands for it.
            1,
        ),
        Step::post(
            "wrong content type",
            vec![
                accept_both.clone(),
                ("content-type", "text/plain".to_owned()),
            ],
            call(12, "echo", json!({ "text": "x" }), None),
            0,
        ),
        Step::post(
            "missing Accept",
            vec![
                json_type.clone(),
                ("mcp-protocol-version", "2025-11-25".to_owned()),
            ],
            call(13, "echo", json!({ "text": "x" }), None),
            1,
        ),
        Step::post(
            "JSON content type with parameters",
            vec![
                accept_both.clone(),
                ("content-type", "application/json; charset=utf-8".to_owned()),
                ("mcp-protocol-version", "2025-11-25".to_owned()),
            ],
            call(14, "echo", json!({ "text": "charset" }), None),
            1,
        ),
        Step::raw("empty JSON body", Method::POST, legacy(), Vec::new(), 0),
        Step::raw(
            "GET",
            Method::GET,
            vec![("accept", "text/event-stream".to_owned())],
            Vec::new(),
            0,
        ),
        Step::raw("DELETE", Method::DELETE, Vec::new(), Vec::new(), 0),
    ]
}

async fn stateless_transparency(mode: Mode, setup: Setup) {
    let pair = pair(mode, setup).await;
    let steps = stateless_steps();
    let mut answers = Vec::new();
    for step in &steps {
        answers.push(pair.send(step, None, None).await);
    }
    pair.assert_same_requests_received(&steps);
    // Two POSTs with a JSON content type did not parse: the malformed one and
    // the empty one.
    let events = pair.assert_events_match(&steps, 2).await;

    // The events say what the (identical) answers said.
    let status_of = |label: &str| {
        let i = steps.iter().position(|s| s.label == label).unwrap();
        answers[i].1.status
    };
    let sse = mode == Mode::StatelessSse;
    let kind = |json_mode: ResponseKind| if sse { ResponseKind::Sse } else { json_mode };
    assert_eq!(find(&events, 1).outcome, Outcome::Success);
    assert_eq!(
        find(&events, 1).arguments_value(),
        Some(json!({ "text": "héllo ✓" }))
    );
    assert_eq!(
        find(&events, 1).response_kind,
        Some(kind(ResponseKind::Json))
    );
    let big = find(&events, 2);
    assert_eq!(big.outcome, Outcome::Success);
    let result = big.result_value().unwrap();
    let text = result["content"][0]["text"].as_str().unwrap();
    // The client got all 100,000 bytes; the event keeps at most 10 KiB and says what was
    // cut and how big it was (a run of one letter looks like base64, so it is removed).
    assert!(text.len() <= 10 * 1024, "{}", text.len());
    assert!(text.contains("100000 bytes"), "{text:.60}");
    assert_eq!(find(&events, 3).progress_notifications, 3);
    assert_eq!(find(&events, 3).response_kind, Some(ResponseKind::Sse));
    assert_eq!(find(&events, 4).log_notifications, 2);
    assert_eq!(find(&events, 4).progress_notifications, 0);
    assert_eq!(find(&events, 5).outcome, Outcome::ToolError);
    assert_eq!(find(&events, 6).outcome, Outcome::Error);
    assert_eq!(find(&events, 6).error.as_ref().unwrap().code, Some(-32602));
    assert_eq!(find(&events, 7).outcome, Outcome::Success);
    assert_eq!(
        find(&events, 7).client_name.as_deref(),
        Some("transparency")
    );
    assert_eq!(find(&events, 8).outcome, Outcome::Error);
    assert_eq!(
        find(&events, 8).http_status,
        Some(status_of("2026-07-28 without Mcp-Method"))
    );
    // rmcp speaks 2025-11-25, which has no batches: it refuses the whole array, and one
    // event, for its first entry and marked as a batch, says so.
    let refused = find(&events, 10);
    assert!(refused.batch, "{refused:?}");
    assert_eq!(refused.http_status, Some(status_of("batch array")));
    assert_eq!(refused.outcome, Outcome::HttpError, "{refused:?}");
    let message = refused.error.as_ref().map(|e| e.message.as_str());
    assert!(
        message.is_some_and(|m| m.contains("a batch of 2 messages")),
        "{refused:?}"
    );
    assert!(!events.iter().any(|e| e.request_id == Some(json!(11))));
    let missing_accept = find(&events, 13);
    assert_eq!(missing_accept.http_status, Some(406));
    assert_eq!(missing_accept.outcome, Outcome::HttpError);
    assert_eq!(find(&events, 14).outcome, Outcome::Success);
    let init = find(&events, 0);
    assert_eq!(init.client_name.as_deref(), Some("transparency"));
    assert_eq!(init.outcome, Outcome::Success);
    let accepted: Vec<&Event> = events.iter().filter(|e| e.request_id.is_none()).collect();
    assert_eq!(accepted.len(), 1, "{events:#?}");
    assert_eq!(accepted[0].outcome, Outcome::Accepted);
    // No MCP session and no identified user: every event is a session of its own.
    let sessions: std::collections::HashSet<_> =
        events.iter().filter_map(|e| e.session_id.clone()).collect();
    assert_eq!(sessions.len(), events.len(), "{events:#?}");
}

#[tokio::test]
async fn stateless_json_is_byte_for_byte_transparent() {
    for setup in SETUPS {
        stateless_transparency(Mode::StatelessJson, setup).await;
    }
}

#[tokio::test]
async fn stateless_sse_is_byte_for_byte_transparent() {
    for setup in SETUPS {
        stateless_transparency(Mode::StatelessSse, setup).await;
    }
}

// ---------------------------------------------------------------------------
// Legacy stateful mode
// ---------------------------------------------------------------------------

/// The head and first body chunk of a response that may never end (a GET
/// stream): read what is there and hang up.
#[derive(Debug)]
struct StreamStart {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    first_chunk: Option<Vec<u8>>,
}

async fn stream_start(url: &str, headers: &[(&str, &str)]) -> StreamStart {
    let mut request = common::raw_http_client().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = tokio::time::timeout(WAIT, request.send())
        .await
        .expect("GET answered in time")
        .expect("GET sent");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    // rmcp opens a standalone stream with its priming event; waiting is
    // bounded so that a server that sends nothing cannot hang the test.
    let first_chunk = tokio::time::timeout(WAIT, response.chunk())
        .await
        .expect("the stream starts with a priming event")
        .expect("chunk read")
        .map(|b| b.to_vec());
    StreamStart {
        status,
        headers,
        first_chunk,
    }
}

#[tokio::test]
async fn legacy_stateful_session_is_byte_for_byte_transparent() {
    for setup in SETUPS {
        legacy_stateful_transparency(setup).await;
    }
}

async fn legacy_stateful_transparency(setup: Setup) {
    let pair = pair(Mode::LegacyStateful, setup).await;
    let mut steps = vec![initialize_step()];
    let (bare_init, layered_init) = pair.send(&steps[0], None, None).await;
    let bare_session = bare_init
        .header("mcp-session-id")
        .expect("session")
        .to_owned();
    let layered_session = layered_init
        .header("mcp-session-id")
        .expect("session")
        .to_owned();
    assert_ne!(bare_session, layered_session, "two servers, two sessions");
    let (bs, ls) = (Some(bare_session.as_str()), Some(layered_session.as_str()));

    let in_session = [
        initialized_step(),
        legacy_post(
            "echo",
            call(1, "echo", json!({ "text": "session" }), None),
            1,
        ),
        legacy_post(
            "progress with token",
            call(2, "progress", json!({ "steps": 3 }), Some("tok-s")),
            1,
        ),
        legacy_post("big", call(3, "big", json!({ "bytes": 100_000 }), None), 1),
        legacy_post(
            "fail",
            call(4, "fail", json!({ "reason": "nope" }), None),
            1,
        ),
    ];
    for step in &in_session {
        pair.send(step, bs, ls).await;
    }
    steps.extend(in_session);

    // The standalone GET stream never ends: compare its head and first chunk
    // (the priming event), then hang up.
    let get_headers = |session: &str| {
        vec![
            ("accept", "text/event-stream".to_owned()),
            ("mcp-protocol-version", "2025-11-25".to_owned()),
            ("mcp-session-id", session.to_owned()),
        ]
    };
    let bare_get = stream_start(
        &pair.bare.url,
        &common::header_refs(&get_headers(&bare_session)),
    )
    .await;
    let layered_get = stream_start(
        &pair.layered.url,
        &common::header_refs(&get_headers(&layered_session)),
    )
    .await;
    assert_eq!(bare_get.status, 200, "{bare_get:?}");
    let strip = |h: &[(String, Vec<u8>)]| -> Vec<(String, Vec<u8>)> {
        h.iter()
            .filter(|(n, _)| !IGNORED_RESPONSE_HEADERS.contains(&n.as_str()))
            .cloned()
            .collect()
    };
    assert_eq!(bare_get.status, layered_get.status);
    assert_eq!(strip(&bare_get.headers), strip(&layered_get.headers));
    assert_eq!(bare_get.first_chunk, layered_get.first_chunk);
    steps.push(Step::raw(
        "GET stream",
        Method::GET,
        vec![
            ("accept", "text/event-stream".to_owned()),
            ("mcp-protocol-version", "2025-11-25".to_owned()),
        ],
        Vec::new(),
        0,
    ));

    let after = [
        Step::raw(
            "DELETE",
            Method::DELETE,
            vec![("mcp-protocol-version", "2025-11-25".to_owned())],
            Vec::new(),
            0,
        ),
        legacy_post(
            "call after DELETE",
            call(5, "echo", json!({ "text": "gone" }), None),
            1,
        ),
    ];
    let (deleted, _) = pair.send(&after[0], bs, ls).await;
    assert_eq!(deleted.status, 202, "{}", deleted.text());
    let (gone, _) = pair.send(&after[1], bs, ls).await;
    assert_eq!(gone.status, 404, "{}", gone.text());
    steps.extend(after);

    // A non-initialize call without any session.
    let no_session = legacy_post(
        "call without a session",
        call(6, "echo", json!({ "text": "who" }), None),
        1,
    );
    let (rejected, _) = pair.send(&no_session, None, None).await;
    assert!(rejected.status >= 400, "{}", rejected.text());
    steps.push(no_session);

    pair.assert_same_requests_received(&steps);
    let events = pair.assert_events_match(&steps, 0).await;

    // The session's events share one derived id, initialize included; the
    // anonymous call without a session is a session of its own.
    let session = find(&events, 0).session_id.clone();
    assert!(session.is_some(), "{events:#?}");
    for id in 1..=5 {
        assert_eq!(find(&events, id).session_id, session, "{events:#?}");
    }
    let initialized = events.iter().find(|e| e.request_id.is_none()).unwrap();
    assert_eq!(initialized.session_id, session);
    assert_eq!(initialized.outcome, Outcome::Accepted);
    let lone = find(&events, 6).session_id.clone();
    assert!(lone.is_some() && lone != session, "{events:#?}");
    assert!(!session.unwrap().contains(&layered_session));
    assert_eq!(find(&events, 2).progress_notifications, 3);
    assert_eq!(find(&events, 4).outcome, Outcome::ToolError);
    let gone = find(&events, 5);
    assert_eq!(gone.http_status, Some(404), "{gone:?}");
    assert_eq!(gone.outcome, Outcome::HttpError, "{gone:?}");
    assert_eq!(find(&events, 6).outcome, Outcome::HttpError);
}

// ---------------------------------------------------------------------------
// Beyond the capture limits
// ---------------------------------------------------------------------------

/// Bodies and answers larger than the layer reads: requests whose declared
/// `Content-Length` is above `capture_limit` (passed on unread), and answers
/// above `response_capture_limit` (passed on in full, `TooLarge`), are still
/// byte-for-byte identical. A 2026-07-28 request over the limit still gets an
/// event, from its `Mcp-Method` / `Mcp-Name` headers; a legacy one has no such
/// headers and is only counted as unparsed.
#[tokio::test]
async fn over_the_capture_limits_nothing_changes() {
    for setup in SETUPS {
        over_the_capture_limits(setup).await;
    }
}

async fn over_the_capture_limits(setup: Setup) {
    let pair = pair_with(
        Mode::StatelessJson,
        setup,
        AnalyticsLayer::builder()
            .capture_limit(1024)
            // Between the 20 KB echo answers and the 100 KB `big` answer.
            .response_capture_limit(50_000),
    )
    .await;
    let long = "y".repeat(20_000);
    let steps = vec![
        legacy_post(
            "legacy over the limit",
            call(1, "echo", json!({ "text": long }), None),
            0,
        ),
        Step::post(
            "2026-07-28 over the limit",
            common::modern_headers("tools/call", Some("echo")),
            modern_echo(2, &long),
            1,
        ),
        legacy_post(
            "answer over the limit",
            call(3, "big", json!({ "bytes": 100_000 }), None),
            1,
        ),
        legacy_post(
            "SSE answer within the limit",
            call(4, "progress", json!({ "steps": 3 }), Some("tok-l")),
            1,
        ),
        legacy_post(
            "small",
            call(5, "echo", json!({ "text": "small" }), None),
            1,
        ),
    ];
    for step in &steps {
        pair.send(step, None, None).await;
    }
    pair.assert_same_requests_received(&steps);
    let events = pair.assert_events_match(&steps, 1).await;

    let from_headers = events
        .iter()
        .find(|e| e.request_id.is_none())
        .expect("the 2026-07-28 call known from its headers");
    assert_eq!(from_headers.method, "tools/call", "{from_headers:?}");
    assert_eq!(from_headers.resource_name.as_deref(), Some("echo"));
    assert_eq!(from_headers.arguments, None, "{from_headers:?}");
    assert_eq!(from_headers.protocol_version.as_deref(), Some("2026-07-28"));
    assert_eq!(from_headers.outcome, Outcome::Success, "{from_headers:?}");
    let result = from_headers.result_value().unwrap();
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("20000 bytes"), "{text:.60}");
    let too_large = find(&events, 3);
    assert_eq!(too_large.outcome, Outcome::TooLarge, "{too_large:?}");
    assert!(!too_large.is_error, "the outcome is unknown, not an error");
    // The unread answer is a marker saying how large it was.
    let bytes = too_large
        .result_value()
        .and_then(|r| r["_truncated"]["bytes"].as_u64());
    assert!(bytes.is_some_and(|b| b > 50_000), "{too_large:?}");
    assert_eq!(too_large.http_status, Some(200));
    assert_eq!(find(&events, 4).outcome, Outcome::Success);
    assert_eq!(find(&events, 4).progress_notifications, 3);
    assert_eq!(find(&events, 5).outcome, Outcome::Success);
}

/// A request body in many chunks with no declared length.
struct Chunked(VecDeque<bytes::Bytes>);

impl Chunked {
    fn new(body: &[u8], chunk: usize) -> Self {
        Self(
            body.chunks(chunk)
                .map(bytes::Bytes::copy_from_slice)
                .collect(),
        )
    }
}

impl http_body::Body for Chunked {
    type Data = bytes::Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(http_body::Frame::data(b))))
    }
}

fn chunked_request(headers: &[(&'static str, String)], body: &[u8]) -> http::Request<Chunked> {
    let mut request = http::Request::builder().method("POST").uri("/mcp");
    // In process there is no connection: name an allowed (loopback) host.
    request = request.header("host", "localhost");
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    request.body(Chunked::new(body, 1000)).unwrap()
}

async fn collect_response<B>(response: http::Response<B>) -> (u16, Vec<(String, Vec<u8>)>, Vec<u8>)
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    use http_body_util::BodyExt;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

/// A chunked request body without a length crosses the capture limit while
/// the layer reads it: the layer replays what it read followed by the rest of
/// the stream, and rmcp (called in process, no network) answers exactly as it
/// does without the layer.
#[tokio::test]
async fn a_chunked_body_crossing_the_capture_limit_is_replayed_exactly() {
    use tower::{Layer, ServiceExt};
    let sink = MemorySink::new();
    let analytics = AnalyticsLayer::builder()
        .sink(sink.clone())
        .capture_limit(4096)
        .build();
    let long = "z".repeat(50_000);
    let cases = [
        (legacy(), call(1, "echo", json!({ "text": long }), None), 0),
        (
            common::modern_headers("tools/call", Some("echo")),
            modern_echo(2, &long),
            1,
        ),
        // Under the limit, for contrast: read in full, replayed in one piece.
        (
            legacy(),
            call(3, "echo", json!({ "text": "short" }), None),
            1,
        ),
    ];
    let mut expected = 0;
    for (headers, body, messages) in cases {
        let body = body.to_string().into_bytes();
        let bare = common::mcp_service(Mode::StatelessJson)
            .oneshot(chunked_request(&headers, &body))
            .await
            .unwrap();
        let layered = analytics
            .layer(common::mcp_service(Mode::StatelessJson))
            .oneshot(chunked_request(&headers, &body))
            .await
            .unwrap();
        let bare = collect_response(bare).await;
        let layered = collect_response(layered).await;
        assert_eq!(bare.0, 200, "{}", String::from_utf8_lossy(&bare.2));
        assert_eq!(bare, layered);
        expected += messages;
    }
    sink.wait_for(expected, WAIT).await;
    analytics.flush().await;
    let events = sink.events();
    assert_eq!(events.len(), expected, "{events:#?}");
    assert_eq!(events[0].request_id, None);
    assert_eq!(events[0].resource_name.as_deref(), Some("echo"));
    assert_eq!(events[0].outcome, Outcome::Success);
    assert_eq!(events[1].request_id, Some(json!(3)));
    assert_eq!(
        events[1].arguments_value(),
        Some(json!({ "text": "short" }))
    );
    let stats = analytics.stats();
    assert_eq!(stats.requests_unparsed, 1, "{stats:?}");
    assert_eq!(stats.dropped.total(), 0, "{stats:?}");
}
