//! The dashboard in a real browser: a collector seeded over HTTP, every view loaded in
//! headless Chromium, and assertions on the rendered DOM.
//!
//! - the tools table, the overview's cards and a session timeline equal the seed's truth,
//!   computed here independently, and the charts render their series as SVG;
//! - the sessions scenario (alice/Claude Desktop 10:00 and 10:15 → S1, bob/Cursor 10:02 →
//!   S2, alice/Cursor 10:20 → S3, alice/Claude Desktop 10:55 → S4, anonymous → its own),
//!   produced by the real layer in `SessionMode::Backend` in front of a real MCP server
//!   and delivered to the collector newest first, shows as those sessions;
//! - hostile names, arguments and results render as text and run no script;
//! - the tools page's insights (advertised but never called, unknown tools called, what
//!   agents asked for) list what the seed says, hostile tool names as text, with sensible
//!   empty states; and the same from the real layer in front of the demo server.

#[path = "support/browser.rs"]
mod browser;
#[path = "../../examples/support/demo_server.rs"]
mod demo_server;
#[path = "../../examples/support/sessions_scenario.rs"]
#[allow(dead_code)]
mod sessions_scenario;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use mcp_analytics_collector::Collector;
use serde_json::{Value, json};
use tower_mcp_analytics::{AnalyticsLayer, MemorySink, SessionMode, identity};

/// A collector on a loopback port, with a temporary database, stopped when dropped.
struct Running {
    base: String,
    _dir: TempDir,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "collector-dashboard-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos())
        ));
        let _ = std::fs::create_dir_all(&path);
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start(name: &str) -> anyhow::Result<Running> {
    let dir = TempDir::new(name);
    let collector = Collector::builder()
        .database(dir.0.join("analytics.db"))
        .build()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(collector.serve(listener, std::future::pending()));
    Ok(Running {
        base,
        _dir: dir,
        task,
    })
}

/// POSTs `events` as one v1 batch; fails unless every one is stored.
async fn post(base: &str, batch_id: &str, events: &[Value]) -> anyhow::Result<()> {
    let body = json!({
        "schema": "tower-mcp-analytics/v1",
        "batch_id": batch_id,
        "sent_at": "2026-11-30T12:00:00.000Z",
        "events": events,
    });
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/events"))
        .json(&body)
        .send()
        .await?;
    let status = response.status();
    let answer: Value = response.json().await?;
    ensure!(status.is_success(), "{status}: {answer}");
    ensure!(answer["stored"] == events.len(), "{answer}");
    Ok(())
}

/// The page at `base` + `hash`, rendered by Chromium, once the view says it is ready.
fn render(base: &str, hash: &str, view: &str) -> anyhow::Result<String> {
    let url = format!("{base}/{hash}");
    let dom = browser::dump_dom(&url);
    let body = body_tag(&dom).with_context(|| format!("no <body> rendering {url}"))?;
    ensure!(
        body.contains(&format!("data-ready=\"{view}\"")),
        "{url} did not render as {view}: {body}\n{}",
        &dom[..dom.len().min(4000)]
    );
    Ok(dom)
}

fn body_tag(dom: &str) -> Option<&str> {
    let start = dom.find("<body")?;
    let end = dom[start..].find('>')? + start;
    Some(&dom[start..=end])
}

/// The `<tr>` of `table` whose `data-row` is `key`.
fn row<'a>(dom: &'a str, table: &str, key: &str) -> anyhow::Result<&'a str> {
    let table_at = dom
        .find(&format!("data-table=\"{table}\""))
        .with_context(|| format!("no table {table}"))?;
    let rest = &dom[table_at..];
    let rest = &rest[..rest.find("</table>").unwrap_or(rest.len())];
    let start = rest
        .find(&format!("data-row=\"{key}\""))
        .with_context(|| format!("no row {key} in {table}"))?;
    let row = &rest[start..];
    Ok(&row[..row.find("</tr>").unwrap_or(row.len())])
}

/// The `data-value` of the cell (or element) marked `data-col="col"` in `html`.
fn cell(html: &str, col: &str) -> anyhow::Result<String> {
    let at = html
        .find(&format!("data-col=\"{col}\""))
        .with_context(|| format!("no {col} in {html}"))?;
    let tag_start = html[..at].rfind('<').unwrap_or(0);
    let tag = &html[tag_start..at + html[at..].find('>').unwrap_or(html.len() - at)];
    let value_at = tag
        .find("data-value=\"")
        .with_context(|| format!("{col} has no data-value: {tag}"))?
        + "data-value=\"".len();
    let value = &tag[value_at..];
    Ok(unescape(&value[..value.find('"').unwrap_or(value.len())]))
}

/// The text of the element marked `data-col="col"` in `html` (tags stripped).
fn text(html: &str, col: &str) -> anyhow::Result<String> {
    let at = html
        .find(&format!("data-col=\"{col}\""))
        .with_context(|| format!("no {col} in {html}"))?;
    let open_end = at + html[at..].find('>').context("unclosed tag")? + 1;
    let close = open_end + html[open_end..].find("</").context("no closing tag")?;
    // Drop the opening tags of nested elements (a badge inside the cell).
    let mut inner = String::new();
    let mut in_tag = false;
    for c in html[open_end..close].chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if !in_tag => inner.push(c),
            _ => {}
        }
    }
    Ok(unescape(&inner))
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

fn number(value: &str) -> anyhow::Result<f64> {
    value
        .parse()
        .with_context(|| format!("{value:?} is not a number"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

// ---------------------------------------------------------------------------------------
// The seed: three layer sessions on 2026-11-30, thirteen tool calls over three tools.

/// `10:MM:SS` on 2026-11-30 as RFC 3339.
fn time(minute: u32, second: u32) -> String {
    format!("2026-11-30T10:{minute:02}:{second:02}.000Z")
}

struct Seeded {
    id: &'static str,
    session: &'static str,
    user: &'static str,
    client: (&'static str, &'static str),
    at: (u32, u32),
    method: &'static str,
    tool: Option<&'static str>,
    outcome: &'static str,
    duration_ms: f64,
}

const CLAUDE: (&str, &str) = ("claude-ai", "Claude Desktop");
const CURSOR: (&str, &str) = ("cursor-vscode", "Cursor");

fn seeded(
    id: &'static str,
    session: &'static str,
    user: &'static str,
    client: (&'static str, &'static str),
    at: (u32, u32),
    call: (&'static str, Option<&'static str>, &'static str, f64),
) -> Seeded {
    Seeded {
        id,
        session,
        user,
        client,
        at,
        method: call.0,
        tool: call.1,
        outcome: call.2,
        duration_ms: call.3,
    }
}

fn seed() -> Vec<Seeded> {
    let call = |tool, outcome, ms| ("tools/call", Some(tool), outcome, ms);
    vec![
        seeded(
            "e01",
            "ses_alpha",
            "alice",
            CLAUDE,
            (0, 0),
            ("initialize", None, "success", 3.0),
        ),
        seeded(
            "e02",
            "ses_alpha",
            "alice",
            CLAUDE,
            (0, 1),
            ("tools/list", None, "success", 2.0),
        ),
        seeded(
            "e03",
            "ses_alpha",
            "alice",
            CLAUDE,
            (0, 5),
            call("search", "success", 5.0),
        ),
        seeded(
            "e04",
            "ses_alpha",
            "alice",
            CLAUDE,
            (0, 9),
            call("search", "tool_error", 10.0),
        ),
        seeded(
            "e05",
            "ses_alpha",
            "alice",
            CLAUDE,
            (0, 20),
            call("fetch", "success", 50.0),
        ),
        seeded(
            "e06",
            "ses_alpha",
            "alice",
            CLAUDE,
            (1, 0),
            call("write", "success", 3.0),
        ),
        seeded(
            "e07",
            "ses_beta",
            "bob",
            CURSOR,
            (5, 0),
            call("search", "success", 15.0),
        ),
        seeded(
            "e08",
            "ses_beta",
            "bob",
            CURSOR,
            (5, 10),
            call("search", "tool_error", 20.0),
        ),
        seeded(
            "e09",
            "ses_beta",
            "bob",
            CURSOR,
            (5, 20),
            call("fetch", "error", 60.0),
        ),
        seeded(
            "e10",
            "ses_beta",
            "bob",
            CURSOR,
            (5, 30),
            call("write", "success", 4.0),
        ),
        seeded(
            "e11",
            "ses_gamma",
            "carol",
            CLAUDE,
            (30, 0),
            call("search", "success", 25.0),
        ),
        seeded(
            "e12",
            "ses_gamma",
            "carol",
            CLAUDE,
            (31, 0),
            call("search", "success", 30.0),
        ),
        seeded(
            "e13",
            "ses_gamma",
            "carol",
            CLAUDE,
            (32, 0),
            call("fetch", "success", 70.0),
        ),
        seeded(
            "e14",
            "ses_gamma",
            "carol",
            CLAUDE,
            (33, 0),
            call("fetch", "success", 80.0),
        ),
        seeded(
            "e15",
            "ses_gamma",
            "carol",
            CLAUDE,
            (34, 0),
            call("search", "success", 200.0),
        ),
    ]
}

fn is_error(outcome: &str) -> bool {
    !matches!(outcome, "success" | "accepted" | "input_required")
}

fn to_json(event: &Seeded) -> Value {
    let mut json = json!({
        "id": event.id,
        "event_type": format!("mcp:{}", event.method),
        "timestamp": time(event.at.0, event.at.1),
        "duration_ms": event.duration_ms,
        "method": event.method,
        "outcome": event.outcome,
        "is_error": is_error(event.outcome),
        "client_name": event.client.0,
        "client_display_name": event.client.1,
        "session_id": event.session,
        "user": { "id": event.user },
        "http_status": 200,
        "batch": false,
    });
    if let Some(tool) = event.tool {
        json["resource_name"] = json!(tool);
        json["arguments"] = json!({ "query": format!("{tool} for {}", event.user) });
        json["result"] = json!({ "content": [{ "type": "text", "text": "ok" }] });
    }
    json
}

/// Nearest-rank percentile, as the dashboard documents it.
fn nearest_rank(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1]
}

async fn seeded_collector(name: &str) -> anyhow::Result<Running> {
    let running = start(name).await?;
    let mut events: Vec<Value> = seed().iter().map(to_json).collect();
    // Out of order, in three batches.
    events.reverse();
    for (n, chunk) in events.chunks(6).enumerate() {
        post(&running.base, &format!("bat_seed_{n}"), chunk).await?;
    }
    Ok(running)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tools_table_equals_the_seeds_truth() -> anyhow::Result<()> {
    let running = seeded_collector("tools").await?;
    let base = running.base.clone();
    let dom =
        tokio::task::spawn_blocking(move || render(&base, "#/tools?range=all", "tools")).await??;

    let seed = seed();
    let mut calls: BTreeMap<&str, Vec<&Seeded>> = BTreeMap::new();
    for event in seed.iter().filter(|event| event.method == "tools/call") {
        calls
            .entry(event.tool.unwrap_or_default())
            .or_default()
            .push(event);
    }
    assert_eq!(calls.len(), 3);
    for (tool, calls) in &calls {
        let row = row(&dom, "tools", tool)?;
        let durations: Vec<f64> = calls.iter().map(|event| event.duration_ms).collect();
        let errors = calls.iter().filter(|event| is_error(event.outcome)).count();
        assert_eq!(number(&cell(row, "calls")?)?, calls.len() as f64, "{tool}");
        assert_eq!(number(&cell(row, "errors")?)?, errors as f64, "{tool}");
        assert!(close(
            number(&cell(row, "error_rate")?)?,
            errors as f64 / calls.len() as f64
        ));
        for (col, q) in [("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
            assert_eq!(
                number(&cell(row, col)?)?,
                nearest_rank(&durations, q),
                "{tool} {col}"
            );
        }
    }
    // Most called first: search (7), fetch (4), write (2).
    let order: Vec<usize> = ["search", "fetch", "write"]
        .iter()
        .map(|tool| {
            dom.find(&format!("data-row=\"{tool}\""))
                .unwrap_or(usize::MAX)
        })
        .collect();
    assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "{order:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_timeline_lists_every_event_in_order() -> anyhow::Result<()> {
    let running = seeded_collector("timeline").await?;
    let base = running.base.clone();
    let dom = tokio::task::spawn_blocking(move || {
        render(&base, "#/sessions/ses_alpha?range=all", "session")
    })
    .await??;
    let timeline_at = dom
        .find("data-timeline=\"ses_alpha\"")
        .context("no timeline")?;
    let timeline = &dom[timeline_at..];
    let timeline = &timeline[..timeline.find("</ol>").unwrap_or(timeline.len())];
    let expected: Vec<Seeded> = seed()
        .into_iter()
        .filter(|event| event.session == "ses_alpha")
        .collect();
    let items: Vec<&str> = timeline.split("<li ").skip(1).collect();
    assert_eq!(items.len(), expected.len(), "{timeline}");
    for (item, event) in items.iter().zip(&expected) {
        assert!(
            item.contains(&format!("data-event-id=\"{}\"", event.id)),
            "{} out of order: {item}",
            event.id
        );
        assert_eq!(text(item, "method")?, event.method);
        assert_eq!(text(item, "outcome")?, event.outcome);
        assert_eq!(number(&cell(item, "duration_ms")?)?, event.duration_ms);
        if let Some(tool) = event.tool {
            assert_eq!(text(item, "tool")?, tool);
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_overview_counts_and_charts_render() -> anyhow::Result<()> {
    let running = seeded_collector("overview").await?;
    let base = running.base.clone();
    let (overview, clients) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        Ok((
            render(&base, "#/overview?range=all", "overview")?,
            render(&base, "#/clients?range=all", "clients")?,
        ))
    })
    .await??;
    let seed = seed();
    let stat = |name: &str| -> anyhow::Result<f64> {
        let at = overview
            .find(&format!("data-stat=\"{name}\""))
            .with_context(|| format!("no stat {name}"))?;
        let tag = &overview[at..at + overview[at..].find('>').unwrap_or(0)];
        let value_at = tag.find("data-value=\"").context("no value")? + 12;
        number(&tag[value_at..value_at + tag[value_at..].find('"').unwrap_or(0)])
    };
    assert_eq!(stat("events")?, seed.len() as f64);
    assert_eq!(
        stat("tool_calls")?,
        seed.iter().filter(|e| e.method == "tools/call").count() as f64
    );
    assert_eq!(stat("users")?, 3.0);
    assert_eq!(stat("sessions")?, 3.0);
    let durations: Vec<f64> = seed.iter().map(|e| e.duration_ms).collect();
    assert_eq!(stat("p50_ms")?, nearest_rank(&durations, 0.5));
    assert_eq!(stat("p95_ms")?, nearest_rank(&durations, 0.95));

    for (chart, series) in [
        ("events", &["events", "tool_calls"][..]),
        ("error_rate", &["error_rate"][..]),
        ("latency", &["p50_ms", "p95_ms"][..]),
        ("audience", &["users", "sessions"][..]),
    ] {
        let at = overview
            .find(&format!("data-chart=\"{chart}\""))
            .with_context(|| format!("no chart {chart}"))?;
        let svg = &overview[overview[..at]
            .rfind("<svg")
            .context("chart is not an svg")?..];
        let svg = &svg[..svg.find("</svg>").context("unclosed svg")?];
        for name in series {
            assert!(
                svg.contains(&format!("data-series=\"{name}\"")),
                "chart {chart} has no series {name}"
            );
        }
    }
    let at = clients
        .find("data-chart=\"client_share\"")
        .context("no client share chart")?;
    let svg = &clients[at..];
    let svg = &svg[..svg.find("</svg>").context("unclosed svg")?];
    for (name, client) in [CLAUDE, CURSOR] {
        assert!(
            svg.contains(&format!("data-series=\"{client}\"")),
            "{client}"
        );
        let row = row(&clients, "clients", client)?;
        assert_eq!(cell(row, "client_name")?, name);
        let events = seed.iter().filter(|e| e.client.1 == client).count();
        assert_eq!(number(&cell(row, "events")?)?, events as f64);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The sessions scenario, through the real layer in backend mode.

#[tokio::test(flavor = "multi_thread")]
async fn backend_mode_sessions_come_out_right_from_out_of_order_delivery() -> anyhow::Result<()> {
    let clock = sessions_scenario::ManualClock::new(sessions_scenario::at(10, 0));
    let sink = MemorySink::new();
    let analytics = AnalyticsLayer::builder()
        .sink(sink.clone())
        .identify(identity::from_header(sessions_scenario::USER_HEADER))
        .session_mode(SessionMode::Backend)
        .clock(clock.reader())
        .build();
    let app = axum::Router::new()
        .nest_service(
            "/mcp",
            demo_server::mcp_service(demo_server::Mode::StatelessJson),
        )
        .layer(analytics.clone());
    let (addr, server) = demo_server::serve(app).await;
    let http = reqwest::Client::new();
    for (index, step) in sessions_scenario::STEPS.iter().enumerate() {
        clock.set(sessions_scenario::at(step.hour, step.minute));
        sessions_scenario::call_echo(
            &http,
            &format!("http://{addr}/mcp"),
            index as u64,
            step.user,
            step.client,
        )
        .await?;
    }
    analytics.shutdown(Duration::from_secs(5)).await;
    server.abort();
    let events = sink.events();
    assert!(events.iter().all(|event| event.session_id.is_none()));

    // Newest first, one event per batch: every session is built from its end.
    let running = start("scenario").await?;
    for (n, event) in events.iter().rev().enumerate() {
        post(
            &running.base,
            &format!("bat_{n}"),
            &[serde_json::to_value(event)?],
        )
        .await?;
    }
    let base = running.base.clone();
    let dom =
        tokio::task::spawn_blocking(move || render(&base, "#/sessions?range=all", "sessions"))
            .await??;

    // (user, client, started at HH:MM, tools/call events) per session row.
    let table_at = dom
        .find("data-table=\"sessions\"")
        .context("no sessions table")?;
    let table = &dom[table_at..];
    let table = &table[..table.find("</table>").unwrap_or(table.len())];
    let mut sessions = Vec::new();
    for row in table.split("<tr ").filter(|row| row.contains("data-row=")) {
        let started = number(&cell(row, "started")?)? as i64;
        let minutes = started.rem_euclid(86_400_000) / 60_000;
        sessions.push((
            cell(row, "user_id").unwrap_or_default(),
            cell(row, "client")?,
            format!("{:02}:{:02}", minutes / 60, minutes % 60),
            number(&cell(row, "tool_calls")?)? as u64,
            cell(row, "grouped_by")?,
        ));
    }
    sessions.sort();
    let expected = vec![
        ("", "Claude Desktop", "10:56", 1, "single"),
        ("alice", "Claude Desktop", "10:00", 2, "collector"),
        ("alice", "Claude Desktop", "10:55", 1, "collector"),
        ("alice", "Cursor", "10:20", 1, "collector"),
        ("bob", "Cursor", "10:02", 1, "collector"),
    ];
    let expected: Vec<(String, String, String, u64, String)> = expected
        .into_iter()
        .map(|(user, client, at, calls, by)| {
            (user.into(), client.into(), at.into(), calls, by.into())
        })
        .collect();
    assert_eq!(sessions, expected, "{table}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Hostile data.

const SCRIPT: &str = "<script>document.body.dataset.pwned='script'</script>";
const IMG: &str = "\"><img src=x onerror=\"document.body.dataset.pwned='img'\">";
const JS_URL: &str = "javascript:document.body.dataset.pwned='url'";

#[tokio::test(flavor = "multi_thread")]
async fn hostile_data_renders_as_text_and_runs_nothing() -> anyhow::Result<()> {
    let running = start("hostile").await?;
    let huge = "A".repeat(1024 * 1024);
    let hostile = json!({
        "id": "evt_hostile",
        "event_type": "mcp:tools/call",
        "timestamp": time(0, 0),
        "duration_ms": 1.5,
        "method": "tools/call",
        "resource_name": SCRIPT,
        "arguments": { "q": IMG, "link": JS_URL, "z_huge": huge, "html": SCRIPT },
        "result": { "content": [{ "type": "text", "text": SCRIPT }] },
        "outcome": "success",
        "is_error": false,
        "client_name": JS_URL,
        "client_display_name": IMG,
        "session_id": SCRIPT,
        "user": { "id": IMG, "name": SCRIPT },
    });
    post(&running.base, "bat_hostile", &[hostile]).await?;

    let base = running.base.clone();
    let session = urlencode(SCRIPT);
    let tool = urlencode(SCRIPT);
    let pages = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(String, String)>> {
        let views = [
            ("#/overview?range=all".to_owned(), "overview"),
            ("#/tools?range=all".to_owned(), "tools"),
            (format!("#/tools/{tool}?range=all"), "tool"),
            ("#/clients?range=all".to_owned(), "clients"),
            ("#/users?range=all".to_owned(), "users"),
            ("#/sessions?range=all".to_owned(), "sessions"),
            (
                format!("#/sessions/{session}?range=all&event=evt_hostile"),
                "session",
            ),
            ("#/live".to_owned(), "live"),
        ];
        views
            .iter()
            .map(|(hash, view)| Ok((hash.clone(), render(&base, hash, view)?)))
            .collect()
    })
    .await??;
    for (hash, dom) in &pages {
        let body = body_tag(dom).context("no body")?;
        assert!(!body.contains("pwned"), "{hash}: a script ran: {body}");
        assert!(!dom.contains("<img"), "{hash}: an <img> was injected");
        assert!(
            !dom.contains("<script>document"),
            "{hash}: a <script> was injected"
        );
        assert!(
            !dom.contains("href=\"javascript:"),
            "{hash}: a javascript: link"
        );
    }
    // The names show, as text, where they are listed.
    let tools = &pages[1].1;
    assert!(
        tools.contains("&lt;script&gt;document.body.dataset.pwned"),
        "tool name not shown as text"
    );
    let users = &pages[4].1;
    assert!(
        users.contains("&lt;img src=x onerror="),
        "user id not shown as text"
    );
    // The opened event shows its arguments and result as text, the 1 MB string included.
    let session_page = &pages[6].1;
    assert!(
        session_page.contains(&"A".repeat(10_000)),
        "the huge argument is not shown"
    );
    assert!(session_page.contains("javascript:document.body.dataset.pwned"));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The tools page's insights.

const HOSTILE_TOOL: &str = "<img src=x onerror=alert(1)>";
const ASKED: &str = "I need to send an email";

/// The markup of `table`, up to its end.
fn table<'a>(dom: &'a str, name: &str) -> anyhow::Result<&'a str> {
    let at = dom
        .find(&format!("data-table=\"{name}\""))
        .with_context(|| format!("no table {name}"))?;
    let rest = &dom[at..];
    Ok(&rest[..rest.find("</table>").unwrap_or(rest.len())])
}

/// The `data-value` of `col` in each data row of `table`, in order.
fn column(dom: &str, name: &str, col: &str) -> anyhow::Result<Vec<String>> {
    table(dom, name)?
        .split("<tr ")
        .filter(|row| row.contains("data-row="))
        .map(|row| cell(row, col))
        .collect()
}

/// The section titled `title` comes before `table`.
fn titled(dom: &str, title: &str, name: &str) -> anyhow::Result<()> {
    let title_at = dom
        .find(&format!(">{title}</h3>"))
        .with_context(|| format!("no section titled {title:?}"))?;
    let table_at = dom
        .find(&format!("data-table=\"{name}\""))
        .with_context(|| format!("no table {name}"))?;
    ensure!(title_at < table_at, "{title:?} is not above {name}");
    Ok(())
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

/// A layer event of `method` at 10:`minute` for `user` in `session`.
fn tool_event(id: &str, user: &str, session: &str, minute: u32, method: &str) -> Value {
    let (client_name, client) = if user == "bob" { CURSOR } else { CLAUDE };
    json!({
        "id": id,
        "event_type": format!("mcp:{method}"),
        "timestamp": time(minute, 0),
        "duration_ms": 2.0,
        "method": method,
        "outcome": "success",
        "is_error": false,
        "client_name": client_name,
        "client_display_name": client,
        "session_id": session,
        "user": { "id": user },
    })
}

/// alice lists search, delete_repo and a hostile name, calls search, calls an unknown
/// tool twice and asks for what she lacks; bob lists search and calls it.
fn insight_seed() -> Vec<Value> {
    let list = |id, user, session, minute, names: &[&str]| {
        let mut event = tool_event(id, user, session, minute, "tools/list");
        event["listed_tools"] = json!(names);
        event
    };
    let call = |id, user, session, minute, tool: &str| {
        let mut event = tool_event(id, user, session, minute, "tools/call");
        event["resource_name"] = json!(tool);
        event
    };
    let unknown = |id, minute| {
        let mut event = call(id, "alice", "ses_one", minute, "summarize_inbox");
        event["unknown_tool"] = json!(true);
        event["outcome"] = json!("error");
        event["is_error"] = json!(true);
        event
    };
    let mut ask = call("i06", "alice", "ses_one", 4, "get_more_tools");
    ask["event_type"] = json!("missing_capability");
    ask["user_intent"] = json!(ASKED);
    vec![
        list(
            "i01",
            "alice",
            "ses_one",
            0,
            &["search", "delete_repo", HOSTILE_TOOL],
        ),
        call("i02", "alice", "ses_one", 1, "search"),
        unknown("i03", 2),
        unknown("i04", 3),
        ask,
        list("i07", "bob", "ses_two", 10, &["search"]),
        call("i08", "bob", "ses_two", 11, "search"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tools_page_shows_advertised_never_called_unknown_tools_and_asks() -> anyhow::Result<()>
{
    let running = start("insights").await?;
    post(&running.base, "bat_insights", &insight_seed()).await?;
    let base = running.base.clone();
    let (all, bob) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        Ok((
            render(&base, "#/tools?range=all", "tools")?,
            render(&base, "#/tools?range=all&user=bob", "tools")?,
        ))
    })
    .await??;

    titled(&all, "Advertised, never called", "never-called")?;
    titled(&all, "Unknown tools called", "unknown-tools")?;
    titled(&all, "What agents asked for", "asked-for")?;
    // Exactly the advertised tools nobody called: not search, and the hostile name as text.
    let never = column(&all, "never-called", "tool")?;
    assert_eq!(
        sorted(never),
        sorted(vec!["delete_repo".into(), HOSTILE_TOOL.into()])
    );
    let never_table = table(&all, "never-called")?;
    assert!(
        !never_table.contains("data-row=\"search\""),
        "{never_table}"
    );
    // What a person reads in those cells: the names, the hostile one as literal text.
    let shown: Vec<String> = never_table
        .split("<tr ")
        .filter(|row| row.contains("data-row="))
        .map(|row| text(row, "tool"))
        .collect::<anyhow::Result<_>>()?;
    assert_eq!(
        sorted(shown),
        sorted(vec!["delete_repo".into(), HOSTILE_TOOL.into()])
    );
    assert!(!all.contains("<img"), "an <img> was injected");
    // The unknown tool, with its two calls; the agent's words.
    assert_eq!(column(&all, "unknown-tools", "tool")?, ["summarize_inbox"]);
    let unknown = row(&all, "unknown-tools", "summarize_inbox")?;
    assert_eq!(number(&cell(unknown, "calls")?)?, 2.0);
    assert_eq!(column(&all, "asked-for", "user_intent")?, [ASKED]);
    assert_eq!(text(row(&all, "asked-for", "i06")?, "user_intent")?, ASKED);

    // bob called all he was offered, called nothing unknown and asked for nothing.
    for (name, empty) in [
        ("never-called", "Every advertised tool was called"),
        ("unknown-tools", "Every tool called was advertised"),
        ("asked-for", "No agent asked for a tool it could not find"),
    ] {
        let shown = table(&bob, name)?;
        assert!(column(&bob, name, "tool")?.is_empty(), "{name}: {shown}");
        assert!(shown.contains(empty), "{name}: {shown}");
    }
    Ok(())
}

/// A 2026-07-28 JSON-RPC request to `url`, from Claude Desktop: its HTTP status and
/// answer.
async fn rpc(
    http: &reqwest::Client,
    url: &str,
    id: u64,
    method: &str,
    mut params: Value,
) -> anyhow::Result<(reqwest::StatusCode, String)> {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {
            "name": sessions_scenario::CLAUDE,
            "version": "1.0.0",
        },
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let mut request = http
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(name) = params["name"].as_str() {
        request = request.header("mcp-name", name);
    }
    let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
    let response = request.body(body.to_string()).send().await?;
    let status = response.status();
    Ok((status, response.text().await?))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_real_layers_tool_events_show_as_insights() -> anyhow::Result<()> {
    let sink = MemorySink::new();
    let analytics = AnalyticsLayer::builder().sink(sink.clone()).build();
    let app = axum::Router::new()
        .nest_service(
            "/mcp",
            demo_server::mcp_service(demo_server::Mode::StatelessJson),
        )
        .layer(analytics.clone());
    let (addr, server) = demo_server::serve(app).await;
    let url = format!("http://{addr}/mcp");
    let http = reqwest::Client::new();
    let (status, answer) = rpc(&http, &url, 1, "tools/list", json!({})).await?;
    ensure!(
        status.is_success() && answer.contains("progress"),
        "{status}: {answer}"
    );
    let (status, answer) = rpc(
        &http,
        &url,
        2,
        "tools/call",
        json!({ "name": "echo", "arguments": { "text": "hi" } }),
    )
    .await?;
    ensure!(
        status.is_success() && answer.contains("hi"),
        "{status}: {answer}"
    );
    // The server does not know it: the layer flags the call whatever the answer's status.
    rpc(
        &http,
        &url,
        3,
        "tools/call",
        json!({ "name": "summarize_inbox", "arguments": {} }),
    )
    .await?;
    analytics.shutdown(Duration::from_secs(5)).await;
    server.abort();
    let events: Vec<Value> = sink
        .events()
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    ensure!(
        events.iter().any(|event| event["listed_tools"].is_array()),
        "the layer sent no listed tools: {events:?}"
    );

    let running = start("real-insights").await?;
    post(&running.base, "bat_real", &events).await?;
    let base = running.base.clone();
    let dom =
        tokio::task::spawn_blocking(move || render(&base, "#/tools?range=all", "tools")).await??;
    // The demo server's tools, less the one called.
    assert_eq!(
        sorted(column(&dom, "never-called", "tool")?),
        ["add", "big", "fail", "progress"]
    );
    assert_eq!(column(&dom, "unknown-tools", "tool")?, ["summarize_inbox"]);
    let asks = table(&dom, "asked-for")?;
    assert!(
        asks.contains("No agent asked for a tool it could not find"),
        "{asks}"
    );
    Ok(())
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
