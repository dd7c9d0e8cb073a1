//! The worker's stage between building events and delivering them: which AI client, which
//! user (and an identify event when a user is new or changed), which session.
//!
//! Owns the stateful part of analytics, all of it bounded and all of it in the worker:
//! the client directory, the identity cache and the session store (one store call per
//! batch, and one more for a shared store when legacy clients must be looked up). Never
//! runs on the request path; a failing shared store costs a batch its shared decisions
//! (it is decided in memory, counted), never an event.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

use crate::delivery::Counters;
use crate::event::Event;
use crate::event::build::{Built, Context, mcp_session_id};
use crate::event::ids::new_id;
use crate::identity::cache::IdentityCache;
use crate::identity::clients::{
    ClientClues, ClientDirectory, ClientInfo, Resolution, display_name,
};
use crate::session::{
    ClientNote, ClientQuery, ClientUpdate, Decision, SessionClues, SessionRequest, Sessions,
};

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

/// One event on its way through the stage, with the exchange it came from.
struct Item {
    event: Event,
    context: usize,
}

/// An event whose client this instance did not know, waiting for a shared store.
struct Waiting {
    item: usize,
    fallback: ClientInfo,
}

impl Enricher {
    pub(crate) fn new(sessions: Sessions, capacity: NonZeroUsize, counters: Arc<Counters>) -> Self {
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

    /// A client ended its MCP session (DELETE with `Mcp-Session-Id`).
    pub(crate) fn session_ended(&mut self, raw: &str) {
        let key = self.clients.forget_session(&mcp_session_id(raw));
        self.forget(key);
    }

    fn forget(&mut self, key: String) {
        if self.sessions.store.shared() && self.forgotten.len() < MAX_FORGOTTEN {
            self.forgotten.push(key);
        }
    }

    /// Fills in client, user and session, adding identify events where a user is new or
    /// changed (they are counted as recorded and as in the worker's hands).
    pub(crate) async fn enrich(&mut self, exchanges: Vec<Built>) -> Vec<Event> {
        self.sessions.store.begin();
        let mut contexts = Vec::with_capacity(exchanges.len());
        let mut items = Vec::new();
        for Built { events, context } in exchanges {
            if context.hook_failed {
                // A tags or properties hook panicked: these events are not sent half-made.
                let n = events.len() as u64;
                self.counters
                    .dropped(crate::delivery::DropReason::HookFailed, n);
                self.counters.in_worker.fetch_sub(n, Relaxed);
                continue;
            }
            items.extend(events.into_iter().map(|event| Item {
                event,
                context: contexts.len(),
            }));
            contexts.push(context);
        }
        self.resolve_clients(&mut items, &contexts).await;
        self.decide_sessions(items, &contexts).await
    }

    /// Names each event's client: by the ladder here, then, for what this instance does
    /// not know, by a shared store (one call for the batch), then by the lower rungs.
    async fn resolve_clients(&mut self, items: &mut [Item], contexts: &[Context]) {
        let shared = self.sessions.store.shared();
        let mut update = ClientUpdate {
            forgotten: std::mem::take(&mut self.forgotten),
            ..ClientUpdate::default()
        };
        let mut waiting = Vec::new();
        let mut previous = None;
        for (index, item) in items.iter_mut().enumerate() {
            let context = &contexts[item.context];
            if previous != Some(item.context) {
                previous = Some(item.context);
                // The server no longer knows the session: its client is forgotten, from
                // this exchange on.
                if context.status == Some(http::StatusCode::NOT_FOUND)
                    && let Some(session) = &context.mcp_session
                {
                    let key = self.clients.forget_session(session);
                    if shared {
                        update.forgotten.push(key);
                    }
                }
            }
            let event = &mut item.event;
            let clues = clues(event, context);
            if event.method == "initialize"
                && let Some(key) = self.clients.learn(&clues)
                && shared
                && let Some(name) = &clues.own.name
            {
                let version = clues.own.version.clone();
                update
                    .learnt
                    .push(ClientNote::new(key, name.clone(), version, clues.at));
            }
            match self.clients.resolve_here(&clues) {
                Resolution::Known(client) => set_client(event, client),
                Resolution::Missed(missed) if shared => {
                    update.queries.push(ClientQuery::new(missed.keys, clues.at));
                    waiting.push(Waiting {
                        item: index,
                        fallback: missed.fallback,
                    });
                }
                Resolution::Missed(missed) => set_client(event, missed.fallback),
            }
        }
        if update.is_empty() {
            return;
        }
        let window = self.sessions.window;
        let answers = self.sessions.store.clients(&update, window).await;
        for (wait, answer) in waiting.into_iter().zip(answers) {
            let Some(item) = items.get_mut(wait.item) else {
                continue;
            };
            let client = match answer {
                Some(known) => {
                    let info = ClientInfo {
                        name: Some(known.name),
                        version: known.version,
                    };
                    let context = &contexts[item.context];
                    self.clients
                        .adopt(&clues(&item.event, context), info.clone());
                    info
                }
                None => wait.fallback,
            };
            set_client(&mut item.event, client);
        }
    }

    /// Adds identify events and decides every event's session, asking the store once for
    /// the batch's grouped events.
    async fn decide_sessions(&mut self, items: Vec<Item>, contexts: &[Context]) -> Vec<Event> {
        let mut out: Vec<Event> = Vec::with_capacity(items.len());
        let mut grouped = Vec::new();
        let mut requests = Vec::new();
        // (identify event, the event whose session it shares)
        let mut companions = Vec::new();
        for Item { event, context } in items {
            let context = &contexts[context];
            let user_id = event.user.as_ref().map(|user| user.id.as_str());
            let identify = event
                .user
                .as_ref()
                .is_some_and(|user| self.identities.changed(user))
                .then(|| identify_event(&event, context.at));
            let decision = self.sessions.decide(&SessionClues {
                mcp_session: context.mcp_session.as_deref(),
                session_key: context.session_key.as_deref(),
                user: user_id,
                client: event.client_name.as_deref(),
                at: context.at,
            });
            if let Some(identify) = identify {
                self.counters.recorded(1);
                self.counters.in_worker.fetch_add(1, Relaxed);
                companions.push((out.len(), out.len() + 1));
                out.push(identify);
            }
            let mut event = event;
            match decision {
                Decision::Fixed(session) => event.session_id = session,
                Decision::Group(request) => {
                    grouped.push(out.len());
                    requests.push(request);
                }
            }
            out.push(event);
        }
        if !requests.is_empty() {
            self.assign_groups(&mut out, &grouped, requests).await;
        }
        for (identify, event) in companions {
            let session = out.get(event).and_then(|e| e.session_id.clone());
            if let Some(identify) = out.get_mut(identify) {
                identify.session_id = session;
            }
        }
        out
    }

    /// Asks the store for the grouped events' sessions, in the order the events started
    /// (they finish, and so arrive here, in any order).
    async fn assign_groups(
        &mut self,
        out: &mut [Event],
        grouped: &[usize],
        requests: Vec<SessionRequest>,
    ) {
        let mut order: Vec<(SessionRequest, usize)> =
            requests.into_iter().zip(grouped.iter().copied()).collect();
        order.sort_by_key(|(request, _)| request.at);
        let (sorted, indices): (Vec<SessionRequest>, Vec<usize>) = order.into_iter().unzip();
        let window = self.sessions.window;
        let ids = self.sessions.store.assign(&sorted, window).await;
        for (index, id) in indices.into_iter().zip(ids) {
            if let Some(event) = out.get_mut(index) {
                event.session_id = Some(id);
            }
        }
    }
}

/// What the client ladder looks at for `event` (whose own client info it takes).
fn clues<'a>(event: &'a Event, context: &'a Context) -> ClientClues<'a> {
    ClientClues {
        own: ClientInfo {
            name: event.client_name.clone(),
            version: event.client_version.clone(),
        },
        session: context.mcp_session.as_deref(),
        user: event.user.as_ref().map(|user| user.id.as_str()),
        user_agent: context.user_agent.as_deref(),
        header_name: context.client_header_name.as_deref(),
        header_version: context.client_header_version.as_deref(),
        at: context.at,
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
        session_id: None,
        user: event.user.clone(),
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
    }
}
