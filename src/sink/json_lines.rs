//! [`JsonLinesSink`]: one JSON object per line, to stdout, a file or any async writer.
//!
//! The default sink when no other is configured. Writes each batch with one write and a
//! flush, so lines of concurrent batches never interleave.

use std::path::Path;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;

use super::{Batch, Sink, SinkError, SinkFuture};

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
    writer: Mutex<Box<dyn AsyncWrite + Send + Unpin>>,
}

impl JsonLinesSink {
    /// Lines to standard output.
    ///
    /// ```
    /// let sink = tower_mcp_analytics::JsonLinesSink::stdout();
    /// ```
    pub fn stdout() -> Self {
        Self::writer(tokio::io::stdout())
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
        Ok(Self::writer(tokio::fs::File::from_std(file)))
    }

    /// Lines to any async writer.
    ///
    /// ```
    /// let sink = tower_mcp_analytics::JsonLinesSink::writer(tokio::io::sink());
    /// ```
    pub fn writer(writer: impl AsyncWrite + Send + Unpin + 'static) -> Self {
        Self {
            writer: Mutex::new(Box::new(writer)),
        }
    }
}

impl Sink for JsonLinesSink {
    fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a> {
        Box::pin(async move {
            let events = batch.events_json();
            let size = events.iter().map(|raw| raw.get().len() + 1).sum();
            let mut lines = Vec::with_capacity(size);
            for raw in events {
                lines.extend_from_slice(raw.get().as_bytes());
                lines.push(b'\n');
            }
            let mut writer = self.writer.lock().await;
            writer.write_all(&lines).await?;
            writer.flush().await?;
            Ok::<(), SinkError>(())
        })
    }
}

impl std::fmt::Debug for JsonLinesSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesSink").finish_non_exhaustive()
    }
}
