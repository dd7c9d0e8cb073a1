//! The worker's second stage, between building events and making them safe: which AI
//! client, which user (and an identify event when a user is new or changed), which
//! session.
//!
//! Owns the stateful part of analytics, all of it bounded and all of it in the worker:
//! the client directory (`clients`), the identity cache (`identities`) and the session
//! store (one store call per batch, and one more for a shared store when legacy clients
//! must be looked up). Each event is resolved from its exchange's [`Origin`](crate::exchange::Origin) as it is, in
//! the order the data flows: client first (the session groups by it), then user, then
//! session. Never runs on the request path; a failing shared store costs a batch its
//! shared decisions (it is decided in memory, counted), never an event.

mod clients;
mod identities;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

use clients::{ClientDirectory, Resolution, display_name};
use identities::IdentityCache;

use super::build::{Built, ClientInfo, Unresolved};
use crate::event::Event;
use crate::event::ids::new_id;
use crate::session::{
    ClientNote, ClientQuery, ClientUpdate, Decision, SessionConfig, SessionRequest, Sessions,
    SharedClient,
};
use crate::stats::Counters;

/// Most ended sessions remembered until the next batch tells a shared store.
const MAX_FORGOTTEN: usize = 1024;

/// Client, identity and session state.
pub(crate) struct Enricher {
    clients: ClientDirectory,
    identities: IdentityCache,
    sessions: Sessions,
    counters: Arc<Counters>,
    /// Store keys of sessions ended since the last batch, for a shared store.
    forgotten: Vec<String>,
}

/// An event whose client this instance did not know, waiting for a shared store.
struct Waiting {
    /// Where the event is: its exchange, and its place among the exchange's events.
    exchange: usize,
    event: usize,
    /// What the lower rungs of the ladder give, should the store not know either.
    fallback: ClientInfo,
}

/// The batch's events with their sessions decided, but for those the store must assign.
struct Decided {
    events: Vec<Event>,
    /// Events to group in the store: their place in `events`, and what to ask.
    grouped: Vec<(usize, SessionRequest)>,
    /// Identify events and the event whose session each shares: places in `events`.
    companions: Vec<(usize, usize)>,
}

impl Enricher {
    pub(crate) fn new(config: SessionConfig, counters: Arc<Counters>) -> Self {
        let capacity = NonZeroUsize::new(config.capacity).unwrap_or(NonZeroUsize::MIN);
        let sessions = config.sessions(Arc::clone(&counters));
        Self {
            clients: ClientDirectory::new(capacity, sessions.window),
            identities: IdentityCache::new(capacity),
            sessions,
            counters,
            forgotten: Vec::new(),
        }
    }

    /// Whether the session store is shared with other instances (a round trip a call).
    pub(crate) fn shares_sessions(&self) -> bool {
        self.sessions.store.shared()
    }

    /// A client ended its MCP session (DELETE with `Mcp-Session-Id`; `session` is the id
    /// derived from it): a shared store forgets its client with the next batch. This
    /// instance keeps it until [`session_ended`](Self::session_ended), for the session's
    /// events taken in before the end.
    pub(crate) fn session_ending(&mut self, session: &str) {
        if self.sessions.store.shared() && self.forgotten.len() < MAX_FORGOTTEN {
            self.forgotten.push(clients::session_key(session));
        }
    }

    /// The events taken in before a session's end are enriched: this instance forgets its
    /// client.
    pub(crate) fn session_ended(&mut self, session: &str) {
        self.clients.forget_session(session);
    }

    /// Fills in client, user and session, adding identify events where a user is new or
    /// changed (they are counted as recorded and as in the worker's hands).
    pub(crate) async fn enrich(&mut self, mut exchanges: Vec<Built>) -> Vec<Event> {
        self.sessions.store.begin();
        self.resolve_clients(&mut exchanges).await;
        let mut decided = self.decide_sessions(exchanges);
        self.assign_groups(&mut decided).await;
        for (identify, event) in decided.companions {
            let session = decided.events.get(event).and_then(|e| e.session_id.clone());
            if let Some(identify) = decided.events.get_mut(identify) {
                identify.session_id = session;
            }
        }
        decided.events
    }

    /// Names each event's client: by the ladder here, then, for what this instance does
    /// not know, by a shared store (one call for the batch), then by the lower rungs.
    async fn resolve_clients(&mut self, exchanges: &mut [Built]) {
        let (update, waiting) = self.resolve_here(exchanges);
        if update.is_empty() {
            return;
        }
        let window = self.sessions.window;
        let answers = self.sessions.store.clients(&update, window).await;
        for (wait, answer) in waiting.into_iter().zip(answers) {
            self.settle(exchanges, wait, answer);
        }
    }

    /// Resolves what this instance knows, learning from `initialize` events and
    /// forgetting sessions the server answered 404 for. Returns what to tell and ask a
    /// shared store, and the events waiting for its answers (none without one).
    fn resolve_here(&mut self, exchanges: &mut [Built]) -> (ClientUpdate, Vec<Waiting>) {
        let shared = self.sessions.store.shared();
        let mut update = ClientUpdate {
            forgotten: std::mem::take(&mut self.forgotten),
            ..ClientUpdate::default()
        };
        let mut waiting = Vec::new();
        for (exchange, built) in exchanges.iter_mut().enumerate() {
            // The server no longer knows the session: its client is forgotten, from this
            // exchange on.
            if built.status == Some(http::StatusCode::NOT_FOUND)
                && let Some(session) = &built.origin.mcp_session
            {
                let key = self.clients.forget_session(session);
                if shared {
                    update.forgotten.push(key);
                }
            }
            let origin = &built.origin;
            for (event, item) in built.events.iter_mut().enumerate() {
                let user = item.event.user.as_ref().map(|user| user.id.as_str());
                if item.event.method == "initialize"
                    && let Some(key) = self.clients.learn(&item.own_client, origin, user)
                    && shared
                    && let Some(name) = &item.own_client.name
                {
                    let version = item.own_client.version.clone();
                    let note = ClientNote::new(key, name.clone(), version, origin.at);
                    update.learnt.push(note);
                }
                let client = match self.clients.resolve_here(&item.own_client, origin, user) {
                    Resolution::Known(client) => client,
                    Resolution::Missed(missed) if shared => {
                        update
                            .queries
                            .push(ClientQuery::new(missed.keys, origin.at));
                        waiting.push(Waiting {
                            exchange,
                            event,
                            fallback: missed.fallback,
                        });
                        continue;
                    }
                    Resolution::Missed(missed) => missed.fallback,
                };
                set_client(&mut item.event, client);
            }
        }
        (update, waiting)
    }

    /// Gives a waiting event the client the shared store knew (remembered here from now
    /// on), or the lower rungs' answer.
    fn settle(&mut self, exchanges: &mut [Built], wait: Waiting, answer: Option<SharedClient>) {
        let Some(built) = exchanges.get_mut(wait.exchange) else {
            return;
        };
        let Some(item) = built.events.get_mut(wait.event) else {
            return;
        };
        let client = match answer {
            Some(known) => {
                let info = ClientInfo {
                    name: Some(known.name),
                    version: known.version,
                };
                let user = item.event.user.as_ref().map(|user| user.id.as_str());
                self.clients.adopt(&built.origin, user, info.clone());
                info
            }
            None => wait.fallback,
        };
        set_client(&mut item.event, client);
    }

    /// Adds identify events and decides every event's session where no store is needed.
    fn decide_sessions(&mut self, exchanges: Vec<Built>) -> Decided {
        let mut decided = Decided {
            events: Vec::with_capacity(exchanges.iter().map(|b| b.events.len()).sum()),
            grouped: Vec::new(),
            companions: Vec::new(),
        };
        for Built { origin, events, .. } in exchanges {
            for Unresolved { mut event, .. } in events {
                let user = event.user.as_ref().map(|user| user.id.as_str());
                let client = event.client_name.as_deref();
                let decision = self.sessions.decide(&origin, user, client);
                if let Some(identify) = self.identify(&event, origin.at) {
                    let at = decided.events.len();
                    decided.companions.push((at, at + 1));
                    decided.events.push(identify);
                }
                match decision {
                    Decision::Fixed(session) => event.session_id = session,
                    Decision::Group(request) => {
                        decided.grouped.push((decided.events.len(), request));
                    }
                }
                decided.events.push(event);
            }
        }
        decided
    }

    /// The identify event for `event`'s user when the user is new or changed (counted as
    /// recorded and as in the worker's hands).
    fn identify(&mut self, event: &Event, at: SystemTime) -> Option<Event> {
        let user = event.user.as_ref()?;
        if !self.identities.changed(user) {
            return None;
        }
        self.counters.recorded(1);
        self.counters.in_worker.fetch_add(1, Relaxed);
        Some(identify_event(event, at))
    }

    /// Asks the store for the grouped events' sessions, in the order the events started
    /// (they finish, and so arrive here, in any order).
    async fn assign_groups(&mut self, decided: &mut Decided) {
        if decided.grouped.is_empty() {
            return;
        }
        let mut order = std::mem::take(&mut decided.grouped);
        order.sort_by_key(|(_, request)| request.at);
        let (places, requests): (Vec<usize>, Vec<SessionRequest>) = order.into_iter().unzip();
        let window = self.sessions.window;
        let ids = self.sessions.store.assign(&requests, window).await;
        for (place, id) in places.into_iter().zip(ids) {
            if let Some(event) = decided.events.get_mut(place) {
                event.session_id = Some(id);
            }
        }
    }
}

/// Writes the resolved client, with its display name, into `event`.
fn set_client(event: &mut Event, client: ClientInfo) {
    event.client_display_name = client
        .name
        .as_deref()
        .and_then(display_name)
        .map(String::from);
    event.client_name = client.name;
    event.client_version = client.version;
}

/// The identify event recording `event`'s user as new or changed.
fn identify_event(event: &Event, at: SystemTime) -> Event {
    Event {
        id: new_id("evt", at),
        event_type: "identify".to_owned(),
        timestamp: event.timestamp.clone(),
        duration_ms: 0.0,
        method: "identify".to_owned(),
        resource_name: None,
        request_id: None,
        arguments: None,
        result: None,
        outcome: crate::Outcome::Success,
        is_error: false,
        error: None,
        protocol_version: event.protocol_version.clone(),
        client_name: event.client_name.clone(),
        client_version: event.client_version.clone(),
        client_display_name: event.client_display_name.clone(),
        harness: event.harness.clone(),
        session_id: None,
        user: event.user.clone(),
        listed_tools: None,
        unknown_tool: false,
        model: None,
        user_intent: None,
        http_status: None,
        response_kind: None,
        progress_notifications: 0,
        log_notifications: 0,
        batch: false,
        traceparent: None,
        headers: Default::default(),
        tags: Default::default(),
        properties: None,
        unsendable: None,
        #[cfg(feature = "otel")]
        trace: None,
    }
}
