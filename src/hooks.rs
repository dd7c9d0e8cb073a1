//! Running the user's request hooks (`identify`, `session_key`) on the request path.
//!
//! Owns panic safety: a hook that panics is caught, counted, and treated as having
//! returned nothing (the event goes out anonymous, or grouped without a key); the request
//! is never affected. Never stores anything and never blocks beyond the hook itself.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::delivery::{Counters, HookKind};
use crate::identity::{IdentifyFn, RequestView, SessionKeyFn, UserIdentity};

/// The hooks a layer was built with.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) identify: Option<IdentifyFn>,
    pub(crate) session_key: Option<SessionKeyFn>,
}

/// What the hooks said about one request.
#[derive(Debug, Default)]
pub(crate) struct HookAnswers {
    pub(crate) user: Option<UserIdentity>,
    pub(crate) session_key: Option<String>,
}

impl Hooks {
    pub(crate) fn run(&self, view: &RequestView<'_>, counters: &Counters) -> HookAnswers {
        HookAnswers {
            user: self
                .identify
                .as_ref()
                .and_then(|hook| guarded(HookKind::Identify, counters, || hook(view))),
            session_key: self
                .session_key
                .as_ref()
                .and_then(|hook| guarded(HookKind::SessionKey, counters, || hook(view))),
        }
    }
}

fn guarded<T>(kind: HookKind, counters: &Counters, hook: impl FnOnce() -> Option<T>) -> Option<T> {
    catch_unwind(AssertUnwindSafe(hook)).unwrap_or_else(|_| {
        counters.hook_panicked(kind);
        tracing::warn!(
            hook = kind.name(),
            "mcp analytics hook panicked; treated as returning None"
        );
        None
    })
}
