//! [`AnalyticsService`]: the request path.
//!
//! Owns what happens between a request arriving and its response head leaving: deciding
//! whether a request carries MCP messages to read, and how much of its body to read.
//! [`open`](self::open) turns what was read into an exchange and calls the inner service,
//! [`future`](self::future) awaits it and wraps the response body in an observer,
//! [`shared`](self::shared) holds what every service of a layer shares. Never changes a
//! request or a response (unless an opt-in insight asks it to: see `insights`), never
//! fails one, and never does I/O, takes a lock (intent capture aside: a read of the tools
//! that have the argument of their own), or serialises an event: finished exchanges go
//! to the worker with a `try_send`.

mod future;
mod open;
mod shared;

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response};
use http_body::Body;
use tower_service::Service;

pub use future::ResponseFuture;
use open::{Capturing, header_exchange};
pub use shared::DEFAULT_CAPTURE_LIMIT;
#[cfg(feature = "bench-internals")]
pub(crate) use shared::DEFAULT_MAX_CALLS_PER_REQUEST;
pub(crate) use shared::{Clock, Limits, Shared};

use crate::body::{Capture, ObservedBody, ReplayBody};
use crate::event::ids::mcp_session_id;
use crate::exchange::{Exchange, RequestInfo};
use crate::protocol::jsonrpc::ClientMessage;
use crate::protocol::mcp;

/// The service [`AnalyticsLayer`](crate::AnalyticsLayer) wraps around an MCP HTTP service.
///
/// The inner service receives `Request<ReplayBody<B>>` and its response body is returned
/// to the client as [`ObservedBody`]; errors pass through unchanged.
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use tower_mcp_analytics::{AnalyticsLayer, MemorySink, ReplayBody};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let service = ServiceBuilder::new()
///     .layer(AnalyticsLayer::new(MemorySink::new()))
///     .service(service_fn(|_req: Request<ReplayBody<String>>| async {
///         Ok::<_, Infallible>(Response::new(String::from("{}")))
///     }));
/// let response = service.oneshot(Request::new(String::new())).await.unwrap();
/// assert_eq!(response.status(), 200);
/// # }
/// ```
pub struct AnalyticsService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> AnalyticsService<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The wrapped service.
    ///
    /// ```
    /// # use tower_mcp_analytics::{AnalyticsLayer, MemorySink};
    /// # use tower_layer::Layer;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let service = AnalyticsLayer::new(MemorySink::new()).layer(42u8);
    /// assert_eq!(*service.get_ref(), 42);
    /// # }
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    ///
    /// ```
    /// # use tower_mcp_analytics::{AnalyticsLayer, MemorySink};
    /// # use tower_layer::Layer;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut service = AnalyticsLayer::new(MemorySink::new()).layer(41u8);
    /// *service.get_mut() += 1;
    /// assert_eq!(*service.get_ref(), 42);
    /// # }
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    ///
    /// ```
    /// # use tower_mcp_analytics::{AnalyticsLayer, MemorySink};
    /// # use tower_layer::Layer;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let service = AnalyticsLayer::new(MemorySink::new()).layer(42u8);
    /// assert_eq!(service.into_inner(), 42);
    /// # }
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone> Clone for AnalyticsService<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for AnalyticsService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyticsService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<Request<B>> for AnalyticsService<S>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<ResBody>> + Clone,
    B: Body<Data = Bytes>,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let headers = request.headers();
        if request.method() != Method::POST || !mcp::is_json(headers.get(CONTENT_TYPE)) {
            if request.method() == Method::DELETE
                && let Some(session) = mcp::header_text(headers.get(mcp::SESSION_ID))
            {
                self.shared.recorder.session_ended(mcp_session_id(&session));
            }
            return self.call_now(request, None);
        }
        #[cfg_attr(not(feature = "otel"), allow(unused_mut))]
        let mut info = RequestInfo::from_head(headers, Instant::now(), self.shared.now());
        #[cfg(feature = "otel")]
        if let Some(ambient) = &self.shared.ambient {
            let clues = crate::otel::read_clues(headers, request.version(), ambient);
            info.trace = Some(Arc::new(clues));
        }
        let from_headers = mcp::header_text(headers.get(mcp::METHOD)).map(|method| {
            ClientMessage::from_headers(method, mcp::header_text(headers.get(mcp::NAME)))
        });
        let limit = self.shared.limits.capture_limit;
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            let (parts, body) = request.into_parts();
            let exchange = header_exchange(&self.shared, info, &parts, from_headers);
            return self.call_now(Request::from_parts(parts, body), exchange);
        }
        // The body must be read before the inner service is called: take the service that
        // was driven to readiness and leave a clone in its place.
        let clone = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = request.into_parts();
        let capturing = Capturing {
            service,
            parts,
            body: Box::pin(body),
            capture: Capture::new(limit),
            info,
            from_headers,
        };
        ResponseFuture::capturing(capturing, Arc::clone(&self.shared))
    }
}

impl<S> AnalyticsService<S> {
    /// Calls the inner service at once with the body untouched.
    fn call_now<B, ResBody>(
        &mut self,
        request: Request<B>,
        exchange: Option<Exchange>,
    ) -> ResponseFuture<S, B>
    where
        S: Service<Request<ReplayBody<B>>, Response = Response<ResBody>>,
        B: Body<Data = Bytes>,
    {
        let future = self.inner.call(request.map(ReplayBody::new));
        ResponseFuture::calling(future, exchange, Arc::clone(&self.shared))
    }
}
