//! [`Pace`]: how many batches may be in flight now, and how large the next batch may
//! grow, from what the worker sees of the destination.
//!
//! Owns the adaptive part of delivery, within bounds the user set: the concurrency window
//! runs from a floor (2, or `max_in_flight` when lower) up to `max_in_flight`, and the byte
//! target of a batch from 64 KiB (or `batch_bytes` when lower) up to `batch_bytes`; a batch
//! never holds more than `batch_size` events. Pure arithmetic: never sends, sleeps or holds
//! an event, and never raises anything past the worker's own hold limits, which still
//! bound every event held, in flight included.
//!
//! The rules, in the spirit of TCP's congestion window:
//!
//! - **Grow while batches wait.** A sealed batch that finds every slot busy means the
//!   destination's round trip, not the server, sets the pace (by Little's law the events in
//!   flight must be the event rate times the round trip). Each batch delivered after such
//!   a wait opens one more slot and doubles the byte target, so both double about once a
//!   round trip: bigger batches carry more per request, more slots cover a longer round
//!   trip.
//! - **Shrink once the backlog is gone.** A flush interval in which no batch waited halves
//!   both, back towards their starting values, so that a quiet server sends small batches
//!   soon after its events happen.
//! - **Back off on failure.** A retryable failure (transport error, timeout, 429, 5xx)
//!   drops the window to the floor at once, and it grows again only with deliveries: a
//!   failing or hung destination never sees more than the floor of new requests.
//! - **Learn the destination's size limit.** A batch of several events refused as too
//!   large (413) caps the byte target at half its size from then on.

/// Batches allowed in flight at the start and after a retryable failure.
pub(crate) const FLOOR_IN_FLIGHT: usize = 2;
/// Bytes of event JSON a batch is sealed at to begin with, and after the backlog is gone.
pub(crate) const START_BYTES: usize = 64 * 1024;
/// The smallest byte target a 413 can teach.
const LEAST_LEARNED_BYTES: usize = 1024;

/// The adaptive sending window and batch size; see the module docs.
#[derive(Debug, Clone)]
pub(crate) struct Pace {
    floor: usize,
    max_in_flight: usize,
    window: usize,
    start_bytes: usize,
    /// `batch_bytes`, or less once a 413 taught a smaller limit.
    ceiling_bytes: usize,
    target_bytes: usize,
    batch_events: usize,
    /// A sealed batch waited for a slot since the last delivery.
    waited: bool,
    /// A sealed batch waited for a slot since the last review.
    waited_lately: bool,
}

impl Pace {
    /// A pace within these bounds (each at least 1), starting small.
    pub(crate) fn new(max_in_flight: usize, batch_events: usize, batch_bytes: usize) -> Self {
        let max_in_flight = max_in_flight.max(1);
        let batch_bytes = batch_bytes.max(1);
        let floor = FLOOR_IN_FLIGHT.min(max_in_flight);
        let start_bytes = START_BYTES.min(batch_bytes);
        Self {
            floor,
            max_in_flight,
            window: floor,
            start_bytes,
            ceiling_bytes: batch_bytes,
            target_bytes: start_bytes,
            batch_events: batch_events.max(1),
            waited: false,
            waited_lately: false,
        }
    }

    /// Batches that may be in flight now.
    pub(crate) fn window(&self) -> usize {
        self.window
    }

    /// Most bytes of event JSON in the next batch.
    pub(crate) fn target_bytes(&self) -> usize {
        self.target_bytes
    }

    /// Most events in a batch.
    pub(crate) fn batch_events(&self) -> usize {
        self.batch_events
    }

    /// A sealed batch is waiting because every slot of the window is busy.
    pub(crate) fn batch_waited(&mut self) {
        self.waited = true;
        self.waited_lately = true;
    }

    /// A batch was delivered: after a wait, one more slot and a larger byte target.
    pub(crate) fn delivered(&mut self) {
        if !std::mem::take(&mut self.waited) {
            return;
        }
        self.window = (self.window + 1).min(self.max_in_flight);
        self.target_bytes = self.target_bytes.saturating_mul(2).min(self.ceiling_bytes);
        tracing::trace!(
            window = self.window,
            target_bytes = self.target_bytes,
            "mcp analytics sender speeds up"
        );
    }

    /// An attempt failed in a way worth retrying: back to the floor.
    pub(crate) fn failed(&mut self) {
        self.window = self.floor;
        self.waited = false;
    }

    /// The destination refused a batch of `events` events and `bytes` bytes as too large.
    pub(crate) fn too_large(&mut self, events: usize, bytes: usize) {
        if events < 2 {
            return;
        }
        self.ceiling_bytes = self.ceiling_bytes.min((bytes / 2).max(LEAST_LEARNED_BYTES));
        self.start_bytes = self.start_bytes.min(self.ceiling_bytes);
        self.target_bytes = self.target_bytes.min(self.ceiling_bytes);
    }

    /// Once per flush interval: without a batch waiting since the last review, halves the
    /// window and the byte target towards their starting values.
    pub(crate) fn review(&mut self) {
        if std::mem::take(&mut self.waited_lately) {
            return;
        }
        self.window = (self.window / 2).max(self.floor);
        self.target_bytes = (self.target_bytes / 2).max(self.start_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_the_floor_and_grows_only_with_deliveries_after_a_wait() {
        let mut pace = Pace::new(16, 2_000, 1 << 20);
        assert_eq!((pace.window(), pace.target_bytes()), (2, 64 * 1024));
        pace.delivered();
        assert_eq!(pace.window(), 2, "no wait, no growth");
        for _ in 0..3 {
            pace.batch_waited();
            pace.delivered();
        }
        assert_eq!((pace.window(), pace.target_bytes()), (5, 512 * 1024));
        for _ in 0..20 {
            pace.batch_waited();
            pace.delivered();
        }
        assert_eq!(
            (pace.window(), pace.target_bytes()),
            (16, 1 << 20),
            "bounded"
        );
        assert_eq!(pace.batch_events(), 2_000);
    }

    #[test]
    fn a_failure_falls_back_to_the_floor_and_forgets_the_wait() {
        let mut pace = Pace::new(16, 100, 1 << 20);
        for _ in 0..10 {
            pace.batch_waited();
            pace.delivered();
        }
        pace.batch_waited();
        pace.failed();
        assert_eq!(pace.window(), 2);
        pace.delivered();
        assert_eq!(
            pace.window(),
            2,
            "the wait before the failure does not count"
        );
    }

    #[test]
    fn quiet_intervals_shrink_back_to_the_start() {
        let mut pace = Pace::new(16, 100, 1 << 20);
        for _ in 0..20 {
            pace.batch_waited();
            pace.delivered();
        }
        pace.review();
        assert_eq!(pace.window(), 16, "a batch waited in this interval");
        pace.review();
        assert_eq!((pace.window(), pace.target_bytes()), (8, 512 * 1024));
        for _ in 0..10 {
            pace.review();
        }
        assert_eq!((pace.window(), pace.target_bytes()), (2, 64 * 1024));
    }

    #[test]
    fn user_bounds_below_the_start_are_kept() {
        let pace = Pace::new(1, 10, 8 * 1024);
        assert_eq!((pace.window(), pace.target_bytes()), (1, 8 * 1024));
        let mut pace = Pace::new(3, 10, 100 * 1024);
        for _ in 0..10 {
            pace.batch_waited();
            pace.delivered();
        }
        assert_eq!((pace.window(), pace.target_bytes()), (3, 100 * 1024));
    }

    #[test]
    fn a_413_caps_the_byte_target_at_half_the_refused_batch() {
        let mut pace = Pace::new(16, 2_000, 1 << 20);
        for _ in 0..10 {
            pace.batch_waited();
            pace.delivered();
        }
        pace.too_large(1, 10);
        assert_eq!(
            pace.target_bytes(),
            1 << 20,
            "a single event teaches nothing"
        );
        pace.too_large(500, 400 * 1024);
        assert_eq!(pace.target_bytes(), 200 * 1024);
        pace.batch_waited();
        pace.delivered();
        assert_eq!(
            pace.target_bytes(),
            200 * 1024,
            "never past what was learned"
        );
        pace.too_large(4, 100);
        assert_eq!(pace.target_bytes(), 1024);
    }
}
