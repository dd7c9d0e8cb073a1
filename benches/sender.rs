//! Delivery benchmarks, in one run, alternating variants:
//!
//! 1. **Sender throughput**: events per second delivered to a collector on loopback, with
//!    gzip on and off, and to one that answers after 50 ms (a collector in another region)
//!    with every setting at its default. Requests are driven in process through the layer
//!    as fast as one task can; the figure is events delivered (acknowledged by the
//!    collector) per second of wall time, from the first request until the last event is
//!    acknowledged. At 50 ms the events the queue could not take are counted too: a sender
//!    that keeps up loses none.
//! 2. **Request-path cost by collector state**: the time one request takes through the
//!    layer (around a trivial service) while the collector is healthy, slow (answers
//!    after 50 ms) or dead (connection refused). The layer must cost the same whatever
//!    the collector does.
//!
//! ```text
//! cargo bench --bench sender
//! ```
//!
//! Medians of several alternating rounds are printed as Markdown tables.

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
use tower_mcp_analytics::{AnalyticsLayer, HttpSink, ReplayBody};

const ROUNDS: usize = 5;
const THROUGHPUT_EVENTS: u64 = 200_000;
const DISTANT_EVENTS: u64 = 100_000;
const PATH_REQUESTS: u64 = 100_000;

#[derive(Clone, Copy, Debug)]
enum CollectorState {
    Healthy,
    Slow,
    Dead,
}

#[derive(Clone, Default)]
struct Received {
    bytes: Arc<AtomicU64>,
}

async fn collect(State(received): State<(Received, CollectorState)>, body: Bytes) -> StatusCode {
    if let CollectorState::Slow = received.1 {
        tokio::time::sleep(Duration::from_millis(50)).await;
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

/// Events per second delivered to a collector that answers after 50 ms, with default
/// settings, and the events lost as `queue_full` on the way.
async fn distant_throughput() -> (f64, u64) {
    let (url, _received) = collector(CollectorState::Slow).await;
    let layer = AnalyticsLayer::builder().sink(HttpSink::new(url)).build();
    let start = Instant::now();
    for _ in 0..DISTANT_EVENTS {
        one_request(&layer).await;
    }
    layer.flush().await;
    let elapsed = start.elapsed();
    let stats = layer.shutdown(Duration::from_secs(10)).await.stats;
    assert_eq!(
        stats.delivered + stats.dropped.queue_full,
        DISTANT_EVENTS,
        "every event delivered or dropped as queue_full: {stats:?}"
    );
    (
        stats.delivered as f64 / elapsed.as_secs_f64(),
        stats.dropped.queue_full,
    )
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
    runtime.block_on(async {
        let mut gzip_on = Vec::new();
        let mut gzip_off = Vec::new();
        let mut distant = Vec::new();
        let mut distant_dropped = 0;
        for _ in 0..ROUNDS {
            gzip_on.push(throughput(true).await);
            gzip_off.push(throughput(false).await);
            let (rate, dropped) = distant_throughput().await;
            distant.push(rate);
            distant_dropped += dropped;
        }
        println!("| sender | events/s (median of {ROUNDS}) | events dropped as queue_full |");
        println!("|---|---|---|");
        println!("| loopback collector, gzip on | {:.0} | 0 |", median(&mut gzip_on));
        println!("| loopback collector, gzip off | {:.0} | 0 |", median(&mut gzip_off));
        println!(
            "| collector 50 ms away, default settings | {:.0} | {distant_dropped} |",
            median(&mut distant)
        );
        println!();

        let states = [CollectorState::Healthy, CollectorState::Slow, CollectorState::Dead];
        let mut per_state: Vec<(Vec<f64>, u64)> = vec![(Vec::new(), 0); states.len()];
        for _ in 0..ROUNDS {
            for (index, state) in states.iter().enumerate() {
                let (ns, dropped) = request_path(*state).await;
                per_state[index].0.push(ns);
                per_state[index].1 += dropped;
            }
        }
        let healthy = median(&mut per_state[0].0.clone());
        println!("| collector | request through the layer (median of {ROUNDS}) | vs healthy | events dropped as queue_full |");
        println!("|---|---|---|---|");
        for (state, (mut samples, dropped)) in states.iter().zip(per_state) {
            let ns = median(&mut samples);
            println!(
                "| {state:?} | {:.2} µs | {:.2}x | {dropped} |",
                ns / 1000.0,
                ns / healthy
            );
        }
    });
}
