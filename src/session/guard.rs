//! The worker's hold on its session store: a shared store that fails, or answers later
//! than the timeout, never costs an event or stalls the worker past the timeout.
//!
//! Owns the fallback to memory: with a shared store, a [`MemorySessionStore`] follows
//! every decision the store makes and decides a batch itself when the store cannot. After
//! a failure the store is left alone for a while (1 s, doubling up to 10 s while it keeps
//! failing), so an outage costs one timeout now and then, not one per batch. Each batch
//! decided without the store is counted once in `session_store_errors`; an outage is
//! logged when it starts and when it ends, not per batch. Never runs on the request path.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::clients::{ClientUpdate, SharedClient};
use super::{MemorySessionStore, SessionRequest, SessionStore, StoreError};
use crate::event::ids::new_id;
use crate::stats::Counters;

/// First pause after a failure; it doubles while the store keeps failing.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// Longest pause between two tries of a failing store.
const MAX_PAUSE: Duration = Duration::from_secs(10);

/// A session store with its timeout, its fallback and its outage state.
pub(crate) struct GuardedStore {
    store: Arc<dyn SessionStore>,
    /// Present when `store` is shared: follows its decisions, stands in when it fails.
    fallback: Option<MemorySessionStore>,
    timeout: Duration,
    counters: Arc<Counters>,
    /// No try before this (the store failed lately).
    paused_until: Option<Instant>,
    pause: Duration,
    down: bool,
    /// This batch is already counted as decided without the store.
    counted: bool,
}

impl GuardedStore {
    /// A guard for `store`; a shared one gets a fallback of `capacity` groups.
    pub(crate) fn new(
        store: Arc<dyn SessionStore>,
        capacity: usize,
        timeout: Duration,
        counters: Arc<Counters>,
    ) -> Self {
        let shared = store.shared();
        Self {
            store,
            fallback: shared.then(|| MemorySessionStore::with_capacity(capacity)),
            timeout,
            counters,
            paused_until: None,
            pause: FIRST_PAUSE,
            down: false,
            counted: false,
        }
    }

    /// Whether the store is shared with other instances (and so asked about clients).
    pub(crate) fn shared(&self) -> bool {
        self.fallback.is_some()
    }

    /// A new batch begins.
    pub(crate) fn begin(&mut self) {
        self.counted = false;
    }

    /// One session id per request, in order: the store's, or the fallback's.
    pub(crate) async fn assign(
        &mut self,
        requests: &[SessionRequest],
        window: Duration,
    ) -> Vec<String> {
        let store = Arc::clone(&self.store);
        let answer = self.call(store.assign(requests, window)).await;
        match answer {
            Some(ids) if ids.len() == requests.len() => {
                if let Some(fallback) = &self.fallback {
                    fallback.note(requests, &ids, window);
                }
                ids
            }
            other => {
                if let Some(ids) = other {
                    self.failed(StoreError::new(format!(
                        "answered {} sessions for {} requests",
                        ids.len(),
                        requests.len()
                    )));
                }
                match &self.fallback {
                    Some(fallback) => fallback.assign_now(requests, window),
                    None => requests
                        .iter()
                        .map(|request| new_id("ses", request.at))
                        .collect(),
                }
            }
        }
    }

    /// One answer per query: the shared store's, or `None` when it cannot say.
    pub(crate) async fn clients(
        &mut self,
        update: &ClientUpdate,
        window: Duration,
    ) -> Vec<Option<SharedClient>> {
        let unknown = vec![None; update.queries.len()];
        if !self.shared() || update.is_empty() {
            return unknown;
        }
        let store = Arc::clone(&self.store);
        match self.call(store.clients(update, window)).await {
            Some(answers) if answers.len() == update.queries.len() => answers,
            Some(answers) => {
                self.failed(StoreError::new(format!(
                    "answered {} clients for {} queries",
                    answers.len(),
                    update.queries.len()
                )));
                unknown
            }
            None => unknown,
        }
    }

    /// Runs one store call within the timeout, unless the store is paused after failing.
    async fn call<T>(&mut self, call: impl Future<Output = Result<T, StoreError>>) -> Option<T> {
        if self
            .paused_until
            .is_some_and(|until| Instant::now() < until)
        {
            self.count();
            return None;
        }
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(answer)) => {
                self.recovered();
                Some(answer)
            }
            Ok(Err(error)) => {
                self.failed(error);
                None
            }
            Err(_) => {
                self.failed(StoreError::new(format!(
                    "no answer within {:?}",
                    self.timeout
                )));
                None
            }
        }
    }

    fn failed(&mut self, error: StoreError) {
        self.count();
        if self.down {
            tracing::debug!(%error, "mcp analytics session store still failing");
            self.pause = (self.pause * 2).min(MAX_PAUSE);
        } else {
            tracing::warn!(
                %error,
                "mcp analytics session store failed; deciding sessions in memory until it answers again"
            );
            self.down = true;
            self.pause = FIRST_PAUSE;
        }
        self.paused_until = Some(Instant::now() + self.pause);
    }

    fn recovered(&mut self) {
        if self.down {
            tracing::info!("mcp analytics session store answers again");
        }
        self.down = false;
        self.paused_until = None;
        self.pause = FIRST_PAUSE;
    }

    fn count(&mut self) {
        if !self.counted {
            self.counted = true;
            self.counters.session_store_failed();
        }
    }
}
