//! The worker's stage between building events and delivering them: which AI client, which
//! user (and an identify event when a user is new or changed), which session.
//!
//! Owns the stateful part of analytics, all of it bounded and all of it in the worker:
//! the client directory, the identity cache and the session store (one store call per
//! batch). Never runs on the request path; a failing store costs the batch's grouped
//! events their `session_id`, counted, never the events themselves.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crate::delivery::Counters;
use crate::event::Event;
use crate::event::build::{Built, mcp_session_id};
use crate::event::ids::new_id;
use crate::identity::cache::IdentityCache;
use crate::identity::clients::{ClientClues, ClientDirectory, ClientInfo, display_name};
use crate::session::{Decision, SessionClues, Sessions};

/// Client, identity and session state.
pub(crate) struct Enricher {
    clients: ClientDirectory,
    identities: IdentityCache,
    sessions: Sessions,
    counters: Arc<Counters>,
}

impl Enricher {
    pub(crate) fn new(sessions: Sessions, capacity: NonZeroUsize, counters: Arc<Counters>) -> Self {
        Self {
            clients: ClientDirectory::new(capacity, sessions.window),
            identities: IdentityCache::new(capacity),
            sessions,
            counters,
        }
    }

    /// A client ended its MCP session (DELETE with `Mcp-Session-Id`).
    pub(crate) fn session_ended(&mut self, raw: &str) {
        self.clients.forget_session(&mcp_session_id(raw));
    }

    /// Fills in client, user and session, adding identify events where a user is new or
    /// changed (they are counted as recorded and as in the worker's hands).
    pub(crate) async fn enrich(&mut self, exchanges: Vec<Built>) -> Vec<Event> {
        let mut out: Vec<Event> = Vec::new();
        let mut grouped = Vec::new();
        let mut requests = Vec::new();
        // (identify event, the event whose session it shares)
        let mut companions = Vec::new();
        for Built { events, context } in exchanges {
            if context.hook_failed {
                // A tags or properties hook panicked: these events are not sent half-made.
                let n = events.len() as u64;
                self.counters
                    .dropped(crate::delivery::DropReason::HookFailed, n);
                self.counters.in_worker.fetch_sub(n, Relaxed);
                continue;
            }
            if context.status == Some(http::StatusCode::NOT_FOUND)
                && let Some(session) = &context.mcp_session
            {
                self.clients.forget_session(session);
            }
            for mut event in events {
                let user_id = event.user.as_ref().map(|user| user.id.clone());
                let clues = ClientClues {
                    own: ClientInfo {
                        name: event.client_name.take(),
                        version: event.client_version.take(),
                    },
                    session: context.mcp_session.as_deref(),
                    user: user_id.as_deref(),
                    user_agent: context.user_agent.as_deref(),
                    header_name: context.client_header_name.as_deref(),
                    header_version: context.client_header_version.as_deref(),
                    at: context.at,
                };
                if event.method == "initialize" {
                    self.clients.learn(&clues);
                }
                let client = self.clients.resolve(&clues);
                event.client_display_name = client
                    .name
                    .as_deref()
                    .and_then(display_name)
                    .map(String::from);
                event.client_name = client.name;
                event.client_version = client.version;

                let identify = event
                    .user
                    .as_ref()
                    .is_some_and(|user| self.identities.changed(user))
                    .then(|| identify_event(&event, context.at));
                let decision = self.sessions.decide(&SessionClues {
                    mcp_session: context.mcp_session.as_deref(),
                    session_key: context.session_key.as_deref(),
                    user: user_id.as_deref(),
                    client: event.client_name.as_deref(),
                    at: context.at,
                });
                if let Some(identify) = identify {
                    self.counters.recorded(1);
                    self.counters.in_worker.fetch_add(1, Relaxed);
                    companions.push((out.len(), out.len() + 1));
                    out.push(identify);
                }
                match decision {
                    Decision::Fixed(session) => event.session_id = session,
                    Decision::Group(request) => {
                        grouped.push(out.len());
                        requests.push(request);
                    }
                }
                out.push(event);
            }
        }
        if !requests.is_empty() {
            self.assign_groups(&mut out, &grouped, &requests).await;
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
        &self,
        out: &mut [Event],
        grouped: &[usize],
        requests: &[crate::SessionRequest],
    ) {
        let mut order: Vec<usize> = (0..requests.len()).collect();
        order.sort_by_key(|&k| requests[k].at);
        let sorted: Vec<crate::SessionRequest> =
            order.iter().map(|&k| requests[k].clone()).collect();
        let sessions = &self.sessions;
        match sessions.store.assign(&sorted, sessions.window).await {
            Ok(ids) if ids.len() == sorted.len() => {
                for (k, id) in order.into_iter().zip(ids) {
                    if let Some(event) = grouped.get(k).and_then(|&index| out.get_mut(index)) {
                        event.session_id = Some(id);
                    }
                }
            }
            Ok(ids) => {
                tracing::warn!(
                    asked = sorted.len(),
                    got = ids.len(),
                    "mcp analytics session store answered the wrong number of sessions"
                );
                self.counters.session_store_failed();
            }
            Err(error) => {
                tracing::warn!(%error, "mcp analytics session store failed; sessions left empty");
                self.counters.session_store_failed();
            }
        }
    }
}

/// The identify event recording `event`'s user as new or changed.
fn identify_event(event: &Event, at: std::time::SystemTime) -> Event {
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
    }
}
