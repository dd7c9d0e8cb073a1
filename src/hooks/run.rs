//! Running the request hooks (`identify`, `session_key`, `tags`, `properties`) on the
//! request path.
//!
//! Owns panic safety: a hook that panics is caught and counted. An `identify` or
//! `session_key` hook that panics is treated as having returned nothing (the event goes
//! out anonymous, or grouped without a key); a `tags` or `properties` hook that panics
//! marks the request's events to be dropped. The request is never affected. Never stores
//! anything and never blocks beyond the hook itself.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::{IdentifyFn, PropertiesFn, RequestView, SessionKeyFn, TagsFn, UserIdentity};
use crate::stats::{Counters, HookKind};

/// The hooks a layer was built with.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) identify: Option<IdentifyFn>,
    pub(crate) session_key: Option<SessionKeyFn>,
    pub(crate) tags: Option<TagsFn>,
    pub(crate) properties: Option<PropertiesFn>,
}

/// What the hooks said about one request.
#[derive(Debug, Default)]
pub(crate) struct HookAnswers {
    pub(crate) user: Option<UserIdentity>,
    pub(crate) session_key: Option<String>,
    pub(crate) tags: Vec<(String, String)>,
    pub(crate) properties: Option<serde_json::Value>,
    /// A `tags` or `properties` hook panicked: the request's events must not go out.
    pub(crate) failed: bool,
}

impl Hooks {
    pub(crate) fn run(&self, view: &RequestView<'_>, counters: &Counters) -> HookAnswers {
        let mut failed = false;
        let tags = match &self.tags {
            Some(hook) => {
                guarded(HookKind::Tags, counters, || Some(hook(view))).unwrap_or_else(|| {
                    failed = true;
                    Vec::new()
                })
            }
            None => Vec::new(),
        };
        let properties = match &self.properties {
            Some(hook) => match catch_unwind(AssertUnwindSafe(|| hook(view))) {
                Ok(properties) => properties,
                Err(_) => {
                    counters.hook_panicked(HookKind::Properties);
                    failed = true;
                    None
                }
            },
            None => None,
        };
        HookAnswers {
            user: self
                .identify
                .as_ref()
                .and_then(|hook| guarded(HookKind::Identify, counters, || hook(view))),
            session_key: self
                .session_key
                .as_ref()
                .and_then(|hook| guarded(HookKind::SessionKey, counters, || hook(view))),
            tags,
            properties,
            failed,
        }
    }
}

fn guarded<T>(kind: HookKind, counters: &Counters, hook: impl FnOnce() -> Option<T>) -> Option<T> {
    catch_unwind(AssertUnwindSafe(hook)).unwrap_or_else(|_| {
        counters.hook_panicked(kind);
        tracing::warn!(
            hook = kind.name(),
            "mcp analytics hook panicked; the request is unaffected (see stats().hook_panics)"
        );
        None
    })
}
