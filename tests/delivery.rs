//! Delivery: events recorded by the layer reach a real HTTP collector (the fake one in
//! `tests/common/collector.rs`) through the real `HttpSink`, whatever the collector does:
//! goes down and comes back, answers 5xx, 429 with `Retry-After`, 400, 413, hangs, answers
//! too late, or is slow while the server is overloaded. Also the wire format (gzip, headers), shutdown with
//! a healthy and a hung collector, retries through the JSON-lines sink and a custom
//! `Sink`, keeping up with a distant collector, the flush interval, and how many log
//! lines losses cause.
//!
//! Every test checks the accounting invariant
//! `recorded = delivered + dropped.total() + in_queue`. Event identity is checked two
//! ways: the ids of the events the worker handed to the sink (a recording wrapper around
//! the real sink, holding what a `MemorySink` would), and the JSON-RPC id of the request
//! each event came from (`request_id`), which the test chose.
//!
//! Requests are driven through the layer in process (a `tower::service_fn` JSON-RPC
//! responder called with `oneshot`), except where the real rmcp server shows that a hung
//! collector leaves real HTTP traffic alone. Retries use millisecond backoffs; only the
//! `Retry-After: 2` test waits for real.

mod common;
#[path = "support/echo_call.rs"]
mod echo_call;

use std::collections::{BTreeSet, HashSet};
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Mode;
use common::collector::{Collector, GZIP_ABOVE, Received, Reply};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::io::AsyncWrite;
use tower::{Layer, ServiceExt, service_fn};
use tower_mcp_analytics::sink::{Batch, Sink, SinkError, SinkFuture};
use tower_mcp_analytics::{
    AnalyticsLayer, AnalyticsLayerBuilder, Event, HttpSink, JsonLinesSink, MemorySink, ReplayBody,
    Stats, WorkerRuntime,
};

/// Generous bound for anything asynchronous; only reached when a test fails.
const WAIT: Duration = Duration::from_secs(15);

const USER_AGENT: &str = concat!("tower-mcp-analytics/", env!("CARGO_PKG_VERSION"));

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------------------------------
// What the worker handed to the sink
// ---------------------------------------------------------------------------------------

/// One call of `Sink::send`.
#[derive(Debug, Clone)]
struct Attempt {
    batch_id: String,
    attempt: u32,
    events: usize,
}

#[derive(Debug, Default)]
struct HandedState {
    /// Each event once, in the order first handed over (what a `MemorySink` would hold
    /// if every attempt succeeded).
    events: Vec<Event>,
    /// The JSON the batch serialised for each event in `events`.
    json: Vec<String>,
    seen: HashSet<String>,
    attempts: Vec<Attempt>,
}

/// Shared record of every batch the worker handed to a sink.
#[derive(Debug, Clone, Default)]
struct Handed(Arc<Mutex<HandedState>>);

impl Handed {
    fn lock(&self) -> MutexGuard<'_, HandedState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn note(&self, batch: &Batch) {
        let mut state = self.lock();
        state.attempts.push(Attempt {
            batch_id: batch.id().to_owned(),
            attempt: batch.attempt(),
            events: batch.events().len(),
        });
        for (event, json) in batch.events().iter().zip(batch.events_json()) {
            if state.seen.insert(event.id.clone()) {
                state.events.push(event.clone());
                state.json.push(json.get().to_owned());
            }
        }
    }

    fn ids(&self) -> Vec<String> {
        self.lock().events.iter().map(|e| e.id.clone()).collect()
    }

    fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    fn attempts(&self) -> Vec<Attempt> {
        self.lock().attempts.clone()
    }

    /// The `attempt` number of each call of `Sink::send`, in order.
    fn attempt_numbers(&self) -> Vec<u32> {
        self.lock().attempts.iter().map(|a| a.attempt).collect()
    }
}

/// Records every batch it is handed, then lets `inner` make the attempt.
struct Tee<S> {
    inner: S,
    handed: Handed,
}

fn tee<S: Sink>(inner: S) -> (Tee<S>, Handed) {
    let handed = Handed::default();
    (
        Tee {
            inner,
            handed: handed.clone(),
        },
        handed,
    )
}

impl<S: Sink> Sink for Tee<S> {
    fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a> {
        self.handed.note(batch);
        self.inner.send(batch)
    }
}

// ---------------------------------------------------------------------------------------
// Layers, sinks and traffic
// ---------------------------------------------------------------------------------------

/// An `HttpSink` to the collector with short timeouts (a hang test sets its own).
fn http_sink(collector: &Collector) -> HttpSink {
    HttpSink::new(collector.url())
        .timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(1))
}

/// A collector that never answers, and an `HttpSink` to it that waits a minute.
async fn hung_collector() -> (Collector, HttpSink) {
    let collector = Collector::start().await;
    collector.set_default(Reply::Hang);
    let sink = HttpSink::new(collector.url()).timeout(Duration::from_secs(60));
    (collector, sink)
}

/// A builder with fast retries and a short flush interval.
fn fast(sink: impl Sink) -> AnalyticsLayerBuilder {
    AnalyticsLayer::builder()
        .sink(sink)
        .backoff(ms(10), ms(50))
        .flush_interval(ms(20))
        .max_attempts(5)
}

/// A builder whose batches are sealed only when full or on `flush()` (see [`start`]), so
/// that a test knows exactly which events travel together.
fn on_flush_only(sink: impl Sink) -> AnalyticsLayerBuilder {
    fast(sink).flush_interval(Duration::from_secs(60))
}

/// A [`start`]ed [`on_flush_only`] layer, further set up by `configure`, sending to
/// `sink` through a [`tee`]; and what it handed over.
async fn start_teed(
    sink: impl Sink,
    configure: impl FnOnce(AnalyticsLayerBuilder) -> AnalyticsLayerBuilder,
) -> (AnalyticsLayer, Handed) {
    let (sink, handed) = tee(sink);
    (start(configure(on_flush_only(sink))).await, handed)
}

/// Builds the layer and lets its worker settle before anything is recorded. The worker's
/// first flush tick comes as soon as it starts and seals whatever it has taken in by then;
/// once a first `flush()` is answered and the idle worker has had a moment, that tick has
/// passed with nothing to seal, so with [`on_flush_only`] batches are sealed only when
/// full or flushed.
async fn start(builder: AnalyticsLayerBuilder) -> AnalyticsLayer {
    let layer = builder.build();
    tokio::time::timeout(WAIT, layer.flush())
        .await
        .expect("the worker starts");
    tokio::time::sleep(ms(50)).await;
    layer
}

/// The in-process MCP server: answers every JSON-RPC request with a result echoing its id.
async fn answer(
    request: Request<ReplayBody<Full<Bytes>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let bytes = request
        .into_body()
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default();
    let id = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|request| request.get("id").cloned())
        .unwrap_or(Value::Null);
    let reply = json!({
        "jsonrpc": "2.0",
        "id": id,
        "result": { "content": [{ "type": "text", "text": format!("ok {id}") }], "isError": false },
    });
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(reply.to_string())))
        .expect("a valid response"))
}

/// A `tools/call` with JSON-RPC id `id` through the layer, in process; checks the answer
/// is the one the server gave. One event.
async fn call(layer: &AnalyticsLayer, id: u64) {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": { "name": "echo", "arguments": { "text": format!("hello {id}") } },
    });
    let request = Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid request");
    let response = layer
        .layer(service_fn(answer))
        .oneshot(request)
        .await
        .unwrap_or_else(|never| match never {});
    assert_eq!(response.status(), 200);
    let bytes = response
        .into_body()
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_else(|never| match never {});
    let reply: Value = serde_json::from_slice(&bytes).expect("a JSON answer");
    assert_eq!(reply["id"], json!(id), "{reply}");
    assert_eq!(reply["result"]["content"][0]["text"], format!("ok {id}"));
}

/// `call` for every id in `ids`.
async fn calls(layer: &AnalyticsLayer, ids: impl IntoIterator<Item = u64>) {
    for id in ids {
        call(layer, id).await;
    }
}

/// `call` for every id in `ids`, then [`flush`].
async fn calls_and_flush(
    layer: &AnalyticsLayer,
    collector: &Collector,
    ids: impl IntoIterator<Item = u64>,
) {
    calls(layer, ids).await;
    flush(layer, collector).await;
}

/// `flush()`, failing with the collector's log instead of hanging.
async fn flush(layer: &AnalyticsLayer, collector: &Collector) {
    if tokio::time::timeout(WAIT, layer.flush()).await.is_err() {
        panic!(
            "flush did not finish within {WAIT:?}; {:?}\nrequests:\n{}",
            layer.stats(),
            collector.describe()
        );
    }
}

/// Polls `done` every 5 ms until it holds; panics with `what` after [`WAIT`].
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(ms(5)).await;
    }
}

fn assert_balanced(stats: &Stats) {
    assert_eq!(
        stats.recorded,
        stats.delivered + stats.dropped.total() + stats.in_queue,
        "{stats:?}"
    );
}

/// `request_id` of each event, sorted (every event here comes from a numbered call).
fn request_ids(events: &[Value]) -> Vec<u64> {
    let mut ids: Vec<u64> = events
        .iter()
        .map(|event| {
            event["request_id"]
                .as_u64()
                .unwrap_or_else(|| panic!("event without a numeric request_id: {event}"))
        })
        .collect();
    ids.sort_unstable();
    ids
}

/// Checks that every event handed to the sink is stored exactly once and that they are
/// the events of the calls `ids`.
fn assert_stored_once(collector: &Collector, handed: &Handed, ids: impl IntoIterator<Item = u64>) {
    let stored = collector.assert_each_event_once(handed.ids());
    assert_eq!(request_ids(&stored), ids.into_iter().collect::<Vec<_>>());
}

/// Checks the HTTP status of each of `requests`, in order.
fn assert_statuses(collector: &Collector, requests: &[Received], expected: &[u16]) {
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, expected, "{}", collector.describe());
}

/// Requests to the events endpoint, in arrival order.
fn batch_requests(collector: &Collector) -> Vec<Received> {
    collector
        .received()
        .into_iter()
        .filter(|r| r.reply.is_some())
        .collect()
}

/// A batch body with its events kept as the exact JSON text sent.
#[derive(Debug, Deserialize)]
struct WireBatch {
    schema: String,
    batch_id: String,
    events: Vec<Box<RawValue>>,
}

fn wire_batch(request: &Received) -> WireBatch {
    serde_json::from_slice(&request.decoded_body).expect("a version 1 batch body")
}

// ---------------------------------------------------------------------------------------
// Collector outages and HTTP answers
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_goes_down_then_up_gets_every_event_exactly_once() {
    let mut collector = Collector::start().await;
    let (sink, handed) = tee(http_sink(&collector));
    let layer = fast(sink)
        .backoff(ms(20), ms(100))
        .max_attempts(1_000)
        .batch_size(10)
        .build();

    // Up: a first batch goes through (and leaves a pooled connection behind).
    calls_and_flush(&layer, &collector, 0..5).await;
    assert_eq!(
        collector.stored_events().len(),
        5,
        "{}",
        collector.describe()
    );

    // Down: connections are refused and batches are retried meanwhile.
    collector.go_down().await;
    let before_down = collector.request_count();
    calls(&layer, 5..20).await;
    eventually("attempts against the stopped collector", || {
        layer.stats().retries >= 3
    })
    .await;
    calls(&layer, 20..30).await;
    tokio::time::sleep(ms(300)).await;
    assert_eq!(
        collector.request_count(),
        before_down,
        "nothing reaches a stopped collector"
    );
    let stats = layer.stats();
    assert_eq!(stats.delivered, 5, "{stats:?}");
    assert_eq!(stats.in_queue, 25, "{stats:?}");
    assert_eq!(stats.dropped.total(), 0, "{stats:?}");

    // Up again on the same URL: everything arrives.
    collector.go_up().await;
    flush(&layer, &collector).await;

    let stored = collector.assert_each_event_once(handed.ids());
    assert_eq!(handed.ids().len(), 30);
    assert_eq!(request_ids(&stored), (0..30).collect::<Vec<_>>());
    collector.assert_wire_format(None);
    let stats = layer.stats();
    assert_eq!(stats.recorded, 30, "{stats:?}");
    assert_eq!(stats.delivered, 30, "{stats:?}");
    assert_eq!(stats.in_queue, 0, "{stats:?}");
    assert_eq!(stats.dropped.total(), 0, "{stats:?}");
    assert!(stats.retries >= 3, "{stats:?}");
    assert_balanced(&stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_with_the_same_batch_id_and_bytes() {
    let collector = Collector::start().await;
    collector.script([Reply::Status(500), Reply::Status(500)]);
    let (layer, handed) = start_teed(http_sink(&collector), |b| b).await;

    // Enough events for a gzip body: retries must re-send the same compressed bytes.
    calls_and_flush(&layer, &collector, 0..10).await;

    let requests = batch_requests(&collector);
    assert_statuses(&collector, &requests, &[500, 500, 202]);
    let first = &requests[0];
    let batch_id = first.batch_id().expect("a batch id").to_owned();
    for r in &requests {
        assert_eq!(
            r.batch_id(),
            Some(batch_id.as_str()),
            "{}",
            collector.describe()
        );
        assert_eq!(r.header("idempotency-key"), Some(batch_id.as_str()));
        assert!(r.is_gzip(), "a body over {GZIP_ABOVE} bytes is compressed");
        assert_eq!(
            r.raw_body, first.raw_body,
            "attempt #{} re-sent different bytes",
            r.index
        );
    }
    let attempts = handed.attempts();
    assert_eq!(
        attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(
        attempts
            .iter()
            .all(|a| a.batch_id == batch_id && a.events == 10)
    );

    assert_stored_once(&collector, &handed, 0..10);
    collector.assert_wire_format(None);
    let stats = layer.stats();
    assert_eq!(stats.retries, 2, "{stats:?}");
    assert_eq!(stats.delivered, 10, "{stats:?}");
    assert_eq!(stats.batches, 1, "{stats:?}");
    assert_eq!(stats.dropped.total(), 0, "{stats:?}");
    assert_balanced(&stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_pauses_all_sending_then_delivers() {
    let collector = Collector::start().await;
    collector.script([Reply::StatusWithRetryAfter(429, "2".into())]);
    let (layer, handed) = start_teed(http_sink(&collector), |b| b.batch_size(3)).await;

    calls(&layer, 0..3).await;
    let first = collector.wait_for_requests(1, WAIT).await;
    assert_eq!(
        first.first().map(|r| r.status),
        Some(429),
        "{}",
        collector.describe()
    );
    // Once the layer has the 429, a second batch sealed during the pause must wait too.
    eventually("the 429 to reach the worker", || layer.stats().retries == 1).await;
    calls_and_flush(&layer, &collector, 3..6).await;

    let requests = batch_requests(&collector);
    let refused_at = requests[0].at;
    assert!(requests.len() >= 3, "{}", collector.describe());
    for r in &requests[1..] {
        let after = r.at.duration_since(refused_at);
        assert!(
            after >= Duration::from_secs(2),
            "request #{} came {after:?} after the 429 with Retry-After: 2\n{}",
            r.index,
            collector.describe()
        );
    }
    assert_eq!(
        requests[1..]
            .iter()
            .filter(|r| r.batch_id() == requests[0].batch_id())
            .count(),
        1,
        "the refused batch is sent again once, with its id"
    );

    assert_stored_once(&collector, &handed, 0..6);
    let stats = layer.stats();
    assert_eq!(stats.retries, 1, "{stats:?}");
    assert_eq!(stats.delivered, 6, "{stats:?}");
    assert_eq!(stats.dropped.total(), 0, "{stats:?}");
    assert_balanced(&stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_is_not_retried_and_counts_as_rejected() {
    let collector = Collector::start().await;
    collector.script([Reply::Status(400)]);
    let (layer, _handed) = start_teed(http_sink(&collector), |b| b).await;

    calls_and_flush(&layer, &collector, 0..3).await;
    // Longer than any retry could wait with this backoff.
    tokio::time::sleep(ms(300)).await;

    assert_eq!(collector.statuses(), [400], "{}", collector.describe());
    let stats = layer.stats();
    assert_eq!(stats.dropped.rejected, 3, "{stats:?}");
    assert_eq!(stats.retries, 0, "{stats:?}");
    assert_eq!(stats.delivered, 0, "{stats:?}");
    assert_eq!(stats.in_queue, 0, "{stats:?}");
    assert_balanced(&stats);

    // The next batch is unaffected.
    calls_and_flush(&layer, &collector, 3..5).await;
    assert_eq!(collector.statuses(), [400, 202]);
    assert_eq!(request_ids(&collector.stored_events()), [3, 4]);
    let stats = layer.stats();
    assert_eq!(
        (stats.delivered, stats.dropped.rejected),
        (2, 3),
        "{stats:?}"
    );
    assert_balanced(&stats);
}

/// The length of one event's JSON for a `call` (measured through a `MemorySink`).
async fn event_size() -> usize {
    let sink = MemorySink::new();
    let layer = AnalyticsLayer::new(sink.clone());
    call(&layer, 0).await;
    layer.flush().await;
    let events = sink.events();
    assert_eq!(events.len(), 1);
    serde_json::to_string(&events[0]).expect("event JSON").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_413_splits_the_batch_and_both_halves_are_delivered() {
    let size = event_size().await;
    let collector = Collector::start().await;
    // A batch of 8 is about 8 * size + 150 bytes, a half about 4 * size + 150.
    collector.set_default(Reply::TooLargeAbove(6 * size));
    let (layer, handed) = start_teed(http_sink(&collector), |b| b).await;

    calls_and_flush(&layer, &collector, 0..8).await;

    let requests = batch_requests(&collector);
    assert_eq!(
        requests
            .iter()
            .map(|r| (r.status, r.events().len()))
            .collect::<Vec<_>>(),
        [(413, 8), (202, 4), (202, 4)],
        "{}",
        collector.describe()
    );
    let ids: HashSet<&str> = requests.iter().filter_map(Received::batch_id).collect();
    assert_eq!(ids.len(), 3, "each half has a new batch id");
    // Both halves are in flight together, so they may arrive in either order.
    let refused = requests[0].event_ids();
    let mut halves = [requests[1].event_ids(), requests[2].event_ids()];
    halves.sort_by_key(|half| refused.iter().position(|id| *id == half[0]));
    assert_eq!(
        halves,
        [refused[..4].to_vec(), refused[4..].to_vec()],
        "the halves carry the refused batch's events"
    );

    assert_stored_once(&collector, &handed, 0..8);
    collector.assert_wire_format(None);
    let stats = layer.stats();
    assert_eq!(stats.dropped.too_large, 0, "{stats:?}");
    assert_eq!(stats.delivered, 8, "{stats:?}");
    assert_eq!(stats.batches, 2, "{stats:?}");
    assert_eq!(stats.dropped.total(), 0, "{stats:?}");
    assert_balanced(&stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_413_splits_until_the_parts_fit_and_drops_only_a_single_event_too_large() {
    let size = event_size().await;

    // Halves are still too large; quarters fit.
    let collector = Collector::start().await;
    collector.set_default(Reply::TooLargeAbove(3 * size));
    let (layer, handed) = start_teed(http_sink(&collector), |b| b).await;
    calls_and_flush(&layer, &collector, 0..8).await;
    let statuses = collector.statuses();
    assert_eq!(
        statuses.iter().filter(|s| **s == 413).count(),
        3,
        "{}",
        collector.describe()
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        4,
        "{}",
        collector.describe()
    );
    assert_stored_once(&collector, &handed, 0..8);
    let stats = layer.stats();
    assert_eq!(
        (stats.delivered, stats.dropped.too_large),
        (8, 0),
        "{stats:?}"
    );
    assert_balanced(&stats);

    // Not even one event fits: each is dropped as too large, none is retried.
    let collector = Collector::start().await;
    collector.set_default(Reply::TooLargeAbove(size / 2));
    let layer = start(on_flush_only(http_sink(&collector))).await;
    calls_and_flush(&layer, &collector, 0..4).await;
    // 4 -> 2 + 2 -> 1 + 1 + 1 + 1: seven refusals.
    assert_eq!(collector.statuses(), [413; 7], "{}", collector.describe());
    let stats = layer.stats();
    assert_eq!(stats.dropped.too_large, 4, "{stats:?}");
    assert_eq!(
        (stats.delivered, stats.retries, stats.in_queue),
        (0, 0, 0),
        "{stats:?}"
    );
    assert_balanced(&stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_answering_503_forever_exhausts_the_retries() {
    let collector = Collector::start().await;
    collector.set_default(Reply::Status(503));
    let (layer, handed) = start_teed(http_sink(&collector), |b| b.max_attempts(3)).await;

    calls_and_flush(&layer, &collector, 0..4).await;
    // Longer than another retry could wait with this backoff.
    tokio::time::sleep(ms(300)).await;

    let requests = batch_requests(&collector);
    assert_statuses(&collector, &requests, &[503, 503, 503]);
    assert!(
        requests
            .iter()
            .all(|r| r.batch_id() == requests[0].batch_id())
    );
    assert_eq!(handed.attempt_numbers(), [1, 2, 3]);
    let stats = layer.stats();
    assert_eq!(stats.dropped.retries_exhausted, 4, "{stats:?}");
    assert_eq!(stats.retries, 2, "{stats:?}");
    assert_eq!((stats.delivered, stats.in_queue), (0, 0), "{stats:?}");
    assert_balanced(&stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_attempt_is_retried_and_deduplicated_on_the_batch_id() {
    let collector = Collector::start().await;
    // The first attempt hangs; the second is processed but answered too late for the
    // sink's timeout (the collector keeps it); the third is answered at once.
    collector.script([Reply::Hang, Reply::Delay(ms(600), 202)]);
    let (layer, handed) = start_teed(http_sink(&collector).timeout(ms(300)), |b| b).await;

    calls_and_flush(&layer, &collector, 0..4).await;

    let requests = batch_requests(&collector);
    assert_statuses(&collector, &requests, &[0, 202, 202]);
    assert!(
        requests
            .iter()
            .all(|r| r.batch_id() == requests[0].batch_id())
    );
    assert!(requests.iter().all(|r| r.raw_body == requests[0].raw_body));
    // Accepted twice, stored once.
    assert_eq!(collector.accepted_events().len(), 8);
    assert_stored_once(&collector, &handed, 0..4);
    let stats = layer.stats();
    assert_eq!(
        (stats.retries, stats.delivered, stats.batches),
        (2, 4, 1),
        "{stats:?}"
    );
    assert_eq!(stats.dropped.total(), 0, "{stats:?}");
    assert_balanced(&stats);
}

// ---------------------------------------------------------------------------------------
// A hung collector, overload and shutdown
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_collector_leaves_requests_alone_and_the_queue_bounded() {
    const CAPACITY: u64 = 10;
    let (collector, sink) = hung_collector().await;
    let analytics = fast(sink)
        .queue_capacity(CAPACITY as usize)
        .batch_size(5)
        .max_in_flight(2)
        .build();
    let server = common::spawn(Mode::StatelessJson, |r| r.layer(analytics.clone())).await;

    // Real HTTP requests through the real server keep working, one after another.
    let mut sent = 0;
    let mut bounded = false;
    for i in 0..40 {
        let text = format!("hello {i}");
        let response = common::raw_legacy_tools_call(
            &server.url,
            "2025-11-25",
            "echo",
            json!({ "text": text }),
            None,
        );
        let response = tokio::time::timeout(WAIT, response)
            .await
            .expect("the request completes although the collector hangs");
        assert_eq!(response.status, 200, "{}", response.text());
        let answer = response.response_message().expect("a JSON-RPC answer");
        assert_eq!(answer["result"]["content"][0]["text"], text);
        sent += 1;

        let stats = analytics.stats();
        assert!(
            stats.in_queue <= CAPACITY * 2,
            "queue over its bound: {stats:?}"
        );
        assert_balanced(&stats);
        bounded |= stats.in_queue == CAPACITY * 2;
    }
    assert_eq!(
        collector.wait_for_requests(2, WAIT).await.len(),
        2,
        "two batches in flight, both hung"
    );
    if !bounded {
        eventually("the queue and the worker to fill", || {
            analytics.stats().in_queue == CAPACITY * 2
        })
        .await;
    }

    let stats = analytics.stats();
    assert_eq!(stats.recorded, sent, "{stats:?}");
    assert_eq!(stats.delivered, 0, "{stats:?}");
    assert_eq!(stats.in_queue, CAPACITY * 2, "{stats:?}");
    assert_eq!(stats.dropped.queue_full, sent - CAPACITY * 2, "{stats:?}");
    assert_eq!(stats.dropped.total(), stats.dropped.queue_full, "{stats:?}");

    // Full: every further event is dropped as queue_full, and requests still work.
    for i in 0..5 {
        let response = common::raw_legacy_tools_call(
            &server.url,
            "2025-11-25",
            "echo",
            json!({ "text": i.to_string() }),
            None,
        )
        .await;
        assert_eq!(response.status, 200, "{}", response.text());
    }
    let later = analytics.stats();
    assert_eq!(
        later.dropped.queue_full,
        stats.dropped.queue_full + 5,
        "{later:?}"
    );
    assert_eq!(later.in_queue, CAPACITY * 2, "{later:?}");
    assert_eq!(collector.request_count(), 2, "{}", collector.describe());

    let report = analytics.shutdown(ms(200)).await;
    assert!(!report.flushed);
    assert_eq!(report.stats.in_queue, 0, "{report:?}");
    assert_eq!(report.stats.dropped.shutdown, CAPACITY * 2, "{report:?}");
    assert_balanced(&report.stats);
}

/// With room for many events but few bytes, a hung collector makes the worker stop
/// taking events in once it holds `queue_bytes` of event JSON: what is held stays far
/// below the event bound and the rest is dropped and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_holds_at_most_queue_bytes_of_events_when_the_collector_hangs() {
    const EVENTS: u64 = 1_000;
    const BYTES: usize = 8 * 1024;
    const SENT: u64 = 300;
    let (_collector, sink) = hung_collector().await;
    let analytics = start(
        fast(sink)
            .queue_capacity(EVENTS as usize)
            .queue_bytes(BYTES)
            .batch_size(5)
            .max_in_flight(2),
    )
    .await;
    calls(&analytics, 1..=SENT).await;
    // An event's JSON is a few hundred bytes, and so is an exchange's data: the queue and
    // the worker each hold a few dozen, far from the 1,000 events each could hold.
    let most = 100;
    let stats = analytics.stats();
    assert_eq!(stats.recorded, SENT, "{stats:?}");
    assert!(
        stats.in_queue <= most,
        "more held than the bytes allow: {stats:?}"
    );
    assert!(stats.dropped.queue_full >= SENT - most, "{stats:?}");
    assert_balanced(&stats);
    let report = analytics.shutdown(ms(200)).await;
    assert_balanced(&report.stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_with_a_slow_collector_accounts_for_every_event() {
    const CAPACITY: u64 = 50;
    const SENT: u64 = 2_000;
    let collector = Collector::start().await;
    collector.set_default(Reply::Delay(ms(200), 202));
    let (sink, handed) = tee(http_sink(&collector));
    let layer = fast(sink)
        .queue_capacity(CAPACITY as usize)
        .batch_size(10)
        .max_in_flight(2)
        .build();

    for id in 0..SENT {
        call(&layer, id).await;
        if id % 100 == 0 {
            let stats = layer.stats();
            assert!(stats.in_queue <= CAPACITY * 2, "{stats:?}");
            assert_balanced(&stats);
        }
    }
    flush(&layer, &collector).await;

    let stats = layer.stats();
    assert_eq!(stats.recorded, SENT, "{stats:?}");
    assert_eq!(stats.in_queue, 0, "{stats:?}");
    assert_eq!(
        stats.recorded,
        stats.delivered + stats.dropped.total(),
        "{stats:?}"
    );
    assert!(stats.dropped.queue_full > 0, "{stats:?}");
    assert_eq!(stats.dropped.total(), stats.dropped.queue_full, "{stats:?}");
    assert!(stats.delivered > 0, "{stats:?}");

    // What was delivered is exactly what the collector stored, each once.
    let stored = collector.assert_each_event_once(handed.ids());
    assert_eq!(stored.len() as u64, stats.delivered);
    let ids = request_ids(&stored);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len());
    assert!(ids.iter().all(|id| *id < SENT));

    let report = layer.shutdown(Duration::from_secs(5)).await;
    assert!(report.flushed);
    assert_eq!(report.stats.delivered, stats.delivered, "{report:?}");
    assert_eq!(report.stats.dropped.shutdown, 0, "{report:?}");
    assert_balanced(&report.stats);
}

// The test body never yields to the runtime while recording, so on a current-thread runtime
// the worker cannot take anything in before `shutdown`: all 5,000 events are still queued.
#[tokio::test(flavor = "current_thread")]
async fn shutdown_delivers_5000_queued_events_to_a_healthy_collector() {
    const SENT: u64 = 5_000;
    let collector = Collector::start().await;
    let (sink, handed) = tee(HttpSink::new(collector.url()).timeout(Duration::from_secs(10)));
    let layer = AnalyticsLayer::builder()
        .sink(sink)
        .queue_capacity(10_000)
        .batch_size(500)
        .flush_interval(Duration::from_secs(60))
        .build();

    calls(&layer, 0..SENT).await;
    let before = layer.stats();
    assert_eq!(before.recorded, SENT, "{before:?}");
    assert_eq!(before.dropped.total(), 0, "{before:?}");
    assert_eq!(before.in_queue, SENT, "still queued: {before:?}");

    let report = tokio::time::timeout(WAIT, layer.shutdown(Duration::from_secs(12)))
        .await
        .expect("shutdown returns");
    assert!(report.flushed, "{report:?}");
    assert_eq!(report.stats.delivered, SENT, "{report:?}");
    assert_eq!(report.stats.in_queue, 0, "{report:?}");
    assert_eq!(report.stats.dropped.total(), 0, "{report:?}");
    assert_balanced(&report.stats);

    // Already at the collector when shutdown returned, each once.
    let stored = collector.stored_events();
    assert_eq!(request_ids(&stored), (0..SENT).collect::<Vec<_>>());
    let stored_ids: HashSet<String> = stored
        .iter()
        .filter_map(common::collector::event_id)
        .collect();
    assert_eq!(stored_ids.len(), stored.len(), "an event was stored twice");
    assert_eq!(stored_ids, handed.ids().into_iter().collect::<HashSet<_>>());
    assert!(
        collector.received().iter().all(Received::is_accepted),
        "{}",
        collector.describe()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_a_hung_collector_returns_at_the_deadline_with_the_counts() {
    let (collector, sink) = hung_collector().await;
    let layer = fast(sink).batch_size(5).build();

    calls(&layer, 0..10).await;
    collector.wait_for_requests(2, WAIT).await;

    let deadline = Duration::from_secs(1);
    let started = Instant::now();
    let report = tokio::time::timeout(WAIT, layer.shutdown(deadline))
        .await
        .expect("shutdown returns");
    let took = started.elapsed();
    assert!(
        took >= deadline && took < deadline + Duration::from_secs(2),
        "shutdown took {took:?} with a {deadline:?} deadline"
    );
    let stats = report.stats;
    assert!(!report.flushed, "{report:?}");
    assert_eq!(stats.recorded, 10, "{stats:?}");
    assert_eq!(stats.in_queue, 0, "{stats:?}");
    assert_eq!(
        stats.recorded,
        stats.delivered + stats.dropped.total(),
        "{stats:?}"
    );
    assert!(stats.dropped.shutdown > 0, "{stats:?}");
    assert_eq!(stats.dropped.shutdown, 10, "{stats:?}");

    // Afterwards requests still work, and their events count as lost to shutdown.
    call(&layer, 10).await;
    let after = layer.shutdown(deadline).await;
    assert!(!after.flushed);
    assert_eq!(after.stats.recorded, 11, "{after:?}");
    assert_eq!(after.stats.dropped.shutdown, 11, "{after:?}");
    assert_balanced(&after.stats);
}

// ---------------------------------------------------------------------------------------
// Keeping up with a distant collector
// ---------------------------------------------------------------------------------------

/// A `tools/call` with JSON-RPC id `id` through the layer, in process, with less work
/// around it than [`call`] (no JSON built or parsed by the test): one event.
async fn light_call(layer: &AnalyticsLayer, id: u64) {
    let request = echo_call::echo_request(id, &[("accept", "application/json, text/event-stream")]);
    assert_eq!(echo_call::through_layer(layer, request).await, 200);
}

/// `call` for every id in `ids`, `per_tick` of them every 10 ms: a server recording at a
/// steady rate (slower on a slow machine, never faster).
async fn steady_calls(layer: &AnalyticsLayer, ids: std::ops::Range<u64>, per_tick: u64) {
    let mut tick = tokio::time::interval(ms(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut id = ids.start;
    while id < ids.end {
        tick.tick().await;
        let end = (id + per_tick).min(ids.end);
        for id in id..end {
            light_call(layer, id).await;
        }
        id = end;
    }
}

/// Two batches of 100 events in flight per round trip used to be the most the sender
/// carried: 4,000 events/s to a collector 50 ms away, which a busy server outruns. With
/// the default settings the window and the batches grow with the backlog until the events
/// in flight cover the round trip. The collector here answers after 500 ms, so that the
/// old ceiling (400 events/s) sits far below a rate a debug build records and sends with
/// ease (2,000 a second); every event of the 30,000 arrives, where the old ceiling lost
/// over a tenth of them as `queue_full`. (`cargo bench --bench sender` measures the
/// sender at 50 ms.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distant_collector_gets_every_event_of_a_long_burst_with_default_settings() {
    const SENT: u64 = 30_000;
    let collector = Collector::start().await;
    collector.set_default(Reply::Delay(ms(500), 202));
    let layer = AnalyticsLayer::builder()
        .sink(HttpSink::new(collector.url()))
        .build();

    steady_calls(&layer, 0..SENT, 20).await;
    flush(&layer, &collector).await;

    let stats = layer.stats();
    assert_eq!(stats.recorded, SENT, "{stats:?}");
    assert_eq!(stats.dropped.total(), 0, "{stats:?}");
    assert_eq!(stats.delivered, SENT, "{stats:?}");
    assert_eq!(stats.in_queue, 0, "{stats:?}");
    let stored = collector.stored_events();
    assert_eq!(request_ids(&stored), (0..SENT).collect::<Vec<_>>());
    let ids: HashSet<String> = stored
        .iter()
        .filter_map(common::collector::event_id)
        .collect();
    assert_eq!(ids.len() as u64, SENT, "every event stored once");
    assert!(
        collector.received().iter().all(Received::is_accepted),
        "no request failed"
    );
}

/// A collector that fails every attempt sees at most two requests at once, however many
/// batches wait; once it recovers, the backlog is delivered and the window opens again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_collector_never_sees_more_than_two_requests_at_once() {
    const SENT: u64 = 5_000;
    let collector = Collector::start().await;
    collector.set_default(Reply::Delay(ms(50), 503));
    let (sink, handed) = tee(http_sink(&collector));
    let layer = AnalyticsLayer::builder()
        .sink(sink)
        .backoff(ms(1), ms(10))
        .max_attempts(1_000)
        .build();

    steady_calls(&layer, 0..SENT, 125).await;
    eventually("failed attempts to pile up", || layer.stats().retries >= 60).await;
    let stats = layer.stats();
    assert_eq!((stats.recorded, stats.delivered), (SENT, 0), "{stats:?}");
    assert_eq!(stats.dropped.total(), 0, "{stats:?}");
    assert!(
        collector.most_concurrent() <= 2,
        "{} requests at once to a failing collector",
        collector.most_concurrent()
    );

    collector.set_default(Reply::Delay(ms(50), 202));
    flush(&layer, &collector).await;
    let stats = layer.stats();
    assert_eq!((stats.delivered, stats.in_queue), (SENT, 0), "{stats:?}");
    assert_eq!(stats.dropped.total(), 0, "{stats:?}");
    assert_balanced(&stats);
    assert_stored_once(&collector, &handed, 0..SENT);
    assert!(
        collector.most_concurrent() > 2,
        "the backlog opens the window past the floor once batches go through"
    );
}

// ---------------------------------------------------------------------------------------
// The flush interval
// ---------------------------------------------------------------------------------------

/// When each event (by `request_id`) was handed to the sink, on tokio's clock.
#[derive(Clone, Default)]
struct WhenHanded(Arc<Mutex<Vec<(tokio::time::Instant, u64)>>>);

impl Sink for WhenHanded {
    fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a> {
        let now = tokio::time::Instant::now();
        let mut handed = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for raw in batch.events_json() {
            let event: Value = serde_json::from_str(raw.get()).expect("event JSON");
            let id = event["request_id"].as_u64().expect("a numeric request_id");
            handed.push((now, id));
        }
        Box::pin(async { Ok(()) })
    }
}

/// `flush_interval` promises that an event waits at most that long before its batch is
/// handed to the sink. The clock is tokio's paused one: time moves only while every task
/// waits, so "at most one interval" is checked exactly, with no slack for a slow machine.
/// Events are recorded just after a tick, mid-interval, just before and at a tick; before,
/// one recorded just after a tick waited for the tick after the next, as the timed flush
/// sealed the open batch before taking in what was queued.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn every_event_reaches_the_sink_within_one_flush_interval() {
    const INTERVAL: Duration = Duration::from_secs(1);
    let sink = WhenHanded::default();
    let layer = AnalyticsLayer::builder()
        .sink(sink.clone())
        .flush_interval(INTERVAL)
        .build();
    let start = tokio::time::Instant::now();
    let offsets = [
        0, 10, 250, 500, 990, 999, 1_000, 1_001, 1_500, 2_999, 3_000, 3_400,
    ];
    let mut recorded = Vec::new();
    for (id, offset) in offsets.into_iter().enumerate() {
        tokio::time::sleep_until(start + ms(offset)).await;
        call(&layer, id as u64).await;
        recorded.push(tokio::time::Instant::now());
    }
    tokio::time::sleep(INTERVAL * 2).await;

    let handed = sink
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert_eq!(
        handed.iter().map(|(_, id)| *id).collect::<Vec<_>>(),
        (0..offsets.len() as u64).collect::<Vec<_>>(),
        "each event handed over once, in order"
    );
    for (at, id) in handed {
        let waited = at - recorded[id as usize];
        assert!(
            waited <= INTERVAL,
            "event {id}, recorded {:?} after the start, waited {waited:?}",
            recorded[id as usize] - start
        );
    }
    let stats = layer.stats();
    assert_eq!(stats.delivered, offsets.len() as u64, "{stats:?}");
    assert_balanced(&stats);
}

// ---------------------------------------------------------------------------------------
// Log lines about losses
// ---------------------------------------------------------------------------------------

/// Log lines the crate writes at INFO and above on one thread, captured while the guard
/// lives (a current-thread runtime runs the worker on the test's thread too). One global
/// subscriber serves every test of this binary; each line goes to the capture of the
/// thread that wrote it, if any.
#[derive(Clone, Default)]
struct Logged(Arc<Mutex<Vec<u8>>>);

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Logged>> = const { std::cell::RefCell::new(None) };
}

/// Writes to the capture of the current thread.
struct ThreadCapture;

impl io::Write for ThreadCapture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        CAPTURE.with(|capture| {
            if let Some(logged) = &*capture.borrow() {
                logged
                    .0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Stops capturing on drop.
struct Capturing;

impl Drop for Capturing {
    fn drop(&mut self) {
        CAPTURE.with(|capture| capture.borrow_mut().take());
    }
}

impl Logged {
    fn capture() -> (Self, Capturing) {
        static SUBSCRIBER: std::sync::Once = std::sync::Once::new();
        SUBSCRIBER.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter("tower_mcp_analytics=info")
                .with_ansi(false)
                .with_writer(|| ThreadCapture)
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        });
        let logged = Logged::default();
        CAPTURE.with(|capture| *capture.borrow_mut() = Some(logged.clone()));
        (logged, Capturing)
    }

    fn lines(&self) -> Vec<String> {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The lines containing `text`.
    fn with(&self, text: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|line| line.contains(text))
            .collect()
    }
}

/// The number in `events=N` of a summary line.
fn summed_up(line: &str) -> u64 {
    line.split("events=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no event count in {line}"))
}

/// A dead collector with a small queue: batches run out of retries and free room, the
/// queue refills and overflows, over and over. That used to log a warning per retries-
/// exhausted batch and one per flap of the queue; now each kind of loss warns once, and
/// is summed up once when the sender stops.
#[tokio::test(flavor = "current_thread")]
async fn a_dead_collector_and_a_full_queue_log_one_warning_per_kind_of_loss() {
    const SENT: u64 = 3_000;
    let (logged, _guard) = Logged::capture();
    let mut collector = Collector::start().await;
    collector.go_down().await;
    let layer = fast(http_sink(&collector))
        .queue_capacity(20)
        .batch_size(5)
        .backoff(ms(1), ms(5))
        .max_attempts(2)
        .build();

    for id in 0..SENT {
        call(&layer, id).await;
        if id % 10 == 0 {
            tokio::task::yield_now().await;
        }
    }
    eventually("many batches to run out of retries", || {
        layer.stats().dropped.retries_exhausted >= 100
    })
    .await;
    let stats = layer.stats();
    assert!(stats.dropped.queue_full >= 100, "{stats:?}");
    assert_eq!(
        logged.lines().len(),
        2,
        "one line per kind of loss:\n{}",
        logged.lines().join("\n")
    );
    assert_eq!(logged.with("queue is full").len(), 1);
    assert_eq!(logged.with("after every retry failed").len(), 1);

    let report = layer.shutdown(ms(500)).await;
    let stats = report.stats;
    assert_balanced(&stats);
    let lines = logged.lines();
    assert_eq!(lines.len(), 4, "two summaries more:\n{}", lines.join("\n"));
    let queue_full = logged.with("dropped because the queue was full over");
    let retries = logged.with("lost after every retry failed over");
    assert_eq!((queue_full.len(), retries.len()), (1, 1), "{lines:?}");
    assert_eq!(summed_up(&queue_full[0]), stats.dropped.queue_full);
    assert_eq!(summed_up(&retries[0]), stats.dropped.retries_exhausted);
}

/// A collector that refuses every event as too large: one warning, then one summary,
/// where there used to be a line per event.
#[tokio::test(flavor = "current_thread")]
async fn a_collector_refusing_every_event_as_too_large_logs_one_warning() {
    const SENT: u64 = 200;
    let (logged, _guard) = Logged::capture();
    let collector = Collector::start().await;
    collector.set_default(Reply::TooLargeAbove(10));
    let layer = fast(http_sink(&collector)).build();

    calls_and_flush(&layer, &collector, 0..SENT).await;
    let stats = layer.stats();
    assert_eq!(stats.dropped.too_large, SENT, "{stats:?}");
    assert_eq!(logged.lines().len(), 1, "{}", logged.lines().join("\n"));
    assert_eq!(logged.with("too large for the destination").len(), 1);

    layer.shutdown(ms(500)).await;
    let summary = logged.with("too large for the destination over");
    assert_eq!(logged.lines().len(), 2, "{:?}", logged.lines());
    assert_eq!(summary.len(), 1);
    assert_eq!(summed_up(&summary[0]), SENT);
}

// ---------------------------------------------------------------------------------------
// Where the worker runs
// ---------------------------------------------------------------------------------------

/// `flush`, `stats` and `shutdown` behave the same with the worker on the server's runtime
/// and on a thread of its own: every event reaches a healthy collector once, and a hung
/// collector leaves `shutdown` returning at its deadline with every event accounted for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_stats_and_shutdown_work_alike_on_either_worker_runtime() {
    for runtime in [WorkerRuntime::Current, WorkerRuntime::Dedicated] {
        let collector = Collector::start().await;
        let (sink, handed) = tee(http_sink(&collector));
        let layer = fast(sink).worker_runtime(runtime).build();
        calls_and_flush(&layer, &collector, 0..300).await;
        let stats = layer.stats();
        assert_eq!(
            (stats.recorded, stats.delivered, stats.in_queue),
            (300, 300, 0),
            "{runtime:?}: {stats:?}"
        );
        assert_stored_once(&collector, &handed, 0..300);
        let report = layer.shutdown(Duration::from_secs(5)).await;
        assert!(report.flushed, "{runtime:?}: {report:?}");
        assert_eq!(report.stats.delivered, 300, "{runtime:?}: {report:?}");

        let (collector, sink) = hung_collector().await;
        let layer = fast(sink).worker_runtime(runtime).batch_size(5).build();
        calls(&layer, 0..10).await;
        collector.wait_for_requests(2, WAIT).await;
        let report = tokio::time::timeout(WAIT, layer.shutdown(ms(300)))
            .await
            .expect("shutdown returns");
        assert!(!report.flushed, "{runtime:?}: {report:?}");
        assert_eq!(
            (
                report.stats.recorded,
                report.stats.dropped.shutdown,
                report.stats.in_queue
            ),
            (10, 10, 0),
            "{runtime:?}: {report:?}"
        );
        call(&layer, 10).await;
        let after = layer.stats();
        assert_eq!(after.dropped.shutdown, 11, "{runtime:?}: {after:?}");
        assert_balanced(&after);
    }
}

/// On a dedicated thread the worker delivers while the server's only runtime thread is
/// busy and never yields; on that thread itself it could not.
#[tokio::test(flavor = "current_thread")]
async fn a_dedicated_worker_delivers_while_the_servers_only_thread_is_busy() {
    const SENT: u64 = 500;
    let sink = MemorySink::new();
    let layer = AnalyticsLayer::builder()
        .sink(sink.clone())
        .worker_runtime(WorkerRuntime::Dedicated)
        .build();
    // Never yields to the runtime: recording, then waiting without awaiting.
    calls(&layer, 0..SENT).await;
    let deadline = Instant::now() + WAIT;
    while layer.stats().delivered < SENT && Instant::now() < deadline {
        std::thread::sleep(ms(5));
    }
    let stats = layer.stats();
    assert_eq!((stats.delivered, stats.in_queue), (SENT, 0), "{stats:?}");
    assert_eq!(sink.events().len() as u64, SENT);
    let report = layer.shutdown(Duration::from_secs(5)).await;
    assert!(report.flushed, "{report:?}");
}

// ---------------------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bodies_decode_to_exactly_the_events_recorded() {
    let collector = Collector::start().await;
    let (layer, handed) = start_teed(http_sink(&collector), |b| b).await;

    calls_and_flush(&layer, &collector, 0..20).await;
    call(&layer, 20).await;
    flush(&layer, &collector).await;

    let requests = batch_requests(&collector);
    assert_eq!(requests.len(), 2, "{}", collector.describe());
    collector.assert_wire_format(None);
    let (big, tiny) = (&requests[0], &requests[1]);

    assert!(big.decoded_body.len() > GZIP_ABOVE);
    assert_eq!(big.header("content-encoding"), Some("gzip"));
    assert_eq!(&big.raw_body[..2], [0x1f, 0x8b], "a gzip stream");
    assert!(big.raw_body.len() < big.decoded_body.len());

    assert!(
        tiny.decoded_body.len() <= GZIP_ABOVE,
        "{} bytes",
        tiny.decoded_body.len()
    );
    assert_eq!(tiny.header("content-encoding"), None);
    assert_eq!(tiny.raw_body, tiny.decoded_body, "sent as is");

    // Byte for byte, the events are the JSON of the `Event`s the worker handed over.
    let events = handed.events();
    assert_eq!(events.len(), 21);
    let mut wire_events = Vec::new();
    for request in [big, tiny] {
        let body = wire_batch(request);
        assert_eq!(body.schema, "tower-mcp-analytics/v1");
        assert_eq!(Some(body.batch_id.as_str()), request.batch_id());
        wire_events.extend(body.events.iter().map(|raw| raw.get().to_owned()));
    }
    let expected: Vec<String> = events
        .iter()
        .map(|event| serde_json::to_string(event).expect("event JSON"))
        .collect();
    assert_eq!(wire_events, expected);
    assert_eq!(wire_events, handed.lock().json);
    for (raw, event) in wire_events.iter().zip(&events) {
        let parsed: Event = serde_json::from_str(raw).expect("an Event");
        assert_eq!(parsed.id, event.id);
        assert_eq!(parsed.method, "tools/call");
        assert_eq!(parsed.resource_name.as_deref(), Some("echo"));
        assert_eq!(parsed.request_id, event.request_id);
        assert_eq!(parsed.arguments, event.arguments);
        assert_eq!(parsed.outcome, event.outcome);
    }
    assert_stored_once(&collector, &handed, 0..21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_off_never_compresses() {
    let collector = Collector::start().await;
    let (layer, handed) = start_teed(http_sink(&collector).gzip(false), |b| b).await;

    calls_and_flush(&layer, &collector, 0..20).await;
    call(&layer, 20).await;
    flush(&layer, &collector).await;

    let requests = batch_requests(&collector);
    assert_eq!(requests.len(), 2, "{}", collector.describe());
    assert!(requests[0].decoded_body.len() > GZIP_ABOVE);
    for r in &requests {
        assert_eq!(r.header("content-encoding"), None, "#{}", r.index);
        assert_eq!(r.raw_body, r.decoded_body, "#{}", r.index);
        assert!(
            r.wire_problems(None)
                .iter()
                .all(|p| p.contains("uncompressed")),
            "{:?}",
            r.wire_problems(None)
        );
    }
    assert_stored_once(&collector, &handed, 0..21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_and_extra_headers_are_sent_with_every_batch() {
    const KEY: &str = "sk_test_delivery_123";
    let collector = Collector::start().await;
    collector.script([Reply::Status(503)]);
    let sink = http_sink(&collector)
        .api_key(KEY)
        .header("x-tenant", "acme")
        .header("x-region", "eu-west-1")
        .header("bad header name", "ignored");
    let layer = start(on_flush_only(sink)).await;

    calls_and_flush(&layer, &collector, 0..2).await;

    let requests = batch_requests(&collector);
    assert_statuses(&collector, &requests, &[503, 202]);
    for r in &requests {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(r.header("x-tenant"), Some("acme"));
        assert_eq!(r.header("x-region"), Some("eu-west-1"));
        assert_eq!(r.header("user-agent"), Some(USER_AGENT));
        assert!(USER_AGENT.starts_with("tower-mcp-analytics/0."));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("idempotency-key"), r.batch_id());
    }
    collector.assert_wire_format(Some(KEY));
    assert_eq!(request_ids(&collector.stored_events()), [0, 1]);
}

// ---------------------------------------------------------------------------------------
// Retries through other sinks
// ---------------------------------------------------------------------------------------

/// A writer whose first `failures` writes fail; then it appends to `written`.
struct FlakyWriter {
    failures: usize,
    written: Arc<Mutex<Vec<u8>>>,
}

impl AsyncWrite for FlakyWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.failures > 0 {
            self.failures -= 1;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "disk unplugged",
            )));
        }
        self.written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Fails the first `failures` attempts with a retryable error, then accepts. Clones share
/// their state.
#[derive(Clone, Default)]
struct FlakySink {
    failures: Arc<AtomicUsize>,
    attempts: Arc<Mutex<Vec<(String, u32)>>>,
    delivered: MemorySink,
}

impl Sink for FlakySink {
    fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a> {
        self.attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((batch.id().to_owned(), batch.attempt()));
        let fail = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Box::pin(async { Err(SinkError::retryable("collector briefly away")) });
        }
        self.delivered.send(batch)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_lines_sink_and_a_custom_sink_are_retried() {
    // JSON lines: the first write fails with an I/O error, which is retryable.
    let written = Arc::new(Mutex::new(Vec::new()));
    let writer = FlakyWriter {
        failures: 1,
        written: Arc::clone(&written),
    };
    let (sink, handed) = tee(JsonLinesSink::writer(writer));
    let layer = start(on_flush_only(sink)).await;
    calls(&layer, 0..3).await;
    tokio::time::timeout(WAIT, layer.flush())
        .await
        .expect("flush");
    let text = String::from_utf8(
        written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
    )
    .expect("UTF-8 lines");
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(request_ids(&lines), [0, 1, 2], "{text}");
    let line_ids: Vec<String> = lines
        .iter()
        .filter_map(common::collector::event_id)
        .collect();
    assert_eq!(line_ids, handed.ids());
    assert_eq!(handed.attempt_numbers(), [1, 2]);
    let stats = layer.stats();
    assert_eq!(
        (stats.retries, stats.delivered, stats.dropped.total()),
        (1, 3, 0),
        "{stats:?}"
    );
    assert_balanced(&stats);

    // A custom sink: retryable, retryable, then Ok.
    let flaky = FlakySink {
        failures: Arc::new(AtomicUsize::new(2)),
        ..FlakySink::default()
    };
    let layer = start(on_flush_only(flaky.clone())).await;
    calls(&layer, 0..4).await;
    tokio::time::timeout(WAIT, layer.flush())
        .await
        .expect("flush");
    let attempts = flaky
        .attempts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert!(
        attempts.iter().all(|(id, _)| *id == attempts[0].0),
        "{attempts:?}"
    );
    assert_eq!(
        attempts.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let events = flaky.delivered.events();
    let ids: Vec<Value> = events
        .iter()
        .map(|e| e.request_id.clone().unwrap_or_default())
        .collect();
    assert_eq!(ids, [json!(0), json!(1), json!(2), json!(3)]);
    let stats = layer.stats();
    assert_eq!(
        (stats.retries, stats.delivered, stats.dropped.total()),
        (2, 4, 0),
        "{stats:?}"
    );
    assert_balanced(&stats);
}
