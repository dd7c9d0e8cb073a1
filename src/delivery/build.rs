//! The worker's first stage: building [`Event`]s from a finished exchange.
//!
//! Owns reading results in depth (outcome, error, result flags) and transcoding each
//! captured payload once, by the privacy settings' first pass. Leaves the client and the
//! session to the next stage ([`enrich`](super::enrich)): an event leaves here with the
//! client its own message named beside it, not in it. Never runs on the request path.

use std::collections::BTreeMap;

use std::panic::{AssertUnwindSafe, catch_unwind};

use bytes::Bytes;
use http::StatusCode;
use serde_json::value::RawValue;

use crate::event::ids::new_id;
use crate::event::time::rfc3339_millis;
use crate::event::{Event, EventError, Outcome, RawJson};
use crate::exchange::{Call, End, Finished, Origin};
use crate::hooks::UserIdentity;
use crate::insights::MISSING_CAPABILITY_EVENT;
use crate::privacy::{Privacy, removed};
use crate::protocol::jsonrpc::{Responses, error_parts, first_text, result_flags, tool_names};
use crate::stats::DropReason;

/// The events of one exchange and what the next stage resolves them from.
pub(crate) struct Built {
    pub(crate) origin: Origin,
    /// The response's status (a 404 tells that the server forgot the MCP session).
    pub(crate) status: Option<StatusCode>,
    pub(crate) events: Vec<Unresolved>,
}

/// A client's name and version, as its own messages report them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ClientInfo {
    pub(crate) name: Option<String>,
    pub(crate) version: Option<String>,
}

impl ClientInfo {
    /// The first product of a `User-Agent`: `Name/Version (comment) ...`.
    pub(crate) fn from_user_agent(agent: &str) -> Self {
        let product = agent.split_whitespace().next().unwrap_or_default();
        let (name, version) = match product.split_once('/') {
            Some((name, version)) => (name, (!version.is_empty()).then(|| version.to_owned())),
            None => (product, None),
        };
        Self {
            name: (!name.is_empty()).then(|| name.to_owned()),
            version,
        }
    }

    /// Whether the client named itself.
    pub(crate) fn known(&self) -> bool {
        self.name.is_some()
    }
}

/// An event whose client and session are still to be resolved.
pub(crate) struct Unresolved {
    pub(crate) event: Event,
    /// The client the event's own message named (`_meta` clientInfo, or `initialize`).
    pub(crate) own_client: ClientInfo,
}

/// The events of one exchange, in request order. Each payload is transcoded here, once,
/// by the privacy settings' first pass.
pub(crate) fn events(mut finished: Finished, privacy: &Privacy) -> Built {
    let at = finished.info.origin.at;
    let timestamp = rfc3339_millis(at);
    let user = finished.info.user.take().map(UserIdentity::bounded);
    let headers: BTreeMap<String, String> = std::mem::take(&mut finished.info.headers)
        .into_iter()
        .collect();
    let tags: BTreeMap<String, String> = std::mem::take(&mut finished.info.tags)
        .into_iter()
        .collect();
    let properties = finished.info.properties.take();
    let harness = finished.info.origin.user_agent.as_deref().and_then(harness);
    // A JSON body answers every call of the exchange: read it once.
    let body = finished.body.as_deref().map(Responses::read);
    let events = finished
        .calls
        .iter()
        .map(|call| {
            let message = &call.message;
            let mut event = Event {
                id: new_id("evt", at),
                event_type: match message.virtual_call {
                    true => MISSING_CAPABILITY_EVENT.to_owned(),
                    false => format!("mcp:{}", message.method),
                },
                timestamp: timestamp.clone(),
                duration_ms: call.elapsed.as_secs_f64() * 1000.0,
                method: message.method.to_string(),
                resource_name: message.name.as_deref().map(String::from),
                request_id: message.id.as_ref().map(|id| id.to_json()),
                arguments: None,
                result: None,
                outcome: Outcome::NoResponse,
                is_error: true,
                error: None,
                protocol_version: finished
                    .info
                    .protocol_version
                    .as_deref()
                    .or(message.protocol_version.as_deref())
                    .map(String::from),
                client_name: None,
                client_version: None,
                client_display_name: None,
                harness: harness.clone(),
                session_id: None,
                user: user.clone(),
                model: message.model.as_deref().map(String::from),
                user_intent: message.intent.as_deref().map(String::from),
                listed_tools: None,
                unknown_tool: false,
                http_status: finished.status.map(|s| s.as_u16()),
                response_kind: finished.response_kind,
                progress_notifications: call.progress,
                log_notifications: call.logs,
                batch: finished.info.batch,
                traceparent: message.traceparent.as_deref().map(String::from),
                headers: headers.clone(),
                tags: tags.clone(),
                properties: properties.clone(),
                unsendable: None,
                #[cfg(feature = "otel")]
                trace: finished.info.trace.as_ref().map(|clues| {
                    Box::new(crate::event::trace::EventTrace {
                        clues: std::sync::Arc::clone(clues),
                        start: at,
                        elapsed: call.elapsed,
                        tracestate: message.tracestate.clone(),
                        mcp_session: finished.info.origin.mcp_session.is_some(),
                    })
                }),
            };
            let captured = privacy.captures(&event);
            if !captured.arguments {
                // The intent travels with the arguments it came in.
                event.user_intent = None;
            }
            // The `redact` hook runs in this pass: if it panics, the event is not sent.
            let read = catch_unwind(AssertUnwindSafe(|| {
                let arguments = match (captured.arguments, message.withheld) {
                    (false, _) => None,
                    (true, Some(bytes)) => removed(bytes),
                    (true, None) => message
                        .arguments
                        .as_deref()
                        .and_then(|raw| privacy.arguments(raw).json),
                };
                (
                    arguments,
                    resolve(call, &finished, body.as_ref(), privacy, captured.result),
                )
            }));
            match read {
                Ok((arguments, (outcome, result, mut error))) => {
                    if &*message.method == "tools/list" {
                        event.listed_tools = answer_of(call, body.as_ref())
                            .and_then(|(result, _)| result)
                            .and_then(|raw| tool_names(raw, MAX_LISTED_TOOLS));
                    }
                    if let (Some(error), Some(size)) = (&mut error, finished.info.rejected_batch) {
                        error.message.push_str(&format!(
                            " (a batch of {size} messages, refused as a whole)"
                        ));
                    }
                    event.arguments = arguments;
                    event.result = result;
                    event.outcome = outcome;
                    event.is_error = outcome.is_error();
                    event.error = error;
                }
                Err(_) => {
                    tracing::warn!("mcp analytics redact hook panicked; event dropped");
                    event.unsendable = Some(DropReason::RedactionFailed);
                }
            }
            let own_client = ClientInfo {
                name: message.client_name.as_deref().map(String::from),
                version: message.client_version.as_deref().map(String::from),
            };
            Unresolved { event, own_client }
        })
        .collect();
    Built {
        origin: finished.info.origin,
        status: finished.status,
        events,
    }
}

type Resolution = (Outcome, Option<RawJson>, Option<EventError>);

fn resolve(
    call: &Call,
    finished: &Finished,
    body: Option<&Responses<'_>>,
    privacy: &Privacy,
    keep_result: bool,
) -> Resolution {
    let status = finished.status;
    let found = match &call.end {
        Some(End::Answer(_) | End::Body) => answer_of(call, body),
        Some(End::Accepted) => return (Outcome::Accepted, None, None),
        Some(End::HttpError) => return (Outcome::HttpError, None, Some(http_error(status))),
        Some(End::TooLarge(bytes)) => {
            // The result stands as a marker saying how large the unread answer was.
            return (Outcome::TooLarge, bytes.and_then(removed), None);
        }
        Some(End::Unreadable) => return (Outcome::Unreadable, None, None),
        Some(End::Cancelled) => {
            return failure(Outcome::Cancelled, "the client went away before the answer");
        }
        Some(End::NoResponse) | None => None,
    };
    match found {
        Some((result, error)) => answered(result, error, privacy, keep_result),
        None if status.is_some_and(|s| !s.is_success()) => {
            (Outcome::HttpError, None, Some(http_error(status)))
        }
        None => failure(Outcome::NoResponse, "the response ended without an answer"),
    }
}

/// The harness label of a `User-Agent`: its first product's name, when it is at most 64
/// of `[A-Za-z0-9._-]`.
fn harness(agent: &str) -> Option<String> {
    ClientInfo::from_user_agent(agent).name.filter(|name| {
        name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    })
}

/// Most tool names a `tools/list` event carries.
pub(crate) const MAX_LISTED_TOOLS: usize = 1000;

/// The raw `result` and `error` that answered `call`, wherever they came (its own SSE
/// message, or the exchange's JSON body); `None` when nothing answered it.
type RawAnswer<'a> = (Option<&'a str>, Option<&'a str>);

fn answer_of<'a>(call: &'a Call, body: Option<&'a Responses<'a>>) -> Option<RawAnswer<'a>> {
    match &call.end {
        Some(End::Answer(answer)) => Some((
            answer.result.as_ref().and_then(text),
            answer.error.as_ref().and_then(text),
        )),
        Some(End::Body) => body
            .and_then(|responses| responses.get(call.message.id.as_ref()))
            .map(|parts| {
                (
                    parts.result.map(RawValue::get),
                    parts.error.map(RawValue::get),
                )
            }),
        _ => None,
    }
}

/// Bytes copied out of a `RawValue` as text again.
fn text(bytes: &Bytes) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

/// The outcome of a call its response answered, with the result (when kept) and the
/// error, each payload transcoded once.
fn answered(
    result: Option<&str>,
    error: Option<&str>,
    privacy: &Privacy,
    keep_result: bool,
) -> Resolution {
    if let Some(raw) = error {
        let error = error_parts(raw);
        let message = error.message.unwrap_or_else(|| "JSON-RPC error".to_owned());
        let error = EventError {
            code: error.code,
            message,
            data: error
                .data
                .and_then(|data| privacy.payload(data.get().as_bytes()).json),
        };
        return (Outcome::Error, None, Some(error));
    }
    let Some(raw) = result else {
        return (Outcome::Success, None, None);
    };
    let (json, flags) = match keep_result {
        true => {
            let payload = privacy.payload(raw.as_bytes());
            let flags = payload.flags.unwrap_or_else(|| result_flags(raw));
            (payload.json, flags)
        }
        false => (None, result_flags(raw)),
    };
    let (is_error, input_required) = flags;
    if input_required {
        (Outcome::InputRequired, json, None)
    } else if is_error {
        let message = first_text(raw).unwrap_or_else(|| "the tool reported an error".to_owned());
        let error = EventError {
            code: None,
            message,
            data: None,
        };
        (Outcome::ToolError, json, Some(error))
    } else {
        (Outcome::Success, json, None)
    }
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
