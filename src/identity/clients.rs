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

use crate::event::ids::derived_id;

/// Domain of the store keys of a legacy session's client.
const SESSION_DOMAIN: &str = "tower-mcp-analytics/client-session";
/// Domain of the store keys of a user + User-Agent's client.
const AGENT_DOMAIN: &str = "tower-mcp-analytics/client-agent";

/// A client's self-reported name and version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ClientInfo {
    pub(crate) name: Option<String>,
    pub(crate) version: Option<String>,
}

impl ClientInfo {
    fn known(&self) -> bool {
        self.name.is_some()
    }
}

/// What the ladder looks at for one event.
pub(crate) struct ClientClues<'a> {
    pub(crate) own: ClientInfo,
    /// Derived id of the legacy MCP session.
    pub(crate) session: Option<&'a str>,
    pub(crate) user: Option<&'a str>,
    pub(crate) user_agent: Option<&'a str>,
    pub(crate) header_name: Option<&'a str>,
    pub(crate) header_version: Option<&'a str>,
    pub(crate) at: SystemTime,
}

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

    /// Remembers the client an `initialize` named; returns the store key it goes under.
    pub(crate) fn learn(&mut self, clues: &ClientClues<'_>) -> Option<String> {
        if !clues.own.known() {
            return None;
        }
        self.adopt(clues, clues.own.clone())
    }

    /// Remembers `info` as the client of `clues`' session, or of its user + User-Agent;
    /// returns the store key it goes under.
    pub(crate) fn adopt(&mut self, clues: &ClientClues<'_>, info: ClientInfo) -> Option<String> {
        let learnt = Learnt { info, at: clues.at };
        if let Some(session) = clues.session {
            self.by_session.put(session.to_owned(), learnt);
            Some(session_key(session))
        } else if let Some(user) = clues.user {
            let agent = clues.user_agent.unwrap_or_default();
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
    pub(crate) fn resolve(&mut self, clues: &ClientClues<'_>) -> ClientInfo {
        match self.resolve_here(clues) {
            Resolution::Known(info) => info,
            Resolution::Missed(missed) => missed.fallback,
        }
    }

    /// The client of an event as far as this instance knows.
    pub(crate) fn resolve_here(&mut self, clues: &ClientClues<'_>) -> Resolution {
        if clues.own.known() {
            return Resolution::Known(clues.own.clone());
        }
        let window = self.window;
        let fresh = |learnt: &mut Learnt| {
            let recent = clues
                .at
                .duration_since(learnt.at)
                .map_or(true, |gap| gap <= window);
            if recent && clues.at > learnt.at {
                learnt.at = clues.at;
            }
            recent.then(|| learnt.info.clone())
        };
        if let Some(session) = clues.session
            && let Some(info) = self.by_session.get_mut(session).and_then(fresh)
        {
            return Resolution::Known(info);
        }
        let agent = clues.user_agent.unwrap_or_default();
        if let Some(user) = clues.user {
            let key = (user.to_owned(), agent.to_owned());
            if let Some(info) = self.by_user_agent.get_mut(&key).and_then(fresh) {
                return Resolution::Known(info);
            }
        }
        let fallback = match clues.header_name {
            Some(name) => ClientInfo {
                name: Some(name.to_owned()),
                version: clues.header_version.map(String::from),
            },
            None => clues.user_agent.map(parse_user_agent).unwrap_or_default(),
        };
        let keys: Vec<String> = clues
            .session
            .map(session_key)
            .into_iter()
            .chain(clues.user.map(|user| agent_key(user, agent)))
            .collect();
        if keys.is_empty() {
            return Resolution::Known(fallback);
        }
        Resolution::Missed(Missed { keys, fallback })
    }
}

/// The store key of a legacy session's client.
fn session_key(session: &str) -> String {
    derived_id("cli", SESSION_DOMAIN, session.as_bytes())
}

/// The store key of a user + User-Agent's client (lengths first: no two pairs collide).
fn agent_key(user: &str, agent: &str) -> String {
    let material = format!("{}:{user}{}:{agent}", user.len(), agent.len());
    derived_id("cli", AGENT_DOMAIN, material.as_bytes())
}

/// The first product of a `User-Agent`: `Name/Version (comment) ...`.
fn parse_user_agent(agent: &str) -> ClientInfo {
    let product = agent.split_whitespace().next().unwrap_or_default();
    let (name, version) = match product.split_once('/') {
        Some((name, version)) => (name, (!version.is_empty()).then(|| version.to_owned())),
        None => (product, None),
    };
    ClientInfo {
        name: (!name.is_empty()).then(|| name.to_owned()),
        version,
    }
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

    fn clues<'a>(at: u64) -> ClientClues<'a> {
        ClientClues {
            own: ClientInfo::default(),
            session: None,
            user: None,
            user_agent: None,
            header_name: None,
            header_version: None,
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(at),
        }
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
        let mut c = clues(0);
        c.own = named("cursor-vscode");
        c.header_name = Some("other");
        assert_eq!(dir.resolve(&c), named("cursor-vscode"));
    }

    #[test]
    fn a_session_remembers_its_initialize_until_deleted_or_idle() {
        let mut dir = directory();
        let mut init = clues(0);
        init.session = Some("ses_a");
        init.own = named("claude-ai");
        dir.learn(&init);
        let mut later = clues(600);
        later.session = Some("ses_a");
        assert_eq!(dir.resolve(&later), named("claude-ai"));
        let mut idle = clues(600 + 31 * 60);
        idle.session = Some("ses_a");
        assert_eq!(dir.resolve(&idle), ClientInfo::default());
        dir.learn(&init);
        dir.forget_session("ses_a");
        assert_eq!(dir.resolve(&later), ClientInfo::default());
    }

    #[test]
    fn stateless_initialize_is_matched_by_user_and_user_agent() {
        let mut dir = directory();
        let mut init = clues(0);
        init.user = Some("alice");
        init.user_agent = Some("Claude/1.0");
        init.own = named("claude-ai");
        dir.learn(&init);
        let mut call = clues(60);
        call.user = Some("alice");
        call.user_agent = Some("Claude/1.0");
        assert_eq!(dir.resolve(&call), named("claude-ai"));
        call.user = Some("bob");
        assert_eq!(
            dir.resolve(&call).name.as_deref(),
            Some("Claude"),
            "falls to the User-Agent"
        );
    }

    #[test]
    fn headers_then_user_agent() {
        let mut dir = directory();
        let mut c = clues(0);
        c.header_name = Some("my-client");
        c.header_version = Some("2.0");
        c.user_agent = Some("curl/8.0");
        assert_eq!(dir.resolve(&c).name.as_deref(), Some("my-client"));
        c.header_name = None;
        assert_eq!(
            dir.resolve(&c),
            ClientInfo {
                name: Some("curl".into()),
                version: Some("8.0".into())
            }
        );
        c.user_agent = Some("  ");
        assert_eq!(dir.resolve(&c), ClientInfo::default());
    }

    #[test]
    fn known_clients_have_display_names() {
        assert_eq!(display_name("claude-ai"), Some("Claude Desktop"));
        assert_eq!(display_name("cursor-vscode"), Some("Cursor"));
        assert_eq!(display_name("unknown"), None);
    }
}
