//! Quick start: a real MCP server (rmcp 3.9, axum) with the analytics layer in front.
//!
//! ```text
//! cargo run --example quickstart            # serve on 127.0.0.1:8000 until Ctrl-C
//! cargo run --example quickstart -- --once  # run the demo client, print, exit
//! ```
//!
//! Events are printed to stdout as JSON lines (pipe them to `jq`); everything else goes
//! to stderr. On start a short demo session (a legacy client with a session, and a
//! 2026-07-28 client) calls a few tools so that events show up straight away; then
//! point any MCP client at the printed URL. `PORT` changes the port.

#[path = "support/demo_server.rs"]
mod demo_server;

use std::time::Duration;

use axum::Router;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientLifecycleMode, ClientServiceExt};
use serde_json::json;
use tower_mcp_analytics::{AnalyticsLayer, JsonLinesSink};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let once = std::env::args().any(|arg| arg == "--once");
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port.parse()?,
        Err(_) if once => 0,
        Err(_) => 8000,
    };

    // The one line this crate is about: the layer in front of the MCP service.
    let analytics = AnalyticsLayer::builder()
        .sink(JsonLinesSink::stdout())
        .build();
    let app = Router::new()
        .nest_service(
            "/mcp",
            demo_server::mcp_service(demo_server::Mode::LegacyStateful),
        )
        .layer(analytics.clone());

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let url = format!("http://{}/mcp", listener.local_addr()?);
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
    });
    eprintln!("MCP server with analytics listening at {url}");

    demo_session(&url).await?;
    if once {
        analytics.flush().await;
    } else {
        eprintln!("Point an MCP client (Streamable HTTP) at {url}; Ctrl-C to stop.");
        server.await??;
    }
    let report = analytics.shutdown(Duration::from_secs(5)).await;
    eprintln!(
        "analytics: {} events recorded, {} delivered, {} dropped",
        report.stats.recorded,
        report.stats.delivered,
        report.stats.dropped.total()
    );
    Ok(())
}

/// A legacy client (initialize, session, DELETE on close) and a 2026-07-28 client.
async fn demo_session(url: &str) -> anyhow::Result<()> {
    let info = |name: &str, version| {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new(name, "1.0.0"),
        )
        .with_protocol_version(version)
    };
    let call = |name: &str, args: serde_json::Value| {
        let args = args.as_object().cloned().unwrap_or_default();
        CallToolRequestParams::new(name.to_owned()).with_arguments(args)
    };

    let legacy = info("claude-ai", ProtocolVersion::V_2025_11_25)
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_uri(url.to_owned()),
            ClientLifecycleMode::Initialize,
        )
        .await?;
    legacy.list_tools(None).await?;
    legacy
        .call_tool(call("echo", json!({ "text": "hello" })))
        .await?;
    legacy
        .call_tool(call("progress", json!({ "steps": 3 })))
        .await?;
    legacy
        .call_tool(call("fail", json!({ "reason": "the demo asked for it" })))
        .await?;
    legacy.cancel().await?;

    let modern = info("cursor-vscode", ProtocolVersion::V_2026_07_28)
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_uri(url.to_owned()),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await?;
    modern
        .call_tool(call("add", json!({ "a": 2, "b": 3 })))
        .await?;
    modern.cancel().await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
