//! [`ObservedBody`]: the response body the client receives, with a tap on the side.
//!
//! Owns the response half of observation: every frame is returned exactly as the inner
//! body produced it, the moment it produced it; a copy of data frames feeds either a
//! bounded JSON accumulator or the incremental SSE decoder. The exchange is finished at
//! the last answer, at end of stream (`None`, an error, or `is_end_stream()` turning
//! true), or, when the body is dropped early, recorded as cancelled. Never buffers,
//! delays or alters the response; once every call has its answer the tap is gone and the
//! body is a plain pass-through (long-lived streams cost nothing more).

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
        #[pin]
        inner: B,
        tap: Option<Box<ResponseTap>>,
    }
}

impl<B> ObservedBody<B> {
    /// A body with nothing to observe: a pure pass-through.
    ///
    /// ```
    /// let body = tower_mcp_analytics::ObservedBody::new(http_body_util::Empty::<bytes::Bytes>::new());
    /// ```
    pub fn new(inner: B) -> Self {
        Self { inner, tap: None }
    }

    pub(crate) fn tapped(inner: B, tap: Option<Box<ResponseTap>>) -> Self {
        Self { inner, tap }
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
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        if let Some(mut tap) = this.tap.take() {
            let end = match &frame {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        tap.feed(data);
                    }
                    if !tap.exchange.pending() {
                        Some(End::NoResponse)
                    } else if tap.complete() || this.inner.is_end_stream() {
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
                None => *this.tap = Some(tap),
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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
