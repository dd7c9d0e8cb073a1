//! [`Members`]: a JSON object's members in the order they are written, each value as its
//! exact text, and where that text lies in the buffer it was read from.
//!
//! Owns what byte-level edits of a JSON message need to know (see `insights`): keys
//! (unescaped), values (verbatim) and offsets. Never builds a value tree and never
//! recurses: nested values stay raw text, read on demand.

use std::borrow::Cow;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::wire::{Lenient, Text, WireTool};

/// An object's members, in order. Duplicate keys are all kept.
pub(crate) struct Members<'a>(pub(crate) Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Members<'a> {
    /// Reads `raw` as an object; `None` for any other value or malformed JSON.
    pub(crate) fn read(raw: &'a str) -> Option<Self> {
        if !raw.trim_start().starts_with('{') {
            return None;
        }
        serde_json::from_str(raw).ok()
    }

    /// The last value under `key` (the one a JSON reader keeps).
    pub(crate) fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// The last value under `key` when it is a string, unescaped.
    pub(crate) fn text(&self, key: &str) -> Option<Cow<'a, str>> {
        let raw = self.get(key)?;
        serde_json::from_str::<Text<'a>>(raw.get()).ok()?.0
    }
}

/// One tool of a `tools/list` result: its name and its `inputSchema`, verbatim.
pub(crate) struct ListedTool<'a> {
    pub(crate) name: Option<Cow<'a, str>>,
    pub(crate) input_schema: Option<&'a RawValue>,
}

/// The tools of a `tools` array, read in one pass (entries that are not objects are
/// skipped); `None` when it is not an array.
pub(crate) fn listed_tools(tools: &str) -> Option<Vec<ListedTool<'_>>> {
    let tools = serde_json::from_str::<Vec<Lenient<WireTool<'_>>>>(tools).ok()?;
    Some(
        tools
            .into_iter()
            .filter_map(|tool| tool.0)
            .map(|tool| ListedTool {
                name: tool.name.and_then(|name| name.0),
                input_schema: tool.input_schema,
            })
            .collect(),
    )
}

/// Where `inner` (a slice of `outer`) starts in `outer`.
pub(crate) fn offset_in(outer: &str, inner: &str) -> Option<usize> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    (start + inner.len() <= outer.len()).then_some(start)
}

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    let value = map.next_value::<&'de RawValue>()?;
                    // Object keys are always strings.
                    if let Some(key) = key {
                        members.push((key, value));
                    }
                }
                Ok(Members(members))
            }
        }
        de.deserialize_map(MembersVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_keep_order_offsets_and_escaped_keys() {
        let text = r#" { "a" : 1 , "\u0062" :{"x":[1,2]}, "a": "z" } "#;
        let members = Members::read(text).expect("an object");
        let keys: Vec<&str> = members.0.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["a", "b", "a"]);
        let b = members.get("b").expect("b");
        assert_eq!(b.get(), r#"{"x":[1,2]}"#);
        let at = offset_in(text, b.get()).expect("inside");
        assert_eq!(&text[at..at + 1], "{");
        assert_eq!(members.text("a").as_deref(), Some("z"));
        assert!(Members::read("[1]").is_none());
        assert!(Members::read("{\"a\":").is_none());
    }
}
