//! What a shared [`SessionStore`](super::SessionStore) keeps of legacy AI clients: the
//! client named by the `initialize` of an MCP session (or, on a stateless legacy server,
//! of a user with a given `User-Agent`), so that a call landing on another instance than
//! its `initialize` still names its client.
//!
//! Owns the exchange's types only. Keys are opaque digests: no session id, user id or
//! `User-Agent` reaches the store as it was sent. Never decides anything.

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use super::StoreError;

/// A client learnt from an `initialize`: under `key`, `name` and `version`, at `at`.
///
/// ```
/// use std::time::SystemTime;
/// use tower_mcp_analytics::ClientNote;
///
/// let note = ClientNote::new("cli_0123", "claude-ai", Some("1.0".into()), SystemTime::now());
/// assert_eq!(note.name, "claude-ai");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientNote {
    /// The opaque key the client is known by.
    pub key: String,
    /// The client's self-reported name.
    pub name: String,
    /// The client's self-reported version.
    pub version: Option<String>,
    /// When the `initialize` started.
    pub at: SystemTime,
}

impl ClientNote {
    /// A note of `name` (and `version`) under `key` at `at`.
    ///
    /// ```
    /// # use tower_mcp_analytics::ClientNote;
    /// let note = ClientNote::new("k", "cursor-vscode", None, std::time::SystemTime::UNIX_EPOCH);
    /// ```
    pub fn new(
        key: impl Into<String>,
        name: impl Into<String>,
        version: Option<String>,
        at: SystemTime,
    ) -> Self {
        Self {
            key: key.into(),
            name: name.into(),
            version,
            at,
        }
    }
}

/// An event asking for its client: the keys to try, in order, and when it started.
///
/// ```
/// use std::time::SystemTime;
/// use tower_mcp_analytics::ClientQuery;
///
/// let query = ClientQuery::new(vec!["cli_session".into(), "cli_agent".into()], SystemTime::now());
/// assert_eq!(query.keys.len(), 2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientQuery {
    /// Keys to try; the first that names a fresh client answers.
    pub keys: Vec<String>,
    /// When the event started.
    pub at: SystemTime,
}

impl ClientQuery {
    /// A query of `keys` at `at`.
    ///
    /// ```
    /// # use tower_mcp_analytics::ClientQuery;
    /// let query = ClientQuery::new(vec!["k".into()], std::time::SystemTime::UNIX_EPOCH);
    /// ```
    pub fn new(keys: Vec<String>, at: SystemTime) -> Self {
        Self { keys, at }
    }
}

/// One batch's client business with a shared store: what was learnt, which sessions
/// ended, and which events ask for their client (answered in order).
///
/// ```
/// use std::time::SystemTime;
/// use tower_mcp_analytics::{ClientNote, ClientQuery, ClientUpdate};
///
/// let mut update = ClientUpdate::default();
/// update.learnt.push(ClientNote::new("k", "claude-ai", None, SystemTime::UNIX_EPOCH));
/// update.queries.push(ClientQuery::new(vec!["k".into()], SystemTime::UNIX_EPOCH));
/// assert!(!update.is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientUpdate {
    /// Clients to remember (a newer note under the same key wins).
    pub learnt: Vec<ClientNote>,
    /// Keys to forget (the session was deleted, or the server no longer knows it).
    pub forgotten: Vec<String>,
    /// Events asking for their client.
    pub queries: Vec<ClientQuery>,
}

impl ClientUpdate {
    /// True when there is nothing to tell or ask.
    ///
    /// ```
    /// assert!(tower_mcp_analytics::ClientUpdate::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.learnt.is_empty() && self.forgotten.is_empty() && self.queries.is_empty()
    }
}

/// A client a shared store knew.
///
/// ```
/// use tower_mcp_analytics::SharedClient;
///
/// let client = SharedClient::new("claude-ai", Some("1.0".into()));
/// assert_eq!(client.version.as_deref(), Some("1.0"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedClient {
    /// The client's self-reported name.
    pub name: String,
    /// The client's self-reported version.
    pub version: Option<String>,
}

impl SharedClient {
    /// A client named `name` (and `version`).
    ///
    /// ```
    /// let client = tower_mcp_analytics::SharedClient::new("cursor-vscode", None);
    /// ```
    pub fn new(name: impl Into<String>, version: Option<String>) -> Self {
        Self {
            name: name.into(),
            version,
        }
    }
}

/// The future [`SessionStore::clients`](super::SessionStore::clients) returns: one answer
/// per query, in order.
pub type ClientsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<Option<SharedClient>>, StoreError>> + Send + 'a>>;
