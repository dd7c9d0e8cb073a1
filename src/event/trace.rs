//! What an event's span needs beyond the event (feature `otel`): the request's trace
//! clues, read on the request path, and the message's own times and `tracestate`.
//!
//! Owns these shapes only; reading them is `otel::context`'s, using them `otel`'s. Never
//! part of what an event says (not serialised, not compared).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::Version;
use opentelemetry::trace::SpanContext;

/// What the request path learns for tracing, once per HTTP request.
#[derive(Debug)]
pub(crate) struct Clues {
    /// The span that was current when the request reached the layer (e.g. one an outer
    /// `TraceLayer` opened), when valid.
    pub(crate) ambient: Option<SpanContext>,
    /// The request's own `traceparent` / `tracestate` headers, parsed in the worker.
    pub(crate) traceparent: Option<Box<str>>,
    pub(crate) tracestate: Option<Box<str>>,
    pub(crate) http_version: Version,
}

/// What an event carries for its span: the request's clues and the message's own.
#[derive(Clone, Debug)]
pub(crate) struct EventTrace {
    pub(crate) clues: Arc<Clues>,
    /// When the request arrived (on the layer's clock).
    pub(crate) start: SystemTime,
    /// From its arrival to its response message.
    pub(crate) elapsed: Duration,
    /// `params._meta.tracestate` (the `traceparent` is on the event).
    pub(crate) tracestate: Option<Box<str>>,
    /// The session is an MCP session (from `Mcp-Session-Id`), not a grouped one.
    pub(crate) mcp_session: bool,
}

/// Not part of what an event says: events compare equal whatever their trace clues (as
/// they serialise the same).
impl PartialEq for EventTrace {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl EventTrace {
    /// When the response message was seen.
    pub(crate) fn end(&self) -> SystemTime {
        self.start + self.elapsed
    }
}
