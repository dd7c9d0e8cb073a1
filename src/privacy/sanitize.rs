//! Removing binary payloads from event values: image and audio content blocks, blob
//! resource contents, and long base64-looking strings are replaced by a marker naming
//! what was removed and its size. Runs in the worker; never sees the client's bytes.

use serde_json::Value;

/// Strings at least this long that look like base64 are replaced.
pub(crate) const BASE64_AT_LEAST: usize = 10 * 1024;

/// Replaces binary payloads anywhere in `value`.
pub(crate) fn sanitize(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let kind = map.get("type").and_then(Value::as_str).map(str::to_owned);
            if let Some(kind @ ("image" | "audio")) = kind.as_deref()
                && let Some(Value::String(data)) = map.get_mut("data")
            {
                *data = marker(kind, data.len());
            }
            if let Some(Value::String(blob)) = map.get_mut("blob") {
                *blob = marker("blob", blob.len());
            }
            map.values_mut().for_each(sanitize);
        }
        Value::Array(items) => items.iter_mut().for_each(sanitize),
        Value::String(text) if text.len() >= BASE64_AT_LEAST && looks_like_base64(text) => {
            *text = marker("base64", text.len());
        }
        _ => {}
    }
}

fn marker(what: &str, bytes: usize) -> String {
    format!("[{what} removed: {bytes} bytes]")
}

/// Only base64 (or base64url) characters, with at most two `=` of padding at the end.
fn looks_like_base64(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    text.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn removes_images_audio_blobs_and_long_base64() {
        let long = "QUJD".repeat(3000);
        let mut value = json!({
            "content": [
                {"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"},
                {"type": "audio", "data": "UklGRg==", "mimeType": "audio/wav"},
                {"type": "text", "text": "kept"},
                {"type": "resource", "resource": {"uri": "file:///a", "blob": "AAAA"}}
            ],
            "raw": long,
            "prose": "word ".repeat(3000)
        });
        sanitize(&mut value);
        assert_eq!(value["content"][0]["data"], "[image removed: 12 bytes]");
        assert_eq!(value["content"][0]["mimeType"], "image/png");
        assert_eq!(value["content"][1]["data"], "[audio removed: 8 bytes]");
        assert_eq!(value["content"][2]["text"], "kept");
        assert_eq!(
            value["content"][3]["resource"]["blob"],
            "[blob removed: 4 bytes]"
        );
        assert_eq!(value["raw"], "[base64 removed: 12000 bytes]");
        assert_eq!(
            value["prose"].as_str().map(str::len),
            Some(15000),
            "not base64: left for truncation"
        );
    }
}
