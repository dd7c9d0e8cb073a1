//! Deciding each event's session (in the worker): a fixed id (an MCP session, a
//! `session_key`, an isolated event) or a group to look up in the [`SessionStore`].

use std::time::{Duration, SystemTime};

use super::{GuardedStore, SessionMode, SessionRequest};
use crate::event::ids::{derived_id, new_id};
use crate::exchange::Origin;

/// Domain of session ids derived from a `session_key` hook's keys.
const KEY_DOMAIN: &str = "tower-mcp-analytics/session-key";
/// Domain of group keys derived from user + client.
const GROUP_DOMAIN: &str = "tower-mcp-analytics/group";

/// What one event's session will be.
pub(crate) enum Decision {
    /// Known now.
    Fixed(Option<String>),
    /// Ask the store.
    Group(SessionRequest),
}

/// The session rules and the store behind them.
pub(crate) struct Sessions {
    pub(crate) mode: SessionMode,
    pub(crate) window: Duration,
    pub(crate) store: GuardedStore,
}

impl Sessions {
    /// The session of an event from `origin`, made by `user` with `client` (as resolved).
    pub(crate) fn decide(
        &self,
        origin: &Origin,
        user: Option<&str>,
        client: Option<&str>,
    ) -> Decision {
        if self.mode == SessionMode::Backend {
            return Decision::Fixed(None);
        }
        if let Some(key) = &origin.session_key {
            return Decision::Fixed(Some(derived_id("ses", KEY_DOMAIN, key.as_bytes())));
        }
        match (self.mode, &origin.mcp_session) {
            (SessionMode::Auto | SessionMode::Stateful, Some(session)) => {
                Decision::Fixed(Some(session.clone()))
            }
            (SessionMode::Stateful, None) => Decision::Fixed(Some(new_id("ses", origin.at))),
            _ => group(user, client, origin.at),
        }
    }
}

/// Same identified user + same client = one group; anonymous = a session of its own.
fn group(user: Option<&str>, client: Option<&str>, at: SystemTime) -> Decision {
    let Some(user) = user else {
        return Decision::Fixed(Some(new_id("ses", at)));
    };
    let client = client.unwrap_or_default();
    // Lengths first, so that no (user, client) pair can collide with another.
    let material = format!("{}:{user}{}:{client}", user.len(), client.len());
    let key = derived_id("grp", GROUP_DOMAIN, material.as_bytes());
    Decision::Group(SessionRequest::new(key, at))
}
