//! [`JsonLinesSink`]: one JSON object per line, to stdout, a file or any async writer.
//!
//! The default sink when no other is configured. Writes each batch with one write and a
//! flush, so lines of concurrent batches never interleave. Standard output and files are
//! written by a detached thread of the sink's own, fed through a bounded channel: a write
//! that blocks for good (a pipe nobody reads) holds up that thread only, never the tokio
//! runtime's blocking pool, so neither dropping the runtime nor exiting the process waits
//! for it; the batch waiting on it is cut short by the shutdown deadline like any other
//! send. Never writes a batch whose send was abandoned before the write began.

use std::path::Path;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{Batch, Sink, SinkError, SinkFuture};

/// Batches waiting for the writer thread (each sender then waits for its write).
const WRITES_WAITING: usize = 16;

/// Writes events as JSON lines.
///
/// ```
/// use tower_mcp_analytics::{AnalyticsLayer, JsonLinesSink};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = AnalyticsLayer::new(JsonLinesSink::stdout());
/// # }
/// ```
pub struct JsonLinesSink {
    target: Target,
}

enum Target {
    /// A blocking writer on a thread of its own.
    Thread(mpsc::Sender<Job>),
    /// An async writer, written from the sending task.
    Async(Mutex<Box<dyn AsyncWrite + Send + Unpin>>),
}

/// One batch's lines for the writer thread, and where to say how writing them went.
struct Job {
    lines: Vec<u8>,
    done: oneshot::Sender<std::io::Result<()>>,
}

impl JsonLinesSink {
    /// Lines to standard output.
    ///
    /// ```
    /// let sink = tower_mcp_analytics::JsonLinesSink::stdout();
    /// ```
    pub fn stdout() -> Self {
        Self::blocking(std::io::stdout(), "mcp-analytics-stdout")
    }

    /// Lines appended to a file, created if missing.
    ///
    /// ```no_run
    /// let sink = tower_mcp_analytics::JsonLinesSink::file("events.jsonl")?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn file(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self::blocking(file, "mcp-analytics-file"))
    }

    /// Lines to any async writer, written from the sending task. A writer that does its
    /// I/O on tokio's blocking pool (`tokio::io::stdout`, `tokio::fs::File`) can hold up
    /// the runtime's drop for as long as one write does not return;
    /// [`stdout`](Self::stdout) and [`file`](Self::file) write on a thread of their own
    /// instead.
    ///
    /// ```
    /// let sink = tower_mcp_analytics::JsonLinesSink::writer(tokio::io::sink());
    /// ```
    pub fn writer(writer: impl AsyncWrite + Send + Unpin + 'static) -> Self {
        Self {
            target: Target::Async(Mutex::new(Box::new(writer))),
        }
    }

    /// Lines to a blocking writer, written by a detached thread that ends when the sink is
    /// dropped (or, if a write never returns, with the process).
    fn blocking(mut writer: impl std::io::Write + Send + 'static, name: &str) -> Self {
        let (tx, mut rx) = mpsc::channel::<Job>(WRITES_WAITING);
        let spawned = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                while let Some(write) = rx.blocking_recv() {
                    // The send was abandoned (shutdown deadline): the batch is counted as
                    // lost, so it must not appear after all.
                    if write.done.is_closed() {
                        continue;
                    }
                    let written = writer.write_all(&write.lines).and_then(|()| writer.flush());
                    let _ = write.done.send(written);
                }
            });
        if let Err(error) = spawned {
            // Sends then fail (retryable) until the retries run out, counted.
            tracing::error!(%error, "mcp analytics could not start its JSON-lines writer");
        }
        Self {
            target: Target::Thread(tx),
        }
    }
}

fn lines(batch: &Batch) -> Vec<u8> {
    let events = batch.events_json();
    let size = events.iter().map(|raw| raw.get().len() + 1).sum();
    let mut lines = Vec::with_capacity(size);
    for raw in events {
        lines.extend_from_slice(raw.get().as_bytes());
        lines.push(b'\n');
    }
    lines
}

impl Sink for JsonLinesSink {
    fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a> {
        Box::pin(async move {
            let lines = lines(batch);
            match &self.target {
                Target::Thread(writes) => {
                    let (done, written) = oneshot::channel();
                    let stopped = || SinkError::retryable("the JSON-lines writer thread stopped");
                    writes
                        .send(Job { lines, done })
                        .await
                        .map_err(|_| stopped())?;
                    written.await.map_err(|_| stopped())??;
                }
                Target::Async(writer) => {
                    let mut writer = writer.lock().await;
                    writer.write_all(&lines).await?;
                    writer.flush().await?;
                }
            }
            Ok::<(), SinkError>(())
        })
    }
}

impl std::fmt::Debug for JsonLinesSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesSink").finish_non_exhaustive()
    }
}
