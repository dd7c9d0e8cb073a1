//! [`MemorySessionStore`]: grouping state in process, bounded.
//!
//! At most `capacity` groups (default 100,000), least recently used evicted, and groups
//! idle past the inactivity window swept as newer events arrive, so a client inventing
//! identities cannot grow memory without bound. For one instance; several instances
//! behind a load balancer need a shared store.

use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use lru::LruCache;

use super::{SessionRequest, SessionStore, StoreError, StoreFuture, continues};
use crate::event::ids::new_id;

/// The default session store: in memory, bounded, least recently used evicted.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_mcp_analytics::{MemorySessionStore, SessionRequest, SessionStore};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = MemorySessionStore::with_capacity(1_000);
/// let t0 = SystemTime::now();
/// let window = Duration::from_secs(30 * 60);
/// let ids = store
///     .assign(&[SessionRequest::new("alice+claude", t0), SessionRequest::new("alice+claude", t0 + Duration::from_secs(60))], window)
///     .await
///     .unwrap();
/// assert_eq!(ids[0], ids[1]);
/// assert_eq!(store.len(), 1);
/// # }
/// ```
#[derive(Debug)]
pub struct MemorySessionStore {
    groups: Mutex<LruCache<String, Group>>,
}

#[derive(Debug)]
struct Group {
    session: String,
    last: SystemTime,
}

impl MemorySessionStore {
    /// A store of at most 100,000 groups.
    ///
    /// ```
    /// assert!(tower_mcp_analytics::MemorySessionStore::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::with_capacity(100_000)
    }

    /// A store of at most `capacity` groups (at least one).
    ///
    /// ```
    /// let store = tower_mcp_analytics::MemorySessionStore::with_capacity(10);
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            groups: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Groups currently held.
    ///
    /// ```
    /// assert_eq!(tower_mcp_analytics::MemorySessionStore::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no group is held.
    ///
    /// ```
    /// assert!(tower_mcp_analytics::MemorySessionStore::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, Group>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn assign_now(&self, requests: &[SessionRequest], window: Duration) -> Vec<String> {
        let mut groups = self.lock();
        let mut latest = SystemTime::UNIX_EPOCH;
        let ids = requests
            .iter()
            .map(|request| {
                latest = latest.max(request.at);
                if let Some(group) = groups.get_mut(&request.key)
                    && continues(group.last, request.at, window)
                {
                    group.last = group.last.max(request.at);
                    return group.session.clone();
                }
                let session = new_id("ses", request.at);
                let group = Group {
                    session: session.clone(),
                    last: request.at,
                };
                groups.put(request.key.clone(), group);
                session
            })
            .collect();
        // Sweep groups idle past the window, oldest first.
        while let Some((_, group)) = groups.peek_lru() {
            if continues(group.last, latest, window) {
                break;
            }
            groups.pop_lru();
        }
        ids
    }
}

impl Default for MemorySessionStore {
    fn default() -> Self {
        Self::new()
    }
}

impl SessionStore for MemorySessionStore {
    fn assign<'a>(&'a self, requests: &'a [SessionRequest], window: Duration) -> StoreFuture<'a> {
        let ids = self.assign_now(requests, window);
        Box::pin(std::future::ready(Ok::<_, StoreError>(ids)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(30 * 60);

    fn at(minutes: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + minutes * 60)
    }

    #[test]
    fn groups_by_key_within_the_window() {
        let store = MemorySessionStore::new();
        let requests = [
            SessionRequest::new("alice+claude", at(0)),
            SessionRequest::new("bob+cursor", at(2)),
            SessionRequest::new("alice+claude", at(15)),
            SessionRequest::new("alice+cursor", at(20)),
            SessionRequest::new("alice+claude", at(55)),
        ];
        let ids = store.assign_now(&requests, WINDOW);
        assert_eq!(ids[0], ids[2]);
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[0], ids[3]);
        assert_ne!(ids[0], ids[4], "40 minutes after 10:15");
        assert!(
            ids.iter()
                .all(|id| id.starts_with("ses_") && id.len() == 31)
        );
        assert!(ids[0] < ids[4], "time-sortable");
    }

    #[test]
    fn a_late_finishing_earlier_event_joins_the_session() {
        let store = MemorySessionStore::new();
        let later = store.assign_now(&[SessionRequest::new("k", at(40))], WINDOW);
        let earlier = store.assign_now(&[SessionRequest::new("k", at(5))], WINDOW);
        assert_eq!(later, earlier);
    }

    #[test]
    fn a_flood_of_groups_stays_at_the_cap_and_idle_groups_are_swept() {
        let store = MemorySessionStore::with_capacity(1000);
        for chunk in (0..1_000_000u64).collect::<Vec<_>>().chunks(10_000) {
            let requests: Vec<_> = chunk
                .iter()
                .map(|n| SessionRequest::new(format!("user-{n}"), at(0)))
                .collect();
            store.assign_now(&requests, WINDOW);
        }
        assert_eq!(store.len(), 1000);
        store.assign_now(&[SessionRequest::new("late", at(120))], WINDOW);
        assert_eq!(store.len(), 1, "everything idle for two hours was swept");
    }
}
