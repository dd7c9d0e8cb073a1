//! What calls in flight may keep of their requests: a global budget of bytes.
//!
//! Owns the budget that bounds the request data held by every call between its request
//! and the hand-off of its events to the worker (after which the queue's own bounds
//! apply). Large arguments are kept only while the budget lasts; past it they are
//! withheld (the event carries a size marker) and counted. Never copies, never blocks,
//! never allocates.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Arguments up to this size are copied out of the request body (small, and the body's
/// buffer may be much larger than the body) and not counted against the budget.
pub(crate) const COPY_AT_MOST: usize = 4 * 1024;

/// The budget shared by a layer's calls in flight.
#[derive(Debug)]
pub(crate) struct Retention {
    max: usize,
    used: Arc<AtomicUsize>,
}

impl Retention {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            used: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Reserves `bytes`, or `None` when that would pass the budget.
    pub(crate) fn reserve(&self, bytes: usize) -> Option<Reserved> {
        let before = self.used.fetch_add(bytes, Relaxed);
        if before.saturating_add(bytes) > self.max {
            self.used.fetch_sub(bytes, Relaxed);
            return None;
        }
        Some(Reserved {
            used: Arc::clone(&self.used),
            bytes,
        })
    }

    /// Bytes reserved now.
    #[cfg(test)]
    fn used(&self) -> usize {
        self.used.load(Relaxed)
    }
}

/// Bytes held against the budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct Reserved {
    used: Arc<AtomicUsize>,
    bytes: usize,
}

impl Reserved {
    /// Joins another reservation into this one.
    pub(crate) fn absorb(&mut self, other: Reserved) {
        self.bytes += other.bytes;
        let mut other = other;
        other.bytes = 0;
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.used.fetch_sub(self.bytes, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_within_the_budget_and_gives_back_on_drop() {
        let budget = Retention::new(100);
        let mut first = budget.reserve(60).expect("fits");
        assert!(budget.reserve(50).is_none(), "would pass the budget");
        let second = budget.reserve(40).expect("fits exactly");
        first.absorb(second);
        assert_eq!(budget.used(), 100);
        drop(first);
        assert_eq!(budget.used(), 0);
        assert!(budget.reserve(100).is_some());
    }
}
