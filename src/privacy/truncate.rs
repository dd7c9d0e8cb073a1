//! Bounding event values: long strings, deep nesting and large collections are cut down
//! with markers that say what was there. Runs in the worker.
//!
//! Strings are cut at a UTF-8 boundary; the result is always valid JSON.

use serde_json::{Map, Value};

use crate::event::RawJson;

/// The caps payloads are cut down to.
///
/// ```
/// use tower_mcp_analytics::PayloadLimits;
///
/// let limits = PayloadLimits { string_bytes: 4096, ..PayloadLimits::default() };
/// assert_eq!(limits.event_bytes, 100 * 1024);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadLimits {
    /// Longest string kept whole (default 10 KiB).
    pub string_bytes: usize,
    /// Deepest nesting kept (default 10).
    pub depth: usize,
    /// Most items of an array or keys of an object kept (default 500).
    pub items: usize,
    /// Largest serialised event (default 100 KiB).
    pub event_bytes: usize,
}

impl Default for PayloadLimits {
    fn default() -> Self {
        Self {
            string_bytes: 10 * 1024,
            depth: 10,
            items: 500,
            event_bytes: 100 * 1024,
        }
    }
}

/// Cuts `value` down to the string, depth and item caps.
pub(crate) fn truncate(value: &mut Value, limits: &PayloadLimits) {
    truncate_at(value, limits, 0);
}

fn truncate_at(value: &mut Value, limits: &PayloadLimits, depth: usize) {
    match value {
        Value::String(text) => truncate_string(text, limits.string_bytes),
        Value::Array(items) => {
            if depth >= limits.depth {
                *value = Value::String(format!(
                    "[truncated: array of {} items nested too deep]",
                    items.len()
                ));
                return;
            }
            if items.len() > limits.items {
                let more = items.len() - limits.items;
                items.truncate(limits.items);
                items.push(Value::String(format!("[truncated: {more} more items]")));
            }
            for item in items.iter_mut() {
                truncate_at(item, limits, depth + 1);
            }
        }
        Value::Object(map) => {
            if depth >= limits.depth {
                *value = Value::String(format!(
                    "[truncated: object of {} keys nested too deep]",
                    map.len()
                ));
                return;
            }
            if map.len() > limits.items {
                let more = map.len() - limits.items;
                let kept: Map<String, Value> =
                    std::mem::take(map).into_iter().take(limits.items).collect();
                *map = kept;
                map.insert(
                    "_truncated".to_owned(),
                    Value::String(format!("{more} more keys")),
                );
            }
            for item in map.values_mut() {
                truncate_at(item, limits, depth + 1);
            }
        }
        _ => {}
    }
}

/// Cuts a string to at most `max` bytes (marker included) at a character boundary.
pub(crate) fn truncate_string(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let marker = format!("…[truncated: {} bytes]", text.len());
    let mut end = max.saturating_sub(marker.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&marker);
}

/// `text` cut to at most `max` bytes (marker included) at a character boundary.
pub(crate) fn truncated(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(cut_from(text, text.len(), max))
}

/// The start of a text of `original` bytes, cut to at most `max` bytes (marker included)
/// at a character boundary, with a marker naming the original length.
pub(crate) fn cut_from(start: &str, original: usize, max: usize) -> String {
    let marker = format!("…[truncated: {original} bytes]");
    let mut end = max.saturating_sub(marker.len()).min(start.len());
    while !start.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{marker}", &start[..end])
}

/// What stands in for a payload removed to fit an event under its cap, or too large to
/// read: `{"_truncated":{"bytes":N}}`.
pub(crate) fn removed(bytes: usize) -> Option<RawJson> {
    RawJson::from_json(format!(r#"{{"_truncated":{{"bytes":{bytes}}}}}"#)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cuts_strings_at_char_boundaries_with_a_marker() {
        let mut text = "é".repeat(10_000);
        truncate_string(&mut text, 1000);
        assert!(text.len() <= 1000);
        assert!(text.ends_with("…[truncated: 20000 bytes]"));
        let mut short = String::from("short");
        truncate_string(&mut short, 1000);
        assert_eq!(short, "short");
    }

    #[test]
    fn caps_depth_and_items() {
        let limits = PayloadLimits {
            depth: 2,
            items: 3,
            ..PayloadLimits::default()
        };
        let mut value = json!({"a": {"b": {"c": 1}}, "list": [1, 2, 3, 4, 5]});
        truncate(&mut value, &limits);
        assert_eq!(
            value["a"]["b"],
            "[truncated: object of 1 keys nested too deep]"
        );
        assert_eq!(value["list"], json!([1, 2, 3, "[truncated: 2 more items]"]));
        let mut wide = Value::Object((0..10).map(|n| (format!("k{n}"), json!(n))).collect());
        truncate(&mut wide, &limits);
        assert_eq!(wide.as_object().map(Map::len), Some(4));
        assert_eq!(wide["_truncated"], "7 more keys");
    }
}
