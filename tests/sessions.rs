//! Identity and sessions: who made each request, from which AI client, and which session
//! each event belongs to.
//!
//! Covered:
//! * the demo scenario (`examples/sessions_demo.rs`) through a real rmcp server: one
//!   session per user + client, reused within the 30-minute inactivity window, a new one
//!   after it, another for another client, one of its own for an anonymous call; ids are
//!   `ses_` + 27 base62 characters that sort by first use;
//! * no cross-contamination: 50 users × 2 clients calling tools concurrently through a
//!   stateless rmcp server, with legacy (initialize) clients named only by the user +
//!   User-Agent heuristic, and with 2026-07-28 (discover) clients;
//! * legacy stateful servers: the `initialize` names every later event of its MCP session,
//!   above lower rungs of the ladder, and is forgotten when the session is deleted;
//! * identify events: once per new user, again when name or data change, never per request;
//!   the hook runs once per request that produces events;
//! * bounded memory: a flood of invented identities leaves the session store, the identity
//!   cache and the client directory at their capacity;
//! * panicking `identify` and `session_key` hooks: the request is untouched, the event goes
//!   out anonymous or grouped as without a key, and the panic is counted;
//! * session modes: Stateless ignores `Mcp-Session-Id`, Stateful isolates events without
//!   it, Backend leaves `session_id` empty (user and client stay), and a `session_key`
//!   gives the same session on two layer instances;
//! * a failing session store: events still delivered, grouped in memory instead, failures
//!   counted per batch;
//! * the client ladder on raw requests: `_meta` clientInfo, the user + User-Agent
//!   heuristic and its window, `x-mcp-client-*` headers, `User-Agent`;
//! * the inactivity window: inclusive, configurable, counted from each request's arrival
//!   on the injected clock.

mod common;
#[path = "../examples/support/sessions_scenario.rs"]
mod sessions_scenario;

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use bytes::Bytes;
use common::Mode;
use http::{HeaderValue, Request, Response, StatusCode, header::CONTENT_TYPE};
use http_body_util::{BodyExt as _, Full};
use serde_json::{Value, json};
use sessions_scenario::{CLAUDE, CURSOR, ManualClock, STEPS, USER_HEADER, at};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tower::{Layer as _, Service, ServiceExt as _, service_fn};
use tower_mcp_analytics::{
    AnalyticsLayer, AnalyticsLayerBuilder, Event, MemorySessionStore, MemorySink, ObservedBody,
    ReplayBody, SessionMode, SessionRequest, SessionStore, Stats, StoreError, StoreFuture,
    UserIdentity, identity,
};

/// Generous upper bound for anything asynchronous; only there to avoid hangs.
const WAIT: Duration = Duration::from_secs(30);

/// Request headers as (name, value) pairs.
type Headers<'a> = &'a [(&'a str, &'a str)];

/// Requests of user `alice`, without a session header.
const ALICE: Headers<'static> = &[(USER_HEADER, "alice")];

/// Requests of user `alice` in MCP session `session`.
fn alice_in(session: &str) -> [(&str, &str); 2] {
    [(USER_HEADER, "alice"), ("mcp-session-id", session)]
}

// ---------------------------------------------------------------------------
// In-process MCP stand-in
// ---------------------------------------------------------------------------

/// A JSON-RPC responder standing in for an MCP server: a request gets a one-line text tool
/// result with its id; a notification gets `202 Accepted`.
async fn answer(
    request: Request<ReplayBody<Full<Bytes>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    Ok(reply_to(&body))
}

fn reply_to(body: &[u8]) -> Response<Full<Bytes>> {
    let id = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|message| message.get("id").cloned());
    let Some(id) = id else {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::ACCEPTED;
        return response;
    };
    let result = json!({
        "jsonrpc": "2.0",
        "id": id,
        "result": { "content": [{ "type": "text", "text": "ok" }] }
    });
    let mut response = Response::new(Full::new(Bytes::from(result.to_string())));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A POST of `body` with `headers`, as a request to the in-process service.
fn post_request(headers: &[(&str, &str)], body: &Value) -> anyhow::Result<Request<Full<Bytes>>> {
    let mut request = Request::post("/mcp").header(CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Ok(request.body(Full::new(Bytes::from(body.to_string())))?)
}

/// Sends one POST through `analytics` in front of [`answer`] and reads the whole response.
async fn post(
    analytics: &AnalyticsLayer,
    headers: &[(&str, &str)],
    body: &Value,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let response = analytics
        .layer(service_fn(answer))
        .oneshot(post_request(headers, body)?)
        .await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Like [`post`], checking that the stand-in answered with a result.
async fn call(
    analytics: &AnalyticsLayer,
    headers: &[(&str, &str)],
    body: &Value,
) -> anyhow::Result<()> {
    let (status, reply) = post(analytics, headers, body).await?;
    ensure!(status == StatusCode::OK, "{status}: {reply:?}");
    Ok(())
}

/// [`call`] for each (headers, body) in turn.
async fn call_each(
    analytics: &AnalyticsLayer,
    requests: &[(Headers<'_>, Value)],
) -> anyhow::Result<()> {
    for (headers, body) in requests {
        call(analytics, headers, body).await?;
    }
    Ok(())
}

/// A legacy `tools/call echo` (no client info in the message).
fn tool_call(id: u64) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": { "name": "echo", "arguments": { "text": id.to_string() } }
    })
}

/// A 2026-07-28 `tools/call echo` naming its client in `_meta` clientInfo.
fn tool_call_from(id: u64, client: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": {
            "name": "echo",
            "arguments": { "text": id.to_string() },
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": { "name": client, "version": "1.0.0" },
                "io.modelcontextprotocol/clientCapabilities": {}
            }
        }
    })
}

/// A legacy `initialize` from `client`.
fn initialize(id: u64, client: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": { "name": client, "version": "1.0.0" }
        }
    })
}

/// A clock reading 10:00 and an empty sink, for [`builder`].
fn ten_oclock() -> (ManualClock, MemorySink) {
    (ManualClock::new(at(10, 0)), MemorySink::new())
}

/// A layer on the system clock delivering to `sink`, identifying users by `x-user-id`.
fn identified_layer(sink: &MemorySink) -> AnalyticsLayer {
    AnalyticsLayer::builder()
        .sink(sink.clone())
        .identify(identity::from_header(USER_HEADER))
        .build()
}

/// A layer builder delivering to `sink`, identifying users by `x-user-id`, stamping requests
/// with `clock`.
fn builder(sink: &MemorySink, clock: &ManualClock) -> AnalyticsLayerBuilder {
    AnalyticsLayer::builder()
        .sink(sink.clone())
        .identify(identity::from_header(USER_HEADER))
        .clock(clock.reader())
}

/// A session store the test keeps a handle on (the builder takes its store by value).
#[derive(Clone, Debug)]
struct SharedStore(Arc<MemorySessionStore>);

impl SessionStore for SharedStore {
    fn assign<'a>(&'a self, requests: &'a [SessionRequest], window: Duration) -> StoreFuture<'a> {
        self.0.assign(requests, window)
    }
}

/// A session store that is always down.
struct FailingStore;

impl SessionStore for FailingStore {
    fn assign<'a>(&'a self, _: &'a [SessionRequest], _: Duration) -> StoreFuture<'a> {
        Box::pin(std::future::ready(Err(StoreError::new(
            "store unreachable",
        ))))
    }
}

/// A session store that answers, but with no session at all.
struct ForgetfulStore;

impl SessionStore for ForgetfulStore {
    fn assign<'a>(&'a self, _: &'a [SessionRequest], _: Duration) -> StoreFuture<'a> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
}

// ---------------------------------------------------------------------------
// Event helpers
// ---------------------------------------------------------------------------

fn dump(events: &[Event]) -> String {
    events
        .iter()
        .map(|event| serde_json::to_string(event).unwrap_or_else(|error| error.to_string()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The (non-identify) event answering JSON-RPC id `id`.
fn by_id(events: &[Event], id: u64) -> anyhow::Result<&Event> {
    let found: Vec<&Event> = events
        .iter()
        .filter(|e| e.event_type != "identify" && e.request_id == Some(Value::from(id)))
        .collect();
    ensure!(
        found.len() == 1,
        "{} events with id {id}:\n{}",
        found.len(),
        dump(events)
    );
    Ok(found[0])
}

/// The session of the event answering `id`.
fn session_of(events: &[Event], id: u64) -> anyhow::Result<String> {
    by_id(events, id)?
        .session_id
        .clone()
        .with_context(|| format!("event {id} has no session:\n{}", dump(events)))
}

fn user_of(event: &Event) -> Option<&str> {
    event.user.as_ref().map(|user| user.id.as_str())
}

fn identify_events(events: &[Event]) -> Vec<&Event> {
    events
        .iter()
        .filter(|e| e.event_type == "identify")
        .collect()
}

/// `ses_` followed by 27 base62 characters.
fn is_session_id(id: &str) -> bool {
    id.len() == 4 + 27
        && id.starts_with("ses_")
        && id[4..].bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Flushes, then checks that everything recorded was delivered and nothing dropped;
/// returns the sink's events and the stats.
async fn flushed(
    analytics: &AnalyticsLayer,
    sink: &MemorySink,
) -> anyhow::Result<(Vec<Event>, Stats)> {
    tokio::time::timeout(WAIT, analytics.flush())
        .await
        .context("flush finishes")?;
    let events = sink.events();
    let stats = analytics.stats();
    ensure!(stats.recorded == stats.delivered, "{stats:?}");
    ensure!(stats.dropped.total() == 0, "{stats:?}");
    Ok((events, stats))
}

/// Flushes, then checks that everything recorded was delivered, all of it to `sink`.
async fn delivered(analytics: &AnalyticsLayer, sink: &MemorySink) -> anyhow::Result<Vec<Event>> {
    let (events, stats) = flushed(analytics, sink).await?;
    ensure!(
        stats.delivered == events.len() as u64,
        "{stats:?} with {} events",
        events.len()
    );
    Ok(events)
}

// ---------------------------------------------------------------------------
// The demo scenario
// ---------------------------------------------------------------------------

/// The table `cargo run --example sessions_demo` prints, through the real rmcp server:
/// S1 reused at 10:15, S3 for alice's other client, S4 after 40 idle minutes, S5 for the
/// anonymous call; ids well formed and sorted by first use.
#[tokio::test]
async fn demo_scenario_groups_by_user_client_and_window() -> anyhow::Result<()> {
    let clock = ManualClock::new(at(9, 0));
    let sink = MemorySink::new();
    let analytics = sessions_scenario::analytics_layer(&clock, &sink);
    let server = common::spawn(Mode::StatelessJson, |r| r.layer(analytics.clone())).await;
    let rows = sessions_scenario::run(&server.url, &clock, &analytics, &sink).await?;
    let table = sessions_scenario::render(&rows);

    let labels: Vec<&str> = rows.iter().map(|row| row.label.as_str()).collect();
    assert_eq!(labels, ["S1", "S2", "S1", "S3", "S4", "S5"], "\n{table}");
    let times: Vec<&str> = rows.iter().map(|row| row.time.as_str()).collect();
    assert_eq!(
        times,
        ["10:00", "10:02", "10:15", "10:20", "10:55", "10:56"],
        "\n{table}"
    );
    let users: Vec<&str> = rows.iter().map(|row| row.user.as_str()).collect();
    assert_eq!(
        users,
        ["alice", "bob", "alice", "alice", "alice", "anonymous"],
        "\n{table}"
    );
    let clients: Vec<&str> = rows.iter().map(|row| row.client.as_str()).collect();
    assert_eq!(
        clients,
        [
            "Claude Desktop",
            "Cursor",
            "Claude Desktop",
            "Cursor",
            "Claude Desktop",
            "Claude Desktop"
        ],
        "\n{table}"
    );
    assert_eq!(rows.len(), STEPS.len());
    assert_eq!(table.lines().count(), 1 + STEPS.len(), "\n{table}");

    let ids: Vec<&str> = rows.iter().map(|row| row.session_id.as_str()).collect();
    assert_eq!(ids[2], ids[0], "10:15 reuses S1\n{table}");
    assert_ne!(ids[3], ids[0], "another client, another session\n{table}");
    assert_ne!(ids[4], ids[0], "40 idle minutes, a new session\n{table}");
    assert!(
        ids[..5].iter().all(|id| *id != ids[5]),
        "the anonymous call has a session of its own\n{table}"
    );
    assert!(ids.iter().all(|id| is_session_id(id)), "\n{table}");
    let mut first_use: Vec<&str> = Vec::new();
    for id in &ids {
        if !first_use.contains(id) {
            first_use.push(id);
        }
    }
    assert_eq!(first_use.len(), 5, "\n{table}");
    assert!(
        first_use.windows(2).all(|pair| pair[0] < pair[1]),
        "session ids sort by time of first use\n{table}"
    );

    // One identify event per user, sharing the session of the call that introduced them.
    let events = delivered(&analytics, &sink).await?;
    let identified = identify_events(&events);
    let who: Vec<Option<&str>> = identified.iter().map(|e| user_of(e)).collect();
    assert_eq!(who, [Some("alice"), Some("bob")], "{}", dump(&events));
    assert_eq!(identified[0].session_id.as_deref(), Some(ids[0]));
    assert_eq!(identified[1].session_id.as_deref(), Some(ids[1]));
    assert_eq!(events.len(), STEPS.len() + 2, "{}", dump(&events));
    Ok(())
}

// ---------------------------------------------------------------------------
// Concurrency: no cross-contamination
// ---------------------------------------------------------------------------

const FLEET_USERS: usize = 50;
const FLEET_CLIENTS: [&str; 2] = [CLAUDE, CURSOR];
const FLEET_CALLS: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lifecycle {
    /// `initialize` + `notifications/initialized`; later requests do not name the client.
    Legacy,
    /// `server/discover`; every request names its client in `_meta`.
    Modern,
}

/// A User-Agent of its own for each (user, client), whose product name is not the client's
/// name: an event named through it instead of through the client's `initialize` shows.
fn fleet_user_agent(user: &str, client: &str) -> String {
    format!("{client}-agent/9.9 ({user})")
}

/// One client of one user: connect, call `echo` a few times with `user|client|n`, close.
async fn drive(
    url: String,
    lifecycle: Lifecycle,
    user: String,
    client: &'static str,
) -> anyhow::Result<()> {
    let http = common::http_client_with(&fleet_user_agent(&user, client), &[(USER_HEADER, &user)])?;
    let mcp = match lifecycle {
        Lifecycle::Legacy => common::legacy_client_over(http, &url, client).await?,
        Lifecycle::Modern => common::modern_client_over(http, &url, client).await?,
    };
    for n in 0..FLEET_CALLS {
        let text = format!("{user}|{client}|{n}");
        let result = common::call_tool(&mcp, "echo", json!({ "text": text })).await?;
        ensure!(common::result_text(&result) == text, "{result:?}");
    }
    common::close(mcp).await?;
    Ok(())
}

/// 50 users × 2 clients at once through a stateless rmcp server: every event carries its
/// own user and client, a session never holds two users or two clients, and each
/// (user, client) has exactly one session.
async fn fleet(lifecycle: Lifecycle) -> anyhow::Result<()> {
    let sink = MemorySink::new();
    let analytics = identified_layer(&sink);
    let server = common::spawn(Mode::StatelessJson, |r| r.layer(analytics.clone())).await;
    let mut clients = JoinSet::new();
    for n in 0..FLEET_USERS {
        for client in FLEET_CLIENTS {
            let url = server.url.clone();
            let user = format!("user-{n:02}");
            clients.spawn(drive(url, lifecycle, user, client));
        }
    }
    while let Some(done) = tokio::time::timeout(WAIT, clients.join_next())
        .await
        .context("clients finish")?
    {
        done??;
    }
    let events = delivered(&analytics, &sink).await?;
    let all = || dump(&events);

    let mut session_pairs: BTreeMap<&str, BTreeSet<(&str, &str)>> = BTreeMap::new();
    let mut pair_sessions: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    let mut methods: BTreeMap<&str, usize> = BTreeMap::new();
    for event in &events {
        *methods.entry(event.method.as_str()).or_default() += 1;
        let ctx = || serde_json::to_string(event).unwrap_or_default();
        let user = user_of(event).with_context(|| format!("no user: {}", ctx()))?;
        let client = event
            .client_name
            .as_deref()
            .with_context(|| format!("no client: {}", ctx()))?;
        ensure!(
            FLEET_CLIENTS.contains(&client),
            "named by a lower rung: {}",
            ctx()
        );
        ensure!(
            event.client_version.as_deref() == Some("1.0.0"),
            "{}",
            ctx()
        );
        let session = event
            .session_id
            .as_deref()
            .with_context(|| format!("no session: {}", ctx()))?;
        ensure!(is_session_id(session), "{}", ctx());
        if event.method == "tools/call" {
            let arguments = event.arguments_value();
            let text = arguments
                .as_ref()
                .and_then(|args| args["text"].as_str())
                .with_context(|| format!("no text: {}", ctx()))?;
            let mut parts = text.split('|');
            ensure!(
                parts.next() == Some(user) && parts.next() == Some(client),
                "the call of {text} carries {user} / {client}: {}",
                ctx()
            );
        }
        session_pairs
            .entry(session)
            .or_default()
            .insert((user, client));
        pair_sessions
            .entry((user, client))
            .or_default()
            .insert(session);
    }

    for (session, pairs) in &session_pairs {
        assert_eq!(pairs.len(), 1, "{session} mixes {pairs:?}\n{}", all());
    }
    for (pair, sessions) in &pair_sessions {
        assert_eq!(sessions.len(), 1, "{pair:?} has {sessions:?}\n{}", all());
    }
    let pairs = FLEET_USERS * FLEET_CLIENTS.len();
    assert_eq!(pair_sessions.len(), pairs, "{}", all());
    assert_eq!(session_pairs.len(), pairs, "{}", all());

    let mut expected = BTreeMap::from([
        ("tools/call", pairs * FLEET_CALLS),
        ("identify", FLEET_USERS),
    ]);
    match lifecycle {
        Lifecycle::Legacy => {
            expected.insert("initialize", pairs);
            expected.insert("notifications/initialized", pairs);
        }
        Lifecycle::Modern => {
            expected.insert("server/discover", pairs);
        }
    }
    assert_eq!(methods, expected, "{}", all());
    let identified: BTreeSet<Option<&str>> = identify_events(&events)
        .iter()
        .map(|e| user_of(e))
        .collect();
    assert_eq!(identified.len(), FLEET_USERS, "one identify event per user");
    Ok(())
}

/// Legacy clients on a stateless server: only the `initialize` names the client, and the
/// layer finds it again by user + User-Agent for every later request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_legacy_stateless_clients_never_mix() -> anyhow::Result<()> {
    fleet(Lifecycle::Legacy).await
}

/// 2026-07-28 clients: every request names its client in `_meta`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_modern_clients_never_mix() -> anyhow::Result<()> {
    fleet(Lifecycle::Modern).await
}

// ---------------------------------------------------------------------------
// Legacy stateful sessions
// ---------------------------------------------------------------------------

/// On a legacy stateful server the `initialize` names every later event of its MCP session,
/// above the `x-mcp-client-name` header and the User-Agent the requests also carry; two
/// sessions of one user stay apart. Once a session is deleted its `initialize` names
/// nothing any more (a request still sending the old id is named by its User-Agent), and a
/// new session is named by its own `initialize` only.
#[tokio::test]
async fn legacy_session_is_named_by_its_initialize() -> anyhow::Result<()> {
    let sink = MemorySink::new();
    let analytics = identified_layer(&sink);
    let server = common::spawn(Mode::LegacyStateful, |r| r.layer(analytics.clone())).await;
    let decoys = [
        (USER_HEADER, "alice"),
        ("x-mcp-client-name", "decoy-header"),
    ];
    let claude = common::legacy_client_over(
        common::http_client_with("Decoy/1.0", &decoys)?,
        &server.url,
        CLAUDE,
    )
    .await?;
    let cursor = common::legacy_client_over(
        common::http_client_with("Decoy/1.0", &decoys)?,
        &server.url,
        CURSOR,
    )
    .await?;
    for (client, text) in [
        (&claude, "a1"),
        (&cursor, "b1"),
        (&claude, "a2"),
        (&cursor, "b2"),
    ] {
        let result = common::call_tool(client, "echo", json!({ "text": text })).await?;
        assert_eq!(common::result_text(&result), text);
    }
    common::close(claude).await?;
    common::close(cursor).await?;
    let events = delivered(&analytics, &sink).await?;

    let session_named = |client: &str| {
        events
            .iter()
            .find(|e| e.method == "initialize" && e.client_name.as_deref() == Some(client))
            .and_then(|e| e.session_id.clone())
            .with_context(|| format!("no initialize from {client}:\n{}", dump(&events)))
    };
    let (claude_session, cursor_session) = (session_named(CLAUDE)?, session_named(CURSOR)?);
    assert_ne!(claude_session, cursor_session);
    for (session, client, display, texts) in [
        (&claude_session, CLAUDE, "Claude Desktop", ["a1", "a2"]),
        (&cursor_session, CURSOR, "Cursor", ["b1", "b2"]),
    ] {
        let of_session: Vec<&Event> = events
            .iter()
            .filter(|e| e.session_id.as_ref() == Some(session))
            .collect();
        let methods: Vec<&str> = of_session.iter().map(|e| e.method.as_str()).collect();
        assert!(
            methods.contains(&"notifications/initialized") && methods.len() >= 4,
            "{client}: {methods:?}\n{}",
            dump(&events)
        );
        for event in &of_session {
            let ctx = serde_json::to_string(event)?;
            assert_eq!(event.client_name.as_deref(), Some(client), "{ctx}");
            assert_eq!(event.client_version.as_deref(), Some("1.0.0"), "{ctx}");
            assert_eq!(event.client_display_name.as_deref(), Some(display), "{ctx}");
            assert_eq!(user_of(event), Some("alice"), "{ctx}");
        }
        let calls: Vec<String> = of_session
            .iter()
            .filter(|e| e.method == "tools/call")
            .filter_map(|e| e.arguments_value()?["text"].as_str().map(String::from))
            .collect();
        assert_eq!(calls, texts.map(String::from), "{}", dump(&events));
    }

    // What follows is read on its own: a timed flush may deliver it at any moment.
    sink.take();
    // A session opened by hand, so that a request can reuse its id after DELETE.
    let (_, raw) = common::raw_initialize(&server.url, "2025-11-25", CLAUDE).await?;
    let raw = raw.context("a legacy stateful server opens a session")?;
    let call_in = |id: i64, session: String| {
        let url = server.url.clone();
        async move {
            let mut headers = common::legacy_headers("2025-11-25");
            headers.push(("mcp-session-id", session));
            headers.push(("user-agent", "Probe/2.0".to_owned()));
            let body = common::legacy_tools_call_body(id, "echo", json!({ "text": "x" }), None);
            common::raw_post_json(&url, &headers, &body).await
        }
    };
    assert_eq!(call_in(101, raw.clone()).await.status, 200);
    let deleted = common::raw_request(
        reqwest::Method::DELETE,
        &server.url,
        &[
            ("mcp-session-id", &raw),
            ("mcp-protocol-version", "2025-11-25"),
        ],
        Vec::new(),
    )
    .await;
    assert!(
        deleted.status < 300,
        "DELETE: {} {}",
        deleted.status,
        deleted.text()
    );
    assert_eq!(call_in(102, raw.clone()).await.status, 404);
    let (_, fresh) = common::raw_initialize(&server.url, "2025-11-25", CURSOR).await?;
    let fresh = fresh.context("a legacy stateful server opens a session")?;
    assert_ne!(fresh, raw);
    assert_eq!(call_in(103, fresh).await.status, 200);

    let events = delivered_again(&analytics, &sink).await?;
    let (live, stale, other) = (
        by_id(&events, 101)?,
        by_id(&events, 102)?,
        by_id(&events, 103)?,
    );
    assert_eq!(
        live.client_name.as_deref(),
        Some(CLAUDE),
        "{}",
        dump(&events)
    );
    assert_eq!(
        stale.client_name.as_deref(),
        Some("Probe"),
        "after DELETE the old initialize names nothing:\n{}",
        dump(&events)
    );
    assert_eq!(
        stale.session_id, live.session_id,
        "derived from the same header"
    );
    let live_session = live.session_id.as_deref().unwrap_or_default();
    assert!(
        is_session_id(live_session) && live_session != raw,
        "{}",
        dump(&events)
    );
    assert_eq!(
        other.client_name.as_deref(),
        Some(CURSOR),
        "{}",
        dump(&events)
    );
    assert_ne!(other.session_id, live.session_id);
    Ok(())
}

/// Like [`delivered`] for a sink that was emptied with `take` since the layer started.
async fn delivered_again(
    analytics: &AnalyticsLayer,
    sink: &MemorySink,
) -> anyhow::Result<Vec<Event>> {
    Ok(flushed(analytics, sink).await?.0)
}

// ---------------------------------------------------------------------------
// Identify events
// ---------------------------------------------------------------------------

/// An identify event goes out when a user is first seen and whenever their name or data
/// change, never for a repeat; it is counted as recorded and shares its call's session. The
/// hook runs once per request that produces events, and not for others.
#[tokio::test]
async fn identify_events_only_for_new_or_changed_users() -> anyhow::Result<()> {
    let sink = MemorySink::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let analytics = {
        let runs = Arc::clone(&runs);
        AnalyticsLayer::builder()
            .sink(sink.clone())
            .identify(move |request| {
                runs.fetch_add(1, Ordering::Relaxed);
                let mut user = UserIdentity::new(request.header(USER_HEADER)?);
                if let Some(name) = request.header("x-user-name") {
                    user = user.with_name(name);
                }
                if let Some(plan) = request.header("x-user-plan") {
                    user = user.with_data(json!({ "plan": plan }));
                }
                Some(user)
            })
            .build()
    };
    let alice = [(USER_HEADER, "alice"), ("x-user-name", "Alice")];
    let renamed = [(USER_HEADER, "alice"), ("x-user-name", "Alice L.")];
    let upgraded = [
        (USER_HEADER, "alice"),
        ("x-user-name", "Alice L."),
        ("x-user-plan", "pro"),
    ];
    let bob = [(USER_HEADER, "bob")];
    // (JSON-RPC id, headers, whether the request introduces a new or changed identity)
    let requests: [(u64, Headers<'_>, bool); 10] = [
        (1, &alice, true),
        (2, &alice, false),
        (3, &bob, true),
        (4, &alice, false),
        (5, &renamed, true),
        (6, &renamed, false),
        (7, &upgraded, true),
        (8, &upgraded, false),
        (9, &[], false),
        (10, &upgraded, false),
    ];
    for (id, headers, _) in requests {
        call(&analytics, headers, &tool_call_from(id, CLAUDE)).await?;
    }
    // A request that makes no event does not run the hook.
    let get = Request::get("/mcp")
        .header(USER_HEADER, "carol")
        .body(Full::new(Bytes::new()))?;
    analytics.layer(service_fn(answer)).oneshot(get).await?;
    let events = delivered(&analytics, &sink).await?;

    assert_eq!(runs.load(Ordering::Relaxed), requests.len());
    let identified: Vec<&Event> = identify_events(&events);
    let seen: Vec<(Option<&str>, Option<&str>, Option<&Value>)> = identified
        .iter()
        .map(|e| {
            let user = e.user.as_ref();
            (
                user.map(|u| u.id.as_str()),
                user.and_then(|u| u.name.as_deref()),
                user.and_then(|u| u.data.as_ref()),
            )
        })
        .collect();
    let pro = json!({ "plan": "pro" });
    assert_eq!(
        seen,
        [
            (Some("alice"), Some("Alice"), None),
            (Some("bob"), None, None),
            (Some("alice"), Some("Alice L."), None),
            (Some("alice"), Some("Alice L."), Some(&pro)),
        ],
        "{}",
        dump(&events)
    );
    let introduced: Vec<u64> = requests
        .iter()
        .filter(|(_, _, identifies)| *identifies)
        .map(|(id, _, _)| *id)
        .collect();
    for (identify, id) in identified.iter().zip(introduced) {
        let call = by_id(&events, id)?;
        let ctx = serde_json::to_string(identify)?;
        assert_eq!(identify.method, "identify", "{ctx}");
        assert!(!identify.is_error, "{ctx}");
        assert_eq!(identify.request_id, None, "{ctx}");
        assert_eq!(identify.user, call.user, "{ctx}");
        assert_eq!(identify.timestamp, call.timestamp, "{ctx}");
        assert_eq!(identify.client_name.as_deref(), Some(CLAUDE), "{ctx}");
        assert!(identify.session_id.is_some(), "{ctx}");
        assert_eq!(identify.session_id, call.session_id, "{ctx}");
    }
    assert_eq!(user_of(by_id(&events, 9)?), None);
    assert_eq!(events.len(), requests.len() + 4, "{}", dump(&events));
    assert_eq!(analytics.stats().recorded, (requests.len() + 4) as u64);
    Ok(())
}

// ---------------------------------------------------------------------------
// Bounded memory
// ---------------------------------------------------------------------------

/// 20,000 invented identities, each initializing a client, leave the session store at its
/// capacity of 1,000; the identity cache and the client directory stay bounded too: the
/// first user, long evicted, is new again (a second identify event) and is no longer
/// named by their `initialize`.
#[tokio::test]
async fn a_flood_of_identities_stays_at_capacity() -> anyhow::Result<()> {
    const CAPACITY: usize = 1000;
    const FLOOD: u64 = 20_000;
    let (clock, sink) = ten_oclock();
    let store = SharedStore(Arc::new(MemorySessionStore::with_capacity(CAPACITY)));
    let analytics = builder(&sink, &clock)
        .identity_capacity(CAPACITY)
        .session_store(store.clone())
        .build();

    let first = [(USER_HEADER, "first"), ("user-agent", "First/1.0")];
    call(&analytics, &first, &initialize(1, CLAUDE)).await?;
    call(&analytics, &first, &tool_call(2)).await?;
    let before = delivered(&analytics, &sink).await?;
    assert_eq!(
        by_id(&before, 2)?.client_name.as_deref(),
        Some(CLAUDE),
        "named by the initialize of the same user and User-Agent"
    );
    let first_session = session_of(&before, 2)?;
    sink.take();
    for n in 0..FLOOD {
        let user = format!("invented-{n}");
        let headers = [(USER_HEADER, user.as_str()), ("user-agent", "First/1.0")];
        call(&analytics, &headers, &initialize(1000 + n, CURSOR)).await?;
        if n % 500 == 499 {
            // Keep the queue short: the test is about the caps, not the queue.
            analytics.flush().await;
            sink.take();
        }
    }
    analytics.flush().await;
    assert!(store.0.len() <= CAPACITY, "{} groups", store.0.len());
    assert_eq!(store.0.len(), CAPACITY);
    sink.take();

    call(&analytics, &first, &tool_call_from(3, CLAUDE)).await?;
    call(&analytics, &first, &tool_call(4)).await?;
    let events = delivered_again(&analytics, &sink).await?;
    assert_eq!(
        by_id(&events, 4)?.client_name.as_deref(),
        Some("First"),
        "the directory forgot the first initialize:\n{}",
        dump(&events)
    );
    let identified = identify_events(&events);
    assert_eq!(identified.len(), 1, "{}", dump(&events));
    assert_eq!(user_of(identified[0]), Some("first"));
    assert_ne!(
        session_of(&events, 3)?,
        first_session,
        "the store forgot its group"
    );
    assert!(store.0.len() <= CAPACITY);
    let stats = analytics.stats();
    assert_eq!(stats.dropped.total(), 0, "{stats:?}");
    // `first`: 4 calls and 2 identify events; each invented user: 1 call, 1 identify event.
    assert_eq!(stats.recorded, 4 + 2 + 2 * FLOOD, "{stats:?}");
    Ok(())
}

// ---------------------------------------------------------------------------
// Panicking hooks
// ---------------------------------------------------------------------------

/// A panicking `identify` leaves the request untouched and its event anonymous (a session
/// of its own); a panicking `session_key` leaves the event grouped as if no key was given.
/// Both are counted.
#[tokio::test]
async fn panicking_hooks_are_caught_and_counted() -> anyhow::Result<()> {
    let sink = MemorySink::new();
    let analytics = AnalyticsLayer::builder()
        .sink(sink.clone())
        .identify(|request| {
            let user = request.header(USER_HEADER)?;
            if user == "boom" {
                panic!("identify hook failure (expected by the test)");
            }
            Some(UserIdentity::new(user))
        })
        .session_key(|request| {
            let key = request.header("x-conversation-id")?;
            if key == "boom" {
                panic!("session_key hook failure (expected by the test)");
            }
            Some(key.to_owned())
        })
        .build();
    let server = common::spawn(Mode::StatelessJson, |r| r.layer(analytics.clone())).await;
    let send = |id: i64, extra: &[(&'static str, &'static str)]| {
        let url = server.url.clone();
        let mut headers = common::modern_headers("tools/call", Some("echo"));
        headers.extend(extra.iter().map(|(n, v)| (*n, (*v).to_owned())));
        async move {
            let text = format!("call {id}");
            let body =
                common::modern_tools_call_body(id, "echo", json!({ "text": text }), CLAUDE, None);
            let response = common::raw_post_json(&url, &headers, &body).await;
            let message = response.response_message()?;
            ensure!(response.status == 200, "{}", response.text());
            ensure!(
                message["result"]["content"][0]["text"] == json!(text),
                "{message}"
            );
            Ok::<_, anyhow::Error>(())
        }
    };
    send(1, &[(USER_HEADER, "boom")]).await?;
    send(2, &[(USER_HEADER, "boom")]).await?;
    send(3, &[(USER_HEADER, "alice"), ("x-conversation-id", "boom")]).await?;
    send(4, &[(USER_HEADER, "alice")]).await?;
    send(5, &[(USER_HEADER, "alice"), ("x-conversation-id", "c-1")]).await?;
    let events = delivered(&analytics, &sink).await?;

    let stats = analytics.stats();
    assert_eq!(stats.hook_panics.identify, 2, "{stats:?}");
    assert_eq!(stats.hook_panics.session_key, 1, "{stats:?}");
    for id in [1, 2] {
        assert_eq!(user_of(by_id(&events, id)?), None, "{}", dump(&events));
    }
    assert_ne!(
        session_of(&events, 1)?,
        session_of(&events, 2)?,
        "anonymous"
    );
    assert_eq!(user_of(by_id(&events, 3)?), Some("alice"));
    assert_eq!(
        session_of(&events, 3)?,
        session_of(&events, 4)?,
        "grouped as if no key was given:\n{}",
        dump(&events)
    );
    assert_ne!(
        session_of(&events, 5)?,
        session_of(&events, 4)?,
        "a real key"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Session modes
// ---------------------------------------------------------------------------

/// Auto: an `Mcp-Session-Id` is the session (a derived id, never the raw value); without
/// one, the same user + client are grouped and anonymous events are alone.
#[tokio::test]
async fn auto_mode_uses_the_header_else_groups() -> anyhow::Result<()> {
    let (clock, sink) = ten_oclock();
    let analytics = builder(&sink, &clock).build();
    let (alice_a, alice_b) = (alice_in("raw-session-a"), alice_in("raw-session-b"));
    call_each(
        &analytics,
        &[
            (&alice_a, tool_call_from(1, CLAUDE)),
            (&alice_a, tool_call_from(2, CURSOR)),
            (&alice_b, tool_call_from(3, CLAUDE)),
            (ALICE, tool_call_from(4, CLAUDE)),
            (ALICE, tool_call_from(5, CLAUDE)),
            (&[], tool_call_from(6, CLAUDE)),
            (&[], tool_call_from(7, CLAUDE)),
        ],
    )
    .await?;
    let events = delivered(&analytics, &sink).await?;
    let s = |id| session_of(&events, id);
    assert_eq!(s(1)?, s(2)?, "one MCP session, whatever the client");
    assert_ne!(s(1)?, s(3)?);
    assert_eq!(s(4)?, s(5)?);
    assert!(![s(1)?, s(3)?].contains(&s(4)?));
    assert_ne!(s(6)?, s(7)?, "anonymous events are alone");
    for id in 1..=7 {
        let session = s(id)?;
        assert!(is_session_id(&session), "{session}");
        assert!(!session.contains("raw-session"), "{session}");
    }
    Ok(())
}

/// Stateless: the `Mcp-Session-Id` header is ignored; user + client decide.
#[tokio::test]
async fn stateless_mode_ignores_the_session_header() -> anyhow::Result<()> {
    let (clock, sink) = ten_oclock();
    let analytics = builder(&sink, &clock)
        .session_mode(SessionMode::Stateless)
        .build();
    let (alice_a, alice_b) = (alice_in("raw-session-a"), alice_in("raw-session-b"));
    call_each(
        &analytics,
        &[
            (&alice_a, tool_call_from(1, CLAUDE)),
            (&alice_b, tool_call_from(2, CLAUDE)),
            (ALICE, tool_call_from(3, CLAUDE)),
            (&alice_a, tool_call_from(4, CURSOR)),
        ],
    )
    .await?;
    let events = delivered(&analytics, &sink).await?;
    let s = |id| session_of(&events, id);
    assert_eq!(s(1)?, s(2)?, "{}", dump(&events));
    assert_eq!(s(1)?, s(3)?, "{}", dump(&events));
    assert_ne!(
        s(1)?,
        s(4)?,
        "same header, another client: {}",
        dump(&events)
    );

    // The session Auto mode derives from the header is not the one used here.
    let auto_sink = MemorySink::new();
    let auto = builder(&auto_sink, &clock).build();
    call(&auto, &alice_a, &tool_call_from(1, CLAUDE)).await?;
    let auto_events = delivered(&auto, &auto_sink).await?;
    assert_ne!(session_of(&auto_events, 1)?, s(1)?);
    assert_ne!(session_of(&auto_events, 1)?, s(4)?);
    Ok(())
}

/// Stateful: the header only; every event without it is a session of its own, even for
/// the same user and client.
#[tokio::test]
async fn stateful_mode_isolates_events_without_the_header() -> anyhow::Result<()> {
    let (clock, sink) = ten_oclock();
    let analytics = builder(&sink, &clock)
        .session_mode(SessionMode::Stateful)
        .build();
    let with_header = alice_in("raw-session-a");
    call_each(
        &analytics,
        &[
            (ALICE, tool_call_from(1, CLAUDE)),
            (ALICE, tool_call_from(2, CLAUDE)),
            (&with_header, tool_call_from(3, CLAUDE)),
            (&with_header, tool_call_from(4, CLAUDE)),
        ],
    )
    .await?;
    let events = delivered(&analytics, &sink).await?;
    let s = |id| session_of(&events, id);
    assert_ne!(s(1)?, s(2)?, "{}", dump(&events));
    assert_eq!(s(3)?, s(4)?, "{}", dump(&events));
    assert!(![s(1)?, s(2)?].contains(&s(3)?));
    Ok(())
}

/// Backend: no `session_id` on any event (header, key, grouping or identify alike), while
/// user and client are still on every one.
#[tokio::test]
async fn backend_mode_leaves_sessions_empty_but_keeps_user_and_client() -> anyhow::Result<()> {
    let (clock, sink) = ten_oclock();
    let analytics = builder(&sink, &clock)
        .session_mode(SessionMode::Backend)
        .session_key(|request| request.header("x-conversation-id").map(String::from))
        .build();
    call_each(
        &analytics,
        &[
            (ALICE, tool_call_from(1, CLAUDE)),
            (&alice_in("raw-session-a"), tool_call_from(2, CLAUDE)),
            (
                &[(USER_HEADER, "bob"), ("x-conversation-id", "c-1")],
                tool_call_from(3, CURSOR),
            ),
        ],
    )
    .await?;
    let events = delivered(&analytics, &sink).await?;
    assert_eq!(events.len(), 3 + 2, "{}", dump(&events));
    for event in &events {
        let ctx = serde_json::to_string(event)?;
        assert_eq!(event.session_id, None, "{ctx}");
        assert!(event.user.is_some(), "{ctx}");
        assert!(event.client_name.is_some(), "{ctx}");
    }
    assert_eq!(
        by_id(&events, 3)?.client_display_name.as_deref(),
        Some("Cursor")
    );
    Ok(())
}

/// A `session_key` decides the session, whoever the user and client: the same key gives
/// the same id on two layer instances (another process, in production); another key,
/// another session; no key, the usual grouping.
#[tokio::test]
async fn session_key_is_deterministic_across_instances() -> anyhow::Result<()> {
    let clock = ManualClock::new(at(10, 0));
    let layer = |sink: &MemorySink| {
        builder(sink, &clock)
            .session_key(|request| request.header("x-conversation-id").map(String::from))
            .build()
    };
    let (one_sink, two_sink) = (MemorySink::new(), MemorySink::new());
    let (one, two) = (layer(&one_sink), layer(&two_sink));
    let keyed =
        |user: &'static str, key: &'static str| [(USER_HEADER, user), ("x-conversation-id", key)];
    call_each(
        &one,
        &[
            (&keyed("alice", "c-1"), tool_call_from(1, CLAUDE)),
            (&keyed("bob", "c-1"), tool_call_from(2, CURSOR)),
            (&keyed("alice", "c-2"), tool_call_from(3, CLAUDE)),
            (ALICE, tool_call_from(4, CLAUDE)),
        ],
    )
    .await?;
    clock.set(at(18, 0));
    call_each(
        &two,
        &[
            (&keyed("carol", "c-1"), tool_call_from(5, CURSOR)),
            (&keyed("alice", "c-2"), tool_call_from(6, CLAUDE)),
        ],
    )
    .await?;
    let first = delivered(&one, &one_sink).await?;
    let second = delivered(&two, &two_sink).await?;
    let (s1, s2, s3, s4) = (
        session_of(&first, 1)?,
        session_of(&first, 2)?,
        session_of(&first, 3)?,
        session_of(&first, 4)?,
    );
    assert_eq!(s1, s2, "the key decides, not the user");
    assert_ne!(s1, s3);
    assert!(![s1.as_str(), s3.as_str()].contains(&s4.as_str()));
    assert_eq!(
        session_of(&second, 5)?,
        s1,
        "same key, another instance, hours later"
    );
    assert_eq!(session_of(&second, 6)?, s3);
    assert!(is_session_id(&s1) && !s1.contains("c-1"), "{s1}");
    Ok(())
}

// ---------------------------------------------------------------------------
// Failing session store
// ---------------------------------------------------------------------------

/// A store that fails (or answers the wrong number of sessions) costs each batch its shared
/// decision, counted per batch, and nothing else: every event is delivered, grouped by the
/// same rule in memory, and MCP sessions and anonymous events keep their ids.
#[tokio::test]
async fn a_failing_store_costs_grouped_events_their_session_only() -> anyhow::Result<()> {
    for (label, failing) in [("failing", true), ("forgetful", false)] {
        let (clock, sink) = ten_oclock();
        let analytics = if failing {
            builder(&sink, &clock).session_store(FailingStore).build()
        } else {
            builder(&sink, &clock).session_store(ForgetfulStore).build()
        };
        let requests: [(u64, Headers<'_>); 5] = [
            (1, ALICE),
            (2, &alice_in("raw-session-a")),
            (3, &[]),
            (4, ALICE),
            (5, &[(USER_HEADER, "bob")]),
        ];
        for (id, headers) in requests {
            call(&analytics, headers, &tool_call_from(id, CLAUDE)).await?;
            // One batch per request, so that the failures can be counted exactly.
            analytics.flush().await;
        }
        let events = delivered(&analytics, &sink).await?;
        assert_eq!(events.len(), 5 + 2, "{label}:\n{}", dump(&events));
        assert_eq!(
            session_of(&events, 1)?,
            session_of(&events, 4)?,
            "{label}: alice's calls are grouped in memory"
        );
        assert_ne!(
            session_of(&events, 1)?,
            session_of(&events, 5)?,
            "{label}: bob has his own"
        );
        assert!(
            session_of(&events, 2).is_ok(),
            "{label}: the MCP session stays"
        );
        assert!(
            session_of(&events, 3).is_ok(),
            "{label}: the anonymous session stays"
        );
        for identify in identify_events(&events) {
            let user = identify.user.as_ref().map(|user| user.id.as_str());
            let call = if user == Some("bob") { 5 } else { 1 };
            assert_eq!(
                identify.session_id,
                Some(session_of(&events, call)?),
                "{label}: shares its call's session"
            );
        }
        assert_eq!(analytics.stats().session_store_errors, 3, "{label}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Client ladder on raw requests
// ---------------------------------------------------------------------------

/// The ladder, first hit wins: `_meta` clientInfo; the user's `initialize` with the same
/// User-Agent within the inactivity window; `x-mcp-client-name` / `-version`; the
/// User-Agent's `Name/Version`. Display names for well-known clients only.
#[tokio::test]
async fn client_ladder_on_raw_requests() -> anyhow::Result<()> {
    let (clock, sink) = ten_oclock();
    let analytics = builder(&sink, &clock).build();
    let header_named = [
        ("x-mcp-client-name", "cursor-vscode"),
        ("x-mcp-client-version", "1.2"),
        ("user-agent", "curl/8.0"),
    ];
    call_each(
        &analytics,
        &[
            (&header_named, tool_call(1)),
            (&[("user-agent", "Claude/0.9 (darwin)")], tool_call(2)),
            (&[("x-mcp-client-name", "other")], tool_call_from(3, CLAUDE)),
            (&[], tool_call(4)),
            (&[("x-mcp-client-name", "in-house")], tool_call(5)),
        ],
    )
    .await?;

    // Legacy stateless: alice's initialize names her later requests with that User-Agent.
    let alice = [(USER_HEADER, "alice"), ("user-agent", "Desktop/3.1")];
    let alice_with_header = [
        (USER_HEADER, "alice"),
        ("user-agent", "Desktop/3.1"),
        ("x-mcp-client-name", "header-named"),
    ];
    call(&analytics, &alice, &initialize(10, CLAUDE)).await?;
    clock.set(at(10, 20));
    call_each(
        &analytics,
        &[
            (&alice_with_header, tool_call(11)),
            (
                &[(USER_HEADER, "alice"), ("user-agent", "Other/1.0")],
                tool_call(12),
            ),
            (
                &[(USER_HEADER, "bob"), ("user-agent", "Desktop/3.1")],
                tool_call(13),
            ),
            (&[("user-agent", "Desktop/3.1")], tool_call(14)),
        ],
    )
    .await?;
    clock.set(at(10, 51));
    call(&analytics, &alice_with_header, &tool_call(15)).await?;
    let events = delivered(&analytics, &sink).await?;

    let client = |id| -> anyhow::Result<(Option<String>, Option<String>, Option<String>)> {
        let event = by_id(&events, id)?;
        Ok((
            event.client_name.clone(),
            event.client_version.clone(),
            event.client_display_name.clone(),
        ))
    };
    let named = |name: &str, version: Option<&str>, display: Option<&str>| {
        (
            Some(name.to_owned()),
            version.map(String::from),
            display.map(String::from),
        )
    };
    assert_eq!(
        client(1)?,
        named(CURSOR, Some("1.2"), Some("Cursor")),
        "headers over User-Agent"
    );
    assert_eq!(client(2)?, named("Claude", Some("0.9"), None), "User-Agent");
    assert_eq!(
        client(3)?,
        named(CLAUDE, Some("1.0.0"), Some("Claude Desktop")),
        "_meta over headers"
    );
    assert_eq!(client(4)?, (None, None, None), "no clue at all");
    assert_eq!(
        client(5)?,
        named("in-house", None, None),
        "a name without a version"
    );
    assert_eq!(
        client(10)?,
        named(CLAUDE, Some("1.0.0"), Some("Claude Desktop")),
        "initialize params"
    );
    assert_eq!(
        client(11)?,
        named(CLAUDE, Some("1.0.0"), Some("Claude Desktop")),
        "the user's initialize over headers, 20 minutes later"
    );
    assert_eq!(
        client(12)?,
        named("Other", Some("1.0"), None),
        "another User-Agent"
    );
    assert_eq!(
        client(13)?,
        named("Desktop", Some("3.1"), None),
        "another user"
    );
    assert_eq!(
        client(14)?,
        named("Desktop", Some("3.1"), None),
        "anonymous"
    );
    assert_eq!(
        client(15)?,
        named("header-named", None, None),
        "31 idle minutes: past the window"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// The window counts from arrival
// ---------------------------------------------------------------------------

/// The window is inclusive: a call exactly one window after the pair's previous call
/// continues the session, a second later starts a new one. 30 minutes by default,
/// `inactivity_window` changes it.
#[tokio::test]
async fn the_window_is_inclusive_and_configurable() -> anyhow::Result<()> {
    for (configured, minutes) in [(false, 30), (true, 5)] {
        let (clock, sink) = ten_oclock();
        let mut layer = builder(&sink, &clock);
        if configured {
            layer = layer.inactivity_window(Duration::from_secs(minutes * 60));
        }
        let analytics = layer.build();
        call(&analytics, ALICE, &tool_call_from(1, CLAUDE)).await?;
        clock.set(at(10, minutes));
        call(&analytics, ALICE, &tool_call_from(2, CLAUDE)).await?;
        clock.set(at(10, 2 * minutes) + Duration::from_secs(1));
        call(&analytics, ALICE, &tool_call_from(3, CLAUDE)).await?;
        let events = delivered(&analytics, &sink).await?;
        let s = |id| session_of(&events, id);
        assert_eq!(s(1)?, s(2)?, "{minutes} min later:\n{}", dump(&events));
        assert_ne!(s(2)?, s(3)?, "{minutes} min 1 s later:\n{}", dump(&events));
    }
    Ok(())
}

/// The in-process stand-in, except that a request carrying `x-hold` reports its arrival
/// on `arrived` and waits for a permit of `release` before it is answered.
fn held_answer(
    arrived: mpsc::UnboundedSender<()>,
    release: Arc<Semaphore>,
) -> impl Service<
    Request<ReplayBody<Full<Bytes>>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future: Send,
> + Clone
+ Send
+ 'static {
    service_fn(move |request: Request<ReplayBody<Full<Bytes>>>| {
        let arrived = arrived.clone();
        let release = Arc::clone(&release);
        async move {
            if request.headers().contains_key("x-hold") {
                let _ = arrived.send(());
                // The semaphore is never closed, so this waits for the test's permit.
                if let Ok(permit) = release.acquire().await {
                    permit.forget();
                }
            }
            answer(request).await
        }
    })
}

/// Starts a held POST (see [`held_answer`]) through `service`, reading its whole response
/// once released, and waits until it has arrived.
async fn start_held<S>(
    service: &S,
    arrived: &mut mpsc::UnboundedReceiver<()>,
    headers: &[(&str, &str)],
    body: &Value,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>>
where
    S: Service<
            Request<Full<Bytes>>,
            Response = Response<ObservedBody<Full<Bytes>>>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let pending = service.clone().oneshot(post_request(headers, body)?);
    let task = tokio::spawn(async move {
        let response = pending.await?;
        response.into_body().collect().await?;
        Ok(())
    });
    tokio::time::timeout(WAIT, arrived.recv())
        .await
        .context("the held request arrives")?
        .context("the responder is alive")?;
    Ok(task)
}

/// A request's place in the window is its arrival: a call that arrives at 10:00 and is
/// answered when the clock reads 10:20 still leaves the next call, at 10:31, past the
/// 30-minute window (and its event carries its arrival time).
#[tokio::test]
async fn the_window_counts_from_arrival() -> anyhow::Result<()> {
    let (clock, sink) = ten_oclock();
    let analytics = builder(&sink, &clock).build();
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    let service = analytics.layer(held_answer(arrived_tx, Arc::clone(&release)));

    let held = [(USER_HEADER, "alice"), ("x-hold", "1")];
    let slow = start_held(&service, &mut arrived, &held, &tool_call_from(1, CLAUDE)).await?;
    clock.set(at(10, 20));
    release.add_permits(1);
    tokio::time::timeout(WAIT, slow)
        .await
        .context("released")???;
    clock.set(at(10, 31));
    call(&analytics, ALICE, &tool_call_from(2, CLAUDE)).await?;
    let events = delivered(&analytics, &sink).await?;
    assert_eq!(by_id(&events, 1)?.timestamp, "2026-11-22T10:00:00.000Z");
    assert_eq!(by_id(&events, 2)?.timestamp, "2026-11-22T10:31:00.000Z");
    assert_ne!(
        session_of(&events, 1)?,
        session_of(&events, 2)?,
        "{}",
        dump(&events)
    );
    Ok(())
}

/// Three calls of one user and client: A at 10:00, B at 10:29 (still running), C at 10:50;
/// C finishes before B. Each arrives within 30 minutes of the previous one, so by the rule
/// (the window counts from arrival) they form one session, although the three exchanges
/// reach the worker in the order they finished (A, C, B): the store is asked in arrival
/// order.
#[tokio::test]
async fn a_long_call_finishing_after_a_later_one_stays_in_the_session() -> anyhow::Result<()> {
    let (clock, sink) = ten_oclock();
    // One batch: the worker only looks at the queue on `flush`.
    let analytics = builder(&sink, &clock)
        .flush_interval(Duration::from_secs(3600))
        .build();
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    let service = analytics.layer(held_answer(arrived_tx, Arc::clone(&release)));

    call(&analytics, ALICE, &tool_call_from(1, CLAUDE)).await?;
    clock.set(at(10, 29));
    let held = [(USER_HEADER, "alice"), ("x-hold", "1")];
    let slow = start_held(&service, &mut arrived, &held, &tool_call_from(2, CLAUDE)).await?;
    clock.set(at(10, 50));
    call(&analytics, ALICE, &tool_call_from(3, CLAUDE)).await?;
    release.add_permits(1);
    tokio::time::timeout(WAIT, slow)
        .await
        .context("released")???;
    let events = delivered(&analytics, &sink).await?;
    let s = |id| session_of(&events, id);
    assert_eq!(s(2)?, s(3)?, "{}", dump(&events));
    assert_eq!(
        s(1)?,
        s(2)?,
        "B arrived 29 minutes after A:\n{}",
        dump(&events)
    );
    Ok(())
}

/// A DELETE that the worker takes in before the session's last events are enriched does
/// not take the session's client away from them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_does_not_take_the_client_from_events_still_in_the_worker() -> anyhow::Result<()> {
    let sink = MemorySink::new();
    let layer = AnalyticsLayer::builder()
        .sink(sink.clone())
        .flush_interval(Duration::from_secs(30))
        .build();
    let wrap = layer.clone();
    let server = common::spawn(Mode::LegacyStateful, move |router| router.layer(wrap)).await;
    let (_, session) = common::raw_initialize(&server.url, "2025-11-25", "claude-ai").await?;
    let session = session.context("a session")?;
    layer.flush().await;
    let mut headers = common::legacy_headers("2025-11-25");
    headers.push(("mcp-session-id", session));
    let call = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": { "name": "echo", "arguments": { "text": "hi" } }
    });
    assert_eq!(
        common::raw_post_json(&server.url, &headers, &call)
            .await
            .status,
        200
    );
    let refs = common::header_refs(&headers);
    let deleted =
        common::raw_request(reqwest::Method::DELETE, &server.url, &refs, Vec::new()).await;
    assert!(deleted.status < 300, "{}", deleted.status);
    layer.flush().await;
    let events = sink.events();
    let echo = events
        .iter()
        .find(|e| e.method == "tools/call")
        .context("the call")?;
    ensure!(echo.client_name.as_deref() == Some("claude-ai"), "{echo:?}");
    Ok(())
}
