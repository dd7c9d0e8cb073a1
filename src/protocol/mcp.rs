//! MCP names: HTTP headers, `_meta` keys and the methods whose events name a resource.
//!
//! Owns the vocabulary of the Model Context Protocol's Streamable HTTP transport (both the
//! legacy 2025-03-26 .. 2025-11-25 era and the 2026-07-28 era). Never decides what to do with
//! a request; it only names and decodes. (The `_meta` keys,
//! `io.modelcontextprotocol/clientInfo` and `io.modelcontextprotocol/protocolVersion`, are
//! named where serde reads them, in `jsonrpc`.)

use base64::Engine as _;
use http::HeaderValue;
use http::header::HeaderName;

/// `MCP-Protocol-Version`, sent by clients from 2025-06-18 on.
pub(crate) const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
/// `Mcp-Session-Id`, legacy stateful sessions.
pub(crate) const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
/// `Mcp-Method` (SEP-2243, 2026-07-28).
pub(crate) const METHOD: HeaderName = HeaderName::from_static("mcp-method");
/// `Mcp-Name` (SEP-2243, 2026-07-28): tool name, prompt name or resource URI.
pub(crate) const NAME: HeaderName = HeaderName::from_static("mcp-name");
/// `x-mcp-client-name`: a client's name, for clients that send it as a header.
pub(crate) const CLIENT_NAME: HeaderName = HeaderName::from_static("x-mcp-client-name");
/// `x-mcp-client-version`.
pub(crate) const CLIENT_VERSION: HeaderName = HeaderName::from_static("x-mcp-client-version");

/// The progress notification method.
pub(crate) const NOTIFICATION_PROGRESS: &str = "notifications/progress";
/// The log message notification method.
pub(crate) const NOTIFICATION_MESSAGE: &str = "notifications/message";

/// Longest header value the layer copies into an event (longer values are ignored).
const MAX_HEADER_VALUE: usize = 1024;

/// Reads a header as text, decoding the SEP-2243 `=?base64?...?=` form.
///
/// Returns `None` for values that are missing, too long, not valid UTF-8 after decoding,
/// or malformed base64.
pub(crate) fn header_text(value: Option<&HeaderValue>) -> Option<Box<str>> {
    let raw = value?.as_bytes();
    if raw.len() > MAX_HEADER_VALUE {
        return None;
    }
    if let Some(encoded) = raw
        .strip_prefix(b"=?base64?")
        .and_then(|rest| rest.strip_suffix(b"?="))
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        return String::from_utf8(decoded).ok().map(String::into_boxed_str);
    }
    std::str::from_utf8(raw).ok().map(Box::from)
}

/// True when a `Content-Type` names JSON (`application/json`, any parameters, any case).
pub(crate) fn is_json(content_type: Option<&HeaderValue>) -> bool {
    media_type_is(content_type, "application/json")
}

/// True when a `Content-Type` names an event stream.
pub(crate) fn is_event_stream(content_type: Option<&HeaderValue>) -> bool {
    media_type_is(content_type, "text/event-stream")
}

/// True when a `Content-Encoding` names a coding other than `identity`.
pub(crate) fn is_encoded(content_encoding: Option<&HeaderValue>) -> bool {
    content_encoding.is_some_and(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|coding| !coding.trim_ascii().eq_ignore_ascii_case(b"identity"))
    })
}

fn media_type_is(content_type: Option<&HeaderValue>, expected: &str) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plain_and_base64_header_values() {
        let plain = HeaderValue::from_static("get_weather");
        assert_eq!(header_text(Some(&plain)).as_deref(), Some("get_weather"));
        // "héllo" is not header-safe, so SEP-2243 sends it base64 encoded.
        let encoded = HeaderValue::from_static("=?base64?aMOpbGxv?=");
        assert_eq!(header_text(Some(&encoded)).as_deref(), Some("héllo"));
        let broken = HeaderValue::from_static("=?base64?***?=");
        assert_eq!(header_text(Some(&broken)), None);
        assert_eq!(header_text(None), None);
    }

    #[test]
    fn recognises_media_types_with_parameters() {
        assert!(is_json(Some(&HeaderValue::from_static("application/json"))));
        assert!(is_json(Some(&HeaderValue::from_static(
            "Application/JSON; charset=utf-8"
        ))));
        assert!(!is_json(Some(&HeaderValue::from_static(
            "application/jsonl"
        ))));
        assert!(!is_json(None));
        assert!(is_event_stream(Some(&HeaderValue::from_static(
            "text/event-stream"
        ))));
        assert!(is_encoded(Some(&HeaderValue::from_static("gzip"))));
        assert!(!is_encoded(Some(&HeaderValue::from_static("identity"))));
        assert!(!is_encoded(None));
    }
}
