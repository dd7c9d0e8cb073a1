//! [`Rewriter`]: what changes the bytes of a response, when an opt-in insight asks for it
//! (see `insights`): a `tools/list` answer rewritten, or the layer's own answer.
//!
//! Owns the framing of a rewrite: a JSON answer is held until its end and goes out
//! rewritten in one frame; an SSE stream is held one event at a time until the answer
//! has gone by, and then passes through as it comes. Bounded by the response capture
//! limit: past it, what was held goes out as it was and the rest passes through. Never
//! used when both insights are off; never holds trailers or an error back past the data
//! before them.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::response::Parts;
use http_body::Frame;

use crate::insights::{Insights, Listing};
use crate::protocol::jsonrpc::RequestId;
use crate::protocol::mcp;

/// A response body's rewrite in progress.
pub(crate) struct Rewriter {
    mode: Mode,
    /// Frames ready to go out, in order.
    out: VecDeque<Frame<Bytes>>,
}

/// What a listing is rewritten with, and how much of it may be held.
struct Target {
    insights: Arc<Insights>,
    limit: usize,
}

enum Mode {
    /// The layer's own answer, not yet sent.
    Own,
    /// A JSON answer held until its end.
    Json {
        held: BytesMut,
        ids: Vec<RequestId>,
        to: Target,
    },
    /// An SSE stream held event by event until the answer went by.
    Sse {
        held: BytesMut,
        ids: Vec<RequestId>,
        to: Target,
    },
    /// Nothing (more) to change.
    Through,
}

impl std::fmt::Debug for Rewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            Mode::Own => "own",
            Mode::Json { .. } => "json",
            Mode::Sse { .. } => "sse",
            Mode::Through => "through",
        };
        f.debug_struct("Rewriter")
            .field("mode", &mode)
            .finish_non_exhaustive()
    }
}

impl Rewriter {
    /// The layer's own answer: `bytes`, then the end.
    pub(crate) fn own(bytes: Bytes) -> Self {
        Self {
            mode: Mode::Own,
            out: VecDeque::from([Frame::data(bytes)]),
        }
    }

    /// A rewrite of the answers to the `tools/list` requests `ids`, when the response can
    /// carry them (a successful, unencoded JSON or SSE answer). Removes the response's
    /// `Content-Length`: the rewritten length is known only at the end.
    pub(crate) fn listing(
        head: &mut Parts,
        ids: Vec<RequestId>,
        insights: &Arc<Insights>,
        limit: usize,
    ) -> Option<Self> {
        if !head.status.is_success() || mcp::is_encoded(head.headers.get(CONTENT_ENCODING)) {
            return None;
        }
        let content_type = head.headers.get(CONTENT_TYPE);
        let to = Target {
            insights: Arc::clone(insights),
            limit,
        };
        let held = BytesMut::new();
        let mode = if mcp::is_json(content_type) {
            Mode::Json { held, ids, to }
        } else if mcp::is_event_stream(content_type) {
            Mode::Sse { held, ids, to }
        } else {
            return None;
        };
        head.headers.remove(CONTENT_LENGTH);
        Some(Self {
            mode,
            out: VecDeque::new(),
        })
    }

    /// The next frame ready to go out.
    pub(crate) fn next(&mut self) -> Option<Frame<Bytes>> {
        self.out.pop_front()
    }

    /// The size of the layer's own answer; unknown for a rewrite.
    pub(crate) fn own_size_hint(&self) -> http_body::SizeHint {
        match self.mode {
            Mode::Own => {
                let len: usize = self
                    .out
                    .iter()
                    .filter_map(|f| f.data_ref())
                    .map(Bytes::len)
                    .sum();
                http_body::SizeHint::with_exact(len as u64)
            }
            _ => http_body::SizeHint::default(),
        }
    }

    /// Whether the layer's own answer is all there is (no inner body to poll).
    pub(crate) fn is_own(&self) -> bool {
        matches!(self.mode, Mode::Own)
    }

    /// Whether nothing is held or waiting to go out.
    pub(crate) fn is_drained(&self) -> bool {
        self.out.is_empty()
            && match &self.mode {
                Mode::Json { held, .. } | Mode::Sse { held, .. } => held.is_empty(),
                Mode::Own | Mode::Through => true,
            }
    }

    /// Whether every byte passes through as it comes from now on.
    pub(crate) fn is_through(&self) -> bool {
        matches!(self.mode, Mode::Through) && self.out.is_empty()
    }

    /// Takes a frame from the inner body.
    pub(crate) fn push(&mut self, frame: Frame<Bytes>) {
        let frame = match frame.into_data() {
            Ok(data) => data,
            Err(other) => {
                // Trailers: whatever is held goes out before them.
                self.finish();
                self.out.push_back(other);
                return;
            }
        };
        match &mut self.mode {
            Mode::Own | Mode::Through => self.out.push_back(Frame::data(frame)),
            Mode::Json { held, to, .. } => {
                held.extend_from_slice(&frame);
                if held.len() > to.limit {
                    self.give_up();
                }
            }
            Mode::Sse { held, to, ids } => {
                held.extend_from_slice(&frame);
                while let Some(end) = event_end(held) {
                    let event = held.split_to(end).freeze();
                    let (bytes, answered) = rewrite_event(event, ids, &to.insights);
                    self.out.push_back(Frame::data(bytes));
                    if answered {
                        self.give_up();
                        return;
                    }
                }
                if held.len() > to.limit {
                    self.give_up();
                }
            }
        }
    }

    /// The inner body ended (or sent trailers): what is held goes out, rewritten if it
    /// can be.
    pub(crate) fn finish(&mut self) {
        match std::mem::replace(&mut self.mode, Mode::Through) {
            Mode::Json { held, ids, to } => {
                let held = held.freeze();
                if held.is_empty() {
                    return;
                }
                let Listing { rewritten, .. } = to.insights.rewrite_listing(&held, &ids);
                self.out.push_back(Frame::data(rewritten.unwrap_or(held)));
            }
            Mode::Sse { held, .. } => {
                // An unfinished event at the end: as it was.
                if !held.is_empty() {
                    self.out.push_back(Frame::data(held.freeze()));
                }
            }
            mode @ Mode::Own => self.mode = mode,
            Mode::Through => {}
        }
    }

    /// Stops rewriting: what is held goes out as it was.
    fn give_up(&mut self) {
        if let Mode::Json { held, .. } | Mode::Sse { held, .. } = &mut self.mode {
            let held = std::mem::take(held).freeze();
            if !held.is_empty() {
                self.out.push_back(Frame::data(held));
            }
        }
        self.mode = Mode::Through;
    }
}

/// Where the first complete event of `buf` ends (just past its blank line); `None` until
/// one is complete. A `\r` at the very end may still be followed by its `\n`: wait.
fn event_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    let mut i = 0;
    while i < buf.len() {
        match buf[i] {
            b'\n' | b'\r' => {
                let next = match (buf[i], buf.get(i + 1)) {
                    (b'\r', Some(b'\n')) => i + 2,
                    (b'\r', None) => return None,
                    _ => i + 1,
                };
                if i == line_start {
                    return Some(next);
                }
                line_start = next;
                i = next;
            }
            _ => i += 1,
        }
    }
    None
}

/// One complete SSE event: rewritten when its data answers one of `ids` and the answer
/// changes, otherwise as it was; and whether it answered one.
fn rewrite_event(event: Bytes, ids: &[RequestId], insights: &Insights) -> (Bytes, bool) {
    let mut others: Vec<&[u8]> = Vec::new();
    let mut data: Vec<u8> = Vec::new();
    let mut has_data = false;
    for line in lines(&event) {
        match line.strip_prefix(b"data") {
            Some(rest) if rest.is_empty() || rest[0] == b':' => {
                let value = rest.strip_prefix(b":").unwrap_or(rest);
                let value = value.strip_prefix(b" ").unwrap_or(value);
                if has_data {
                    data.push(b'\n');
                }
                data.extend_from_slice(value);
                has_data = true;
            }
            _ => others.push(line),
        }
    }
    if !has_data {
        return (event, false);
    }
    let Listing {
        rewritten,
        answered,
    } = insights.rewrite_listing(&data, ids);
    let Some(rewritten) = rewritten else {
        return (event, answered);
    };
    let mut out =
        Vec::with_capacity(event.len() + rewritten.len() - data.len().min(rewritten.len()) + 16);
    for line in others.iter().filter(|line| !line.is_empty()) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    for line in rewritten.split(|&b| b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
    (Bytes::from(out), answered)
}

/// The lines of an event (terminators `\n`, `\r\n` or `\r` removed).
fn lines(event: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = event;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .unwrap_or(rest.len());
        let line = &rest[..end];
        let skip = match (rest.get(end), rest.get(end + 1)) {
            (Some(b'\r'), Some(b'\n')) => 2,
            (Some(_), _) => 1,
            (None, _) => 0,
        };
        rest = &rest[end + skip..];
        Some(line)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_end_at_a_blank_line_of_any_line_ending() {
        assert_eq!(event_end(b"data: x\n\nrest"), Some(9));
        assert_eq!(event_end(b"data: x\r\n\r\nrest"), Some(11));
        assert_eq!(event_end(b"data: x\r\rrest"), Some(9));
        assert_eq!(event_end(b"data: x\r\r"), None);
        assert_eq!(event_end(b"data: x\n"), None);
        assert_eq!(event_end(b": keep-alive\n\n"), Some(14));
        assert_eq!(event_end(b"\n"), Some(1));
    }

    #[test]
    fn lines_split_on_every_terminator() {
        let got: Vec<&[u8]> = lines(b"id: 1\r\ndata: a\rdata: b\n\n").collect();
        assert_eq!(got, [&b"id: 1"[..], b"data: a", b"data: b", b""]);
    }
}
