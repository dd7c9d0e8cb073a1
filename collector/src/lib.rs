//! A self-hosted collector for `tower-mcp-analytics`: it takes the layer's event batches
//! (`POST /v1/events`), stores them durably in SQLite, groups sessions for events that
//! arrive without one, and serves a dashboard at `/` with a JSON API under `/api/`.
//!
//! Run it as a binary (`mcp-analytics-collector --help`) or embed it:
//!
//! ```no_run
//! use mcp_analytics_collector::Collector;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let collector = Collector::builder().database("analytics.db").build()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8700").await?;
//! collector.serve(listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod store;

mod api;
mod auth;
mod dashboard;
mod ingest;
mod report;
mod wire;
mod writer;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};

use crate::auth::Secret;
use crate::ingest::Ingest;
use crate::store::{SqliteStore, Store, StoreError};
use crate::writer::Writer;

/// How often old events are deleted.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// Events deleted per writer job: ingest commits run between chunks.
const RETENTION_CHUNK: usize = 5_000;

/// A collector ready to serve: its store, its writer thread and its routes.
///
/// ```
/// use mcp_analytics_collector::Collector;
///
/// let collector = Collector::builder().in_memory().build()?;
/// let app: axum::Router = collector.router();
/// # Ok::<(), mcp_analytics_collector::store::StoreError>(())
/// ```
pub struct Collector {
    store: Arc<dyn Store>,
    writer: Writer,
    router: Router,
    retention_days: u32,
}

/// Settings of a [`Collector`]; every one has a default.
///
/// ```
/// use std::time::Duration;
/// use mcp_analytics_collector::Collector;
///
/// let collector = Collector::builder()
///     .in_memory()
///     .api_key("sk_ingest")
///     .dashboard_password("let me in")
///     .retention_days(7)
///     .session_gap(Duration::from_secs(30 * 60))
///     .build()?;
/// # Ok::<(), mcp_analytics_collector::store::StoreError>(())
/// ```
#[must_use]
pub struct CollectorBuilder {
    database: Option<PathBuf>,
    store: Option<Arc<dyn Store>>,
    api_key: Option<String>,
    dashboard_password: Option<String>,
    retention_days: u32,
    session_gap: Duration,
    max_body_bytes: usize,
    max_batch_events: usize,
    queue_bytes: usize,
    max_view_events: usize,
}

impl Default for CollectorBuilder {
    fn default() -> Self {
        Self {
            database: Some(PathBuf::from("mcp-analytics.db")),
            store: None,
            api_key: None,
            dashboard_password: None,
            retention_days: 30,
            session_gap: Duration::from_secs(30 * 60),
            max_body_bytes: 10 * 1024 * 1024,
            max_batch_events: 5_000,
            queue_bytes: 64 * 1024 * 1024,
            max_view_events: 2_000_000,
        }
    }
}

impl CollectorBuilder {
    /// The SQLite file (created on first run). Default `mcp-analytics.db`.
    ///
    /// ```
    /// let collector = mcp_analytics_collector::Collector::builder()
    ///     .database(std::env::temp_dir().join("doc-database.db"))
    ///     .build()?;
    /// # Ok::<(), mcp_analytics_collector::store::StoreError>(())
    /// ```
    pub fn database(mut self, path: impl Into<PathBuf>) -> Self {
        self.database = Some(path.into());
        self
    }

    /// Keeps events in memory only (for tests and demos).
    ///
    /// ```
    /// let collector = mcp_analytics_collector::Collector::builder().in_memory().build()?;
    /// # Ok::<(), mcp_analytics_collector::store::StoreError>(())
    /// ```
    pub fn in_memory(mut self) -> Self {
        self.database = None;
        self
    }

    /// Another [`Store`] than SQLite; `database`, `in_memory` and `session_gap` are then
    /// the store's business.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use mcp_analytics_collector::{Collector, store::SqliteStore};
    ///
    /// let store = Arc::new(SqliteStore::open_in_memory(Duration::from_secs(1800))?);
    /// let collector = Collector::builder().store(store).build()?;
    /// # Ok::<(), mcp_analytics_collector::store::StoreError>(())
    /// ```
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Requires `Authorization: Bearer <key>` on `POST /v1/events` (the layer's
    /// `HttpSink::api_key`). Default: none.
    ///
    /// ```
    /// let builder = mcp_analytics_collector::Collector::builder().api_key("sk_ingest_123");
    /// ```
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Requires this password for the dashboard and the API (HTTP Basic with any user
    /// name, or `Authorization: Bearer <password>`). Default: none.
    ///
    /// ```
    /// let builder = mcp_analytics_collector::Collector::builder().dashboard_password("let me in");
    /// ```
    pub fn dashboard_password(mut self, password: impl Into<String>) -> Self {
        self.dashboard_password = Some(password.into());
        self
    }

    /// Deletes events older than this many days, hourly; 0 keeps them forever. Default 30.
    ///
    /// ```
    /// let builder = mcp_analytics_collector::Collector::builder().retention_days(90);
    /// ```
    pub fn retention_days(mut self, days: u32) -> Self {
        self.retention_days = days;
        self
    }

    /// The inactivity gap that ends a session of one user and client. Default 30 minutes,
    /// as the layer's.
    ///
    /// ```
    /// let builder = mcp_analytics_collector::Collector::builder()
    ///     .session_gap(std::time::Duration::from_secs(15 * 60));
    /// ```
    pub fn session_gap(mut self, gap: Duration) -> Self {
        self.session_gap = gap;
        self
    }

    /// The largest batch body taken, compressed or decompressed (larger: 413, which the
    /// layer answers by splitting). Default 10 MiB.
    ///
    /// ```
    /// let builder = mcp_analytics_collector::Collector::builder().max_body_bytes(32 << 20);
    /// ```
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes.max(1024);
        self
    }

    /// The most events taken in one batch (more: 413). Default 5,000.
    ///
    /// ```
    /// let builder = mcp_analytics_collector::Collector::builder().max_batch_events(10_000);
    /// ```
    pub fn max_batch_events(mut self, events: usize) -> Self {
        self.max_batch_events = events.max(1);
        self
    }

    /// Event JSON waiting to be stored, at most; past it new batches get 429 with
    /// `Retry-After`. Default 64 MiB.
    ///
    /// ```
    /// let builder = mcp_analytics_collector::Collector::builder().queue_bytes(256 << 20);
    /// ```
    pub fn queue_bytes(mut self, bytes: usize) -> Self {
        self.queue_bytes = bytes.max(1024 * 1024);
        self
    }

    /// The most events one dashboard view (overview, tools, clients, users) reads; a
    /// range holding more gets a 422 asking for a narrower one. At most two views are
    /// computed at once, so this bounds their memory (about 200 bytes per event).
    /// Default 2,000,000.
    ///
    /// ```
    /// let builder = mcp_analytics_collector::Collector::builder().max_view_events(5_000_000);
    /// ```
    pub fn max_view_events(mut self, events: usize) -> Self {
        self.max_view_events = events.max(1);
        self
    }

    /// Opens the store (creating and migrating the file) and starts the writer thread.
    ///
    /// ```
    /// let collector = mcp_analytics_collector::Collector::builder().in_memory().build()?;
    /// # Ok::<(), mcp_analytics_collector::store::StoreError>(())
    /// ```
    pub fn build(self) -> Result<Collector, StoreError> {
        let store: Arc<dyn Store> = match (self.store, &self.database) {
            (Some(store), _) => store,
            (None, Some(path)) => Arc::new(SqliteStore::open(path, self.session_gap)?),
            (None, None) => Arc::new(SqliteStore::open_in_memory(self.session_gap)?),
        };
        let writer = Writer::start(Arc::clone(&store), self.queue_bytes)
            .map_err(|error| StoreError(format!("starting the writer thread: {error}")))?;
        let ingest = Arc::new(Ingest {
            writer: writer.clone(),
            api_key: self.api_key.as_deref().map(Secret::new),
            max_body_bytes: self.max_body_bytes,
            max_batch_events: self.max_batch_events,
        });
        let password = self
            .dashboard_password
            .as_deref()
            .map(Secret::new)
            .map(Arc::new);
        let api = api::Api {
            store: Arc::clone(&store),
            max_view_events: self.max_view_events,
        };
        let router = routes(api, ingest, password);
        Ok(Collector {
            store,
            writer,
            router,
            retention_days: self.retention_days,
        })
    }
}

fn routes(api: api::Api, ingest: Arc<Ingest>, password: Option<Arc<Secret>>) -> Router {
    let dashboard = Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/app.js", get(dashboard::script))
        .route("/assets/app.css", get(dashboard::style))
        .route("/api/facets", get(api::facets))
        .route("/api/overview", get(api::overview))
        .route("/api/tools", get(api::tools))
        .route("/api/tools/{tool}", get(api::tool))
        .route("/api/clients", get(api::clients))
        .route("/api/users", get(api::users))
        .route("/api/sessions", get(api::sessions))
        .route("/api/sessions/{id}", get(api::session))
        .route("/api/events", get(api::tail))
        .route("/api/events/{id}", get(api::event))
        .with_state(api)
        .layer(axum::middleware::from_fn_with_state(
            password,
            dashboard::guard,
        ));
    Router::new()
        .route("/v1/events", post(ingest::ingest))
        .with_state(ingest)
        .merge(dashboard)
}

impl Collector {
    /// A builder with every default: `mcp-analytics.db`, no keys, 30 days of retention.
    ///
    /// ```
    /// let builder = mcp_analytics_collector::Collector::builder();
    /// ```
    pub fn builder() -> CollectorBuilder {
        CollectorBuilder::default()
    }

    /// The collector's routes (`POST /v1/events`, `/`, `/assets/*`, `/api/*`), to serve
    /// yourself or nest in a larger app.
    ///
    /// ```
    /// let collector = mcp_analytics_collector::Collector::builder().in_memory().build()?;
    /// let app = axum::Router::new().nest("/analytics", collector.router());
    /// # Ok::<(), mcp_analytics_collector::store::StoreError>(())
    /// ```
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The store, for reading what was collected.
    ///
    /// ```
    /// let collector = mcp_analytics_collector::Collector::builder().in_memory().build()?;
    /// assert_eq!(collector.store().count()?, 0);
    /// # Ok::<(), mcp_analytics_collector::store::StoreError>(())
    /// ```
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// Serves on `listener` until `shutdown` completes, deleting old events hourly.
    /// Batches being stored when `shutdown` fires are finished and answered first.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let collector = mcp_analytics_collector::Collector::builder().build()?;
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8700").await?;
    /// collector
    ///     .serve(listener, async {
    ///         let _ = tokio::signal::ctrl_c().await;
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let retention = (self.retention_days > 0).then(|| {
            let writer = self.writer.clone();
            let days = self.retention_days;
            tokio::spawn(retain(writer, days))
        });
        let served = axum::serve(listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await;
        if let Some(retention) = retention {
            retention.abort();
        }
        served
    }
}

async fn retain(writer: Writer, days: u32) {
    let mut every = tokio::time::interval(RETENTION_EVERY);
    loop {
        every.tick().await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as i64);
        let cutoff = now - i64::from(days) * 86_400_000;
        let mut deleted = 0;
        loop {
            match writer.retain(cutoff, RETENTION_CHUNK).await {
                Ok(chunk) => {
                    deleted += chunk;
                    if chunk < RETENTION_CHUNK as u64 {
                        break;
                    }
                    // Let waiting batches through before the next chunk.
                    tokio::task::yield_now().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "deleting old events failed");
                    break;
                }
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, days, "deleted events past retention");
        }
    }
}

/// Completes on Ctrl-C, or on SIGTERM on Unix: the usual `shutdown` for
/// [`Collector::serve`] (and for the server beside it).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let collector = mcp_analytics_collector::Collector::builder().build()?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8700").await?;
/// collector
///     .serve(listener, mcp_analytics_collector::shutdown_signal())
///     .await?;
/// # Ok(()) }
/// ```
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
