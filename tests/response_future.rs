//! The contract of the service's future: it resolves once, and a poll after that is a
//! bug in the caller, reported with a clear panic rather than a future pending forever.

use std::convert::Infallible;
use std::future::Future;
use std::task::{Context, Waker};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_mcp_analytics::{AnalyticsLayer, MemorySink, ReplayBody};

/// Calls a layered echo service with `request`, awaits the response, then polls the same
/// future once more.
async fn poll_twice(request: Request<Full<Bytes>>) {
    let layer = AnalyticsLayer::new(MemorySink::new());
    let mut service = layer.layer(service_fn(
        |_request: Request<ReplayBody<Full<Bytes>>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
        },
    ));
    let ready = service.ready().await.expect("the service is ready");
    let mut future = std::pin::pin!(ready.call(request));
    let response = future.as_mut().await.expect("the call succeeds");
    assert_eq!(response.status(), 200);
    let mut cx = Context::from_waker(Waker::noop());
    let _ = future.as_mut().poll(&mut cx);
}

#[tokio::test]
#[should_panic(expected = "ResponseFuture polled after completion")]
async fn a_request_passed_straight_through() {
    poll_twice(Request::new(Full::new(Bytes::new()))).await;
}

#[tokio::test]
#[should_panic(expected = "ResponseFuture polled after completion")]
async fn a_request_whose_body_was_read() {
    let request = Request::post("/mcp")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        )))
        .expect("a valid request");
    poll_twice(request).await;
}
