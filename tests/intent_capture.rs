//! Intent capture and the virtual `get_more_tools`, end to end: a real rmcp server whose
//! tools record what reaches them, behind the layer over loopback HTTP, driven by real
//! rmcp clients in both protocol eras (SSE answers in legacy sessions, JSON answers on
//! 2026-07-28), and raw HTTP for the bytes.
//!
//! - `tools/list` shows the added argument on every tool but the excluded ones and the
//!   one with a `context` of its own, and lists `get_more_tools`;
//! - a call that passes the argument reaches its tool without it (asserted in the tool,
//!   and by a tool that refuses unknown arguments), and its event carries the intent;
//!   a call without it works as before;
//! - `get_more_tools` is answered by the layer, recorded as `missing_capability`, and
//!   never reaches the server;
//! - rewritten answers are valid JSON-RPC with a correct `Content-Length` (or none), the
//!   same whatever the chunking of the server's answer; with both off, no byte changes.

mod common;
#[path = "support/recording_server.rs"]
mod recording_server;
#[path = "support/test_body.rs"]
mod test_body;

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::{ServiceExt, service_fn};
use tower_mcp_analytics::insights::{IntentCapture, MISSING_CAPABILITY_EVENT, MissingTools};
use tower_mcp_analytics::{AnalyticsLayer, Event, MemorySink, ReplayBody};

use common::Mode;
use recording_server::{Received, received_by};

/// The recording server in `mode` behind `layer` (or bare).
async fn serve(mode: Mode, layer: Option<AnalyticsLayer>) -> (common::Server, Received) {
    let (service, received) = recording_server::service(common::demo_server::config_for(mode));
    let router = axum::Router::new().nest_service("/mcp", service);
    let router = match layer {
        Some(layer) => router.layer(layer),
        None => router,
    };
    (common::spawn_router(mode, router).await, received)
}

fn insights_layer(sink: &MemorySink) -> AnalyticsLayer {
    AnalyticsLayer::builder()
        .sink(sink.clone())
        .capture_intent(IntentCapture::new().exclude_tools(["search_excluded"]))
        .missing_tools(MissingTools::new().answer("Noted: no such tool yet."))
        .build()
}

fn event_of<'a>(events: &'a [Event], tool: &str) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| e.method == "tools/call" && e.resource_name.as_deref() == Some(tool))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intent_and_missing_tools_with_real_clients_in_both_eras() -> anyhow::Result<()> {
    for (mode, modern) in [(Mode::LegacyStateful, false), (Mode::StatelessJson, true)] {
        let label = format!("{mode:?}");
        let sink = MemorySink::new();
        let layer = insights_layer(&sink);
        let (server, received) = serve(mode, Some(layer.clone())).await;
        let client = if modern {
            common::modern_client(&server.url, "cursor-vscode").await
        } else {
            common::legacy_client(&server.url, "claude-ai").await
        };

        let tools = common::list_tools(&client).await?;
        let names: Vec<&str> = tools.iter().map(|t| &*t.name).collect();
        assert_eq!(names.last(), Some(&"get_more_tools"), "{label}: {names:?}");
        for tool in &tools {
            let schema = Value::Object((*tool.input_schema).clone());
            let context = &schema["properties"]["context"];
            match &*tool.name {
                "lookup" => assert_eq!(
                    context["description"], "The tool's own context argument.",
                    "{label}: a tool's own argument is left alone"
                ),
                "get_more_tools" => assert_eq!(schema["required"], json!(["context"])),
                _ => {
                    assert_eq!(context["type"], "string", "{label}: {}", tool.name);
                    let required = schema["required"].as_array().cloned().unwrap_or_default();
                    assert!(!required.contains(&json!("context")), "{label}: optional");
                }
            }
        }

        let result = common::call_tool(
            &client,
            "record",
            json!({ "q": "x", "context": "find the invoice" }),
        )
        .await?;
        assert_eq!(
            common::result_text(&result),
            "q",
            "{label}: the tool saw only q"
        );
        let result = common::call_tool(
            &client,
            "search",
            json!({ "query": "rust", "context": "read the docs" }),
        )
        .await?;
        assert_eq!(common::result_text(&result), "results for rust", "{label}");
        let result = common::call_tool(&client, "record", json!({ "q": "y" })).await?;
        assert_eq!(
            common::result_text(&result),
            "q",
            "{label}: no intent, as before"
        );
        let result =
            common::call_tool(&client, "lookup", json!({ "query": "a", "context": "b" })).await?;
        assert_eq!(
            common::result_text(&result),
            "a in b",
            "{label}: its own argument reaches it"
        );
        let result = common::call_tool(
            &client,
            "get_more_tools",
            json!({ "context": "send an email" }),
        )
        .await?;
        assert_eq!(
            common::result_text(&result),
            "Noted: no such tool yet.",
            "{label}"
        );
        assert_ne!(result.is_error, Some(true));
        common::close(client).await?;
        layer.flush().await;

        assert_eq!(
            received_by(&received, "record"),
            [json!({ "q": "x" }), json!({ "q": "y" })],
            "{label}"
        );
        assert_eq!(
            received_by(&received, "search"),
            [json!({ "query": "rust" })],
            "{label}"
        );
        assert_eq!(
            received_by(&received, "lookup"),
            [json!({ "query": "a", "context": "b" })]
        );
        assert!(
            received_by(&received, "get_more_tools").is_empty(),
            "{label}: never reaches the server"
        );

        let events = sink.events();
        let records = event_of(&events, "record");
        assert_eq!(
            records[0].user_intent.as_deref(),
            Some("find the invoice"),
            "{label}"
        );
        assert_eq!(
            records[0].arguments_value(),
            Some(json!({ "q": "x" })),
            "{label}"
        );
        assert_eq!(records[1].user_intent, None, "{label}");
        assert_eq!(
            event_of(&events, "search")[0].user_intent.as_deref(),
            Some("read the docs")
        );
        assert_eq!(event_of(&events, "lookup")[0].user_intent, None, "{label}");
        let asked = event_of(&events, "get_more_tools");
        assert_eq!(asked.len(), 1, "{label}");
        assert_eq!(asked[0].event_type, MISSING_CAPABILITY_EVENT);
        assert_eq!(asked[0].user_intent.as_deref(), Some("send an email"));
        assert_eq!(
            asked[0].outcome,
            tower_mcp_analytics::Outcome::Success,
            "{label}"
        );
        assert!(
            !asked[0].unknown_tool,
            "{label}: the layer's own tool is known"
        );
        let list = events
            .iter()
            .find(|e| e.method == "tools/list")
            .expect("a tools/list event");
        let mut listed = list.listed_tools.clone().expect("listed");
        listed.sort();
        assert_eq!(
            listed,
            ["lookup", "record", "search"],
            "{label}: the server's own tools"
        );
        for event in events.iter().filter(|_| mode.is_stateful()) {
            if event.method == "tools/call" {
                assert_eq!(
                    event.session_id, records[0].session_id,
                    "{label}: one session"
                );
            }
        }
    }
    Ok(())
}

/// A raw `tools/list` in the 2026-07-28 era.
fn modern_list_body() -> Value {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/list",
        "params": { "_meta": common::modern_meta("raw-client") }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_answers_are_valid_json_rpc_with_a_correct_length() -> anyhow::Result<()> {
    for mode in Mode::ALL {
        let label = format!("{mode:?}");
        let sink = MemorySink::new();
        let (server, _) = serve(mode, Some(insights_layer(&sink))).await;
        let response = if mode.is_stateful() {
            let (_, session) = common::raw_initialize(&server.url, "2025-11-25", "raw").await?;
            let session = session.expect("a session");
            let mut headers = common::legacy_headers("2025-11-25");
            headers.push(("mcp-session-id", session));
            let body = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" });
            common::raw_post_json(&server.url, &headers, &body).await
        } else {
            let headers = common::modern_headers("tools/list", None);
            common::raw_post_json(&server.url, &headers, &modern_list_body()).await
        };
        assert_eq!(response.status, 200, "{label}");
        if let Some(length) = response.header("content-length") {
            assert_eq!(length.parse::<usize>()?, response.body.len(), "{label}");
        }
        let answer = response.response_message()?;
        assert_eq!(answer["jsonrpc"], "2.0", "{label}");
        assert_eq!(answer["id"], 1, "{label}");
        let tools = answer["result"]["tools"].as_array().expect("tools").clone();
        assert_eq!(tools.len(), 4, "{label}");
        assert_eq!(tools[3]["name"], "get_more_tools");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_both_off_answers_are_the_bare_servers_byte_for_byte() -> anyhow::Result<()> {
    let (bare, _) = serve(Mode::StatelessJson, None).await;
    let sink = MemorySink::new();
    let (layered, _) = serve(Mode::StatelessJson, Some(AnalyticsLayer::new(sink))).await;
    let headers = common::modern_headers("tools/list", None);
    let call =
        common::modern_tools_call_body(2, "record", json!({ "q": 1, "context": "c" }), "raw", None);
    let call_headers = common::modern_headers("tools/call", Some("record"));
    let list_bare = common::raw_post_json(&bare.url, &headers, &modern_list_body()).await;
    let list_layered = common::raw_post_json(&layered.url, &headers, &modern_list_body()).await;
    assert_eq!(list_bare.body, list_layered.body);
    assert_eq!(
        list_bare.header("content-length"),
        list_layered.header("content-length")
    );
    let call_bare = common::raw_post_json(&bare.url, &call_headers, &call).await;
    let call_layered = common::raw_post_json(&layered.url, &call_headers, &call).await;
    assert_eq!(call_bare.body, call_layered.body);
    // Off, the argument reaches the tool as the client sent it.
    assert!(String::from_utf8_lossy(&call_layered.body).contains("context,q"));
    Ok(())
}

/// A `tools/list` answer of `tools` tools, as an rmcp server writes it.
fn listing(tools: usize) -> Value {
    let tools: Vec<Value> = (0..tools)
        .map(|n| {
            json!({
                "name": format!("tool_{n}"),
                "description": "A tool",
                "inputSchema": { "type": "object", "properties": { "q": { "type": "string" } }, "required": ["q"] }
            })
        })
        .collect();
    json!({ "jsonrpc": "2.0", "id": 1, "result": { "tools": tools } })
}

/// The answer a server of `kind` writes, through the layer with insights on, delivered in
/// `chunks`; returns the client's bytes and headers.
async fn through_insights(
    kind: &'static str,
    answer: Bytes,
    chunks: Vec<Bytes>,
) -> (Vec<u8>, http::HeaderMap) {
    let sink = MemorySink::new();
    let layer = insights_layer(&sink);
    let service = tower::ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(
            move |_req: Request<ReplayBody<http_body_util::Full<Bytes>>>| {
                let chunks = chunks.clone();
                let length = answer.len();
                async move {
                    let mut response = Response::new(test_body::TestBody::chunks(&chunks));
                    response
                        .headers_mut()
                        .insert("content-type", kind.parse().expect("valid"));
                    if kind == "application/json" {
                        response
                            .headers_mut()
                            .insert("content-length", length.into());
                    }
                    Ok::<_, Infallible>(response)
                }
            },
        ));
    let request = Request::post("/mcp")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        )))
        .expect("a request");
    let response = service.oneshot(request).await.expect("infallible");
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (body.to_vec(), headers)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// However the server's answer is cut into chunks, the client receives the same
    /// rewritten answer: JSON whole, SSE events around it untouched.
    #[test]
    fn the_rewrite_does_not_depend_on_chunking(
        tools in 0usize..6,
        cuts in proptest::collection::vec(1usize..200, 0..12),
        sse in any::<bool>(),
        crlf in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let message = listing(tools).to_string();
        let (kind, answer) = if sse {
            let nl = if crlf { "\r\n" } else { "\n" };
            let text = format!(
                ": ping{nl}{nl}id: 0{nl}data:{nl}{nl}event: message{nl}data: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progressToken\":1,\"progress\":1}}}}{nl}{nl}id: 7{nl}data: {message}{nl}{nl}: after{nl}{nl}"
            );
            ("text/event-stream", Bytes::from(text))
        } else {
            ("application/json", Bytes::from(message.clone()))
        };
        let whole = runtime.block_on(through_insights(kind, answer.clone(), vec![answer.clone()]));
        let mut chunks = Vec::new();
        let mut at = 0;
        for cut in cuts {
            let end = (at + cut).min(answer.len());
            chunks.push(answer.slice(at..end));
            at = end;
        }
        chunks.push(answer.slice(at..));
        let split = runtime.block_on(through_insights(kind, answer.clone(), chunks));
        prop_assert_eq!(&whole.0, &split.0);
        prop_assert!(whole.1.get("content-length").is_none());
        let text = String::from_utf8(whole.0).expect("utf-8");
        let payload = if sse {
            let data: Vec<String> =
                common::sse_data(&text).into_iter().filter(|d| !d.is_empty()).collect();
            prop_assert_eq!(data.len(), 2);
            prop_assert!(text.starts_with(": ping"));
            prop_assert!(text.ends_with(": after\n\n") || text.ends_with(": after\r\n\r\n"));
            data[1].clone()
        } else {
            text
        };
        let value: Value = serde_json::from_str(&payload).expect("valid JSON");
        let listed = value["result"]["tools"].as_array().expect("tools").clone();
        prop_assert_eq!(listed.len(), tools + 1);
        for tool in &listed[..tools] {
            prop_assert_eq!(&tool["inputSchema"]["properties"]["context"]["type"], "string");
            prop_assert_eq!(&tool["inputSchema"]["required"], &json!(["q"]));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_intent_passes_the_privacy_stage_like_the_arguments() -> anyhow::Result<()> {
    let sink = MemorySink::new();
    let layer = AnalyticsLayer::builder()
        .sink(sink.clone())
        .capture_intent(IntentCapture::new().argument("why"))
        .redact(|text| {
            text.contains("alice")
                .then(|| text.replace("alice", "[user]"))
        })
        .exclude_tool_payloads(["search"])
        .build();
    let (server, received) = serve(Mode::StatelessJson, Some(layer.clone())).await;
    let client = common::modern_client(&server.url, "cursor-vscode").await;
    let tools = common::list_tools(&client).await?;
    assert!(
        tools
            .iter()
            .all(|t| t.name == "lookup" || t.input_schema["properties"].get("why").is_some())
    );
    let intent = "mail alice the invoice, key sk_live_4eC39HqLyjWDarjtT1zdp7dc";
    common::call_tool(&client, "record", json!({ "q": 1, "why": intent })).await?;
    common::call_tool(
        &client,
        "search",
        json!({ "query": "q", "why": "excluded tool" }),
    )
    .await?;
    common::close(client).await?;
    layer.flush().await;
    assert_eq!(received_by(&received, "record"), [json!({ "q": 1 })]);
    assert_eq!(received_by(&received, "search"), [json!({ "query": "q" })]);
    let events = sink.events();
    assert_eq!(
        event_of(&events, "record")[0].user_intent.as_deref(),
        Some("mail [user] the invoice, key [redacted]")
    );
    // Payloads of excluded tools are not captured: neither is their intent.
    assert_eq!(event_of(&events, "search")[0].user_intent, None);
    Ok(())
}
