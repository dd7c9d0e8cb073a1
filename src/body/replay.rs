//! [`ReplayBody`]: the request body the inner service receives.
//!
//! Owns byte-exact replay: the bytes the layer read first (one frame), then whatever the
//! original body still has (further data, trailers or its error), untouched. Never alters,
//! reorders or drops a byte.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The request body handed to the inner service: exactly the bytes the client sent.
    ///
    /// Requests the layer does not read pass their body through as it is; for JSON POSTs
    /// it replays the bytes it read (up to the capture limit) followed by the rest of the
    /// original stream.
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use tower_mcp_analytics::ReplayBody;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let body = ReplayBody::new(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")));
    /// assert_eq!(body.collect().await.unwrap().to_bytes(), "{}");
    /// # }
    /// ```
    pub struct ReplayBody<B: Body> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B: Body> {
        Direct {
            #[pin]
            body: B,
        },
        Replay {
            prefix: Option<Bytes>,
            error: Option<B::Error>,
            trailers: Option<HeaderMap>,
            rest: Option<Pin<Box<B>>>,
        },
    }
}

impl<B: Body> ReplayBody<B> {
    /// Passes `body` through unchanged.
    ///
    /// ```
    /// let body = tower_mcp_analytics::ReplayBody::new(http_body_util::Empty::<bytes::Bytes>::new());
    /// ```
    pub fn new(body: B) -> Self {
        Self {
            kind: Kind::Direct { body },
        }
    }

    /// Replays `prefix`, then `error`, the rest of `rest`, or `trailers`.
    pub(crate) fn replay(
        prefix: Bytes,
        error: Option<B::Error>,
        trailers: Option<HeaderMap>,
        rest: Option<Pin<Box<B>>>,
    ) -> Self {
        Self {
            kind: Kind::Replay {
                prefix: (!prefix.is_empty()).then_some(prefix),
                error,
                trailers,
                rest,
            },
        }
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Direct { body } => body.poll_frame(cx),
            KindProj::Replay {
                prefix,
                error,
                trailers,
                rest,
            } => {
                if let Some(prefix) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(prefix))));
                }
                if let Some(error) = error.take() {
                    return Poll::Ready(Some(Err(error)));
                }
                if let Some(body) = rest {
                    match body.as_mut().poll_frame(cx) {
                        Poll::Ready(None) => *rest = None,
                        other => return other,
                    }
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Direct { body } => body.is_end_stream(),
            Kind::Replay {
                prefix,
                error,
                trailers,
                rest,
            } => {
                prefix.is_none()
                    && error.is_none()
                    && trailers.is_none()
                    && rest.as_ref().is_none_or(|body| body.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Direct { body } => body.size_hint(),
            Kind::Replay { prefix, rest, .. } => {
                let prefix = prefix.as_ref().map_or(0, |p| p.len() as u64);
                let mut hint = rest
                    .as_ref()
                    .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint());
                hint.set_lower(hint.lower() + prefix);
                if let Some(upper) = hint.upper() {
                    hint.set_upper(upper + prefix);
                }
                hint
            }
        }
    }
}

impl<B: Body> std::fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayBody").finish_non_exhaustive()
    }
}
