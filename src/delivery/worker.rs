//! The background worker: turns finished exchanges into events and hands them to the sink.
//!
//! Owns everything slow: building events (reading results, deriving ids, formatting
//! times), batching, and calling the sink. A sink that errors or panics loses only the
//! batch it was given, counted; the worker carries on. Never touches a request.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};

use std::time::Duration;

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{Notify, mpsc};

use super::recorder::Envelope;
use super::stats::{Counters, DropReason};
use crate::enrich::Enricher;
use crate::event::{Event, build};
use crate::sink::Sink;

/// How the worker batches.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WorkerConfig {
    /// Most events handed to the sink in one call.
    pub(crate) batch_size: usize,
    /// Longest time a recorded event waits before the worker looks at the queue.
    pub(crate) flush_interval: Duration,
}

/// Runs until every sender is gone (the layer and its services were dropped) or the task
/// is aborted by shutdown.
///
/// The worker is not woken once per event (a wake-up per request would cost the request
/// path a syscall whenever the worker sleeps): it looks at the queue every
/// `flush_interval`, when a batch's worth of exchanges is waiting, and on flush.
pub(crate) async fn run(
    mut rx: mpsc::Receiver<Envelope>,
    wake: Arc<Notify>,
    sink: Arc<dyn Sink>,
    mut enricher: Enricher,
    counters: Arc<Counters>,
    config: WorkerConfig,
) {
    let batch_size = config.batch_size.max(1);
    let mut batch = Batch::default();
    loop {
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(config.flush_interval) => {}
        }
        loop {
            match rx.try_recv() {
                Ok(Envelope::Exchange(queued)) => {
                    if let Some(finished) = queued.take() {
                        batch.add(build::events(finished));
                    }
                    if batch.events >= batch_size {
                        batch
                            .deliver(&mut enricher, &*sink, &counters, batch_size)
                            .await;
                    }
                }
                Ok(Envelope::Flush(ack)) => {
                    batch
                        .deliver(&mut enricher, &*sink, &counters, batch_size)
                        .await;
                    let _ = ack.send(());
                }
                Ok(Envelope::SessionEnded(raw)) => {
                    // Events already built belong to the session; forget it after them.
                    batch
                        .deliver(&mut enricher, &*sink, &counters, batch_size)
                        .await;
                    enricher.session_ended(&raw);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    batch
                        .deliver(&mut enricher, &*sink, &counters, batch_size)
                        .await;
                    return;
                }
            }
        }
        batch
            .deliver(&mut enricher, &*sink, &counters, batch_size)
            .await;
    }
}

/// Exchanges built into events, waiting for enrichment and the sink.
#[derive(Default)]
struct Batch {
    exchanges: Vec<build::Built>,
    events: usize,
}

impl Batch {
    fn add(&mut self, built: build::Built) {
        self.events += built.events.len();
        self.exchanges.push(built);
    }

    async fn deliver(
        &mut self,
        enricher: &mut Enricher,
        sink: &dyn Sink,
        counters: &Counters,
        batch_size: usize,
    ) {
        if self.exchanges.is_empty() {
            return;
        }
        self.events = 0;
        let mut events = enricher.enrich(std::mem::take(&mut self.exchanges)).await;
        deliver(sink, counters, &mut events, batch_size).await;
    }
}

async fn deliver(sink: &dyn Sink, counters: &Counters, events: &mut Vec<Event>, batch_size: usize) {
    for batch in events.chunks(batch_size) {
        let n = batch.len() as u64;
        // A panic while making the future, or while polling it, loses only this batch.
        let sent = match std::panic::catch_unwind(AssertUnwindSafe(|| sink.send(batch))) {
            Ok(future) => CatchUnwind(future).await,
            Err(_) => Err(()),
        };
        match sent {
            Ok(Ok(())) => counters.delivered(n),
            Ok(Err(error)) => {
                tracing::warn!(%error, events = n, "mcp analytics sink failed; events dropped");
                counters.dropped(DropReason::SinkError, n);
            }
            Err(()) => {
                tracing::error!(events = n, "mcp analytics sink panicked; events dropped");
                counters.dropped(DropReason::SinkError, n);
            }
        }
        counters.in_worker.fetch_sub(n, Relaxed);
    }
    events.clear();
}

/// Polls a future, turning a panic into `Err(())`.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(_) => Poll::Ready(Err(())),
        }
    }
}
