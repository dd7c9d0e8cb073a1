//! The worker's tool catalog: which tools the server advertised, to flag calls of tools
//! it did not.
//!
//! Owns the names each session's `tools/list` answers carried (and those of any session,
//! for sessions that call before they list), bounded, and the
//! `unknown_tool` flag on `tools/call` events: the tool was not advertised, or the server
//! answered that it does not know it. Never reads a request; works on enriched events, so
//! that sessions are known.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;

use crate::event::{Event, Outcome};
use crate::insights::MISSING_CAPABILITY_EVENT;

/// Most sessions whose tool lists are remembered.
const MAX_SESSIONS: usize = 10_000;
/// Most names remembered for one session (past it, a new list starts afresh).
const MAX_NAMES: usize = 10_000;

/// The tools advertised, per session and lately.
pub(crate) struct ToolCatalog {
    by_session: LruCache<String, Arc<HashSet<String>>>,
    latest: Option<Arc<HashSet<String>>>,
}

impl Default for ToolCatalog {
    fn default() -> Self {
        Self {
            by_session: LruCache::new(NonZeroUsize::new(MAX_SESSIONS).unwrap_or(NonZeroUsize::MIN)),
            latest: None,
        }
    }
}

impl ToolCatalog {
    /// Learns from a `tools/list` answer, or flags a call of an unknown tool.
    pub(crate) fn note(&mut self, event: &mut Event) {
        match event.method.as_str() {
            "tools/list" => {
                let Some(names) = &event.listed_tools else {
                    return;
                };
                // Lists are joined, not replaced: a paginated list comes a page at a time.
                let join = |known: Option<&Arc<HashSet<String>>>| {
                    let mut all: HashSet<String> = known
                        .filter(|known| known.len() < MAX_NAMES)
                        .map(|known| (**known).clone())
                        .unwrap_or_default();
                    all.extend(names.iter().cloned());
                    Arc::new(all)
                };
                if let Some(session) = &event.session_id {
                    let joined = join(self.by_session.get(session));
                    self.by_session.put(session.clone(), joined);
                }
                self.latest = Some(join(self.latest.as_ref()));
            }
            "tools/call" => {
                let Some(name) = event.resource_name.as_deref() else {
                    return;
                };
                if event.event_type == MISSING_CAPABILITY_EVENT {
                    // The layer's own tool, answered by the layer.
                    return;
                }
                let advertised = event
                    .session_id
                    .as_ref()
                    .and_then(|session| self.by_session.get(session))
                    .or(self.latest.as_ref());
                let unlisted = advertised.is_some_and(|names| !names.contains(name));
                event.unknown_tool = unlisted || server_said_unknown(event);
            }
            _ => {}
        }
    }
}

/// The server answered a call with a JSON-RPC error saying the tool does not exist
/// (`-32602` or `-32601`, naming the tool as unknown or not found).
fn server_said_unknown(event: &Event) -> bool {
    let Some(error) = event
        .error
        .as_ref()
        .filter(|_| event.outcome == Outcome::Error)
    else {
        return false;
    };
    if !matches!(error.code, Some(-32602 | -32601)) {
        return false;
    }
    let message = error.message.to_ascii_lowercase();
    message.contains("tool")
        && [
            "unknown",
            "not found",
            "no such",
            "does not exist",
            "not exist",
        ]
        .iter()
        .any(|words| message.contains(words))
}
