//! Sessions demo: how the analytics layer groups the calls of a stateless MCP server into
//! sessions, by user + AI client + a 30-minute inactivity window.
//!
//! ```text
//! cargo run --example sessions_demo
//! ```
//!
//! A real MCP server (rmcp 3.9, stateless, JSON responses) runs on a loopback port behind
//! the layer. The layer identifies users by their `x-user-id` header and reads time from
//! a manual clock, so an hour of traffic runs in a moment: alice with Claude Desktop at
//! 10:00, bob with Cursor at 10:02, alice with Claude Desktop again at 10:15 (same
//! session), alice with Cursor at 10:20 (another client, another session), alice with
//! Claude Desktop at 10:55 (40 minutes after her last call: a new session), and an
//! anonymous call at 10:56 (a session of its own). Prints one line per call.

#[path = "support/demo_server.rs"]
mod demo_server;
#[path = "support/sessions_scenario.rs"]
mod sessions_scenario;

use std::time::Duration;

use axum::Router;
use tower_mcp_analytics::MemorySink;

use sessions_scenario::ManualClock;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let clock = ManualClock::new(sessions_scenario::at(10, 0));
    let sink = MemorySink::new();
    let analytics = sessions_scenario::analytics_layer(&clock, &sink);
    let app = Router::new()
        .nest_service(
            "/mcp",
            demo_server::mcp_service(demo_server::Mode::StatelessJson),
        )
        .layer(analytics.clone());
    let (addr, server) = demo_server::serve(app).await;

    let rows =
        sessions_scenario::run(&format!("http://{addr}/mcp"), &clock, &analytics, &sink).await?;
    print!("{}", sessions_scenario::render(&rows));

    let report = analytics.shutdown(Duration::from_secs(5)).await;
    server.abort();
    eprintln!(
        "analytics: {} events recorded ({} tool calls and {} identify events), {} delivered",
        report.stats.recorded,
        rows.len(),
        sink.events()
            .iter()
            .filter(|e| e.event_type == "identify")
            .count(),
        report.stats.delivered,
    );
    Ok(())
}
