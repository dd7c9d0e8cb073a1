//! One HTTP exchange in flight: the MCP calls of a request and how each one ended.
//!
//! Owns the resolution of calls as the response is observed (response head, JSON body,
//! SSE messages matched by id, stream end) and the guarantee that every call is recorded
//! exactly once: an exchange dropped before it finished (the client went away) records its
//! unanswered calls as cancelled. The request's facts are in `request` ([`RequestInfo`],
//! [`Origin`]), the byte budget its arguments hold in `retention`. Never parses a result
//! in depth, never serialises an event, never blocks: recording is a non-blocking
//! hand-off to the worker.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;

mod request;
pub(crate) mod retention;

pub(crate) use request::{Origin, RequestInfo};

use crate::delivery::Recorder;
use crate::event::ResponseKind;
use crate::event::ids::mcp_session_id;
use crate::protocol::jsonrpc::{
    ClientMessage, MessageKind, RequestId, ServerMessage, for_each_server_message,
};

/// A response's `result` and `error`, copied out of a streamed message (the rest of the
/// message is not kept).
#[derive(Debug, Clone, Default)]
pub(crate) struct Answer {
    pub(crate) result: Option<Bytes>,
    pub(crate) error: Option<Bytes>,
}

impl Answer {
    fn bytes(&self) -> usize {
        self.result.as_ref().map_or(0, Bytes::len) + self.error.as_ref().map_or(0, Bytes::len)
    }
}

/// How a call ended.
#[derive(Debug, Clone)]
pub(crate) enum End {
    /// Its response, read out of an SSE message.
    Answer(Answer),
    /// Its response is in the exchange's JSON body.
    Body,
    Accepted,
    HttpError,
    NoResponse,
    Cancelled,
    /// The answer exceeded the response capture limit (its size, when known).
    TooLarge(Option<usize>),
    Unreadable,
}

/// One MCP call.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) message: ClientMessage,
    pub(crate) end: Option<End>,
    pub(crate) elapsed: Duration,
    pub(crate) progress: u32,
    pub(crate) logs: u32,
}

/// A finished exchange, handed to the worker.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) info: RequestInfo,
    pub(crate) calls: Vec<Call>,
    pub(crate) status: Option<StatusCode>,
    pub(crate) response_kind: Option<ResponseKind>,
    /// The JSON response body, when the response was `application/json`.
    pub(crate) body: Option<Bytes>,
}

impl Finished {
    /// Memory this exchange keeps alive while queued.
    pub(crate) fn retained_bytes(&self) -> usize {
        let payloads: usize = self
            .calls
            .iter()
            .map(|call| match &call.end {
                Some(End::Answer(answer)) => answer.bytes(),
                _ => 0,
            })
            .sum();
        self.info.body_len + self.body.as_ref().map_or(0, Bytes::len) + payloads
    }
}

/// The calls of one HTTP request, from the request head until every call has ended.
#[derive(Debug)]
pub(crate) struct Exchange {
    info: RequestInfo,
    calls: Vec<Call>,
    status: Option<StatusCode>,
    response_kind: Option<ResponseKind>,
    body: Option<Bytes>,
    /// `None` once recorded.
    recorder: Option<Arc<Recorder>>,
}

impl Exchange {
    pub(crate) fn new(
        info: RequestInfo,
        messages: Vec<ClientMessage>,
        recorder: Arc<Recorder>,
    ) -> Self {
        let calls = messages
            .into_iter()
            .map(|message| Call {
                message,
                end: None,
                elapsed: Duration::ZERO,
                progress: 0,
                logs: 0,
            })
            .collect();
        Self {
            info,
            calls,
            status: None,
            response_kind: None,
            body: None,
            recorder: Some(recorder),
        }
    }

    /// The response head arrived. Notifications end here; so do requests whose response
    /// carries no JSON-RPC (an error status, or an unexpected content type). A session the
    /// server opens on this response (`initialize` in legacy stateful mode) is this
    /// exchange's session.
    pub(crate) fn on_head(
        &mut self,
        status: StatusCode,
        kind: ResponseKind,
        opened_session: Option<&str>,
    ) {
        if self.info.origin.mcp_session.is_none() {
            self.info.origin.mcp_session = opened_session.map(mcp_session_id);
        }
        self.status = Some(status);
        self.response_kind = Some(kind);
        let elapsed = self.info.started.elapsed();
        let ok = status.is_success();
        // A batch refused with an error status was not read entry by entry (e.g. a 415 from
        // a server that takes no batches): one event, for its first entry, stands for it.
        if self.info.batch && !ok && self.calls.len() > 1 {
            self.info.rejected_batch = Some(self.calls.len());
            self.calls.truncate(1);
        }
        let readable = matches!(kind, ResponseKind::Json | ResponseKind::Sse);
        for call in self.calls.iter_mut().filter(|c| c.end.is_none()) {
            let end = match call.message.kind {
                MessageKind::Notification if ok => End::Accepted,
                MessageKind::Notification => End::HttpError,
                MessageKind::Request if readable => continue,
                MessageKind::Request if ok => End::NoResponse,
                MessageKind::Request => End::HttpError,
            };
            call.end = Some(end);
            call.elapsed = elapsed;
        }
    }

    /// True while some call still waits for its answer.
    pub(crate) fn pending(&self) -> bool {
        self.calls.iter().any(|call| call.end.is_none())
    }

    /// The whole JSON body arrived: every waiting call finds its answer in it.
    pub(crate) fn on_json_body(&mut self, body: Bytes) {
        self.body = Some(body);
        self.end_pending(End::Body);
    }

    /// One SSE event's data arrived: match responses to calls, count notifications.
    pub(crate) fn on_sse_data(&mut self, data: &[u8]) {
        let started = self.info.started;
        let calls = &mut self.calls;
        for_each_server_message(data, |_, message, parts| match message {
            ServerMessage::Response { id } => {
                let mut answered = calls.iter_mut().filter(|c| waiting_for(c, id.as_ref()));
                let targets: Vec<&mut Call> = match id {
                    // A null id answers everything still waiting (e.g. a parse error).
                    None => answered.collect(),
                    Some(_) => answered.next().into_iter().collect(),
                };
                if targets.is_empty() {
                    return;
                }
                let copy = |raw: &serde_json::value::RawValue| {
                    Bytes::copy_from_slice(raw.get().as_bytes())
                };
                let answer = Answer {
                    result: parts.result.map(copy),
                    error: parts.error.map(copy),
                };
                let elapsed = started.elapsed();
                for call in targets {
                    call.end = Some(End::Answer(answer.clone()));
                    call.elapsed = elapsed;
                }
            }
            ServerMessage::Progress { token } => {
                if let Some(call) = notified_call(calls, token.as_ref()) {
                    call.progress = call.progress.saturating_add(1);
                }
            }
            ServerMessage::Log => {
                if let Some(call) = notified_call(calls, None) {
                    call.logs = call.logs.saturating_add(1);
                }
            }
            ServerMessage::Other => {}
        });
    }

    /// Ends every waiting call the same way.
    pub(crate) fn end_pending(&mut self, end: End) {
        let elapsed = self.info.started.elapsed();
        for call in self.calls.iter_mut().filter(|c| c.end.is_none()) {
            call.end = Some(end.clone());
            call.elapsed = elapsed;
        }
    }

    /// Ends what is still waiting with `end` and hands the exchange to the worker.
    pub(crate) fn finish(mut self, end: End) {
        self.end_pending(end);
        self.record();
    }

    fn record(&mut self) {
        let Some(recorder) = self.recorder.take() else {
            return;
        };
        // From here on the queue's bounds account for the arguments.
        self.info.reserved = None;
        recorder.record(Finished {
            info: std::mem::take(&mut self.info),
            calls: std::mem::take(&mut self.calls),
            status: self.status,
            response_kind: self.response_kind,
            body: self.body.take(),
        });
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if self.recorder.is_some() {
            self.end_pending(End::Cancelled);
            self.record();
        }
    }
}

/// A waiting request that a response with `id` answers. A request known only from its
/// headers has no id and takes any response.
fn waiting_for(call: &Call, id: Option<&RequestId>) -> bool {
    call.end.is_none()
        && call.message.kind == MessageKind::Request
        && match (id, call.message.id.as_ref()) {
            (None, _) | (_, None) => true,
            (Some(got), Some(wanted)) => got == wanted,
        }
}

/// The request a notification belongs to: the one with its progress token, else the
/// first request still waiting.
fn notified_call<'a>(calls: &'a mut [Call], token: Option<&RequestId>) -> Option<&'a mut Call> {
    let position = token
        .and_then(|token| {
            calls
                .iter()
                .position(|c| c.message.progress_token.as_ref() == Some(token))
        })
        .or_else(|| {
            calls
                .iter()
                .position(|c| c.end.is_none() && c.message.kind == MessageKind::Request)
        })?;
    calls.get_mut(position)
}
