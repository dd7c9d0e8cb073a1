//! `tools/call` requests under the insights: the intent argument taken out of the
//! arguments before the server sees them, and calls of the virtual tool, which the layer
//! answers itself.
//!
//! Owns reading the request body for these two, the edited body, and the layer's own
//! answer. Never touches a message that is not a `tools/call` of a tool in scope, and
//! never makes the server's view of a call differ in anything but the removed argument.

use bytes::Bytes;
use serde_json::value::RawValue;

use super::Insights;
use super::edits::{Edits, remove_member};
use crate::protocol::jsonrpc::{ClientBody, ClientMessage, RequestId};
use crate::protocol::members::{Members, offset_in};

/// A request body with the intent argument taken out of its calls.
#[derive(Debug)]
pub(crate) struct StrippedCalls {
    /// The body the server receives.
    pub(crate) body: Bytes,
    /// Per call changed: its id and the intent taken out.
    pub(crate) calls: Vec<(Option<RequestId>, String)>,
}

impl StrippedCalls {
    /// Gives each call of `messages` (read from the stripped body) its intent, matched by
    /// request id.
    pub(crate) fn give_intents(self, messages: &mut [ClientMessage]) {
        for (id, intent) in self.calls {
            if let Some(message) = messages
                .iter_mut()
                .find(|m| &*m.method == "tools/call" && m.id == id && m.intent.is_none())
            {
                message.intent = Some(intent.into_boxed_str());
            }
        }
    }
}

/// What the insights make of one request body.
#[derive(Debug, Default)]
pub(crate) struct RequestStep {
    /// The body without the intent argument, when a call carried one.
    pub(crate) stripped: Option<StrippedCalls>,
    /// The `tools/list` requests whose answers are rewritten.
    pub(crate) listing: Option<Vec<RequestId>>,
    /// The layer's own answer, for a call of the virtual tool.
    pub(crate) answer: Option<Bytes>,
}

/// A call of the virtual tool, to be answered by the layer.
#[derive(Debug)]
pub(crate) struct VirtualCall {
    /// The answer's body.
    pub(crate) answer: Bytes,
    /// What the agent said it was looking for.
    pub(crate) request: Option<String>,
}

impl Insights {
    /// Reads a request body already parsed into `parsed`: which answers to rewrite, and
    /// either the layer's own answer (the messages are marked as the virtual call) or the
    /// body without the intent argument. `modern`: the request's protocol version header
    /// names 2026-07-28 or later.
    pub(crate) fn read_request(
        &self,
        parsed: &mut ClientBody,
        body: &[u8],
        modern: bool,
    ) -> RequestStep {
        let mut step = RequestStep::default();
        let lists: Vec<RequestId> = parsed
            .messages
            .iter()
            .filter(|m| &*m.method == "tools/list")
            .filter_map(|m| m.id.clone())
            .collect();
        if !lists.is_empty() {
            step.listing = Some(lists);
        }
        if !parsed.messages.iter().any(|m| &*m.method == "tools/call") {
            return step;
        }
        if !parsed.batch
            && let Some(call) = self.virtual_call(body, modern)
        {
            for message in &mut parsed.messages {
                message.virtual_call = true;
                message.intent = call.request.as_deref().map(Box::from);
            }
            step.answer = Some(call.answer);
            return step;
        }
        step.stripped = self.strip_intents(body);
        step
    }

    /// `body` without the intent argument in its `tools/call` requests; `None` when no
    /// call carries one (or the body cannot be read).
    pub(crate) fn strip_intents(&self, body: &[u8]) -> Option<StrippedCalls> {
        let intent = self.intent.as_ref()?;
        let text = std::str::from_utf8(body).ok()?;
        let mut edits = Edits::default();
        let mut calls = Vec::new();
        for message in messages(text)? {
            let Some(call) = ToolCall::read(message) else {
                continue;
            };
            if !intent.added_to(&call.name) {
                continue;
            }
            let Some(arguments_raw) = call.arguments else {
                continue;
            };
            let Some(arguments) = Members::read(arguments_raw.get()) else {
                continue;
            };
            let mut found = arguments
                .0
                .iter()
                .enumerate()
                .filter(|(_, (k, _))| *k == *intent.name);
            let (Some((index, (_, value))), None) = (found.next(), found.next()) else {
                // Absent, or repeated (left to the server as it was sent).
                continue;
            };
            let intent_text = match serde_json::from_str::<String>(value.get()) {
                Ok(text) => text,
                Err(_) => value.get().to_owned(),
            };
            let args = arguments_raw.get();
            let mut local = Edits::default();
            if remove_member(&mut local, args, arguments_raw, &arguments, index).is_none() {
                continue;
            }
            let Some(stripped) = local.apply(args.as_bytes()) else {
                continue;
            };
            let Some(start) = offset_in(text, args) else {
                continue;
            };
            edits.replace(start, start + args.len(), stripped);
            calls.push((call.id, intent_text));
        }
        if calls.is_empty() {
            return None;
        }
        Some(StrippedCalls {
            body: edits.apply(body)?,
            calls,
        })
    }

    /// A call of the virtual tool, when `body` is one (single messages only: a batch is
    /// left to the server). `modern`: the request speaks protocol 2026-07-28 or later,
    /// whose results carry `resultType`.
    pub(crate) fn virtual_call(&self, body: &[u8], modern: bool) -> Option<VirtualCall> {
        let missing = self.missing.as_ref()?;
        let text = std::str::from_utf8(body).ok()?;
        if text.trim_start().starts_with('[') {
            return None;
        }
        let message = serde_json::from_str::<&RawValue>(text).ok()?;
        let call = ToolCall::read(message)?;
        if !missing.answers(&call.name) {
            return None;
        }
        let id = call.id_raw?;
        let request = call
            .arguments
            .and_then(|raw| Members::read(raw.get()))
            .and_then(|arguments| arguments.text("context").map(String::from));
        let modern = modern || call.modern;
        let mut result = serde_json::json!({
            "content": [{ "type": "text", "text": missing.answer }],
            "isError": false,
        });
        if modern {
            result["resultType"] = "complete".into();
        }
        let answer = format!(r#"{{"jsonrpc":"2.0","id":{},"result":{result}}}"#, id.get());
        Some(VirtualCall {
            answer: Bytes::from(answer),
            request,
        })
    }
}

/// The messages of a body: one object, or the items of a batch array.
fn messages(text: &str) -> Option<Vec<&RawValue>> {
    if text.trim_start().starts_with('[') {
        serde_json::from_str(text).ok()
    } else {
        serde_json::from_str::<&RawValue>(text)
            .ok()
            .map(|m| vec![m])
    }
}

/// What the insights read of a `tools/call` request.
struct ToolCall<'a> {
    id: Option<RequestId>,
    id_raw: Option<&'a RawValue>,
    name: String,
    arguments: Option<&'a RawValue>,
    /// `_meta` names protocol 2026-07-28 or later.
    modern: bool,
}

impl<'a> ToolCall<'a> {
    fn read(message: &'a RawValue) -> Option<Self> {
        let message = Members::read(message.get())?;
        if message.text("method").as_deref() != Some("tools/call") {
            return None;
        }
        let id_raw = message.get("id");
        let params = Members::read(message.get("params")?.get())?;
        let modern = params
            .get("_meta")
            .and_then(|meta| Members::read(meta.get()))
            .and_then(|meta| {
                meta.text("io.modelcontextprotocol/protocolVersion")
                    .map(|v| is_modern(&v))
            })
            .unwrap_or(false);
        Some(Self {
            id: id_raw.and_then(RequestId::from_raw),
            id_raw,
            name: params.text("name")?.into_owned(),
            arguments: params.get("arguments"),
            modern,
        })
    }
}

/// Whether a protocol version is 2026-07-28 or later (versions are dates).
pub(crate) fn is_modern(version: &str) -> bool {
    version >= "2026-07-28"
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::insights::{IntentCapture, MissingTools};

    fn insights() -> Insights {
        Insights::new(
            Some(IntentCapture::new().exclude_tools(["raw"])),
            Some(MissingTools::new().answer("noted")),
        )
        .expect("on")
    }

    #[test]
    fn the_intent_is_taken_out_and_the_rest_is_byte_for_byte() {
        let insights = insights();
        let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search","arguments":{"q":"x y","context":"find the invoice","n":2.50}}}"#;
        let stripped = insights.strip_intents(body).expect("stripped");
        assert_eq!(
            stripped.body,
            &br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search","arguments":{"q":"x y","n":2.50}}}"#[..]
        );
        let (id, intent) = &stripped.calls[0];
        assert_eq!(id, &Some(RequestId::Int(7)));
        assert_eq!(intent, "find the invoice");
    }

    #[test]
    fn calls_without_it_excluded_tools_and_other_methods_are_untouched() {
        let insights = insights();
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":1}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"raw","arguments":{"context":"c"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p","arguments":{"context":"c"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s","arguments":{"context":"a","context":"b"}}}"#,
            "not json",
            "",
        ] {
            assert!(insights.strip_intents(body.as_bytes()).is_none(), "{body}");
        }
    }

    #[test]
    fn every_call_of_a_batch_is_stripped() {
        let insights = insights();
        let body = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"context":"one"}}},{"jsonrpc":"2.0","method":"notifications/x"},{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"b","arguments":{"k":[1],"context":{"not":"a string"}}}}]"#;
        let stripped = insights.strip_intents(body).expect("stripped");
        let value: Value = serde_json::from_slice(&stripped.body).expect("JSON");
        assert_eq!(value[0]["params"]["arguments"], json!({}));
        assert_eq!(value[2]["params"]["arguments"], json!({"k":[1]}));
        let intents: Vec<&str> = stripped.calls.iter().map(|(_, i)| i.as_str()).collect();
        assert_eq!(intents, ["one", r#"{"not":"a string"}"#]);
    }

    #[test]
    fn the_virtual_tool_is_answered_with_the_request_id() {
        let insights = insights();
        let body = br#"{"jsonrpc":"2.0","id":"x-1","method":"tools/call","params":{"name":"get_more_tools","arguments":{"context":"send an email"}}}"#;
        let call = insights.virtual_call(body, false).expect("virtual");
        assert_eq!(call.request.as_deref(), Some("send an email"));
        let answer: Value = serde_json::from_slice(&call.answer).expect("JSON");
        assert_eq!(answer["id"], "x-1");
        assert_eq!(answer["result"]["content"][0]["text"], "noted");
        assert!(answer["result"].get("resultType").is_none());
        let modern = insights.virtual_call(body, true).expect("virtual");
        let answer: Value = serde_json::from_slice(&modern.answer).expect("JSON");
        assert_eq!(answer["result"]["resultType"], "complete");
        let notification =
            br#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"get_more_tools"}}"#;
        assert!(insights.virtual_call(notification, false).is_none());
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_more_tools"}}]"#;
        assert!(insights.virtual_call(batch, false).is_none());
    }
}
