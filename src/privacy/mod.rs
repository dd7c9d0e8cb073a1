//! Privacy and payload control: what of a request may leave the process, and how big.
//!
//! Owns the worker's last stage before batching. In order: payload capture (arguments and
//! results on or off, per-tool exclusions), tag validation, sanitising binary content,
//! the `redact_event` hook (which may change or drop the event), the `redact` hook over
//! every string of arguments, results, errors and user data, truncation, and fitting the
//! serialised event under its cap. A hook that panics drops the event (it is never sent
//! unredacted) and the loss is counted. Never runs on the request path; the request-path
//! side of privacy is what is captured at all: no headers unless named, sensitive ones
//! masked unless forced, never query strings or cookies.

mod sanitize;
mod truncate;

use std::collections::{BTreeMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use serde_json::Value;
use serde_json::value::RawValue;

pub use truncate::PayloadLimits;
pub(crate) use truncate::removed;

use crate::delivery::DropReason;
use crate::event::Event;

/// The signature of a `redact` hook: a replacement for a string, or `None` to keep it.
pub(crate) type RedactFn = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;
/// The signature of a `redact_event` hook: `false` drops the event.
pub(crate) type RedactEventFn = Arc<dyn Fn(&mut Event) -> bool + Send + Sync>;

/// Headers replaced by a marker even when named, unless forced.
pub(crate) const SENSITIVE_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];
/// What stands in for a sensitive header's value.
pub(crate) const MASK: &str = "[redacted]";

/// The privacy settings of a layer.
pub(crate) struct Privacy {
    pub(crate) capture_arguments: bool,
    pub(crate) capture_results: bool,
    pub(crate) excluded_tools: HashSet<String>,
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

impl Privacy {
    /// Makes an event safe and bounded, or says why it must be dropped.
    pub(crate) fn apply(&self, mut event: Event) -> Result<Event, DropReason> {
        let excluded = event.method == "tools/call"
            && event
                .resource_name
                .as_ref()
                .is_some_and(|name| self.excluded_tools.contains(name));
        if !self.capture_arguments || excluded {
            event.arguments = None;
        }
        if !self.capture_results || excluded {
            event.result = None;
        }
        self.validate_tags(&mut event.tags);
        for value in payloads(&mut event) {
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
        if let Some(hook) = &self.redact {
            let redacted = catch_unwind(AssertUnwindSafe(|| {
                for value in redactable(&mut event) {
                    redact_strings(value, &**hook);
                }
                if let Some(error) = &mut event.error
                    && let Some(replacement) = hook(&error.message)
                {
                    error.message = replacement;
                }
                if let Some(user) = &mut event.user
                    && let Some(name) = &mut user.name
                    && let Some(replacement) = hook(name)
                {
                    *name = replacement;
                }
            }));
            if redacted.is_err() {
                tracing::warn!("mcp analytics redact hook panicked; event dropped");
                return Err(DropReason::RedactionFailed);
            }
        }
        for value in payloads(&mut event) {
            truncate::truncate(value, &self.limits);
        }
        Ok(event)
    }

    /// Serialises an event within the event cap, removing payloads (largest first:
    /// result, arguments, error data, user data, properties) and then cutting system
    /// strings until it fits.
    pub(crate) fn serialize(&self, mut event: Event) -> Option<(Event, Box<RawValue>)> {
        let cap = self.limits.event_bytes;
        let mut json = serde_json::value::to_raw_value(&event).ok()?;
        let mut step = 0;
        while json.get().len() > cap && step < 6 {
            match step {
                0 => shrink(&mut event.result),
                1 => shrink(&mut event.arguments),
                2 => {
                    if let Some(error) = &mut event.error {
                        shrink(&mut error.data);
                    }
                }
                3 => {
                    if let Some(user) = &mut event.user {
                        shrink(&mut user.data);
                    }
                }
                4 => shrink(&mut event.properties),
                _ => cut_system_strings(&mut event),
            }
            step += 1;
            json = serde_json::value::to_raw_value(&event).ok()?;
        }
        Some((event, json))
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

/// The JSON payloads of an event.
fn payloads(event: &mut Event) -> impl Iterator<Item = &mut Value> {
    let error_data = event.error.as_mut().and_then(|e| e.data.as_mut());
    let user_data = event.user.as_mut().and_then(|u| u.data.as_mut());
    [
        event.arguments.as_mut(),
        event.result.as_mut(),
        error_data,
        user_data,
        event.properties.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// The payloads the `redact` hook sees (all but the server's own `properties`).
fn redactable(event: &mut Event) -> impl Iterator<Item = &mut Value> {
    let error_data = event.error.as_mut().and_then(|e| e.data.as_mut());
    let user_data = event.user.as_mut().and_then(|u| u.data.as_mut());
    [
        event.arguments.as_mut(),
        event.result.as_mut(),
        error_data,
        user_data,
    ]
    .into_iter()
    .flatten()
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

/// Replaces a payload by a marker giving its serialised size.
fn shrink(payload: &mut Option<Value>) {
    if let Some(value) = payload.take() {
        let bytes = serde_json::to_vec(&value).map_or(0, |v| v.len());
        *payload = Some(removed(bytes));
    }
}

fn cut_system_strings(event: &mut Event) {
    let cut = |text: &mut String| truncate::truncate_string(text, SYSTEM_STRING_BYTES);
    for text in [
        event.resource_name.as_mut(),
        event.protocol_version.as_mut(),
        event.client_name.as_mut(),
        event.client_version.as_mut(),
        event.traceparent.as_mut(),
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
