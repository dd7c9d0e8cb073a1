//! Building [`Event`]s from a finished exchange. Runs in the worker, never on the request
//! path: this is where results are read in depth and values are allocated.

use std::collections::BTreeMap;
use std::time::SystemTime;

use http::StatusCode;

use super::ids::{derived_id, new_id};
use super::time::rfc3339_millis;
use super::{Event, EventError, Outcome};
use crate::exchange::{Call, End, Finished};
use crate::identity::UserIdentity;
use crate::protocol::jsonrpc::{ResponseParts, Responses, error_parts, result_flags};

/// Domain separating ids derived from `Mcp-Session-Id` values from any other derived id.
const MCP_SESSION_DOMAIN: &str = "tower-mcp-analytics/mcp-session-id";

/// The id an `Mcp-Session-Id` value stands for in events (the value itself never leaves
/// the process).
pub(crate) fn mcp_session_id(raw: &str) -> String {
    derived_id("ses", MCP_SESSION_DOMAIN, raw.as_bytes())
}

/// The events of one exchange and what the worker's later stages need to know about it.
pub(crate) struct Built {
    pub(crate) events: Vec<Event>,
    pub(crate) context: Context,
}

/// Request-level facts for client resolution and sessions.
pub(crate) struct Context {
    pub(crate) at: SystemTime,
    /// Derived id of the MCP session, when the request named one or its response opened one.
    pub(crate) mcp_session: Option<String>,
    pub(crate) session_key: Option<String>,
    pub(crate) user_agent: Option<Box<str>>,
    pub(crate) client_header_name: Option<Box<str>>,
    pub(crate) client_header_version: Option<Box<str>>,
    pub(crate) status: Option<StatusCode>,
    /// A `tags` or `properties` hook panicked: the events must not go out.
    pub(crate) hook_failed: bool,
}

/// The events of one exchange, in request order.
pub(crate) fn events(mut finished: Finished) -> Built {
    let timestamp = rfc3339_millis(finished.info.timestamp);
    let user = finished.info.user.take().map(UserIdentity::bounded);
    let headers: BTreeMap<String, String> = std::mem::take(&mut finished.info.headers)
        .into_iter()
        .collect();
    let tags: BTreeMap<String, String> = std::mem::take(&mut finished.info.tags)
        .into_iter()
        .collect();
    let properties = finished.info.properties.take();
    // A JSON body answers every call of the exchange: read it once.
    let body = finished.body.as_deref().map(Responses::read);
    let events = finished
        .calls
        .iter()
        .map(|call| {
            let (outcome, result, error) = resolve(call, &finished, body.as_ref());
            let message = &call.message;
            Event {
                id: new_id("evt", finished.info.timestamp),
                event_type: format!("mcp:{}", message.method),
                timestamp: timestamp.clone(),
                duration_ms: call.elapsed.as_secs_f64() * 1000.0,
                method: message.method.to_string(),
                resource_name: message.name.as_deref().map(String::from),
                request_id: message.id.as_ref().map(|id| id.to_json()),
                arguments: message
                    .arguments
                    .as_ref()
                    .and_then(|raw| serde_json::from_slice(raw).ok()),
                result,
                outcome,
                is_error: outcome.is_error(),
                error,
                protocol_version: finished
                    .info
                    .protocol_version
                    .as_deref()
                    .or(message.protocol_version.as_deref())
                    .map(String::from),
                client_name: message.client_name.as_deref().map(String::from),
                client_version: message.client_version.as_deref().map(String::from),
                client_display_name: None,
                session_id: None,
                user: user.clone(),
                http_status: finished.status.map(|s| s.as_u16()),
                response_kind: finished.response_kind,
                progress_notifications: call.progress,
                log_notifications: call.logs,
                batch: finished.info.batch,
                traceparent: message.traceparent.as_deref().map(String::from),
                headers: headers.clone(),
                tags: tags.clone(),
                properties: properties.clone(),
            }
        })
        .collect();
    let info = finished.info;
    Built {
        events,
        context: Context {
            at: info.timestamp,
            mcp_session: info.mcp_session.as_deref().map(mcp_session_id),
            session_key: info.session_key,
            user_agent: info.user_agent,
            client_header_name: info.client_header_name,
            client_header_version: info.client_header_version,
            status: finished.status,
            hook_failed: info.hook_failed,
        },
    }
}

type Resolution = (Outcome, Option<serde_json::Value>, Option<EventError>);

fn resolve(call: &Call, finished: &Finished, body: Option<&Responses<'_>>) -> Resolution {
    let status = finished.status;
    let id = call.message.id.as_ref();
    let found = match &call.end {
        Some(End::Payload(bytes)) => Responses::read(bytes).get(id),
        Some(End::Body) => body.and_then(|responses| responses.get(id)),
        Some(End::Accepted) => return (Outcome::Accepted, None, None),
        Some(End::HttpError) => return (Outcome::HttpError, None, Some(http_error(status))),
        Some(End::TooLarge(bytes)) => {
            // The result stands as a marker saying how large the unread answer was.
            return (Outcome::TooLarge, bytes.map(crate::privacy::removed), None);
        }
        Some(End::Unreadable) => return (Outcome::Unreadable, None, None),
        Some(End::Cancelled) => {
            return failure(Outcome::Cancelled, "the client went away before the answer");
        }
        Some(End::NoResponse) | None => None,
    };
    match found {
        Some(parts) => answered(parts),
        None if status.is_some_and(|s| !s.is_success()) => {
            (Outcome::HttpError, None, Some(http_error(status)))
        }
        None => failure(Outcome::NoResponse, "the response ended without an answer"),
    }
}

fn answered(parts: ResponseParts<'_>) -> Resolution {
    if let Some(raw) = parts.error {
        let error = error_parts(raw);
        let message = error.message.unwrap_or_else(|| "JSON-RPC error".to_owned());
        let error = EventError {
            code: error.code,
            message,
            data: error.data,
        };
        return (Outcome::Error, None, Some(error));
    }
    let Some(raw) = parts.result else {
        return (Outcome::Success, None, None);
    };
    let result: Option<serde_json::Value> = serde_json::from_str(raw.get()).ok();
    let (is_error, input_required) = match &result {
        Some(value) => (
            value.get("isError").and_then(|e| e.as_bool()) == Some(true),
            value.get("resultType").and_then(|t| t.as_str()) == Some("input_required"),
        ),
        // Too deep to become a value: read the flags without building it.
        None => result_flags(raw),
    };
    if input_required {
        (Outcome::InputRequired, result, None)
    } else if is_error {
        let message = result
            .as_ref()
            .and_then(first_text)
            .unwrap_or_else(|| "the tool reported an error".to_owned());
        let error = EventError {
            code: None,
            message,
            data: None,
        };
        (Outcome::ToolError, result, Some(error))
    } else {
        (Outcome::Success, result, None)
    }
}

/// The first text content block of a tool result.
fn first_text(result: &serde_json::Value) -> Option<String> {
    result
        .get("content")?
        .as_array()?
        .iter()
        .find(|block| block.get("type").and_then(|t| t.as_str()) == Some("text"))?
        .get("text")?
        .as_str()
        .map(String::from)
}

fn failure(outcome: Outcome, message: &str) -> Resolution {
    let error = EventError {
        code: None,
        message: message.to_owned(),
        data: None,
    };
    (outcome, None, Some(error))
}

fn http_error(status: Option<StatusCode>) -> EventError {
    let message = match status {
        Some(status) => format!("HTTP {status}"),
        None => "HTTP error".to_owned(),
    };
    EventError {
        code: None,
        message,
        data: None,
    }
}
