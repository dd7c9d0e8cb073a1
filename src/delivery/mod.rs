//! Getting events out: the request path's non-blocking hand-off, the background worker,
//! and the counters that account for every event.
//!
//! The request path only ever calls [`Recorder::record`], which never awaits, never takes
//! a lock and never fails the request: a full queue drops the exchange and counts it.
//! Everything slow (building events, serialising, batching, sending, retrying) happens in
//! the worker.

pub(crate) mod batch;
mod episodes;
mod pace;
pub(crate) mod recorder;
mod retry;
mod runtime;
mod stats;
mod worker;

pub use batch::Batch;
pub(crate) use recorder::Recorder;
pub(crate) use retry::RetryPolicy;
pub use runtime::WorkerRuntime;
pub(crate) use runtime::spawn;
pub(crate) use stats::{Counters, DropReason, HookKind};
pub use stats::{Dropped, HookPanics, ShutdownReport, Stats};
pub(crate) use worker::{WAKE_EVERY, WorkerConfig, run};
