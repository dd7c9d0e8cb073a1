//! [`ObservedBody`]: the response body the client receives, with a tap on the side.
//!
//! Owns the response half of observation: every frame is returned exactly as the inner
//! body produced it, the moment it produced it; a copy of data frames feeds either a
//! bounded JSON accumulator or the incremental SSE decoder. The exchange is finished at
//! the last answer, at end of stream (`None`, an error, or `is_end_stream()` turning
//! true), or, when the body is dropped early, recorded as cancelled. Never buffers,
//! delays or alters the response itself: only a [`Rewriter`] does, when an opt-in insight
//! asks for one (the tap then sees the server's bytes, the client the rewritten ones).
//! Once every call has its answer the tap is gone and the body is a plain pass-through
//! (long-lived streams cost nothing more).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::response::Parts;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::event::ResponseKind;
use crate::exchange::{End, Exchange};
use crate::protocol::mcp;
use crate::protocol::sse::{SseDecoder, SseItem};

use super::Rewriter;

pin_project! {
    /// The response body handed to the client: the inner body, frame for frame.
    ///
    /// Produced by [`AnalyticsService`](crate::AnalyticsService); you only meet this type
    /// in signatures.
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use tower_mcp_analytics::ObservedBody;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let body = ObservedBody::new(http_body_util::Full::new(bytes::Bytes::from_static(b"ok")));
    /// assert_eq!(body.collect().await.unwrap().to_bytes(), "ok");
    /// # }
    /// ```
    pub struct ObservedBody<B> {
        // `None` for the layer's own answer.
        #[pin]
        inner: Option<B>,
        tap: Option<Box<ResponseTap>>,
        // Only when an opt-in insight changes the response (see `insights`).
        rewrite: Option<Box<Rewriter>>,
    }
}

impl<B> ObservedBody<B> {
    /// A body with nothing to observe: a pure pass-through.
    ///
    /// ```
    /// let body = tower_mcp_analytics::ObservedBody::new(http_body_util::Empty::<bytes::Bytes>::new());
    /// ```
    pub fn new(inner: B) -> Self {
        Self::tapped(inner, None, None)
    }

    pub(crate) fn tapped(
        inner: B,
        tap: Option<Box<ResponseTap>>,
        rewrite: Option<Box<Rewriter>>,
    ) -> Self {
        Self {
            inner: Some(inner),
            tap,
            rewrite,
        }
    }

    /// The layer's own answer: `bytes`, observed by `tap` like any answer.
    pub(crate) fn own(bytes: Bytes) -> Self {
        Self {
            inner: None,
            tap: None,
            rewrite: Some(Box::new(Rewriter::own(bytes))),
        }
    }

    pub(crate) fn set_tap(&mut self, tap: Option<Box<ResponseTap>>) {
        self.tap = tap;
    }
}

impl<B> Body for ObservedBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        if this.rewrite.as_ref().is_some_and(|r| r.is_through()) && this.inner.is_some() {
            // Nothing held and nothing more to change: a plain pass-through from here.
            *this.rewrite = None;
        }
        let Some(rewrite) = this.rewrite.as_mut() else {
            let Some(inner) = this.inner.as_mut().as_pin_mut() else {
                return Poll::Ready(None);
            };
            let frame = ready!(inner.poll_frame(cx));
            if this.tap.is_some() {
                observe(this.tap, &frame, inner_ended(this.inner.as_ref()));
            }
            return Poll::Ready(frame);
        };
        loop {
            if let Some(frame) = rewrite.next() {
                let frame = Some(Ok(frame));
                if rewrite.is_own() {
                    // The layer's own answer is observed like a server's.
                    observe(this.tap, &frame, rewrite.is_drained());
                }
                return Poll::Ready(frame);
            }
            let Some(inner) = this.inner.as_mut().as_pin_mut() else {
                observe::<B::Error>(this.tap, &None, true);
                return Poll::Ready(None);
            };
            let frame = ready!(inner.poll_frame(cx));
            let ended = inner_ended(this.inner.as_ref());
            observe(this.tap, &frame, ended);
            match frame {
                Some(Ok(frame)) => {
                    rewrite.push(frame);
                    if ended {
                        rewrite.finish();
                    }
                }
                Some(Err(error)) => {
                    // The answer failed: what was held of it is of no use to the client.
                    *this.rewrite = None;
                    return Poll::Ready(Some(Err(error)));
                }
                None => {
                    rewrite.finish();
                    if rewrite.is_drained() {
                        return Poll::Ready(None);
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let inner_ended = self
            .inner
            .as_ref()
            .is_none_or(|inner| inner.is_end_stream());
        let drained = self.rewrite.as_ref().is_none_or(|r| r.is_drained());
        inner_ended && drained
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.rewrite, &self.inner) {
            (None, Some(inner)) => inner.size_hint(),
            (Some(rewrite), None) => rewrite.own_size_hint(),
            _ => SizeHint::default(),
        }
    }
}

/// Whether the inner body (if any) has nothing more.
fn inner_ended<B: Body>(inner: Pin<&Option<B>>) -> bool {
    inner.as_pin_ref().is_none_or(|inner| inner.is_end_stream())
}

/// Feeds a frame that goes to the client to the tap, and finishes the exchange when the
/// answer is complete. `ended`: the body has nothing more after this frame.
fn observe<E>(
    slot: &mut Option<Box<ResponseTap>>,
    frame: &Option<Result<Frame<Bytes>, E>>,
    ended: bool,
) {
    {
        if let Some(mut tap) = slot.take() {
            let end = match &frame {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        tap.feed(data);
                    }
                    if !tap.exchange.pending() {
                        Some(End::NoResponse)
                    } else if tap.complete() || ended {
                        Some(tap.end_of_stream())
                    } else {
                        None
                    }
                }
                Some(Err(_)) => Some(End::NoResponse),
                None => Some(tap.end_of_stream()),
            };
            match end {
                Some(end) => tap.exchange.finish(end),
                None => *slot = Some(tap),
            }
        }
    }
}

impl<B> std::fmt::Debug for ObservedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedBody")
            .field("observing", &self.tap.is_some())
            .finish_non_exhaustive()
    }
}

/// The side channel of an observed response.
#[derive(Debug)]
pub(crate) struct ResponseTap {
    exchange: Exchange,
    reader: Reader,
}

#[derive(Debug)]
enum Reader {
    Json {
        chunks: Vec<Bytes>,
        len: usize,
        limit: usize,
        overflowed: bool,
        /// The body's exact length when it declared one: reaching it completes the body
        /// even if the server never polls for its end.
        expected: Option<u64>,
    },
    Sse {
        decoder: SseDecoder,
        oversized: bool,
    },
}

impl ResponseTap {
    /// Looks at the response head. Returns `None` (after recording the exchange) when
    /// there is nothing left to learn from the body.
    pub(crate) fn start<B: Body>(
        mut exchange: Exchange,
        head: &Parts,
        body: &B,
        limit: usize,
    ) -> Option<Box<Self>> {
        let body_ended = body.is_end_stream();
        let content_type = head.headers.get(CONTENT_TYPE);
        let kind = if mcp::is_json(content_type) {
            ResponseKind::Json
        } else if mcp::is_event_stream(content_type) {
            ResponseKind::Sse
        } else if body_ended {
            ResponseKind::Empty
        } else {
            ResponseKind::Other
        };
        let opened_session = mcp::header_text(head.headers.get(mcp::SESSION_ID));
        exchange.on_head(head.status, kind, opened_session.as_deref());
        if !exchange.pending() || body_ended {
            exchange.finish(End::NoResponse);
            return None;
        }
        if mcp::is_encoded(head.headers.get(CONTENT_ENCODING)) {
            // Compressed by a layer between this one and the service: not decoded here.
            exchange.finish(End::Unreadable);
            return None;
        }
        let reader = match kind {
            ResponseKind::Sse => Reader::Sse {
                decoder: SseDecoder::new(limit),
                oversized: false,
            },
            _ => Reader::Json {
                chunks: Vec::new(),
                len: 0,
                limit,
                overflowed: false,
                expected: body.size_hint().exact(),
            },
        };
        Some(Box::new(Self { exchange, reader }))
    }

    fn feed(&mut self, data: &Bytes) {
        match &mut self.reader {
            Reader::Json {
                chunks,
                len,
                limit,
                overflowed,
                ..
            } => {
                *len += data.len();
                if *overflowed {
                    // Keep counting, so that the event can say how large the answer was.
                    return;
                }
                if *len > *limit {
                    *overflowed = true;
                    *chunks = Vec::new();
                } else if !data.is_empty() {
                    chunks.push(data.clone());
                }
            }
            Reader::Sse { decoder, oversized } => {
                let exchange = &mut self.exchange;
                decoder.feed(data, &mut |item| match item {
                    SseItem::Data(data) => exchange.on_sse_data(data),
                    SseItem::Oversized => *oversized = true,
                });
            }
        }
    }

    /// The whole declared body has been seen.
    fn complete(&self) -> bool {
        match &self.reader {
            Reader::Json { len, expected, .. } => expected.is_some_and(|e| *len as u64 >= e),
            Reader::Sse { .. } => false,
        }
    }

    /// How calls still waiting at the end of the stream ended.
    fn end_of_stream(&mut self) -> End {
        match &mut self.reader {
            Reader::Json {
                overflowed: true,
                len,
                ..
            } => End::TooLarge(Some(*len)),
            Reader::Sse {
                oversized: true, ..
            } => End::TooLarge(None),
            Reader::Json { chunks, len, .. } => {
                let body = super::join_chunks(chunks, *len, true);
                self.exchange.on_json_body(body);
                End::NoResponse
            }
            Reader::Sse { .. } => End::NoResponse,
        }
    }
}
