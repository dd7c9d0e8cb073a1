//! The builder's session settings: how events are grouped into sessions, and where the
//! grouping state lives.
//!
//! Owns the setters of [`SessionConfig`](crate::session::SessionConfig) and their bounds.
//! Never opens a store or decides a session.

use std::sync::Arc;
use std::time::Duration;

use super::AnalyticsLayerBuilder;
use crate::session::{SessionMode, SessionStore};

impl AnalyticsLayerBuilder {
    /// How events get their session (default [`SessionMode::Auto`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .session_mode(tower_mcp_analytics::SessionMode::Backend)
    ///     .build();
    /// # }
    /// ```
    pub fn session_mode(mut self, mode: SessionMode) -> Self {
        self.sessions.mode = mode;
        self
    }

    /// Longest gap between two events of a user and client that keeps them in one session
    /// (default 30 minutes). Also how long a session's client is remembered.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .inactivity_window(Duration::from_secs(15 * 60))
    ///     .build();
    /// # }
    /// ```
    pub fn inactivity_window(mut self, window: Duration) -> Self {
        self.sessions.window = window;
        self
    }

    /// Where session grouping state lives (default: a [`MemorySessionStore`](crate::MemorySessionStore) of
    /// `identity_capacity` groups).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .session_store(tower_mcp_analytics::MemorySessionStore::with_capacity(10_000))
    ///     .build();
    /// # }
    /// ```
    pub fn session_store(mut self, store: impl SessionStore) -> Self {
        self.sessions.store = Some(Arc::new(store));
        self
    }

    /// Longest wait for a shared session store's answer (default 1 s). Past it, or when
    /// the store fails, the batch's sessions are decided in memory (counted in
    /// `stats().session_store_errors`) and the store is left alone for a while; no event
    /// waits longer or is lost.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .session_store_timeout(Duration::from_millis(250))
    ///     .build();
    /// # }
    /// ```
    pub fn session_store_timeout(mut self, timeout: Duration) -> Self {
        self.sessions.store_timeout = timeout;
        self
    }

    /// Most users, sessions and clients remembered in memory (default 100,000 each; least
    /// recently seen evicted), so that a client inventing identities cannot grow memory.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().identity_capacity(10_000).build();
    /// # }
    /// ```
    pub fn identity_capacity(mut self, entries: usize) -> Self {
        self.sessions.capacity = entries.max(1);
        self
    }
}
