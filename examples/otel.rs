//! OpenTelemetry: a real MCP server (rmcp, axum) whose every MCP message becomes an
//! `mcp.server` span and a `mcp.server.operation.duration` measurement, exported over
//! OTLP/HTTP to a local collector (an OpenTelemetry Collector, Jaeger, Grafana Tempo /
//! Alloy, ...).
//!
//! ```text
//! # e.g. Jaeger, with its OTLP/HTTP receiver on 4318 and its UI on 16686:
//! docker run --rm -p 16686:16686 -p 4318:4318 jaegertracing/jaeger:latest
//! cargo run --example otel --features otel-otlp             # serve until Ctrl-C
//! cargo run --example otel --features otel-otlp -- --once   # a few calls, export, exit
//! ```
//!
//! The exporter follows the standard variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (default
//! `http://localhost:4318`), `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`, ... Spans
//! and metrics replace the event sink here (`without_sink`); drop that line to keep
//! both. `PORT` (default 8000) changes the server's port.

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
use tower_mcp_analytics::otel::OpenTelemetry;
use tower_mcp_analytics::{AnalyticsLayer, identity};

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
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        eprintln!("(set OTEL_SERVICE_NAME to name this server in your backend)");
    }

    let layer = AnalyticsLayer::builder()
        .identify(identity::from_header("x-user-id"))
        .opentelemetry(OpenTelemetry::otlp_from_env()?.record_tool_arguments(true))
        .without_sink()
        .build();
    let app = Router::new()
        .nest_service(
            "/mcp",
            demo_server::mcp_service(demo_server::Mode::StatelessJson),
        )
        .layer(layer.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let url = format!("http://{}/mcp", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    eprintln!("MCP server with OpenTelemetry: {url}");

    if once {
        calls(&url).await?;
    } else {
        eprintln!("Point an MCP client (Streamable HTTP) at {url}; Ctrl-C to stop.");
        tokio::signal::ctrl_c().await?;
    }
    let report = layer.shutdown(Duration::from_secs(10)).await;
    let telemetry = report.stats.telemetry;
    eprintln!(
        "{} spans recorded; {} spans and {} metric exports failed",
        telemetry.spans, telemetry.spans_export_failed, telemetry.metric_exports_failed
    );
    server.abort();
    Ok(())
}

/// A client lists the tools, then calls one that works and one that fails.
async fn calls(url: &str) -> anyhow::Result<()> {
    let client = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("otel-example", "1.0.0"),
    )
    .with_protocol_version(ProtocolVersion::V_2026_07_28)
    .serve_with_lifecycle(
        StreamableHttpClientTransport::from_uri(url.to_owned()),
        ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await?;
    client.list_tools(None).await?;
    for (tool, arguments) in [
        ("add", json!({ "a": 2, "b": 3 })),
        ("fail", json!({ "reason": "quota exceeded" })),
    ] {
        let arguments = arguments.as_object().cloned().unwrap_or_default();
        client
            .call_tool(CallToolRequestParams::new(tool).with_arguments(arguments))
            .await?;
    }
    client.cancel().await?;
    Ok(())
}
