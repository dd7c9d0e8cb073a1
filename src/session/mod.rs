//! Sessions: which events belong together.
//!
//! Owns the session rules. With an `Mcp-Session-Id` (legacy stateful servers) the MCP
//! session is the session. Otherwise (stateless servers, and every 2026-07-28 server)
//! events are grouped: the same identified user with the same AI client, each event at
//! most the inactivity window after that pair's previous one, is one session; another
//! client is another session; an anonymous event is a session of its own.
//!
//! Grouping state lives behind [`SessionStore`] (in memory by default, bounded; on Redis
//! for several instances) and is consulted by the worker once per batch, never on the
//! request path. A shared store that fails or is slow never costs an event: the batch is
//! decided in memory instead ([`guard`]). Never touches a request.

mod assign;
mod clients;
mod config;
mod guard;
mod history;
mod memory;
#[cfg(feature = "redis")]
mod redis_store;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

pub(crate) use assign::{Decision, Sessions};
pub use clients::{ClientNote, ClientQuery, ClientUpdate, ClientsFuture, SharedClient};
pub(crate) use config::SessionConfig;
pub(crate) use guard::GuardedStore;
pub use memory::MemorySessionStore;
#[cfg(feature = "redis")]
pub use redis_store::RedisSessionStore;

/// How events get their `session_id`.
///
/// ```
/// use tower_mcp_analytics::{AnalyticsLayer, SessionMode};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = AnalyticsLayer::builder().session_mode(SessionMode::Stateless).build();
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionMode {
    /// A request with `Mcp-Session-Id` belongs to that MCP session; everything else is
    /// grouped by user + client + inactivity window.
    #[default]
    Auto,
    /// Always group by user + client + inactivity window, ignoring `Mcp-Session-Id`.
    Stateless,
    /// `Mcp-Session-Id` only; a request without it is a session of its own.
    Stateful,
    /// Leave `session_id` empty and let a backend group events (every event still carries
    /// its user and client).
    Backend,
}

/// One event asking for its session: the grouping key (user + client, as an opaque
/// fixed-length string) and when the event started.
///
/// ```
/// use std::time::SystemTime;
/// use tower_mcp_analytics::SessionRequest;
///
/// let request = SessionRequest::new("grp_0123", SystemTime::now());
/// assert_eq!(request.key, "grp_0123");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionRequest {
    /// The group: the same key is the same user with the same client.
    pub key: String,
    /// When the event started (the request's arrival).
    pub at: SystemTime,
}

impl SessionRequest {
    /// A request for `key` at `at`.
    ///
    /// ```
    /// # use tower_mcp_analytics::SessionRequest;
    /// let request = SessionRequest::new("k", std::time::SystemTime::UNIX_EPOCH);
    /// ```
    pub fn new(key: impl Into<String>, at: SystemTime) -> Self {
        Self {
            key: key.into(),
            at,
        }
    }
}

/// The future a [`SessionStore`] returns: one session id per request, in order.
pub type StoreFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<String>, StoreError>> + Send + 'a>>;

/// Where grouping state lives. One call assigns a whole batch (so a networked store costs
/// one round trip per batch); requests for the same key come in time order and must be
/// assigned in order.
///
/// The rule: a request joins one of its key's recent sessions when it starts within that
/// session's span widened by `window` (from `window` before the session's first event to
/// `window` after its last), the nearest one when several qualify; otherwise it opens a
/// new session, with an id of `ses_` + 27 base62 characters (time-sortable, e.g. a KSUID
/// of `at`). A session's span only ever widens, so events that arrive late (another
/// instance flushed first) still find the session they belong to. For requests arriving in
/// time order this is the plain rule: at most `window` after the previous event.
///
/// A store that several instances share also remembers which AI client opened a legacy
/// session ([`clients`](SessionStore::clients)); the default keeps that in each process.
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_analytics::{SessionRequest, SessionStore, StoreFuture, MemorySessionStore};
///
/// /// Delegates to the memory store and logs each batch's size.
/// struct Logged(MemorySessionStore);
///
/// impl SessionStore for Logged {
///     fn assign<'a>(&'a self, requests: &'a [SessionRequest], window: Duration) -> StoreFuture<'a> {
///         tracing::debug!("assigning {} sessions", requests.len());
///         self.0.assign(requests, window)
///     }
/// }
/// ```
pub trait SessionStore: Send + Sync + 'static {
    /// Assigns a session to each request, in order.
    fn assign<'a>(&'a self, requests: &'a [SessionRequest], window: Duration) -> StoreFuture<'a>;

    /// Shares legacy clients between instances: records the clients `update` learnt,
    /// forgets the ended sessions, and answers each query with the first of its keys whose
    /// client was learnt at most `window` before the query (refreshing it), or `None`.
    ///
    /// Called only for stores set with
    /// [`session_store`](crate::AnalyticsLayerBuilder::session_store), and only for
    /// batches that learnt, forgot or missed a client. The default shares nothing: every
    /// query is answered `None` and each process keeps its own memory.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use tower_mcp_analytics::{ClientUpdate, MemorySessionStore, SessionStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let update = ClientUpdate::default();
    /// let answers = MemorySessionStore::new().clients(&update, Duration::from_secs(60)).await;
    /// assert!(answers.unwrap().is_empty());
    /// # }
    /// ```
    fn clients<'a>(&'a self, update: &'a ClientUpdate, window: Duration) -> ClientsFuture<'a> {
        let _ = window;
        Box::pin(std::future::ready(Ok(vec![None; update.queries.len()])))
    }

    /// Whether other processes share this store's state (default `true`). The layer keeps
    /// a shared store's decisions in memory too, decides in memory while it fails, and
    /// asks it about legacy clients; a store that is not shared is only asked to assign.
    ///
    /// ```
    /// use tower_mcp_analytics::{MemorySessionStore, SessionStore};
    ///
    /// assert!(!MemorySessionStore::new().shared());
    /// ```
    fn shared(&self) -> bool {
        true
    }
}

/// A session store's failure; the batch is decided in memory instead and the failure is
/// counted in `stats().session_store_errors`.
///
/// ```
/// use tower_mcp_analytics::StoreError;
///
/// assert_eq!(StoreError::new("redis down").to_string(), "redis down");
/// ```
#[derive(Debug)]
pub struct StoreError(Box<dyn std::error::Error + Send + Sync>);

impl StoreError {
    /// An error with a message.
    ///
    /// ```
    /// let _ = tower_mcp_analytics::StoreError::new("timed out");
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into().into())
    }

    /// An error wrapping another.
    ///
    /// ```
    /// let _ = tower_mcp_analytics::StoreError::from_error(std::io::Error::other("reset"));
    /// ```
    pub fn from_error(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error))
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Whether a request at `at` continues a group whose last event was at `last`.
pub(crate) fn continues(last: SystemTime, at: SystemTime, window: Duration) -> bool {
    at.duration_since(last).map_or(true, |gap| gap <= window)
}
