//! A worker the caller runs (`build_with_worker`): it delivers from wherever it is spawned,
//! `shutdown` stops it as it stops a worker the layer started, and a worker that is never
//! run costs requests nothing and loses its events counted.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_mcp_analytics::{AnalyticsLayer, MemorySink, ReplayBody};

const CALL: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{}}}"#;
const ANSWER: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#;

/// One tool call through the layer; returns the response body the client read.
async fn call(layer: &AnalyticsLayer) -> Bytes {
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(
            |_request: Request<ReplayBody<Full<Bytes>>>| async {
                let response = Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(ANSWER.as_bytes())))
                    .expect("a valid response");
                Ok::<_, Infallible>(response)
            },
        ));
    let request = Request::post("/mcp")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(CALL.as_bytes())))
        .expect("a valid request");
    let response = service.oneshot(request).await.expect("the call succeeds");
    response
        .into_body()
        .collect()
        .await
        .expect("the body is read")
        .to_bytes()
}

#[tokio::test]
async fn a_worker_spawned_on_another_runtime_delivers_and_stops_at_shutdown() {
    let background = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let sink = MemorySink::new();
    let (layer, worker) = AnalyticsLayer::builder()
        .sink(sink.clone())
        .build_with_worker();
    let running = background.spawn(worker);
    for _ in 0..3 {
        assert_eq!(call(&layer).await, ANSWER.as_bytes());
    }
    layer.flush().await;
    let events = sink.events();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| e.resource_name.as_deref() == Some("add"))
    );

    let report = layer.shutdown(Duration::from_secs(5)).await;
    assert!(report.flushed);
    assert_eq!(report.stats.delivered, 3);
    assert_eq!(report.stats.dropped.total(), 0);
    // The worker future has completed: shutdown stopped it.
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the worker ends at shutdown")
        .expect("the worker did not panic");
    background.shutdown_background();
}

#[tokio::test]
async fn a_worker_never_run_leaves_requests_alone_and_shutdown_counts_the_loss() {
    let sink = MemorySink::new();
    let (layer, worker) = AnalyticsLayer::builder()
        .sink(sink.clone())
        .build_with_worker();
    for _ in 0..2 {
        assert_eq!(call(&layer).await, ANSWER.as_bytes());
    }
    // The worker is held but never polled: shutdown gives up at its deadline.
    let report = tokio::time::timeout(
        Duration::from_secs(10),
        layer.shutdown(Duration::from_millis(200)),
    )
    .await
    .expect("shutdown returns by its deadline");
    assert!(!report.flushed);
    assert_eq!(report.stats.recorded, 2);
    // Still queued: the worker owns the queue, and has not let go of it.
    assert_eq!(report.stats.in_queue, 2, "{:?}", report.stats);
    drop(worker);
    let stats = layer.stats();
    assert_eq!(stats.in_queue, 0);
    assert_eq!(stats.dropped.shutdown, 2, "{stats:?}");
    assert!(sink.events().is_empty());
}

#[tokio::test]
async fn a_worker_dropped_unrun_loses_events_counted() {
    let (layer, worker) = AnalyticsLayer::builder()
        .sink(MemorySink::new())
        .build_with_worker();
    drop(worker);
    assert_eq!(call(&layer).await, ANSWER.as_bytes());
    let report = layer.shutdown(Duration::from_secs(1)).await;
    let stats = report.stats;
    assert_eq!(stats.recorded, 1);
    assert_eq!(stats.delivered, 0);
    assert_eq!(stats.dropped.total(), 1, "{stats:?}");
}
