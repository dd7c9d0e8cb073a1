//! A request or response body that yields exactly the frames it is given, for tests that
//! check what the layer passes on frame by frame.
//!
//! Include it with `#[path = "support/test_body.rs"] mod test_body;`. Each includer uses
//! a different set of its constructors and helpers.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

/// The error a [`TestBody`] yields for an [`Item::Error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestError(pub String);

impl fmt::Display for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TestError {}

/// One frame (or the error) a [`TestBody`] yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Data(Bytes),
    Trailers(HeaderMap),
    Error(String),
}

/// What the body says about its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndSignal {
    /// `is_end_stream()` turns true as soon as nothing is left; then it ends.
    Eager,
    /// `is_end_stream()` never turns true; it ends with `None` when nothing is left.
    Never,
    /// Once nothing is left it stays pending forever, never waking its reader again.
    Endless,
}

/// What `size_hint()` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hint {
    /// A lower bound of the data left.
    Lower,
    /// Exactly the data left.
    Exact,
    /// A vague lower bound: half the data left.
    Vague,
}

/// Yields its items exactly as given, optionally returning `Pending` (and waking) once
/// before each one.
#[derive(Debug, Clone)]
pub struct TestBody {
    items: VecDeque<Item>,
    pend: bool,
    pended: bool,
    end: EndSignal,
    hint: Hint,
}

impl TestBody {
    /// Pending once before each item, an eager end, and a lower-bound size hint.
    pub fn new(items: Vec<Item>) -> Self {
        Self {
            items: items.into(),
            pend: true,
            pended: false,
            end: EndSignal::Eager,
            hint: Hint::Lower,
        }
    }

    /// [`TestBody::new`] of data chunks.
    pub fn chunks(chunks: &[Bytes]) -> Self {
        Self::new(chunks.iter().cloned().map(Item::Data).collect())
    }

    /// [`TestBody::new`] of one data chunk.
    pub fn bytes(bytes: impl Into<Bytes>) -> Self {
        Self::chunks(&[bytes.into()])
    }

    /// [`TestBody::new`] that stays pending forever after its items instead of ending.
    pub fn endless(items: Vec<Item>) -> Self {
        Self {
            end: EndSignal::Endless,
            ..Self::new(items)
        }
    }

    /// Every shape a body may take: pending before each item or not, `is_end_stream()`
    /// eager or never true, `size_hint()` exact or vague.
    pub fn shaped(items: Vec<Item>, pend: bool, eager_end: bool, exact_hint: bool) -> Self {
        Self {
            pend,
            end: if eager_end {
                EndSignal::Eager
            } else {
                EndSignal::Never
            },
            hint: if exact_hint { Hint::Exact } else { Hint::Vague },
            ..Self::new(items)
        }
    }

    fn remaining(&self) -> u64 {
        self.items
            .iter()
            .map(|item| match item {
                Item::Data(data) => data.len() as u64,
                _ => 0,
            })
            .sum()
    }
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = TestError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, TestError>>> {
        if self.items.is_empty() {
            // An endless body never wakes its reader again.
            return if self.end == EndSignal::Endless {
                Poll::Pending
            } else {
                Poll::Ready(None)
            };
        }
        if self.pend && !self.pended {
            self.pended = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.pended = false;
        Poll::Ready(self.items.pop_front().map(|item| match item {
            Item::Data(data) => Ok(Frame::data(data)),
            Item::Trailers(trailers) => Ok(Frame::trailers(trailers)),
            Item::Error(message) => Err(TestError(message)),
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.end == EndSignal::Eager && self.items.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        let remaining = self.remaining();
        match self.hint {
            Hint::Exact => SizeHint::with_exact(remaining),
            Hint::Lower | Hint::Vague => {
                let mut hint = SizeHint::new();
                hint.set_lower(if self.hint == Hint::Vague {
                    remaining / 2
                } else {
                    remaining
                });
                hint
            }
        }
    }
}

/// Reads a body to its end (or its error), recording every frame.
pub async fn drain<B>(mut body: B) -> Vec<Item>
where
    B: Body<Data = Bytes, Error = TestError> + Unpin,
{
    let mut seen = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => seen.push(Item::Data(data)),
                Err(frame) => seen.push(Item::Trailers(
                    frame.into_trailers().expect("a frame is data or trailers"),
                )),
            },
            Err(error) => {
                seen.push(Item::Error(error.0));
                break;
            }
        }
    }
    seen
}

/// The bytes of the data frames among `items`.
pub fn data_of(items: &[Item]) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        if let Item::Data(d) = item {
            out.extend_from_slice(d);
        }
    }
    out
}

/// `bytes` in chunks of `size` bytes (the last one shorter).
pub fn chunked(bytes: &[u8], size: usize) -> Vec<Bytes> {
    bytes.chunks(size).map(Bytes::copy_from_slice).collect()
}
