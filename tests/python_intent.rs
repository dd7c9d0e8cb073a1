//! Intent capture and missing-tool discovery seen from the official Python MCP SDK (PyPI
//! package `mcp`, 2.x), in both protocol eras, against the recording rmcp server
//! (`tests/support/recording_server.rs`), whose tools keep the arguments they receive:
//!
//! * with `capture_intent`, every tool the SDK lists has a string `context` in its input
//!   schema, optional unless the tool declared it itself; a call's `context` is recorded as
//!   the event's `user_intent` and never reaches the tool, even one that refuses unknown
//!   arguments, while a tool's own `context` argument is left alone;
//! * with `missing_tools`, the SDK lists `get_more_tools`, and calling it is answered by
//!   the layer with a text result the SDK accepts, never reaches the server, and is
//!   recorded as a `missing_capability` event carrying the request's context.
//!
//! The Python is `$MCP_PYTHON`, else `python3`; it must import `mcp` 2.x (the test fails
//! with the install command when it does not).

mod common;
#[path = "support/python_sdk.rs"]
mod python_sdk;
#[path = "support/recording_server.rs"]
mod recording_server;

use std::sync::PoisonError;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tower_mcp_analytics::{
    AnalyticsLayer, Event, MemorySink, Outcome,
    insights::{IntentCapture, MISSING_CAPABILITY_EVENT, MissingTools},
};

use common::Mode;
use python_sdk::Era;
use recording_server::{Received, received_by};

/// The argument intent capture adds to every tool.
const CONTEXT: &str = "context";
/// The virtual tool `missing_tools` adds.
const MORE_TOOLS: &str = "get_more_tools";

/// The recording server in `mode` behind a layer with intent capture and missing-tool
/// discovery.
async fn server(mode: Mode) -> (common::Server, AnalyticsLayer, MemorySink, Received) {
    let (service, received) = recording_server::service(common::demo_server::config_for(mode));
    let sink = MemorySink::new();
    let layer = AnalyticsLayer::builder()
        .sink(sink.clone())
        .capture_intent(IntentCapture::new())
        .missing_tools(MissingTools::new())
        .build();
    let router = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(layer.clone());
    let server = common::spawn_router(mode, router).await;
    (server, layer, sink, received)
}

fn tool_calls<'a>(events: &'a [Event], tool: &str) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| e.method == "tools/call" && e.resource_name.as_deref() == Some(tool))
        .collect()
}

/// One line per step of `plan`, after the `connected` line.
async fn run(server: &common::Server, era: Era, plan: Value) -> anyhow::Result<Vec<Value>> {
    python_sdk::require_sdk().await?;
    let lines = python_sdk::run_plan(&server.url, era, &plan).await?;
    let Some((connected, steps)) = lines.split_first() else {
        bail!("the Python client printed nothing");
    };
    assert_eq!(
        connected["connected"]["protocol_version"],
        era.protocol_version()
    );
    Ok(steps.to_vec())
}

/// The context argument: listed on every tool, recorded as the intent and taken out
/// before the tool runs; a tool's own `context` is passed on.
async fn intent_is_captured_and_stripped(mode: Mode, era: Era) -> anyhow::Result<()> {
    let (server, layer, sink, received) = server(mode).await;
    let plan = json!([
        { "list_tools": true },
        { "call": "record", "arguments": { "q": "x", CONTEXT: "find the invoice" } },
        { "call": "search", "arguments": { "query": "invoices", CONTEXT: "find the invoice" } },
        { "call": "lookup", "arguments": { "query": "q", CONTEXT: "the tool's own" } }
    ]);
    let steps = run(&server, era, plan).await?;
    let [tools, record, search, lookup] = steps.as_slice() else {
        bail!("one line per step expected: {steps:#?}");
    };
    let tools = tools["tools"].as_array().context("a tools line")?;
    let mut names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, [MORE_TOOLS, "lookup", "record", "search"], "{era:?}");
    for tool in tools {
        let schema = &tool["inputSchema"];
        assert_eq!(
            schema["properties"][CONTEXT]["type"], "string",
            "{era:?}: {tool}"
        );
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        let own = tool["name"] == "lookup" || tool["name"] == MORE_TOOLS;
        assert_eq!(required.contains(&json!(CONTEXT)), own, "{era:?}: {tool}");
    }
    for (step, text) in [
        (record, "q"),
        (search, "results for invoices"),
        (lookup, "q in the tool's own"),
    ] {
        assert_eq!(step["result"]["isError"], false, "{era:?}: {step}");
        assert_eq!(
            step["result"]["content"][0]["text"], text,
            "{era:?}: {step}"
        );
    }
    assert_eq!(received_by(&received, "record"), [json!({ "q": "x" })]);
    assert_eq!(
        received_by(&received, "search"),
        [json!({ "query": "invoices" })]
    );
    assert_eq!(
        received_by(&received, "lookup"),
        [json!({ "query": "q", CONTEXT: "the tool's own" })]
    );

    layer.flush().await;
    let events = sink.events();
    for (tool, intent) in [
        ("record", Some("find the invoice")),
        ("search", Some("find the invoice")),
        ("lookup", None),
    ] {
        let found = tool_calls(&events, tool);
        assert_eq!(found.len(), 1, "{era:?} {tool}: {events:#?}");
        assert_eq!(found[0].outcome, Outcome::Success, "{era:?} {tool}");
        assert_eq!(found[0].user_intent.as_deref(), intent, "{era:?} {tool}");
        assert_eq!(
            found[0].client_name.as_deref(),
            Some(python_sdk::CLIENT_NAME),
            "{era:?} {tool}"
        );
    }
    Ok(())
}

/// `get_more_tools`: answered by the layer, recorded as a missing capability.
async fn missing_tools_are_answered_by_the_layer(mode: Mode, era: Era) -> anyhow::Result<()> {
    let (server, layer, sink, received) = server(mode).await;
    let plan = json!([
        { "list_tools": true },
        { "call": MORE_TOOLS, "arguments": { CONTEXT: "send an email" } }
    ]);
    let steps = run(&server, era, plan).await?;
    let [tools, answer] = steps.as_slice() else {
        bail!("one line per step expected: {steps:#?}");
    };
    let listed = tools["tools"].as_array().context("a tools line")?;
    let more = listed
        .iter()
        .find(|t| t["name"] == MORE_TOOLS)
        .with_context(|| format!("{era:?}: {MORE_TOOLS} is not listed: {tools}"))?;
    assert_eq!(more["inputSchema"]["properties"][CONTEXT]["type"], "string");
    let result = &answer["result"];
    assert_eq!(result["isError"], false, "{era:?}: {answer}");
    assert_eq!(result["content"][0]["type"], "text", "{era:?}: {answer}");
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    assert!(!text.is_empty(), "{era:?}: {answer}");
    let reached = received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .len();
    assert_eq!(reached, 0, "{era:?}: the call reached the server");

    layer.flush().await;
    let events = sink.events();
    let missing: Vec<&Event> = events
        .iter()
        .filter(|e| e.event_type == MISSING_CAPABILITY_EVENT)
        .collect();
    assert_eq!(missing.len(), 1, "{era:?}: {events:#?}");
    let event = missing[0];
    assert_eq!(
        event.user_intent.as_deref(),
        Some("send an email"),
        "{era:?}"
    );
    assert_eq!(event.outcome, Outcome::Success, "{era:?}");
    // The layer listed the tool itself: calling it is no call of an unknown tool.
    assert!(!event.unknown_tool, "{era:?}: {event:?}");
    assert_eq!(
        event.protocol_version.as_deref(),
        Some(era.protocol_version()),
        "{era:?}"
    );
    assert_eq!(
        event.client_name.as_deref(),
        Some(python_sdk::CLIENT_NAME),
        "{era:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_legacy_intent_is_captured_and_stripped() -> anyhow::Result<()> {
    intent_is_captured_and_stripped(Mode::LegacyStateful, Era::Legacy).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_modern_intent_is_captured_and_stripped() -> anyhow::Result<()> {
    intent_is_captured_and_stripped(Mode::StatelessJson, Era::Modern).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_legacy_get_more_tools_is_answered_by_the_layer() -> anyhow::Result<()> {
    missing_tools_are_answered_by_the_layer(Mode::LegacyStateful, Era::Legacy).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_modern_get_more_tools_is_answered_by_the_layer() -> anyhow::Result<()> {
    missing_tools_are_answered_by_the_layer(Mode::StatelessJson, Era::Modern).await
}
