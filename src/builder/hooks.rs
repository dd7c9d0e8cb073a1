//! The builder's hooks: the server's functions the layer calls (see [`crate::hooks`] for
//! what each sees, returns and costs when it panics).
//!
//! Owns storing each hook where its stage finds it: request hooks with the request path,
//! event hooks with the privacy stage. Never calls a hook.

use std::sync::Arc;

use super::AnalyticsLayerBuilder;
use crate::event::Event;
use crate::hooks::{RequestView, UserIdentity};

impl AnalyticsLayerBuilder {
    /// Who made each request. Runs on the request path, synchronously, before the server
    /// sees the request, for every request that produces events: keep it lightweight (read
    /// a header, an extension an auth layer set, a field of the arguments; no I/O). A
    /// panic in it is caught and counted (`stats().hook_panics.identify`); the event then
    /// goes out anonymous. An identify event is emitted when a user is new or their name
    /// or data changed. See [`identity::from_header`](crate::identity::from_header) and
    /// [`identity::from_bearer_token`](crate::identity::from_bearer_token).
    ///
    /// ```
    /// use tower_mcp_analytics::{AnalyticsLayer, UserIdentity};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = AnalyticsLayer::builder()
    ///     .identify(|request| request.header("x-user-id").map(UserIdentity::new))
    ///     .build();
    /// # }
    /// ```
    pub fn identify<F>(mut self, identify: F) -> Self
    where
        F: Fn(&RequestView<'_>) -> Option<UserIdentity> + Send + Sync + 'static,
    {
        self.hooks.identify = Some(Arc::new(identify));
        self
    }

    /// The server's own session key for a request (e.g. an explicit state handle among
    /// the arguments): events with the same key share a session whose id is derived from
    /// the key. Runs on the request path like [`identify`](Self::identify); a panic is
    /// caught and counted, and the event is then grouped as if no key was given.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .session_key(|request| request.header("x-conversation-id").map(String::from))
    ///     .build();
    /// # }
    /// ```
    pub fn session_key<F>(mut self, key: F) -> Self
    where
        F: Fn(&RequestView<'_>) -> Option<String> + Send + Sync + 'static,
    {
        self.hooks.session_key = Some(Arc::new(key));
        self
    }

    /// Short labels for a request's events, from the same view as `identify` (on the
    /// request path: keep it light). Invalid entries are dropped (keys: at most 32
    /// characters of `[a-zA-Z0-9$_.:- ]`; values: at most 200 characters, no newlines; at
    /// most 50 tags) and logged once. If it panics, the request's events are dropped
    /// (`dropped.hook_failed`); the request is unaffected.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .tags(|request| {
    ///         request.header("x-region").map(|r| vec![("region".to_owned(), r.to_owned())]).unwrap_or_default()
    ///     })
    ///     .build();
    /// # }
    /// ```
    pub fn tags<F>(mut self, tags: F) -> Self
    where
        F: Fn(&RequestView<'_>) -> Vec<(String, String)> + Send + Sync + 'static,
    {
        self.hooks.tags = Some(Arc::new(tags));
        self
    }

    /// Free-form JSON properties for a request's events, like [`tags`](Self::tags).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .properties(|request| Some(serde_json::json!({ "path": request.parts().uri.path() })))
    ///     .build();
    /// # }
    /// ```
    pub fn properties<F>(mut self, properties: F) -> Self
    where
        F: Fn(&RequestView<'_>) -> Option<serde_json::Value> + Send + Sync + 'static,
    {
        self.hooks.properties = Some(Arc::new(properties));
        self
    }

    /// A function applied to every string in arguments, results, errors, intents and user data
    /// (object keys and system fields such as ids, event type and tool name are left
    /// alone): return a replacement, or `None` to keep the string. Runs in the worker. If
    /// it panics, the event is dropped, never sent unredacted, and counted as
    /// `dropped.redaction_failed`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .redact(|text| text.contains("sk_live_").then(|| "[secret]".to_owned()))
    ///     .build();
    /// # }
    /// ```
    pub fn redact<F>(mut self, redact: F) -> Self
    where
        F: Fn(&str) -> Option<String> + Send + Sync + 'static,
    {
        self.privacy.redact = Some(Arc::new(redact));
        self
    }

    /// A function that sees each whole event before [`redact`](Self::redact): it may
    /// change it, or return `false` to drop it (counted as `dropped.filtered`). Runs in
    /// the worker; if it panics the event is dropped and counted as
    /// `dropped.redaction_failed`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .redact_event(|event| event.method != "ping")
    ///     .build();
    /// # }
    /// ```
    pub fn redact_event<F>(mut self, redact: F) -> Self
    where
        F: Fn(&mut Event) -> bool + Send + Sync + 'static,
    {
        self.privacy.redact_event = Some(Arc::new(redact));
        self
    }
}
