//! [`Episodes`]: one warning when events start being lost for a reason, and one summary
//! when that stops, instead of a line per lost event or batch.
//!
//! Owns the log lines about losses the sender sees (queue full, rejected, too large,
//! retries exhausted, sink panicked). A loss of a kind with no episode open starts one and
//! logs a warning; later losses of that kind are only added up (and logged at debug
//! level), until no loss of that kind happened for [`QUIET`]: then one line says how many
//! were lost, why, and over how long. Episodes still open when the worker stops are summed
//! up then. Queue-full losses happen on the request path, which logs the first warning
//! itself (see the recorder) and leaves the rest to this module through the counters.
//! Never counts a loss (the counters do) and never decides one.

use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::time::Instant;

use crate::stats::Counters;

/// How long without a loss of a kind ends its episode.
pub(crate) const QUIET: Duration = Duration::from_secs(10);

/// Why events were lost, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loss {
    QueueFull,
    Rejected,
    TooLarge,
    RetriesExhausted,
    SinkPanicked,
}

const KINDS: usize = 5;

impl Loss {
    fn index(self) -> usize {
        self as usize
    }

    fn from_index(index: usize) -> Self {
        match index {
            0 => Self::QueueFull,
            1 => Self::Rejected,
            2 => Self::TooLarge,
            3 => Self::RetriesExhausted,
            _ => Self::SinkPanicked,
        }
    }

    /// What happened to the events, for a log line.
    fn what(self) -> &'static str {
        match self {
            Self::QueueFull => "dropped because the queue was full",
            Self::Rejected => "rejected by the destination",
            Self::TooLarge => "too large for the destination",
            Self::RetriesExhausted => "lost after every retry failed",
            Self::SinkPanicked => "lost to a panicking sink",
        }
    }

    /// The `stats().dropped` field that counts them.
    fn counter(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::Rejected => "rejected",
            Self::TooLarge => "too_large",
            Self::RetriesExhausted => "retries_exhausted",
            Self::SinkPanicked => "sink_panicked",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Episode {
    lost: u64,
    since: Instant,
    last: Instant,
}

/// Open loss episodes, one per kind at most; see the module docs.
#[derive(Debug)]
pub(crate) struct Episodes {
    counters: Arc<Counters>,
    open: [Option<Episode>; KINDS],
    /// The queue-full count already taken into episodes.
    queue_full_seen: u64,
}

impl Episodes {
    pub(crate) fn new(counters: Arc<Counters>) -> Self {
        let queue_full_seen = counters.snapshot().dropped.queue_full;
        Self {
            counters,
            open: [None; KINDS],
            queue_full_seen,
        }
    }

    /// `n` events were lost for `loss` because of `error`: a warning if this starts an
    /// episode, a debug line otherwise.
    pub(crate) fn lost(&mut self, loss: Loss, n: u64, error: &dyn Display) {
        let now = Instant::now();
        match &mut self.open[loss.index()] {
            Some(episode) => {
                episode.lost += n;
                episode.last = now;
                tracing::debug!(%error, events = n, "mcp analytics: events {}", loss.what());
            }
            slot @ None => {
                *slot = Some(Episode {
                    lost: n,
                    since: now,
                    last: now,
                });
                let counter = loss.counter();
                tracing::warn!(
                    %error,
                    events = n,
                    "mcp analytics: events {} (counted in stats().dropped.{counter}); further \
                     losses of this kind are summed up when they stop",
                    loss.what(),
                );
            }
        }
    }

    /// Takes in the queue-full losses the request path counted, and ends every episode
    /// that has been quiet for [`QUIET`] with a summary line.
    pub(crate) fn review(&mut self) {
        let now = Instant::now();
        self.note_queue_full(now);
        for index in 0..KINDS {
            let quiet = self.open[index].is_some_and(|e| now.duration_since(e.last) >= QUIET);
            if quiet && let Some(episode) = self.open[index].take() {
                summarize(Loss::from_index(index), episode, "no loss since");
                if index == Loss::QueueFull.index() {
                    self.counters.queue_full_warned.store(false, Relaxed);
                }
            }
        }
    }

    fn note_queue_full(&mut self, now: Instant) {
        let total = self.counters.snapshot().dropped.queue_full;
        let new = total.saturating_sub(self.queue_full_seen);
        self.queue_full_seen = total;
        if new == 0 {
            return;
        }
        // The request path already warned about the first of them.
        let episode = self.open[Loss::QueueFull.index()].get_or_insert(Episode {
            lost: 0,
            since: now,
            last: now,
        });
        episode.lost += new;
        episode.last = now;
    }
}

impl Drop for Episodes {
    /// Sums up the episodes still open when the worker stops.
    fn drop(&mut self) {
        self.note_queue_full(Instant::now());
        for (index, episode) in self.open.iter_mut().enumerate() {
            if let Some(episode) = episode.take() {
                summarize(Loss::from_index(index), episode, "the sender stopped");
            }
        }
    }
}

fn summarize(loss: Loss, episode: Episode, end: &str) {
    let seconds = episode.last.duration_since(episode.since).as_secs_f64();
    tracing::warn!(
        events = episode.lost,
        over_seconds = (seconds * 10.0).round() / 10.0,
        "mcp analytics: {} events {} over {:.1} s ({end}; see stats().dropped.{})",
        episode.lost,
        loss.what(),
        seconds,
        loss.counter(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::DropReason;

    #[tokio::test(start_paused = true)]
    async fn an_episode_ends_after_a_quiet_period() {
        let counters = Arc::new(Counters::default());
        let mut episodes = Episodes::new(Arc::clone(&counters));
        episodes.lost(Loss::RetriesExhausted, 5, &"503");
        tokio::time::sleep(Duration::from_secs(5)).await;
        episodes.lost(Loss::RetriesExhausted, 5, &"503");
        episodes.review();
        assert!(episodes.open[Loss::RetriesExhausted.index()].is_some());
        tokio::time::sleep(QUIET).await;
        episodes.review();
        assert!(episodes.open[Loss::RetriesExhausted.index()].is_none());

        // Queue-full losses come through the counters.
        counters.dropped(DropReason::QueueFull, 7);
        counters.queue_full_warned.store(true, Relaxed);
        episodes.review();
        let open = episodes.open[Loss::QueueFull.index()].expect("open");
        assert_eq!(open.lost, 7);
        tokio::time::sleep(QUIET).await;
        episodes.review();
        assert!(episodes.open[Loss::QueueFull.index()].is_none());
        assert!(
            !counters.queue_full_warned.load(Relaxed),
            "the next loss warns again"
        );
    }
}
