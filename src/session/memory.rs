//! [`MemorySessionStore`]: grouping state in process, bounded.
//!
//! Each group keeps a short history of its recent sessions ([`History`]), so that an event
//! arriving late joins the session whose span it falls in. At most `capacity` groups
//! (default 100,000), least recently used evicted, and groups idle for twice the
//! inactivity window swept as newer events arrive, so a client inventing identities cannot grow
//! memory without bound. For one instance; several instances behind a load balancer need
//! a shared store (`RedisSessionStore`). Never does I/O.

use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use lru::LruCache;

use super::history::History;
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
    groups: Mutex<LruCache<String, History>>,
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

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, History>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn assign_now(&self, requests: &[SessionRequest], window: Duration) -> Vec<String> {
        let mut groups = self.lock();
        let ids = requests
            .iter()
            .map(|request| {
                let history = groups.get_or_insert_mut(request.key.clone(), History::default);
                history.place(request.at, window, || new_id("ses", request.at))
            })
            .collect();
        Self::sweep(&mut groups, requests, window);
        ids
    }

    /// Follows decisions made elsewhere (a shared store): `ids[n]` is the session of
    /// `requests[n]`. Keeps this store ready to stand in for the shared one.
    pub(crate) fn note(&self, requests: &[SessionRequest], ids: &[String], window: Duration) {
        let mut groups = self.lock();
        for (request, id) in requests.iter().zip(ids) {
            groups
                .get_or_insert_mut(request.key.clone(), History::default)
                .note(id, request.at);
        }
        Self::sweep(&mut groups, requests, window);
    }

    /// Drops groups idle for twice the window before the newest request, least recently
    /// used first (an event arriving up to a window late still finds its group).
    fn sweep(
        groups: &mut LruCache<String, History>,
        requests: &[SessionRequest],
        window: Duration,
    ) {
        let window = window.saturating_mul(2);
        let latest = requests
            .iter()
            .map(|request| request.at)
            .max()
            .unwrap_or(SystemTime::UNIX_EPOCH);
        while let Some((_, history)) = groups.peek_lru() {
            if history
                .last()
                .is_some_and(|last| continues(last, latest, window))
            {
                break;
            }
            groups.pop_lru();
        }
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

    fn shared(&self) -> bool {
        false
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
        let earlier = store.assign_now(&[SessionRequest::new("k", at(15))], WINDOW);
        assert_eq!(later, earlier);
    }

    #[test]
    fn a_late_event_long_before_the_current_session_is_not_pulled_into_it() {
        let store = MemorySessionStore::new();
        let first = store.assign_now(&[SessionRequest::new("k", at(0))], WINDOW);
        let current = store.assign_now(&[SessionRequest::new("k", at(100))], WINDOW);
        assert_ne!(first, current);
        let late = store.assign_now(
            &[
                SessionRequest::new("k", at(20)),
                SessionRequest::new("k", at(50)),
            ],
            WINDOW,
        );
        assert_eq!(late[0], first[0], "within 10:00 + window");
        assert_eq!(late[1], first[0], "within 10:20 + window");
        let between = store.assign_now(&[SessionRequest::new("k", at(80))], WINDOW);
        assert_eq!(between, current, "nearer 11:40 than 10:50");
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
        store.assign_now(&[SessionRequest::new("late", at(61))], WINDOW);
        assert_eq!(
            store.len(),
            1,
            "everything idle for twice the window was swept"
        );
    }
}
