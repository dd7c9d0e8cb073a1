//! JSON-RPC 2.0 messages as MCP carries them: client bodies in, server messages out.
//!
//! Owns parsing of request bodies (a single message or a 2025-03-26 batch array) into
//! [`ClientMessage`]s, the shallow reading of server messages needed to match responses to
//! requests while a response streams, and the full reading of a matched response that the
//! background worker does later. Arguments and results are never turned into a value tree
//! here on the request path: they stay zero-copy slices of the body ([`Bytes`]).
//!
//! Never panics and never recurses without bound: serde_json's depth limit (128) turns
//! deeply nested input into a parse failure, and batch arrays are read up to a cap.

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;

use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::mcp;
use super::wire::{
    Text, WireContentList, WireError, WireMessage, WireMeta, WireParams, WireReply,
    WireResultFlags, WireTextBlock, WireToolList, WireToolName,
};

/// A JSON-RPC id, normalised so that a response can be matched to its request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum RequestId {
    /// An integer id (the common case).
    Int(i64),
    /// A string id, unescaped.
    Str(Box<str>),
    /// Anything else (floats, huge integers, invalid ids), kept as its JSON text.
    Other(Box<str>),
}

impl RequestId {
    /// Reads an id; `null` gives `None`.
    pub(crate) fn from_raw(raw: &RawValue) -> Option<Self> {
        let text = raw.get();
        match text.as_bytes().first() {
            Some(b'"') => serde_json::from_str::<String>(text)
                .ok()
                .map(|s| Self::Str(s.into_boxed_str())),
            Some(b'n') if text == "null" => None,
            _ => Some(
                text.parse::<i64>()
                    .map_or_else(|_| Self::Other(Box::from(text)), Self::Int),
            ),
        }
    }

    /// The id as a JSON value, for events.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Int(n) => serde_json::Value::from(*n),
            Self::Str(s) => serde_json::Value::from(&**s),
            Self::Other(text) => {
                serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::from(&**text))
            }
        }
    }
}

/// What a client message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MessageKind {
    /// A request: has a `method` and an `id`; the server owes it a response.
    Request,
    /// A notification: a `method` and no `id`; answered `202 Accepted` on its own.
    Notification,
}

/// One JSON-RPC request or notification sent by the client, as the layer needs it.
#[derive(Clone, Debug)]
pub(crate) struct ClientMessage {
    pub(crate) kind: MessageKind,
    /// `None` for notifications, and for requests known only from `Mcp-Method` headers.
    pub(crate) id: Option<RequestId>,
    pub(crate) method: Box<str>,
    /// Tool or prompt name, or resource URI.
    pub(crate) name: Option<Box<str>>,
    /// `params.arguments`, verbatim.
    pub(crate) arguments: Option<Bytes>,
    /// The size of arguments not kept (calls in flight held too much already).
    pub(crate) withheld: Option<usize>,
    pub(crate) progress_token: Option<RequestId>,
    /// From `_meta` clientInfo (2026-07-28) or `initialize` params.
    pub(crate) client_name: Option<Box<str>>,
    pub(crate) client_version: Option<Box<str>>,
    /// From `_meta` (2026-07-28) or `initialize` params.
    pub(crate) protocol_version: Option<Box<str>>,
    pub(crate) traceparent: Option<Box<str>>,
    /// `params._meta.tracestate`, beside the `traceparent` (read for spans).
    #[cfg_attr(not(feature = "otel"), allow(dead_code))]
    pub(crate) tracestate: Option<Box<str>>,
    /// The model `_meta` names, when it names one.
    pub(crate) model: Option<Box<str>>,
    /// The intent taken out of the arguments (intent capture).
    pub(crate) intent: Option<Box<str>>,
    /// A call of the virtual tool, answered by the layer.
    pub(crate) virtual_call: bool,
}

impl ClientMessage {
    /// A request known only from its SEP-2243 headers (its body was not read).
    pub(crate) fn from_headers(method: Box<str>, name: Option<Box<str>>) -> Self {
        Self {
            kind: if method.starts_with("notifications/") {
                MessageKind::Notification
            } else {
                MessageKind::Request
            },
            id: None,
            method,
            name,
            arguments: None,
            withheld: None,
            progress_token: None,
            client_name: None,
            client_version: None,
            protocol_version: None,
            traceparent: None,
            tracestate: None,
            model: None,
            intent: None,
            virtual_call: false,
        }
    }
}

/// A parsed request body.
#[derive(Debug, Default)]
pub(crate) struct ClientBody {
    /// Requests and notifications, in body order, at most the cap given to [`parse_client_body`].
    pub(crate) messages: Vec<ClientMessage>,
    /// The body was a JSON array (2025-03-26 batch).
    pub(crate) batch: bool,
    /// Batch entries beyond the cap, not read.
    pub(crate) over_cap: usize,
    /// Client responses to server requests (sampling, elicitation, roots): no events.
    pub(crate) responses: usize,
}

/// Parses a request body. `None` when it is not JSON (malformed, not UTF-8) or is neither
/// an object nor an array; entries that are not JSON-RPC messages are skipped.
pub(crate) fn parse_client_body(body: &Bytes, cap: usize) -> Option<ClientBody> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    let mut parsed = ClientBody::default();
    let mut read = |wire: &WireMessage<'_>| {
        if wire.result.is_some() || wire.error.is_some() {
            parsed.responses += 1;
        } else if let Some(message) = client_message(body, wire) {
            parsed.messages.push(message);
        }
    };
    if *first == b'[' {
        let mut de = serde_json::Deserializer::from_slice(body);
        let batch = serde::Deserializer::deserialize_seq(&mut de, CappedVisitor { cap }).ok()?;
        de.end().ok()?;
        for raw in &batch.items {
            if let Ok(wire) = serde_json::from_str::<WireMessage<'_>>(raw.get()) {
                read(&wire);
            }
        }
        parsed.batch = true;
        parsed.over_cap = batch.extra;
    } else {
        read(&serde_json::from_slice::<WireMessage<'_>>(body).ok()?);
    }
    Some(parsed)
}

/// A request or notification; `None` without a string `method`.
fn client_message(body: &Bytes, wire: &WireMessage<'_>) -> Option<ClientMessage> {
    let method = boxed(&wire.method)?;
    let empty = WireParams::default();
    let params = wire
        .params
        .as_ref()
        .and_then(|p| p.0.as_ref())
        .unwrap_or(&empty);
    let empty_meta = WireMeta::default();
    let meta = params
        .meta
        .as_ref()
        .and_then(|m| m.0.as_ref())
        .unwrap_or(&empty_meta);
    // 2026-07-28 puts clientInfo in `_meta`; the legacy `initialize` in its params.
    let client_info = meta
        .client_info
        .as_ref()
        .or(params.client_info.as_ref())
        .and_then(|info| info.0.as_ref());
    Some(ClientMessage {
        kind: if wire.id.is_some() {
            MessageKind::Request
        } else {
            MessageKind::Notification
        },
        id: wire.id.and_then(RequestId::from_raw),
        name: boxed(&params.name).or_else(|| boxed(&params.uri)),
        arguments: params
            .arguments
            .filter(|raw| raw.get() != "null")
            .map(|raw| body.slice_ref(raw.get().as_bytes())),
        withheld: None,
        progress_token: meta.progress_token.and_then(RequestId::from_raw),
        client_name: client_info.and_then(|info| boxed(&info.name)),
        client_version: client_info.and_then(|info| boxed(&info.version)),
        protocol_version: boxed(&meta.protocol_version).or_else(|| boxed(&params.protocol_version)),
        traceparent: boxed(&meta.traceparent),
        tracestate: boxed(&meta.tracestate),
        model: model(meta),
        intent: None,
        virtual_call: false,
        method,
    })
}

/// Longest model name kept, in characters.
const MODEL_CHARS: usize = 128;

/// The model `_meta` names: `io.modelcontextprotocol/model`, `model` inside
/// `io.modelcontextprotocol/aiInvocation`, or a top-level `model`, the first that is a
/// non-empty string.
fn model(meta: &WireMeta<'_>) -> Option<Box<str>> {
    let invocation = meta.ai_invocation.as_ref().and_then(|i| i.0.as_ref());
    [
        meta.model_namespaced.as_ref(),
        invocation.and_then(|i| i.model.as_ref()),
        meta.model.as_ref(),
    ]
    .into_iter()
    .flatten()
    .find_map(|text| text.as_str().map(str::trim).filter(|m| !m.is_empty()))
    .map(|m| {
        m.chars()
            .take(MODEL_CHARS)
            .collect::<String>()
            .into_boxed_str()
    })
}

/// A string field as an owned string, or `None` when absent or not a string.
fn boxed(text: &Option<Text<'_>>) -> Option<Box<str>> {
    text.as_ref()?.0.as_deref().map(Box::from)
}

/// What the layer needs to know about one server message while the response streams.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ServerMessage {
    /// A response; `id: None` for a `null` id (an error the server could not attribute).
    Response { id: Option<RequestId> },
    /// `notifications/progress`, with its token.
    Progress { token: Option<RequestId> },
    /// `notifications/message` (a log line).
    Log,
    /// Any other notification, or a server-to-client request.
    Other,
}

/// Reads a server payload (one message, or a batch array) shallowly, calling `each` with
/// every message's own bytes, what it is, and (for a response) where its `result` and
/// `error` are. Malformed payloads call nothing.
pub(crate) fn for_each_server_message(
    payload: &[u8],
    mut each: impl FnMut(&[u8], ServerMessage, ResponseParts<'_>),
) {
    let Some(first) = payload.iter().find(|b| !b.is_ascii_whitespace()) else {
        return;
    };
    let mut one = |bytes: &[u8], wire: &WireReply<'_>| {
        each(bytes, server_message(wire), response_parts(wire));
    };
    if *first == b'[' {
        let Ok(items) = serde_json::from_slice::<Vec<&RawValue>>(payload) else {
            return;
        };
        for raw in items {
            if let Ok(wire) = serde_json::from_str::<WireReply<'_>>(raw.get()) {
                one(raw.get().as_bytes(), &wire);
            }
        }
    } else if let Ok(wire) = serde_json::from_slice::<WireReply<'_>>(payload) {
        one(payload, &wire);
    }
}

/// A response's `result` (a `null` one is none) and `error`.
fn response_parts<'a>(wire: &WireReply<'a>) -> ResponseParts<'a> {
    ResponseParts {
        result: wire.result.filter(|raw| raw.get() != "null"),
        error: wire.error,
    }
}

fn server_message(wire: &WireReply<'_>) -> ServerMessage {
    if wire.method.is_none() && (wire.result.is_some() || wire.error.is_some()) {
        return ServerMessage::Response {
            id: wire.id.and_then(RequestId::from_raw),
        };
    }
    match wire.method.as_ref().and_then(|m| m.0.as_deref()) {
        Some(mcp::NOTIFICATION_PROGRESS) => {
            let token = wire
                .params
                .as_ref()
                .and_then(|p| p.0.as_ref())
                .and_then(|p| p.progress_token)
                .and_then(RequestId::from_raw);
            ServerMessage::Progress { token }
        }
        Some(mcp::NOTIFICATION_MESSAGE) => ServerMessage::Log,
        _ => ServerMessage::Other,
    }
}

/// The response to one request, found in a server payload.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ResponseParts<'a> {
    pub(crate) result: Option<&'a RawValue>,
    pub(crate) error: Option<&'a RawValue>,
}

/// Above this many answers, lookups go through a hash index.
const INDEX_ABOVE: usize = 16;

/// Every response in a payload (a message or a batch array), read once and looked up by
/// request id.
#[derive(Debug, Default)]
pub(crate) struct Responses<'a> {
    /// First answer per id, in payload order.
    answers: Vec<(RequestId, ResponseParts<'a>)>,
    /// An index over `answers`, built only for large batches.
    index: Option<HashMap<RequestId, usize>>,
    /// The first response with a `null` id: it answers every request.
    unattributed: Option<ResponseParts<'a>>,
    /// The first response of all, for a request with no known id.
    first: Option<ResponseParts<'a>>,
}

impl<'a> Responses<'a> {
    /// Reads the responses of a payload; anything else in it is skipped.
    pub(crate) fn read(payload: &'a [u8]) -> Self {
        let mut responses = Self::default();
        let mut add = |wire: WireReply<'a>| {
            if wire.method.is_some() || (wire.result.is_none() && wire.error.is_none()) {
                return;
            }
            let parts = response_parts(&wire);
            responses.first.get_or_insert(parts);
            match wire.id.and_then(RequestId::from_raw) {
                Some(id) => responses.answers.push((id, parts)),
                None => {
                    responses.unattributed.get_or_insert(parts);
                }
            }
        };
        match payload.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') => {
                let items =
                    serde_json::from_slice::<Vec<&'a RawValue>>(payload).unwrap_or_default();
                for raw in items {
                    if let Ok(wire) = serde_json::from_str::<WireReply<'a>>(raw.get()) {
                        add(wire);
                    }
                }
            }
            Some(_) => {
                if let Ok(wire) = serde_json::from_slice::<WireReply<'a>>(payload) {
                    add(wire);
                }
            }
            None => {}
        }
        if responses.answers.len() > INDEX_ABOVE {
            let mut index = HashMap::with_capacity(responses.answers.len());
            for (position, (id, _)) in responses.answers.iter().enumerate() {
                index.entry(id.clone()).or_insert(position);
            }
            responses.index = Some(index);
        }
        responses
    }

    /// The response for a request with this id (`None`: a request known only from its
    /// headers, which takes the first response).
    pub(crate) fn get(&self, id: Option<&RequestId>) -> Option<ResponseParts<'a>> {
        let Some(id) = id else {
            return self.first;
        };
        let found = match &self.index {
            Some(index) => index
                .get(id)
                .and_then(|&position| self.answers.get(position))
                .map(|(_, parts)| *parts),
            None => self
                .answers
                .iter()
                .find(|(got, _)| got == id)
                .map(|(_, parts)| *parts),
        };
        found.or(self.unattributed)
    }
}

/// Reads `isError` and `resultType == "input_required"` from a raw result without
/// building it (for results too deep to become a value).
pub(crate) fn result_flags(result: &str) -> (bool, bool) {
    let flags = serde_json::from_str::<WireResultFlags<'_>>(result).unwrap_or_default();
    let is_error = flags.is_error.is_some_and(|raw| raw.get() == "true");
    let input_required =
        flags.result_type.as_ref().and_then(Text::as_str) == Some("input_required");
    (is_error, input_required)
}

/// A JSON-RPC error object, leniently read.
#[derive(Debug, Default)]
pub(crate) struct ErrorParts<'a> {
    pub(crate) code: Option<i64>,
    pub(crate) message: Option<String>,
    pub(crate) data: Option<&'a RawValue>,
}

pub(crate) fn error_parts(error: &str) -> ErrorParts<'_> {
    let wire = serde_json::from_str::<WireError<'_>>(error).unwrap_or_default();
    ErrorParts {
        code: wire.code.and_then(|raw| raw.get().parse().ok()),
        message: wire.message.and_then(|t| t.0).map(String::from),
        data: wire.data.filter(|raw| raw.get() != "null"),
    }
}

/// The names of the tools a `tools/list` result advertises, the first `max` of them
/// (names longer than 256 bytes are left out).
pub(crate) fn tool_names(result: &str, max: usize) -> Option<Vec<String>> {
    let wire = serde_json::from_str::<WireToolList<'_>>(result).ok()?;
    let tools = serde_json::from_str::<Vec<&RawValue>>(wire.tools?.get()).ok()?;
    Some(
        tools
            .into_iter()
            .filter_map(|tool| {
                let tool = serde_json::from_str::<WireToolName<'_>>(tool.get()).ok()?;
                let name = tool.name.as_ref().and_then(Text::as_str)?;
                (name.len() <= 256).then(|| name.to_owned())
            })
            .take(max)
            .collect(),
    )
}

/// The text of a tool result's first `text` content block.
pub(crate) fn first_text(result: &str) -> Option<String> {
    let wire = serde_json::from_str::<WireContentList<'_>>(result).ok()?;
    let blocks = serde_json::from_str::<Vec<&RawValue>>(wire.content?.get()).ok()?;
    blocks.into_iter().find_map(|block| {
        let block = serde_json::from_str::<WireTextBlock<'_>>(block.get()).ok()?;
        match block.kind.as_ref().and_then(Text::as_str) {
            Some("text") => block.text.and_then(|t| t.0).map(String::from),
            _ => None,
        }
    })
}

/// A batch array read up to a cap; the entries past it are skipped and counted.
struct CappedBatch<'a> {
    items: Vec<&'a RawValue>,
    extra: usize,
}

struct CappedVisitor {
    cap: usize,
}

impl<'de> Visitor<'de> for CappedVisitor {
    type Value = CappedBatch<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC batch array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while items.len() < self.cap {
            match seq.next_element::<&'de RawValue>()? {
                Some(raw) => items.push(raw),
                None => return Ok(CappedBatch { items, extra: 0 }),
            }
        }
        let mut extra = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            extra += 1;
        }
        Ok(CappedBatch { items, extra })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Option<ClientBody> {
        parse_client_body(&Bytes::copy_from_slice(text.as_bytes()), 100)
    }

    #[test]
    fn reads_a_tool_call_with_its_meta() {
        let body = parse(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo",
            "arguments":{"text":"hi"},"_meta":{"progressToken":"p1",
            "io.modelcontextprotocol/clientInfo":{"name":"cursor-vscode","version":"1.2"},
            "io.modelcontextprotocol/protocolVersion":"2026-07-28",
            "traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}}"#,
        )
        .expect("parses");
        assert!(!body.batch);
        let msg = &body.messages[0];
        assert_eq!(msg.kind, MessageKind::Request);
        assert_eq!(msg.id, Some(RequestId::Int(7)));
        assert_eq!(&*msg.method, "tools/call");
        assert_eq!(msg.name.as_deref(), Some("echo"));
        assert_eq!(msg.arguments.as_deref(), Some(&br#"{"text":"hi"}"#[..]));
        assert_eq!(msg.progress_token, Some(RequestId::Str("p1".into())));
        assert_eq!(msg.client_name.as_deref(), Some("cursor-vscode"));
        assert_eq!(msg.client_version.as_deref(), Some("1.2"));
        assert_eq!(msg.protocol_version.as_deref(), Some("2026-07-28"));
        assert!(msg.traceparent.is_some());
        assert_eq!(msg.model, None);
    }

    #[test]
    fn reads_the_model_meta_names() {
        let model = |meta: &str| {
            let text = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"a","_meta":{meta}}}}}"#
            );
            parse(&text).and_then(|b| b.messages[0].model.as_deref().map(String::from))
        };
        assert_eq!(
            model(r#"{"io.modelcontextprotocol/model":"claude-opus-4-5"}"#).as_deref(),
            Some("claude-opus-4-5")
        );
        assert_eq!(
            model(r#"{"io.modelcontextprotocol/aiInvocation":{"model":"gpt-5.1","provider":"x"}}"#)
                .as_deref(),
            Some("gpt-5.1")
        );
        assert_eq!(
            model(r#"{"model":" gemini-3-pro "}"#).as_deref(),
            Some("gemini-3-pro")
        );
        assert_eq!(model(r#"{"model":""}"#), None);
        assert_eq!(model(r#"{"model":{"name":"x"}}"#), None);
        assert_eq!(model(r#"{"vscode.conversationId":"c1"}"#), None);
        let long = format!(r#"{{"model":"{}"}}"#, "m".repeat(1000));
        assert_eq!(model(&long).map(|m| m.len()), Some(128));
    }

    #[test]
    fn reads_initialize_client_info_and_resource_uris() {
        let body = parse(
            r#"[{"jsonrpc":"2.0","id":"a","method":"initialize","params":{"protocolVersion":"2025-03-26",
            "clientInfo":{"name":"claude-ai","version":"0.1"},"capabilities":{}}},
            {"jsonrpc":"2.0","method":"notifications/initialized"},
            {"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///a"}},
            {"jsonrpc":"2.0","id":3,"result":{}}]"#,
        )
        .expect("parses");
        assert!(body.batch);
        assert_eq!(
            body.messages.len(),
            3,
            "the client's response is not an event"
        );
        assert_eq!(body.messages[0].client_name.as_deref(), Some("claude-ai"));
        assert_eq!(
            body.messages[0].protocol_version.as_deref(),
            Some("2025-03-26")
        );
        assert_eq!(body.messages[1].kind, MessageKind::Notification);
        assert_eq!(body.messages[2].name.as_deref(), Some("file:///a"));
    }

    #[test]
    fn junk_fields_are_misses_not_failures() {
        let body = parse(r#"{"id":1,"method":"tools/call","params":{"name":42,"_meta":[1]}}"#)
            .expect("parses");
        assert_eq!(body.messages[0].name, None);
        assert_eq!(body.messages[0].client_name, None);
        assert!(
            parse(r#"{"id":1,"method":5}"#)
                .expect("parses")
                .messages
                .is_empty()
        );
        assert!(parse("not json").is_none());
        assert!(parse("").is_none());
        assert!(parse("\u{feff}{}").is_none());
    }

    #[test]
    fn deep_nesting_never_overflows_the_stack() {
        // Raw values are skipped iteratively: a deep array is read as one (non-message)
        // entry, and deep arguments stay a raw slice until the worker's depth-limited parse.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(&deep).is_none_or(|body| body.messages.is_empty()));
        let deep_args = format!(
            r#"{{"id":1,"method":"tools/call","params":{{"name":"t","arguments":{}1{}}}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let body = parse(&deep_args).expect("parses");
        let raw = body.messages[0].arguments.as_ref().expect("raw arguments");
        assert!(serde_json::from_slice::<serde_json::Value>(raw).is_err());
        let deep_object = format!("{}{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
        assert!(parse(&deep_object).is_none());
    }

    #[test]
    fn batches_are_capped_and_the_excess_counted() {
        let entries = vec![r#"{"id":1,"method":"ping"}"#; 1000].join(",");
        let body = parse_client_body(&Bytes::from(format!("[{entries}]")), 10).expect("parses");
        assert_eq!(body.messages.len(), 10);
        assert_eq!(body.over_cap, 990);
    }

    #[test]
    fn ids_normalise_so_responses_match() {
        let raw =
            |t: &str| RequestId::from_raw(&serde_json::from_str::<Box<RawValue>>(t).expect("raw"));
        assert_eq!(raw("1"), Some(RequestId::Int(1)));
        assert_eq!(raw(r#""\u0061""#), raw(r#""a""#));
        assert_eq!(raw("null"), None);
        assert_eq!(raw("1.5"), Some(RequestId::Other("1.5".into())));
        assert_eq!(
            raw("1.5").map(|id| id.to_json()),
            Some(serde_json::json!(1.5))
        );
    }

    #[test]
    fn finds_responses_by_id_in_objects_and_batches() {
        let one = br#"{"jsonrpc":"2.0","id":3,"result":{"content":[],"isError":true}}"#;
        let responses = Responses::read(one);
        let found = responses.get(Some(&RequestId::Int(3))).expect("found");
        let result = found.result.expect("result");
        assert_eq!(result.get(), r#"{"content":[],"isError":true}"#);
        assert_eq!(result_flags(result.get()), (true, false));
        assert!(responses.get(Some(&RequestId::Int(4))).is_none());
        assert!(
            responses.get(None).is_some(),
            "a request with no id takes the first response"
        );

        let batch = br#"[{"id":1,"result":{"resultType":"input_required"}},{"id":2,"error":{"code":-32601,"message":"nope"}},{"id":2,"result":{}}]"#;
        let responses = Responses::read(batch);
        let second = responses.get(Some(&RequestId::Int(2))).expect("found");
        let error = error_parts(second.error.expect("the first answer for an id wins").get());
        assert_eq!(error.code, Some(-32601));
        assert_eq!(error.message.as_deref(), Some("nope"));
        let first = responses.get(Some(&RequestId::Int(1))).expect("found");
        assert_eq!(
            result_flags(first.result.expect("result").get()),
            (false, true)
        );

        let unattributed =
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse"}}"#;
        assert!(
            Responses::read(unattributed)
                .get(Some(&RequestId::Int(9)))
                .is_some()
        );
        assert!(Responses::read(b"not json").get(None).is_none());

        let many: Vec<String> = (0..40)
            .map(|n| format!(r#"{{"id":{n},"result":{{"n":{n}}}}}"#))
            .collect();
        let many = format!("[{}]", many.join(","));
        let responses = Responses::read(many.as_bytes());
        let found = responses.get(Some(&RequestId::Int(33))).expect("indexed");
        assert_eq!(found.result.map(RawValue::get), Some(r#"{"n":33}"#));
        assert!(responses.get(Some(&RequestId::Int(40))).is_none());
    }

    #[test]
    fn counts_client_responses_and_keeps_duplicate_keys_readable() {
        let body = parse(r#"[{"id":1,"result":{}},{"id":2,"error":{"code":1,"message":"x"}}]"#)
            .expect("parses");
        assert!(body.messages.is_empty());
        assert_eq!(body.responses, 2);
        let dup = parse(
            r#"{"id":1,"method":"tools/call","params":{"name":"a","name":"b","_meta":{"progressToken":1,"progressToken":2}}}"#,
        )
        .expect("parses");
        assert_eq!(dup.messages[0].name.as_deref(), Some("b"));
        assert_eq!(dup.messages[0].progress_token, Some(RequestId::Int(2)));
    }

    #[test]
    fn classifies_server_messages() {
        let mut seen = Vec::new();
        for_each_server_message(
            br#"[{"method":"notifications/progress","params":{"progressToken":5,"progress":1}},
                {"method":"notifications/message","params":{"level":"info","data":"x"}},
                {"id":1,"method":"sampling/createMessage","params":{}},
                {"id":"r","result":{}}]"#,
            |_, msg, _| seen.push(msg),
        );
        assert_eq!(
            seen,
            vec![
                ServerMessage::Progress {
                    token: Some(RequestId::Int(5))
                },
                ServerMessage::Log,
                ServerMessage::Other,
                ServerMessage::Response {
                    id: Some(RequestId::Str("r".into()))
                },
            ]
        );
    }
}
