//! Byte-level edits of a JSON text: insertions and removals at offsets, applied in one
//! copy. Owns the arithmetic of member removal (which comma goes with a member). Never
//! parses: offsets come from [`Members`](crate::protocol::members::Members).

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::protocol::members::{Members, offset_in};

/// Edits of one text, each replacing `start..end` with `insert`.
#[derive(Debug, Default)]
pub(super) struct Edits {
    edits: Vec<(usize, usize, Vec<u8>)>,
}

impl Edits {
    pub(super) fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }

    /// Inserts `text` at `at`.
    pub(super) fn insert(&mut self, at: usize, text: String) {
        self.edits.push((at, at, text.into_bytes()));
    }

    /// Removes `start..end`.
    pub(super) fn remove(&mut self, start: usize, end: usize) {
        self.edits.push((start, end, Vec::new()));
    }

    /// Replaces `start..end` with `bytes`.
    pub(super) fn replace(&mut self, start: usize, end: usize, bytes: Bytes) {
        self.edits.push((start, end, bytes.to_vec()));
    }

    /// The edited text; `None` when edits overlap or fall outside it.
    pub(super) fn apply(mut self, text: &[u8]) -> Option<Bytes> {
        self.edits.sort_by_key(|(start, end, _)| (*start, *end));
        let added: usize = self.edits.iter().map(|(_, _, t)| t.len()).sum();
        let mut out = Vec::with_capacity(text.len() + added);
        let mut at = 0;
        for (start, end, insert) in &self.edits {
            if *start < at || *end > text.len() {
                return None;
            }
            out.extend_from_slice(&text[at..*start]);
            out.extend_from_slice(insert);
            at = *end;
        }
        out.extend_from_slice(&text[at..]);
        Some(Bytes::from(out))
    }
}

/// Where an object's first member may be inserted (just after its `{`), and whether the
/// object has members already. `object` must be a slice of `text`.
pub(super) fn object_start(
    text: &str,
    object: &RawValue,
    members: &Members<'_>,
) -> Option<(usize, bool)> {
    let at = offset_in(text, object.get())?;
    (text.as_bytes().get(at) == Some(&b'{')).then_some((at + 1, !members.0.is_empty()))
}

/// Inserts `member` (`"key":value`) as the first member of `object`.
pub(super) fn insert_first(
    edits: &mut Edits,
    text: &str,
    object: &RawValue,
    members: &Members<'_>,
    member: &str,
) -> Option<()> {
    let (at, has_members) = object_start(text, object, members)?;
    let comma = if has_members { "," } else { "" };
    edits.insert(at, format!("{member}{comma}"));
    Some(())
}

/// Removes member `index` of `object` with the comma that separates it from its
/// neighbours: the one before it, or for the first member the one after it.
pub(super) fn remove_member(
    edits: &mut Edits,
    text: &str,
    object: &RawValue,
    members: &Members<'_>,
    index: usize,
) -> Option<()> {
    let bytes = text.as_bytes();
    let value_end = |i: usize| -> Option<usize> {
        let value = members.0.get(i)?.1.get();
        Some(offset_in(text, value)? + value.len())
    };
    let end = value_end(index)?;
    if index > 0 {
        // From just after the previous value: `, "key": value`.
        edits.remove(value_end(index - 1)?, end);
        return Some(());
    }
    let (start, _) = object_start(text, object, members)?;
    if members.0.len() == 1 {
        edits.remove(start, end);
        return Some(());
    }
    // The first of several: `"key": value ,` up to the next key.
    let comma = end + bytes[end..].iter().position(|b| !b.is_ascii_whitespace())?;
    (bytes.get(comma) == Some(&b',')).then(|| edits.remove(start, comma + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn without(text: &str, key: &str) -> String {
        let object: &RawValue = serde_json::from_str(text).expect("json");
        let outer = object.get();
        let members = Members::read(outer).expect("object");
        let index = members.0.iter().position(|(k, _)| k == key).expect("key");
        let mut edits = Edits::default();
        remove_member(&mut edits, outer, object, &members, index).expect("removed");
        let edited = edits.apply(outer.as_bytes()).expect("applies");
        String::from_utf8(edited.to_vec()).expect("utf-8")
    }

    #[test]
    fn removing_a_member_keeps_the_rest_byte_for_byte_and_valid() {
        for (text, key, expected) in [
            (
                r#"{"a":1,"context":"x","b":2}"#,
                "context",
                r#"{"a":1,"b":2}"#,
            ),
            (r#"{"context":"x","b":2}"#, "context", r#"{"b":2}"#),
            (r#"{"a":1,"context":"x"}"#, "context", r#"{"a":1}"#),
            (r#"{"context":"x"}"#, "context", r#"{}"#),
            (
                "{ \"context\" : \"a, b\" ,\n \"q\" : [1, 2] }",
                "context",
                "{\n \"q\" : [1, 2] }",
            ),
            (
                "{\"q\": {\"context\": 1} , \"context\":{\"n\":[\",\"]} }",
                "context",
                "{\"q\": {\"context\": 1} }",
            ),
        ] {
            let out = without(text, key);
            assert_eq!(out, expected, "{text}");
            serde_json::from_str::<serde_json::Value>(&out).expect("still JSON");
        }
    }

    #[test]
    fn inserting_a_first_member() {
        for (text, expected) in [
            (r#"{"a":1}"#, r#"{"k":true,"a":1}"#),
            ("{ }", "{\"k\":true }"),
        ] {
            let object: &RawValue = serde_json::from_str(text).expect("json");
            let members = Members::read(object.get()).expect("object");
            let mut edits = Edits::default();
            insert_first(&mut edits, object.get(), object, &members, r#""k":true"#)
                .expect("inserted");
            let out = edits.apply(object.get().as_bytes()).expect("applies");
            assert_eq!(out, expected.as_bytes());
        }
    }

    #[test]
    fn overlapping_edits_are_refused() {
        let mut edits = Edits::default();
        edits.remove(0, 4);
        edits.insert(2, "x".into());
        assert!(edits.apply(b"abcdef").is_none());
    }
}
