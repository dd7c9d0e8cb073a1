//! Quick start: a real MCP server (rmcp, axum) with the analytics layer in front, and the
//! collector's dashboard showing what it saw.
//!
//! ```text
//! cargo run --example quickstart             # serve until Ctrl-C; open the printed dashboard URL
//! cargo run --example quickstart -- --once   # run the demo, print a summary, exit
//! cargo run --example quickstart -- --stdout # no collector: events as JSON lines on stdout
//! ```
//!
//! The layer identifies users by their `x-user-id` header and sends events to an embedded
//! collector (`mcp-analytics-collector`) on a fresh SQLite file. On start, a demo replays
//! a day of traffic: alice with Claude Desktop and then Cursor, bob with Cursor, and
//! an anonymous caller. Its calls are stamped over the past eleven hours (the layer's
//! `clock`), so the dashboard opens on charts and grouped sessions; your own calls
//! afterwards carry the real time. `PORT` (default 8000) and `DASHBOARD_PORT` (default
//! 8700) change the ports.

#[path = "support/demo_server.rs"]
mod demo_server;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use mcp_analytics_collector::store::Filter;
use mcp_analytics_collector::{Collector, shutdown_signal};
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, GetPromptRequestParams,
    Implementation, ProtocolVersion,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt};
use serde_json::json;
use tower_mcp_analytics::insights::{IntentCapture, MissingTools};
use tower_mcp_analytics::{AnalyticsLayer, HttpSink, JsonLinesSink, identity};

/// The header the layer reads users from.
const USER_HEADER: &str = "x-user-id";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rmcp::service=error".into()),
        )
        .init();
    let once = std::env::args().any(|arg| arg == "--once");
    let stdout = std::env::args().any(|arg| arg == "--stdout");
    let port = |name: &str, default: u16| -> anyhow::Result<u16> {
        Ok(match std::env::var(name) {
            Ok(port) => port.parse()?,
            Err(_) if once => 0,
            Err(_) => default,
        })
    };

    // The collector: ingest at /v1/events, the dashboard at /.
    let mut collector_task = None;
    let mut store = None;
    let sink_url = if stdout {
        None
    } else {
        let database = std::env::temp_dir().join("tower-mcp-analytics-quickstart.db");
        for stale in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{stale}", database.display()));
        }
        let collector = Collector::builder().database(&database).build()?;
        store = Some(collector.store());
        let listener =
            tokio::net::TcpListener::bind(("127.0.0.1", port("DASHBOARD_PORT", 8700)?)).await?;
        let address = listener.local_addr()?;
        eprintln!(
            "Dashboard: http://{address}/   (events stored in {})",
            database.display()
        );
        collector_task = Some(tokio::spawn(collector.serve(listener, shutdown_signal())));
        Some(format!("http://{address}/v1/events"))
    };

    // The one line this crate is about: the layer in front of the MCP service.
    let clock = DemoClock::default();
    let analytics = AnalyticsLayer::builder()
        .identify(identity::from_header(USER_HEADER))
        // Opt-in insights: agents say why they call each tool, and ask for missing ones.
        .capture_intent(IntentCapture::new())
        .missing_tools(MissingTools::new())
        .clock(clock.reader());
    let analytics = match &sink_url {
        Some(url) => analytics.sink(HttpSink::new(url.as_str())),
        None => analytics.sink(JsonLinesSink::stdout()),
    }
    .build();
    let app = Router::new()
        .nest_service(
            "/mcp",
            demo_server::mcp_service(demo_server::Mode::LegacyStateful),
        )
        .layer(analytics.clone());

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port("PORT", 8000)?)).await?;
    let url = format!("http://{}/mcp", listener.local_addr()?);
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
    });
    eprintln!("MCP server with analytics: {url}");

    demo(&url, &clock).await?;
    clock.back_to_now();
    analytics.flush().await;
    if let Some(store) = &store {
        let everything = Filter {
            from: 0,
            to: i64::MAX,
            ..Filter::default()
        };
        let sessions = store.sessions(&everything, 100)?;
        eprintln!(
            "The demo made {} events in {} sessions; they are on the dashboard.",
            store.count()?,
            sessions.len()
        );
    }
    if !once {
        eprintln!(
            "Point an MCP client (Streamable HTTP) at {url} (add an `{USER_HEADER}` header to \
             be a user); Ctrl-C to stop."
        );
        server.await??;
    }
    let report = analytics.shutdown(Duration::from_secs(5)).await;
    eprintln!(
        "analytics: {} events recorded, {} delivered, {} dropped",
        report.stats.recorded,
        report.stats.delivered,
        report.stats.dropped.total()
    );
    if let Some(task) = collector_task {
        task.abort();
    }
    Ok(())
}

/// A wall clock running `behind` the real one while the demo replays the day.
#[derive(Clone, Default)]
struct DemoClock {
    behind_ms: Arc<AtomicU64>,
}

impl DemoClock {
    fn set_minutes_ago(&self, minutes: u64) {
        self.behind_ms.store(minutes * 60_000, Ordering::Relaxed);
    }

    fn back_to_now(&self) {
        self.behind_ms.store(0, Ordering::Relaxed);
    }

    fn reader(&self) -> impl Fn() -> SystemTime + Send + Sync + 'static {
        let behind = Arc::clone(&self.behind_ms);
        move || SystemTime::now() - Duration::from_millis(behind.load(Ordering::Relaxed))
    }
}

/// One visit of the replayed day: who, from which client, when, and what they do.
struct Visit {
    minutes_ago: u64,
    user: Option<&'static str>,
    client: &'static str,
    /// A 2025-11-25 client with an MCP session, or a 2026-07-28 stateless one.
    legacy: bool,
    calls: &'static [(&'static str, &'static str)],
}

/// The day so far, in sessions: alice's Claude Desktop MCP session (a legacy client: the
/// MCP session is the session), then her stateless calls, grouped by user + client + 30
/// minutes of inactivity (three Claude Desktop sessions, hours apart, and two on Cursor);
/// bob's three Cursor sessions; and an anonymous call, a session of its own.
const MORNING: &[Visit] = &[
    visit(
        660,
        Some("alice"),
        "claude-ai",
        true,
        &[
            (
                "echo",
                r#"{"text":"good morning","context":"The user greets the team."}"#,
            ),
            (
                "add",
                r#"{"a":2,"b":3,"context":"Adding up two invoice lines."}"#,
            ),
            ("progress", r#"{"steps":3}"#),
        ],
    ),
    visit(
        600,
        Some("bob"),
        "cursor-vscode",
        false,
        &[
            ("add", r#"{"a":40,"b":2}"#),
            (UNKNOWN_TOOL, r#"{}"#),
            ("fail", r#"{"reason":"the file is locked"}"#),
            ("echo", r#"{"text":"retrying"}"#),
        ],
    ),
    visit(
        560,
        Some("alice"),
        "claude-ai",
        false,
        &[
            ("echo", r#"{"text":"where was I?"}"#),
            ("big", r#"{"bytes":2048}"#),
        ],
    ),
    visit(
        430,
        Some("alice"),
        "cursor-vscode",
        false,
        &[
            ("add", r#"{"a":7,"b":35}"#),
            ("progress", r#"{"steps":2}"#),
            ("add", r#"{"a":1,"b":1}"#),
        ],
    ),
    visit(
        340,
        Some("bob"),
        "cursor-vscode",
        false,
        &[
            ("echo", r#"{"text":"lunch?"}"#),
            ("big", r#"{"bytes":512}"#),
        ],
    ),
    visit(
        250,
        Some("alice"),
        "claude-ai",
        false,
        &[
            ("echo", r#"{"text":"afternoon"}"#),
            (
                "get_more_tools",
                r#"{"context":"A tool that sends this summary by email."}"#,
            ),
            ("fail", r#"{"reason":"quota exceeded"}"#),
            ("add", r#"{"a":9,"b":10}"#),
            ("progress", r#"{"steps":4}"#),
        ],
    ),
    visit(
        150,
        Some("alice"),
        "cursor-vscode",
        false,
        &[
            ("echo", r#"{"text":"refactor"}"#),
            ("add", r#"{"a":3,"b":4}"#),
        ],
    ),
    visit(
        90,
        Some("bob"),
        "cursor-vscode",
        false,
        &[
            ("add", r#"{"a":5,"b":8}"#),
            ("fail", r#"{"reason":"merge conflict"}"#),
        ],
    ),
    visit(
        30,
        Some("alice"),
        "claude-ai",
        false,
        &[
            ("echo", r#"{"text":"wrap up"}"#),
            ("big", r#"{"bytes":4096}"#),
        ],
    ),
    visit(
        20,
        None,
        "claude-ai",
        false,
        &[("echo", r#"{"text":"who am I?"}"#)],
    ),
];

/// A tool the demo server does not have: the dashboard lists it under "Unknown tools".
const UNKNOWN_TOOL: &str = "summarize_inbox";

const fn visit(
    minutes_ago: u64,
    user: Option<&'static str>,
    client: &'static str,
    legacy: bool,
    calls: &'static [(&'static str, &'static str)],
) -> Visit {
    Visit {
        minutes_ago,
        user,
        client,
        legacy,
        calls,
    }
}

/// Replays [`MORNING`] against the server at `url`, each call a minute after the last.
async fn demo(url: &str, clock: &DemoClock) -> anyhow::Result<()> {
    for visit in MORNING {
        clock.set_minutes_ago(visit.minutes_ago);
        let mut headers = HashMap::new();
        if let Some(user) = visit.user {
            headers.insert(USER_HEADER.parse()?, user.parse()?);
        }
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(url.to_owned()).custom_headers(headers),
        );
        let (version, lifecycle) = if visit.legacy {
            (
                ProtocolVersion::V_2025_11_25,
                ClientLifecycleMode::Initialize,
            )
        } else {
            (
                ProtocolVersion::V_2026_07_28,
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                },
            )
        };
        let client = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new(visit.client, "1.0.0"),
        )
        .with_protocol_version(version)
        .serve_with_lifecycle(transport, lifecycle)
        .await?;
        client.list_tools(None).await?;
        for (minute, (tool, arguments)) in visit.calls.iter().enumerate() {
            clock.set_minutes_ago(visit.minutes_ago.saturating_sub(minute as u64 + 1));
            let arguments: serde_json::Value = serde_json::from_str(arguments)?;
            let arguments = arguments.as_object().cloned().unwrap_or_default();
            let called = client
                .call_tool(CallToolRequestParams::new(*tool).with_arguments(arguments))
                .await;
            // A tool the server does not have is answered with an error, as it should be.
            if let Err(error) = called
                && *tool != UNKNOWN_TOOL
            {
                return Err(error.into());
            }
        }
        if visit.legacy {
            client
                .get_prompt(
                    GetPromptRequestParams::new("greeting").with_arguments(
                        json!({ "name": "alice" })
                            .as_object()
                            .cloned()
                            .unwrap_or_default(),
                    ),
                )
                .await?;
        }
        client.cancel().await?;
    }
    Ok(())
}
