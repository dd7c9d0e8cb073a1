//! An incremental decoder for `text/event-stream` bodies.
//!
//! Owns the SSE framing rules of the HTML standard as MCP servers use them: lines end in
//! `\n`, `\r\n` or `\r` (a `\r\n` may be split across chunks), `:` lines are comments,
//! `data:` lines of one event are joined with `\n`, an event is dispatched at a blank line
//! and only if it has data (so priming events with empty data are skipped), and an
//! unfinished event at the end of the stream is discarded.
//!
//! Bounded: a line or an event's data longer than the limit is not kept; the event is
//! reported as [`SseItem::Oversized`] instead. Never sees or changes the bytes the client
//! receives: it reads a copy.

/// Room for a field name and its separator (`data: `) beyond the data limit, in a carried
/// line. A truncated line is then always a data line over the limit.
const LINE_PREFIX_ROOM: usize = 8;

/// What the decoder hands out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SseItem<'a> {
    /// The data of one event, its lines joined with `\n`.
    Data(&'a [u8]),
    /// An event whose data exceeded the limit.
    Oversized,
}

/// Incremental SSE decoder; feed it chunks as they arrive.
#[derive(Debug)]
pub(crate) struct SseDecoder {
    limit: usize,
    /// The unfinished line carried over from the previous chunk.
    line: Vec<u8>,
    /// The carried line grew past the limit; its tail was not kept.
    line_truncated: bool,
    /// Data of the event being built, each line followed by `\n`.
    data: Vec<u8>,
    has_data: bool,
    oversized: bool,
    /// The previous chunk ended in `\r`: a leading `\n` in the next one belongs to it.
    after_cr: bool,
}

impl SseDecoder {
    /// A decoder keeping at most `limit` bytes of one line or one event's data.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            line: Vec::new(),
            line_truncated: false,
            data: Vec::new(),
            has_data: false,
            oversized: false,
            after_cr: false,
        }
    }

    /// Decodes one chunk, calling `emit` for every event it completes.
    pub(crate) fn feed(&mut self, mut chunk: &[u8], emit: &mut impl FnMut(SseItem<'_>)) {
        if chunk.is_empty() {
            // An empty frame changes nothing, not even a pending `\r`.
            return;
        }
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(end) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (line, rest) = chunk.split_at(end);
            chunk = match rest {
                [b'\r', b'\n', tail @ ..] => tail,
                [b'\r'] => {
                    self.after_cr = true;
                    &[]
                }
                [_, tail @ ..] => tail,
                [] => &[],
            };
            if self.line.is_empty() && !self.line_truncated {
                self.process_line(line, false, emit);
            } else {
                let mut carried = std::mem::take(&mut self.line);
                let truncated = self.carry(&mut carried, line);
                self.line_truncated = false;
                self.process_line(&carried, truncated, emit);
                carried.clear();
                self.line = carried;
            }
        }
        if !chunk.is_empty() {
            let mut carried = std::mem::take(&mut self.line);
            self.line_truncated = self.carry(&mut carried, chunk);
            self.line = carried;
        }
    }

    /// Appends to the carried line within the limit (plus room for the `data: ` prefix, so
    /// that a line is judged the same whether or not it was split); true when something
    /// was cut.
    fn carry(&self, carried: &mut Vec<u8>, more: &[u8]) -> bool {
        let cap = self.limit.saturating_add(LINE_PREFIX_ROOM);
        let room = cap.saturating_sub(carried.len());
        carried.extend_from_slice(&more[..more.len().min(room)]);
        self.line_truncated || more.len() > room
    }

    fn process_line(&mut self, line: &[u8], truncated: bool, emit: &mut impl FnMut(SseItem<'_>)) {
        if line.is_empty() {
            self.dispatch(emit);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        if field != b"data" {
            return;
        }
        self.has_data = true;
        if truncated || self.data.len() + value.len() + 1 > self.limit {
            self.oversized = true;
            self.data = Vec::new();
        }
        if !self.oversized {
            self.data.extend_from_slice(value);
            self.data.push(b'\n');
        }
    }

    fn dispatch(&mut self, emit: &mut impl FnMut(SseItem<'_>)) {
        if self.oversized {
            emit(SseItem::Oversized);
        } else if self.has_data {
            let len = self.data.len().saturating_sub(1);
            emit(SseItem::Data(&self.data[..len]));
        }
        self.data.clear();
        self.has_data = false;
        self.oversized = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]], limit: usize) -> Vec<Option<String>> {
        let mut decoder = SseDecoder::new(limit);
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk, &mut |item| {
                out.push(match item {
                    SseItem::Data(data) => Some(String::from_utf8_lossy(data).into_owned()),
                    SseItem::Oversized => None,
                })
            });
        }
        out
    }

    #[test]
    fn decodes_events_with_every_line_ending() {
        let stream: &[u8] = b"data: a\n\ndata: b\r\n\r\ndata: c\r\rdata:d\n\n";
        let want = vec![
            Some("a".into()),
            Some("b".into()),
            Some("c".into()),
            Some("d".into()),
        ];
        assert_eq!(decode(&[stream], 1024), want);
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode(&bytes, 1024), want);
    }

    #[test]
    fn skips_comments_priming_events_and_other_fields() {
        let stream: &[u8] = b": keep-alive\n\nid: 0\nretry: 3000\ndata:\n\nid: 1\nevent: message\ndata: {\"x\":1}\n\n";
        assert_eq!(
            decode(&[stream], 1024),
            vec![Some(String::new()), Some("{\"x\":1}".into())]
        );
        let priming: &[u8] = b"id: 0\nretry: 3000\n\n";
        assert!(decode(&[priming], 1024).is_empty());
    }

    #[test]
    fn joins_multi_line_data_and_drops_an_unfinished_event() {
        let stream: &[u8] = b"data: one\ndata: two\ndata\n\ndata: never finished";
        assert_eq!(decode(&[stream], 1024), vec![Some("one\ntwo\n".into())]);
    }

    #[test]
    fn a_crlf_split_across_chunks_is_one_line_ending() {
        assert_eq!(
            decode(&[b"data: a\r", b"\n\r", b"\ndata: b\n\n"], 1024),
            vec![Some("a".into()), Some("b".into())]
        );
        assert_eq!(
            decode(&[b"data: a\r", b"", b"\n\n"], 1024),
            vec![Some("a".into())],
            "an empty chunk inside a CRLF"
        );
    }

    #[test]
    fn limits_do_not_depend_on_the_split() {
        let stream = b"data: 0123456789\n\n";
        for limit in 8..14 {
            let whole = decode(&[stream], limit);
            for cut in 1..stream.len() {
                let (a, b) = stream.split_at(cut);
                assert_eq!(decode(&[a, b], limit), whole, "limit {limit}, cut at {cut}");
            }
        }
    }

    #[test]
    fn oversized_events_are_reported_not_kept() {
        let long = format!("data: {}\n\ndata: ok\n\n", "x".repeat(100));
        assert_eq!(
            decode(&[long.as_bytes()], 16),
            vec![None, Some("ok".into())]
        );
        let split: Vec<&[u8]> = long.as_bytes().chunks(7).collect();
        assert_eq!(decode(&split, 16), vec![None, Some("ok".into())]);
        let many_lines = "data: 12345\n".repeat(10) + "\n";
        assert_eq!(decode(&[many_lines.as_bytes()], 16), vec![None]);
    }
}
