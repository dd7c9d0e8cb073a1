//! `mcp-analytics-collector`: the collector as a server process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use mcp_analytics_collector::Collector;

/// Collects tower-mcp-analytics events into SQLite and serves their dashboard.
///
/// Point the layer's `HttpSink` at `http://<bind>/v1/events` and open `http://<bind>/`.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on. Anything but loopback should come with --api-key and
    /// --dashboard-password (or sit behind a proxy that authenticates).
    #[arg(long, env = "MCP_ANALYTICS_BIND", default_value = "127.0.0.1:8700")]
    bind: SocketAddr,
    /// The SQLite file, created on first run.
    #[arg(long, env = "MCP_ANALYTICS_DB", default_value = "mcp-analytics.db")]
    db: PathBuf,
    /// Require `Authorization: Bearer <key>` on ingest.
    #[arg(long, env = "MCP_ANALYTICS_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Require this password for the dashboard and the JSON API (Basic or Bearer).
    #[arg(long, env = "MCP_ANALYTICS_DASHBOARD_PASSWORD", hide_env_values = true)]
    dashboard_password: Option<String>,
    /// Delete events older than this many days (0: keep forever).
    #[arg(long, env = "MCP_ANALYTICS_RETENTION_DAYS", default_value_t = 30)]
    retention_days: u32,
    /// Minutes of inactivity that end a session of one user and client.
    #[arg(long, env = "MCP_ANALYTICS_SESSION_GAP_MINUTES", default_value_t = 30)]
    session_gap_minutes: u64,
    /// The largest batch body taken, in bytes.
    #[arg(long, env = "MCP_ANALYTICS_MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024)]
    max_body_bytes: usize,
    /// The most events taken in one batch.
    #[arg(long, env = "MCP_ANALYTICS_MAX_BATCH_EVENTS", default_value_t = 5000)]
    max_batch_events: usize,
    /// Bytes of event JSON waiting to be written, at most (past it: 429 and Retry-After).
    #[arg(long, env = "MCP_ANALYTICS_QUEUE_BYTES", default_value_t = 64 * 1024 * 1024)]
    queue_bytes: usize,
    /// The most events one dashboard view reads (past it: 422, asking for a narrower range).
    #[arg(
        long,
        env = "MCP_ANALYTICS_MAX_VIEW_EVENTS",
        default_value_t = 2_000_000
    )]
    max_view_events: usize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    if !args.bind.ip().is_loopback()
        && (args.api_key.is_none() || args.dashboard_password.is_none())
    {
        tracing::warn!(
            bind = %args.bind,
            "listening beyond loopback without --api-key and --dashboard-password: anyone who \
             can reach this port can send events or read them"
        );
    }
    let mut builder = Collector::builder()
        .database(&args.db)
        .retention_days(args.retention_days)
        .session_gap(Duration::from_secs(args.session_gap_minutes * 60))
        .max_body_bytes(args.max_body_bytes)
        .max_batch_events(args.max_batch_events)
        .queue_bytes(args.queue_bytes)
        .max_view_events(args.max_view_events);
    if let Some(key) = &args.api_key {
        builder = builder.api_key(key);
    }
    if let Some(password) = &args.dashboard_password {
        builder = builder.dashboard_password(password);
    }
    let collector = builder.build()?;
    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    let address = listener.local_addr()?;
    tracing::info!(db = %args.db.display(), "storing events");
    tracing::info!("dashboard: http://{address}/   ingest: http://{address}/v1/events");
    collector
        .serve(listener, mcp_analytics_collector::shutdown_signal())
        .await?;
    Ok(())
}
