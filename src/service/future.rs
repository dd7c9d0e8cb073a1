//! [`ResponseFuture`]: the future [`AnalyticsService`](super::AnalyticsService) returns.
//!
//! Owns the two steps of a call: reading a JSON POST body (when there is one to read),
//! then awaiting the inner service and wrapping its response body in an observer. Never
//! changes the response; an error from the inner service passes through, its exchange
//! ended as unanswered. Polled after it completed, it panics with a message saying so.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::open::{Capturing, Opened};
use super::shared::Shared;
use crate::body::{ObservedBody, ReplayBody, ResponseTap, Rewriter};
use crate::exchange::{End, Exchange};
use crate::protocol::jsonrpc::RequestId;

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
    B: Body,
{
    /// Reads the body of `capturing`'s request before calling its service.
    pub(crate) fn capturing(capturing: Capturing<S, B>, shared: Arc<Shared>) -> Self {
        Self {
            state: State::Capturing { capturing },
            shared,
        }
    }

    /// Awaits a call already made.
    pub(crate) fn calling(
        future: S::Future,
        exchange: Option<Exchange>,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            state: State::Calling {
                future,
                exchange,
                listing: None,
            },
            shared,
        }
    }
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
    #[project_replace = StateTaken]
    enum State<S, B>
    where
        S: Service<Request<ReplayBody<B>>>,
        B: Body,
    {
        Capturing {
            capturing: Capturing<S, B>,
        },
        Calling {
            #[pin]
            future: S::Future,
            exchange: Option<Exchange>,
            listing: Option<Vec<RequestId>>,
        },
        Done,
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
                    let captured =
                        ready!(capturing.capture.poll_capture(capturing.body.as_mut(), cx));
                    // Done while the inner service is called: should its `call` panic, a
                    // later poll says so instead of waiting forever.
                    let taken = this.state.as_mut().project_replace(State::Done);
                    if let StateTaken::Capturing { capturing } = taken {
                        match capturing.open(captured, this.shared) {
                            Opened::Called {
                                future,
                                exchange,
                                listing,
                            } => this.state.set(State::Calling {
                                future,
                                exchange,
                                listing,
                            }),
                            Opened::Answered { answer, exchange } => {
                                return Poll::Ready(Ok(answered(answer, exchange, this.shared)));
                            }
                        }
                    }
                }
                StateProj::Calling {
                    future,
                    exchange,
                    listing,
                } => {
                    let result = ready!(future.poll(cx));
                    let exchange = exchange.take();
                    let listing = listing.take();
                    this.state.set(State::Done);
                    return Poll::Ready(match result {
                        Ok(response) => {
                            let (mut head, body) = response.into_parts();
                            let limit = this.shared.limits.response_capture_limit;
                            let tap =
                                exchange.and_then(|ex| ResponseTap::start(ex, &head, &body, limit));
                            let insights = this.shared.insights.as_ref();
                            let rewrite = listing.zip(insights).and_then(|(ids, insights)| {
                                Rewriter::listing(&mut head, ids, insights, limit).map(Box::new)
                            });
                            Ok(Response::from_parts(
                                head,
                                ObservedBody::tapped(body, tap, rewrite),
                            ))
                        }
                        Err(error) => {
                            if let Some(exchange) = exchange {
                                exchange.finish(End::NoResponse);
                            }
                            Err(error)
                        }
                    });
                }
                StateProj::Done => {
                    panic!("ResponseFuture polled after completion (or after its service panicked)")
                }
            }
        }
    }
}

/// The layer's own answer to a request (the virtual tool), observed like a server's.
fn answered<B>(
    answer: Bytes,
    exchange: Option<Exchange>,
    shared: &Arc<Shared>,
) -> Response<ObservedBody<B>>
where
    B: Body<Data = Bytes>,
{
    let length = answer.len();
    let mut body = ObservedBody::own(answer);
    let mut response = Response::new(());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(length),
    );
    let (head, ()) = response.into_parts();
    let limit = shared.limits.response_capture_limit;
    body.set_tap(exchange.and_then(|ex| ResponseTap::start(ex, &head, &body, limit)));
    Response::from_parts(head, body)
}
