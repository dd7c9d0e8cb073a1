//! A small rmcp 3.9 MCP server used by the examples and the integration tests.
//!
//! It is not an example on its own (there is no `main`): include it with
//! `#[path = "support/demo_server.rs"] mod demo_server;` (from `examples/`) or
//! `#[path = "../../examples/support/demo_server.rs"] mod demo_server;` (from
//! `tests/common/`).
//!
//! The server exposes:
//!
//! * tools `echo { text }`, `add { a, b }`, `progress { steps }`,
//!   `fail { reason }` (an `isError: true` result) and `big { bytes }`;
//! * the prompt `greeting { name }`;
//! * the text resource `demo://readme`.
//!
//! [`mcp_service`] wraps it in rmcp's Streamable HTTP service in one of the
//! three transport [`Mode`]s and [`serve`] runs any axum router on an
//! ephemeral loopback port.

// Each includer uses a different subset of this module. Logging
// (`notifications/message`) is deprecated by SEP-2577 but still part of the
// protocol versions this server speaks.
#![allow(dead_code, deprecated)]

use std::{net::SocketAddr, sync::Arc};

use rmcp::{
    ErrorData, Peer, RoleServer, ServerHandler,
    handler::server::{
        router::{prompt::PromptRouter, tool::ToolRouter},
        wrapper::Parameters,
    },
    model::{
        CallToolResult, ContentBlock, Implementation, ListResourcesResult, LoggingLevel,
        LoggingMessageNotificationParam, PaginatedRequestParams, ProgressNotificationParam,
        PromptMessage, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
        RequestMetaObject, Resource, ResourceContents, Role, ServerCapabilities, ServerConfig,
    },
    prompt, prompt_handler, prompt_router, schemars,
    service::RequestContext,
    tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};
use serde::Deserialize;

/// Name reported in `serverInfo`.
pub const SERVER_NAME: &str = "demo-server";
/// Version reported in `serverInfo`.
pub const SERVER_VERSION: &str = "1.0.0";
/// URI of the single resource.
pub const README_URI: &str = "demo://readme";
/// Text of the single resource.
pub const README_TEXT: &str = "This is the demo server used by tower-mcp-analytics.\n";

/// Arguments of the `echo` tool.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    /// Text returned unchanged.
    pub text: String,
}

/// Arguments of the `add` tool.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AddArgs {
    /// Left operand.
    pub a: i64,
    /// Right operand.
    pub b: i64,
}

/// Arguments of the `progress` tool.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ProgressArgs {
    /// Number of progress notifications to send before the result.
    pub steps: u32,
}

/// Arguments of the `fail` tool.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct FailArgs {
    /// Text of the error result.
    pub reason: String,
}

/// Arguments of the `big` tool.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct BigArgs {
    /// Length of the returned text, in bytes.
    pub bytes: usize,
}

/// Arguments of the `greeting` prompt.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct GreetingArgs {
    /// Who to greet.
    pub name: String,
}

/// The demo MCP server.
#[derive(Debug, Clone)]
pub struct DemoServer {
    tool_router: ToolRouter<Self>,
    prompt_router: PromptRouter<Self>,
}

impl Default for DemoServer {
    fn default() -> Self {
        Self::new()
    }
}

impl DemoServer {
    /// A server with all tools and prompts registered.
    pub fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
            prompt_router: Self::prompt_router(),
        }
    }
}

#[tool_router]
impl DemoServer {
    /// Returns `text` unchanged.
    #[tool(description = "Echo the given text back")]
    async fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    /// Returns `a + b` as text, or an error result on overflow.
    #[tool(description = "Add two integers")]
    async fn add(
        &self,
        Parameters(AddArgs { a, b }): Parameters<AddArgs>,
    ) -> Result<String, String> {
        a.checked_add(b)
            .map(|sum| sum.to_string())
            .ok_or_else(|| format!("{a} + {b} overflows i64"))
    }

    /// Sends `steps` progress notifications (for the request's progress token)
    /// and returns "done". Without a progress token it logs one
    /// `notifications/message` per step instead, so the reply is still a
    /// multi-message (SSE) response.
    #[tool(description = "Report progress `steps` times, then return \"done\"")]
    async fn progress(
        &self,
        Parameters(ProgressArgs { steps }): Parameters<ProgressArgs>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
    ) -> Result<String, ErrorData> {
        let token = meta.get_progress_token();
        for step in 1..=steps {
            let sent = match &token {
                Some(token) => {
                    peer.notify_progress(
                        ProgressNotificationParam::new(token.clone(), f64::from(step))
                            .with_total(f64::from(steps))
                            .with_message(format!("step {step}/{steps}")),
                    )
                    .await
                }
                None => {
                    peer.notify_logging_message(
                        LoggingMessageNotificationParam::new(
                            LoggingLevel::Info,
                            serde_json::json!({ "step": step, "steps": steps }),
                        )
                        .with_logger(SERVER_NAME),
                    )
                    .await
                }
            };
            sent.map_err(|error| {
                ErrorData::internal_error(format!("failed to send step {step}: {error}"), None)
            })?;
        }
        Ok("done".to_owned())
    }

    /// Returns a tool result with `isError: true` and `reason` as its text.
    #[tool(description = "Return a tool error result with the given reason")]
    async fn fail(&self, Parameters(FailArgs { reason }): Parameters<FailArgs>) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(reason)])
    }

    /// Returns `bytes` 'x' characters.
    #[tool(description = "Return a text result of `bytes` 'x' characters")]
    async fn big(&self, Parameters(BigArgs { bytes }): Parameters<BigArgs>) -> String {
        "x".repeat(bytes)
    }
}

#[prompt_router]
impl DemoServer {
    /// A one-message greeting prompt.
    #[prompt(name = "greeting", description = "Greet someone by name")]
    async fn greeting(
        &self,
        Parameters(GreetingArgs { name }): Parameters<GreetingArgs>,
    ) -> Vec<PromptMessage> {
        vec![PromptMessage::new_text(
            Role::User,
            format!("Please greet {name} warmly."),
        )]
    }
}

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for DemoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .enable_logging()
                .build(),
        )
        .with_server_info(Implementation::new(SERVER_NAME, SERVER_VERSION))
        .with_instructions("A demo server: echo, add, progress, fail and big tools.")
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new(README_URI, "readme")
                .with_description("What this server is")
                .with_mime_type("text/plain"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if request.uri == README_URI {
            Ok(
                ReadResourceResult::new(vec![ResourceContents::text(README_TEXT, README_URI)])
                    .into(),
            )
        } else {
            Err(ErrorData::resource_not_found(
                format!("unknown resource {}", request.uri),
                None,
            ))
        }
    }
}

/// How the Streamable HTTP service is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `legacy_session_mode = true`: `initialize` creates an `Mcp-Session-Id`
    /// session; every response is SSE; `DELETE` ends the session.
    LegacyStateful,
    /// `legacy_session_mode = false`, `json_response = false`: no sessions,
    /// every request answered with SSE.
    StatelessSse,
    /// `legacy_session_mode = false`, `json_response = true`: no sessions,
    /// plain JSON replies unless the handler sends notifications first.
    StatelessJson,
}

impl Mode {
    /// All modes, for tests that loop over them.
    pub const ALL: [Mode; 3] = [
        Mode::LegacyStateful,
        Mode::StatelessSse,
        Mode::StatelessJson,
    ];

    /// Whether this mode keeps legacy sessions.
    pub fn is_stateful(self) -> bool {
        matches!(self, Mode::LegacyStateful)
    }
}

/// rmcp's default config (loopback `allowed_hosts`) adjusted for `mode`,
/// with SSE keep-alive pings disabled so responses are deterministic.
pub fn config_for(mode: Mode) -> StreamableHttpServerConfig {
    let (legacy_session_mode, json_response) = match mode {
        Mode::LegacyStateful => (true, false),
        Mode::StatelessSse => (false, false),
        Mode::StatelessJson => (false, true),
    };
    StreamableHttpServerConfig::default()
        .with_legacy_session_mode(legacy_session_mode)
        .with_json_response(json_response)
        .with_sse_keep_alive(None)
}

/// The demo server as a Streamable HTTP service in `mode`.
pub fn mcp_service(mode: Mode) -> StreamableHttpService<DemoServer, LocalSessionManager> {
    mcp_service_with(config_for(mode))
}

/// The demo server as a Streamable HTTP service with an explicit config
/// (start from [`config_for`] to keep the mode's settings).
pub fn mcp_service_with(
    config: StreamableHttpServerConfig,
) -> StreamableHttpService<DemoServer, LocalSessionManager> {
    StreamableHttpService::new(
        || Ok(DemoServer::new()),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// Serves `router` on `127.0.0.1:0` and returns the bound address and the
/// server task (abort it to stop the server).
pub async fn serve(router: axum::Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("listener has a local address");
    let handle = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            eprintln!("demo server stopped: {error}");
        }
    });
    (addr, handle)
}
