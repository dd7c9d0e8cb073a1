//! Reading a request body up to the capture limit before the inner service is called.
//!
//! Owns the one copy of the request body the layer makes (none when the body arrives in a
//! single chunk). Never reads past the limit: above it, what was read is handed back for
//! replay together with the rest of the untouched stream.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::HeaderMap;
use http_body::Body;

/// An in-progress read of a request body.
#[derive(Debug)]
pub(crate) struct Capture {
    chunks: Vec<Bytes>,
    len: usize,
    limit: usize,
}

/// How the read ended.
pub(crate) enum Captured<E> {
    /// The whole body (and its trailers, if any) was read.
    Complete {
        body: Bytes,
        trailers: Option<HeaderMap>,
    },
    /// The body grew past the limit; `prefix` is what was read.
    OverLimit { prefix: Bytes },
    /// The body failed after `prefix`.
    Failed { prefix: Bytes, error: E },
}

impl Capture {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
            limit,
        }
    }

    /// Reads frames until the body ends, fails or passes the limit.
    pub(crate) fn poll_capture<B>(
        &mut self,
        mut body: Pin<&mut B>,
        cx: &mut Context<'_>,
    ) -> Poll<Captured<B::Error>>
    where
        B: Body<Data = Bytes>,
    {
        loop {
            if body.is_end_stream() {
                return Poll::Ready(Captured::Complete {
                    body: self.joined(),
                    trailers: None,
                });
            }
            match ready!(body.as_mut().poll_frame(cx)) {
                None => {
                    return Poll::Ready(Captured::Complete {
                        body: self.joined(),
                        trailers: None,
                    });
                }
                Some(Err(error)) => {
                    return Poll::Ready(Captured::Failed {
                        prefix: self.joined(),
                        error,
                    });
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        self.len += data.len();
                        if !data.is_empty() {
                            self.chunks.push(data);
                        }
                        if self.len > self.limit {
                            return Poll::Ready(Captured::OverLimit {
                                prefix: self.joined(),
                            });
                        }
                    }
                    Err(frame) => {
                        // Trailers end the body.
                        return Poll::Ready(Captured::Complete {
                            body: self.joined(),
                            trailers: frame.into_trailers().ok(),
                        });
                    }
                },
            }
        }
    }

    fn joined(&mut self) -> Bytes {
        super::join_chunks(&mut self.chunks, self.len, false)
    }
}
