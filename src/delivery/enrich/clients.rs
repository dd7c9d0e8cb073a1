//! Which AI client an event came from.
//!
//! Owns the resolution ladder, first hit wins, each field narrowed to a string:
//! 1. `_meta` clientInfo of the request itself (2026-07-28), or the `initialize` params;
//! 2. the `initialize` of the same legacy MCP session (learnt from the session its
//!    response opened; forgotten on DELETE, on 404, or after the inactivity window);
//! 3. legacy stateless servers: the most recent `initialize` of the same identified user
//!    with the same `User-Agent`, within the inactivity window (a heuristic: one user
//!    running two clients that send the same User-Agent cannot be told apart);
//! 4. `x-mcp-client-name` / `x-mcp-client-version` headers;
//! 5. `User-Agent` read as `Name/Version`.
//!
//! Rungs 2 and 3 need the `initialize` that named the client. Several instances share
//! what they learn through a shared session store: a rung that misses here becomes a
//! [`Missed`] with the store keys to ask, and what the store knew is adopted here.
//!
//! Bounded: both maps hold at most `capacity` entries, least recently used evicted. Runs
//! in the worker only.

use std::num::NonZeroUsize;
use std::time::{Duration, SystemTime};

use lru::LruCache;

use crate::delivery::build::ClientInfo;
use crate::event::ids::derived_id;
use crate::exchange::Origin;

/// Domain of the store keys of a legacy session's client.
const SESSION_DOMAIN: &str = "tower-mcp-analytics/client-session";
/// Domain of the store keys of a user + User-Agent's client.
const AGENT_DOMAIN: &str = "tower-mcp-analytics/client-agent";

struct Learnt {
    info: ClientInfo,
    at: SystemTime,
}

/// A client not found on this instance: where a shared store may know it, and what the
/// lower rungs give meanwhile.
pub(crate) struct Missed {
    /// Store keys to try, in ladder order.
    pub(crate) keys: Vec<String>,
    /// Rungs 4 and 5.
    pub(crate) fallback: ClientInfo,
}

/// How the ladder ended on this instance.
pub(crate) enum Resolution {
    Known(ClientInfo),
    Missed(Missed),
}

/// The worker's memory of which client initialised which session.
pub(crate) struct ClientDirectory {
    by_session: LruCache<String, Learnt>,
    by_user_agent: LruCache<(String, String), Learnt>,
    window: Duration,
}

impl ClientDirectory {
    pub(crate) fn new(capacity: NonZeroUsize, window: Duration) -> Self {
        Self {
            by_session: LruCache::new(capacity),
            by_user_agent: LruCache::new(capacity),
            window,
        }
    }

    /// Remembers the client an `initialize` named (`own`); returns the store key it goes
    /// under.
    pub(crate) fn learn(
        &mut self,
        own: &ClientInfo,
        origin: &Origin,
        user: Option<&str>,
    ) -> Option<String> {
        if !own.known() {
            return None;
        }
        self.adopt(origin, user, own.clone())
    }

    /// Remembers `info` as the client of `origin`'s session, or of its user + User-Agent;
    /// returns the store key it goes under.
    pub(crate) fn adopt(
        &mut self,
        origin: &Origin,
        user: Option<&str>,
        info: ClientInfo,
    ) -> Option<String> {
        let learnt = Learnt {
            info,
            at: origin.at,
        };
        if let Some(session) = &origin.mcp_session {
            self.by_session.put(session.clone(), learnt);
            Some(session_key(session))
        } else if let Some(user) = user {
            let agent = origin.user_agent.as_deref().unwrap_or_default();
            self.by_user_agent
                .put((user.to_owned(), agent.to_owned()), learnt);
            Some(agent_key(user, agent))
        } else {
            None
        }
    }

    /// The session ended (DELETE, or the server answered 404 for it); returns the store
    /// key to forget.
    pub(crate) fn forget_session(&mut self, session: &str) -> String {
        self.by_session.pop(session);
        session_key(session)
    }

    /// The client of an event, by the ladder, falling through to rungs 4 and 5.
    #[cfg(test)]
    pub(crate) fn resolve(
        &mut self,
        own: &ClientInfo,
        origin: &Origin,
        user: Option<&str>,
    ) -> ClientInfo {
        match self.resolve_here(own, origin, user) {
            Resolution::Known(info) => info,
            Resolution::Missed(missed) => missed.fallback,
        }
    }

    /// The client of an event (`own`: what its message named) as far as this instance
    /// knows.
    pub(crate) fn resolve_here(
        &mut self,
        own: &ClientInfo,
        origin: &Origin,
        user: Option<&str>,
    ) -> Resolution {
        if own.known() {
            return Resolution::Known(own.clone());
        }
        let window = self.window;
        let at = origin.at;
        let fresh = |learnt: &mut Learnt| {
            let recent = at
                .duration_since(learnt.at)
                .map_or(true, |gap| gap <= window);
            if recent && at > learnt.at {
                learnt.at = at;
            }
            recent.then(|| learnt.info.clone())
        };
        let session = origin.mcp_session.as_deref();
        if let Some(session) = session
            && let Some(info) = self.by_session.get_mut(session).and_then(fresh)
        {
            return Resolution::Known(info);
        }
        let user_agent = origin.user_agent.as_deref();
        let agent = user_agent.unwrap_or_default();
        if let Some(user) = user {
            let key = (user.to_owned(), agent.to_owned());
            if let Some(info) = self.by_user_agent.get_mut(&key).and_then(fresh) {
                return Resolution::Known(info);
            }
        }
        let fallback = match origin.client_header_name.as_deref() {
            Some(name) => ClientInfo {
                name: Some(name.to_owned()),
                version: origin.client_header_version.as_deref().map(String::from),
            },
            None => user_agent
                .map(ClientInfo::from_user_agent)
                .unwrap_or_default(),
        };
        let keys: Vec<String> = session
            .map(session_key)
            .into_iter()
            .chain(user.map(|user| agent_key(user, agent)))
            .collect();
        if keys.is_empty() {
            return Resolution::Known(fallback);
        }
        Resolution::Missed(Missed { keys, fallback })
    }
}

/// The store key of a legacy session's client.
pub(super) fn session_key(session: &str) -> String {
    derived_id("cli", SESSION_DOMAIN, session.as_bytes())
}

/// The store key of a user + User-Agent's client (lengths first: no two pairs collide).
fn agent_key(user: &str, agent: &str) -> String {
    let material = format!("{}:{user}{}:{agent}", user.len(), agent.len());
    derived_id("cli", AGENT_DOMAIN, material.as_bytes())
}

/// A display name for well-known clients' self-reported names.
pub(crate) fn display_name(name: &str) -> Option<&'static str> {
    let known: &[(&str, &str)] = &[
        ("claude-ai", "Claude Desktop"),
        ("claude-code", "Claude Code"),
        ("cursor-vscode", "Cursor"),
        ("Visual Studio Code", "VS Code"),
    ];
    known
        .iter()
        .find(|(raw, _)| *raw == name)
        .map(|(_, display)| *display)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(30 * 60);

    fn origin(at: u64) -> Origin {
        Origin::new(SystemTime::UNIX_EPOCH + Duration::from_secs(at))
    }

    fn unnamed() -> ClientInfo {
        ClientInfo::default()
    }

    fn named(name: &str) -> ClientInfo {
        ClientInfo {
            name: Some(name.into()),
            version: Some("1".into()),
        }
    }

    fn directory() -> ClientDirectory {
        ClientDirectory::new(NonZeroUsize::new(8).unwrap_or(NonZeroUsize::MIN), WINDOW)
    }

    #[test]
    fn own_client_info_wins() {
        let mut dir = directory();
        let mut c = origin(0);
        c.client_header_name = Some("other".into());
        assert_eq!(
            dir.resolve(&named("cursor-vscode"), &c, None),
            named("cursor-vscode")
        );
    }

    #[test]
    fn a_session_remembers_its_initialize_until_deleted_or_idle() {
        let mut dir = directory();
        let mut init = origin(0);
        init.mcp_session = Some("ses_a".into());
        dir.learn(&named("claude-ai"), &init, None);
        let mut later = origin(600);
        later.mcp_session = Some("ses_a".into());
        assert_eq!(dir.resolve(&unnamed(), &later, None), named("claude-ai"));
        let mut idle = origin(600 + 31 * 60);
        idle.mcp_session = Some("ses_a".into());
        assert_eq!(dir.resolve(&unnamed(), &idle, None), unnamed());
        dir.learn(&named("claude-ai"), &init, None);
        dir.forget_session("ses_a");
        assert_eq!(dir.resolve(&unnamed(), &later, None), unnamed());
    }

    #[test]
    fn stateless_initialize_is_matched_by_user_and_user_agent() {
        let mut dir = directory();
        let mut init = origin(0);
        init.user_agent = Some("Claude/1.0".into());
        dir.learn(&named("claude-ai"), &init, Some("alice"));
        let mut call = origin(60);
        call.user_agent = Some("Claude/1.0".into());
        assert_eq!(
            dir.resolve(&unnamed(), &call, Some("alice")),
            named("claude-ai")
        );
        assert_eq!(
            dir.resolve(&unnamed(), &call, Some("bob")).name.as_deref(),
            Some("Claude"),
            "falls to the User-Agent"
        );
    }

    #[test]
    fn headers_then_user_agent() {
        let mut dir = directory();
        let mut c = origin(0);
        c.client_header_name = Some("my-client".into());
        c.client_header_version = Some("2.0".into());
        c.user_agent = Some("curl/8.0".into());
        assert_eq!(
            dir.resolve(&unnamed(), &c, None).name.as_deref(),
            Some("my-client")
        );
        c.client_header_name = None;
        assert_eq!(
            dir.resolve(&unnamed(), &c, None),
            ClientInfo {
                name: Some("curl".into()),
                version: Some("8.0".into())
            }
        );
        c.user_agent = Some("  ".into());
        assert_eq!(dir.resolve(&unnamed(), &c, None), unnamed());
    }

    #[test]
    fn known_clients_have_display_names() {
        assert_eq!(display_name("claude-ai"), Some("Claude Desktop"));
        assert_eq!(display_name("cursor-vscode"), Some("Cursor"));
        assert_eq!(display_name("unknown"), None);
    }
}
