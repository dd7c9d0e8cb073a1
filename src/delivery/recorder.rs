//! The hand-off from the request path to the worker: a bounded queue fed by `try_send`.
//!
//! Owns the queue's two bounds (entries and retained bytes) and the drop accounting of
//! anything that never reaches the worker. Never awaits, never locks, never panics, and
//! logs an overload once per episode rather than once per event: the first loss warns,
//! and the worker sums up the episode once no loss happened for a while.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use tokio::sync::{Notify, mpsc, oneshot};

use crate::exchange::Finished;
use crate::stats::{Counters, DropReason};

/// What travels to the worker.
// Almost every envelope is an exchange; boxing it to shrink the two rare variants would
// cost an allocation per request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Envelope {
    Exchange(Queued),
    /// Deliver everything before this point, then answer.
    Flush(oneshot::Sender<()>),
    /// A client ended its MCP session (DELETE): the id derived from its `Mcp-Session-Id`.
    SessionEnded(String),
}

/// A finished exchange in the queue. If it is dropped before the worker takes it (the
/// worker stopped), its events are counted as lost to shutdown.
pub(crate) struct Queued {
    finished: Option<Finished>,
    bytes: usize,
    events: usize,
    counters: Arc<Counters>,
}

impl Queued {
    /// Bytes of request and response data the exchange keeps alive.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes the exchange out of the queue's accounting and into the worker's.
    pub(crate) fn take(mut self) -> Option<Finished> {
        let finished = self.finished.take()?;
        self.counters.queued_bytes.fetch_sub(self.bytes, Relaxed);
        self.counters.queued_events.fetch_sub(self.events, Relaxed);
        self.counters
            .in_worker
            .fetch_add(finished.calls.len() as u64, Relaxed);
        Some(finished)
    }

    fn discard(&mut self, reason: DropReason) {
        if let Some(finished) = self.finished.take() {
            self.counters.queued_bytes.fetch_sub(self.bytes, Relaxed);
            self.counters.queued_events.fetch_sub(self.events, Relaxed);
            self.counters.dropped(reason, finished.calls.len() as u64);
        }
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.discard(DropReason::Shutdown);
    }
}

/// The request path's handle on the queue.
pub(crate) struct Recorder {
    tx: mpsc::Sender<Envelope>,
    /// Wakes the worker early, when `wake_at` events are queued, or fewer when fewer get
    /// the worker's open batch sealed.
    wake: Arc<Notify>,
    wake_at: usize,
    counters: Arc<Counters>,
    max_queued_bytes: usize,
    max_queued_events: usize,
    closed: AtomicBool,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

impl Recorder {
    pub(crate) fn new(
        tx: mpsc::Sender<Envelope>,
        wake: Arc<Notify>,
        wake_at: usize,
        counters: Arc<Counters>,
        max_queued_bytes: usize,
        max_queued_events: usize,
    ) -> Self {
        Self {
            tx,
            wake,
            wake_at,
            counters,
            max_queued_bytes,
            max_queued_events,
            closed: AtomicBool::new(false),
        }
    }

    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Queues a flush marker and wakes the worker; `false` when the worker has stopped.
    pub(crate) async fn request_flush(&self, ack: oneshot::Sender<()>) -> bool {
        let sent = self.tx.send(Envelope::Flush(ack)).await.is_ok();
        self.wake.notify_one();
        sent
    }

    /// From now on every record is counted as lost to shutdown.
    pub(crate) fn close(&self) {
        self.closed.store(true, Relaxed);
    }

    /// Tells the worker a client ended its MCP session. Best effort: when the queue is full
    /// the session is forgotten at the end of the inactivity window instead.
    pub(crate) fn session_ended(&self, session: String) {
        let _ = self.tx.try_send(Envelope::SessionEnded(session));
    }

    /// Hands a finished exchange to the worker, or counts it as dropped. Never blocks.
    pub(crate) fn record(&self, finished: Finished) {
        let events = finished.calls.len() as u64;
        if events == 0 {
            return;
        }
        let bytes = finished.retained_bytes();
        let count = finished.calls.len();
        let mut queued = Queued {
            finished: Some(finished),
            bytes,
            events: count,
            counters: Arc::clone(&self.counters),
        };
        if self.closed.load(Relaxed) {
            self.counters.recorded(events);
            queued.discard(DropReason::Shutdown);
            return;
        }
        // Both bounds are reserved first (and released by the queue entry however it
        // leaves the queue). An exchange larger than the whole byte budget is let into an
        // empty queue only, so that a large answer still makes its event.
        let bytes_before = self.counters.queued_bytes.fetch_add(bytes, Relaxed);
        let events_before = self.counters.queued_events.fetch_add(count, Relaxed);
        let over_bytes =
            bytes_before > 0 && bytes_before.saturating_add(bytes) > self.max_queued_bytes;
        if over_bytes || events_before.saturating_add(count) > self.max_queued_events {
            self.counters.recorded(events);
            queued.discard(DropReason::QueueFull);
            self.overload();
            return;
        }
        // Counted after the send so that a worker stopping concurrently counts the
        // exchange exactly once (through the queue entry's drop).
        match self.tx.try_send(Envelope::Exchange(queued)) {
            Ok(()) => {
                self.counters.recorded(events);
                // Wake the worker once when the queued events would get its open batch sealed
                // (or `wake_at` are queued); not again until it has taken the queue in (it
                // clears the flag).
                let threshold = match self.counters.seal_in.load(Relaxed) {
                    0 => self.wake_at,
                    seal_in => self.wake_at.min(seal_in),
                };
                let queued = self.counters.queued_events.load(Relaxed);
                if queued >= threshold && !self.counters.wake_requested.swap(true, Relaxed) {
                    self.wake.notify_one();
                }
            }
            Err(mpsc::error::TrySendError::Full(Envelope::Exchange(mut queued))) => {
                self.counters.recorded(events);
                queued.discard(DropReason::QueueFull);
                self.overload();
            }
            Err(error) => {
                self.counters.recorded(events);
                drop(error);
            }
        }
    }

    /// Warns once per episode; the worker sums it up when it ends.
    fn overload(&self) {
        if !self.counters.queue_full_warned.swap(true, Relaxed) {
            tracing::warn!(
                "mcp analytics queue is full: events are being dropped (counted in \
                 stats().dropped.queue_full); further losses of this kind are summed up when \
                 they stop"
            );
        }
    }
}
