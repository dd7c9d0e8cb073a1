//! [`MemorySink`]: keeps events in memory, for tests and examples.
//!
//! Unbounded by design (it is for tests); never use it in production.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use super::{Batch, Sink, SinkError, SinkFuture};
use crate::Event;

/// Collects every event it receives. Clones share the same store.
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_analytics::{AnalyticsLayer, MemorySink};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let sink = MemorySink::new();
/// let layer = AnalyticsLayer::new(sink.clone());
/// // ... serve requests through `layer` ...
/// let events = sink.wait_for(0, Duration::from_millis(10)).await;
/// assert!(events.is_empty());
/// # }
/// ```
#[derive(Clone, Default, Debug)]
pub struct MemorySink {
    inner: Arc<Inner>,
}

#[derive(Default, Debug)]
struct Inner {
    events: Mutex<Vec<Event>>,
    arrived: Notify,
}

impl MemorySink {
    /// An empty sink.
    ///
    /// ```
    /// assert!(tower_mcp_analytics::MemorySink::new().events().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every event received so far.
    ///
    /// ```
    /// assert_eq!(tower_mcp_analytics::MemorySink::new().events().len(), 0);
    /// ```
    pub fn events(&self) -> Vec<Event> {
        self.lock().clone()
    }

    /// Removes and returns every event received so far.
    ///
    /// ```
    /// assert!(tower_mcp_analytics::MemorySink::new().take().is_empty());
    /// ```
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.lock())
    }

    /// Waits until at least `count` events have arrived or `timeout` passes, then returns
    /// a copy of all of them.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let sink = tower_mcp_analytics::MemorySink::new();
    /// assert!(sink.wait_for(1, Duration::from_millis(5)).await.is_empty());
    /// # }
    /// ```
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Event> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.inner.arrived.notified();
            if self.lock().len() >= count {
                break;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                break;
            }
        }
        self.events()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Event>> {
        self.inner
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Sink for MemorySink {
    fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a> {
        self.lock().extend(batch.events());
        self.inner.arrived.notify_waiters();
        Box::pin(std::future::ready(Ok::<(), SinkError>(())))
    }
}
