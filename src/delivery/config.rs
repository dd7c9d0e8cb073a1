//! [`DeliveryConfig`]: how the worker queues, batches and delivers, with its defaults.
//!
//! Owns the delivery settings and their defaults, kept apart from the worker that
//! applies them. Never starts anything.

use std::time::Duration;

use super::retry::RetryPolicy;
use super::spawn::WorkerRuntime;

/// Default most events queued (and held by the worker).
pub(crate) const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
/// Default most bytes queued (and of event JSON held by the worker).
pub(crate) const DEFAULT_QUEUE_BYTES: usize = 16 * 1024 * 1024;
/// Default most events in one batch.
pub(crate) const DEFAULT_BATCH_SIZE: usize = 2_000;
/// Default most bytes of event JSON in one batch.
pub(crate) const DEFAULT_BATCH_BYTES: usize = 1024 * 1024;
/// Default most batches being sent at once.
pub(crate) const DEFAULT_MAX_IN_FLIGHT: usize = 16;

/// How the worker queues, batches and delivers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DeliveryConfig {
    /// Most events waiting in the queue; the worker also holds at most this many
    /// (building, batched, in flight, awaiting a retry).
    pub(crate) queue_capacity: usize,
    /// Most bytes of request and response data waiting in the queue; the worker also holds
    /// at most this many bytes of event JSON (batched, in flight, awaiting a retry).
    pub(crate) queue_bytes: usize,
    /// Most events in one batch.
    pub(crate) batch_size: usize,
    /// Most bytes of event JSON in one batch (the byte target adapts below it).
    pub(crate) batch_bytes: usize,
    /// Longest time an event waits before its batch is sealed.
    pub(crate) flush_interval: Duration,
    /// Most batches being sent at once (the window adapts below it).
    pub(crate) max_in_flight: usize,
    pub(crate) retry: RetryPolicy,
    /// Where the worker runs.
    pub(crate) runtime: WorkerRuntime,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            batch_size: DEFAULT_BATCH_SIZE,
            batch_bytes: DEFAULT_BATCH_BYTES,
            flush_interval: Duration::from_secs(1),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            retry: RetryPolicy::default(),
            runtime: WorkerRuntime::Current,
        }
    }
}
