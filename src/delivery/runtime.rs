//! [`WorkerRuntime`]: where the background worker runs, and starting it there.
//!
//! Owns spawning the worker future: on the tokio runtime the layer is built on, or on a
//! thread of its own running a current-thread runtime (also the fallback for a layer built
//! outside any runtime). Everything the worker awaits (the sink's sends, the session
//! store) runs where the worker runs. Returns a handle that aborts the worker, and the
//! dedicated thread ends with the worker, so nothing started here outlives `shutdown`.
//! Never blocks the caller.

use std::future::Future;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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

/// Starts the worker where `runtime` says; `None` (logged) when no thread or runtime could
/// be had, in which case recorded events are counted as dropped at shutdown.
pub(crate) fn spawn(
    worker: impl Future<Output = ()> + Send + 'static,
    runtime: WorkerRuntime,
) -> Option<JoinHandle<()>> {
    if runtime == WorkerRuntime::Current
        && let Ok(handle) = tokio::runtime::Handle::try_current()
    {
        return Some(handle.spawn(worker));
    }
    dedicated(worker)
}

/// Runs the worker on a thread with a small runtime of its own that ends with the worker.
fn dedicated(worker: impl Future<Output = ()> + Send + 'static) -> Option<JoinHandle<()>> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "mcp analytics could not start its worker; events will be dropped");
            return None;
        }
    };
    let (done, finished) = oneshot::channel::<()>();
    // Aborting the task drops `done` as well, which ends the thread.
    let handle = runtime.spawn(async move {
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
    match thread {
        Ok(_) => Some(handle),
        Err(error) => {
            tracing::error!(%error, "mcp analytics could not start its worker thread; events will be dropped");
            None
        }
    }
}
