//! The test fixture on its own (no analytics layer): the demo server answers
//! rmcp clients of both lifecycles and raw requests in every transport mode.

mod common;

use common::{Client, Mode, demo_server};
use serde_json::json;

/// Every tool, the prompt and the resource through one client.
async fn exercise(client: &Client, label: &str) -> anyhow::Result<()> {
    let tools = common::list_tools(client).await?;
    let mut names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(names, ["add", "big", "echo", "fail", "progress"], "{label}");

    let echo = common::call_tool(client, "echo", json!({ "text": "hello" })).await?;
    assert_eq!(common::result_text(&echo), "hello", "{label}");
    assert_ne!(echo.is_error, Some(true), "{label}");

    let add = common::call_tool(client, "add", json!({ "a": 2, "b": 40 })).await?;
    assert_eq!(common::result_text(&add), "42", "{label}");

    let (done, progress) =
        common::call_tool_with_progress(client, "progress", json!({ "steps": 3 }), 3).await?;
    assert_eq!(common::result_text(&done), "done", "{label}");
    assert_eq!(
        progress.len(),
        3,
        "{label}: progress notifications {progress:?}"
    );
    let steps: Vec<f64> = progress.iter().map(|p| p.progress).collect();
    assert_eq!(steps, [1.0, 2.0, 3.0], "{label}");
    assert!(progress.iter().all(|p| p.total == Some(3.0)), "{label}");

    let fail = common::call_tool(client, "fail", json!({ "reason": "nope" })).await?;
    assert_eq!(fail.is_error, Some(true), "{label}");
    assert_eq!(common::result_text(&fail), "nope", "{label}");

    let big = common::call_tool(client, "big", json!({ "bytes": 100_000 })).await?;
    let text = common::result_text(&big);
    assert_eq!(text.len(), 100_000, "{label}");
    assert!(text.bytes().all(|b| b == b'x'), "{label}");

    let prompt = common::get_greeting(client, "Ada").await?;
    assert_eq!(prompt.messages.len(), 1, "{label}");
    let prompt_text = prompt.messages[0]
        .content
        .as_text()
        .map(|t| t.text.clone())
        .unwrap_or_default();
    assert!(prompt_text.contains("Ada"), "{label}: {prompt_text}");

    let readme = common::read_readme(client).await?;
    assert_eq!(readme.contents.len(), 1, "{label}");
    let body = serde_json::to_value(&readme.contents[0])?;
    assert_eq!(body["text"], demo_server::README_TEXT, "{label}");
    assert_eq!(body["uri"], demo_server::README_URI, "{label}");
    Ok(())
}

#[tokio::test]
async fn legacy_client_works_in_every_mode() -> anyhow::Result<()> {
    for mode in Mode::ALL {
        let server = common::spawn(mode, |r| r).await;
        let client = common::legacy_client(&server.url, "smoke-legacy").await;
        let info = client.peer_info().expect("server info after initialize");
        assert_eq!(
            info.server_info.as_ref().map(|i| i.name.as_str()),
            Some(demo_server::SERVER_NAME)
        );
        assert_eq!(
            common::negotiated_version(&client),
            Some(common::LEGACY_VERSION),
            "{mode:?}"
        );
        exercise(&client, &format!("legacy {mode:?}")).await?;
        common::close(client).await?;
    }
    Ok(())
}

#[tokio::test]
async fn modern_client_works_in_stateless_modes() -> anyhow::Result<()> {
    for mode in [Mode::StatelessSse, Mode::StatelessJson] {
        let server = common::spawn(mode, |r| r).await;
        let client = common::modern_client(&server.url, "smoke-modern").await;
        assert_eq!(
            common::negotiated_version(&client),
            Some(common::MODERN_VERSION),
            "{mode:?}"
        );
        exercise(&client, &format!("modern {mode:?}")).await?;
        common::close(client).await?;
    }
    Ok(())
}

/// 2026-07-28 requests are always served statelessly, even by a server in
/// legacy session mode.
#[tokio::test]
async fn modern_client_works_in_legacy_stateful_mode() -> anyhow::Result<()> {
    let server = common::spawn(Mode::LegacyStateful, |r| r).await;
    let client = common::modern_client(&server.url, "smoke-modern").await;
    exercise(&client, "modern LegacyStateful").await?;
    common::close(client).await?;
    Ok(())
}

#[tokio::test]
async fn raw_legacy_stateless_tools_call_in_json_mode() -> anyhow::Result<()> {
    let server = common::spawn(Mode::StatelessJson, |r| r).await;

    // Exactly what rmcp 3.9 accepts for a legacy stateless tools/call.
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"raw"}}}"#;
    let response = common::raw_post(
        &server.url,
        &[
            ("accept", "application/json, text/event-stream"),
            ("content-type", "application/json"),
            ("mcp-protocol-version", "2025-06-18"),
        ],
        body,
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.content_type(), "application/json");
    assert!(response.header("mcp-session-id").is_none());
    let message = response.json()?;
    assert_eq!(message["id"], 1);
    assert_eq!(message["result"]["content"][0]["text"], "raw");
    Ok(())
}

#[tokio::test]
async fn raw_modern_tools_call_in_json_mode() -> anyhow::Result<()> {
    let server = common::spawn(Mode::StatelessJson, |r| r).await;

    // Exactly what rmcp 3.9 accepts for a 2026-07-28 tools/call.
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"raw"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"raw-client","version":"1.0.0"},"io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let response = common::raw_post(
        &server.url,
        &[
            ("accept", "application/json, text/event-stream"),
            ("content-type", "application/json"),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
        body,
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.content_type(), "application/json");
    let message = response.json()?;
    assert_eq!(message["id"], 1);
    assert_eq!(message["result"]["content"][0]["text"], "raw");
    assert_eq!(message["result"]["resultType"], "complete");
    Ok(())
}

/// Without a progress token the progress tool logs instead, so even in JSON
/// mode the reply falls back to SSE; with a token it sends progress.
#[tokio::test]
async fn raw_progress_falls_back_to_sse_in_json_mode() -> anyhow::Result<()> {
    let server = common::spawn(Mode::StatelessJson, |r| r).await;

    let response = common::raw_legacy_tools_call(
        &server.url,
        "2025-06-18",
        "progress",
        json!({ "steps": 2 }),
        None,
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.is_sse(), "{}", response.content_type());
    let methods: Vec<_> = response
        .messages()?
        .iter()
        .map(|m| m["method"].as_str().unwrap_or("<response>").to_owned())
        .collect();
    assert_eq!(
        methods,
        [
            "notifications/message",
            "notifications/message",
            "<response>"
        ]
    );

    let response = common::raw_modern_tools_call(
        &server.url,
        "progress",
        json!({ "steps": 2 }),
        Some("tok-1"),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.is_sse(), "{}", response.content_type());
    let messages = response.messages()?;
    let progress: Vec<_> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 2, "{}", response.text());
    assert!(
        progress
            .iter()
            .all(|m| m["params"]["progressToken"] == "tok-1")
    );
    assert_eq!(
        response.response_message()?["result"]["content"][0]["text"],
        "done"
    );
    Ok(())
}

/// Stateless SSE mode answers even a plain call with SSE.
#[tokio::test]
async fn raw_calls_in_sse_mode_are_sse() -> anyhow::Result<()> {
    let server = common::spawn(Mode::StatelessSse, |r| r).await;
    let legacy = common::raw_legacy_tools_call(
        &server.url,
        "2025-06-18",
        "add",
        json!({ "a": 1, "b": 2 }),
        None,
    )
    .await;
    assert_eq!(legacy.status, 200, "{}", legacy.text());
    assert!(legacy.is_sse(), "{}", legacy.content_type());
    assert_eq!(
        legacy.response_message()?["result"]["content"][0]["text"],
        "3"
    );

    let modern =
        common::raw_modern_tools_call(&server.url, "add", json!({ "a": 1, "b": 2 }), None).await;
    assert_eq!(modern.status, 200, "{}", modern.text());
    assert!(modern.is_sse(), "{}", modern.content_type());
    assert_eq!(
        modern.response_message()?["result"]["content"][0]["text"],
        "3"
    );
    Ok(())
}

/// In legacy session mode a raw initialize yields a session id, calls need
/// it, and DELETE ends the session.
#[tokio::test]
async fn raw_session_lifecycle_in_legacy_stateful_mode() -> anyhow::Result<()> {
    let server = common::spawn(Mode::LegacyStateful, |r| r).await;
    let (init, session) = common::raw_initialize(&server.url, "2025-06-18", "raw").await?;
    assert!(init.is_sse(), "{}", init.content_type());
    let session = session.expect("session id in legacy stateful mode");
    assert_eq!(
        init.response_message()?["result"]["serverInfo"]["name"],
        demo_server::SERVER_NAME
    );

    let mut headers = common::legacy_headers("2025-06-18");
    headers.push(("mcp-session-id", session.clone()));
    let body = common::legacy_tools_call_body(7, "echo", json!({ "text": "s" }), None);
    let call = common::raw_post(
        &server.url,
        &common::header_refs(&headers),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(call.status, 200, "{}", call.text());
    assert!(call.is_sse());
    assert_eq!(
        call.response_message()?["result"]["content"][0]["text"],
        "s"
    );

    let deleted = common::raw_request(
        reqwest::Method::DELETE,
        &server.url,
        &[("mcp-session-id", session.as_str())],
        Vec::new(),
    )
    .await;
    assert_eq!(deleted.status, 202, "{}", deleted.text());

    let after = common::raw_post(
        &server.url,
        &common::header_refs(&headers),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(after.status, 404, "{}", after.text());
    Ok(())
}

/// A legacy client in a stateless mode and a cancelled request do not break
/// the server.
#[tokio::test]
async fn cancelled_request_leaves_client_usable() -> anyhow::Result<()> {
    for mode in Mode::ALL {
        let server = common::spawn(mode, |r| r).await;
        let client = common::legacy_client(&server.url, "smoke-cancel").await;
        let handle = common::start_tool_call(&client, "echo", json!({ "text": "x" })).await?;
        common::cancel_request(handle, Some("test")).await?;
        let echo = common::call_tool(&client, "echo", json!({ "text": "after" })).await?;
        assert_eq!(common::result_text(&echo), "after", "{mode:?}");
        common::close(client).await?;
    }
    Ok(())
}
