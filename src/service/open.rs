//! Opening a request's exchange: parsing what was read of the body, keeping what the
//! events need of it, running the request hooks, and calling the inner service with the
//! exact original bytes.
//!
//! Owns the moment a request becomes an [`Exchange`]: its calls (from the body, or from
//! the `Mcp-Method` / `Mcp-Name` headers when the body was not read), the share of the
//! in-flight budget their arguments hold, and the request facts the hooks give. Never
//! changes the request (but for what an opt-in insight takes out of it, or answers
//! itself), never blocks, and counts what it cannot keep.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderValue, Request};
use http_body::Body;
use tower_service::Service;

use super::shared::Shared;
use crate::body::{Capture, Captured, ReplayBody};
use crate::exchange::retention::{COPY_AT_MOST, Reserved};
use crate::exchange::{Exchange, RequestInfo};
use crate::hooks::RequestView;
use crate::insights::is_modern;
use crate::protocol::jsonrpc::{ClientMessage, RequestId, parse_client_body};
use crate::stats::DropReason;

/// Everything needed to call the inner service once the body has been read.
pub(crate) struct Capturing<S, B> {
    pub(crate) service: S,
    pub(crate) parts: http::request::Parts,
    pub(crate) body: Pin<Box<B>>,
    pub(crate) capture: Capture,
    pub(crate) info: RequestInfo,
    /// The call the `Mcp-Method` / `Mcp-Name` headers name, for a body that cannot be read.
    pub(crate) from_headers: Option<ClientMessage>,
}

impl<S, B> Capturing<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
    B: Body<Data = Bytes>,
{
    /// Parses what was read, opens the exchange of its calls, and calls the inner service
    /// with the exact original body (unless an opt-in insight changes it, or answers the
    /// call itself).
    pub(crate) fn open(
        mut self,
        captured: Captured<B::Error>,
        shared: &Shared,
    ) -> Opened<S::Future> {
        let recorder = &shared.recorder;
        let mut listing = None;
        let mut answer = None;
        let (body, exchange) = match captured {
            Captured::Complete { mut body, trailers } => {
                let mut parsed = parse_client_body(&body, shared.limits.max_calls_per_request);
                if let (Some(insights), Some(found)) = (&shared.insights, &mut parsed) {
                    let modern = self.info.protocol_version.as_deref().is_some_and(is_modern);
                    let step = insights.read_request(found, &body, modern);
                    listing = step.listing;
                    answer = step.answer;
                    if let Some(stripped) = step.stripped {
                        body = stripped.body.clone();
                        if self.parts.headers.contains_key(CONTENT_LENGTH) {
                            let length = HeaderValue::from(body.len());
                            self.parts.headers.insert(CONTENT_LENGTH, length);
                        }
                        found.messages =
                            parse_client_body(&body, shared.limits.max_calls_per_request)
                                .map(|p| p.messages)
                                .unwrap_or_default();
                        stripped.give_intents(&mut found.messages);
                    }
                }
                let exchange = match parsed {
                    Some(parsed) => {
                        let counters = recorder.counters();
                        if parsed.over_cap > 0 {
                            let over = parsed.over_cap as u64;
                            counters.recorded(over);
                            counters.dropped(DropReason::CallCap, over);
                        }
                        if parsed.messages.is_empty() {
                            if parsed.responses == 0 && parsed.over_cap == 0 {
                                // Valid JSON with no JSON-RPC message in it.
                                counters.unparsed_request();
                            }
                            None
                        } else {
                            self.info.batch = parsed.batch;
                            let mut messages = parsed.messages;
                            let (kept, reserved) = retain(&mut messages, shared);
                            self.info.body_len = kept;
                            self.info.reserved = reserved;
                            Some(open_exchange(shared, self.info, &self.parts, messages))
                        }
                    }
                    None => header_exchange(shared, self.info, &self.parts, self.from_headers),
                };
                (ReplayBody::replay(body, None, trailers, None), exchange)
            }
            Captured::OverLimit { prefix } => {
                let exchange = header_exchange(shared, self.info, &self.parts, self.from_headers);
                (
                    ReplayBody::replay(prefix, None, None, Some(self.body)),
                    exchange,
                )
            }
            Captured::Failed { prefix, error } => {
                (ReplayBody::replay(prefix, Some(error), None, None), None)
            }
        };
        if let Some(answer) = answer {
            return Opened::Answered { answer, exchange };
        }
        let future = self.service.call(Request::from_parts(self.parts, body));
        Opened::Called {
            future,
            exchange,
            listing,
        }
    }
}

/// What opening a request led to.
pub(crate) enum Opened<F> {
    /// The inner service was called.
    Called {
        future: F,
        exchange: Option<Exchange>,
        /// The `tools/list` requests whose answers an insight rewrites.
        listing: Option<Vec<RequestId>>,
    },
    /// The layer answers the request itself (the virtual tool).
    Answered {
        answer: Bytes,
        exchange: Option<Exchange>,
    },
}

/// Keeps of each call's arguments only what the budget for calls in flight allows: small
/// ones are copied out of the body (which may share a much larger buffer), large ones are
/// kept while the budget lasts and withheld past it (counted). Returns the bytes kept and
/// their reservation.
fn retain(messages: &mut [ClientMessage], shared: &Shared) -> (usize, Option<Reserved>) {
    let mut kept = 0;
    let mut reserved: Option<Reserved> = None;
    for message in messages {
        let Some(arguments) = &message.arguments else {
            continue;
        };
        let len = arguments.len();
        if len <= COPY_AT_MOST {
            let copy = Bytes::copy_from_slice(arguments);
            message.arguments = Some(copy);
            kept += len;
            continue;
        }
        match shared.retention.reserve(len) {
            Some(more) => {
                kept += len;
                match &mut reserved {
                    Some(held) => held.absorb(more),
                    None => reserved = Some(more),
                }
            }
            None => {
                message.arguments = None;
                message.withheld = Some(len);
                shared.recorder.counters().payload_withheld();
            }
        }
    }
    (kept, reserved)
}

/// An exchange for a request whose body was not read: its call comes from the
/// `Mcp-Method` / `Mcp-Name` headers, or there is none (counted as unparsed).
pub(crate) fn header_exchange(
    shared: &Shared,
    info: RequestInfo,
    parts: &http::request::Parts,
    from_headers: Option<ClientMessage>,
) -> Option<Exchange> {
    match from_headers {
        Some(message) => Some(open_exchange(shared, info, parts, vec![message])),
        None => {
            shared.recorder.counters().unparsed_request();
            None
        }
    }
}

/// Runs the request hooks and opens the exchange of `messages`.
fn open_exchange(
    shared: &Shared,
    mut info: RequestInfo,
    parts: &http::request::Parts,
    messages: Vec<ClientMessage>,
) -> Exchange {
    let view = RequestView::new(parts, &messages);
    let answers = shared.hooks.run(&view, shared.recorder.counters());
    info.user = answers.user;
    info.origin.session_key = answers.session_key;
    info.tags = answers.tags;
    info.properties = answers.properties;
    info.hook_failed = answers.failed;
    info.headers = shared.headers.capture(&parts.headers);
    Exchange::new(info, messages, Arc::clone(&shared.recorder))
}
