//! Deciding each event's session (in the worker): a fixed id (an MCP session, a
//! `session_key`, an isolated event) or a group to look up in the [`SessionStore`].

use std::time::{Duration, SystemTime};

use super::{GuardedStore, SessionMode, SessionRequest};
use crate::event::ids::{derived_id, new_id};

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

/// What the session rules look at for one event.
pub(crate) struct SessionClues<'a> {
    /// The derived id of the event's `Mcp-Session-Id` (or of the session its response opened).
    pub(crate) mcp_session: Option<&'a str>,
    pub(crate) session_key: Option<&'a str>,
    pub(crate) user: Option<&'a str>,
    pub(crate) client: Option<&'a str>,
    pub(crate) at: SystemTime,
}

impl Sessions {
    pub(crate) fn decide(&self, clues: &SessionClues<'_>) -> Decision {
        if self.mode == SessionMode::Backend {
            return Decision::Fixed(None);
        }
        if let Some(key) = clues.session_key {
            return Decision::Fixed(Some(derived_id("ses", KEY_DOMAIN, key.as_bytes())));
        }
        let header = clues.mcp_session.map(String::from);
        match (self.mode, header) {
            (SessionMode::Auto | SessionMode::Stateful, Some(session)) => {
                Decision::Fixed(Some(session))
            }
            (SessionMode::Stateful, None) => Decision::Fixed(Some(new_id("ses", clues.at))),
            _ => self.group(clues),
        }
    }

    /// Same identified user + same client = one group; anonymous = a session of its own.
    fn group(&self, clues: &SessionClues<'_>) -> Decision {
        let Some(user) = clues.user else {
            return Decision::Fixed(Some(new_id("ses", clues.at)));
        };
        let client = clues.client.unwrap_or_default();
        // Lengths first, so that no (user, client) pair can collide with another.
        let material = format!("{}:{user}{}:{client}", user.len(), client.len());
        let key = derived_id("grp", GROUP_DOMAIN, material.as_bytes());
        Decision::Group(SessionRequest::new(key, clues.at))
    }
}
