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

use std::fmt;

use bytes::Bytes;
use std::borrow::Cow;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::mcp;

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
    fn from_raw(raw: &RawValue) -> Option<Self> {
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
    pub(crate) progress_token: Option<RequestId>,
    /// From `_meta` clientInfo (2026-07-28) or `initialize` params.
    pub(crate) client_name: Option<Box<str>>,
    pub(crate) client_version: Option<Box<str>>,
    /// From `_meta` (2026-07-28) or `initialize` params.
    pub(crate) protocol_version: Option<Box<str>>,
    pub(crate) traceparent: Option<Box<str>>,
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
            progress_token: None,
            client_name: None,
            client_version: None,
            protocol_version: None,
            traceparent: None,
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
}

/// Parses a request body. `None` when it is not JSON-RPC at all (malformed JSON, not an
/// object or array, nesting beyond serde_json's limit).
pub(crate) fn parse_client_body(body: &Bytes, cap: usize) -> Option<ClientBody> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first == b'[' {
        let mut de = serde_json::Deserializer::from_slice(body);
        let batch = serde::Deserializer::deserialize_seq(&mut de, CappedVisitor { cap }).ok()?;
        de.end().ok()?;
        let messages = batch
            .items
            .iter()
            .filter_map(|raw| serde_json::from_str::<WireMessage<'_>>(raw.get()).ok())
            .filter_map(|wire| client_message(body, &wire))
            .collect();
        Some(ClientBody {
            messages,
            batch: true,
            over_cap: batch.extra,
        })
    } else {
        let wire = serde_json::from_slice::<WireMessage<'_>>(body).ok()?;
        Some(ClientBody {
            messages: client_message(body, &wire).into_iter().collect(),
            batch: false,
            over_cap: 0,
        })
    }
}

fn client_message(body: &Bytes, wire: &WireMessage<'_>) -> Option<ClientMessage> {
    if wire.result.is_some() || wire.error.is_some() {
        // A client's response to a server request (sampling, elicitation, roots).
        return None;
    }
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
            .map(|raw| body.slice_ref(raw.get().as_bytes())),
        progress_token: meta.progress_token.and_then(RequestId::from_raw),
        client_name: client_info.and_then(|info| boxed(&info.name)),
        client_version: client_info.and_then(|info| boxed(&info.version)),
        protocol_version: boxed(&meta.protocol_version).or_else(|| boxed(&params.protocol_version)),
        traceparent: boxed(&meta.traceparent),
        method,
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
/// every message's own bytes and what it is. Malformed payloads call nothing.
pub(crate) fn for_each_server_message(payload: &[u8], mut each: impl FnMut(&[u8], ServerMessage)) {
    let Some(first) = payload.iter().find(|b| !b.is_ascii_whitespace()) else {
        return;
    };
    if *first == b'[' {
        let Ok(items) = serde_json::from_slice::<Vec<&RawValue>>(payload) else {
            return;
        };
        for raw in items {
            if let Ok(wire) = serde_json::from_str::<WireReply<'_>>(raw.get()) {
                each(raw.get().as_bytes(), server_message(&wire));
            }
        }
    } else if let Ok(wire) = serde_json::from_slice::<WireReply<'_>>(payload) {
        each(payload, server_message(&wire));
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
#[derive(Debug)]
pub(crate) struct ResponseParts<'a> {
    pub(crate) result: Option<&'a RawValue>,
    pub(crate) error: Option<&'a RawValue>,
}

/// Finds the response for `id` in a payload (a message or a batch array). A `null`-id
/// error answers every request; a request with no known id takes the first response.
pub(crate) fn find_response<'a>(
    payload: &'a [u8],
    id: Option<&RequestId>,
) -> Option<ResponseParts<'a>> {
    let matches = |wire: &WireReply<'a>| {
        if wire.method.is_some() || (wire.result.is_none() && wire.error.is_none()) {
            return false;
        }
        match (id, wire.id.and_then(RequestId::from_raw)) {
            (_, None) | (None, Some(_)) => true,
            (Some(wanted), Some(got)) => *wanted == got,
        }
    };
    let first = payload.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first == b'[' {
        let items = serde_json::from_slice::<Vec<&'a RawValue>>(payload).ok()?;
        items
            .into_iter()
            .filter_map(|raw| serde_json::from_str::<WireReply<'a>>(raw.get()).ok())
            .find(matches)
            .map(ResponseParts::from)
    } else {
        let wire = serde_json::from_slice::<WireReply<'a>>(payload).ok()?;
        matches(&wire).then(|| ResponseParts::from(wire))
    }
}

impl<'a> From<WireReply<'a>> for ResponseParts<'a> {
    fn from(wire: WireReply<'a>) -> Self {
        Self {
            result: wire.result.filter(|raw| raw.get() != "null"),
            error: wire.error,
        }
    }
}

/// A JSON-RPC error object, leniently read.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ErrorParts {
    pub(crate) code: Option<i64>,
    pub(crate) message: Option<String>,
    pub(crate) data: Option<serde_json::Value>,
}

pub(crate) fn error_parts(error: &RawValue) -> ErrorParts {
    #[derive(Deserialize, Default)]
    struct Wire<'a> {
        #[serde(default, borrow)]
        code: Option<&'a RawValue>,
        #[serde(default, borrow)]
        message: Option<Text<'a>>,
        #[serde(default, borrow)]
        data: Option<&'a RawValue>,
    }
    let wire = serde_json::from_str::<Wire<'_>>(error.get()).unwrap_or_default();
    ErrorParts {
        code: wire.code.and_then(|raw| raw.get().parse().ok()),
        message: wire.message.and_then(|t| t.0).map(String::from),
        data: wire
            .data
            .and_then(|raw| serde_json::from_str(raw.get()).ok()),
    }
}

/// A message from the client.
#[derive(Deserialize)]
struct WireMessage<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    method: Option<Text<'a>>,
    #[serde(default, borrow)]
    params: Option<Lenient<WireParams<'a>>>,
    #[serde(default, borrow, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

/// A message from the server: only what matching and counting need.
#[derive(Deserialize)]
struct WireReply<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    method: Option<Text<'a>>,
    #[serde(default, borrow)]
    params: Option<Lenient<WireProgress<'a>>>,
    #[serde(default, borrow, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

/// `params` of `notifications/progress`.
#[derive(Deserialize)]
struct WireProgress<'a> {
    #[serde(default, borrow, rename = "progressToken")]
    progress_token: Option<&'a RawValue>,
}

/// Keeps a present field present even when its value is `null` (a `null` id still makes a
/// request, a `null` result still makes a response).
fn present<'de, D: Deserializer<'de>>(de: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(de).map(Some)
}

/// `params` of requests and notifications, read in one pass.
#[derive(Deserialize, Default)]
struct WireParams<'a> {
    #[serde(default, borrow)]
    name: Option<Text<'a>>,
    #[serde(default, borrow)]
    uri: Option<Text<'a>>,
    #[serde(default, borrow)]
    arguments: Option<&'a RawValue>,
    #[serde(default, borrow, rename = "_meta")]
    meta: Option<Lenient<WireMeta<'a>>>,
    #[serde(default, borrow, rename = "clientInfo")]
    client_info: Option<Lenient<WireClientInfo<'a>>>,
    #[serde(default, borrow, rename = "protocolVersion")]
    protocol_version: Option<Text<'a>>,
}

#[derive(Deserialize, Default)]
struct WireMeta<'a> {
    #[serde(default, borrow, rename = "progressToken")]
    progress_token: Option<&'a RawValue>,
    #[serde(default, borrow, rename = "io.modelcontextprotocol/clientInfo")]
    client_info: Option<Lenient<WireClientInfo<'a>>>,
    #[serde(default, borrow, rename = "io.modelcontextprotocol/protocolVersion")]
    protocol_version: Option<Text<'a>>,
    #[serde(default, borrow)]
    traceparent: Option<Text<'a>>,
}

#[derive(Deserialize, Default)]
struct WireClientInfo<'a> {
    #[serde(default, borrow)]
    name: Option<Text<'a>>,
    #[serde(default, borrow)]
    version: Option<Text<'a>>,
}

/// A string, borrowed when it has no escapes; any other JSON value reads as `None` (junk
/// under a key is a miss, not a failure of the whole message).
struct Text<'a>(Option<Cow<'a, str>>);

/// An object read as `T`; any other JSON value reads as `None`.
struct Lenient<T>(Option<T>);

/// Visitor methods reading every JSON value but the one a visitor wants as `None`.
macro_rules! skip_other_values {
    () => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    };
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Option<Cow<'de, str>>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Some(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Some(Cow::Owned(s.to_owned())))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(None)
            }
            skip_other_values!();
        }
        de.deserialize_any(TextVisitor).map(Text)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = Option<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Some)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(None)
            }
            skip_other_values!();
        }
        de.deserialize_any(ObjectVisitor(PhantomData)).map(Lenient)
    }
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
        let found = find_response(one, Some(&RequestId::Int(3))).expect("found");
        assert_eq!(
            found.result.map(RawValue::get),
            Some(r#"{"content":[],"isError":true}"#)
        );
        assert!(find_response(one, Some(&RequestId::Int(4))).is_none());
        let batch = br#"[{"id":1,"result":{"resultType":"input_required"}},{"id":2,"error":{"code":-32601,"message":"nope"}}]"#;
        let second = find_response(batch, Some(&RequestId::Int(2))).expect("found");
        let error = error_parts(second.error.expect("error"));
        assert_eq!(error.code, Some(-32601));
        assert_eq!(error.message.as_deref(), Some("nope"));
        let first = find_response(batch, Some(&RequestId::Int(1))).expect("found");
        assert_eq!(
            first.result.map(RawValue::get),
            Some(r#"{"resultType":"input_required"}"#)
        );
        let unattributed =
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse"}}"#;
        assert!(find_response(unattributed, Some(&RequestId::Int(9))).is_some());
    }

    #[test]
    fn classifies_server_messages() {
        let mut seen = Vec::new();
        for_each_server_message(
            br#"[{"method":"notifications/progress","params":{"progressToken":5,"progress":1}},
                {"method":"notifications/message","params":{"level":"info","data":"x"}},
                {"id":1,"method":"sampling/createMessage","params":{}},
                {"id":"r","result":{}}]"#,
            |_, msg| seen.push(msg),
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
