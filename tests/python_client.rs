//! The layer under the official Python MCP SDK (PyPI package `mcp`, 2.x) as the client,
//! in both protocol eras: the demo rmcp server behind `AnalyticsLayer` over loopback, and
//! `tests/python/mcp_client.py` listing tools and calling `echo`, `add`, `fail` and a tool
//! the server does not have. The script sees exactly what the bare server gives it, and the
//! events name the tools, the outcomes, the era's protocol version and the client as the
//! SDK reports itself. Legacy: the `initialize` handshake with a stateful (session) server;
//! modern: the SDK's default `server/discover` probe, then 2026-07-28, with a stateless one.
//!
//! The Python is `$MCP_PYTHON`, else `python3`; it must import `mcp` 2.x (the test fails
//! with the install command when it does not).

mod common;
#[path = "support/python_sdk.rs"]
mod python_sdk;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tower_mcp_analytics::{AnalyticsLayer, Event, MemorySink, Outcome};

use common::Mode;
use python_sdk::Era;

/// The demo server's tools.
const DEMO_TOOLS: [&str; 5] = ["add", "big", "echo", "fail", "progress"];

fn plan() -> Value {
    json!([
        { "list_tools": true },
        { "call": "echo", "arguments": { "text": "hi" } },
        { "call": "add", "arguments": { "a": 2, "b": 3 } },
        { "call": "fail", "arguments": { "reason": "no inbox" } },
        { "call": "summarize_inbox", "arguments": {} }
    ])
}

/// The script's output for [`plan`], through the layer and straight from the server,
/// with the layer's events.
async fn run_both(mode: Mode, era: Era) -> anyhow::Result<(Vec<Value>, Vec<Value>, Vec<Event>)> {
    python_sdk::require_sdk().await?;
    let sink = MemorySink::new();
    let layer = AnalyticsLayer::new(sink.clone());
    let wrap = layer.clone();
    let layered = common::spawn(mode, move |router| router.layer(wrap)).await;
    let bare = common::spawn(mode, |router| router).await;
    let through_layer = python_sdk::run_plan(&layered.url, era, &plan()).await?;
    let direct = python_sdk::run_plan(&bare.url, era, &plan()).await?;
    layer.flush().await;
    Ok((through_layer, direct, sink.events()))
}

fn calls<'a>(events: &'a [Event], tool: &str) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| e.method == "tools/call" && e.resource_name.as_deref() == Some(tool))
        .collect()
}

/// What both eras must show: the same answers with and without the layer, and events
/// that name the tools, outcomes and client.
fn check(
    through_layer: &[Value],
    direct: &[Value],
    events: &[Event],
    era: Era,
) -> anyhow::Result<()> {
    let version = era.protocol_version();
    assert_eq!(
        through_layer, direct,
        "the layer changed what the client saw"
    );
    let [connected, tools, echo, add, fail, unknown] = through_layer else {
        bail!("one line per step expected: {through_layer:#?}");
    };
    assert_eq!(connected["connected"]["protocol_version"], version);
    let tools = tools["tools"].as_array().context("a tools line")?;
    let mut names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, DEMO_TOOLS);
    assert!(tools.iter().all(|t| t["inputSchema"]["type"] == "object"));
    assert_eq!(echo["result"]["content"][0]["text"], "hi");
    assert_eq!(add["result"]["content"][0]["text"], "5");
    assert_eq!(fail["result"]["isError"], true);
    assert!(unknown["error"]["code"].is_i64(), "{unknown}");

    let lists: Vec<&Event> = events.iter().filter(|e| e.method == "tools/list").collect();
    assert_eq!(lists.len(), 1, "{events:#?}");
    let mut listed = lists[0].listed_tools.clone().context("the listed tools")?;
    listed.sort();
    assert_eq!(listed, DEMO_TOOLS);
    for (tool, outcome, text) in [
        ("echo", Outcome::Success, "hi"),
        ("add", Outcome::Success, "5"),
        ("fail", Outcome::ToolError, "no inbox"),
    ] {
        let found = calls(events, tool);
        assert_eq!(found.len(), 1, "{tool}: {events:#?}");
        assert_eq!(found[0].outcome, outcome, "{tool}");
        assert!(!found[0].unknown_tool, "{tool}");
        let result = found[0].result_value().context("a recorded result")?;
        assert_eq!(result["content"][0]["text"], text, "{tool}");
    }
    let unknown = calls(events, "summarize_inbox");
    assert_eq!(unknown.len(), 1, "{events:#?}");
    assert!(unknown[0].unknown_tool);
    assert_eq!(unknown[0].outcome, Outcome::Error);
    for event in events {
        let method = &event.method;
        assert_eq!(event.protocol_version.as_deref(), Some(version), "{method}");
        assert_eq!(
            event.client_name.as_deref(),
            Some(python_sdk::CLIENT_NAME),
            "{method}"
        );
        // The SDK's HTTP library names itself in the User-Agent.
        let harness = event.harness.as_deref().unwrap_or_default();
        assert!(harness.starts_with("python-httpx"), "{method}: {harness}");
    }
    Ok(())
}

/// The JSON-RPC methods of the events, in order.
fn methods(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.method.as_str()).collect()
}

/// The methods [`plan`] sends, in order.
const PLAN_METHODS: [&str; 5] = [
    "tools/list",
    "tools/call",
    "tools/call",
    "tools/call",
    "tools/call",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_legacy_session() -> anyhow::Result<()> {
    let (through_layer, direct, events) = run_both(Mode::LegacyStateful, Era::Legacy).await?;
    check(&through_layer, &direct, &events, Era::Legacy)?;
    // The handshake, then the plan, all in one session.
    let handshake = ["initialize", "notifications/initialized"];
    assert_eq!(methods(&events), [&handshake[..], &PLAN_METHODS].concat());
    let first = events[0].session_id.as_deref();
    assert!(first.is_some());
    assert!(events.iter().all(|e| e.session_id.as_deref() == first));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_modern_stateless() -> anyhow::Result<()> {
    let (through_layer, direct, events) = run_both(Mode::StatelessJson, Era::Modern).await?;
    check(&through_layer, &direct, &events, Era::Modern)?;
    // No handshake in 2026-07-28: the SDK's `server/discover` probe, then the plan.
    assert_eq!(
        methods(&events),
        [&["server/discover"][..], &PLAN_METHODS].concat()
    );
    assert_eq!(events[0].outcome, Outcome::Success);
    Ok(())
}
