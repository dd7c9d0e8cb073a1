//! The builder's privacy settings: what of a request events carry, and how big.
//!
//! Owns the setters of the header list and of the privacy stage's settings. Never reads a
//! header or a payload.

use super::AnalyticsLayerBuilder;
use crate::privacy::PayloadLimits;

impl AnalyticsLayerBuilder {
    /// Request headers to copy into events (none by default). `authorization`,
    /// `proxy-authorization`, `cookie`, `set-cookie`, `x-api-key` and `mcp-session-id`
    /// (whoever holds it acts in that session) are masked as `[redacted]` even when named
    /// here; see [`force_capture_headers`](Self::force_capture_headers).
    /// Invalid names are ignored.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .capture_headers(["x-tenant", "x-request-id"])
    ///     .build();
    /// # }
    /// ```
    pub fn capture_headers<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.headers.add(names, false);
        self
    }

    /// Request headers to copy into events as they are, sensitive ones included. Only for
    /// headers you know carry no secret in your deployment.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .force_capture_headers(["x-api-key"])
    ///     .build();
    /// # }
    /// ```
    pub fn force_capture_headers<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.headers.add(names, true);
        self
    }

    /// Whether events carry the request's `params.arguments` (default true).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().capture_arguments(false).build();
    /// # }
    /// ```
    pub fn capture_arguments(mut self, capture: bool) -> Self {
        self.privacy.capture_arguments = capture;
        self
    }

    /// Whether events carry the response's `result` (default true).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().capture_results(false).build();
    /// # }
    /// ```
    pub fn capture_results(mut self, capture: bool) -> Self {
        self.privacy.capture_results = capture;
        self
    }

    /// Whether the built-in secret scrubber runs (default true). It replaces with
    /// `[redacted]`, in arguments, results, error data and error messages: string,
    /// object and array values under secret-looking keys (`password`, `api_key`, `token`,
    /// `secret`, `authorization`, `credentials`, `private_key`, `client_secret`, ...;
    /// numbers such as `max_tokens` are kept), credentials inside URLs
    /// (`https://user:pass@host`), `Bearer` tokens, private key blocks, and well-known token
    /// shapes (Stripe `sk_live_`, OpenAI and Anthropic `sk-`, GitHub `ghp_` and
    /// `github_pat_`, AWS `AKIA`, Slack `xox?-`, Google `AIza`, npm `npm_`, JWTs). It runs
    /// before your [`redact`](Self::redact) hook, which sees the scrubbed text.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// // Only for payloads you know carry no secret.
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().redact_secrets(false).build();
    /// # }
    /// ```
    pub fn redact_secrets(mut self, on: bool) -> Self {
        self.privacy.redact_secrets = on;
        self
    }

    /// Events carry only these top-level keys of a call's arguments with their values;
    /// every other key stands with `[redacted]` (an allowlist, for owners who want named
    /// fields only). Values kept still pass the secret scrubber and the `redact` hook.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .capture_arguments_only(["query", "limit"])
    ///     .build();
    /// # }
    /// ```
    pub fn capture_arguments_only<'a>(mut self, keys: impl IntoIterator<Item = &'a str>) -> Self {
        self.privacy
            .arguments_only
            .get_or_insert_with(Default::default)
            .extend(keys.into_iter().map(String::from));
        self
    }

    /// Tools whose calls are recorded without their arguments and results.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .exclude_tool_payloads(["read_medical_record"])
    ///     .build();
    /// # }
    /// ```
    pub fn exclude_tool_payloads<'a>(mut self, tools: impl IntoIterator<Item = &'a str>) -> Self {
        self.privacy
            .excluded_tools
            .extend(tools.into_iter().map(String::from));
        self
    }

    /// Caps on payloads: strings, nesting, collection sizes and whole events (defaults
    /// 10 KiB, depth 10, 500 items, 100 KiB). Cut values carry markers saying their
    /// original size.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tower_mcp_analytics::PayloadLimits;
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .payload_limits(PayloadLimits { event_bytes: 32 * 1024, ..PayloadLimits::default() })
    ///     .build();
    /// # }
    /// ```
    pub fn payload_limits(mut self, limits: PayloadLimits) -> Self {
        self.privacy.limits = limits;
        self
    }
}
