//! Lenient serde readers for the JSON-RPC shapes the layer looks into.
//!
//! Owns how hostile or sloppy JSON is read: a field holding the wrong type is a miss, not
//! a failure of the whole message ([`Text`], [`Lenient`]); a duplicated key keeps its last
//! value, as `serde_json::Map` does (serde's derive would reject the whole object, which
//! would let a client hide a call from analytics by repeating a key); unknown keys are
//! skipped without building values; nothing recurses without bound (serde_json skips
//! nested values iteratively). Never allocates for a string without escapes.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// A string, borrowed when it has no escapes; any other JSON value reads as `None`.
pub(super) struct Text<'a>(pub(super) Option<Cow<'a, str>>);

/// An object read as `T`; any other JSON value reads as `None`.
pub(super) struct Lenient<T>(pub(super) Option<T>);

/// Defines a struct of optional fields read from a JSON object by key. Present keys are
/// `Some` even when their value is `null` (a `null` id still makes a request).
macro_rules! wire_struct {
    ($(#[$meta:meta])* struct $name:ident<'a> { $($field:ident: $ty:ty = $key:literal,)* }) => {
        $(#[$meta])*
        #[derive(Default)]
        pub(super) struct $name<'a> {
            $(pub(super) $field: Option<$ty>,)*
            _borrows: PhantomData<&'a ()>,
        }

        impl<'de: 'a, 'a> Deserialize<'de> for $name<'a> {
            fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
                struct FieldsVisitor<'a>(PhantomData<&'a ()>);
                impl<'de: 'a, 'a> Visitor<'de> for FieldsVisitor<'a> {
                    type Value = $name<'a>;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a JSON object")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                        let mut wire = $name::default();
                        while let Some(key) = map.next_key::<Text<'de>>()? {
                            match key.0.as_deref() {
                                $(Some($key) => wire.$field = Some(map.next_value()?),)*
                                _ => {
                                    map.next_value::<IgnoredAny>()?;
                                }
                            }
                        }
                        Ok(wire)
                    }
                }
                de.deserialize_map(FieldsVisitor(PhantomData))
            }
        }
    };
}

wire_struct! {
    /// A message from the client.
    struct WireMessage<'a> {
        id: &'a RawValue = "id",
        method: Text<'a> = "method",
        params: Lenient<WireParams<'a>> = "params",
        result: &'a RawValue = "result",
        error: &'a RawValue = "error",
    }
}

wire_struct! {
    /// `params` of a client request or notification.
    struct WireParams<'a> {
        name: Text<'a> = "name",
        uri: Text<'a> = "uri",
        arguments: &'a RawValue = "arguments",
        meta: Lenient<WireMeta<'a>> = "_meta",
        client_info: Lenient<WireClientInfo<'a>> = "clientInfo",
        protocol_version: Text<'a> = "protocolVersion",
    }
}

wire_struct! {
    /// `params._meta` of a client request.
    struct WireMeta<'a> {
        progress_token: &'a RawValue = "progressToken",
        client_info: Lenient<WireClientInfo<'a>> = "io.modelcontextprotocol/clientInfo",
        protocol_version: Text<'a> = "io.modelcontextprotocol/protocolVersion",
        traceparent: Text<'a> = "traceparent",
        tracestate: Text<'a> = "tracestate",
        model_namespaced: Text<'a> = "io.modelcontextprotocol/model",
        ai_invocation: Lenient<WireInvocation<'a>> = "io.modelcontextprotocol/aiInvocation",
        model: Text<'a> = "model",
    }
}

wire_struct! {
    /// `_meta["io.modelcontextprotocol/aiInvocation"]`: what drives the request.
    struct WireInvocation<'a> {
        model: Text<'a> = "model",
    }
}

wire_struct! {
    /// `clientInfo`: the client's self-reported name and version.
    struct WireClientInfo<'a> {
        name: Text<'a> = "name",
        version: Text<'a> = "version",
    }
}

wire_struct! {
    /// A message from the server: only what matching and counting need.
    struct WireReply<'a> {
        id: &'a RawValue = "id",
        method: Text<'a> = "method",
        params: Lenient<WireProgress<'a>> = "params",
        result: &'a RawValue = "result",
        error: &'a RawValue = "error",
    }
}

wire_struct! {
    /// `params` of `notifications/progress`.
    struct WireProgress<'a> {
        progress_token: &'a RawValue = "progressToken",
    }
}

wire_struct! {
    /// A JSON-RPC error object.
    struct WireError<'a> {
        code: &'a RawValue = "code",
        message: Text<'a> = "message",
        data: &'a RawValue = "data",
    }
}

wire_struct! {
    /// A tool result's content blocks.
    struct WireContentList<'a> {
        content: &'a RawValue = "content",
    }
}

wire_struct! {
    /// A `tools/list` result, for its tools.
    struct WireToolList<'a> {
        tools: &'a RawValue = "tools",
    }
}

wire_struct! {
    /// A tool of a `tools/list` result, for its name.
    struct WireToolName<'a> {
        name: Text<'a> = "name",
    }
}

wire_struct! {
    /// A tool of a `tools/list` result, for its name and where its schema is.
    struct WireTool<'a> {
        name: Text<'a> = "name",
        input_schema: &'a RawValue = "inputSchema",
    }
}

wire_struct! {
    /// A content block, for its text.
    struct WireTextBlock<'a> {
        kind: Text<'a> = "type",
        text: Text<'a> = "text",
    }
}

wire_struct! {
    /// The fields of a result that decide its outcome.
    struct WireResultFlags<'a> {
        is_error: &'a RawValue = "isError",
        result_type: Text<'a> = "resultType",
    }
}

impl Text<'_> {
    /// The string, if the value was one.
    pub(super) fn as_str(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_keep_the_last_value() {
        let wire: WireMeta<'_> = serde_json::from_str(
            r#"{"progressToken":1,"progressToken":2,"traceparent":"a","traceparent":"b"}"#,
        )
        .expect("reads");
        assert_eq!(wire.progress_token.map(RawValue::get), Some("2"));
        assert_eq!(wire.traceparent.and_then(|t| t.0).as_deref(), Some("b"));
    }

    #[test]
    fn wrong_types_are_misses_and_arrays_are_not_objects() {
        let wire: WireParams<'_> =
            serde_json::from_str(r#"{"name":7,"_meta":[1,{"a":2}],"clientInfo":"x","uri":"u"}"#)
                .expect("reads");
        assert!(wire.name.is_some_and(|t| t.0.is_none()));
        assert!(wire.meta.is_some_and(|m| m.0.is_none()));
        assert!(wire.client_info.is_some_and(|c| c.0.is_none()));
        assert_eq!(wire.uri.and_then(|t| t.0).as_deref(), Some("u"));
        assert!(serde_json::from_str::<WireMessage<'_>>(r#"[1,"tools/call",{}]"#).is_err());
    }

    #[test]
    fn escaped_keys_and_null_values_are_read() {
        let wire: WireMessage<'_> =
            serde_json::from_str(r#"{"\u0069d":null,"method":"ping"}"#).expect("reads");
        assert_eq!(wire.id.map(RawValue::get), Some("null"));
        assert_eq!(wire.method.and_then(|t| t.0).as_deref(), Some("ping"));
    }
}
