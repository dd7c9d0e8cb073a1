//! What every service a layer builds shares: the request path's limits, hooks and header
//! list, the in-flight budget, the clock, and the recorder that hands exchanges to the
//! worker.
//!
//! Owns the request-path settings ([`Limits`]) and their defaults. Never changes after
//! the layer is built, and holds nothing that blocks.

use std::sync::Arc;
use std::time::SystemTime;

use crate::delivery::Recorder;
use crate::exchange::retention::Retention;
use crate::hooks::Hooks;
use crate::privacy::HeaderCapture;

/// Default most bytes of a request body read before the request reaches the server.
pub const DEFAULT_CAPTURE_LIMIT: usize = 4 * 1024 * 1024;
/// Default most events made from one HTTP request.
pub(crate) const DEFAULT_MAX_CALLS_PER_REQUEST: usize = 100;
/// Default most bytes of request arguments kept by calls in flight.
pub(crate) const DEFAULT_IN_FLIGHT_BYTES: usize = 8 * 1024 * 1024;

/// How much of each request and response the request path reads and keeps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Most bytes of a JSON POST body read before the request reaches the server.
    pub(crate) capture_limit: usize,
    /// Most bytes of one JSON response, or one SSE message, read to learn the outcome.
    pub(crate) response_capture_limit: usize,
    /// Most events made from one HTTP request.
    pub(crate) max_calls_per_request: usize,
    /// Most bytes of request arguments that calls in flight keep for their events.
    pub(crate) in_flight_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            capture_limit: DEFAULT_CAPTURE_LIMIT,
            response_capture_limit: DEFAULT_CAPTURE_LIMIT,
            max_calls_per_request: DEFAULT_MAX_CALLS_PER_REQUEST,
            in_flight_bytes: DEFAULT_IN_FLIGHT_BYTES,
        }
    }
}

pub(crate) use crate::event::time::Clock;

/// The request path's shared state.
pub(crate) struct Shared {
    pub(crate) limits: Limits,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) hooks: Hooks,
    /// Headers to copy into events.
    pub(crate) headers: HeaderCapture,
    /// What calls in flight may keep of their requests.
    pub(crate) retention: Retention,
    clock: Option<Clock>,
    /// Intent capture and the virtual tool, when either is on.
    pub(crate) insights: Option<Arc<crate::insights::Insights>>,
    /// Where the ambient trace context comes from, when OpenTelemetry is on.
    #[cfg(feature = "otel")]
    pub(crate) ambient: Option<crate::otel::AmbientFn>,
}

impl Shared {
    pub(crate) fn new(
        limits: Limits,
        recorder: Arc<Recorder>,
        hooks: Hooks,
        headers: HeaderCapture,
        clock: Option<Clock>,
    ) -> Self {
        Self {
            limits,
            recorder,
            hooks,
            headers,
            retention: Retention::new(limits.in_flight_bytes),
            clock,
            insights: None,
            #[cfg(feature = "otel")]
            ambient: None,
        }
    }

    /// The wall-clock time of a request's arrival.
    pub(crate) fn now(&self) -> SystemTime {
        self.clock
            .as_ref()
            .map_or_else(SystemTime::now, |clock| clock())
    }
}
