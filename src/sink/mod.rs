//! Where events go: the [`Sink`] trait and the sinks that ship with the crate.
//!
//! A sink is called by the background worker only; it never runs on the request path. It
//! makes one attempt per call and reports failure with [`SinkError`], saying whether to
//! retry; the worker owns retries, backoff and accounting, and survives a panicking sink
//! (the batch is counted as `sink_panicked`).

#[cfg(feature = "http-sink")]
mod http;
mod json_lines;
mod memory;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use crate::delivery::Batch;
#[cfg(feature = "http-sink")]
pub use http::HttpSink;
pub use json_lines::JsonLinesSink;
pub use memory::MemorySink;

/// The future a [`Sink`] returns.
pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>>;

/// A destination for batches of events.
///
/// A sink makes one attempt per call; the layer's worker owns the policy around it:
/// batching, how many batches are in flight at once (2 to 16 by default, as the backlog
/// needs; calls may overlap), retries with backoff, `Retry-After` pauses, splitting a
/// batch the destination found too large. Say which applies through the
/// [`SinkError`] you return.
///
/// ```
/// use tower_mcp_analytics::sink::{Batch, Sink, SinkError, SinkFuture};
///
/// /// Counts tool calls and forgets everything else.
/// struct ToolCounter(std::sync::atomic::AtomicUsize);
///
/// impl Sink for ToolCounter {
///     fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a> {
///         Box::pin(async move {
///             let calls = batch.events().iter().filter(|e| e.method == "tools/call").count();
///             self.0.fetch_add(calls, std::sync::atomic::Ordering::Relaxed);
///             Ok::<(), SinkError>(())
///         })
///     }
/// }
/// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
///     .sink(ToolCounter(Default::default()));
/// ```
pub trait Sink: Send + Sync + 'static {
    /// One attempt at delivering a batch.
    fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a>;
}

/// Why a sink could not deliver a batch, and what the worker should do about it.
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_analytics::sink::SinkError;
///
/// let busy = SinkError::retryable("503 Service Unavailable").with_retry_after(Duration::from_secs(2));
/// assert!(busy.is_retryable());
/// assert_eq!(busy.retry_after(), Some(Duration::from_secs(2)));
/// assert!(!SinkError::rejected("400 Bad Request").is_retryable());
/// ```
#[derive(Debug)]
pub struct SinkError {
    kind: Kind,
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// What the worker does with a failed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Retryable { retry_after: Option<Duration> },
    Rejected,
    TooLarge,
}

impl SinkError {
    /// A transient failure: the batch is retried with backoff. (Also what
    /// [`SinkError::new`] and the `From` conversions give.)
    ///
    /// ```
    /// let _ = tower_mcp_analytics::sink::SinkError::retryable("connection reset");
    /// ```
    pub fn retryable(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            kind: Kind::Retryable { retry_after: None },
            source: error.into(),
        }
    }

    /// The destination refused the batch for good: it is dropped and counted as
    /// `rejected`.
    ///
    /// ```
    /// let _ = tower_mcp_analytics::sink::SinkError::rejected("401 Unauthorized");
    /// ```
    pub fn rejected(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            kind: Kind::Rejected,
            source: error.into(),
        }
    }

    /// The batch was too large for the destination: it is split in two and both halves
    /// are sent (a single event is dropped and counted as `too_large`).
    ///
    /// ```
    /// let _ = tower_mcp_analytics::sink::SinkError::too_large("413 Payload Too Large");
    /// ```
    pub fn too_large(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            kind: Kind::TooLarge,
            source: error.into(),
        }
    }

    /// A retryable error with a message.
    ///
    /// ```
    /// assert!(tower_mcp_analytics::sink::SinkError::new("timeout").is_retryable());
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        Self::retryable(message.into())
    }

    /// Asks the worker to pause all sending for at least this long (an HTTP
    /// `Retry-After`); only meaningful on a retryable error.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let error = tower_mcp_analytics::sink::SinkError::new("429").with_retry_after(Duration::from_secs(1));
    /// ```
    pub fn with_retry_after(mut self, pause: Duration) -> Self {
        if let Kind::Retryable { retry_after } = &mut self.kind {
            *retry_after = Some(pause);
        }
        self
    }

    /// Whether the batch will be retried.
    ///
    /// ```
    /// assert!(tower_mcp_analytics::sink::SinkError::new("x").is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, Kind::Retryable { .. })
    }

    /// The pause the destination asked for, if any.
    ///
    /// ```
    /// assert_eq!(tower_mcp_analytics::sink::SinkError::new("x").retry_after(), None);
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            Kind::Retryable { retry_after } => retry_after,
            _ => None,
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for SinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

impl From<std::io::Error> for SinkError {
    fn from(error: std::io::Error) -> Self {
        Self::retryable(error)
    }
}

impl From<serde_json::Error> for SinkError {
    fn from(error: serde_json::Error) -> Self {
        Self::rejected(error)
    }
}
