//! The builder's delivery settings: the queue, batches, sending, retries, and where the
//! worker runs.
//!
//! Owns the setters of [`DeliveryConfig`](crate::delivery::DeliveryConfig) and their
//! bounds. Never starts the worker.

use std::time::Duration;

use super::AnalyticsLayerBuilder;
use crate::delivery::WorkerRuntime;

impl AnalyticsLayerBuilder {
    /// Most events waiting between the request path and the worker (default 10,000);
    /// the worker itself also holds at most this many (batched, in flight, awaiting a
    /// retry). Past it new events are dropped and counted as `queue_full`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().queue_capacity(1_000).build();
    /// # }
    /// ```
    pub fn queue_capacity(mut self, events: usize) -> Self {
        self.delivery.queue_capacity = events.max(1);
        self
    }

    /// Most bytes of request and response data the queue may keep alive (default 16 MiB);
    /// the worker itself also holds at most this many bytes of event JSON (batched, in
    /// flight, awaiting a retry). A single exchange larger than this is let into an empty
    /// queue only.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().queue_bytes(4 << 20).build();
    /// # }
    /// ```
    pub fn queue_bytes(mut self, bytes: usize) -> Self {
        self.delivery.queue_bytes = bytes;
        self
    }

    /// Most events handed to the sink in one call (default 2,000). Batches are sized by
    /// bytes first (see [`batch_bytes`](Self::batch_bytes)); this caps how many small
    /// events one batch carries. The worker is also woken as soon as 100 exchanges (or this
    /// many, when fewer) wait.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().batch_size(500).build();
    /// # }
    /// ```
    pub fn batch_size(mut self, events: usize) -> Self {
        self.delivery.batch_size = events.max(1);
        self
    }

    /// Most bytes of event JSON in one batch (default 1 MiB): the ceiling of the adaptive
    /// batch size. Batches are sealed at 64 KiB (or at this, when lower) to begin with; each
    /// batch delivered after a sealed batch had to wait for a sending slot doubles that, up
    /// to this; every flush interval without such a wait halves it back. A collector
    /// answering 413 to a batch of several events caps it at half that batch from then on.
    /// A single event larger than this is sent in a batch of its own.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().batch_bytes(256 * 1024).build();
    /// # }
    /// ```
    pub fn batch_bytes(mut self, bytes: usize) -> Self {
        self.delivery.batch_bytes = bytes.max(1);
        self
    }

    /// Longest time a recorded event waits before its batch is sealed and sent (default 1 s):
    /// an event recorded at `t` is in a batch handed to the sink by `t + interval`, unless
    /// every sending slot is busy or the destination asked for a pause. The worker also wakes as soon as enough exchanges are queued to seal a batch (at
    /// most 100), and on [`flush`](crate::AnalyticsLayer::flush); it is never woken once per
    /// request.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .flush_interval(Duration::from_millis(100))
    ///     .build();
    /// # }
    /// ```
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.delivery.flush_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Most batches being sent at once (default 16): the ceiling of the adaptive sending
    /// window. Sending starts with 2 slots (or this, when lower); each batch delivered after
    /// a sealed batch had to wait for a slot opens one more, up to this; every flush
    /// interval without such a wait halves the window back, and any retryable failure
    /// (transport error, timeout, 429, 5xx) drops it to 2 at once, so that a failing
    /// collector never sees more than 2 new requests at a time. Events in flight still
    /// count against `queue_capacity` and `queue_bytes`, which bound the worker.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().max_in_flight(4).build();
    /// # }
    /// ```
    pub fn max_in_flight(mut self, batches: usize) -> Self {
        self.delivery.max_in_flight = batches.max(1);
        self
    }

    /// Most attempts at one batch, the first included (default 5). Retries follow
    /// transport errors, timeouts, 408, 429, 500, 502, 503 and 504.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder().max_attempts(3).build();
    /// # }
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.delivery.retry.max_attempts = attempts.max(1);
        self
    }

    /// Retry backoff: full jitter over `base * 2^(attempt - 1)`, at most `cap` (defaults
    /// 500 ms and 30 s). A `Retry-After` pauses all sending for at least the backoff and at
    /// most 60 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
    ///     .backoff(Duration::from_millis(100), Duration::from_secs(5))
    ///     .build();
    /// # }
    /// ```
    pub fn backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.delivery.retry.base = base;
        self.delivery.retry.cap = cap.max(base);
        self
    }

    /// Where the background worker runs (default [`WorkerRuntime::Current`]: a task on the
    /// runtime the layer is built on). [`WorkerRuntime::Dedicated`] gives it a thread and a
    /// current-thread runtime of its own, keeping event building, compression and sending
    /// off the server's runtime threads; `stats`, `flush` and `shutdown` work the same.
    ///
    /// ```
    /// use tower_mcp_analytics::{AnalyticsLayer, WorkerRuntime};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = AnalyticsLayer::builder()
    ///     .worker_runtime(WorkerRuntime::Dedicated)
    ///     .build();
    /// let report = layer.shutdown(std::time::Duration::from_secs(5)).await;
    /// assert!(report.flushed);
    /// # }
    /// ```
    pub fn worker_runtime(mut self, runtime: WorkerRuntime) -> Self {
        self.delivery.runtime = runtime;
        self
    }
}
