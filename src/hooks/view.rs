//! [`RequestView`] and [`McpMessage`]: what the request hooks see of a request.
//!
//! Owns the read-only window user hooks get on the request path: the request head and the
//! MCP messages parsed from its body, borrowed, never copied. Never runs a hook and never
//! keeps anything past the hook's call.

use crate::protocol::jsonrpc::ClientMessage;

/// What a hook sees of a request: its head (method, URI, headers, extensions such as the
/// claims an auth layer stored) and the MCP messages parsed from its body.
///
/// ```
/// use tower_mcp_analytics::{AnalyticsLayer, UserIdentity};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = AnalyticsLayer::builder()
///     .identify(|request| {
///         // e.g. a tenant header, or claims an auth middleware put in the extensions
///         let tenant = request.header("x-tenant")?;
///         let tool = request.messages().next().and_then(|m| m.name()).unwrap_or("-");
///         Some(UserIdentity::new(tenant).with_data(serde_json::json!({ "first_tool": tool })))
///     })
///     .build();
/// # }
/// ```
#[derive(Clone, Copy)]
pub struct RequestView<'a> {
    parts: &'a http::request::Parts,
    messages: &'a [ClientMessage],
}

impl<'a> RequestView<'a> {
    pub(crate) fn new(parts: &'a http::request::Parts, messages: &'a [ClientMessage]) -> Self {
        Self { parts, messages }
    }

    /// The request head: method, URI, version, headers and extensions.
    ///
    /// ```
    /// # use tower_mcp_analytics::RequestView;
    /// fn is_post(request: &RequestView<'_>) -> bool {
    ///     request.parts().method == http::Method::POST
    /// }
    /// ```
    pub fn parts(&self) -> &'a http::request::Parts {
        self.parts
    }

    /// A header's value as text (`None` when absent or not visible ASCII).
    ///
    /// ```
    /// # use tower_mcp_analytics::RequestView;
    /// fn user(request: &RequestView<'_>) -> Option<String> {
    ///     request.header("x-user-id").map(String::from)
    /// }
    /// ```
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.parts.headers.get(name)?.to_str().ok()
    }

    /// An extension stored on the request by an earlier layer (e.g. authentication claims).
    ///
    /// ```
    /// # use tower_mcp_analytics::RequestView;
    /// #[derive(Clone)]
    /// struct Claims { subject: String }
    ///
    /// fn subject(request: &RequestView<'_>) -> Option<String> {
    ///     request.extension::<Claims>().map(|claims| claims.subject.clone())
    /// }
    /// ```
    pub fn extension<T: Send + Sync + 'static>(&self) -> Option<&'a T> {
        self.parts.extensions.get::<T>()
    }

    /// The MCP requests and notifications in the body (several for a batch).
    ///
    /// ```
    /// # use tower_mcp_analytics::RequestView;
    /// fn calls_a_tool(request: &RequestView<'_>) -> bool {
    ///     request.messages().any(|m| m.method() == "tools/call")
    /// }
    /// ```
    pub fn messages(&self) -> impl Iterator<Item = McpMessage<'a>> + 'a {
        self.messages.iter().map(|message| McpMessage { message })
    }
}

impl std::fmt::Debug for RequestView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestView")
            .field("method", &self.parts.method)
            .field("uri", &self.parts.uri)
            .field("messages", &self.messages.len())
            .finish_non_exhaustive()
    }
}

/// One MCP request or notification, as hooks see it.
///
/// ```
/// # use tower_mcp_analytics::McpMessage;
/// fn describe(message: McpMessage<'_>) -> String {
///     format!("{} {}", message.method(), message.name().unwrap_or(""))
/// }
/// ```
#[derive(Clone, Copy)]
pub struct McpMessage<'a> {
    message: &'a ClientMessage,
}

impl<'a> McpMessage<'a> {
    /// The JSON-RPC method, e.g. `tools/call`.
    ///
    /// ```
    /// # fn f(m: tower_mcp_analytics::McpMessage<'_>) -> &str { m.method() }
    /// ```
    pub fn method(&self) -> &'a str {
        &self.message.method
    }

    /// The tool or prompt name, or the resource URI.
    ///
    /// ```
    /// # fn f(m: tower_mcp_analytics::McpMessage<'_>) -> Option<&str> { m.name() }
    /// ```
    pub fn name(&self) -> Option<&'a str> {
        self.message.name.as_deref()
    }

    /// `params.arguments` as raw JSON text, unparsed.
    ///
    /// ```
    /// # fn f(m: tower_mcp_analytics::McpMessage<'_>) -> Option<serde_json::Value> {
    /// m.arguments().and_then(|raw| serde_json::from_str(raw).ok())
    /// # }
    /// ```
    pub fn arguments(&self) -> Option<&'a str> {
        std::str::from_utf8(self.message.arguments.as_deref()?).ok()
    }

    /// The client's self-reported name, when this message carries it (`initialize`, or
    /// `_meta` on 2026-07-28 requests).
    ///
    /// ```
    /// # fn f(m: tower_mcp_analytics::McpMessage<'_>) -> Option<&str> { m.client_name() }
    /// ```
    pub fn client_name(&self) -> Option<&'a str> {
        self.message.client_name.as_deref()
    }

    /// The protocol version this message names (`_meta` or `initialize` params).
    ///
    /// ```
    /// # fn f(m: tower_mcp_analytics::McpMessage<'_>) -> Option<&str> { m.protocol_version() }
    /// ```
    pub fn protocol_version(&self) -> Option<&'a str> {
        self.message.protocol_version.as_deref()
    }
}

impl std::fmt::Debug for McpMessage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpMessage")
            .field("method", &self.method())
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}
