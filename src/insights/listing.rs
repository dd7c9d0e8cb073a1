//! Rewriting `tools/list` answers: the intent argument added to each tool's
//! `inputSchema`, the virtual tool appended to the last page.
//!
//! Owns which tools are changed and how (first member of `properties`, or a new
//! `properties` for a schema without one); learns which tools take the intent argument
//! themselves. Never changes a tool it was told to leave alone, a tool that has the
//! argument already, or anything outside `result.tools`.

use bytes::Bytes;
use serde_json::value::RawValue;

use super::edits::{Edits, insert_first};
use super::{Insights, json_string};
use crate::protocol::jsonrpc::{RequestId, Responses};
use crate::protocol::members::{Members, listed_tools, offset_in};

/// What [`Insights::rewrite_listing`] made of a payload.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// The payload rewritten; `None` when nothing in it changes.
    pub(crate) rewritten: Option<Bytes>,
    /// The payload answers one of the requests.
    pub(crate) answered: bool,
}

impl Insights {
    /// `payload` (a server message, or a batch array) with the answers to the `tools/list`
    /// requests `ids` rewritten; `answered` tells whether it answered any of them.
    pub(crate) fn rewrite_listing(&self, payload: &[u8], ids: &[RequestId]) -> Listing {
        let mut listing = Listing::default();
        let Ok(text) = std::str::from_utf8(payload) else {
            return listing;
        };
        let responses = Responses::read(payload);
        let mut edits = Edits::default();
        for id in ids {
            if let Some(parts) = responses.get(Some(id)) {
                listing.answered = true;
                if let Some(result) = parts.result {
                    self.rewrite_result(text, result, &mut edits);
                }
            }
        }
        if !edits.is_empty() {
            listing.rewritten = edits.apply(payload);
        }
        listing
    }

    /// Adds the edits of one `tools/list` result to `edits`.
    fn rewrite_result(&self, text: &str, result: &RawValue, edits: &mut Edits) -> Option<()> {
        let members = Members::read(result.get())?;
        let tools_raw = members.get("tools")?;
        let tools = listed_tools(tools_raw.get())?;
        for tool in &tools {
            let Some(name) = &tool.name else {
                continue;
            };
            if let Some(missing) = &self.missing
                && *name == *missing.name
            {
                missing
                    .server_has_it
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            if let Some(intent) = &self.intent
                && !intent.excluded.contains(&**name)
                && let Some(schema) = tool.input_schema
            {
                self.add_intent(text, name, schema, edits);
            }
        }
        let last_page = members.get("nextCursor").is_none_or(|c| c.get() == "null");
        if let Some(missing) = &self.missing
            && last_page
            && !missing
                .server_has_it
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            let end = offset_in(text, tools_raw.get())? + tools_raw.get().len() - 1;
            let comma = if tools.is_empty() { "" } else { "," };
            edits.insert(end, format!("{comma}{}", missing.tool));
        }
        Some(())
    }

    /// Adds the intent argument to one tool's schema, unless it has one of that name.
    fn add_intent(
        &self,
        text: &str,
        name: &str,
        schema_raw: &RawValue,
        edits: &mut Edits,
    ) -> Option<()> {
        let intent = self.intent.as_ref()?;
        let schema = Members::read(schema_raw.get())?;
        match schema.get("properties") {
            Some(properties_raw) => {
                let properties = Members::read(properties_raw.get())?;
                let has_own = properties.get(&intent.name).is_some();
                intent.learn(name, has_own);
                if !has_own {
                    insert_first(edits, text, properties_raw, &properties, &intent.property)?;
                }
            }
            None => {
                intent.learn(name, false);
                let member = format!("{}:{{{}}}", json_string("properties"), intent.property);
                insert_first(edits, text, schema_raw, &schema, &member)?;
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::insights::{IntentCapture, MissingTools};

    fn rewrite(insights: &Insights, payload: &str) -> Option<Value> {
        let out = insights
            .rewrite_listing(payload.as_bytes(), &[RequestId::Int(1)])
            .rewritten?;
        Some(serde_json::from_slice(&out).expect("still JSON"))
    }

    fn both() -> Insights {
        Insights::new(
            Some(IntentCapture::new().exclude_tools(["secret"])),
            Some(MissingTools::new()),
        )
        .expect("on")
    }

    #[test]
    fn every_tool_gets_the_argument_but_the_excluded_and_those_that_have_one() {
        let insights = both();
        let payload = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[
            {"name":"a","inputSchema":{"type":"object","properties":{"q":{"type":"string"}},"required":["q"]}},
            {"name":"b","inputSchema":{"type":"object"}},
            {"name":"c","inputSchema":{"type":"object","properties":{}}},
            {"name":"own","inputSchema":{"type":"object","properties":{"context":{"type":"integer"}}}},
            {"name":"secret","inputSchema":{"type":"object","properties":{"pin":{}}}}
        ]}}"#;
        let out = rewrite(&insights, payload).expect("rewritten");
        let tools = out["result"]["tools"].as_array().expect("tools");
        let context = |i: usize| tools[i]["inputSchema"]["properties"]["context"].clone();
        for i in 0..3 {
            assert_eq!(context(i)["type"], "string", "tool {i}");
        }
        assert_eq!(tools[0]["inputSchema"]["required"], json!(["q"]));
        assert_eq!(
            tools[0]["inputSchema"]["properties"]["q"],
            json!({"type":"string"})
        );
        assert_eq!(context(3), json!({"type":"integer"}));
        assert_eq!(tools[4]["inputSchema"]["properties"], json!({"pin":{}}));
        assert_eq!(tools[5]["name"], "get_more_tools");
        assert_eq!(tools.len(), 6);
        let intent = insights.intent.as_ref().expect("intent");
        assert!(intent.added_to("a") && intent.added_to("unseen"));
        assert!(!intent.added_to("own") && !intent.added_to("secret"));
    }

    #[test]
    fn only_the_last_page_gets_the_virtual_tool_and_other_answers_are_untouched() {
        let insights = Insights::new(None, Some(MissingTools::new())).expect("on");
        let page = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}],"nextCursor":"2"}}"#;
        assert!(rewrite(&insights, page).is_none());
        let last = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#;
        let out = rewrite(&insights, last).expect("rewritten");
        assert_eq!(out["result"]["tools"][0]["name"], "get_more_tools");
        let other_id = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[]}}"#;
        assert!(rewrite(&insights, other_id).is_none());
        for hostile in [
            "",
            "{",
            "[1,2]",
            r#"{"id":1,"result":{"tools":{}}}"#,
            "\u{0}\u{ff}",
        ] {
            assert!(rewrite(&insights, hostile).is_none(), "{hostile:?}");
        }
    }

    #[test]
    fn a_server_that_lists_the_virtual_tool_keeps_its_own() {
        let insights = Insights::new(None, Some(MissingTools::new())).expect("on");
        let own = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"get_more_tools"}]}}"#;
        assert!(rewrite(&insights, own).is_none());
        let missing = insights.missing.as_ref().expect("missing");
        assert!(!missing.answers("get_more_tools"));
    }

    #[test]
    fn a_batch_answer_is_rewritten_in_place() {
        let insights = Insights::new(Some(IntentCapture::new()), None).expect("on");
        let batch = r#"[{"jsonrpc":"2.0","id":0,"result":{}},{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","inputSchema":{"type":"object"}}]}}]"#;
        let out = rewrite(&insights, batch).expect("rewritten");
        assert_eq!(out[0], json!({"jsonrpc":"2.0","id":0,"result":{}}));
        assert_eq!(
            out[1]["result"]["tools"][0]["inputSchema"]["properties"]["context"]["type"],
            "string"
        );
    }
}
