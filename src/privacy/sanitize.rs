//! Removing binary payloads from event values: image and audio content blocks, blob
//! resource contents, and long base64-looking strings (10 KiB or more, whose first 10 KiB
//! and last bytes are base64 characters) are replaced by a marker naming what was removed
//! and its size. Runs in the worker; never sees the client's bytes.

use serde_json::Value;

/// Strings at least this long that look like base64 are replaced.
pub(crate) const BASE64_AT_LEAST: usize = 10 * 1024;

/// Replaces binary payloads anywhere in `value`.
pub(crate) fn sanitize(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let kind = match map.get("type").and_then(Value::as_str) {
                Some("image") => Some("image"),
                Some("audio") => Some("audio"),
                _ => None,
            };
            if let Some(kind) = kind
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

pub(crate) fn marker(what: &str, bytes: usize) -> String {
    format!("[{what} removed: {bytes} bytes]")
}

/// Looks like base64 (or base64url): its first [`BASE64_AT_LEAST`] bytes and its last
/// [`TAIL`] bytes are base64 characters, with at most two `=` of padding at the very end.
///
/// The cost is bounded whatever the string's length: a string that long keeps at most its
/// first bytes anyway (truncation), so those, plus its end, are what decides. The check
/// runs over whole blocks of bytes without branching on each one (the compiler turns the
/// block loop into vector instructions).
pub(crate) fn looks_like_base64(text: &str) -> bool {
    let bytes = text.as_bytes();
    let body = text.trim_end_matches('=').as_bytes();
    if bytes.len() - body.len() > 2 {
        return false;
    }
    let head = &body[..body.len().min(BASE64_AT_LEAST)];
    let tail = &body[body.len().saturating_sub(TAIL)..];
    all_base64(head) && all_base64(tail)
}

/// Bytes at the end of a long string checked by [`looks_like_base64`].
const TAIL: usize = 256;

/// Whether every byte is of the base64 or base64url alphabet.
fn all_base64(bytes: &[u8]) -> bool {
    const BLOCK: usize = 64;
    let blocks = bytes.chunks_exact(BLOCK);
    let rest = blocks.remainder();
    blocks
        .into_iter()
        .all(|block| block.iter().fold(true, |all, &b| all & is_base64_byte(b)))
        && rest.iter().all(|&b| is_base64_byte(b))
}

/// A byte of the base64 or base64url alphabet (padding aside), with no branches.
#[inline(always)]
fn is_base64_byte(b: u8) -> bool {
    let upper = b.wrapping_sub(b'A') < 26;
    let lower = b.wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    upper | lower | digit | (b == b'+') | (b == b'/') | (b == b'-') | (b == b'_')
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

    #[test]
    fn long_strings_are_judged_by_their_start_and_end() {
        let base64 = "QUJD".repeat(4000);
        assert!(looks_like_base64(&base64));
        assert!(looks_like_base64(&format!("{base64}QQ==")));
        assert!(
            !looks_like_base64(&format!("{base64}===")),
            "three = of padding"
        );
        assert!(
            !looks_like_base64(&format!("{base64} end")),
            "text at the end"
        );
        assert!(
            !looks_like_base64(&format!("é{base64}")),
            "text at the start"
        );
        // Past the first 10 KiB and before the last bytes, content is not read: truncation
        // keeps only the start of such a string anyway.
        let middle = format!("{}, a comma{}", "QUJD".repeat(3000), "QUJD".repeat(3000));
        assert!(looks_like_base64(&middle));
        let early = format!("{}, a comma{}", "QUJD".repeat(100), "QUJD".repeat(6000));
        assert!(!looks_like_base64(&early));
    }
}
