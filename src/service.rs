//! [`AnalyticsService`]: the request path.
//!
//! Owns what happens between a request arriving and its response head leaving: reading a
//! JSON POST body up to the capture limit, parsing it into calls, calling the inner
//! service with the exact original bytes, and wrapping the response body in an observer.
//! Never changes a request or a response, never fails one, and never does I/O, takes a
//! lock, or serialises an event: finished exchanges go to the worker with a `try_send`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT};
use http::{Method, Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::body::{Capture, Captured, ObservedBody, ReplayBody, ResponseTap};
use crate::delivery::DropReason;
use crate::exchange::{End, Exchange, RequestInfo};
use crate::identity::RequestView;
use crate::layer::{AnalyticsLayer, Shared};
use crate::protocol::jsonrpc::{ClientMessage, parse_client_body};
use crate::protocol::mcp;
use crate::retention::{COPY_AT_MOST, Reserved};

/// The service [`AnalyticsLayer`] wraps around an MCP HTTP service.
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
    pub(crate) fn new(inner: S, layer: &AnalyticsLayer) -> Self {
        Self {
            inner,
            shared: Arc::clone(layer.shared()),
        }
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
                self.shared.recorder.session_ended(session);
            }
            return self.call_now(request, None);
        }
        let mut info = RequestInfo::new(Instant::now(), self.shared.now());
        info.protocol_version = mcp::header_text(headers.get(mcp::PROTOCOL_VERSION));
        info.mcp_session = mcp::header_text(headers.get(mcp::SESSION_ID));
        info.user_agent = mcp::header_text(headers.get(USER_AGENT));
        info.client_header_name = mcp::header_text(headers.get(mcp::CLIENT_NAME));
        info.client_header_version = mcp::header_text(headers.get(mcp::CLIENT_VERSION));
        let from_headers = mcp::header_text(headers.get(mcp::METHOD)).map(|method| {
            ClientMessage::from_headers(method, mcp::header_text(headers.get(mcp::NAME)))
        });
        let limit = self.shared.config.capture_limit;
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
        ResponseFuture {
            state: State::Capturing {
                capturing: Some(Capturing {
                    service,
                    parts,
                    body: Box::pin(body),
                    capture: Capture::new(limit),
                    info,
                    from_headers,
                }),
            },
            shared: Arc::clone(&self.shared),
        }
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
        ResponseFuture {
            state: State::Calling {
                future: self.inner.call(request.map(ReplayBody::new)),
                exchange,
            },
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Everything needed to call the inner service once the body has been read.
struct Capturing<S, B> {
    service: S,
    parts: http::request::Parts,
    body: Pin<Box<B>>,
    capture: Capture,
    info: RequestInfo,
    from_headers: Option<ClientMessage>,
}

pin_project! {
    /// The future of [`AnalyticsService`]: reads a JSON POST body (when there is one to
    /// read), then resolves to the inner service's response with its body observed.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<ReplayBody<B>>>,
        B: Body,
    {
        #[pin]
        state: State<S, B>,
        shared: Arc<Shared>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<ReplayBody<B>>>,
        B: Body,
    {
        Capturing {
            capturing: Option<Capturing<S, B>>,
        },
        Calling {
            #[pin]
            future: S::Future,
            exchange: Option<Exchange>,
        },
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<ResBody>>,
    B: Body<Data = Bytes>,
    ResBody: Body<Data = Bytes>,
{
    type Output = Result<Response<ObservedBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Capturing { capturing } => {
                    let captured = match capturing.as_mut() {
                        Some(current) => {
                            ready!(current.capture.poll_capture(current.body.as_mut(), cx))
                        }
                        // Only after a panic in the inner service's `call` left the state behind.
                        None => return Poll::Pending,
                    };
                    let Some(current) = capturing.take() else {
                        return Poll::Pending;
                    };
                    let (future, exchange) = current.call(captured, this.shared);
                    this.state.set(State::Calling { future, exchange });
                }
                StateProj::Calling { future, exchange } => {
                    let result = ready!(future.poll(cx));
                    let exchange = exchange.take();
                    return Poll::Ready(match result {
                        Ok(response) => {
                            let (head, body) = response.into_parts();
                            let limit = this.shared.config.response_capture_limit;
                            let tap =
                                exchange.and_then(|ex| ResponseTap::start(ex, &head, &body, limit));
                            Ok(Response::from_parts(head, ObservedBody::tapped(body, tap)))
                        }
                        Err(error) => {
                            if let Some(exchange) = exchange {
                                exchange.finish(End::NoResponse);
                            }
                            Err(error)
                        }
                    });
                }
            }
        }
    }
}

impl<S, B> Capturing<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
    B: Body<Data = Bytes>,
{
    /// Parses what was read and calls the inner service with the exact original body.
    fn call(
        mut self,
        captured: Captured<B::Error>,
        shared: &Shared,
    ) -> (S::Future, Option<Exchange>) {
        let recorder = &shared.recorder;
        let (body, exchange) = match captured {
            Captured::Complete { body, trailers } => {
                let parsed = parse_client_body(&body, shared.config.max_calls_per_request);
                let exchange = match parsed {
                    Some(parsed) => {
                        let counters = recorder.counters();
                        if parsed.over_cap > 0 {
                            let over = parsed.over_cap as u64;
                            counters.recorded(over);
                            counters.dropped(DropReason::CallCap, over);
                        }
                        if parsed.messages.is_empty() {
                            if parsed.responses == 0 && parsed.over_cap == 0 {
                                // Valid JSON with no JSON-RPC message in it.
                                counters.unparsed_request();
                            }
                            None
                        } else {
                            self.info.batch = parsed.batch;
                            let mut messages = parsed.messages;
                            let (kept, reserved) = retain(&mut messages, shared);
                            self.info.body_len = kept;
                            self.info.reserved = reserved;
                            Some(open_exchange(shared, self.info, &self.parts, messages))
                        }
                    }
                    None => header_exchange(shared, self.info, &self.parts, self.from_headers),
                };
                (ReplayBody::replay(body, None, trailers, None), exchange)
            }
            Captured::OverLimit { prefix } => {
                let exchange = header_exchange(shared, self.info, &self.parts, self.from_headers);
                (
                    ReplayBody::replay(prefix, None, None, Some(self.body)),
                    exchange,
                )
            }
            Captured::Failed { prefix, error } => {
                (ReplayBody::replay(prefix, Some(error), None, None), None)
            }
        };
        let future = self.service.call(Request::from_parts(self.parts, body));
        (future, exchange)
    }
}

/// Keeps of each call's arguments only what the budget for calls in flight allows: small
/// ones are copied out of the body (which may share a much larger buffer), large ones are
/// kept while the budget lasts and withheld past it (counted). Returns the bytes kept and
/// their reservation.
fn retain(messages: &mut [ClientMessage], shared: &Shared) -> (usize, Option<Reserved>) {
    let mut kept = 0;
    let mut reserved: Option<Reserved> = None;
    for message in messages {
        let Some(arguments) = &message.arguments else {
            continue;
        };
        let len = arguments.len();
        if len <= COPY_AT_MOST {
            let copy = Bytes::copy_from_slice(arguments);
            message.arguments = Some(copy);
            kept += len;
            continue;
        }
        match shared.retention.reserve(len) {
            Some(more) => {
                kept += len;
                match &mut reserved {
                    Some(held) => held.absorb(more),
                    None => reserved = Some(more),
                }
            }
            None => {
                message.arguments = None;
                message.withheld = Some(len);
                shared.recorder.counters().payload_withheld();
            }
        }
    }
    (kept, reserved)
}

/// An exchange for a request whose body was not read: its call comes from the
/// `Mcp-Method` / `Mcp-Name` headers, or there is none (counted as unparsed).
fn header_exchange(
    shared: &Shared,
    info: RequestInfo,
    parts: &http::request::Parts,
    from_headers: Option<ClientMessage>,
) -> Option<Exchange> {
    match from_headers {
        Some(message) => Some(open_exchange(shared, info, parts, vec![message])),
        None => {
            shared.recorder.counters().unparsed_request();
            None
        }
    }
}

/// Runs the request hooks and opens the exchange of `messages`.
fn open_exchange(
    shared: &Shared,
    mut info: RequestInfo,
    parts: &http::request::Parts,
    messages: Vec<ClientMessage>,
) -> Exchange {
    let view = RequestView::new(parts, &messages);
    let answers = shared.hooks.run(&view, shared.recorder.counters());
    info.user = answers.user;
    info.session_key = answers.session_key;
    info.tags = answers.tags;
    info.properties = answers.properties;
    info.hook_failed = answers.failed;
    info.headers = shared.capture_headers(&parts.headers);
    Exchange::new(info, messages, Arc::clone(&shared.recorder))
}
