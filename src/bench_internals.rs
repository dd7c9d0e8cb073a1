//! Entry points into internal stages of the request path, for benchmarks (cargo feature
//! `bench-internals`, off by default).
//!
//! Not part of the stable API: no semver guarantees, anything here may change or vanish in
//! any release. It exists so that `benches/internals.rs` can measure internal stages
//! (request parsing, SSE decoding, the hand-off to the worker queue) in isolation. Thin
//! wrappers that take bytes and return counts, so no internal type leaks out.
//!
//! ```
//! use tower_mcp_analytics::bench_internals::parse_request;
//!
//! let body = bytes::Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
//! assert_eq!(parse_request(&body), 1);
//! ```

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use tokio::sync::{Notify, mpsc};

use crate::delivery::Recorder;
use crate::delivery::recorder::Envelope;
use crate::event::ResponseKind;
use crate::exchange::{Call, End, Finished, RequestInfo};
use crate::protocol::jsonrpc::parse_client_body;
use crate::protocol::sse::SseDecoder;
use crate::stats::Counters;

use crate::delivery::WAKE_EVERY;
use crate::delivery::config::DEFAULT_QUEUE_BYTES as QUEUE_BYTES;
use crate::service::DEFAULT_MAX_CALLS_PER_REQUEST as MAX_CALLS_PER_REQUEST;

/// Parses a request body as the layer does (with the default per-request call cap) and
/// returns the number of requests and notifications found; 0 when the body is not JSON.
///
/// ```
/// # use tower_mcp_analytics::bench_internals::parse_request;
/// assert_eq!(parse_request(&bytes::Bytes::from_static(b"not json")), 0);
/// ```
pub fn parse_request(body: &Bytes) -> usize {
    parse_client_body(body, MAX_CALLS_PER_REQUEST).map_or(0, |parsed| parsed.messages.len())
}

/// Decodes a `text/event-stream` body fed in the given chunks with a fresh decoder (one per
/// response, as the layer does) at the default response capture limit, and returns the
/// number of events it dispatched (oversized ones included).
///
/// ```
/// # use tower_mcp_analytics::bench_internals::decode_sse;
/// let stream: [&[u8]; 2] = [b"data: {}\n", b"\ndata: {}\n\n"];
/// assert_eq!(decode_sse(stream), 2);
/// ```
pub fn decode_sse<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> usize {
    let mut decoder = SseDecoder::new(crate::DEFAULT_CAPTURE_LIMIT);
    let mut events = 0;
    for chunk in chunks {
        decoder.feed(chunk, &mut |_| events += 1);
    }
    events
}

/// A finished exchange, ready to be handed to a [`Queue`]: the calls of one request body,
/// answered by one `application/json` response body.
///
/// ```
/// # use tower_mcp_analytics::bench_internals::FinishedExchange;
/// let request = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
/// let response = br#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
/// assert!(FinishedExchange::json(request, response).is_some());
/// ```
#[derive(Debug)]
pub struct FinishedExchange(Finished);

impl FinishedExchange {
    /// An exchange of a request body answered with status 200 and a JSON body, both copied
    /// into buffers of their own as the layer's captured bodies are. `None` when the
    /// request holds no request or notification.
    ///
    /// ```
    /// # use tower_mcp_analytics::bench_internals::FinishedExchange;
    /// assert!(FinishedExchange::json(b"[]", b"{}").is_none());
    /// ```
    pub fn json(request: &[u8], response: &[u8]) -> Option<Self> {
        let body = Bytes::copy_from_slice(request);
        let parsed = parse_client_body(&body, MAX_CALLS_PER_REQUEST)?;
        if parsed.messages.is_empty() {
            return None;
        }
        let mut info = RequestInfo::new(Instant::now(), SystemTime::now());
        info.protocol_version = Some("2025-06-18".into());
        info.origin.user_agent = Some("node".into());
        info.batch = parsed.batch;
        info.body_len = body.len();
        let elapsed = info.started.elapsed();
        let calls = parsed
            .messages
            .into_iter()
            .map(|message| Call {
                message,
                end: Some(End::Body),
                elapsed,
                progress: 0,
                logs: 0,
            })
            .collect();
        Some(Self(Finished {
            info,
            calls,
            status: Some(StatusCode::OK),
            response_kind: Some(ResponseKind::Json),
            body: Some(Bytes::copy_from_slice(response)),
        }))
    }
}

/// The worker queue with the request path's handle on it, and no worker: what is recorded
/// stays queued until [`Queue::drain`].
///
/// ```
/// use tower_mcp_analytics::bench_internals::{FinishedExchange, Queue};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut queue = Queue::new(16);
/// let request = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
/// let exchange = FinishedExchange::json(request, b"{}").unwrap();
/// queue.record(exchange);
/// assert_eq!(queue.drain(), 1);
/// assert_eq!(queue.stats().recorded, 1);
/// # }
/// ```
#[derive(Debug)]
pub struct Queue {
    recorder: Recorder,
    rx: mpsc::Receiver<Envelope>,
}

impl Queue {
    /// A queue of `capacity` exchanges (and events), with the builder's default byte
    /// budget and wake-up threshold.
    ///
    /// ```
    /// # use tower_mcp_analytics::bench_internals::Queue;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut queue = Queue::new(1);
    /// assert_eq!(queue.drain(), 0);
    /// # }
    /// ```
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let recorder = Recorder::new(
            tx,
            Arc::new(Notify::new()),
            WAKE_EVERY.min(capacity),
            Arc::new(Counters::default()),
            QUEUE_BYTES,
            capacity,
        );
        Self { recorder, rx }
    }

    /// Hands the exchange to the queue, as the request path does when an exchange ends;
    /// dropped and counted when the queue is full.
    ///
    /// ```
    /// # use tower_mcp_analytics::bench_internals::Queue;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut queue = Queue::new(1);
    /// # let exchange = tower_mcp_analytics::bench_internals::FinishedExchange::json(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#, b"").unwrap();
    /// queue.record(exchange);
    /// # }
    /// ```
    pub fn record(&self, exchange: FinishedExchange) {
        self.recorder.record(exchange.0);
    }

    /// Takes everything out of the queue as the worker does (and discards it); returns the
    /// number of events taken.
    ///
    /// ```
    /// # use tower_mcp_analytics::bench_internals::Queue;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut queue = Queue::new(1);
    /// assert_eq!(queue.drain(), 0);
    /// # }
    /// ```
    pub fn drain(&mut self) -> usize {
        let counters = self.recorder.counters();
        counters.wake_requested.store(false, Relaxed);
        let mut events = 0;
        while let Ok(envelope) = self.rx.try_recv() {
            if let Envelope::Exchange(queued) = envelope
                && let Some(finished) = queued.take()
            {
                events += finished.calls.len();
                counters
                    .in_worker
                    .fetch_sub(finished.calls.len() as u64, Relaxed);
            }
        }
        events
    }

    /// The queue's counters: recorded, dropped (`queue_full`), and so on.
    ///
    /// ```
    /// # use tower_mcp_analytics::bench_internals::Queue;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut queue = Queue::new(1);
    /// assert_eq!(queue.stats().dropped.total(), 0);
    /// # }
    /// ```
    pub fn stats(&self) -> crate::Stats {
        self.recorder.counters().snapshot()
    }
}

/// Runs the worker's first privacy pass over one captured payload with the default
/// settings, the built-in secret scrubber on or off, and returns the length of the JSON
/// an event would carry (0 when the payload is not JSON).
///
/// ```
/// # use tower_mcp_analytics::bench_internals::transcode_payload;
/// let raw = br#"{"password":"hunter2","query":"rust"}"#;
/// assert!(transcode_payload(raw, true) > 0);
/// ```
pub fn transcode_payload(raw: &[u8], secrets: bool) -> usize {
    let mut privacy = crate::privacy::Privacy::default();
    privacy.redact_secrets = secrets;
    privacy.payload(raw).json.map_or(0, |json| json.get().len())
}

/// Intent capture and the virtual tool, as the request path uses them.
///
/// ```
/// # use tower_mcp_analytics::bench_internals::Rewrites;
/// let rewrites = Rewrites::new();
/// let answer = br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","inputSchema":{"type":"object"}}]}}"#;
/// assert!(rewrites.tools_list(answer) > answer.len());
/// let call = br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a","arguments":{"q":1,"context":"why"}}}"#;
/// assert!(rewrites.strip_intent(call) < call.len());
/// ```
pub struct Rewrites(crate::insights::Insights);

impl Default for Rewrites {
    fn default() -> Self {
        Self::new()
    }
}

impl Rewrites {
    /// Both on, with their defaults.
    ///
    /// ```
    /// let rewrites = tower_mcp_analytics::bench_internals::Rewrites::new();
    /// ```
    pub fn new() -> Self {
        let insights = crate::insights::Insights::new(
            Some(crate::insights::IntentCapture::new()),
            Some(crate::insights::MissingTools::new()),
        );
        match insights {
            Some(insights) => Self(insights),
            None => unreachable!("both are on"),
        }
    }

    /// Rewrites the answer to the `tools/list` request with id 1; the rewritten length
    /// (0 when nothing changed).
    ///
    /// ```
    /// # let rewrites = tower_mcp_analytics::bench_internals::Rewrites::new();
    /// assert_eq!(rewrites.tools_list(b"{}"), 0);
    /// ```
    pub fn tools_list(&self, answer: &[u8]) -> usize {
        let ids = [crate::protocol::jsonrpc::RequestId::Int(1)];
        self.0
            .rewrite_listing(answer, &ids)
            .rewritten
            .map_or(0, |b| b.len())
    }

    /// Takes the intent argument out of a request body; the new length (0 when unchanged).
    ///
    /// ```
    /// # let rewrites = tower_mcp_analytics::bench_internals::Rewrites::new();
    /// assert_eq!(rewrites.strip_intent(b"{}"), 0);
    /// ```
    pub fn strip_intent(&self, body: &[u8]) -> usize {
        self.0.strip_intents(body).map_or(0, |s| s.body.len())
    }
}
