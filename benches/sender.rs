//! Delivery benchmarks, in one run, alternating variants:
//!
//! 1. **Sender throughput**: events per second delivered to a collector on loopback, with
//!    gzip on and off. Requests are driven in process through the layer as fast as one
//!    task can; the figure is events delivered (acknowledged by the collector) per second
//!    of wall time, from the first request until the last event is acknowledged.
//! 2. **Sender throughput with the default settings**: the layer exactly as a user
//!    builds it (`AnalyticsLayer::builder().sink(HttpSink::new(url))`, gzip on, the
//!    default queue, batches and in-flight limit), to a collector on loopback and to one
//!    that answers each batch after `SENDER_BENCH_DELAY_MS` (default 50), as a collector
//!    one round trip away would. Requests are driven in process for `SENDER_BENCH_SECS`
//!    (default 3) as fast as one task can, pausing while the layer holds more than
//!    `BACKLOG` events, so that the sender always has a backlog and the queue never
//!    overflows. The figure is events delivered per second of wall time, from the first
//!    request until the last event is acknowledged; events lost are counted by reason.
//! 3. **Request-path cost by collector state**: the time one request takes through the
//!    layer (around a trivial service) while the collector is healthy, slow (answers
//!    after `SENDER_BENCH_DELAY_MS`, default 50) or dead (connection refused). The layer
//!    must cost the same whatever the collector does.
//!
//! ```text
//! cargo bench --bench sender
//! SENDER_BENCH_ROUNDS=1 SENDER_BENCH_SECS=2 cargo bench --bench sender
//! ```
//!
//! Medians of `SENDER_BENCH_ROUNDS` (default 5) alternating rounds are printed as
//! Markdown tables.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt, service_fn};
use tower_mcp_analytics::{AnalyticsLayer, Dropped, HttpSink, ReplayBody};

const THROUGHPUT_EVENTS: u64 = 200_000;
const PATH_REQUESTS: u64 = 100_000;
/// Events the layer may hold (queued, batched or in flight) before the driver of the
/// default-settings case pauses: half the default queue of 10,000.
const BACKLOG: u64 = 5_000;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, Debug)]
enum CollectorState {
    Healthy,
    /// Answers each batch after this long; batches wait concurrently.
    Slow(Duration),
    Dead,
}

impl CollectorState {
    fn name(self) -> String {
        match self {
            Self::Healthy => "healthy".to_owned(),
            Self::Slow(delay) => format!("slow ({} ms)", delay.as_millis()),
            Self::Dead => "dead".to_owned(),
        }
    }
}

#[derive(Clone, Default)]
struct Received {
    bytes: Arc<AtomicU64>,
}

async fn collect(State(received): State<(Received, CollectorState)>, body: Bytes) -> StatusCode {
    if let CollectorState::Slow(delay) = received.1 {
        tokio::time::sleep(delay).await;
    }
    received
        .0
        .bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    StatusCode::ACCEPTED
}

/// A collector on 127.0.0.1, or a refused port for `Dead`.
async fn collector(state: CollectorState) -> (String, Received) {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("address");
    if let CollectorState::Dead = state {
        drop(listener);
    } else {
        let app = Router::new()
            .route("/v1/events", post(collect))
            .with_state((received.clone(), state));
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    (format!("http://{addr}/v1/events"), received)
}

const CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Paris","units":"metric"},"_meta":{"progressToken":7}}}"#;
const RESULT: &str = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"Sunny, 21 degrees"}],"isError":false}}"#;

fn request() -> Request<Full<Bytes>> {
    Request::post("/mcp")
        .header(header::CONTENT_TYPE, "application/json")
        .header("mcp-protocol-version", "2025-11-25")
        .body(Full::new(Bytes::from_static(CALL.as_bytes())))
        .unwrap_or_else(|_| Request::new(Full::default()))
}

/// One request through `layer` around a trivial JSON-RPC responder, body read to the end.
async fn one_request(layer: &AnalyticsLayer) {
    let service = layer.layer(service_fn(
        |request: Request<ReplayBody<Full<Bytes>>>| async move {
            let _ = request.into_body().collect().await;
            Ok::<_, Infallible>(
                Response::builder()
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from_static(RESULT.as_bytes())))
                    .unwrap_or_default(),
            )
        },
    ));
    let response = match service.oneshot(request()).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let _ = response.into_body().collect().await;
}

/// Events per second delivered to a healthy collector.
async fn throughput(gzip: bool) -> f64 {
    let (url, _received) = collector(CollectorState::Healthy).await;
    let layer = AnalyticsLayer::builder()
        .sink(HttpSink::new(url).gzip(gzip))
        .queue_capacity(THROUGHPUT_EVENTS as usize)
        .queue_bytes(usize::MAX)
        .build();
    let start = Instant::now();
    for _ in 0..THROUGHPUT_EVENTS {
        one_request(&layer).await;
    }
    layer.flush().await;
    let elapsed = start.elapsed();
    let stats = layer.shutdown(Duration::from_secs(10)).await.stats;
    assert_eq!(
        stats.delivered, THROUGHPUT_EVENTS,
        "every event delivered: {stats:?}"
    );
    THROUGHPUT_EVENTS as f64 / elapsed.as_secs_f64()
}

/// Events per second delivered by a layer with the default settings to a collector in
/// `state` (healthy or slow), driven for `length`; and the events it lost, by reason.
async fn default_settings_throughput(state: CollectorState, length: Duration) -> (f64, Dropped) {
    let (url, _received) = collector(state).await;
    let layer = AnalyticsLayer::builder().sink(HttpSink::new(url)).build();
    let start = Instant::now();
    let until = start + length;
    while Instant::now() < until {
        for _ in 0..64 {
            one_request(&layer).await;
        }
        // Keep the sender busy without overflowing the queue.
        while layer.stats().in_queue > BACKLOG {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    layer.flush().await;
    // Until the last event is acknowledged (or counted as lost).
    let deadline = Instant::now() + Duration::from_secs(30);
    while layer.stats().in_queue > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = start.elapsed();
    let stats = layer.shutdown(Duration::from_secs(10)).await.stats;
    (
        stats.delivered as f64 / elapsed.as_secs_f64(),
        stats.dropped,
    )
}

/// The non-zero counts of `dropped`, by reason, added over rounds.
fn add_dropped(total: &mut BTreeMap<String, u64>, dropped: &Dropped) {
    if let Ok(serde_json::Value::Object(reasons)) = serde_json::to_value(dropped) {
        for (reason, count) in reasons {
            let count = count.as_u64().unwrap_or(0);
            if count > 0 {
                *total.entry(reason).or_default() += count;
            }
        }
    }
}

fn reasons(total: &BTreeMap<String, u64>) -> String {
    if total.is_empty() {
        return "none".to_owned();
    }
    total
        .iter()
        .map(|(reason, count)| format!("{reason} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Mean nanoseconds per request through the layer while the collector is in `state`.
async fn request_path(state: CollectorState) -> (f64, u64) {
    let (url, _received) = collector(state).await;
    let layer = AnalyticsLayer::builder()
        .sink(
            HttpSink::new(url)
                .timeout(Duration::from_secs(2))
                .connect_timeout(Duration::from_millis(500)),
        )
        .build();
    // Warm up, and for a slow or dead collector let the sender fall behind.
    for _ in 0..PATH_REQUESTS / 10 {
        one_request(&layer).await;
    }
    let start = Instant::now();
    for _ in 0..PATH_REQUESTS {
        one_request(&layer).await;
    }
    let per_request = start.elapsed().as_nanos() as f64 / PATH_REQUESTS as f64;
    let dropped = layer
        .shutdown(Duration::from_millis(100))
        .await
        .stats
        .dropped
        .queue_full;
    (per_request, dropped)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let rounds = env_number("SENDER_BENCH_ROUNDS", 5).max(1) as usize;
    let length = Duration::from_secs(env_number("SENDER_BENCH_SECS", 3).max(1));
    let delay = Duration::from_millis(env_number("SENDER_BENCH_DELAY_MS", 50));
    runtime.block_on(async {
        let mut gzip_on = Vec::new();
        let mut gzip_off = Vec::new();
        for _ in 0..rounds {
            gzip_on.push(throughput(true).await);
            gzip_off.push(throughput(false).await);
        }
        println!("| sender to a loopback collector | events/s (median of {rounds}) |");
        println!("|---|---|");
        println!("| gzip on | {:.0} |", median(&mut gzip_on));
        println!("| gzip off | {:.0} |", median(&mut gzip_off));
        println!();

        let collectors = [CollectorState::Healthy, CollectorState::Slow(delay)];
        let mut delivered: Vec<Vec<f64>> = vec![Vec::new(); collectors.len()];
        let mut lost: Vec<BTreeMap<String, u64>> = vec![BTreeMap::new(); collectors.len()];
        for round in 0..rounds {
            for (index, state) in collectors.iter().enumerate() {
                let (rate, dropped) = default_settings_throughput(*state, length).await;
                eprintln!(
                    "default settings round {} {}: {rate:.0} events/s",
                    round + 1,
                    state.name()
                );
                delivered[index].push(rate);
                add_dropped(&mut lost[index], &dropped);
            }
        }
        println!(
            "| sender with the default settings (gzip on), collector | events/s delivered (median of {rounds} rounds of {} s) | events lost, by reason (all rounds) |",
            length.as_secs()
        );
        println!("|---|---|---|");
        for (index, state) in collectors.iter().enumerate() {
            println!(
                "| {} | {:.0} | {} |",
                state.name(),
                median(&mut delivered[index]),
                reasons(&lost[index])
            );
        }
        println!();

        let states = [
            CollectorState::Healthy,
            CollectorState::Slow(delay),
            CollectorState::Dead,
        ];
        let mut per_state: Vec<(Vec<f64>, u64)> = vec![(Vec::new(), 0); states.len()];
        for _ in 0..rounds {
            for (index, state) in states.iter().enumerate() {
                let (ns, dropped) = request_path(*state).await;
                per_state[index].0.push(ns);
                per_state[index].1 += dropped;
            }
        }
        let healthy = median(&mut per_state[0].0.clone());
        println!("| collector | request through the layer (median of {rounds}) | vs healthy | events dropped as queue_full |");
        println!("|---|---|---|---|");
        for (state, (mut samples, dropped)) in states.iter().zip(per_state) {
            let ns = median(&mut samples);
            println!(
                "| {} | {:.2} µs | {:.2}x | {dropped} |",
                state.name(),
                ns / 1000.0,
                ns / healthy
            );
        }
    });
}
