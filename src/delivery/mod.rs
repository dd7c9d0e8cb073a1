//! Getting events out: the request path's non-blocking hand-off, and the background worker
//! with its pipeline (every event it takes or loses is counted in `crate::stats`).
//!
//! The request path only ever calls `Recorder::record`, which never awaits, never takes
//! a lock and never fails the request: a full queue drops the exchange and counts it.
//! Everything slow happens in the worker, stage by stage, in the order the data flows:
//! `build` (events from a finished exchange), `enrich` (client, user, session), `tools` (advertised tools, unknown ones),
//! privacy (`crate::privacy`: redaction, limits), observers (`observe`: OpenTelemetry
//! spans and metrics), `batch`, then sending and retrying
//! through the sink (`worker`, `pace`, `retry`). `config` holds the settings,
//! `spawn` where the worker runs and how it stops.

pub(crate) mod batch;
pub(crate) mod build;
pub(crate) mod config;
mod enrich;
mod episodes;
mod observe;
mod pace;
pub(crate) mod recorder;
mod retry;
mod spawn;
mod tools;
mod worker;

pub use batch::Batch;
pub(crate) use config::DeliveryConfig;
pub(crate) use enrich::Enricher;
#[cfg_attr(not(feature = "otel"), allow(unused_imports))]
pub(crate) use observe::{Observer, ObserverFuture};
pub(crate) use recorder::Recorder;
pub use spawn::{AnalyticsWorker, WorkerRuntime};
pub(crate) use spawn::{WorkerControl, spawn};
#[cfg(feature = "bench-internals")]
pub(crate) use worker::WAKE_EVERY;
pub(crate) use worker::{Outlets, pipeline};
