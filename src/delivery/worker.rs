//! The background worker: turns finished exchanges into events, batches them and delivers
//! them through the sink, with retries.
//!
//! Owns everything slow and everything about delivery: building and enriching events,
//! sealing batches (by count, by bytes, and at least every `flush_interval`: a timed flush
//! first takes in what was queued at its tick, so that an event recorded at `t` is in a
//! sealed batch by `t + flush_interval`), keeping as
//! many batches in flight as the [`Pace`] allows (which adapts the window and the batch
//! size to the backlog, within `max_in_flight`, `batch_size` and `batch_bytes`),
//! scheduling retries on timers (new events keep batching meanwhile; due retries are sent
//! first), pausing all sending for a `Retry-After`, splitting a batch the destination
//! found too large, and accounting for every event (its log lines about losses come one
//! warning and one summary per episode, see [`Episodes`]). Holds at most
//! `max_events` events and `max_bytes` of event JSON itself; beyond that it leaves
//! exchanges in the queue, which then fills and drops (counted) on the request side. With
//! a shared session store, a backlog is enriched in gatherings of up to 256 exchanges (or
//! 1 MiB of their data), one store round trip each. Each event that passed the privacy
//! stage is shown to the observer (OpenTelemetry) before it is serialised; with no sink,
//! the observer alone takes it.
//! Never touches a request.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::batch::{Batch, Batcher, json_size};
use super::build;
use super::config::DeliveryConfig;
use super::enrich::Enricher;
use super::episodes::{Episodes, Loss};
use super::observe::Observer;
use super::pace::Pace;
use super::recorder::{Envelope, Recorder};
use super::spawn::{AnalyticsWorker, WorkerControl};
use super::tools::ToolCatalog;
use crate::privacy::Privacy;
use crate::sink::{Kind, Sink};
use crate::stats::{Counters, DropReason};

/// Where the worker's finished events go: a sink, observers, or both.
pub(crate) struct Outlets {
    /// Batches of events; `None` when only observers take them (nothing is serialised).
    pub(crate) sink: Option<Arc<dyn Sink>>,
    pub(crate) observer: Option<Box<dyn Observer>>,
}

/// The request path's recorder and the worker that drains its queue (not yet running),
/// with the control that stops it.
pub(crate) fn pipeline(
    config: DeliveryConfig,
    outlets: Outlets,
    enricher: Enricher,
    privacy: Arc<Privacy>,
    counters: Arc<Counters>,
) -> (Arc<Recorder>, AnalyticsWorker, WorkerControl) {
    let (tx, rx) = mpsc::channel(config.queue_capacity);
    let wake = Arc::new(Notify::new());
    let wake_at = WAKE_EVERY.min(config.batch_size).min(config.queue_capacity);
    let recorder = Arc::new(Recorder::new(
        tx,
        Arc::clone(&wake),
        wake_at,
        Arc::clone(&counters),
        config.queue_bytes,
        config.queue_capacity,
    ));
    let (worker, control) =
        AnalyticsWorker::new(run(rx, wake, outlets, enricher, privacy, counters, config));
    (recorder, worker, control)
}

/// Runs until every sender is gone and everything held is resolved, or until shutdown
/// aborts it.
async fn run(
    rx: mpsc::Receiver<Envelope>,
    wake: Arc<Notify>,
    outlets: Outlets,
    enricher: Enricher,
    privacy: Arc<Privacy>,
    counters: Arc<Counters>,
    config: DeliveryConfig,
) {
    let pace = Pace::new(config.max_in_flight, config.batch_size, config.batch_bytes);
    let mut worker = Worker {
        episodes: Episodes::new(Arc::clone(&counters)),
        rx,
        sink: outlets.sink,
        observer: outlets.observer,
        ended: Vec::new(),
        enricher,
        tools: ToolCatalog::default(),
        privacy,
        counters,
        config,
        built: Vec::new(),
        held_bytes: 0,
        built_bytes: 0,
        batcher: Batcher::new(pace.batch_events(), pace.target_bytes()),
        pace,
        event_bytes: ASSUMED_EVENT_BYTES,
        ready: Vec::new(),
        retries: Vec::new(),
        in_flight: JoinSet::new(),
        paused_until: None,
        flushes: Vec::new(),
        closed: false,
        due: None,
    };
    let period = config.flush_interval;
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        worker.take_in();
        // Holding as much as allowed with nothing in flight: send what there is, so that the
        // queue moves again. (With batches in flight, their end makes room; sealing the
        // open batch early would only make many small batches of a backlog.)
        let stuck = worker.full() && worker.in_flight.is_empty();
        // A timed flush seals the open batch once what was queued at the tick is in it.
        let timed = worker.timed_flush_ready();
        let force = worker.flushing() || worker.closed || stuck || timed;
        worker.prepare(force).await;
        if timed {
            worker.due = None;
        }
        worker.settle_finished();
        worker.dispatch();
        if worker.idle() {
            // Observers finish their own work (e.g. exporting) before a flush is
            // acknowledged or the worker ends.
            let wait = match &mut worker.observer {
                Some(observer) if worker.closed => observer.close(),
                Some(observer) if !worker.flushes.is_empty() => observer.flush(),
                _ => None,
            };
            if let Some(wait) = wait {
                wait.await;
            }
            for ack in worker.flushes.drain(..) {
                let _ = ack.send(());
            }
            if worker.closed {
                return;
            }
        }
        // More is waiting: let the requests sharing this runtime run first, then go on.
        if worker.more_waiting() {
            tokio::task::yield_now().await;
            continue;
        }
        let deadline = worker.next_deadline();
        tokio::select! {
            () = wake.notified() => {}
            _ = tick.tick() => {
                worker.pace.review();
                worker.episodes.review();
                if let Some(observer) = &mut worker.observer {
                    observer.tick();
                }
                worker.due = Some(worker.rx.len());
            }
            () = sleep_until(deadline) => {}
            Some(done) = worker.in_flight.join_next(), if !worker.in_flight.is_empty() => {
                if let Ok(sent) = done {
                    worker.settle(sent);
                }
            }
        }
    }
}

/// Most exchanges built and enriched between two yields to the runtime. The worker
/// usually shares its runtime with the server: working through a long backlog in one go
/// would hold up every request waiting behind it.
const TAKE_AT_ONCE: usize = 16;

/// Most exchanges gathered, while a backlog waits, before a shared session store is asked
/// about them: one round trip for many exchanges, so that the worker keeps up.
const ENRICH_AT_ONCE: usize = 256;
/// Most bytes of request and response data gathered so (large exchanges are few).
const ENRICH_BYTES: usize = 1 << 20;

/// Most exchanges waiting in the queue before the request path wakes the worker (fewer
/// when fewer fill the open batch, and never more than the queue holds).
pub(crate) const WAKE_EVERY: usize = 100;
/// What an event's JSON is taken to weigh until the worker has seen some.
const ASSUMED_EVENT_BYTES: usize = 512;

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What became of one attempt, as its sending task hands it back. A batch that is done
/// with (delivered, or lost to a panicking sink) is dropped by that task, off the worker:
/// freeing thousands of events is work the worker need not do.
enum Sent {
    Delivered { events: u64, bytes: usize },
    Panicked { events: u64, bytes: usize },
    Failed(Batch, crate::sink::SinkError),
}

/// What one call of the sink came to.
enum Attempt {
    Delivered,
    Failed(crate::sink::SinkError),
    Panicked,
}

struct Worker {
    /// Log lines about losses, one warning and one summary per episode.
    episodes: Episodes,
    rx: mpsc::Receiver<Envelope>,
    /// `None`: observers alone take the events.
    sink: Option<Arc<dyn Sink>>,
    /// Sees every event that passed the privacy stage (OpenTelemetry).
    observer: Option<Box<dyn Observer>>,
    /// Sessions ended (a DELETE), forgotten by the enricher and told to the observer once
    /// the events taken in before the end have been enriched and observed.
    ended: Vec<String>,
    enricher: Enricher,
    /// The tools the server advertised, to flag calls of others.
    tools: ToolCatalog,
    privacy: Arc<Privacy>,
    counters: Arc<Counters>,
    config: DeliveryConfig,
    /// Exchanges built into events, waiting for enrichment.
    built: Vec<build::Built>,
    /// Bytes of event JSON batched, in flight or awaiting a retry.
    held_bytes: usize,
    /// Bytes of request and response data behind the exchanges in `built`.
    built_bytes: usize,
    batcher: Batcher,
    /// The adaptive window and batch size.
    pace: Pace,
    /// About what one event's JSON weighs lately (from the open batch).
    event_bytes: usize,
    /// Sealed batches waiting for a sending slot (retries that are due go first).
    ready: Vec<Batch>,
    /// Batches waiting for their retry time.
    retries: Vec<(Instant, Batch)>,
    in_flight: JoinSet<Sent>,
    /// No sending before this (the destination asked for a pause).
    paused_until: Option<Instant>,
    /// Flush requests waiting for everything held to be resolved.
    flushes: Vec<oneshot::Sender<()>>,
    /// Every sender is gone: finish what is held, then stop.
    closed: bool,
    /// A timed flush is due: how many queue entries (those queued at the tick) are still
    /// to be taken in before it seals the open batch.
    due: Option<usize>,
}

impl Worker {
    fn flushing(&self) -> bool {
        !self.flushes.is_empty()
    }

    fn held(&self) -> u64 {
        self.counters.in_worker.load(Relaxed)
    }

    /// Holding as many events, or as many bytes of event JSON, as allowed.
    fn full(&self) -> bool {
        self.held() >= self.config.queue_capacity as u64
            || self.held_bytes + self.built_bytes >= self.config.queue_bytes
    }

    /// Whether to go on taking in before enriching: a shared session store costs a round
    /// trip per call, so while a backlog waits the worker gathers up to
    /// [`ENRICH_AT_ONCE`] exchanges ([`ENRICH_BYTES`] of their data) for one call.
    fn gathering(&self) -> bool {
        self.enricher.shares_sessions()
            && self.built.len() < ENRICH_AT_ONCE
            && self.built_bytes < ENRICH_BYTES
            && self.more_waiting()
    }

    /// Whether exchanges wait in the queue that the worker could take in now.
    fn more_waiting(&self) -> bool {
        !self.flushing() && !self.closed && !self.full() && !self.rx.is_empty()
    }

    /// Takes up to [`TAKE_AT_ONCE`] exchanges off the queue while there is room, until a
    /// flush request (which is served before anything recorded after it).
    fn take_in(&mut self) {
        self.counters.wake_requested.store(false, Relaxed);
        let mut taken = 0;
        while taken < TAKE_AT_ONCE && !self.flushing() && !self.closed && !self.full() {
            taken += 1;
            match self.rx.try_recv() {
                Ok(envelope) => {
                    if let Some(due) = &mut self.due {
                        *due = due.saturating_sub(1);
                    }
                    self.receive(envelope);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => self.closed = true,
            }
        }
    }

    /// Builds a queued exchange's events, or notes a flush request or an ended session.
    fn receive(&mut self, envelope: Envelope) {
        match envelope {
            Envelope::Exchange(queued) => {
                let bytes = queued.bytes();
                let Some(finished) = queued.take() else {
                    return;
                };
                if finished.info.hook_failed {
                    // A tags or properties hook panicked: these events are not sent half-made.
                    self.lose(DropReason::HookFailed, finished.calls.len() as u64, 0);
                    return;
                }
                self.built_bytes += bytes;
                self.built.push(build::events(finished, &self.privacy));
            }
            Envelope::Flush(ack) => self.flushes.push(ack),
            // A shared store is told with the next batch; this instance forgets the
            // session once the events built before the end are enriched (`prepare`).
            Envelope::SessionEnded(session) => {
                self.enricher.session_ending(&session);
                self.ended.push(session);
            }
        }
    }

    /// Whether a due timed flush may seal the open batch now: everything queued at the
    /// tick has been taken in, or nothing more can be taken in for now.
    fn timed_flush_ready(&self) -> bool {
        self.due.is_some_and(|n| n == 0) || (self.due.is_some() && !self.more_waiting())
    }

    /// Enriches what was built and seals batches: full ones always, the open one when
    /// `force` (the flush interval passed, a flush was asked for, or the worker closes).
    /// Publishes about how many more events get the open batch sealed, for the request
    /// path's wake-up rule.
    async fn prepare(&mut self, force: bool) {
        self.batcher.set_max_bytes(self.pace.target_bytes());
        if !self.built.is_empty() && (force || !self.gathering()) {
            let events = self.enricher.enrich(std::mem::take(&mut self.built)).await;
            self.built_bytes = 0;
            for mut event in events {
                self.tools.note(&mut event);
                let safe = self.privacy.apply(event);
                if let (Ok(event), Some(observer)) = (&safe, &mut self.observer)
                    && catch_unwind(AssertUnwindSafe(|| observer.event(event))).is_err()
                {
                    self.counters.telemetry_panicked();
                }
                if safe.is_ok() && self.sink.is_none() {
                    // Observers alone take events: handed over is delivered.
                    self.counters.delivered(1);
                    self.release(1, 0);
                    continue;
                }
                match safe.map(|event| self.privacy.serialize(event)) {
                    Ok(Some(json)) => {
                        self.held_bytes += json_size(&json);
                        self.ready.extend(self.batcher.add(json));
                    }
                    Ok(None) => self.lose(DropReason::Rejected, 1, 0),
                    Err(reason) => self.lose(reason, 1, 0),
                }
            }
        }
        if self.built.is_empty() {
            // Only now: the session's last events, built before its end was noted, have
            // been enriched (with the session's client) and observed.
            for session in self.ended.drain(..) {
                self.enricher.session_ended(&session);
                if let Some(observer) = &mut self.observer {
                    observer.session_ended(&session);
                }
            }
        }
        self.ready.extend(self.batcher.seal(force));
        if let Some(average) = self
            .batcher
            .open_bytes()
            .checked_div(self.batcher.open_len())
        {
            self.event_bytes = average.max(1);
        }
        self.counters
            .seal_in
            .store(self.batcher.room_for(self.event_bytes), Relaxed);
    }

    /// Starts sends while the window has free slots and the destination has not asked for
    /// a pause; tells the pace when a sealed batch is left waiting for a slot.
    fn dispatch(&mut self) {
        let now = Instant::now();
        if self.paused_until.is_some_and(|until| until > now) {
            return;
        }
        self.paused_until = None;
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retries)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.retries = waiting;
        for (_, batch) in due.into_iter().rev() {
            self.ready.insert(0, batch);
        }
        while self.in_flight.len() < self.pace.window() && !self.ready.is_empty() {
            let Some(sink) = self.sink.as_ref().map(Arc::clone) else {
                break;
            };
            let batch = self.ready.remove(0);
            self.in_flight.spawn(async move {
                let (events, bytes) = (batch.len() as u64, batch.json_bytes());
                match attempt(&*sink, &batch).await {
                    Attempt::Delivered => Sent::Delivered { events, bytes },
                    Attempt::Panicked => Sent::Panicked { events, bytes },
                    Attempt::Failed(error) => Sent::Failed(batch, error),
                }
            });
        }
        if !self.ready.is_empty() {
            self.pace.batch_waited();
        }
    }

    /// Settles every attempt that has finished, so that its slot is free again even while
    /// a backlog keeps the worker from waiting for one.
    fn settle_finished(&mut self) {
        while let Some(done) = self.in_flight.try_join_next() {
            if let Ok(sent) = done {
                self.settle(sent);
            }
        }
    }

    /// Accounts for a finished attempt: delivered, retried, split, or lost with a reason.
    fn settle(&mut self, sent: Sent) {
        let (mut batch, error) = match sent {
            Sent::Delivered { events, bytes } => {
                self.pace.delivered();
                self.counters.delivered(events);
                self.counters.batch_delivered();
                self.release(events, bytes);
                return;
            }
            Sent::Panicked { events, bytes } => {
                self.episodes.lost(
                    Loss::SinkPanicked,
                    events,
                    &"the sink panicked; batch dropped",
                );
                return self.lose(DropReason::SinkPanicked, events, bytes);
            }
            Sent::Failed(batch, error) => (batch, error),
        };
        let n = batch.len() as u64;
        let bytes = batch.json_bytes();
        match error.kind() {
            Kind::Rejected => {
                self.episodes.lost(Loss::Rejected, n, &error);
                self.lose(DropReason::Rejected, n, bytes);
            }
            Kind::TooLarge => {
                self.pace.too_large(batch.len(), bytes);
                match batch.split() {
                    Some((first, second)) => {
                        self.ready.insert(0, second);
                        self.ready.insert(0, first);
                    }
                    None => {
                        self.episodes.lost(Loss::TooLarge, n, &error);
                        self.lose(DropReason::TooLarge, n, bytes);
                    }
                }
            }
            Kind::Retryable { retry_after } => {
                self.pace.failed();
                let policy = self.config.retry;
                if batch.attempt() >= policy.max_attempts {
                    self.episodes.lost(Loss::RetriesExhausted, n, &error);
                    return self.lose(DropReason::RetriesExhausted, n, bytes);
                }
                let fraction = crate::event::ids::random_fraction();
                let mut wait = policy.backoff(batch.attempt(), fraction);
                let now = Instant::now();
                if let Some(asked) = retry_after {
                    wait = policy.pause(wait, asked);
                    let until = now + wait;
                    self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
                }
                tracing::debug!(%error, attempt = batch.attempt(), ?wait, "mcp analytics batch will be retried");
                self.counters.retried();
                batch.next_attempt();
                self.retries.push((now + wait, batch));
            }
        }
    }

    /// Counts `n` events as lost for `reason` and lets them go (`bytes`: their batched
    /// JSON, 0 for events that never reached a batch).
    fn lose(&mut self, reason: DropReason, n: u64, bytes: usize) {
        self.counters.dropped(reason, n);
        self.release(n, bytes);
    }

    /// Stops holding `n` events and `bytes` of their batched JSON.
    fn release(&mut self, n: u64, bytes: usize) {
        self.counters.in_worker.fetch_sub(n, Relaxed);
        self.held_bytes -= bytes;
    }

    /// Nothing held: every event taken in is delivered or counted as lost.
    fn idle(&self) -> bool {
        self.built.is_empty()
            && self.batcher.is_empty()
            && self.ready.is_empty()
            && self.retries.is_empty()
            && self.in_flight.is_empty()
    }

    /// When the worker must look again on its own: the next retry, never before the end
    /// of a pause while anything waits to be sent.
    fn next_deadline(&self) -> Option<Instant> {
        let retry = self.retries.iter().map(|(at, _)| *at).min();
        match self.paused_until {
            Some(until) if retry.is_some() || !self.ready.is_empty() => {
                Some(retry.map_or(until, |at| at.max(until)))
            }
            _ => retry,
        }
    }
}

/// One attempt, with panics in the sink (making the future or polling it) caught.
async fn attempt(sink: &dyn Sink, batch: &Batch) -> Attempt {
    let future = match catch_unwind(AssertUnwindSafe(|| sink.send(batch))) {
        Ok(future) => future,
        Err(_) => return Attempt::Panicked,
    };
    match CatchUnwind(future).await {
        Ok(Ok(())) => Attempt::Delivered,
        Ok(Err(error)) => Attempt::Failed(error),
        Err(()) => Attempt::Panicked,
    }
}

/// Polls a future, turning a panic into `Err(())`.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(_) => Poll::Ready(Err(())),
        }
    }
}
