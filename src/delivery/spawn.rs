//! Where the background worker runs, starting it there, and stopping it.
//!
//! Owns the worker's lifetime. The worker is an [`AnalyticsWorker`] future: spawned on
//! the tokio runtime the layer is built on, or on a thread of its own running a
//! current-thread runtime (also the fallback for a layer built outside any runtime), or
//! handed to the caller to run where they choose
//! ([`build_with_worker`](crate::AnalyticsLayerBuilder::build_with_worker)). A
//! [`WorkerControl`] stops it at its next poll and learns when it has let go of
//! everything; the dedicated thread ends with the worker, so nothing started here
//! outlives `shutdown`. Never blocks the caller.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;

/// Where the background worker (building events, batching, sending, retrying) runs.
///
/// With [`Current`](Self::Current) the worker shares the server's runtime threads: cheap,
/// but a burst of analytics work (building thousands of events, compressing batches)
/// competes with requests for those threads. With [`Dedicated`](Self::Dedicated) it runs
/// on a thread of its own with a current-thread tokio runtime, so the server's threads
/// only ever do the request path's hand-off. `stats`, `flush` and `shutdown` work the same
/// either way.
///
/// ```
/// use tower_mcp_analytics::{AnalyticsLayer, MemorySink, WorkerRuntime};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = AnalyticsLayer::builder()
///     .sink(MemorySink::new())
///     .worker_runtime(WorkerRuntime::Dedicated)
///     .build();
/// layer.flush().await;
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerRuntime {
    /// A task on the tokio runtime the layer is built on (the default); a thread of its
    /// own when the layer is built outside any runtime.
    ///
    /// ```
    /// let runtime = tower_mcp_analytics::WorkerRuntime::Current;
    /// assert_eq!(runtime, tower_mcp_analytics::WorkerRuntime::default());
    /// ```
    #[default]
    Current,
    /// A thread of its own (named `mcp-analytics`) with a current-thread tokio runtime,
    /// which ends when the worker does.
    ///
    /// ```
    /// let runtime = tower_mcp_analytics::WorkerRuntime::Dedicated;
    /// ```
    Dedicated,
}

/// The layer's background worker as a future: it takes in finished exchanges, builds,
/// enriches and batches their events, and delivers them through the sink, with retries.
///
/// Made by [`AnalyticsLayerBuilder::build_with_worker`](crate::AnalyticsLayerBuilder::build_with_worker)
/// for a caller who runs it where they choose (like tower's `Buffer::pair`): spawn it on
/// a tokio runtime (it uses tokio's timers and tasks), e.g. a separate runtime kept for
/// background work. It completes once every clone of the layer and of its services is
/// gone and everything queued is delivered or counted as lost, or when
/// [`AnalyticsLayer::shutdown`](crate::AnalyticsLayer::shutdown) stops it (after delivering
/// what it could before the deadline). Until it
/// runs, events wait in the queue (up to its bounds); dropping it unpolled loses them
/// (counted as `dropped.shutdown`).
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_analytics::{AnalyticsLayer, MemorySink};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let sink = MemorySink::new();
/// let (layer, worker) = AnalyticsLayer::builder().sink(sink.clone()).build_with_worker();
/// tokio::spawn(worker);
/// let report = layer.shutdown(Duration::from_secs(5)).await;
/// assert!(report.flushed);
/// # }
/// ```
#[must_use = "the worker delivers nothing until it is polled"]
pub struct AnalyticsWorker {
    /// The worker itself; `None` once it has finished or was stopped.
    inner: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// Fires when `shutdown` stops the worker; `None` once the layer is gone without it.
    stop: Option<oneshot::Receiver<()>>,
    /// Dropped when the worker has let go of everything, which `shutdown` waits for.
    done: Option<oneshot::Sender<()>>,
}

impl AnalyticsWorker {
    /// Wraps `worker` with a control that stops it.
    pub(crate) fn new(worker: impl Future<Output = ()> + Send + 'static) -> (Self, WorkerControl) {
        let (stop_tx, stop_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let worker = Self {
            inner: Some(Box::pin(worker)),
            stop: Some(stop_rx),
            done: Some(done_tx),
        };
        let control = WorkerControl {
            channels: Mutex::new(Some((stop_tx, done_rx))),
            flushed: AtomicBool::new(true),
        };
        (worker, control)
    }

    fn finish(&mut self) {
        self.inner = None;
        self.done = None;
    }
}

impl Future for AnalyticsWorker {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Some(stop) = &mut this.stop {
            match Pin::new(stop).poll(cx) {
                Poll::Ready(Ok(())) => {
                    this.finish();
                    return Poll::Ready(());
                }
                // The layer is gone without a shutdown: run until the queue is drained.
                Poll::Ready(Err(_)) => this.stop = None,
                Poll::Pending => {}
            }
        }
        let Some(inner) = &mut this.inner else {
            return Poll::Ready(());
        };
        match inner.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.finish();
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl std::fmt::Debug for AnalyticsWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyticsWorker")
            .field("finished", &self.inner.is_none())
            .finish_non_exhaustive()
    }
}

/// The layer's hold on its worker: stops it once, and remembers how the first shutdown
/// went.
pub(crate) struct WorkerControl {
    /// Stop signal and completion notice; taken by the first shutdown.
    channels: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
    /// Whether the first shutdown delivered everything before its deadline.
    flushed: AtomicBool,
}

impl WorkerControl {
    /// The means to stop the worker, for the first shutdown only (`None` afterwards).
    pub(crate) fn take(&self) -> Option<Stopper> {
        let (stop, done) = self
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        Some(Stopper { stop, done })
    }

    /// Records how the first shutdown went.
    pub(crate) fn set_flushed(&self, flushed: bool) {
        self.flushed.store(flushed, Ordering::Release);
    }

    /// How the first shutdown went (true until one has run).
    pub(crate) fn flushed(&self) -> bool {
        self.flushed.load(Ordering::Acquire)
    }
}

/// Stops a worker.
pub(crate) struct Stopper {
    stop: oneshot::Sender<()>,
    done: oneshot::Receiver<()>,
}

impl Stopper {
    /// Stops the worker at its next poll and waits at most `patience` until it has let go
    /// of everything (a worker spawned here does at once; one the caller runs but no longer
    /// polls is given up on).
    pub(crate) async fn stop(self, patience: Duration) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(patience, self.done).await;
    }
}

/// Starts `worker` where `runtime` says. When no thread or runtime could be had (logged),
/// the worker is dropped, and recorded events are counted as dropped.
pub(crate) fn spawn(worker: AnalyticsWorker, runtime: WorkerRuntime) {
    if runtime == WorkerRuntime::Current
        && let Ok(handle) = tokio::runtime::Handle::try_current()
    {
        handle.spawn(worker);
        return;
    }
    dedicated(worker);
}

/// Runs the worker on a thread with a small runtime of its own that ends with the worker.
fn dedicated(worker: AnalyticsWorker) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "mcp analytics could not start its worker; events will be dropped");
            return;
        }
    };
    // The worker runs as a task, as it would on the server's runtime; the thread waits
    // for it to end (`done` dropped), then drops the runtime and whatever it still held.
    let (done, finished) = oneshot::channel::<()>();
    runtime.spawn(async move {
        worker.await;
        drop(done);
    });
    let thread = std::thread::Builder::new()
        .name("mcp-analytics".into())
        .spawn(move || {
            runtime.block_on(async {
                let _ = finished.await;
            })
        });
    if let Err(error) = thread {
        tracing::error!(%error, "mcp analytics could not start its worker thread; events will be dropped");
    }
}
