//! Privacy and payload control: what of a request may leave the process, and how big.
//!
//! Owns two stages of the worker. When an event is built, each captured payload
//! (arguments, result, error data; per-tool exclusions and the capture settings decide
//! which) goes through [`Privacy::payload`]: one streaming pass from its bytes to its final
//! JSON that sanitises binary content, applies the `redact` hook to every string, and
//! cuts to the string, depth, item and event limits (`transcode`). Before batching,
//! [`Privacy::apply`] validates tags, runs the `redact_event` hook (which may change or
//! drop the event; with it, the first pass only sanitises and redaction and limits run
//! after the hook, so that the hook sees payloads whole), redacts and bounds what the
//! server's own hooks gave (user data, properties), and [`Privacy::serialize`] fits the
//! event under its cap. A hook that panics drops the event (it is never sent unredacted)
//! and the loss is counted. Never runs on the request path; the request-path
//! side of privacy is what is captured at all: no headers unless named, sensitive ones
//! masked unless forced, never query strings or cookies.

mod headers;
mod sanitize;
mod secrets;
mod transcode;
mod truncate;

pub(crate) use headers::HeaderCapture;

use std::collections::{BTreeMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use serde_json::Value;
use serde_json::value::RawValue;

use transcode::{Failure, Pass, transcode};

pub use truncate::PayloadLimits;
pub(crate) use truncate::removed;

use crate::event::{Event, RawJson};
use crate::hooks::{RedactEventFn, RedactFn};
use crate::stats::DropReason;

/// The privacy settings of a layer.
pub(crate) struct Privacy {
    pub(crate) capture_arguments: bool,
    pub(crate) capture_results: bool,
    pub(crate) excluded_tools: HashSet<String>,
    /// The built-in secret scrubber (on by default).
    pub(crate) redact_secrets: bool,
    /// Only these top-level argument keys keep their values (`capture_arguments_only`).
    pub(crate) arguments_only: Option<HashSet<String>>,
    pub(crate) redact: Option<RedactFn>,
    pub(crate) redact_event: Option<RedactEventFn>,
    pub(crate) limits: PayloadLimits,
    invalid_tags_logged: AtomicBool,
}

impl Default for Privacy {
    fn default() -> Self {
        Self {
            capture_arguments: true,
            capture_results: true,
            excluded_tools: HashSet::new(),
            redact_secrets: true,
            arguments_only: None,
            redact: None,
            redact_event: None,
            limits: PayloadLimits::default(),
            invalid_tags_logged: AtomicBool::new(false),
        }
    }
}

/// Longest tag key, in characters.
const TAG_KEY_CHARS: usize = 32;
/// Longest tag value, in characters.
const TAG_VALUE_CHARS: usize = 200;
/// Most tags on one event.
const MAX_TAGS: usize = 50;
/// Longest system string (names, ids, messages) once an event must shrink to fit.
const SYSTEM_STRING_BYTES: usize = 1024;

/// Which payloads of an event are captured at all.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Captures {
    pub(crate) arguments: bool,
    pub(crate) result: bool,
}

/// A payload after the first pass.
pub(crate) struct Payload {
    /// What the event carries (`None` when the payload was not JSON).
    pub(crate) json: Option<RawJson>,
    /// `(isError, input_required)` of a result, when the pass read them.
    pub(crate) flags: Option<(bool, bool)>,
}

/// How many times the event cap a payload may grow to before a `redact_event` hook sees
/// it (the limits cut it down after the hook).
const UNCUT_BUDGET: usize = 16;

impl Privacy {
    /// Which payloads of this event are captured (settings and per-tool exclusions).
    pub(crate) fn captures(&self, event: &Event) -> Captures {
        let excluded = event.method == "tools/call"
            && event
                .resource_name
                .as_ref()
                .is_some_and(|name| self.excluded_tools.contains(name));
        Captures {
            arguments: self.capture_arguments && !excluded,
            result: self.capture_results && !excluded,
        }
    }

    /// The first (usually only) pass over a captured payload: sanitised, redacted, cut to
    /// the limits, in one read of its bytes. With a `redact_event` hook the pass only
    /// sanitises, so that the hook sees payloads as before; [`Privacy::apply`] redacts and
    /// cuts after it. A payload longer than an event may be stands as a size marker.
    pub(crate) fn payload(&self, raw: &[u8]) -> Payload {
        self.first_pass(raw, None)
    }

    /// [`Privacy::payload`] for a call's arguments: only the allowed top-level keys keep
    /// their values when `capture_arguments_only` named some.
    pub(crate) fn arguments(&self, raw: &[u8]) -> Payload {
        self.first_pass(raw, self.arguments_only.as_ref())
    }

    fn first_pass(&self, raw: &[u8], only: Option<&HashSet<String>>) -> Payload {
        let pass = match self.redact_event {
            Some(_) => Pass {
                limits: &self.limits,
                sanitize: true,
                secrets: self.redact_secrets,
                only,
                redact: None,
                cut: false,
                budget: self.limits.event_bytes.saturating_mul(UNCUT_BUDGET),
            },
            None => Pass {
                limits: &self.limits,
                sanitize: true,
                secrets: self.redact_secrets,
                only,
                redact: self.redact.as_deref(),
                cut: true,
                budget: self.limits.event_bytes,
            },
        };
        match transcode(raw, &pass) {
            Ok(done) => Payload {
                json: Some(RawJson::from_raw(done.json)),
                flags: Some((done.is_error, done.input_required)),
            },
            Err(Failure::OverBudget) => Payload {
                json: removed(raw.len()),
                flags: None,
            },
            Err(Failure::Invalid) => Payload {
                json: None,
                flags: None,
            },
        }
    }

    /// The pass after a `redact_event` hook: redacted and cut to the limits.
    fn after_hook(&self, payload: &mut Option<RawJson>) {
        let Some(json) = payload.take() else {
            return;
        };
        let pass = Pass {
            limits: &self.limits,
            sanitize: false,
            secrets: false,
            only: None,
            redact: self.redact.as_deref(),
            cut: true,
            budget: self.limits.event_bytes,
        };
        *payload = match transcode(json.get().as_bytes(), &pass) {
            Ok(done) => Some(RawJson::from_raw(done.json)),
            Err(_) => removed(json.len()),
        };
    }

    /// Makes an event safe and bounded, or says why it must be dropped. Its payloads were
    /// transcoded when it was built; this stage handles what the server's own hooks gave
    /// (user data, properties, tags) and the `redact_event` hook.
    pub(crate) fn apply(&self, mut event: Event) -> Result<Event, DropReason> {
        if let Some(reason) = event.unsendable {
            return Err(reason);
        }
        self.validate_tags(&mut event.tags);
        for value in own_values(&mut event) {
            sanitize::sanitize(value);
        }
        if let Some(hook) = &self.redact_event {
            match catch_unwind(AssertUnwindSafe(|| hook(&mut event))) {
                Ok(true) => {}
                Ok(false) => return Err(DropReason::Filtered),
                Err(_) => {
                    tracing::warn!("mcp analytics redact_event hook panicked; event dropped");
                    return Err(DropReason::RedactionFailed);
                }
            }
        }
        if self.redact_secrets {
            let texts = [
                event.error.as_mut().map(|e| &mut e.message),
                event.user_intent.as_mut(),
            ];
            for text in texts.into_iter().flatten() {
                if let std::borrow::Cow::Owned(scrubbed) = secrets::scrub(text) {
                    *text = scrubbed;
                }
            }
        }
        let hooked = self.redact_event.is_some();
        let redacted = catch_unwind(AssertUnwindSafe(|| {
            if hooked {
                self.after_hook(&mut event.arguments);
                self.after_hook(&mut event.result);
                if let Some(error) = &mut event.error {
                    self.after_hook(&mut error.data);
                }
            }
            let Some(hook) = &self.redact else {
                return;
            };
            if let Some(error) = &mut event.error
                && let Some(replacement) = hook(&error.message)
            {
                error.message = replacement;
            }
            if let Some(intent) = &mut event.user_intent
                && let Some(replacement) = hook(intent)
            {
                *intent = replacement;
            }
            if let Some(user) = &mut event.user {
                if let Some(name) = &mut user.name
                    && let Some(replacement) = hook(name)
                {
                    *name = replacement;
                }
                if let Some(data) = &mut user.data {
                    redact_strings(data, &**hook);
                }
            }
        }));
        if redacted.is_err() {
            tracing::warn!("mcp analytics redact hook panicked; event dropped");
            return Err(DropReason::RedactionFailed);
        }
        for value in own_values(&mut event) {
            truncate::truncate(value, &self.limits);
        }
        if let Some(intent) = &mut event.user_intent {
            truncate::truncate_string(intent, self.limits.string_bytes);
        }
        Ok(event)
    }

    /// Serialises an event within the event cap, removing payloads (result, arguments,
    /// error data, user data, properties, in that order) until it fits, and then cutting
    /// system strings.
    pub(crate) fn serialize(&self, mut event: Event) -> Option<Box<RawValue>> {
        let cap = self.limits.event_bytes;
        let json = serde_json::value::to_raw_value(&event).ok()?;
        let mut size = json.get().len();
        if size <= cap {
            return Some(json);
        }
        // Payload sizes are known: work out what to remove, then serialise once more.
        for step in 0..5 {
            if size <= cap {
                break;
            }
            size = match step {
                0 => shrink(&mut event.result, size),
                1 => shrink(&mut event.arguments, size),
                2 => match &mut event.error {
                    Some(error) => shrink(&mut error.data, size),
                    None => size,
                },
                3 => match &mut event.user {
                    Some(user) => shrink_value(&mut user.data, size),
                    None => size,
                },
                _ => shrink_value(&mut event.properties, size),
            };
        }
        let json = serde_json::value::to_raw_value(&event).ok()?;
        if json.get().len() <= cap {
            return Some(json);
        }
        cut_system_strings(&mut event);
        serde_json::value::to_raw_value(&event).ok()
    }

    fn validate_tags(&self, tags: &mut BTreeMap<String, String>) {
        let before = tags.len();
        tags.retain(|key, value| valid_tag(key, value));
        let mut dropped = before - tags.len();
        while tags.len() > MAX_TAGS {
            tags.pop_last();
            dropped += 1;
        }
        if dropped > 0 && !self.invalid_tags_logged.swap(true, Relaxed) {
            tracing::warn!(
                "mcp analytics dropped invalid tags (keys: at most {TAG_KEY_CHARS} characters of \
                 [a-zA-Z0-9$_.:- ]; values: at most {TAG_VALUE_CHARS} characters, no newlines; \
                 at most {MAX_TAGS} tags); logged once"
            );
        }
    }
}

fn valid_tag(key: &str, value: &str) -> bool {
    !key.is_empty()
        && key.chars().count() <= TAG_KEY_CHARS
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '$' | '_' | '.' | ':' | '-' | ' '))
        && value.chars().count() <= TAG_VALUE_CHARS
        && !value.contains(['\n', '\r'])
}

/// The JSON values the server's own hooks gave (user data, properties).
fn own_values(event: &mut Event) -> impl Iterator<Item = &mut Value> {
    let user_data = event.user.as_mut().and_then(|u| u.data.as_mut());
    [user_data, event.properties.as_mut()].into_iter().flatten()
}

/// Applies `hook` to every string value at every depth (object keys are left alone).
fn redact_strings(value: &mut Value, hook: &dyn Fn(&str) -> Option<String>) {
    match value {
        Value::String(text) => {
            if let Some(replacement) = hook(text) {
                *text = replacement;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| redact_strings(item, hook)),
        Value::Object(map) => map.values_mut().for_each(|item| redact_strings(item, hook)),
        _ => {}
    }
}

/// Replaces a payload by a marker giving its size; the event's new size.
fn shrink(payload: &mut Option<RawJson>, size: usize) -> usize {
    let Some(json) = payload.take() else {
        return size;
    };
    *payload = removed(json.len());
    let marker = payload.as_ref().map_or(0, RawJson::len);
    size.saturating_sub(json.len()) + marker
}

/// [`shrink`] for a value the server's hooks gave.
fn shrink_value(payload: &mut Option<Value>, size: usize) -> usize {
    let Some(value) = payload.take() else {
        return size;
    };
    let bytes = serde_json::to_vec(&value).map_or(0, |v| v.len());
    let marker = serde_json::json!({ "_truncated": { "bytes": bytes } });
    let marker_bytes = serde_json::to_vec(&marker).map_or(0, |v| v.len());
    *payload = Some(marker);
    size.saturating_sub(bytes) + marker_bytes
}

fn cut_system_strings(event: &mut Event) {
    let cut = |text: &mut String| truncate::truncate_string(text, SYSTEM_STRING_BYTES);
    if let Some(Value::String(id)) = &mut event.request_id {
        cut(id);
    }
    for text in [
        Some(&mut event.method),
        Some(&mut event.event_type),
        event.resource_name.as_mut(),
        event.protocol_version.as_mut(),
        event.client_name.as_mut(),
        event.client_version.as_mut(),
        event.traceparent.as_mut(),
        event.model.as_mut(),
        event.user_intent.as_mut(),
        event.error.as_mut().map(|e| &mut e.message),
    ]
    .into_iter()
    .flatten()
    {
        cut(text);
    }
    if let Some(user) = &mut event.user {
        cut(&mut user.id);
        if let Some(name) = &mut user.name {
            cut(name);
        }
    }
    event.headers.values_mut().for_each(cut);
}
