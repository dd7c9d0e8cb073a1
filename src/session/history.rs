//! One group's recent sessions, and the rule that places an event among them.
//!
//! Owns the grouping rule for events that arrive in any order: an event joins a session
//! when it falls within that session's span widened by the window (`start - window ..=
//! last + window`), the nearest such session when several do; otherwise it opens a new
//! one. A span only ever widens. At most [`HISTORY`] sessions are kept per group (the
//! least recently active is forgotten first), so that an event arriving late still finds
//! the session it belongs to. The Redis store's script applies the same rule; keep the two in step.
//! Never does I/O.

use std::cmp::Reverse;
use std::time::{Duration, SystemTime};

/// Sessions remembered per group.
pub(crate) const HISTORY: usize = 4;

/// One session's id and the span of its events' start times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) id: String,
    pub(crate) start: SystemTime,
    pub(crate) last: SystemTime,
}

/// A group's recent sessions, in no particular order.
#[derive(Clone, Debug, Default)]
pub(crate) struct History {
    spans: Vec<Span>,
}

impl History {
    /// The session an event at `at` belongs to, widening its span; a new session named
    /// by `open` when none is near enough. Of two equally near, the more recently active.
    pub(crate) fn place(
        &mut self,
        at: SystemTime,
        window: Duration,
        open: impl FnOnce() -> String,
    ) -> String {
        let nearest = self
            .spans
            .iter_mut()
            .filter_map(|span| gap(span, at, window).map(|gap| (gap, Reverse(span.last), span)))
            .min_by_key(|(gap, last, _)| (*gap, *last));
        if let Some((_, _, span)) = nearest {
            span.start = span.start.min(at);
            span.last = span.last.max(at);
            return span.id.clone();
        }
        let id = open();
        self.open(id.clone(), at);
        id
    }

    /// Records that an event at `at` went to session `id` (decided elsewhere).
    pub(crate) fn note(&mut self, id: &str, at: SystemTime) {
        match self.spans.iter_mut().find(|span| span.id == id) {
            Some(span) => {
                span.start = span.start.min(at);
                span.last = span.last.max(at);
            }
            None => self.open(id.to_owned(), at),
        }
    }

    /// The latest event time of any session.
    pub(crate) fn last(&self) -> Option<SystemTime> {
        self.spans.iter().map(|span| span.last).max()
    }

    #[cfg(test)]
    pub(crate) fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// Adds a session, forgetting the least recently active one past [`HISTORY`].
    fn open(&mut self, id: String, at: SystemTime) {
        self.spans.push(Span {
            id,
            start: at,
            last: at,
        });
        if self.spans.len() > HISTORY
            && let Some(oldest) = (0..self.spans.len()).min_by_key(|&index| self.spans[index].last)
        {
            self.spans.swap_remove(oldest);
        }
    }
}

/// How far `at` lies outside `span` (zero inside), when within the window of it.
fn gap(span: &Span, at: SystemTime, window: Duration) -> Option<Duration> {
    let gap = if at < span.start {
        span.start.duration_since(at).unwrap_or_default()
    } else {
        at.duration_since(span.last).unwrap_or_default()
    };
    (gap <= window).then_some(gap)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(30 * 60);

    fn at(minutes: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + minutes * 60)
    }

    fn place(history: &mut History, minutes: u64) -> String {
        history.place(at(minutes), WINDOW, || format!("s{minutes}"))
    }

    #[test]
    fn in_order_events_follow_the_gap_rule() {
        let mut history = History::default();
        assert_eq!(place(&mut history, 0), "s0");
        assert_eq!(place(&mut history, 15), "s0");
        assert_eq!(
            place(&mut history, 45),
            "s0",
            "30 minutes after 10:15: inclusive"
        );
        assert_eq!(place(&mut history, 76), "s76");
    }

    #[test]
    fn a_late_event_finds_its_own_session_not_the_current_one() {
        let mut history = History::default();
        place(&mut history, 0);
        place(&mut history, 120);
        assert_eq!(
            place(&mut history, 20),
            "s0",
            "within 10:00's span + window"
        );
        assert_eq!(
            place(&mut history, 95),
            "s120",
            "within 12:00's span - window"
        );
        assert_eq!(
            place(&mut history, 58),
            "s58",
            "38 and 37 minutes from the two: a session of its own"
        );
        let current = history.spans().iter().find(|span| span.id == "s120");
        assert_eq!(
            current.map(|span| span.start),
            Some(at(95)),
            "spans widen backwards"
        );
        assert_eq!(place(&mut history, 70), "s58", "the nearest of three");
    }

    #[test]
    fn last_seen_only_moves_forward() {
        let mut history = History::default();
        place(&mut history, 40);
        place(&mut history, 10);
        assert_eq!(history.last(), Some(at(40)));
        assert_eq!(place(&mut history, 69), "s40");
        assert_eq!(place(&mut history, 99), "s40", "30 after 10:69");
    }

    #[test]
    fn history_is_bounded_and_keeps_the_most_recent() {
        let mut history = History::default();
        for n in 0..10 {
            place(&mut history, n * 100);
        }
        assert_eq!(history.spans().len(), HISTORY);
        let mut kept: Vec<&str> = history.spans().iter().map(|s| s.id.as_str()).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["s600", "s700", "s800", "s900"]);
        assert_eq!(place(&mut history, 610), "s600");
    }

    #[test]
    fn noted_decisions_are_followed() {
        let mut history = History::default();
        history.note("remote", at(5));
        assert_eq!(place(&mut history, 20), "remote");
        history.note("remote", at(0));
        assert_eq!(history.spans()[0].start, at(0));
    }

    #[test]
    fn of_two_equally_near_sessions_the_more_recent_wins() {
        let mut history = History::default();
        place(&mut history, 0);
        place(&mut history, 60);
        assert_eq!(
            place(&mut history, 30),
            "s60",
            "30 after one, 30 before the other"
        );
    }
}
