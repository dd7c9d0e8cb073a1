//! What the request path learns about a request, in the shapes the worker consumes.
//!
//! Owns [`RequestInfo`], the request-level facts shared by the calls of one HTTP request,
//! and [`Origin`], the part of them that decides an event's client and session: read once
//! on the request path (`RequestInfo::from_head`) and carried unchanged to the worker's
//! enrichment stage. Never holds a raw `Mcp-Session-Id` (only the id derived from it),
//! never reads a body.

use std::time::{Instant, SystemTime};

use http::HeaderMap;
use http::header::USER_AGENT;

use super::retention::Reserved;
use crate::event::ids::mcp_session_id;
use crate::hooks::UserIdentity;
use crate::protocol::mcp;

/// Where a request came from, as far as its AI client and its session go. Built on the
/// request path; the worker resolves the client and decides the session from it as it
/// is.
#[derive(Debug)]
pub(crate) struct Origin {
    /// When the request arrived, on the wall clock (sessions are grouped by it).
    pub(crate) at: SystemTime,
    /// The id derived from the request's `Mcp-Session-Id`, or from the session its
    /// response opened (the header's value itself never leaves the request path).
    pub(crate) mcp_session: Option<String>,
    /// What the `session_key` hook returned.
    pub(crate) session_key: Option<String>,
    /// `User-Agent`: the last clue to the AI client, and with the user, the key of a
    /// stateless client's `initialize`.
    pub(crate) user_agent: Option<Box<str>>,
    /// `x-mcp-client-name` / `x-mcp-client-version`.
    pub(crate) client_header_name: Option<Box<str>>,
    pub(crate) client_header_version: Option<Box<str>>,
}

/// Request-level facts shared by the calls of one HTTP request.
#[derive(Debug)]
pub(crate) struct RequestInfo {
    pub(crate) started: Instant,
    pub(crate) origin: Origin,
    /// `MCP-Protocol-Version` header.
    pub(crate) protocol_version: Option<Box<str>>,
    pub(crate) batch: bool,
    /// The server refused this batch as a whole (an error status): its size. One event
    /// stands for it.
    pub(crate) rejected_batch: Option<usize>,
    /// Bytes of request data the calls keep (their arguments).
    pub(crate) body_len: usize,
    /// The share of the in-flight budget those arguments hold, until the hand-off.
    pub(crate) reserved: Option<Reserved>,
    /// What the `identify` hook returned.
    pub(crate) user: Option<UserIdentity>,
    /// Headers the server chose to capture, sensitive ones already masked.
    pub(crate) headers: Vec<(String, String)>,
    /// What the `tags` and `properties` hooks returned.
    pub(crate) tags: Vec<(String, String)>,
    pub(crate) properties: Option<serde_json::Value>,
    /// A `tags` or `properties` hook panicked: the request's events must not go out.
    pub(crate) hook_failed: bool,
    /// What spans need of the request (ambient context, trace headers), when
    /// OpenTelemetry is on.
    #[cfg(feature = "otel")]
    pub(crate) trace: Option<std::sync::Arc<crate::event::trace::Clues>>,
}

impl Origin {
    /// A request that arrived at `at`, with nothing else known yet.
    pub(crate) fn new(at: SystemTime) -> Self {
        Self {
            at,
            mcp_session: None,
            session_key: None,
            user_agent: None,
            client_header_name: None,
            client_header_version: None,
        }
    }
}

impl RequestInfo {
    /// The facts of a request's head: protocol version, MCP session (its derived id),
    /// `User-Agent` and client headers. The request arrived at `started` (`timestamp` on
    /// the wall clock).
    pub(crate) fn from_head(headers: &HeaderMap, started: Instant, timestamp: SystemTime) -> Self {
        let mut info = Self::new(started, timestamp);
        info.protocol_version = mcp::header_text(headers.get(mcp::PROTOCOL_VERSION));
        let origin = &mut info.origin;
        origin.mcp_session = mcp::header_text(headers.get(mcp::SESSION_ID))
            .as_deref()
            .map(mcp_session_id);
        origin.user_agent = mcp::header_text(headers.get(USER_AGENT));
        origin.client_header_name = mcp::header_text(headers.get(mcp::CLIENT_NAME));
        origin.client_header_version = mcp::header_text(headers.get(mcp::CLIENT_VERSION));
        info
    }

    /// A request that arrived at `started` (`timestamp` on the wall clock), with nothing
    /// else known yet.
    pub(crate) fn new(started: Instant, timestamp: SystemTime) -> Self {
        Self {
            started,
            origin: Origin::new(timestamp),
            protocol_version: None,
            batch: false,
            rejected_batch: None,
            body_len: 0,
            reserved: None,
            user: None,
            headers: Vec::new(),
            tags: Vec::new(),
            properties: None,
            hook_failed: false,
            #[cfg(feature = "otel")]
            trace: None,
        }
    }
}

impl Default for RequestInfo {
    /// What is left of a request once its exchange has been handed to the worker.
    fn default() -> Self {
        Self::new(Instant::now(), SystemTime::UNIX_EPOCH)
    }
}
