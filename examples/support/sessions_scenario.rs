//! The sessions scenario: who called, from which AI client, at what time, and which
//! session each call landed in.
//!
//! Shared by `examples/sessions_demo.rs` (which prints the table) and `tests/sessions.rs`
//! (which asserts it). It is not an example on its own: include it with
//! `#[path = "support/sessions_scenario.rs"] mod sessions_scenario;` (from `examples/`) or
//! `#[path = "../examples/support/sessions_scenario.rs"] mod sessions_scenario;` (from
//! `tests/`).
//!
//! The layer identifies users by their `x-user-id` header and stamps requests with a
//! manual clock, so that an hour of traffic runs in a moment. Each step is one
//! 2026-07-28 `tools/call` naming its client in `_meta` clientInfo, POSTed to a real MCP
//! server behind the layer:
//!
//! | time  | user      | client         | session                              |
//! |-------|-----------|----------------|--------------------------------------|
//! | 10:00 | alice     | Claude Desktop | S1                                   |
//! | 10:02 | bob       | Cursor         | S2                                   |
//! | 10:15 | alice     | Claude Desktop | S1 (15 minutes after alice's last)   |
//! | 10:20 | alice     | Cursor         | S3 (another client)                  |
//! | 10:55 | alice     | Claude Desktop | S4 (40 minutes after 10:15)          |
//! | 10:56 | anonymous | Claude Desktop | S5 (anonymous: a session of its own) |

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tower_mcp_analytics::{AnalyticsLayer, Event, MemorySink, identity};

/// 2026-11-22 00:00:00 UTC, the day the scenario happens.
const DAY: u64 = 1_795_305_600;

/// The `identify` header of the scenario.
pub const USER_HEADER: &str = "x-user-id";

/// A wall clock that only moves when told to, shared by the layer and the scenario.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<Mutex<SystemTime>>);

impl ManualClock {
    /// A clock reading `time`.
    pub fn new(time: SystemTime) -> Self {
        Self(Arc::new(Mutex::new(time)))
    }

    /// Moves the clock to `time` (forwards or backwards).
    pub fn set(&self, time: SystemTime) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = time;
    }

    /// What the clock reads.
    pub fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A function reading this clock, for the layer builder's `clock`.
    pub fn reader(&self) -> impl Fn() -> SystemTime + Send + Sync + 'static {
        let clock = self.clone();
        move || clock.now()
    }
}

/// `hour:minute` UTC on the scenario's day.
pub fn at(hour: u64, minute: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(DAY + hour * 3600 + minute * 60)
}

/// One call of the scenario.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    /// Hour of the call (UTC).
    pub hour: u64,
    /// Minute of the call.
    pub minute: u64,
    /// The `x-user-id` header; `None` for an anonymous call.
    pub user: Option<&'static str>,
    /// The client's self-reported name, sent as 2026-07-28 `_meta` clientInfo.
    pub client: &'static str,
    /// Why the call lands in the session it does.
    pub note: &'static str,
}

/// Claude Desktop's self-reported name.
pub const CLAUDE: &str = "claude-ai";
/// Cursor's self-reported name.
pub const CURSOR: &str = "cursor-vscode";

/// The calls, in time order.
pub const STEPS: [Step; 6] = [
    Step {
        hour: 10,
        minute: 0,
        user: Some("alice"),
        client: CLAUDE,
        note: "alice's first call",
    },
    Step {
        hour: 10,
        minute: 2,
        user: Some("bob"),
        client: CURSOR,
        note: "another user",
    },
    Step {
        hour: 10,
        minute: 15,
        user: Some("alice"),
        client: CLAUDE,
        note: "15 min after alice's last Claude Desktop call: same session",
    },
    Step {
        hour: 10,
        minute: 20,
        user: Some("alice"),
        client: CURSOR,
        note: "another client: another session",
    },
    Step {
        hour: 10,
        minute: 55,
        user: Some("alice"),
        client: CLAUDE,
        note: "40 min after 10:15, past the 30 min window: new session",
    },
    Step {
        hour: 10,
        minute: 56,
        user: None,
        client: CLAUDE,
        note: "anonymous: a session of its own",
    },
];

/// The scenario's layer: users from `x-user-id`, requests stamped by `clock`, events into
/// `sink`, default session rules (Auto mode, 30-minute inactivity window).
pub fn analytics_layer(clock: &ManualClock, sink: &MemorySink) -> AnalyticsLayer {
    AnalyticsLayer::builder()
        .sink(sink.clone())
        .identify(identity::from_header(USER_HEADER))
        .clock(clock.reader())
        .build()
}

/// One line of the table: a step's `tools/call` event and its session label.
#[derive(Clone, Debug)]
pub struct Row {
    /// `HH:MM`, read from the event's timestamp.
    pub time: String,
    /// The event's user id, or `anonymous`.
    pub user: String,
    /// The event's client display name (its raw name when it has none).
    pub client: String,
    /// `S1`, `S2`, ... in order of first use.
    pub label: String,
    /// The event's raw `session_id`.
    pub session_id: String,
    /// Why the call lands in that session.
    pub note: &'static str,
}

/// Runs every step against the MCP endpoint at `url` (served behind `analytics`), then
/// reads the steps' `tools/call` events back from `sink` as table rows, in step order.
pub async fn run(
    url: &str,
    clock: &ManualClock,
    analytics: &AnalyticsLayer,
    sink: &MemorySink,
) -> anyhow::Result<Vec<Row>> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    for (index, step) in STEPS.iter().enumerate() {
        clock.set(at(step.hour, step.minute));
        call_echo(&http, url, index as u64, step.user, step.client).await?;
    }
    analytics.flush().await;
    rows(&sink.events())
}

/// One 2026-07-28 `tools/call echo` to `url`, JSON-RPC id `id`, from `client` (its
/// self-reported name in `_meta` clientInfo) for `user` (the `x-user-id` header; `None`
/// for an anonymous call). Fails unless the answer is a success that echoes the call.
pub async fn call_echo(
    http: &reqwest::Client,
    url: &str,
    id: u64,
    user: Option<&str>,
    client: &str,
) -> anyhow::Result<()> {
    let text = format!("call {id}");
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": {
            "name": "echo",
            "arguments": { "text": text },
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": { "name": client, "version": "1.0.0" },
                "io.modelcontextprotocol/clientCapabilities": {}
            }
        }
    });
    let mut request = http
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "echo")
        .body(body.to_string());
    if let Some(user) = user {
        request = request.header(USER_HEADER, user);
    }
    let response = request.send().await?;
    let status = response.status();
    let answer = response.text().await?;
    if !status.is_success() || !answer.contains(&text) {
        bail!("call {id} ({client} for {user:?}) got {status}: {answer}");
    }
    Ok(())
}

/// The rows of the steps' `tools/call` events (found by JSON-RPC id), labelled by first use.
pub fn rows(events: &[Event]) -> anyhow::Result<Vec<Row>> {
    let mut labels: Vec<String> = Vec::new();
    let mut rows = Vec::with_capacity(STEPS.len());
    for (index, step) in STEPS.iter().enumerate() {
        let event = events
            .iter()
            .find(|e| e.method == "tools/call" && e.request_id == Some(Value::from(index)))
            .with_context(|| format!("no tools/call event for step {index}"))?;
        let session_id = event
            .session_id
            .clone()
            .with_context(|| format!("step {index} has no session: {event:?}"))?;
        let position = match labels.iter().position(|known| *known == session_id) {
            Some(position) => position,
            None => {
                labels.push(session_id.clone());
                labels.len() - 1
            }
        };
        rows.push(Row {
            time: time_label(event),
            user: user_label(event),
            client: client_label(event),
            label: format!("S{}", position + 1),
            session_id,
            note: step.note,
        });
    }
    Ok(rows)
}

/// `HH:MM`, read from an event's timestamp.
pub fn time_label(event: &Event) -> String {
    event.timestamp.get(11..16).unwrap_or("?").to_owned()
}

/// An event's user id, or `anonymous`.
pub fn user_label(event: &Event) -> String {
    event
        .user
        .as_ref()
        .map_or_else(|| "anonymous".to_owned(), |user| user.id.clone())
}

/// An event's client display name, its raw name when it has none, or `?`.
pub fn client_label(event: &Event) -> String {
    event
        .client_display_name
        .clone()
        .or_else(|| event.client_name.clone())
        .unwrap_or_else(|| "?".to_owned())
}

/// The rows as an aligned text table.
pub fn render(rows: &[Row]) -> String {
    let mut table = format!(
        "{:<6} {:<10} {:<15} {:<8} {:<32} {}\n",
        "time", "user", "client", "session", "session_id", "why"
    );
    for row in rows {
        // Writing to a String cannot fail.
        let _ = writeln!(
            table,
            "{:<6} {:<10} {:<15} {:<8} {:<32} {}",
            row.time, row.user, row.client, row.label, row.session_id, row.note
        );
    }
    table
}
