//! Sessions: which events belong together.
//!
//! Owns the session rules. With an `Mcp-Session-Id` (legacy stateful servers) the MCP
//! session is the session. Otherwise (stateless servers, and every 2026-07-28 server)
//! events are grouped: the same identified user with the same AI client, each event at
//! most the inactivity window after that pair's previous one, is one session; another
//! client is another session; an anonymous event is a session of its own.
//!
//! Grouping state lives behind [`SessionStore`] (in memory by default, bounded) and is
//! consulted by the worker once per batch, never on the request path.

mod assign;
mod memory;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

pub(crate) use assign::{Decision, SessionClues, Sessions};
pub use memory::MemorySessionStore;

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
/// The rule: a request reuses its key's session when it starts at most `window` after the
/// key's last event (or before it); otherwise it opens a new session, with an id of
/// `ses_` + 27 base62 characters (time-sortable, e.g. a KSUID of `at`).
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
///         eprintln!("assigning {} sessions", requests.len());
///         self.0.assign(requests, window)
///     }
/// }
/// ```
pub trait SessionStore: Send + Sync + 'static {
    /// Assigns a session to each request, in order.
    fn assign<'a>(&'a self, requests: &'a [SessionRequest], window: Duration) -> StoreFuture<'a>;
}

/// A session store's failure; the batch's grouped events go out without a `session_id`
/// and the failure is counted in `stats().session_store_errors`.
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
