//! The builder's request-path limits: how much of each request and response is read and
//! kept.
//!
//! Owns the setters of the request path's limits and their bounds. Never reads a body.

use super::AnalyticsLayerBuilder;

impl AnalyticsLayerBuilder {
    /// Most bytes of a JSON POST body read before the request reaches the server (default
    /// 4 MiB). A larger body is passed on untouched without being read (its event then
    /// comes from the `Mcp-Method` / `Mcp-Name` headers when the client sent them).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().capture_limit(64 * 1024).build();
    /// # }
    /// ```
    pub fn capture_limit(mut self, bytes: usize) -> Self {
        self.limits.capture_limit = bytes;
        self
    }

    /// Most bytes of one JSON response, or one SSE message, read to learn the outcome
    /// (default 4 MiB). Larger answers still reach the client in full; their event says
    /// [`Outcome::TooLarge`](crate::Outcome::TooLarge).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().response_capture_limit(1 << 20).build();
    /// # }
    /// ```
    pub fn response_capture_limit(mut self, bytes: usize) -> Self {
        self.limits.response_capture_limit = bytes;
        self
    }

    /// Most events made from one HTTP request (default 100). Entries of a batch beyond it
    /// are counted as `dropped.call_cap`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().max_calls_per_request(10).build();
    /// # }
    /// ```
    pub fn max_calls_per_request(mut self, calls: usize) -> Self {
        self.limits.max_calls_per_request = calls.max(1);
        self
    }

    /// Most bytes of request arguments that calls in flight keep for their events
    /// (default 8 MiB), whatever the number of calls. Arguments up to 4 KiB are copied and
    /// always kept; larger ones are kept while the budget lasts, and past it the event
    /// carries a size marker (`{"_truncated":{"bytes":N}}`) instead, counted in
    /// `stats().payloads_withheld`. Only what is kept counts: the request itself goes to
    /// the server untouched.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().in_flight_bytes(32 << 20).build();
    /// # }
    /// ```
    pub fn in_flight_bytes(mut self, bytes: usize) -> Self {
        self.limits.in_flight_bytes = bytes;
        self
    }
}
