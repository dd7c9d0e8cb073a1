//! [`SessionConfig`]: how sessions are decided and where their state lives, with the
//! defaults.
//!
//! Owns the session settings and turning them into the [`Sessions`] the worker consults.
//! Never decides a session itself.

use std::sync::Arc;
use std::time::Duration;

use super::{GuardedStore, MemorySessionStore, SessionMode, SessionStore, Sessions};
use crate::stats::Counters;

/// Default most users, sessions and clients remembered in memory.
pub(crate) const DEFAULT_CAPACITY: usize = 100_000;

/// How sessions are decided and where their state lives.
#[derive(Clone)]
pub(crate) struct SessionConfig {
    pub(crate) mode: SessionMode,
    /// Longest gap between two events of a user and client in one session.
    pub(crate) window: Duration,
    /// Where grouping state lives; a memory store of `capacity` groups when `None`.
    pub(crate) store: Option<Arc<dyn SessionStore>>,
    /// Longest wait for a shared store's answer.
    pub(crate) store_timeout: Duration,
    /// Most users, sessions and clients remembered in memory, each.
    pub(crate) capacity: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            mode: SessionMode::Auto,
            window: Duration::from_secs(30 * 60),
            store: None,
            store_timeout: Duration::from_secs(1),
            capacity: DEFAULT_CAPACITY,
        }
    }
}

impl SessionConfig {
    /// The session rules and their (guarded) store.
    pub(crate) fn sessions(self, counters: Arc<Counters>) -> Sessions {
        let capacity = self.capacity;
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(MemorySessionStore::with_capacity(capacity)));
        Sessions {
            mode: self.mode,
            window: self.window,
            store: GuardedStore::new(store, capacity, self.store_timeout, counters),
        }
    }
}
