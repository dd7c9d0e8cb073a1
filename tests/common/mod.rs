//! Shared helpers for the integration tests: a demo MCP server behind an
//! optional wrapping layer, rmcp clients speaking the legacy (initialize) and
//! the 2026-07-28 (discover) lifecycles, and a raw HTTP client for byte-level
//! comparisons.
//!
//! Note: every request an rmcp 3.9 client sends carries a
//! `_meta.progressToken` (the peer always sets one), so "a request without a
//! progress token" can only be produced with [`raw_post`].

// Each test crate uses a different subset of these helpers. Logging
// (`notifications/message`) is deprecated by SEP-2577 but still on the wire.
#![allow(dead_code, deprecated)]

pub mod collector;
#[path = "../../examples/support/demo_server.rs"]
pub mod demo_server;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context as _, anyhow, bail};
use rmcp::{
    ClientHandler, ClientLifecycleMode, ClientServiceExt, RoleClient,
    model::{
        CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ClientRequest,
        GetPromptRequestParams, GetPromptResult, Implementation, JsonObject,
        LoggingMessageNotificationParam, ProgressNotificationParam, ProgressToken, ProtocolVersion,
        ReadResourceRequestParams, ReadResourceResult, Request, ServerResult, Tool,
    },
    service::{NotificationContext, PeerRequestOptions, QuitReason, RequestHandle, RunningService},
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Value, json};

pub use demo_server::{Mode, mcp_service};

/// How long helpers wait for asynchronously delivered notifications.
pub const NOTIFICATION_WAIT: Duration = Duration::from_secs(5);

/// Protocol version a legacy (initialize) client asks for by default.
pub const LEGACY_VERSION: ProtocolVersion = ProtocolVersion::V_2025_11_25;
/// Protocol version of the discover lifecycle.
pub const MODERN_VERSION: ProtocolVersion = ProtocolVersion::V_2026_07_28;

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

/// A running demo server. Dropping it aborts the server task.
#[derive(Debug)]
pub struct Server {
    /// Bound loopback address.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    /// The mode the MCP service runs in.
    pub mode: Mode,
    handle: tokio::task::JoinHandle<()>,
}

impl Server {
    /// `http://127.0.0.1:PORT{path}`.
    pub fn url_for(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Serves `Router::new().nest_service("/mcp", mcp_service(mode))`, passed
/// through `wrap` (e.g. `|r| r.layer(analytics_layer)`, or `|r| r`).
pub async fn spawn(mode: Mode, wrap: impl FnOnce(axum::Router) -> axum::Router) -> Server {
    spawn_router(
        mode,
        wrap(axum::Router::new().nest_service("/mcp", mcp_service(mode))),
    )
    .await
}

/// Serves an already built router whose MCP endpoint is at `/mcp`.
pub async fn spawn_router(mode: Mode, router: axum::Router) -> Server {
    let (addr, handle) = demo_server::serve(router).await;
    Server {
        addr,
        url: format!("http://{addr}/mcp"),
        mode,
        handle,
    }
}

// ---------------------------------------------------------------------------
// rmcp clients
// ---------------------------------------------------------------------------

/// Notifications a [`TestClient`] has received, shared with the test.
#[derive(Debug, Clone, Default)]
pub struct ClientEvents {
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    logs: Arc<Mutex<Vec<LoggingMessageNotificationParam>>>,
}

impl ClientEvents {
    /// All progress notifications received so far.
    pub fn progress(&self) -> Vec<ProgressNotificationParam> {
        lock(&self.progress).clone()
    }

    /// Progress notifications received so far for `token`.
    pub fn progress_for(&self, token: &ProgressToken) -> Vec<ProgressNotificationParam> {
        lock(&self.progress)
            .iter()
            .filter(|p| &p.progress_token == token)
            .cloned()
            .collect()
    }

    /// All `notifications/message` log messages received so far.
    pub fn logs(&self) -> Vec<LoggingMessageNotificationParam> {
        lock(&self.logs).clone()
    }

    /// Waits (up to [`NOTIFICATION_WAIT`]) until `token` has `expected`
    /// progress notifications; returns what arrived.
    pub async fn wait_for_progress(
        &self,
        token: &ProgressToken,
        expected: usize,
    ) -> Vec<ProgressNotificationParam> {
        let deadline = tokio::time::Instant::now() + NOTIFICATION_WAIT;
        loop {
            let got = self.progress_for(token);
            if got.len() >= expected || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits (up to [`NOTIFICATION_WAIT`]) until at least `expected` log
    /// messages arrived; returns what arrived.
    pub async fn wait_for_logs(&self, expected: usize) -> Vec<LoggingMessageNotificationParam> {
        let deadline = tokio::time::Instant::now() + NOTIFICATION_WAIT;
        loop {
            let got = self.logs();
            if got.len() >= expected || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The client handler used by [`legacy_client`] and [`modern_client`]: it
/// identifies as `client_name` / `1.0.0` and records notifications.
#[derive(Debug, Clone)]
pub struct TestClient {
    config: ClientConfig,
    /// Notifications received by this client.
    pub events: ClientEvents,
}

impl TestClient {
    /// A client identifying as `client_name` / `1.0.0` asking for `version`.
    pub fn new(client_name: &str, version: ProtocolVersion) -> Self {
        Self {
            config: ClientConfig::new(
                ClientCapabilities::default(),
                Implementation::new(client_name, "1.0.0"),
            )
            .with_protocol_version(version),
            events: ClientEvents::default(),
        }
    }
}

impl ClientHandler for TestClient {
    fn get_info(&self) -> ClientConfig {
        self.config.clone()
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        lock(&self.events.progress).push(params);
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        lock(&self.events.logs).push(params);
    }
}

/// A running rmcp client.
pub type Client = RunningService<RoleClient, TestClient>;

/// Connects with the legacy `initialize` handshake (asking for
/// [`LEGACY_VERSION`]); client info `client_name` / `1.0.0`.
pub async fn legacy_client(url: &str, client_name: &str) -> Client {
    legacy_client_with_version(url, client_name, LEGACY_VERSION).await
}

/// [`legacy_client`] asking for a specific protocol version in `initialize`.
pub async fn legacy_client_with_version(
    url: &str,
    client_name: &str,
    version: ProtocolVersion,
) -> Client {
    TestClient::new(client_name, version)
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_uri(url.to_owned()),
            ClientLifecycleMode::Initialize,
        )
        .await
        .expect("legacy client initializes")
}

/// Connects with the discover lifecycle for 2026-07-28 (no session; every
/// request carries its client context in `_meta`).
pub async fn modern_client(url: &str, client_name: &str) -> Client {
    TestClient::new(client_name, MODERN_VERSION)
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_uri(url.to_owned()),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![MODERN_VERSION],
            },
        )
        .await
        .expect("modern client discovers")
}

/// The protocol version the client ended up with.
pub fn negotiated_version(client: &Client) -> Option<ProtocolVersion> {
    client.peer_info().map(|info| info.protocol_version.clone())
}

/// `value` (which must be a JSON object) as tool/prompt arguments.
pub fn arguments(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        Value::Null => JsonObject::new(),
        other => panic!("arguments must be a JSON object, got {other}"),
    }
}

fn tool_params(name: &str, args: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_owned()).with_arguments(arguments(args))
}

/// `tools/list` (single page).
pub async fn list_tools(client: &Client) -> anyhow::Result<Vec<Tool>> {
    Ok(client.list_tools(None).await?.tools)
}

/// `tools/call name args`. (rmcp still attaches a progress token.)
pub async fn call_tool(client: &Client, name: &str, args: Value) -> anyhow::Result<CallToolResult> {
    Ok(client.call_tool(tool_params(name, args)).await?)
}

/// `tools/call` and the progress notifications the client received for the
/// request's progress token: waits (up to [`NOTIFICATION_WAIT`]) after the
/// response until `expected` of them arrived, since rmcp dispatches
/// notifications on separate tasks.
pub async fn call_tool_with_progress(
    client: &Client,
    name: &str,
    args: Value,
    expected: usize,
) -> anyhow::Result<(CallToolResult, Vec<ProgressNotificationParam>)> {
    let handle = start_tool_call(client, name, args).await?;
    let token = handle.progress_token.clone();
    let result = finish_tool_call(handle).await?;
    let progress = client
        .service()
        .events
        .wait_for_progress(&token, expected)
        .await;
    Ok((result, progress))
}

/// Sends `tools/call` and returns the in-flight handle (its `progress_token`
/// and `id` identify the request); see [`finish_tool_call`] and
/// [`cancel_request`].
pub async fn start_tool_call(
    client: &Client,
    name: &str,
    args: Value,
) -> anyhow::Result<RequestHandle<RoleClient>> {
    Ok(client
        .send_cancellable_request(
            ClientRequest::CallToolRequest(Request::new(tool_params(name, args))),
            PeerRequestOptions::no_options(),
        )
        .await?)
}

/// Awaits the result of a request started with [`start_tool_call`].
pub async fn finish_tool_call(handle: RequestHandle<RoleClient>) -> anyhow::Result<CallToolResult> {
    match handle.await_response().await? {
        ServerResult::CallToolResult(result) => Ok(result),
        other => Err(anyhow!("unexpected tools/call response: {other:?}")),
    }
}

/// Sends `notifications/cancelled` for an in-flight request.
pub async fn cancel_request(
    handle: RequestHandle<RoleClient>,
    reason: Option<&str>,
) -> anyhow::Result<()> {
    Ok(handle.cancel(reason.map(str::to_owned)).await?)
}

/// `prompts/get greeting { name }`.
pub async fn get_greeting(client: &Client, name: &str) -> anyhow::Result<GetPromptResult> {
    Ok(client
        .get_prompt(
            GetPromptRequestParams::new("greeting")
                .with_arguments(arguments(json!({ "name": name }))),
        )
        .await?)
}

/// `resources/read demo://readme`.
pub async fn read_readme(client: &Client) -> anyhow::Result<ReadResourceResult> {
    Ok(client
        .read_resource(ReadResourceRequestParams::new(demo_server::README_URI))
        .await?)
}

/// Stops the client. A legacy client with a session sends `DELETE` (with
/// `Mcp-Session-Id`) as its transport shuts down.
pub async fn close(client: Client) -> anyhow::Result<QuitReason> {
    Ok(client.cancel().await?)
}

/// Concatenated text content of a tool result.
pub fn result_text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|t| t.text.as_str()))
        .collect()
}

// ---------------------------------------------------------------------------
// Raw HTTP
// ---------------------------------------------------------------------------

/// A fully read HTTP response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// In wire order; names lower-cased.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Exactly the bytes on the wire after de-chunking (never decompressed).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// First value of header `name` (case-insensitive), if it is UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The `content-type` header, or "".
    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }

    /// Whether the body is an SSE stream.
    pub fn is_sse(&self) -> bool {
        self.content_type().starts_with("text/event-stream")
    }

    /// Body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Body parsed as one JSON value.
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body).context("response body is not JSON")
    }

    /// The JSON-RPC messages of the body: the `data:` payloads of an SSE
    /// body (empty priming events skipped), or the single JSON body.
    pub fn messages(&self) -> anyhow::Result<Vec<Value>> {
        if self.is_sse() {
            sse_data(&self.text())
                .into_iter()
                .filter(|data| !data.trim().is_empty())
                .map(|data| serde_json::from_str(&data).context("SSE data is not JSON"))
                .collect()
        } else {
            Ok(vec![self.json()?])
        }
    }

    /// The last JSON-RPC message that carries an `id` and a `result` or
    /// `error` (the response).
    pub fn response_message(&self) -> anyhow::Result<Value> {
        self.messages()?
            .into_iter()
            .rev()
            .find(|m| {
                m.get("id").is_some() && (m.get("result").is_some() || m.get("error").is_some())
            })
            .ok_or_else(|| anyhow!("no JSON-RPC response in body: {}", self.text()))
    }
}

/// The `data` of each SSE event (multi-line data joined with '\n').
pub fn sse_data(body: &str) -> Vec<String> {
    let mut events = Vec::new();
    let mut data: Option<String> = None;
    for line in body.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if let Some(d) = data.take() {
                events.push(d);
            }
            continue;
        }
        if let Some(value) = line.strip_prefix("data:") {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            }
        }
    }
    if let Some(d) = data {
        events.push(d);
    }
    events
}

/// A reqwest client that never decompresses and keeps no idle connection.
pub fn raw_http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_gzip()
        .pool_max_idle_per_host(0)
        .build()
        .expect("build reqwest client")
}

/// POSTs `body` with exactly `headers` (plus reqwest's `host`,
/// `content-length`; no `accept-encoding` unless given) and reads the whole
/// response without decompressing it.
pub async fn raw_post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> RawResponse {
    raw_request(reqwest::Method::POST, url, headers, body.to_vec()).await
}

/// Like [`raw_post`] with any method (e.g. `DELETE`, `GET`).
pub async fn raw_request(
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> RawResponse {
    let mut request = raw_http_client().request(method, url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.body(body).send().await.expect("raw request sent");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    let body = response
        .bytes()
        .await
        .expect("raw response body read")
        .to_vec();
    RawResponse {
        status,
        headers,
        body,
    }
}

/// Headers rmcp 3.9 needs on a legacy (no `_meta` protocol version) POST:
/// both media types in `Accept`, JSON `Content-Type`, and a known
/// `MCP-Protocol-Version` below 2026-07-28 (optional; absent means 2025-03-26).
pub fn legacy_headers(version: &str) -> Vec<(&'static str, String)> {
    vec![
        ("accept", "application/json, text/event-stream".to_owned()),
        ("content-type", "application/json".to_owned()),
        ("mcp-protocol-version", version.to_owned()),
    ]
}

/// Headers rmcp 3.9 needs on a 2026-07-28 POST of `method` (SEP-2243):
/// `MCP-Protocol-Version: 2026-07-28`, `Mcp-Method`, and `Mcp-Name` for
/// `tools/call`/`prompts/get` (params.name) and `resources/read` (params.uri).
pub fn modern_headers(method: &str, name: Option<&str>) -> Vec<(&'static str, String)> {
    let mut headers = legacy_headers("2026-07-28");
    headers.push(("mcp-method", method.to_owned()));
    if let Some(name) = name {
        headers.push(("mcp-name", name.to_owned()));
    }
    headers
}

/// Borrowing view of an owned header list, for [`raw_post`].
pub fn header_refs<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    headers.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

/// [`raw_post`] of a JSON `body` with an owned header list (e.g. from
/// [`legacy_headers`]).
pub async fn raw_post_json(
    url: &str,
    headers: &[(&'static str, String)],
    body: &Value,
) -> RawResponse {
    raw_post(url, &header_refs(headers), body.to_string().as_bytes()).await
}

/// A legacy `tools/call` body (no per-request protocol metadata), with an
/// optional `_meta.progressToken`.
pub fn legacy_tools_call_body(
    id: i64,
    name: &str,
    args: Value,
    progress_token: Option<&str>,
) -> Value {
    let mut params = json!({ "name": name, "arguments": args });
    if let Some(token) = progress_token {
        params["_meta"] = json!({ "progressToken": token });
    }
    json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params })
}

/// The `_meta` a 2026-07-28 request must carry: protocol version and client
/// capabilities are required by rmcp; client info is sent by rmcp clients.
pub fn modern_meta(client_name: &str) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": { "name": client_name, "version": "1.0.0" },
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}

/// A 2026-07-28 `tools/call` body, with an optional `_meta.progressToken`.
pub fn modern_tools_call_body(
    id: i64,
    name: &str,
    args: Value,
    client_name: &str,
    progress_token: Option<&str>,
) -> Value {
    let mut meta = modern_meta(client_name);
    if let Some(token) = progress_token {
        meta["progressToken"] = json!(token);
    }
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": { "name": name, "arguments": args, "_meta": meta }
    })
}

/// Raw legacy stateless `tools/call` (works in the stateless modes; in
/// `LegacyStateful` it needs an `Mcp-Session-Id`, see [`raw_initialize`]).
pub async fn raw_legacy_tools_call(
    url: &str,
    version: &str,
    name: &str,
    args: Value,
    progress_token: Option<&str>,
) -> RawResponse {
    let body = legacy_tools_call_body(1, name, args, progress_token);
    raw_post_json(url, &legacy_headers(version), &body).await
}

/// Raw 2026-07-28 `tools/call` (served statelessly in every mode).
pub async fn raw_modern_tools_call(
    url: &str,
    name: &str,
    args: Value,
    progress_token: Option<&str>,
) -> RawResponse {
    let body = modern_tools_call_body(1, name, args, "raw-client", progress_token);
    raw_post_json(url, &modern_headers("tools/call", Some(name)), &body).await
}

/// Raw legacy `initialize` (+ `notifications/initialized`). Returns the
/// initialize response and the `Mcp-Session-Id` (present only in
/// `LegacyStateful` mode).
pub async fn raw_initialize(
    url: &str,
    version: &str,
    client_name: &str,
) -> anyhow::Result<(RawResponse, Option<String>)> {
    let init = json!({
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": { "name": client_name, "version": "1.0.0" }
        }
    });
    let headers = [
        ("accept", "application/json, text/event-stream"),
        ("content-type", "application/json"),
    ];
    let response = raw_post(url, &headers, init.to_string().as_bytes()).await;
    if response.status != 200 {
        bail!("initialize failed: {} {}", response.status, response.text());
    }
    let session = response.header("mcp-session-id").map(str::to_owned);
    let mut headers = legacy_headers(version);
    if let Some(session) = &session {
        headers.push(("mcp-session-id", session.clone()));
    }
    let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    let ack = raw_post_json(url, &headers, &initialized).await;
    if ack.status != 202 {
        bail!(
            "notifications/initialized got {} {}",
            ack.status,
            ack.text()
        );
    }
    Ok((response, session))
}

// ---------------------------------------------------------------------------
// rmcp clients over a chosen HTTP client
// ---------------------------------------------------------------------------

/// A reqwest client for rmcp transports that sends `user_agent` and `headers` on every
/// request (configured like rmcp's default client: no idle connection pooling).
pub fn http_client_with(
    user_agent: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<reqwest::Client> {
    let mut defaults = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        defaults.insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes())?,
            reqwest::header::HeaderValue::from_str(value)?,
        );
    }
    Ok(reqwest::Client::builder()
        .user_agent(user_agent)
        .default_headers(defaults)
        .pool_max_idle_per_host(0)
        .build()?)
}

/// [`legacy_client`] whose requests go through `http` (e.g. from [`http_client_with`]).
pub async fn legacy_client_over(
    http: reqwest::Client,
    url: &str,
    client_name: &str,
) -> anyhow::Result<Client> {
    client_over(
        http,
        url,
        client_name,
        LEGACY_VERSION,
        ClientLifecycleMode::Initialize,
    )
    .await
}

/// [`modern_client`] whose requests go through `http` (e.g. from [`http_client_with`]).
pub async fn modern_client_over(
    http: reqwest::Client,
    url: &str,
    client_name: &str,
) -> anyhow::Result<Client> {
    let lifecycle = ClientLifecycleMode::Discover {
        preferred_versions: vec![MODERN_VERSION],
    };
    client_over(http, url, client_name, MODERN_VERSION, lifecycle).await
}

async fn client_over(
    http: reqwest::Client,
    url: &str,
    client_name: &str,
    version: ProtocolVersion,
    lifecycle: ClientLifecycleMode,
) -> anyhow::Result<Client> {
    let transport = StreamableHttpClientTransport::with_client(
        http,
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()),
    );
    TestClient::new(client_name, version)
        .serve_with_lifecycle(transport, lifecycle)
        .await
        .with_context(|| format!("{client_name} connects to {url}"))
}
