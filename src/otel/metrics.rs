//! The two histograms of the semantic conventions: `mcp.server.operation.duration` for
//! every MCP message, and `mcp.server.session.duration` for every session that ends.
//!
//! Owns the instruments and the sessions' open spans of time: a bounded table of the
//! sessions seen (first and last message), ended by the client's `DELETE` of its MCP
//! session or by the inactivity window passing with no message (the same window that
//! groups stateless sessions). Never records a session id on a metric.

use std::num::NonZeroUsize;
use std::time::{Duration, SystemTime};

use lru::LruCache;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};

use super::names::{DURATION_BUCKETS, MCP_PROTOCOL_VERSION, OPERATION_DURATION, SESSION_DURATION};
use super::spans::network_attributes;
use crate::event::Event;
use crate::event::trace::EventTrace;

/// Most sessions whose duration is being followed; beyond it the least recently active
/// is ended early (recorded as it stands).
const MAX_SESSIONS: usize = 100_000;

/// A session's span of time so far.
struct Open {
    first: SystemTime,
    last: SystemTime,
    /// What its last message's attributes were (protocol version, network).
    attributes: Vec<KeyValue>,
}

/// The histograms, and the sessions they follow.
pub(crate) struct Durations {
    operation: Histogram<f64>,
    session: Histogram<f64>,
    open: LruCache<String, Open>,
    window: Duration,
}

impl Durations {
    pub(crate) fn new(meter: &Meter, window: Duration) -> Self {
        let histogram = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build()
        };
        Self {
            operation: histogram(
                OPERATION_DURATION,
                "MCP request or notification duration as observed on the receiver from the time it was received until the result or ack is sent.",
            ),
            session: histogram(
                SESSION_DURATION,
                "The duration of the MCP session as observed on the MCP server.",
            ),
            open: LruCache::new(NonZeroUsize::new(MAX_SESSIONS).unwrap_or(NonZeroUsize::MIN)),
            window,
        }
    }

    /// Records one message's duration, and extends its session.
    pub(crate) fn operation(&mut self, event: &Event, trace: &EventTrace, attributes: &[KeyValue]) {
        self.operation
            .record(trace.elapsed.as_secs_f64(), attributes);
        let Some(session) = &event.session_id else {
            return;
        };
        let end = trace.end();
        let mut session_attributes = Vec::with_capacity(4);
        if let Some(version) = &event.protocol_version {
            session_attributes.push(KeyValue::new(MCP_PROTOCOL_VERSION, version.clone()));
        }
        session_attributes.extend(network_attributes(trace));
        if let Some(open) = self.open.get_mut(session) {
            open.first = open.first.min(trace.start);
            open.last = open.last.max(end);
            open.attributes = session_attributes;
            return;
        }
        let open = Open {
            first: trace.start,
            last: end,
            attributes: session_attributes,
        };
        if let Some((_, evicted)) = self.open.push(session.clone(), open) {
            self.end(evicted);
        }
    }

    /// A client ended its MCP session (`DELETE`).
    pub(crate) fn session_ended(&mut self, session: &str) {
        if let Some(open) = self.open.pop(session) {
            self.end(open);
        }
    }

    /// Ends the sessions with no message for longer than the window before `now`.
    pub(crate) fn review(&mut self, now: SystemTime) {
        while let Some((_, open)) = self.open.peek_lru() {
            let idle = now.duration_since(open.last).unwrap_or_default();
            if idle <= self.window {
                break;
            }
            if let Some((_, open)) = self.open.pop_lru() {
                self.end(open);
            }
        }
    }

    fn end(&self, open: Open) {
        let duration = open.last.duration_since(open.first).unwrap_or_default();
        self.session
            .record(duration.as_secs_f64(), &open.attributes);
    }
}
