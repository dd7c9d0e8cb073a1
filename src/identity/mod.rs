//! Who made a request: the `identify` hook, [`UserIdentity`], and the view of a request
//! that hooks receive.
//!
//! Owns the request-path side of identity: the [`RequestView`] handed to user hooks and
//! ready-made `identify` functions ([`from_header`], [`from_bearer_token`]). Hooks run
//! synchronously on the request path, so they must be lightweight (no I/O, no locks held
//! for long); a hook that panics is caught by the layer and counted. Never keeps state:
//! change detection and client resolution happen in the worker (`cache`, `clients`).

pub(crate) mod cache;
pub(crate) mod clients;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::protocol::jsonrpc::ClientMessage;

/// The signature of an `identify` hook.
pub(crate) type IdentifyFn = Arc<dyn Fn(&RequestView<'_>) -> Option<UserIdentity> + Send + Sync>;
/// The signature of a `session_key` hook.
pub(crate) type SessionKeyFn = Arc<dyn Fn(&RequestView<'_>) -> Option<String> + Send + Sync>;

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

/// An `identify` function reading the user id from a header.
///
/// ```
/// use tower_mcp_analytics::{AnalyticsLayer, identity};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = AnalyticsLayer::builder().identify(identity::from_header("x-user-id")).build();
/// # }
/// ```
pub fn from_header(
    name: &'static str,
) -> impl Fn(&RequestView<'_>) -> Option<UserIdentity> + Send + Sync + 'static {
    move |request| {
        let value = request.header(name)?.trim();
        (!value.is_empty()).then(|| UserIdentity::new(value))
    }
}

/// An `identify` function that turns the `Authorization: Bearer` token into a stable,
/// anonymous user id (`usr_` + 27 base62 characters of its SHA-256): the same token is the
/// same user, and the token itself never leaves the process.
///
/// ```
/// use tower_mcp_analytics::{AnalyticsLayer, identity};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = AnalyticsLayer::builder().identify(identity::from_bearer_token()).build();
/// # }
/// ```
pub fn from_bearer_token()
-> impl Fn(&RequestView<'_>) -> Option<UserIdentity> + Send + Sync + 'static {
    |request| {
        let value = request.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return None;
        }
        Some(UserIdentity::new(crate::event::ids::derived_id(
            "usr",
            "tower-mcp-analytics/bearer-token",
            token.as_bytes(),
        )))
    }
}

/// Longest user id kept as it is; longer ids are replaced by a stable digest of
/// themselves, so that hostile identities cannot grow memory.
pub(crate) const MAX_USER_ID: usize = 256;
/// Longest user name kept; longer names are cut at a character boundary.
pub(crate) const MAX_USER_NAME: usize = 256;
/// Largest user `data` kept, serialised; larger data is left out.
pub(crate) const MAX_USER_DATA: usize = 8 * 1024;

impl UserIdentity {
    /// The identity within the layer's size bounds.
    pub(crate) fn bounded(mut self) -> Self {
        if self.id.len() > MAX_USER_ID {
            let digest = Sha256::digest(self.id.as_bytes());
            self.id =
                crate::event::ids::derived_id("usr", "tower-mcp-analytics/long-user-id", &digest);
        }
        if let Some(name) = &mut self.name
            && name.len() > MAX_USER_NAME
        {
            let mut end = MAX_USER_NAME;
            while !name.is_char_boundary(end) {
                end -= 1;
            }
            name.truncate(end);
        }
        if self
            .data
            .as_ref()
            .is_some_and(|data| serde_json::to_vec(data).map_or(true, |v| v.len() > MAX_USER_DATA))
        {
            self.data = None;
        }
        self
    }
}
/// A user, as the server's `identify` hook names them.
///
/// ```
/// use tower_mcp_analytics::UserIdentity;
///
/// let user = UserIdentity::new("user-42").with_name("Ada");
/// assert_eq!(user.id, "user-42");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UserIdentity {
    /// A stable id for the user.
    pub id: String,
    /// A display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Any JSON data about the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl UserIdentity {
    /// A user known by id only.
    ///
    /// ```
    /// # use tower_mcp_analytics::UserIdentity;
    /// assert_eq!(UserIdentity::new("u1").name, None);
    /// ```
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: None,
            data: None,
        }
    }

    /// Adds a display name.
    ///
    /// ```
    /// # use tower_mcp_analytics::UserIdentity;
    /// assert_eq!(UserIdentity::new("u1").with_name("Ada").name.as_deref(), Some("Ada"));
    /// ```
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds JSON data.
    ///
    /// ```
    /// # use tower_mcp_analytics::UserIdentity;
    /// let user = UserIdentity::new("u1").with_data(serde_json::json!({"plan": "pro"}));
    /// assert_eq!(user.data.unwrap()["plan"], "pro");
    /// ```
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}
