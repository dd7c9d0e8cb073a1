//! End to end: real rmcp 3.9 clients talk to the real demo server through
//! the analytics layer, and the events are checked field by field.
//!
//! Covered:
//! * a legacy (initialize) client in every transport mode, with its session,
//!   GET stream and DELETE in `LegacyStateful`; a 2026-07-28 (discover)
//!   client in both stateless modes and in `LegacyStateful` (served
//!   statelessly there); each runs tools/list, echo, add, progress, fail, an
//!   unknown tool, prompts/get and resources/read;
//! * concurrent calls on one client, two sessions side by side, and session
//!   ids derived identically by two layer instances;
//! * the HTTP 400 answer to a 2026-07-28 request missing `Mcp-Method` (a
//!   JSON-RPC error, so `Error`) and a 406 without JSON-RPC (`HttpError`);
//! * a client that goes away: mid-stream from a never-ending test route and
//!   from the real server, before the response head, and an rmcp client
//!   cancelling a streaming call;
//! * delivery: after `shutdown` requests still work; a full batch or a flush
//!   delivers without waiting for the flush interval.

mod common;

use std::{
    convert::Infallible,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    extract::Request,
    middleware::{self, Next},
    response::Response,
    routing::post,
};
use bytes::Bytes;
use common::{Mode, demo_server};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};
use tower_mcp_analytics::{AnalyticsLayer, Event, MemorySink, Outcome, ResponseKind};

/// Generous upper bound for anything asynchronous; only there to avoid hangs.
const WAIT: Duration = Duration::from_secs(10);

const LEGACY_CLIENT: &str = "e2e-legacy";
const MODERN_CLIENT: &str = "e2e-modern";

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// One HTTP request as seen on the wire, outside the analytics layer.
#[derive(Debug, Clone)]
struct WireRecord {
    method: String,
    request_session: Option<String>,
    response_session: Option<String>,
    status: Option<u16>,
}

/// Every HTTP request the server received, recorded by a middleware that sits
/// outside the analytics layer (so it sees exactly what the client sent and
/// what the client got back, including the raw `Mcp-Session-Id` values).
#[derive(Debug, Clone, Default)]
struct WireLog {
    records: Arc<Mutex<Vec<WireRecord>>>,
    changed: Arc<Notify>,
}

impl WireLog {
    fn records(&self) -> Vec<WireRecord> {
        self.records.lock().unwrap().clone()
    }

    fn push(&self, record: WireRecord) -> usize {
        let mut records = self.records.lock().unwrap();
        records.push(record);
        self.changed.notify_waiters();
        records.len() - 1
    }

    fn complete(&self, index: usize, status: u16, response_session: Option<String>) {
        let mut records = self.records.lock().unwrap();
        records[index].status = Some(status);
        records[index].response_session = response_session;
        self.changed.notify_waiters();
    }

    /// Waits (up to [`WAIT`]) until some record satisfies `pred`.
    async fn wait_for(&self, pred: impl Fn(&WireRecord) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let changed = self.changed.notified();
            if self.records().iter().any(&pred) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return false;
            }
        }
    }

    /// Every raw `Mcp-Session-Id` value seen in either direction.
    fn raw_sessions(&self) -> Vec<String> {
        let mut raw: Vec<String> = self
            .records()
            .into_iter()
            .flat_map(|r| [r.request_session, r.response_session])
            .flatten()
            .collect();
        raw.sort();
        raw.dedup();
        raw
    }

    fn count(&self, method: &str) -> usize {
        self.records().iter().filter(|r| r.method == method).count()
    }
}

fn header_string(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Wraps `router` (already layered with analytics) in the wire recorder.
fn record_wire(router: Router, log: WireLog) -> Router {
    router.layer(middleware::from_fn(move |request: Request, next: Next| {
        let log = log.clone();
        async move {
            let index = log.push(WireRecord {
                method: request.method().to_string(),
                request_session: header_string(request.headers(), "mcp-session-id"),
                response_session: None,
                status: None,
            });
            let response: Response = next.run(request).await;
            log.complete(
                index,
                response.status().as_u16(),
                header_string(response.headers(), "mcp-session-id"),
            );
            response
        }
    }))
}

/// The demo server in `mode` behind the analytics layer, behind the wire log.
struct Harness {
    sink: MemorySink,
    analytics: AnalyticsLayer,
    wire: WireLog,
    server: common::Server,
}

async fn harness(mode: Mode) -> Harness {
    let sink = MemorySink::new();
    let analytics = AnalyticsLayer::builder().sink(sink.clone()).build();
    let wire = WireLog::default();
    let server = {
        let analytics = analytics.clone();
        let wire = wire.clone();
        common::spawn(mode, move |r| record_wire(r.layer(analytics), wire)).await
    };
    Harness {
        sink,
        analytics,
        wire,
        server,
    }
}

impl Harness {
    /// Everything recorded so far, delivered.
    async fn flushed_events(&self) -> Vec<Event> {
        tokio::time::timeout(WAIT, self.analytics.flush())
            .await
            .expect("flush finishes");
        self.sink.events()
    }

    /// Nothing lost, nothing pending, every POST parsed (after a flush, so
    /// that whatever was recorded has been through the worker).
    async fn assert_clean_stats(&self, label: &str) {
        tokio::time::timeout(WAIT, self.analytics.flush())
            .await
            .expect("flush finishes");
        let stats = self.analytics.stats();
        assert_eq!(stats.recorded, stats.delivered, "{label}: {stats:?}");
        assert_eq!(stats.dropped.total(), 0, "{label}: {stats:?}");
        assert_eq!(stats.in_queue, 0, "{label}: {stats:?}");
        assert_eq!(stats.requests_unparsed, 0, "{label}: {stats:?}");
    }
}

// ---------------------------------------------------------------------------
// Event helpers
// ---------------------------------------------------------------------------

fn dump(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The only event with `method` (and `resource_name`, when given).
fn one<'a>(events: &'a [Event], method: &str, name: Option<&str>) -> &'a Event {
    let found: Vec<&Event> = events
        .iter()
        .filter(|e| e.method == method && (name.is_none() || e.resource_name.as_deref() == name))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {method} {name:?} event in\n{}",
        dump(events)
    );
    found[0]
}

fn tool<'a>(events: &'a [Event], name: &str) -> &'a Event {
    one(events, "tools/call", Some(name))
}

fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Milliseconds since the Unix epoch of an event timestamp
/// (`YYYY-MM-DDTHH:MM:SS.mmmZ`), or `None` if it is not in that form.
fn parse_timestamp(ts: &str) -> Option<i64> {
    let b = ts.as_bytes();
    if b.len() != 24 || &ts[4..5] != "-" || &ts[7..8] != "-" || &ts[10..11] != "T" || b[23] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| ts.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant), independent of the crate's code.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) + ms)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Every event happened between `start_ms` and `end_ms` (wall clock, with
/// a second of slack for clock granularity) and took no longer than that
/// whole window: catches wrong dates and wrong duration units, not speed.
fn assert_within(events: &[Event], start_ms: i64, end_ms: i64, label: &str) {
    for event in events {
        let at = parse_timestamp(&event.timestamp)
            .unwrap_or_else(|| panic!("{label}: bad timestamp {}", event.timestamp));
        assert!(
            start_ms - 1000 <= at && at <= end_ms + 1000,
            "{label}: {} outside [{start_ms}, {end_ms}]",
            event.timestamp
        );
        assert!(
            event.duration_ms <= (end_ms - start_ms + 1000) as f64,
            "{label}: duration {} ms longer than the whole scenario",
            event.duration_ms
        );
    }
}

/// Shape checks every event must pass, whatever it is.
fn assert_well_formed(event: &Event, label: &str) {
    let ctx = format!("{label}: {}", serde_json::to_string(event).unwrap());
    assert!(event.id.starts_with("evt_"), "{ctx}");
    assert_eq!(event.id.len(), 4 + 27, "{ctx}");
    assert!(is_base62(&event.id[4..]), "{ctx}");
    assert_eq!(event.event_type, format!("mcp:{}", event.method), "{ctx}");
    assert!(parse_timestamp(&event.timestamp).is_some(), "{ctx}");
    assert!(
        event.duration_ms.is_finite() && event.duration_ms > 0.0,
        "{ctx}"
    );
    assert_eq!(event.is_error, event.outcome.is_error(), "{ctx}");
    assert!(!event.batch, "{ctx}");
    assert_eq!(event.log_notifications, 0, "{ctx}");
    if event.method.starts_with("notifications/") {
        assert_eq!(event.request_id, None, "{ctx}");
        assert_eq!(event.outcome, Outcome::Accepted, "{ctx}");
        assert_eq!(event.http_status, Some(202), "{ctx}");
        assert_eq!(event.response_kind, Some(ResponseKind::Empty), "{ctx}");
    } else {
        assert!(
            matches!(event.request_id, Some(Value::Number(_))),
            "rmcp uses numeric ids: {ctx}"
        );
        assert_eq!(event.http_status, Some(200), "{ctx}");
    }
}

// ---------------------------------------------------------------------------
// The scenario: one client, every kind of call
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    /// `initialize` + `notifications/initialized`, protocol 2025-11-25.
    Legacy,
    /// `server/discover`, protocol 2026-07-28, client info in every `_meta`.
    Modern,
}

/// Drives one client through tools/list, echo, add, progress (3 steps),
/// fail, an unknown tool, prompts/get and resources/read, checking what the
/// client gets back (the layer must not change any of it).
async fn exercise(client: &common::Client, label: &str) -> anyhow::Result<()> {
    let tools = common::list_tools(client).await?;
    assert_eq!(tools.len(), 5, "{label}");

    let echo = common::call_tool(client, "echo", json!({ "text": "hello e2e" })).await?;
    assert_eq!(common::result_text(&echo), "hello e2e", "{label}");

    let add = common::call_tool(client, "add", json!({ "a": 2, "b": 40 })).await?;
    assert_eq!(common::result_text(&add), "42", "{label}");

    let (done, progress) =
        common::call_tool_with_progress(client, "progress", json!({ "steps": 3 }), 3).await?;
    assert_eq!(common::result_text(&done), "done", "{label}");
    assert_eq!(progress.len(), 3, "{label}: {progress:?}");

    let fail = common::call_tool(client, "fail", json!({ "reason": "nope" })).await?;
    assert_eq!(fail.is_error, Some(true), "{label}");

    let unknown = common::call_tool(client, "no_such_tool", json!({ "x": 1 })).await;
    let error = unknown.expect_err("an unknown tool is a JSON-RPC error");
    assert!(error.to_string().contains("-32602"), "{label}: {error}");

    let prompt = common::get_greeting(client, "Ada").await?;
    assert_eq!(prompt.messages.len(), 1, "{label}");

    let readme = common::read_readme(client).await?;
    assert_eq!(readme.contents.len(), 1, "{label}");
    Ok(())
}

/// One run of the scenario: a server mode and a client lifecycle.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    mode: Mode,
    lifecycle: Lifecycle,
}

impl Scenario {
    fn label(self) -> String {
        format!("{:?} client, {:?}", self.lifecycle, self.mode)
    }

    /// A legacy client on a stateful server: one MCP session, a GET stream
    /// and a DELETE on close.
    fn stateful(self) -> bool {
        self.mode.is_stateful() && self.lifecycle == Lifecycle::Legacy
    }

    /// The sorted methods of the events [`exercise`] produces, handshake
    /// included.
    fn expected_methods(self) -> Vec<&'static str> {
        let mut expected = match self.lifecycle {
            Lifecycle::Legacy => vec!["initialize", "notifications/initialized"],
            Lifecycle::Modern => vec!["server/discover"],
        };
        expected.extend(["tools/list", "prompts/get", "resources/read"]);
        expected.extend(["tools/call"; 5]);
        expected.sort_unstable();
        expected
    }
}

/// An rmcp client of `lifecycle` connected to the harness's server.
async fn connect(h: &Harness, lifecycle: Lifecycle) -> common::Client {
    match lifecycle {
        Lifecycle::Legacy => common::legacy_client(&h.server.url, LEGACY_CLIENT).await,
        Lifecycle::Modern => common::modern_client(&h.server.url, MODERN_CLIENT).await,
    }
}

/// Waits (up to [`WAIT`]) until the wire log has a record that satisfies
/// `pred`; fails with `what` otherwise.
async fn assert_wire_saw(h: &Harness, label: &str, what: &str, pred: impl Fn(&WireRecord) -> bool) {
    assert!(
        h.wire.wait_for(pred).await,
        "{label}: {what}: {:?}",
        h.wire.records()
    );
}

/// Connects, runs [`exercise`] and closes the client, checking on the wire
/// that a stateful session opens its GET stream and ends with a DELETE.
async fn drive_client(h: &Harness, scenario: Scenario, label: &str) -> anyhow::Result<()> {
    let client = connect(h, scenario.lifecycle).await;
    if scenario.stateful() {
        // The legacy client opens its standalone GET stream once the session exists.
        assert_wire_saw(h, label, "no GET stream", |r| {
            r.method == "GET" && r.status == Some(200)
        })
        .await;
    }
    exercise(&client, label).await?;
    common::close(client).await?;
    if scenario.stateful() {
        assert_wire_saw(h, label, "no DELETE on close", |r| {
            r.method == "DELETE" && r.status.is_some()
        })
        .await;
    }
    Ok(())
}

/// One event per POSTed JSON-RPC message, nothing for GET or DELETE; every
/// event well formed and inside the scenario's wall-clock window, in
/// arrival order.
fn assert_one_event_per_post(
    h: &Harness,
    events: &[Event],
    scenario: Scenario,
    start_ms: i64,
    label: &str,
) {
    let all = dump(events);
    let mut methods: Vec<&str> = events.iter().map(|e| e.method.as_str()).collect();
    methods.sort_unstable();
    assert_eq!(methods, scenario.expected_methods(), "{label}:\n{all}");
    assert_eq!(events.len(), h.wire.count("POST"), "{label}:\n{all}");

    for event in events {
        assert_well_formed(event, label);
    }
    assert_within(events, start_ms, now_ms(), label);
    // A client's calls are sequential here: arrival times never go backwards.
    let times: Vec<i64> = events
        .iter()
        .filter_map(|e| parse_timestamp(&e.timestamp))
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{label}:\n{all}");
}

/// Protocol version and client identity on every event, and the handshake
/// event (`initialize` or `server/discover`) with its result.
fn assert_protocol_and_client(
    events: &[Event],
    lifecycle: Lifecycle,
    label: &str,
) -> anyhow::Result<()> {
    let all = dump(events);
    for event in events {
        let ctx = format!("{label}: {}", serde_json::to_string(event)?);
        match lifecycle {
            Lifecycle::Legacy => {
                assert_eq!(
                    event.protocol_version.as_deref(),
                    Some("2025-11-25"),
                    "{ctx}"
                );
            }
            Lifecycle::Modern => {
                assert_eq!(
                    event.protocol_version.as_deref(),
                    Some("2026-07-28"),
                    "{ctx}"
                );
                // 2026-07-28 carries the client in every request's `_meta`.
                assert_eq!(event.client_name.as_deref(), Some(MODERN_CLIENT), "{ctx}");
                assert_eq!(event.client_version.as_deref(), Some("1.0.0"), "{ctx}");
            }
        }
    }
    match lifecycle {
        Lifecycle::Legacy => {
            let init = one(events, "initialize", None);
            assert_eq!(init.client_name.as_deref(), Some(LEGACY_CLIENT), "{all}");
            assert_eq!(init.client_version.as_deref(), Some("1.0.0"), "{all}");
            assert_eq!(init.outcome, Outcome::Success, "{all}");
            let result = init.result_value().expect("initialize result");
            assert_eq!(result["serverInfo"]["name"], demo_server::SERVER_NAME);
            assert_eq!(result["protocolVersion"], "2025-11-25");
            // Later legacy calls do not repeat clientInfo; this version of the
            // layer does not carry it over from initialize, so it is not
            // asserted either way here.
        }
        Lifecycle::Modern => {
            let discover = one(events, "server/discover", None);
            assert_eq!(discover.outcome, Outcome::Success, "{all}");
            let versions = &discover.result_value().expect("discover result")["supportedVersions"];
            assert!(
                versions
                    .as_array()
                    .is_some_and(|v| v.contains(&json!("2026-07-28"))),
                "{all}"
            );
        }
    }
    Ok(())
}

/// Response framing: SSE in the SSE modes; JSON in StatelessJson except
/// when the tool sends notifications before its result (progress).
fn assert_response_framing(events: &[Event], mode: Mode, label: &str) -> anyhow::Result<()> {
    for event in events {
        if event.method.starts_with("notifications/") {
            continue;
        }
        let expected = match (mode, event.resource_name.as_deref()) {
            (Mode::StatelessJson, Some("progress")) => ResponseKind::Sse,
            (Mode::StatelessJson, _) => ResponseKind::Json,
            _ => ResponseKind::Sse,
        };
        assert_eq!(
            event.response_kind,
            Some(expected),
            "{label}: {}",
            serde_json::to_string(event)?
        );
    }
    Ok(())
}

/// tools/list and the five tool calls of [`exercise`], field by field.
fn assert_tool_events(events: &[Event]) {
    let all = dump(events);
    let list = one(events, "tools/list", None);
    assert_eq!(list.outcome, Outcome::Success, "{all}");
    assert_eq!(list.resource_name, None, "{all}");
    let listed = list.result_value().expect("tools/list result")["tools"]
        .as_array()
        .map(Vec::len);
    assert_eq!(listed, Some(5), "{all}");

    let echo = tool(events, "echo");
    assert_eq!(
        echo.arguments_value(),
        Some(json!({ "text": "hello e2e" })),
        "{all}"
    );
    assert_eq!(echo.outcome, Outcome::Success, "{all}");
    assert!(!echo.is_error);
    assert_eq!(echo.error, None, "{all}");
    let result = echo.result_value().expect("echo result");
    assert_eq!(result["content"][0]["text"], "hello e2e", "{all}");
    assert_eq!(result["content"][0]["type"], "text", "{all}");
    assert_eq!(echo.progress_notifications, 0, "{all}");

    let add = tool(events, "add");
    assert_eq!(
        add.arguments_value(),
        Some(json!({ "a": 2, "b": 40 })),
        "{all}"
    );
    assert_eq!(add.outcome, Outcome::Success, "{all}");
    assert_eq!(add.result_value().unwrap()["content"][0]["text"], "42");

    let progress = tool(events, "progress");
    assert_eq!(
        progress.arguments_value(),
        Some(json!({ "steps": 3 })),
        "{all}"
    );
    assert_eq!(progress.outcome, Outcome::Success, "{all}");
    assert_eq!(progress.progress_notifications, 3, "{all}");
    assert_eq!(
        progress.result_value().unwrap()["content"][0]["text"],
        "done"
    );

    let fail = tool(events, "fail");
    assert_eq!(
        fail.arguments_value(),
        Some(json!({ "reason": "nope" })),
        "{all}"
    );
    assert_eq!(fail.outcome, Outcome::ToolError, "{all}");
    assert!(fail.is_error, "{all}");
    let error = fail.error.as_ref().expect("tool error details");
    assert_eq!(error.message, "nope", "{all}");
    assert_eq!(error.code, None, "{all}");
    let result = fail.result_value().expect("a tool error keeps its result");
    assert_eq!(result["isError"], true, "{all}");

    let unknown = tool(events, "no_such_tool");
    assert_eq!(unknown.arguments_value(), Some(json!({ "x": 1 })), "{all}");
    assert_eq!(unknown.outcome, Outcome::Error, "{all}");
    assert!(unknown.is_error, "{all}");
    assert_eq!(unknown.result, None, "{all}");
    let error = unknown.error.as_ref().expect("JSON-RPC error details");
    assert_eq!(error.code, Some(-32602), "{all}");
    assert_eq!(error.message, "tool not found", "{all}");
}

/// The prompts/get and resources/read events of [`exercise`].
fn assert_prompt_and_resource(events: &[Event]) {
    let all = dump(events);
    let prompt = one(events, "prompts/get", Some("greeting"));
    assert_eq!(
        prompt.arguments_value(),
        Some(json!({ "name": "Ada" })),
        "{all}"
    );
    assert_eq!(prompt.outcome, Outcome::Success, "{all}");
    let text = prompt.result_value().unwrap()["messages"][0]["content"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(text.contains("Ada"), "{all}");

    let read = one(events, "resources/read", Some(demo_server::README_URI));
    assert_eq!(read.arguments, None, "{all}");
    assert_eq!(read.outcome, Outcome::Success, "{all}");
    let contents = &read.result_value().unwrap()["contents"][0];
    assert_eq!(contents["text"], demo_server::README_TEXT, "{all}");
    assert_eq!(contents["uri"], demo_server::README_URI, "{all}");
}

/// Request ids are unique per client.
fn assert_unique_request_ids(events: &[Event]) {
    let mut ids: Vec<String> = events
        .iter()
        .filter_map(|e| e.request_id.as_ref().map(Value::to_string))
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "{}", dump(events));
}

/// Sessions: one derived id for the whole legacy stateful session
/// (initialize included), none in stateless modes, never the raw value.
fn assert_sessions(h: &Harness, events: &[Event], stateful: bool, label: &str) {
    let all = dump(events);
    let raw = h.wire.raw_sessions();
    if stateful {
        assert_eq!(raw.len(), 1, "{label}: one session on the wire: {raw:?}");
        let session = events[0].session_id.clone().expect("session id");
        assert!(session.starts_with("ses_"), "{session}");
        assert_eq!(session.len(), 4 + 27, "{session}");
        assert!(is_base62(&session[4..]), "{session}");
        for event in events {
            assert_eq!(event.session_id.as_ref(), Some(&session), "{label}:\n{all}");
        }
        let raw = &raw[0];
        assert!(!session.contains(raw.as_str()), "{session} leaks {raw}");
        assert_ne!(&session[4..], raw.as_str());
        // No part of the raw id (a UUID) shows up in any event either.
        let serialized = all.to_lowercase();
        for part in raw.split('-').filter(|p| p.len() >= 8) {
            assert!(
                !serialized.contains(&part.to_lowercase()),
                "{part} in\n{all}"
            );
        }
    } else {
        assert!(raw.is_empty(), "{label}: no session expected: {raw:?}");
        // No MCP session and no identified user: each event is a session of its own.
        let sessions: std::collections::HashSet<_> = events
            .iter()
            .map(|event| event.session_id.clone().expect("every event has a session"))
            .collect();
        assert_eq!(sessions.len(), events.len(), "{label}:\n{all}");
    }
}

/// Clean stats, then a shutdown that flushes and has delivered exactly
/// `delivered` events.
async fn assert_clean_shutdown(h: &Harness, delivered: usize, label: &str) {
    h.assert_clean_stats(label).await;
    let report = h.analytics.shutdown(WAIT).await;
    assert!(report.flushed, "{label}: {report:?}");
    assert_eq!(report.stats.dropped.total(), 0, "{label}: {report:?}");
    assert_eq!(report.stats.delivered, delivered as u64, "{label}");
}

/// Runs [`exercise`] against the demo server in `mode` with a client of
/// `lifecycle` and checks every event it produced.
async fn run_scenario(mode: Mode, lifecycle: Lifecycle) -> anyhow::Result<()> {
    let scenario = Scenario { mode, lifecycle };
    let label = scenario.label();
    let start_ms = now_ms();
    let h = harness(mode).await;
    drive_client(&h, scenario, &label).await?;

    let events = h.flushed_events().await;
    assert_one_event_per_post(&h, &events, scenario, start_ms, &label);
    assert_protocol_and_client(&events, lifecycle, &label)?;
    assert_response_framing(&events, mode, &label)?;
    assert_tool_events(&events);
    assert_prompt_and_resource(&events);
    assert_unique_request_ids(&events);
    assert_sessions(&h, &events, scenario.stateful(), &label);
    assert_clean_shutdown(&h, events.len(), &label).await;
    Ok(())
}

/// One `#[tokio::test]` per (name, mode, lifecycle) row, each running
/// [`run_scenario`].
macro_rules! scenario_tests {
    ($($(#[$doc:meta])* $name:ident: $mode:ident, $lifecycle:ident;)*) => {$(
        $(#[$doc])*
        #[tokio::test]
        async fn $name() -> anyhow::Result<()> {
            run_scenario(Mode::$mode, Lifecycle::$lifecycle).await
        }
    )*};
}

scenario_tests! {
    legacy_client_in_legacy_stateful_mode: LegacyStateful, Legacy;
    legacy_client_in_stateless_json_mode: StatelessJson, Legacy;
    legacy_client_in_stateless_sse_mode: StatelessSse, Legacy;
    modern_client_in_stateless_json_mode: StatelessJson, Modern;
    modern_client_in_stateless_sse_mode: StatelessSse, Modern;
    /// 2026-07-28 requests are served statelessly even by a server in legacy
    /// session mode: SSE answers, no session, client info on every event.
    modern_client_in_legacy_stateful_mode: LegacyStateful, Modern;
}

/// Many calls in flight on one client at once: every event keeps its own
/// arguments, result and request id (responses are matched per HTTP request,
/// never mixed up between concurrent requests).
#[tokio::test]
async fn concurrent_calls_are_not_mixed_up() -> anyhow::Result<()> {
    for (mode, lifecycle) in [
        (Mode::LegacyStateful, Lifecycle::Legacy),
        (Mode::StatelessJson, Lifecycle::Legacy),
        (Mode::StatelessSse, Lifecycle::Modern),
    ] {
        let label = Scenario { mode, lifecycle }.label();
        let h = harness(mode).await;
        let client = connect(&h, lifecycle).await;
        let before = h.flushed_events().await.len();
        let calls = (0..24).map(|i| {
            // The peer is a cheap, 'static handle on the running client.
            let peer = client.peer().clone();
            async move {
                let text = format!("call-{i}");
                let params = CallToolRequestParams::new("echo")
                    .with_arguments(common::arguments(json!({ "text": text })));
                let result = peer.call_tool(params).await?;
                assert_eq!(common::result_text(&result), text);
                anyhow::Ok(())
            }
        });
        for outcome in join_all(calls).await {
            outcome?;
        }
        common::close(client).await?;
        let events = h.flushed_events().await;
        let echoes: Vec<&Event> = events[before..]
            .iter()
            .filter(|e| e.resource_name.as_deref() == Some("echo"))
            .collect();
        assert_eq!(echoes.len(), 24, "{label}:\n{}", dump(&events));
        let mut texts = Vec::new();
        for event in echoes {
            assert_eq!(event.outcome, Outcome::Success, "{label}");
            let sent = event.arguments_value().unwrap()["text"].clone();
            let got = event.result_value().unwrap()["content"][0]["text"].clone();
            assert_eq!(sent, got, "{label}: {}", serde_json::to_string(event)?);
            texts.push(sent.as_str().unwrap().to_owned());
        }
        texts.sort();
        let mut want: Vec<String> = (0..24).map(|i| format!("call-{i}")).collect();
        want.sort();
        assert_eq!(texts, want, "{label}");
        h.assert_clean_stats(&label).await;
    }
    Ok(())
}

/// Polls a set of futures concurrently (no `futures` crate in dev-deps).
async fn join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for (i, f) in futures.into_iter().enumerate() {
        set.spawn(async move { (i, f.await) });
    }
    let mut out: Vec<(usize, F::Output)> = Vec::new();
    while let Some(joined) = set.join_next().await {
        out.push(joined.expect("task joined"));
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, o)| o).collect()
}

// ---------------------------------------------------------------------------
// Raw requests: the HTTP 400 path
// ---------------------------------------------------------------------------

/// A 2026-07-28 request without `Mcp-Method` (SEP-2243 requires it). rmcp
/// answers `400 Bad Request` *with* a JSON-RPC error body that carries the
/// request id (`-32020`, header mismatch), so the layer has an answer to
/// report: the event is `Outcome::Error` with that code and HTTP status 400,
/// not `HttpError` (which is for error statuses without a JSON-RPC answer).
/// 2026-07-28 requests are served statelessly in every mode, so this holds
/// in `LegacyStateful` too.
#[tokio::test]
async fn modern_request_missing_mcp_method_is_a_400_with_a_json_rpc_error() -> anyhow::Result<()> {
    for mode in Mode::ALL {
        let h = harness(mode).await;
        let headers = [
            ("accept", "application/json, text/event-stream"),
            ("content-type", "application/json"),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-name", "echo"),
        ];
        let body =
            common::modern_tools_call_body(5, "echo", json!({ "text": "x" }), "raw-e2e", None);
        let response = common::raw_post(&h.server.url, &headers, body.to_string().as_bytes()).await;
        assert_eq!(response.status, 400, "{mode:?}: {}", response.text());
        assert_eq!(response.content_type(), "application/json", "{mode:?}");
        let answer = response.json()?;
        assert_eq!(answer["id"], 5, "{mode:?}");
        assert_eq!(answer["error"]["code"], -32020, "{mode:?}");

        let events = h.flushed_events().await;
        assert_eq!(events.len(), 1, "{mode:?}:\n{}", dump(&events));
        let event = &events[0];
        let ctx = format!("{mode:?}: {}", serde_json::to_string(event)?);
        assert_eq!(event.method, "tools/call", "{ctx}");
        assert_eq!(event.resource_name.as_deref(), Some("echo"), "{ctx}");
        assert_eq!(event.request_id, Some(json!(5)), "{ctx}");
        assert_eq!(
            event.arguments_value(),
            Some(json!({ "text": "x" })),
            "{ctx}"
        );
        assert_eq!(event.outcome, Outcome::Error, "{ctx}");
        assert!(event.is_error, "{ctx}");
        assert_eq!(event.http_status, Some(400), "{ctx}");
        assert_eq!(event.response_kind, Some(ResponseKind::Json), "{ctx}");
        let error = event.error.as_ref().expect("error details");
        assert_eq!(error.code, Some(-32020), "{ctx}");
        assert_eq!(
            Some(error.message.as_str()),
            answer["error"]["message"].as_str(),
            "{ctx}"
        );
        assert_eq!(event.result, None, "{ctx}");
        assert_eq!(
            event.protocol_version.as_deref(),
            Some("2026-07-28"),
            "{ctx}"
        );
        assert_eq!(event.client_name.as_deref(), Some("raw-e2e"), "{ctx}");
        assert!(
            event.session_id.is_some(),
            "anonymous: a session of its own {ctx}"
        );
        h.assert_clean_stats(&format!("{mode:?}")).await;
    }
    Ok(())
}

/// The other side of the coin: an error status without any JSON-RPC answer
/// (`406`, text body, because `Accept` lacks `text/event-stream`) is
/// `Outcome::HttpError`.
#[tokio::test]
async fn error_status_without_json_rpc_answer_is_an_http_error() -> anyhow::Result<()> {
    let h = harness(Mode::StatelessJson).await;
    let body = common::legacy_tools_call_body(9, "echo", json!({ "text": "x" }), None);
    let response = common::raw_post(
        &h.server.url,
        &[
            ("accept", "application/json"),
            ("content-type", "application/json"),
            ("mcp-protocol-version", "2025-11-25"),
        ],
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(response.status, 406, "{}", response.text());
    let events = h.flushed_events().await;
    assert_eq!(events.len(), 1, "{}", dump(&events));
    let event = &events[0];
    assert_eq!(event.outcome, Outcome::HttpError, "{}", dump(&events));
    assert!(event.is_error);
    assert_eq!(event.http_status, Some(406));
    assert_eq!(event.request_id, Some(json!(9)));
    assert_eq!(event.resource_name.as_deref(), Some("echo"));
    assert_eq!(event.result, None);
    let error = event.error.as_ref().expect("error details");
    assert_eq!(error.code, None);
    assert!(error.message.contains("406"), "{}", error.message);
    h.assert_clean_stats("406").await;
    Ok(())
}

// ---------------------------------------------------------------------------
// Cancellation: the client goes away mid-stream
// ---------------------------------------------------------------------------

/// An SSE body that yields one frame, then never finishes. Dropping it (the
/// server gave up on the connection) fires `dropped`.
struct OneThenPending {
    first: Option<Bytes>,
    _dropped: oneshot::Sender<()>,
}

impl http_body::Body for OneThenPending {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        match self.first.take() {
            Some(bytes) => Poll::Ready(Some(Ok(http_body::Frame::data(bytes)))),
            None => Poll::Pending,
        }
    }
}

const PROGRESS_EVENT: &str = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"tok-cancel\",\"progress\":1,\"total\":10}}\n\n";

/// Reads the streamed body until `needle` has been seen in full (or the body
/// ends); returns what was read.
async fn read_until(response: &mut reqwest::Response, needle: &str) -> String {
    let mut seen = String::new();
    tokio::time::timeout(WAIT, async {
        while !seen.contains(needle) {
            match response.chunk().await.expect("body chunk") {
                Some(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                None => break,
            }
        }
    })
    .await
    .expect("the stream produced what was expected in time");
    seen
}

/// A test-only route behind the layer answers `text/event-stream`, sends one
/// progress notification and then hangs; the client reads that notification
/// and drops the response. The event says `Cancelled`, with the one progress
/// notification counted.
#[tokio::test]
async fn client_dropping_a_never_ending_stream_is_cancelled() -> anyhow::Result<()> {
    let sink = MemorySink::new();
    let analytics = AnalyticsLayer::builder().sink(sink.clone()).build();
    let (dropped_tx, mut dropped_rx) = mpsc::unbounded_channel::<oneshot::Receiver<()>>();
    let router = Router::new()
        .route(
            "/mcp",
            post(move || {
                let dropped_tx = dropped_tx.clone();
                async move {
                    let (tx, rx) = oneshot::channel();
                    let _ = dropped_tx.send(rx);
                    let body = OneThenPending {
                        first: Some(Bytes::from_static(PROGRESS_EVENT.as_bytes())),
                        _dropped: tx,
                    };
                    http::Response::builder()
                        .status(200)
                        .header("content-type", "text/event-stream")
                        .header("cache-control", "no-cache")
                        .body(axum::body::Body::new(body))
                        .unwrap()
                }
            }),
        )
        .layer(analytics.clone());
    let server = common::spawn_router(Mode::StatelessSse, router).await;

    let request = json!({
        "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": { "name": "slow", "arguments": { "n": 1 }, "_meta": { "progressToken": "tok-cancel" } }
    });
    let client = common::raw_http_client();
    let mut response = client
        .post(&server.url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-11-25")
        .body(request.to_string())
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let seen = read_until(&mut response, "\n\n").await;
    assert_eq!(seen, PROGRESS_EVENT);
    // Nothing is recorded while the answer is still outstanding.
    assert!(sink.events().is_empty(), "{}", dump(&sink.events()));

    drop(response);
    drop(client);

    // The server noticed the disconnect and dropped the body it was serving.
    let body_dropped = dropped_rx.recv().await.expect("the handler ran");
    tokio::time::timeout(WAIT, body_dropped)
        .await
        .expect("the server drops the body of a disconnected client")
        .expect_err("the sender is dropped, never used");

    let events = sink.wait_for(1, WAIT).await;
    assert_eq!(events.len(), 1, "{}", dump(&events));
    let event = &events[0];
    let ctx = serde_json::to_string(event)?;
    assert_eq!(event.method, "tools/call", "{ctx}");
    assert_eq!(event.resource_name.as_deref(), Some("slow"), "{ctx}");
    assert_eq!(event.request_id, Some(json!(7)), "{ctx}");
    assert_eq!(event.arguments_value(), Some(json!({ "n": 1 })), "{ctx}");
    assert_eq!(event.outcome, Outcome::Cancelled, "{ctx}");
    assert!(event.is_error, "{ctx}");
    assert_eq!(event.progress_notifications, 1, "{ctx}");
    assert_eq!(event.result, None, "{ctx}");
    assert!(event.error.is_some(), "{ctx}");
    // The head went out before the client left.
    assert_eq!(event.http_status, Some(200), "{ctx}");
    assert_eq!(event.response_kind, Some(ResponseKind::Sse), "{ctx}");
    assert!(event.duration_ms > 0.0, "{ctx}");

    analytics.flush().await;
    let stats = analytics.stats();
    assert_eq!((stats.recorded, stats.delivered), (1, 1), "{stats:?}");
    assert_eq!(stats.dropped.total(), 0, "{stats:?}");
    Ok(())
}

/// The same against the real rmcp server: the `progress` tool asked for a
/// million steps cannot finish while the client does not read (its
/// notifications are far more than the socket buffers hold), so the client
/// reads the first progress notification and leaves. Checked in every mode
/// (StatelessJson switches to SSE for the progress notifications).
#[tokio::test]
async fn client_leaving_a_real_progress_stream_is_cancelled() -> anyhow::Result<()> {
    for mode in Mode::ALL {
        let h = harness(mode).await;
        let mut headers = common::legacy_headers("2025-11-25");
        let mut expected_events = 1;
        if mode.is_stateful() {
            let (_, session) =
                common::raw_initialize(&h.server.url, "2025-11-25", "raw-e2e").await?;
            headers.push(("mcp-session-id", session.expect("session")));
            expected_events += 2;
        }
        let body = common::legacy_tools_call_body(
            42,
            "progress",
            json!({ "steps": 1_000_000 }),
            Some("tok-real"),
        );
        let client = common::raw_http_client();
        let mut request = client.post(&h.server.url).body(body.to_string());
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let mut response = request.send().await?;
        assert_eq!(response.status(), 200, "{mode:?}");
        let seen = read_until(&mut response, "notifications/progress").await;
        // Make sure that notification's SSE event is complete as well.
        let seen = if seen
            .split("notifications/progress")
            .nth(1)
            .is_some_and(|t| t.contains("\n\n"))
        {
            seen
        } else {
            seen + &read_until(&mut response, "\n\n").await
        };
        assert!(seen.contains("tok-real"), "{mode:?}: {seen}");
        drop(response);
        drop(client);

        let events = h.sink.wait_for(expected_events, WAIT).await;
        let all = dump(&events);
        assert_eq!(events.len(), expected_events, "{mode:?}:\n{all}");
        let event = tool(&events, "progress");
        let ctx = format!("{mode:?}: {}", serde_json::to_string(event)?);
        assert_eq!(event.outcome, Outcome::Cancelled, "{ctx}");
        assert!(event.is_error, "{ctx}");
        assert_eq!(event.request_id, Some(json!(42)), "{ctx}");
        assert_eq!(
            event.arguments_value(),
            Some(json!({ "steps": 1_000_000 })),
            "{ctx}"
        );
        // The layer counts what the server sent, which is at least what the
        // client read and far less than a million.
        assert!(event.progress_notifications >= 1, "{ctx}");
        assert!(event.progress_notifications < 1_000_000, "{ctx}");
        assert_eq!(event.http_status, Some(200), "{ctx}");
        assert_eq!(event.response_kind, Some(ResponseKind::Sse), "{ctx}");
        assert_eq!(event.result, None, "{ctx}");
        if mode.is_stateful() {
            assert!(event.session_id.is_some(), "{ctx}");
            assert_eq!(event.session_id, events[0].session_id, "{all}");
        }
        h.assert_clean_stats(&format!("{mode:?}")).await;
    }
    Ok(())
}

/// An rmcp client cancelling a streaming call it no longer wants
/// (`notifications/cancelled` for legacy clients, then it stops reading).
///
/// * Stateless modes: the server ignores `notifications/cancelled` (there is
///   no session to route it to) and keeps streaming until the client hangs
///   up, so the call's event is `Cancelled`.
/// * `LegacyStateful`: the server honours the notification and ends that
///   request's SSE stream without an answer. The layer does not correlate the
///   separate `notifications/cancelled` POST with the call it names, so the
///   call reads `NoResponse` ("the response ended without an answer"), or
///   `Cancelled` if the client hangs up first; either way no result.
/// * The 2026-07-28 client sends no `notifications/cancelled` at all.
#[tokio::test]
async fn rmcp_client_cancelling_a_streaming_call() -> anyhow::Result<()> {
    for (mode, lifecycle) in [
        (Mode::LegacyStateful, Lifecycle::Legacy),
        (Mode::StatelessSse, Lifecycle::Legacy),
        (Mode::StatelessJson, Lifecycle::Legacy),
        (Mode::StatelessSse, Lifecycle::Modern),
    ] {
        let label = Scenario { mode, lifecycle }.label();
        let h = harness(mode).await;
        let client = connect(&h, lifecycle).await;
        // A million steps cannot finish before the cancellation lands.
        let handle =
            common::start_tool_call(&client, "progress", json!({ "steps": 1_000_000 })).await?;
        let token = handle.progress_token.clone();
        let got = client.service().events.wait_for_progress(&token, 1).await;
        assert!(!got.is_empty(), "{label}: the call is streaming");
        common::cancel_request(handle, Some("enough")).await?;
        // The client stays usable.
        let after = common::call_tool(&client, "echo", json!({ "text": "after" })).await?;
        assert_eq!(common::result_text(&after), "after", "{label}");

        let expected = match lifecycle {
            // initialize, initialized, cancelled, progress, echo
            Lifecycle::Legacy => 5,
            // discover, progress, echo
            Lifecycle::Modern => 3,
        };
        let events = h.sink.wait_for(expected, WAIT).await;
        let all = dump(&events);
        assert_eq!(events.len(), expected, "{label}:\n{all}");
        let progress = tool(&events, "progress");
        let ctx = format!("{label}: {}", serde_json::to_string(progress)?);
        if mode.is_stateful() {
            assert!(
                matches!(progress.outcome, Outcome::NoResponse | Outcome::Cancelled),
                "{ctx}"
            );
        } else {
            assert_eq!(progress.outcome, Outcome::Cancelled, "{ctx}");
        }
        assert!(progress.is_error, "{ctx}");
        assert_eq!(progress.result, None, "{ctx}");
        assert!(progress.progress_notifications >= 1, "{ctx}");
        assert_eq!(progress.http_status, Some(200), "{ctx}");
        match lifecycle {
            Lifecycle::Legacy => {
                let cancelled = one(&events, "notifications/cancelled", None);
                assert_eq!(cancelled.outcome, Outcome::Accepted, "{all}");
                assert_eq!(cancelled.http_status, Some(202), "{all}");
            }
            Lifecycle::Modern => {
                assert!(
                    events.iter().all(|e| e.method != "notifications/cancelled"),
                    "{all}"
                );
            }
        }
        assert_eq!(tool(&events, "echo").outcome, Outcome::Success, "{all}");
        common::close(client).await?;
        h.assert_clean_stats(&label).await;
    }
    Ok(())
}

/// Analytics never fails a request: after `shutdown` the server keeps
/// answering exactly as before; the events it would have made are counted as
/// dropped for shutdown.
#[tokio::test]
async fn requests_still_work_after_shutdown() -> anyhow::Result<()> {
    let h = harness(Mode::StatelessJson).await;
    let client = common::legacy_client(&h.server.url, LEGACY_CLIENT).await;
    let before = common::call_tool(&client, "echo", json!({ "text": "before" })).await?;
    assert_eq!(common::result_text(&before), "before");
    let report = h.analytics.shutdown(WAIT).await;
    assert!(report.flushed, "{report:?}");
    assert_eq!(report.stats.delivered, 3, "{report:?}");
    assert_eq!(report.stats.dropped.total(), 0, "{report:?}");

    let after = common::call_tool(&client, "echo", json!({ "text": "after" })).await?;
    assert_eq!(common::result_text(&after), "after");
    let (done, progress) =
        common::call_tool_with_progress(&client, "progress", json!({ "steps": 3 }), 3).await?;
    assert_eq!(common::result_text(&done), "done");
    assert_eq!(progress.len(), 3);
    common::close(client).await?;

    let stats = h.analytics.stats();
    assert_eq!(stats.recorded, 5, "{stats:?}");
    assert_eq!(stats.delivered, 3, "{stats:?}");
    assert_eq!(stats.dropped.shutdown, 2, "{stats:?}");
    assert_eq!(stats.in_queue, 0, "{stats:?}");
    assert_eq!(h.sink.events().len(), 3);
    Ok(())
}

/// Two legacy clients with their own sessions on one server, calls
/// interleaved: each session's events share one id, the two ids differ, and
/// the id is a pure function of the raw `Mcp-Session-Id` (another layer
/// instance derives the same id from the same header).
#[tokio::test]
async fn each_session_gets_its_own_stable_id() -> anyhow::Result<()> {
    let h = harness(Mode::LegacyStateful).await;
    let a = common::legacy_client(&h.server.url, "client-a").await;
    let b = common::legacy_client(&h.server.url, "client-b").await;
    for (client, text) in [(&a, "from-a"), (&b, "from-b"), (&a, "from-a")] {
        let result = common::call_tool(client, "echo", json!({ "text": text })).await?;
        assert_eq!(common::result_text(&result), text);
    }
    common::close(a).await?;
    common::close(b).await?;
    let events = h.flushed_events().await;
    let all = dump(&events);
    assert_eq!(events.len(), 2 * 2 + 3, "{all}");

    let session_of = |client: &str| {
        events
            .iter()
            .find(|e| e.method == "initialize" && e.client_name.as_deref() == Some(client))
            .and_then(|e| e.session_id.clone())
            .unwrap_or_else(|| panic!("no session for {client}:\n{all}"))
    };
    let (sa, sb) = (session_of("client-a"), session_of("client-b"));
    assert_ne!(sa, sb, "{all}");
    for event in &events {
        let session = event
            .session_id
            .as_ref()
            .expect("every event has a session");
        let text = event.arguments_value().map(|a| a["text"].clone());
        if text == Some(json!("from-a")) {
            assert_eq!(session, &sa, "{all}");
        }
        if text == Some(json!("from-b")) {
            assert_eq!(session, &sb, "{all}");
        }
    }
    for session in [&sa, &sb] {
        let n = events
            .iter()
            .filter(|e| e.session_id.as_ref() == Some(session))
            .count();
        assert!(n >= 3, "{session}: {n} events:\n{all}");
    }

    // Another layer instance (another process, in production) derives the
    // same ids from the same raw header values; the server there does not
    // know the sessions (404), which does not matter for the id.
    let raw = h.wire.raw_sessions();
    assert_eq!(raw.len(), 2, "{raw:?}");
    let other = harness(Mode::LegacyStateful).await;
    let mut derived = Vec::new();
    for value in &raw {
        let mut headers = common::legacy_headers("2025-11-25");
        headers.push(("mcp-session-id", value.clone()));
        let body = common::legacy_tools_call_body(1, "echo", json!({ "text": "x" }), None);
        let response = common::raw_post_json(&other.server.url, &headers, &body).await;
        assert_eq!(response.status, 404, "{}", response.text());
    }
    for event in other.flushed_events().await {
        assert_eq!(event.outcome, Outcome::HttpError);
        derived.push(event.session_id.expect("derived from the header"));
    }
    derived.sort();
    let mut expected = vec![sa, sb];
    expected.sort();
    assert_eq!(derived, expected);
    Ok(())
}

/// Fires its sender when dropped.
struct DropSignal(#[allow(dead_code)] oneshot::Sender<()>);

/// The client goes away before the server even sent the response head (the
/// handler never answers): the inner service's future is dropped with the
/// layer's, and the event says `Cancelled`, with no HTTP status.
#[tokio::test]
async fn client_leaving_before_the_response_head_is_cancelled() -> anyhow::Result<()> {
    let sink = MemorySink::new();
    let analytics = AnalyticsLayer::builder().sink(sink.clone()).build();
    let (started_tx, mut started_rx) = mpsc::unbounded_channel::<oneshot::Receiver<()>>();
    let router = Router::new()
        .route(
            "/mcp",
            post(move || {
                let started_tx = started_tx.clone();
                async move {
                    let (tx, rx) = oneshot::channel();
                    let _guard = DropSignal(tx);
                    let _ = started_tx.send(rx);
                    std::future::pending::<Response>().await
                }
            }),
        )
        .layer(analytics.clone());
    let server = common::spawn_router(Mode::StatelessJson, router).await;

    let url = server.url.clone();
    let request = tokio::spawn(async move {
        common::raw_http_client()
            .post(url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(r#"{"jsonrpc":"2.0","id":"slow-1","method":"tools/call","params":{"name":"never","arguments":{}}}"#)
            .send()
            .await
    });
    let handler_dropped = tokio::time::timeout(WAIT, started_rx.recv())
        .await
        .expect("the handler started")
        .expect("the handler started");
    assert!(sink.events().is_empty());
    request.abort();
    let _ = request.await;

    tokio::time::timeout(WAIT, handler_dropped)
        .await
        .expect("the server drops the handler of a disconnected client")
        .expect_err("the sender is dropped, never used");
    let events = sink.wait_for(1, WAIT).await;
    assert_eq!(events.len(), 1, "{}", dump(&events));
    let event = &events[0];
    let ctx = serde_json::to_string(event)?;
    assert_eq!(event.outcome, Outcome::Cancelled, "{ctx}");
    assert!(event.is_error, "{ctx}");
    assert_eq!(event.request_id, Some(json!("slow-1")), "{ctx}");
    assert_eq!(event.resource_name.as_deref(), Some("never"), "{ctx}");
    assert_eq!(event.arguments_value(), Some(json!({})), "{ctx}");
    // No response head ever existed.
    assert_eq!(event.http_status, None, "{ctx}");
    assert_eq!(event.response_kind, None, "{ctx}");
    assert!(event.duration_ms > 0.0, "{ctx}");
    Ok(())
}

// ---------------------------------------------------------------------------
// Delivery
// ---------------------------------------------------------------------------

/// The worker is not woken per request: it looks at the queue every
/// `flush_interval`, as soon as `batch_size` exchanges wait, and on
/// `flush`. With an interval of an hour, a full batch still arrives on its
/// own, and a single event arrives on `flush`.
#[tokio::test]
async fn a_full_batch_or_a_flush_delivers_without_waiting_for_the_interval() -> anyhow::Result<()> {
    let sink = MemorySink::new();
    let analytics = AnalyticsLayer::builder()
        .sink(sink.clone())
        .batch_size(3)
        .flush_interval(Duration::from_secs(3600))
        .build();
    let server = common::spawn(Mode::StatelessJson, |r| r.layer(analytics.clone())).await;
    let call = |i: i64| {
        let url = server.url.clone();
        async move {
            let body =
                common::legacy_tools_call_body(i, "echo", json!({ "text": i.to_string() }), None);
            let headers = common::legacy_headers("2025-11-25");
            let response = common::raw_post_json(&url, &headers, &body).await;
            assert_eq!(response.status, 200, "{}", response.text());
        }
    };
    for i in 1..=3 {
        call(i).await;
    }
    // No flush: the third queued exchange wakes the worker.
    let events = sink.wait_for(3, WAIT).await;
    assert_eq!(events.len(), 3, "{} {:?}", dump(&events), analytics.stats());

    // One more: below the batch size, so it waits for the interval or a flush.
    call(4).await;
    tokio::time::timeout(WAIT, analytics.flush())
        .await
        .expect("flush finishes");
    let events = sink.events();
    assert_eq!(events.len(), 4, "{}", dump(&events));
    assert_eq!(events[3].request_id, Some(json!(4)));
    let stats = analytics.stats();
    assert_eq!((stats.recorded, stats.delivered), (4, 4), "{stats:?}");
    Ok(())
}
