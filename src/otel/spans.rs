//! One `mcp.server` span per MCP message, made from its finished event.
//!
//! Owns the span's name, kind, times, status and attributes (the semantic conventions'
//! and this crate's, see [`names`](super::names)). Works on an event that has passed the
//! privacy stage, so the opt-in payload attributes carry exactly what an event would.
//! Never reads a request.

use std::borrow::Cow;

use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer};
use opentelemetry::{KeyValue, Value};

use super::context::parent_and_link;
use super::names::*;
use crate::event::trace::EventTrace;
use crate::event::{Event, Outcome};

/// Which opt-in attributes spans carry.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct OptIn {
    pub(crate) arguments: bool,
    pub(crate) results: bool,
    pub(crate) resource_uri: bool,
}

/// The span's name: `{mcp.method.name} {target}`, the target being the tool or prompt.
pub(crate) fn span_name(event: &Event) -> String {
    match target(event) {
        Some((_, name)) => format!("{} {name}", event.method),
        None => event.method.clone(),
    }
}

/// The low-cardinality target: `(attribute, name)` of a tool call or a prompt.
fn target(event: &Event) -> Option<(&'static str, &str)> {
    let name = event.resource_name.as_deref()?;
    match event.method.as_str() {
        "tools/call" => Some((GEN_AI_TOOL_NAME, name)),
        "prompts/get" => Some((GEN_AI_PROMPT_NAME, name)),
        _ => None,
    }
}

/// `error.type`, when the operation failed: the JSON-RPC error code, `tool_error` for a
/// result with `isError: true`, the HTTP status of an error answer without JSON-RPC, and
/// this crate's outcome otherwise.
pub(crate) fn error_type(event: &Event) -> Option<Cow<'static, str>> {
    if !event.outcome.is_error() {
        return None;
    }
    Some(match event.outcome {
        Outcome::ToolError => Cow::Borrowed(TOOL_ERROR),
        Outcome::Error => match event.error.as_ref().and_then(|e| e.code) {
            Some(code) => Cow::Owned(code.to_string()),
            None => Cow::Borrowed(OTHER_ERROR),
        },
        Outcome::HttpError => match event.http_status {
            Some(status) => Cow::Owned(status.to_string()),
            None => Cow::Borrowed(OTHER_ERROR),
        },
        Outcome::NoResponse => Cow::Borrowed("no_response"),
        Outcome::Cancelled => Cow::Borrowed("cancelled"),
        _ => Cow::Borrowed(OTHER_ERROR),
    })
}

/// The attributes spans and the operation histogram share (all low-cardinality).
pub(crate) fn operation_attributes(event: &Event, trace: &EventTrace) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(16);
    attributes.push(KeyValue::new(MCP_METHOD_NAME, event.method.clone()));
    if let Some(error) = error_type(event) {
        attributes.push(KeyValue::new(ERROR_TYPE, error));
    }
    if let Some(code) = event.error.as_ref().and_then(|e| e.code) {
        attributes.push(KeyValue::new(RPC_RESPONSE_STATUS_CODE, code.to_string()));
    }
    if let Some((key, name)) = target(event) {
        attributes.push(KeyValue::new(key, name.to_owned()));
    }
    if event.method == "tools/call" {
        attributes.push(KeyValue::new(GEN_AI_OPERATION_NAME, EXECUTE_TOOL));
    }
    if let Some(version) = &event.protocol_version {
        attributes.push(KeyValue::new(MCP_PROTOCOL_VERSION, version.clone()));
    }
    attributes.extend(network_attributes(trace));
    attributes
}

/// `network.*` of the HTTP request that carried the message.
pub(crate) fn network_attributes(trace: &EventTrace) -> [KeyValue; 3] {
    use http::Version;
    let (version, transport) = match trace.clues.http_version {
        Version::HTTP_09 => ("0.9", "tcp"),
        Version::HTTP_10 => ("1.0", "tcp"),
        Version::HTTP_2 => ("2", "tcp"),
        Version::HTTP_3 => ("3", "quic"),
        _ => ("1.1", "tcp"),
    };
    [
        KeyValue::new(NETWORK_PROTOCOL_NAME, "http"),
        KeyValue::new(NETWORK_PROTOCOL_VERSION, version),
        KeyValue::new(NETWORK_TRANSPORT, transport),
    ]
}

/// Starts and ends the event's span, at the times the exchange happened.
pub(crate) fn record_span<T: Tracer>(
    tracer: &T,
    event: &Event,
    trace: &EventTrace,
    opt_in: OptIn,
    mut attributes: Vec<KeyValue>,
) {
    if let Some(id) = event.request_id.as_ref().and_then(request_id) {
        attributes.push(KeyValue::new(JSONRPC_REQUEST_ID, id));
    }
    if let Some(session) = &event.session_id {
        if trace.mcp_session {
            attributes.push(KeyValue::new(MCP_SESSION_ID, session.clone()));
        }
        attributes.push(KeyValue::new(SESSION_ID, session.clone()));
    }
    if opt_in.resource_uri
        && event.method.starts_with("resources/")
        && let Some(uri) = &event.resource_name
    {
        attributes.push(KeyValue::new(MCP_RESOURCE_URI, uri.clone()));
    }
    if event.method == "tools/call" {
        if opt_in.arguments
            && let Some(arguments) = &event.arguments
        {
            attributes.push(KeyValue::new(
                GEN_AI_TOOL_CALL_ARGUMENTS,
                arguments.get().to_owned(),
            ));
        }
        if opt_in.results
            && event.outcome == Outcome::Success
            && let Some(result) = &event.result
        {
            attributes.push(KeyValue::new(
                GEN_AI_TOOL_CALL_RESULT,
                result.get().to_owned(),
            ));
        }
    }
    attributes.push(KeyValue::new(EVENT_ID, event.id.clone()));
    attributes.push(KeyValue::new(OUTCOME, outcome_name(event.outcome)));
    if let Some(name) = &event.client_name {
        attributes.push(KeyValue::new(CLIENT_NAME, name.clone()));
    }
    if let Some(version) = &event.client_version {
        attributes.push(KeyValue::new(CLIENT_VERSION, version.clone()));
    }
    if let Some(user) = &event.user {
        attributes.push(KeyValue::new(USER_ID, user.id.clone()));
    }
    let (parent, link) = parent_and_link(
        event.traceparent.as_deref(),
        trace.tracestate.as_deref(),
        &trace.clues,
    );
    let status = match attributes.iter().any(|kv| kv.key.as_str() == ERROR_TYPE) {
        true => Status::error(
            event
                .error
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_default(),
        ),
        false => Status::Unset,
    };
    let mut builder = tracer
        .span_builder(span_name(event))
        .with_kind(SpanKind::Server)
        .with_start_time(trace.start)
        .with_attributes(attributes);
    if let Some(link) = link {
        builder = builder.with_links(vec![link]);
    }
    let mut span = builder.start_with_context(tracer, &parent);
    span.set_status(status);
    span.end_with_timestamp(trace.end());
}

/// `jsonrpc.request.id`: a string id as it is, a number in decimal; never for `null`.
fn request_id(id: &serde_json::Value) -> Option<Value> {
    match id {
        serde_json::Value::String(text) => Some(Value::from(text.clone())),
        serde_json::Value::Number(number) => Some(Value::from(number.to_string())),
        _ => None,
    }
}

/// The event's outcome as it is spelled in events.
fn outcome_name(outcome: Outcome) -> String {
    serde_json::to_value(outcome)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}
