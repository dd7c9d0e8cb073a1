//! One `tools/call echo` through an analytics layer, in process, with as little work
//! around it as possible (no JSON built or parsed): for tests that record many events.
//!
//! Include it with `#[path = "support/echo_call.rs"] mod echo_call;`.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt, service_fn};
use tower_mcp_analytics::{AnalyticsLayer, ReplayBody};

/// The fixed answer of the inner service.
const ANSWER: &[u8] =
    br#"{"jsonrpc":"2.0","id":0,"result":{"content":[{"type":"text","text":"ok"}]}}"#;

/// A JSON POST to `/mcp` of `tools/call echo` with JSON-RPC id `id` (text `hello {id}`),
/// with `headers` besides the content type.
pub fn echo_request(id: u64, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"hello {id}"}}}}}}"#
    );
    let mut request = Request::post("/mcp").header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .body(Full::new(Bytes::from(body)))
        .expect("a valid request")
}

/// Sends `request` through `layer` to an inner service that reads the whole request and
/// answers one fixed tool result; reads the whole response and returns its status.
pub async fn through_layer(layer: &AnalyticsLayer, request: Request<Full<Bytes>>) -> StatusCode {
    let service = layer.layer(service_fn(
        |request: Request<ReplayBody<Full<Bytes>>>| async move {
            let _ = request.into_body().collect().await;
            Ok::<_, Infallible>(
                Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(ANSWER)))
                    .expect("a valid response"),
            )
        },
    ));
    let response = service
        .oneshot(request)
        .await
        .unwrap_or_else(|never| match never {});
    let status = response.status();
    let _ = response.into_body().collect().await;
    status
}
