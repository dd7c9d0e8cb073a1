//! Where events live: the [`Store`] trait the collector writes and reads through, the
//! rows it hands back, and [`SqliteStore`], the default.
//!
//! A store owns durability (a commit returns only once the batch is on disk),
//! de-duplication (by batch id and by event id) and the collector's session grouping
//! (same user + same client + gap ≤ the window = one session, whatever the arrival order).
//! It never aggregates for a page: the collector's reports do, on the rows returned here,
//! so another database only has to store and filter.

mod migrations;
mod sqlite;

pub use crate::wire::{IncomingBatch, IncomingEvent};
pub use sqlite::SqliteStore;

use std::sync::Arc;

use serde::Serialize;

/// A store failed (I/O, a full disk, a corrupt file): the request gets a 503.
///
/// ```
/// use mcp_analytics_collector::store::StoreError;
///
/// let error = StoreError("disk full".into());
/// assert_eq!(error.to_string(), "storage error: disk full");
/// ```
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "storage error: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// What storing one batch did.
///
/// ```
/// use mcp_analytics_collector::store::Committed;
///
/// let fresh = Committed { stored: 100, duplicates: 0, replayed: false };
/// assert!(!fresh.replayed);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Committed {
    /// Events newly stored.
    pub stored: usize,
    /// Events already stored under the same id, skipped.
    pub duplicates: usize,
    /// The whole batch had already been stored (a retry); nothing was written.
    pub replayed: bool,
}

/// How an event's session was decided.
///
/// ```
/// use mcp_analytics_collector::store::Grouping;
///
/// assert_eq!(serde_json::to_string(&Grouping::Collector)?, r#""collector""#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Grouping {
    /// The layer named the session (an MCP session, or its own grouping).
    Layer,
    /// The collector grouped it: same user + same client + within the window.
    Collector,
    /// Anonymous and without a session: a session of its own.
    Single,
    /// An `identify` event (a user seen for the first time or changed): kept, but part of
    /// no session and of no page's counts.
    Identify,
}

impl Grouping {
    pub(crate) fn code(self) -> i64 {
        match self {
            Self::Layer => 0,
            Self::Collector => 1,
            Self::Single => 2,
            Self::Identify => 3,
        }
    }

    pub(crate) fn from_code(code: i64) -> Self {
        match code {
            0 => Self::Layer,
            1 => Self::Collector,
            3 => Self::Identify,
            _ => Self::Single,
        }
    }
}

/// The part of a stored event every page works from.
///
/// ```
/// use std::time::Duration;
/// use mcp_analytics_collector::store::{Filter, SqliteStore, Store};
///
/// let store = SqliteStore::open_in_memory(Duration::from_secs(1800))?;
/// for row in store.scan(&Filter { from: 0, to: i64::MAX, ..Filter::default() }, 1000)? {
///     println!("{} {} {:?} {}", row.ts, row.method, row.tool, row.outcome);
/// }
/// # Ok::<(), mcp_analytics_collector::store::StoreError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventRow {
    /// Arrival order, unique: the live tail's cursor.
    pub seq: i64,
    /// The event id.
    pub id: String,
    /// When it started, ms since the Unix epoch.
    pub ts: i64,
    /// `event_type`.
    pub event_type: Arc<str>,
    /// `method`.
    pub method: Arc<str>,
    /// The tool of a `tools/call` (or the resource / prompt name).
    pub tool: Option<Arc<str>>,
    /// `outcome`.
    pub outcome: Arc<str>,
    /// `is_error`.
    pub is_error: bool,
    /// `duration_ms`.
    pub duration_ms: f64,
    /// The client's label (display name, else name).
    pub client: Arc<str>,
    /// The client's self-reported name.
    pub client_name: Option<Arc<str>>,
    /// The user's id.
    pub user_id: Option<Arc<str>>,
    /// The user's name.
    pub user_name: Option<Arc<str>>,
    /// The session it belongs to.
    pub session_id: Arc<str>,
    /// How that session was decided.
    #[serde(skip)]
    pub grouping: Grouping,
    /// `unknown_tool`: a `tools/call` of a tool that was not advertised or that the
    /// server does not know.
    pub unknown_tool: bool,
    /// `model`: the model behind the AI client, when the layer knows it.
    pub model: Option<Arc<str>>,
}

/// Which events a page looks at: a time range and optional filters.
///
/// ```
/// use mcp_analytics_collector::store::Filter;
///
/// let cursor_calls_today = Filter {
///     from: 1_796_000_000_000,
///     to: 1_796_086_400_000,
///     client: Some("Cursor".into()),
///     ..Filter::default()
/// };
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// From this time (ms, inclusive).
    pub from: i64,
    /// To this time (ms, exclusive).
    pub to: i64,
    /// Only this tool.
    pub tool: Option<String>,
    /// Only this client label.
    pub client: Option<String>,
    /// Only this user id.
    pub user: Option<String>,
}

/// A session, summed over the events of a filter.
///
/// ```
/// use std::time::Duration;
/// use mcp_analytics_collector::store::{Filter, SqliteStore, Store};
///
/// let store = SqliteStore::open_in_memory(Duration::from_secs(1800))?;
/// let all = Filter { from: 0, to: i64::MAX, ..Filter::default() };
/// for session in store.sessions(&all, 20)? {
///     println!("{} {:?} {} events", session.session_id, session.user_id, session.events);
/// }
/// # Ok::<(), mcp_analytics_collector::store::StoreError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SessionRow {
    /// The session id.
    pub session_id: String,
    /// The user, if identified.
    pub user_id: Option<String>,
    /// The user's name.
    pub user_name: Option<String>,
    /// The client's label.
    pub client: String,
    /// Its first event's time (ms).
    pub started: i64,
    /// Its last event's time (ms).
    pub ended: i64,
    /// Events.
    pub events: u64,
    /// `tools/call` events.
    pub tool_calls: u64,
    /// Events with `is_error`.
    pub errors: u64,
    /// How the session was decided.
    pub grouped_by: Grouping,
}

/// Names seen in a range, for the filter menus.
///
/// ```
/// use std::time::Duration;
/// use mcp_analytics_collector::store::{Filter, SqliteStore, Store};
///
/// let store = SqliteStore::open_in_memory(Duration::from_secs(1800))?;
/// let names = store.facets(&Filter { from: 0, to: i64::MAX, ..Filter::default() }, 100)?;
/// assert!(names.tools.is_empty());
/// # Ok::<(), mcp_analytics_collector::store::StoreError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Facets {
    /// Tool names.
    pub tools: Vec<String>,
    /// Client labels.
    pub clients: Vec<String>,
    /// User ids.
    pub users: Vec<String>,
}

/// A tool name that `tools/list` answers advertised (`listed_tools`), and the last time
/// one did, in a filter's range.
///
/// ```
/// use std::time::Duration;
/// use mcp_analytics_collector::store::{Filter, SqliteStore, Store};
///
/// let store = SqliteStore::open_in_memory(Duration::from_secs(1800))?;
/// let all = Filter { from: 0, to: i64::MAX, ..Filter::default() };
/// for advertised in store.advertised(&all, 1000)? {
///     println!("{} last advertised at {}", advertised.tool, advertised.last_advertised);
/// }
/// # Ok::<(), mcp_analytics_collector::store::StoreError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Advertised {
    /// The tool's name.
    pub tool: String,
    /// The latest `tools/list` event advertising it (ms).
    pub last_advertised: i64,
}

/// Storage for the collector. Every read but [`Store::event`] leaves out `identify`
/// events ([`Grouping::Identify`]). Reads may run on several threads at once; `commit` and
/// `delete_before` are only ever called from the collector's one writer thread.
///
/// ```
/// use mcp_analytics_collector::store::{Filter, SqliteStore, Store};
///
/// let store = SqliteStore::open_in_memory(std::time::Duration::from_secs(1800))?;
/// let rows = store.scan(&Filter { from: 0, to: i64::MAX, ..Filter::default() }, 1000)?;
/// assert!(rows.is_empty());
/// # Ok::<(), mcp_analytics_collector::store::StoreError>(())
/// ```
pub trait Store: Send + Sync + 'static {
    /// Stores batches in one durable commit, each all or nothing: what each did, or why
    /// that one failed. An `Err` overall means none was stored.
    fn commit(
        &self,
        batches: &[IncomingBatch],
    ) -> Result<Vec<Result<Committed, StoreError>>, StoreError>;
    /// Deletes up to `limit` events that started before `cutoff` (ms), the oldest first;
    /// once fewer than `limit` remain, also the sessions and batch ids older than it.
    /// Returns how many events went.
    fn delete_before(&self, cutoff: i64, limit: usize) -> Result<u64, StoreError>;
    /// Events in the filter, in no particular order: at most `limit` of them.
    fn scan(&self, filter: &Filter, limit: usize) -> Result<Vec<EventRow>, StoreError>;
    /// Every event of one session, in time order.
    fn session(&self, session_id: &str) -> Result<Vec<EventRow>, StoreError>;
    /// The sessions with events in the filter, the most recently started first, at most
    /// `limit`, summed over those events.
    fn sessions(&self, filter: &Filter, limit: usize) -> Result<Vec<SessionRow>, StoreError>;
    /// One event's row and its JSON as it was sent.
    fn event(&self, id: &str) -> Result<Option<(EventRow, String)>, StoreError>;
    /// Events that arrived after `after` (a `seq`) matching the filter's names (not its
    /// range), oldest first, at most `limit`; without `after`, the newest `limit`.
    fn tail(
        &self,
        after: Option<i64>,
        limit: usize,
        filter: &Filter,
    ) -> Result<Vec<EventRow>, StoreError>;
    /// Tool, client and user names in the filter's range (its names are ignored).
    fn facets(&self, filter: &Filter, limit: usize) -> Result<Facets, StoreError>;
    /// The names in the `listed_tools` of the `tools/list` events in the filter's range,
    /// client and user, each once with the last time it was advertised: the most recently
    /// advertised first, at most `limit`. The filter's tool, if any, keeps that name only.
    fn advertised(&self, filter: &Filter, limit: usize) -> Result<Vec<Advertised>, StoreError>;
    /// The `missing_capability` events in the filter that carry a `user_intent` (what the
    /// agent was looking for), newest first, at most `limit`, each with that intent (at
    /// most 1,024 characters).
    fn asks(&self, filter: &Filter, limit: usize) -> Result<Vec<(EventRow, String)>, StoreError>;
    /// The first and last event times stored, if any.
    fn span(&self) -> Result<Option<(i64, i64)>, StoreError>;
    /// How many events are stored.
    fn count(&self) -> Result<u64, StoreError>;
}
