//! The builder's insights settings: intent capture and the virtual tool for missing
//! capabilities, both off by default because they change what clients and servers see.
//!
//! Owns the two setters. Never reads traffic.

use super::AnalyticsLayerBuilder;
use crate::insights::{IntentCapture, MissingTools};

impl AnalyticsLayerBuilder {
    /// Asks agents why they call each tool, and records the answer as the event's
    /// `user_intent` (off by default): see [`IntentCapture`].
    ///
    /// ```
    /// use tower_mcp_analytics::insights::IntentCapture;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .capture_intent(IntentCapture::new())
    ///     .build();
    /// # }
    /// ```
    pub fn capture_intent(mut self, intent: IntentCapture) -> Self {
        self.intent = Some(intent);
        self
    }

    /// Lists a virtual tool agents call when no tool fits, answered by the layer and
    /// recorded as a `missing_capability` event (off by default): see [`MissingTools`].
    ///
    /// ```
    /// use tower_mcp_analytics::insights::MissingTools;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .missing_tools(MissingTools::new())
    ///     .build();
    /// # }
    /// ```
    pub fn missing_tools(mut self, missing: MissingTools) -> Self {
        self.missing_tools = Some(missing);
        self
    }
}
