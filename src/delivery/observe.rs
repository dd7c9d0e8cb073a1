//! Observers: stages that see every finished event beside the sink, or instead of it
//! (OpenTelemetry spans and metrics, behind the `otel` feature).
//!
//! Owns the contract between the worker and such a stage: it sees each event once, after
//! the privacy stage and before serialisation, on the worker; it is told of the flush
//! interval's ticks and of ended sessions; it may ask the worker to wait for its own work
//! before a flush is acknowledged or the worker ends. Never sees an event a hook failed
//! on, and never runs on the request path.

use std::future::Future;
use std::pin::Pin;

use crate::event::Event;

/// Work an observer asks the worker to wait for.
pub(crate) type ObserverFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A stage that sees every finished event. A panic in [`Observer::event`] is caught by
/// the worker and counted; the event still goes to the sink.
#[cfg_attr(not(feature = "otel"), allow(dead_code))]
pub(crate) trait Observer: Send + 'static {
    /// One event that passed the privacy stage.
    fn event(&mut self, event: &Event);
    /// The flush interval passed.
    fn tick(&mut self);
    /// A client ended its MCP session (its derived id).
    fn session_ended(&mut self, session: &str);
    /// Work to finish before a flush is acknowledged.
    fn flush(&self) -> Option<ObserverFuture>;
    /// Work to finish before the worker ends.
    fn close(&mut self) -> Option<ObserverFuture>;
}
