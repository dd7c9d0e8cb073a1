//! One streaming pass from a captured JSON payload (arguments, a result, an error's data)
//! to the JSON an event carries.
//!
//! Owns reading the captured bytes once, with serde_json's deserializer, and writing the
//! final JSON as it goes: sanitising binary content (image and audio blocks, blobs, long
//! base64), the `redact` hook over every string value, the string, depth and item limits
//! (cut with markers at any depth of the input), and giving up as soon as the output
//! passes a byte budget. Also notes the top-level `isError` and `resultType` of a result
//! on the way, so that nothing reads a result twice. Never builds a value tree, never
//! recurses deeper than [`MAX_DEPTH`] (deeper input is skipped iteratively by serde_json
//! and stands as a marker), and never panics on any input.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::sanitize::{BASE64_AT_LEAST, looks_like_base64, marker};
use super::secrets::{REDACTED, scrub, secret_key};
use super::truncate::{PayloadLimits, cut_from, truncated};

/// Deepest nesting written, whatever the configured depth limit: serde_json refuses input
/// nested deeper than 128 levels when it is read into values, so deeper levels are only
/// ever skipped.
pub(crate) const MAX_DEPTH: usize = 100;

/// The `redact` hook.
pub(crate) type Redact = dyn Fn(&str) -> Option<String> + Send + Sync;

/// What one pass does.
#[derive(Clone, Copy)]
pub(crate) struct Pass<'a> {
    pub(crate) limits: &'a PayloadLimits,
    /// Replace binary content with markers.
    pub(crate) sanitize: bool,
    /// Replace secrets with `[redacted]`: values under secret-looking keys, credentials in
    /// URLs, token-shaped words.
    pub(crate) secrets: bool,
    /// Keep only these top-level keys' values (the others stand as `[redacted]`).
    pub(crate) only: Option<&'a std::collections::HashSet<String>>,
    /// The `redact` hook, applied to every string value (object keys are left alone).
    pub(crate) redact: Option<&'a Redact>,
    /// Apply the string, depth and item limits (only [`MAX_DEPTH`] otherwise).
    pub(crate) cut: bool,
    /// Give up once the output is longer than this.
    pub(crate) budget: usize,
}

/// A payload as an event carries it.
#[derive(Debug)]
pub(crate) struct Transcoded {
    pub(crate) json: Box<RawValue>,
    /// The payload is an object whose `isError` is `true`.
    pub(crate) is_error: bool,
    /// The payload is an object whose `resultType` is `"input_required"`.
    pub(crate) input_required: bool,
}

/// Why a payload has no JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Not JSON.
    Invalid,
    /// Longer than the budget once transcoded (the rest was not read).
    OverBudget,
}

/// Transcodes `input` in one pass.
pub(crate) fn transcode(input: &[u8], pass: &Pass<'_>) -> Result<Transcoded, Failure> {
    let mut writer = Writer {
        pass,
        out: Vec::with_capacity(input.len().min(pass.budget).min(64 * 1024) + 2),
        over: false,
        is_error: false,
        input_required: false,
        media: None,
        data: None,
    };
    let mut de = serde_json::Deserializer::from_slice(input);
    let node = Node {
        writer: &mut writer,
        depth: 0,
        role: Role::Plain,
    };
    let read = node.deserialize(&mut de).and_then(|()| de.end());
    if writer.over {
        return Err(Failure::OverBudget);
    }
    read.map_err(|_| Failure::Invalid)?;
    let text = String::from_utf8(writer.out).map_err(|_| Failure::Invalid)?;
    let json = RawValue::from_string(text).map_err(|_| Failure::Invalid)?;
    Ok(Transcoded {
        json,
        is_error: writer.is_error,
        input_required: writer.input_required,
    })
}

/// The output and what the pass noticed on the way.
struct Writer<'p> {
    pass: &'p Pass<'p>,
    out: Vec<u8>,
    /// The budget was passed: the read was abandoned.
    over: bool,
    is_error: bool,
    input_required: bool,
    /// The last `type` value read was `image` or `audio`.
    media: Option<&'static str>,
    /// Where the last `data` string was written, and its length as read.
    data: Option<(usize, usize, usize)>,
}

impl Writer<'_> {
    fn check<E: de::Error>(&mut self) -> Result<(), E> {
        if self.out.len() > self.pass.budget {
            self.over = true;
            return Err(E::custom("over budget"));
        }
        Ok(())
    }

    /// Writes a string value after the `redact` hook and the string limit.
    fn string(&mut self, text: Cow<'_, str>) {
        let mut text = text;
        if let Some(hook) = self.pass.redact
            && let Some(replacement) = hook(&text)
        {
            text = Cow::Owned(replacement);
        }
        let max = self.pass.limits.string_bytes;
        if self.pass.cut && text.len() > max {
            text = Cow::Owned(truncated(&text, max).into_owned());
        }
        escaped(&mut self.out, &text);
    }

    /// Writes what stands for a container nested deeper than the limit.
    fn too_deep<E: de::Error>(&mut self, kind: &str, count: usize, of: &str) -> Result<(), E> {
        self.marker(&format!(
            "[truncated: {kind} of {count} {of} nested too deep]"
        ));
        self.check()
    }

    /// Writes a marker the limits produced (never redacted, as it says nothing of the
    /// payload but its shape).
    fn marker(&mut self, text: &str) {
        escaped(&mut self.out, text);
    }
}

/// How far past the string limit the scrubber reads a string that is cut: a token that
/// crosses the cut is still recognised whole (and not left half visible).
const SCRUB_MARGIN: usize = 4096;

/// `text` with its secrets replaced. A string the pass cuts is scrubbed only as far as
/// it is kept (plus [`SCRUB_MARGIN`]) and cut here, its marker naming its whole length:
/// the rest never leaves, so it is never read twice.
fn scrubbed<'t>(text: Cow<'t, str>, pass: &Pass<'_>) -> Cow<'t, str> {
    let max = pass.limits.string_bytes;
    if pass.cut && text.len() > max {
        let mut window = max.saturating_add(SCRUB_MARGIN).min(text.len());
        while !text.is_char_boundary(window) {
            window -= 1;
        }
        let start = scrub(&text[..window]);
        return Cow::Owned(cut_from(&start, text.len(), max));
    }
    match scrub(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(done) => Cow::Owned(done),
    }
}

/// Writes `text` as a JSON string.
fn escaped(out: &mut Vec<u8>, text: &str) {
    // Writing a string into a vector cannot fail.
    let _ = serde_json::to_writer(out, text);
}

/// What the value being read is to its enclosing object.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Plain,
    /// The value of `type`.
    Type,
    /// The value of `data`.
    Data,
    /// The value of `blob`.
    Blob,
    /// The top-level object's `isError`.
    IsError,
    /// The top-level object's `resultType`.
    ResultType,
    /// A value that must not be written: a secret's, or one the allowlist leaves out.
    Withheld,
}

impl Role {
    fn of(key: &str, depth: usize, pass: &Pass<'_>) -> Self {
        if (pass.secrets && secret_key(key))
            || (depth == 0 && pass.only.is_some_and(|only| !only.contains(key)))
        {
            return Self::Withheld;
        }
        match key {
            "type" => Self::Type,
            "data" => Self::Data,
            "blob" => Self::Blob,
            "isError" if depth == 0 => Self::IsError,
            "resultType" if depth == 0 => Self::ResultType,
            _ => Self::Plain,
        }
    }
}

/// One value to read and write.
struct Node<'w, 'p> {
    writer: &'w mut Writer<'p>,
    /// Nesting of the value (0 for the payload itself).
    depth: usize,
    role: Role,
}

impl<'de> DeserializeSeed<'de> for Node<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Node<'_, '_> {
    /// Containers at this depth stand as a marker.
    fn too_deep(&self) -> bool {
        let limit = match self.writer.pass.cut {
            true => self.writer.pass.limits.depth.min(MAX_DEPTH),
            false => MAX_DEPTH,
        };
        self.depth >= limit
    }

    /// Most items or keys kept.
    fn items(&self) -> usize {
        match self.writer.pass.cut {
            true => self.writer.pass.limits.items,
            false => usize::MAX,
        }
    }

    fn scalar<E: de::Error>(self, text: &[u8]) -> Result<(), E> {
        self.writer.out.extend_from_slice(text);
        self.writer.check()
    }

    fn number<E: de::Error>(self, number: impl serde::Serialize) -> Result<(), E> {
        // Writing a number into a vector cannot fail.
        let _ = serde_json::to_writer(&mut self.writer.out, &number);
        self.writer.check()
    }

    fn text<E: de::Error>(self, text: Cow<'_, str>) -> Result<(), E> {
        let writer = self.writer;
        let length = text.len();
        if self.role == Role::Withheld {
            writer.marker(REDACTED);
            return writer.check();
        }
        match self.role {
            Role::Type => {
                writer.media = match &*text {
                    "image" => Some("image"),
                    "audio" => Some("audio"),
                    _ => None,
                };
            }
            Role::ResultType => writer.input_required = text == "input_required",
            _ => {}
        }
        let text = match writer.pass.sanitize {
            true if self.role == Role::Blob => Cow::Owned(marker("blob", length)),
            true if length >= BASE64_AT_LEAST && looks_like_base64(&text) => {
                Cow::Owned(marker("base64", length))
            }
            _ => text,
        };
        let text = match writer.pass.secrets {
            true => scrubbed(text, writer.pass),
            false => text,
        };
        let start = writer.out.len();
        writer.string(text);
        if self.role == Role::Data {
            writer.data = Some((start, writer.out.len(), length));
        }
        writer.check()
    }
}

impl<'de> Visitor<'de> for Node<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        if self.role == Role::IsError && v {
            self.writer.is_error = true;
        }
        self.scalar(if v { b"true" } else { b"false" })
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.number(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.number(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        // Written as serde_json writes it (a number that is not finite becomes `null`).
        self.number(v)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar(b"null")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        self.text(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.text(Cow::Borrowed(v))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.text(Cow::Owned(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.role == Role::Withheld {
            skip_items(&mut seq)?;
            self.writer.marker(REDACTED);
            return self.writer.check();
        }
        if self.too_deep() {
            let count = skip_items(&mut seq)?;
            return self.writer.too_deep("array", count, "items");
        }
        let items = self.items();
        let depth = self.depth;
        let writer = self.writer;
        writer.out.push(b'[');
        let mut kept = 0usize;
        while kept < items {
            if kept > 0 {
                writer.out.push(b',');
            }
            let node = Node {
                writer: &mut *writer,
                depth: depth + 1,
                role: Role::Plain,
            };
            if seq.next_element_seed(node)?.is_none() {
                if kept > 0 {
                    writer.out.pop();
                }
                writer.out.push(b']');
                return writer.check();
            }
            kept += 1;
        }
        let more = skip_items(&mut seq)?;
        if more > 0 {
            if kept > 0 {
                writer.out.push(b',');
            }
            writer.marker(&format!("[truncated: {more} more items]"));
        }
        writer.out.push(b']');
        writer.check()
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.role == Role::Withheld {
            skip_entries(&mut map)?;
            self.writer.marker(REDACTED);
            return self.writer.check();
        }
        if self.too_deep() {
            let count = skip_entries(&mut map)?;
            return self.writer.too_deep("object", count, "keys");
        }
        let items = self.items();
        let depth = self.depth;
        let writer = self.writer;
        writer.out.push(b'{');
        let (mut kept, mut more) = (0usize, 0usize);
        let mut media = None;
        let mut data = None;
        while let Some(key) = map.next_key_seed(Key)? {
            let role = Role::of(&key, depth, writer.pass);
            if kept >= items {
                // Past the item limit, only the result's flags are still read.
                match role {
                    Role::IsError | Role::ResultType => map.next_value_seed(Flag {
                        writer: &mut *writer,
                        role,
                    })?,
                    _ => map.next_value::<IgnoredAny>().map(drop)?,
                }
                more += 1;
                continue;
            }
            if kept > 0 {
                writer.out.push(b',');
            }
            escaped(&mut writer.out, &key);
            writer.out.push(b':');
            writer.data = None;
            writer.media = None;
            map.next_value_seed(Node {
                writer: &mut *writer,
                depth: depth + 1,
                role,
            })?;
            match role {
                Role::Type => media = writer.media.take(),
                Role::Data => data = writer.data.take(),
                _ => {}
            }
            kept += 1;
        }
        if more > 0 {
            if kept > 0 {
                writer.out.push(b',');
            }
            escaped(&mut writer.out, "_truncated");
            writer.out.push(b':');
            writer.marker(&format!("{more} more keys"));
        }
        writer.out.push(b'}');
        // An image or audio block's data, wherever `type` came in the object.
        if writer.pass.sanitize
            && let (Some(kind), Some((start, end, length))) = (media, data)
        {
            let mut replacement = Vec::new();
            std::mem::swap(&mut writer.out, &mut replacement);
            writer.string(Cow::Owned(marker(kind, length)));
            std::mem::swap(&mut writer.out, &mut replacement);
            writer.out.splice(start..end, replacement);
        }
        writer.check()
    }
}

/// Skips the rest of an array, counting its items.
fn skip_items<'de, A: SeqAccess<'de>>(seq: &mut A) -> Result<usize, A::Error> {
    let mut count = 0;
    while seq.next_element::<IgnoredAny>()?.is_some() {
        count += 1;
    }
    Ok(count)
}

/// Skips the rest of an object, counting its keys.
fn skip_entries<'de, A: MapAccess<'de>>(map: &mut A) -> Result<usize, A::Error> {
    let mut count = 0;
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
        count += 1;
    }
    Ok(count)
}

/// An object key, borrowed from the input when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// A result flag past the item limit: read for its meaning, not written.
struct Flag<'w, 'p> {
    writer: &'w mut Writer<'p>,
    role: Role,
}

impl<'de> DeserializeSeed<'de> for Flag<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Flag<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        if self.role == Role::IsError && v {
            self.writer.is_error = true;
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if self.role == Role::ResultType {
            self.writer.input_required = v == "input_required";
        }
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        skip_items(&mut seq).map(drop)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        skip_entries(&mut map).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn limits(string_bytes: usize, depth: usize, items: usize) -> PayloadLimits {
        PayloadLimits {
            string_bytes,
            depth,
            items,
            ..PayloadLimits::default()
        }
    }

    fn run(input: &str, pass: &Pass<'_>) -> Value {
        let done = transcode(input.as_bytes(), pass).expect("transcodes");
        serde_json::from_str(done.json.get()).expect("valid JSON")
    }

    fn full<'a>(limits: &'a PayloadLimits) -> Pass<'a> {
        Pass {
            limits,
            sanitize: true,
            secrets: false,
            only: None,
            redact: None,
            cut: true,
            budget: limits.event_bytes,
        }
    }

    /// The value-tree stages the pass replaces, in their order.
    fn by_values(mut value: Value, limits: &PayloadLimits, redact: Option<&Redact>) -> Value {
        super::super::sanitize::sanitize(&mut value);
        if let Some(hook) = redact {
            super::super::redact_strings(&mut value, hook);
        }
        super::super::truncate::truncate(&mut value, limits);
        value
    }

    #[test]
    fn sanitises_wherever_type_comes_in_the_block() {
        let limits = PayloadLimits::default();
        let input = json!({"content": [
            {"data": "iVBORw0KGgo=", "type": "image", "mimeType": "image/png"},
            {"type": "audio", "data": "UklGRg=="},
            {"type": "text", "text": "kept", "data": "kept too"},
            {"type": "resource", "resource": {"uri": "file:///a", "blob": "AAAA"}}
        ]});
        let out = run(&input.to_string(), &full(&limits));
        assert_eq!(out["content"][0]["data"], "[image removed: 12 bytes]");
        assert_eq!(out["content"][0]["mimeType"], "image/png");
        assert_eq!(out["content"][1]["data"], "[audio removed: 8 bytes]");
        assert_eq!(out["content"][2]["data"], "kept too");
        assert_eq!(
            out["content"][3]["resource"]["blob"],
            "[blob removed: 4 bytes]"
        );
    }

    #[test]
    fn notes_the_result_flags_even_past_the_item_limit() {
        let limits = limits(100, 3, 1);
        let pass = full(&limits);
        let done = transcode(br#"{"content":[],"isError":true}"#, &pass).expect("ok");
        assert!(done.is_error && !done.input_required);
        assert_eq!(
            done.json.get(),
            r#"{"content":[],"_truncated":"1 more keys"}"#
        );
        let done = transcode(br#"{"resultType":"input_required"}"#, &pass).expect("ok");
        assert!(done.input_required);
        let done = transcode(br#"{"a":{"isError":true}}"#, &pass).expect("ok");
        assert!(!done.is_error, "only the top level counts");
    }

    #[test]
    fn cuts_any_depth_with_markers() {
        let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
        let limits = PayloadLimits::default();
        let out = run(&deep, &full(&limits));
        let mut inner = &out;
        for _ in 0..limits.depth {
            inner = &inner[0];
        }
        assert_eq!(inner, "[truncated: array of 1 items nested too deep]");
        let deep_object = format!(r#"{}"x"{}"#, r#"{"a":"#.repeat(300), "}".repeat(300));
        let uncut = Pass {
            cut: false,
            ..full(&limits)
        };
        let out = run(&deep_object, &uncut);
        assert!(out.to_string().contains("object of 1 keys nested too deep"));
    }

    #[test]
    fn a_secret_across_the_cut_is_redacted_whole_and_the_marker_names_the_length() {
        let limits = PayloadLimits {
            string_bytes: 64,
            ..PayloadLimits::default()
        };
        let pass = Pass {
            secrets: true,
            ..full(&limits)
        };
        let token = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
        // The token starts before the cut and ends after it.
        let text = format!("{}{token} {}", "a ".repeat(10), "tail ".repeat(100));
        let out = run(&json!({ "note": text }).to_string(), &pass);
        let note = out["note"].as_str().expect("a string");
        assert!(!note.contains("sk_live"), "{note}");
        assert!(note.len() <= 64, "{note}");
        assert!(
            note.ends_with(&format!("[truncated: {} bytes]", text.len())),
            "{note}"
        );
        // Off: the start of the token would show.
        let plain = run(&json!({ "note": text }).to_string(), &full(&limits));
        assert!(
            plain["note"]
                .as_str()
                .expect("a string")
                .contains("sk_live")
        );
    }

    #[test]
    fn gives_up_past_the_budget_and_rejects_what_is_not_json() {
        let limits = PayloadLimits::default();
        let pass = Pass {
            budget: 64,
            ..full(&limits)
        };
        let long = json!(vec!["word"; 100]).to_string();
        assert_eq!(
            transcode(long.as_bytes(), &pass).map(|_| ()),
            Err(Failure::OverBudget)
        );
        for junk in ["", "{", "[1,]", "nul", "\"\\ud800\"x"] {
            assert_eq!(
                transcode(junk.as_bytes(), &full(&limits)).map(|_| ()),
                Err(Failure::Invalid),
                "{junk}"
            );
        }
    }

    #[test]
    fn keeps_numbers_escapes_and_unicode() {
        let limits = PayloadLimits::default();
        let input = r#"{"n":-12,"u":18446744073709551615,"f":1.5e300,"s":"a\"\\\n\u00e9😀","z":null,"b":false}"#;
        let done = transcode(input.as_bytes(), &full(&limits)).expect("ok");
        let expected: Value = serde_json::from_str(input).expect("json");
        assert_eq!(
            serde_json::from_str::<Value>(done.json.get()).expect("json"),
            expected
        );
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-zA-Z0-9 é\"\\\\]{0,40}".prop_map(Value::from),
            Just(Value::from("QUJD".repeat(3000))),
        ];
        leaf.prop_recursive(7, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                // Three keys at most: the value trees kept the alphabetically first keys
                // past the item limit, the pass keeps the first ones read.
                prop::collection::btree_map(
                    prop_oneof![
                        Just("type".to_owned()),
                        Just("data".to_owned()),
                        Just("blob".to_owned()),
                        "[a-z]{1,3}"
                    ],
                    prop_oneof![
                        inner,
                        Just(Value::from("image")),
                        Just(Value::from("audio"))
                    ],
                    0..4,
                )
                .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The one pass writes what sanitising, redacting and truncating value trees did.
        #[test]
        fn matches_the_value_tree_stages(value in json_value(), string_bytes in 30usize..200, depth in 1usize..6) {
            let limits = limits(string_bytes, depth, 3);
            let hook = |text: &str| text.contains('a').then(|| text.replace('a', "*"));
            let pass = Pass { redact: Some(&hook), ..full(&limits) };
            let out = run(&value.to_string(), &pass);
            let expected = by_values(value, &limits, Some(&hook));
            prop_assert_eq!(out, expected);
        }
    }
}
