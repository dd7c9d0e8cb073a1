//! What the layer adds to one request, in process: the same trivial inner service (reads
//! the request body, answers a fixed `tools/call` result) called bare, behind
//! `AnalyticsLayer`, and behind tower-http's `TraceLayer` as a familiar reference.
//!
//! Each iteration sends one request, reads the whole response body and yields once, on a
//! current-thread runtime. `analytics` runs the layer's worker on that same thread, so it
//! counts all the CPU the layer adds (request path plus building each event and handing it
//! to a sink that discards it); `analytics_request_path` runs the worker on a thread of
//! its own, so it counts the request path alone.
//!
//! The `tools_list_100` group answers a `tools/list` request with 100 tools (as JSON, and
//! as one SSE event): bare, behind the layer with its defaults, and with intent capture
//! and the virtual tool on, which rewrite the answer; each with the worker on the same
//! thread (all the CPU) and on a thread of its own (`request_path`: the request path, where
//! the rewrite runs, alone).
//!
//! ```text
//! cargo bench --bench layer
//! ```

#[path = "support/listing.rs"]
mod listing;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{Request, Response, header};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt};
use tower_mcp_analytics::AnalyticsLayer;
use tower_mcp_analytics::insights::{IntentCapture, MissingTools};
use tower_mcp_analytics::sink::{Batch, Sink, SinkFuture};

const REQUEST: &str = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Paris","units":"metric"},"_meta":{"progressToken":42}}}"#;
const RESULT: &str = r#"{"jsonrpc":"2.0","id":42,"result":{"content":[{"type":"text","text":"Sunny, 21 degrees"}],"isError":false}}"#;
const PROGRESS: [&str; 3] = [
    "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":42,\"progress\":1,\"total\":3}}\n\n",
    "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":42,\"progress\":2,\"total\":3}}\n\n",
    "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":42,\"progress\":3,\"total\":3}}\n\n",
];

/// A body that yields the given frames one by one.
struct Frames(VecDeque<Bytes>);

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

/// Reads the request, answers a fixed result as JSON or as SSE with 3 progress events;
/// with `listing`, answers that `tools/list` result instead (JSON, or one SSE event).
#[derive(Clone, Copy)]
struct FixedServer {
    sse: bool,
    listing: Option<&'static str>,
}

impl<B> Service<Request<B>> for FixedServer
where
    B: Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<Frames>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Frames>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let sse = self.sse;
        let listing = self.listing;
        Box::pin(async move {
            let _ = request.into_body().collect().await;
            let (content_type, frames) = if let Some(listing) = listing {
                match sse {
                    true => (
                        "text/event-stream",
                        VecDeque::from([Bytes::from(format!("data: {listing}\n\n"))]),
                    ),
                    false => (
                        "application/json",
                        VecDeque::from([Bytes::from_static(listing.as_bytes())]),
                    ),
                }
            } else if sse {
                let mut frames: VecDeque<Bytes> = PROGRESS
                    .iter()
                    .map(|f| Bytes::from_static(f.as_bytes()))
                    .collect();
                frames.push_back(Bytes::from(format!("data: {RESULT}\n\n")));
                ("text/event-stream", frames)
            } else {
                (
                    "application/json",
                    VecDeque::from([Bytes::from_static(RESULT.as_bytes())]),
                )
            };
            Ok(Response::builder()
                .header(header::CONTENT_TYPE, content_type)
                .body(Frames(frames))
                .unwrap_or_else(|_| Response::new(Frames(VecDeque::new()))))
        })
    }
}

/// Discards events.
struct Discard;

impl Sink for Discard {
    fn send<'a>(&'a self, _batch: &'a Batch) -> SinkFuture<'a> {
        Box::pin(std::future::ready(Ok(())))
    }
}

fn request(body: &'static str) -> Request<Full<Bytes>> {
    Request::post("/mcp")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap_or_else(|_| Request::new(Full::default()))
}

async fn round_trip<S, ResBody>(service: S)
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>>,
    S::Error: std::fmt::Debug,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: std::fmt::Debug,
{
    call(service, REQUEST).await;
}

async fn call<S, ResBody>(service: S, body: &'static str)
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>>,
    S::Error: std::fmt::Debug,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: std::fmt::Debug,
{
    if let Ok(response) = service.oneshot(request(body)).await {
        let _ = response.into_body().collect().await;
    }
    // Let other tasks run (the analytics worker, when there is one), as a server would.
    tokio::task::yield_now().await;
}

fn bench_layer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Built inside the runtime: the worker shares the benchmark's thread, so its cost
    // (building and handing over each event) is part of the measured time.
    let analytics = runtime.block_on(async { AnalyticsLayer::new(Discard) });
    // Built outside any runtime: the worker gets a thread of its own, as it would get
    // another core on a multi-threaded server; this measures the request path alone.
    let path_only = AnalyticsLayer::new(Discard);
    let trace = tower_http::trace::TraceLayer::new_for_http();

    let mut group = c.benchmark_group("request");
    for (name, sse) in [("json", false), ("sse_3_progress", true)] {
        let inner = FixedServer { sse, listing: None };
        group.bench_function(BenchmarkId::new("bare", name), |b| {
            b.to_async(&runtime).iter(|| round_trip(inner))
        });
        let layered = analytics.layer(inner);
        group.bench_function(BenchmarkId::new("analytics", name), |b| {
            b.to_async(&runtime).iter(|| round_trip(layered.clone()))
        });
        let layered = path_only.layer(inner);
        group.bench_function(BenchmarkId::new("analytics_request_path", name), |b| {
            b.to_async(&runtime).iter(|| round_trip(layered.clone()))
        });
        let traced = trace.layer(inner);
        group.bench_function(BenchmarkId::new("tower_http_trace", name), |b| {
            b.to_async(&runtime).iter(|| round_trip(traced.clone()))
        });
    }
    group.finish();
    let stats = analytics.stats();
    assert_eq!(
        stats.dropped.total(),
        0,
        "the bench must not overflow the queue: {stats:?}"
    );
}

const LIST_REQUEST: &str = r#"{"jsonrpc":"2.0","id":42,"method":"tools/list","params":{}}"#;

fn bench_tools_list(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let listing: &'static str = Box::leak(listing::hundred_tools(42).into_boxed_str());
    let defaults = runtime.block_on(async { AnalyticsLayer::new(Discard) });
    let insights = runtime.block_on(async {
        AnalyticsLayer::builder()
            .sink(Discard)
            .capture_intent(IntentCapture::new())
            .missing_tools(MissingTools::new())
            .build()
    });
    // Workers on threads of their own: the request path alone (the rewrite runs there).
    let defaults_path = AnalyticsLayer::new(Discard);
    let insights_path = AnalyticsLayer::builder()
        .sink(Discard)
        .capture_intent(IntentCapture::new())
        .missing_tools(MissingTools::new())
        .build();
    let mut group = c.benchmark_group("tools_list_100");
    for (name, sse) in [("json", false), ("sse", true)] {
        let inner = FixedServer {
            sse,
            listing: Some(listing),
        };
        group.bench_function(BenchmarkId::new("bare", name), |b| {
            b.to_async(&runtime).iter(|| call(inner, LIST_REQUEST))
        });
        let layered = defaults.layer(inner);
        group.bench_function(BenchmarkId::new("analytics", name), |b| {
            b.to_async(&runtime)
                .iter(|| call(layered.clone(), LIST_REQUEST))
        });
        let layered = insights.layer(inner);
        group.bench_function(BenchmarkId::new("analytics_intent_rewrite", name), |b| {
            b.to_async(&runtime)
                .iter(|| call(layered.clone(), LIST_REQUEST))
        });
        let layered = defaults_path.layer(inner);
        group.bench_function(BenchmarkId::new("request_path", name), |b| {
            b.to_async(&runtime)
                .iter(|| call(layered.clone(), LIST_REQUEST))
        });
        let layered = insights_path.layer(inner);
        group.bench_function(BenchmarkId::new("request_path_intent_rewrite", name), |b| {
            b.to_async(&runtime)
                .iter(|| call(layered.clone(), LIST_REQUEST))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_layer, bench_tools_list);
criterion_main!(benches);
