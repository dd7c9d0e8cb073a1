//! What owners come to learn beyond call counts, end to end: the real rmcp demo server
//! behind the layer over loopback HTTP, real rmcp clients in both protocol eras.
//! `tools/list` events carry the advertised tool names; calls of tools that were not
//! advertised, or that the server says it does not know, are flagged.

mod common;

use serde_json::json;
use tower_mcp_analytics::{AnalyticsLayer, Event, MemorySink};

use common::Mode;

/// The demo server's tools.
const DEMO_TOOLS: [&str; 5] = ["add", "big", "echo", "fail", "progress"];

async fn server(mode: Mode) -> (common::Server, AnalyticsLayer, MemorySink) {
    let sink = MemorySink::new();
    let layer = AnalyticsLayer::new(sink.clone());
    let wrap = layer.clone();
    let server = common::spawn(mode, move |router| router.layer(wrap)).await;
    (server, layer, sink)
}

fn calls<'a>(events: &'a [Event], tool: &str) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| e.method == "tools/call" && e.resource_name.as_deref() == Some(tool))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_tools_are_recorded_and_calls_of_others_are_flagged() -> anyhow::Result<()> {
    for (mode, modern) in [(Mode::LegacyStateful, false), (Mode::StatelessJson, true)] {
        let label = format!("{mode:?}");
        let (server, layer, sink) = server(mode).await;
        let client = if modern {
            common::modern_client(&server.url, "cursor-vscode").await
        } else {
            common::legacy_client(&server.url, "claude-ai").await
        };
        common::list_tools(&client).await?;
        common::call_tool(&client, "echo", json!({ "text": "hi" })).await?;
        assert!(
            common::call_tool(&client, "summarize_inbox", json!({}))
                .await
                .is_err()
        );
        common::close(client).await?;
        layer.flush().await;
        let events = sink.events();
        let list = events
            .iter()
            .find(|e| e.method == "tools/list")
            .expect("a tools/list event");
        let mut listed = list.listed_tools.clone().expect("the advertised names");
        listed.sort();
        assert_eq!(listed, DEMO_TOOLS, "{label}");
        assert!(!calls(&events, "echo")[0].unknown_tool, "{label}");
        assert!(calls(&events, "summarize_inbox")[0].unknown_tool, "{label}");
        // Only `tools/call` events carry the flag, and only `tools/list` ones the names.
        for event in &events {
            if event.method != "tools/call" {
                assert!(!event.unknown_tool, "{label}: {}", event.method);
            }
            if event.method != "tools/list" {
                assert!(event.listed_tools.is_none(), "{label}: {}", event.method);
            }
        }
        let json = serde_json::to_value(list)?;
        assert_eq!(json["listed_tools"].as_array().map(Vec::len), Some(5));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_tool_is_flagged_by_the_server_answer_when_nothing_was_listed() {
    let (server, layer, sink) = server(Mode::StatelessJson).await;
    let response =
        common::raw_modern_tools_call(&server.url, "no_such_tool", json!({}), None).await;
    let answer = response.response_message().expect("an answer");
    assert!(answer["error"]["code"].is_i64(), "{answer}");
    // A tool the server has, though never listed, is not flagged.
    let response =
        common::raw_modern_tools_call(&server.url, "echo", json!({ "text": "x" }), None).await;
    assert_eq!(response.status, 200);
    layer.flush().await;
    let events = sink.events();
    assert!(calls(&events, "no_such_tool")[0].unknown_tool, "{events:?}");
    assert!(!calls(&events, "echo")[0].unknown_tool);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_never_listed_is_judged_by_the_latest_list() -> anyhow::Result<()> {
    let (server, layer, sink) = server(Mode::LegacyStateful).await;
    let lister = common::legacy_client(&server.url, "claude-ai").await;
    common::list_tools(&lister).await?;
    // Another session calls without listing: `echo` is known from the other's list.
    let caller = common::legacy_client(&server.url, "cursor-vscode").await;
    common::call_tool(&caller, "echo", json!({ "text": "hi" })).await?;
    common::close(lister).await?;
    common::close(caller).await?;
    layer.flush().await;
    let events = sink.events();
    assert!(!calls(&events, "echo")[0].unknown_tool);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_is_named_from_the_user_agent_beside_the_client() -> anyhow::Result<()> {
    let (server, layer, sink) = server(Mode::StatelessJson).await;
    let http = common::http_client_with("claude-code/2.1.4 (darwin; arm64)", &[])?;
    let client = common::modern_client_over(http, &server.url, "claude-ai").await?;
    common::call_tool(&client, "echo", json!({ "text": "hi" })).await?;
    common::close(client).await?;
    // A User-Agent that is no product name gives no label.
    let odd = common::http_client_with("<script>alert(1)</script>", &[])?;
    let client = common::modern_client_over(odd, &server.url, "cursor-vscode").await?;
    common::call_tool(&client, "add", json!({ "a": 1, "b": 2 })).await?;
    common::close(client).await?;
    layer.flush().await;
    let events = sink.events();
    let echo = calls(&events, "echo")[0];
    assert_eq!(echo.harness.as_deref(), Some("claude-code"));
    assert_eq!(echo.client_name.as_deref(), Some("claude-ai"));
    assert_eq!(calls(&events, "add")[0].harness, None);
    Ok(())
}
