//! An rmcp server whose tools record the arguments they receive, so that a test can
//! assert what reached the server, behind a layer, in any transport mode.
//!
//! Tools: `record` (any object: `Parameters<JsonObject>`, whose schema has no
//! `properties`), `search { query }` (refuses any other argument), and `lookup { query, context }` (an argument named
//! `context` of its own).

#![allow(dead_code)]

use std::sync::{Arc, Mutex, PoisonError};

use rmcp::{
    ServerHandler,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{JsonObject, ServerCapabilities, ServerConfig},
    schemars, tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        StreamableHttpService, session::local::LocalSessionManager,
    },
};
use serde::Deserialize;

/// Every call a [`RecordingServer`] received: tool name and arguments.
pub type Received = Arc<Mutex<Vec<(String, JsonObject)>>>;

/// Refuses unknown arguments: a call carrying anything else fails.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchArgs {
    /// What to look for.
    pub query: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct LookupArgs {
    /// What to look up.
    pub query: String,
    /// The tool's own context argument.
    pub context: String,
}

/// The recording server.
#[derive(Clone)]
pub struct RecordingServer {
    received: Received,
    tool_router: ToolRouter<Self>,
}

impl RecordingServer {
    fn note(&self, tool: &str, arguments: JsonObject) {
        if let Ok(mut received) = self.received.lock() {
            received.push((tool.to_owned(), arguments));
        }
    }
}

#[tool_router]
impl RecordingServer {
    #[tool(description = "Record any arguments")]
    async fn record(&self, Parameters(arguments): Parameters<JsonObject>) -> String {
        let keys: Vec<String> = arguments.keys().cloned().collect();
        self.note("record", arguments);
        keys.join(",")
    }

    #[tool(description = "Search for a query")]
    async fn search(&self, Parameters(SearchArgs { query }): Parameters<SearchArgs>) -> String {
        let mut arguments = JsonObject::new();
        arguments.insert("query".into(), query.clone().into());
        self.note("search", arguments);
        format!("results for {query}")
    }

    #[tool(description = "Look up a query in a context of the tool's own")]
    async fn lookup(&self, Parameters(args): Parameters<LookupArgs>) -> String {
        let mut arguments = JsonObject::new();
        arguments.insert("query".into(), args.query.clone().into());
        arguments.insert("context".into(), args.context.clone().into());
        self.note("lookup", arguments);
        format!("{} in {}", args.query, args.context)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for RecordingServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// The recording server as a Streamable HTTP service in `mode`, and what it receives.
pub fn service(
    config: rmcp::transport::streamable_http_server::StreamableHttpServerConfig,
) -> (
    StreamableHttpService<RecordingServer, LocalSessionManager>,
    Received,
) {
    let received = Received::default();
    let shared = Arc::clone(&received);
    let service = StreamableHttpService::new(
        move || {
            Ok(RecordingServer {
                received: Arc::clone(&shared),
                tool_router: RecordingServer::tool_router(),
            })
        },
        Arc::new(LocalSessionManager::default()),
        config,
    );
    (service, received)
}

/// The arguments each call of `tool` reached the server with, in order.
pub fn received_by(received: &Received, tool: &str) -> Vec<serde_json::Value> {
    received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|(name, _)| name == tool)
        .map(|(_, arguments)| serde_json::Value::Object(arguments.clone()))
        .collect()
}
