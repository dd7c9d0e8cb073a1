//! The builder's OpenTelemetry settings (feature `otel`).
//!
//! Owns the setters that hand an [`OpenTelemetry`] to the layer and that let it stand in
//! for the event sink. Never builds a provider.

use super::AnalyticsLayerBuilder;
use crate::otel::OpenTelemetry;

impl AnalyticsLayerBuilder {
    /// Also report every MCP message as an OpenTelemetry span and measurement, by the MCP
    /// semantic conventions (see [`otel`](crate::otel)). Events still go to the sink
    /// unless [`without_sink`](Self::without_sink) is set.
    ///
    /// ```
    /// use tower_mcp_analytics::AnalyticsLayer;
    /// use tower_mcp_analytics::otel::OpenTelemetry;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let provider = opentelemetry::global::tracer_provider();
    /// let layer = AnalyticsLayer::builder()
    ///     .opentelemetry(OpenTelemetry::new().tracer_provider(&provider))
    ///     .build();
    /// # }
    /// ```
    pub fn opentelemetry(mut self, otel: OpenTelemetry) -> Self {
        self.telemetry = Some(otel);
        self
    }

    /// No event sink: spans and metrics instead of events. Events are still built (spans
    /// are made from them) but never serialised or batched; each counts as delivered
    /// once OpenTelemetry has seen it.
    ///
    /// ```
    /// use tower_mcp_analytics::AnalyticsLayer;
    /// use tower_mcp_analytics::otel::OpenTelemetry;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = AnalyticsLayer::builder()
    ///     .opentelemetry(OpenTelemetry::global())
    ///     .without_sink()
    ///     .build();
    /// # }
    /// ```
    pub fn without_sink(mut self) -> Self {
        self.without_sink = true;
        self
    }
}
