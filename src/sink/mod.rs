//! Where events go: the [`Sink`] trait and the sinks that ship with the crate.
//!
//! A sink is called by the background worker only, one batch at a time; it never runs on
//! the request path. Sinks report failure with [`SinkError`]; the worker counts the lost
//! events and carries on (a panicking sink is caught the same way).

mod json_lines;
mod memory;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

pub use json_lines::JsonLinesSink;
pub use memory::MemorySink;

use crate::Event;

/// The future a [`Sink`] returns.
pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>>;

/// A destination for batches of events.
///
/// Implement it to send events anywhere; the worker calls [`Sink::send`] with batches in
/// order and waits for each call to finish before the next.
///
/// ```
/// use tower_mcp_analytics::{Event, sink::{Sink, SinkError, SinkFuture}};
///
/// /// Counts tool calls and forgets everything else.
/// struct ToolCounter(std::sync::atomic::AtomicUsize);
///
/// impl Sink for ToolCounter {
///     fn send<'a>(&'a self, events: &'a [Event]) -> SinkFuture<'a> {
///         Box::pin(async move {
///             let calls = events.iter().filter(|e| e.method == "tools/call").count();
///             self.0.fetch_add(calls, std::sync::atomic::Ordering::Relaxed);
///             Ok::<(), SinkError>(())
///         })
///     }
/// }
/// let layer = tower_mcp_analytics::AnalyticsLayer::builder()
///     .sink(ToolCounter(Default::default()));
/// ```
pub trait Sink: Send + Sync + 'static {
    /// Delivers one batch. An error drops the batch (counted as `sink_error`).
    fn send<'a>(&'a self, events: &'a [Event]) -> SinkFuture<'a>;
}

/// A sink's failure to deliver a batch.
///
/// ```
/// use tower_mcp_analytics::sink::SinkError;
///
/// let error = SinkError::new("collector unreachable");
/// assert_eq!(error.to_string(), "collector unreachable");
/// let io = SinkError::from(std::io::Error::other("disk full"));
/// assert_eq!(io.to_string(), "disk full");
/// ```
#[derive(Debug)]
pub struct SinkError(Box<dyn std::error::Error + Send + Sync>);

impl SinkError {
    /// An error with a message.
    ///
    /// ```
    /// # use tower_mcp_analytics::sink::SinkError;
    /// let _ = SinkError::new("nope");
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into().into())
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl From<std::io::Error> for SinkError {
    fn from(error: std::io::Error) -> Self {
        Self(Box::new(error))
    }
}

impl From<serde_json::Error> for SinkError {
    fn from(error: serde_json::Error) -> Self {
        Self(Box::new(error))
    }
}
