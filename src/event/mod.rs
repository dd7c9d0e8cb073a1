//! [`Event`]: the documented record of one MCP request or notification.
//!
//! Owns the wire format every sink receives (serde, snake_case, optional fields omitted
//! when empty), event and session ids (`ids`) and timestamps (`time`). Never builds an
//! event from traffic: that is the worker's first stage (`delivery::build`).

pub(crate) mod ids;
mod raw;
pub(crate) mod time;
#[cfg(feature = "otel")]
pub(crate) mod trace;
mod user;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use raw::RawJson;
pub use user::UserIdentity;

use crate::stats::DropReason;

/// One MCP request (or client notification) as seen by the layer, ready for a sink.
///
/// Serialised as a JSON object with these snake_case keys; fields that are `None` or
/// empty are omitted.
///
/// ```
/// use tower_mcp_analytics::{Event, Outcome};
///
/// let line = r#"{"id":"evt_2Lr2TGI5bfx1G1SRRoMh0rm3bWo","event_type":"mcp:tools/call",
///     "timestamp":"2026-11-22T10:00:00.000Z","duration_ms":1.5,"method":"tools/call",
///     "resource_name":"echo","outcome":"success","is_error":false,
///     "progress_notifications":0,"log_notifications":0,"batch":false}"#;
/// let event: Event = serde_json::from_str(line)?;
/// assert_eq!(event.resource_name.as_deref(), Some("echo"));
/// assert_eq!(event.outcome, Outcome::Success);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Event {
    /// Unique event id: `evt_` followed by 27 base62 characters, time-sortable.
    pub id: String,
    /// `mcp:` followed by the JSON-RPC method, e.g. `mcp:tools/call`, `mcp:initialize`; or
    /// `identify` for the event recording that a user is new or changed.
    pub event_type: String,
    /// When the request arrived, RFC 3339 in UTC with milliseconds.
    pub timestamp: String,
    /// Milliseconds from the request's arrival to its response message (or to the moment
    /// the outcome was known: stream end, cancellation).
    pub duration_ms: f64,
    /// The JSON-RPC method, e.g. `tools/call` (`identify` for identify events).
    pub method: String,
    /// Tool name (`tools/call`), prompt name (`prompts/get`) or resource URI
    /// (`resources/read`, `resources/subscribe`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// The JSON-RPC id of the request (absent for notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Value>,
    /// `params.arguments` of the request, when it had any (within the payload limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<RawJson>,
    /// The JSON-RPC `result` of the response, when there was one (within the payload
    /// limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<RawJson>,
    /// What happened; see [`Outcome`].
    pub outcome: Outcome,
    /// True when the request failed: every outcome but [`Outcome::Success`],
    /// [`Outcome::InputRequired`], [`Outcome::Accepted`], and the two unknown outcomes
    /// [`Outcome::TooLarge`] and [`Outcome::Unreadable`].
    pub is_error: bool,
    /// Error details: the JSON-RPC error, or a description of an HTTP or transport failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<EventError>,
    /// `MCP-Protocol-Version` header, else the version in `_meta` or `initialize` params.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// The AI client's self-reported name (e.g. `claude-ai`, `cursor-vscode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// The AI client's self-reported version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_version: Option<String>,
    /// A display name for well-known clients (`claude-ai` is "Claude Desktop",
    /// `cursor-vscode` is "Cursor").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_display_name: Option<String>,
    /// The harness behind the AI client, as its `User-Agent` names it first (e.g.
    /// `claude-code`, `node`, `python-httpx`): at most 64 of `[A-Za-z0-9._-]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness: Option<String>,
    /// The model driving the AI client, when the request named one in `params._meta`
    /// (`io.modelcontextprotocol/model`, or `model` in `io.modelcontextprotocol/aiInvocation`,
    /// or a top-level `model`); self-reported, at most 128 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The session this event belongs to: `ses_` followed by 27 base62 characters. With an
    /// `Mcp-Session-Id` header it is derived from that header (never the raw value);
    /// otherwise events are grouped by user + client + inactivity window (see
    /// [`SessionMode`](crate::SessionMode)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Who made the request, when the server identified the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserIdentity>,
    /// `tools/call`: why the agent called the tool, in its own words, with
    /// [`IntentCapture`](crate::insights::IntentCapture) on; for a `missing_capability`
    /// event, what the agent was looking for. Passes the privacy stage like the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_intent: Option<String>,
    /// `tools/list`: the names of the tools the server advertised (at most 1,000), so that
    /// a backend can tell which tools are never called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_tools: Option<Vec<String>>,
    /// `tools/call`: the tool was not among those the server last advertised to this
    /// session (or to anyone, before the session listed tools), or the server answered
    /// that it does not know it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unknown_tool: bool,
    /// The HTTP status of the response (absent when the client left before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// How the response was framed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_kind: Option<ResponseKind>,
    /// `notifications/progress` messages seen for this request.
    pub progress_notifications: u32,
    /// `notifications/message` (log) messages seen for this request.
    pub log_notifications: u32,
    /// The request was part of a JSON-RPC batch array (protocol 2025-03-26).
    pub batch: bool,
    /// W3C trace context from `params._meta.traceparent`, to join traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Request headers the server chose to capture (`capture_headers`); sensitive ones
    /// are masked unless forced.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Short string labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Free-form JSON properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Value>,
    /// Why the event must not go out (a hook failed while it was built).
    #[serde(skip)]
    pub(crate) unsendable: Option<DropReason>,
    /// What its span needs beyond the event (feature `otel`).
    #[cfg(feature = "otel")]
    #[serde(skip)]
    pub(crate) trace: Option<Box<trace::EventTrace>>,
}

impl Event {
    /// [`arguments`](Event::arguments) as a [`Value`].
    ///
    /// ```
    /// # use tower_mcp_analytics::Event;
    /// # fn f(event: &Event) {
    /// let city = event.arguments_value().and_then(|a| a["city"].as_str().map(String::from));
    /// # }
    /// ```
    pub fn arguments_value(&self) -> Option<Value> {
        self.arguments.as_ref().map(RawJson::to_value)
    }

    /// [`result`](Event::result) as a [`Value`].
    ///
    /// ```
    /// # use tower_mcp_analytics::Event;
    /// # fn f(event: &Event) {
    /// let is_error = event.result_value().is_some_and(|r| r["isError"] == true);
    /// # }
    /// ```
    pub fn result_value(&self) -> Option<Value> {
        self.result.as_ref().map(RawJson::to_value)
    }
}

/// How a request ended.
///
/// ```
/// use tower_mcp_analytics::Outcome;
///
/// assert_eq!(serde_json::to_string(&Outcome::ToolError)?, r#""tool_error""#);
/// assert!(Outcome::ToolError.is_error());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// A result came back.
    Success,
    /// A result came back with `isError: true` (the tool ran and failed).
    ToolError,
    /// A JSON-RPC error came back (unknown tool, invalid params, ...).
    Error,
    /// A result with `resultType: "input_required"` (2026-07-28): the server asked the
    /// client for input; the client retries with a new request.
    InputRequired,
    /// The HTTP response was an error status with no JSON-RPC answer (406, 413, 415, ...).
    HttpError,
    /// A notification the server accepted (`202 Accepted`).
    Accepted,
    /// The response ended without an answer to this request.
    NoResponse,
    /// The client went away (the response was dropped) before the answer.
    Cancelled,
    /// The answer was larger than the response capture limit, so it was not read (the
    /// outcome is unknown; not counted as an error).
    TooLarge,
    /// The answer was compressed (`Content-Encoding`), so it was not read (the outcome is
    /// unknown; not counted as an error). Put the analytics layer inside (closer to the
    /// MCP service than) any compression layer.
    Unreadable,
}

impl Outcome {
    /// Whether this outcome counts as an error in [`Event::is_error`].
    ///
    /// ```
    /// use tower_mcp_analytics::Outcome;
    ///
    /// assert!(!Outcome::Success.is_error());
    /// assert!(Outcome::Cancelled.is_error());
    /// ```
    pub fn is_error(self) -> bool {
        !matches!(
            self,
            Self::Success
                | Self::InputRequired
                | Self::Accepted
                | Self::TooLarge
                | Self::Unreadable
        )
    }
}

/// How a response was framed.
///
/// ```
/// use tower_mcp_analytics::ResponseKind;
///
/// assert_eq!(serde_json::to_string(&ResponseKind::Sse)?, r#""sse""#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResponseKind {
    /// `application/json`.
    Json,
    /// `text/event-stream`.
    Sse,
    /// No body (e.g. `202 Accepted`).
    Empty,
    /// Any other content type.
    Other,
}

/// Error details of an event.
///
/// ```
/// use tower_mcp_analytics::EventError;
///
/// let error: EventError = serde_json::from_str(r#"{"code":-32601,"message":"Method not found"}"#)?;
/// assert_eq!(error.code, Some(-32601));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EventError {
    /// The JSON-RPC error code, when the error was a JSON-RPC error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// A human-readable message.
    pub message: String,
    /// The JSON-RPC error's `data`, when present (within the payload limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<RawJson>,
}
