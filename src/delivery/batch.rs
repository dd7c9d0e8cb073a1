//! [`Batch`]: a group of events handed to a sink as one delivery, and the [`Batcher`]
//! that seals batches by count and size (limits the worker may change between events).
//!
//! Owns serialising each event exactly once (when it enters a batch) and the batch's
//! identity: its id stays the same across retries so that a collector can de-duplicate,
//! and a sink may cache its encoded body on the batch so that retries re-send the same
//! bytes. Never talks to a sink.

use std::sync::OnceLock;
use std::time::SystemTime;

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::event::Event;
use crate::event::ids::new_id;

/// Events delivered together. The id (`bat_` + 27 base62 characters) stays the same on
/// every attempt.
///
/// ```
/// use tower_mcp_analytics::sink::{Batch, Sink, SinkFuture};
///
/// struct CountingSink;
///
/// impl Sink for CountingSink {
///     fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a> {
///         Box::pin(async move {
///             println!("batch {} (attempt {}): {} events", batch.id(), batch.attempt(), batch.len());
///             Ok(())
///         })
///     }
/// }
/// ```
#[derive(Debug)]
pub struct Batch {
    id: String,
    /// Each event as JSON, serialised once (the batch holds nothing else of them).
    json: Vec<Box<RawValue>>,
    json_bytes: usize,
    attempt: u32,
    /// A sink's encoded body, kept for retries.
    #[cfg_attr(not(feature = "http-sink"), allow(dead_code))]
    pub(crate) encoded: OnceLock<Encoded>,
}

/// A request body a sink built for a batch.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "http-sink"), allow(dead_code))]
pub(crate) struct Encoded {
    pub(crate) body: Bytes,
    pub(crate) gzip: bool,
}

impl Batch {
    fn new(at: SystemTime) -> Self {
        Self {
            id: new_id("bat", at),
            json: Vec::new(),
            json_bytes: 0,
            attempt: 1,
            encoded: OnceLock::new(),
        }
    }

    /// The batch id, the same on every attempt.
    ///
    /// ```
    /// # fn f(batch: &tower_mcp_analytics::sink::Batch) -> &str { batch.id() }
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The events, read back from their JSON (a sink that sends JSON should use
    /// [`Batch::events_json`], which costs nothing).
    ///
    /// ```
    /// # fn f(batch: &tower_mcp_analytics::sink::Batch) -> usize { batch.events().len() }
    /// ```
    pub fn events(&self) -> Vec<Event> {
        self.json
            .iter()
            .filter_map(|raw| serde_json::from_str(raw.get()).ok())
            .collect()
    }

    /// Each event serialised as JSON, in order (computed once for all attempts and sinks).
    ///
    /// ```
    /// # fn f(batch: &tower_mcp_analytics::sink::Batch) -> Vec<String> {
    /// batch.events_json().iter().map(|raw| raw.get().to_owned()).collect()
    /// # }
    /// ```
    pub fn events_json(&self) -> &[Box<RawValue>] {
        &self.json
    }

    /// Which attempt this is: 1 for the first send, 2 for the first retry, ...
    ///
    /// ```
    /// # fn f(batch: &tower_mcp_analytics::sink::Batch) -> bool { batch.attempt() > 1 }
    /// ```
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Events in the batch.
    pub fn len(&self) -> usize {
        self.json.len()
    }

    /// Whether the batch has no events (a sealed batch never has none).
    ///
    /// ```
    /// # fn f(batch: &tower_mcp_analytics::sink::Batch) -> bool { batch.is_empty() }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.json.is_empty()
    }

    /// Bytes of event JSON, one separator per event included.
    pub(crate) fn json_bytes(&self) -> usize {
        self.json_bytes
    }

    pub(crate) fn next_attempt(&mut self) {
        self.attempt += 1;
    }

    /// Splits in two halves, each a new batch with a new id (for a collector that
    /// answered 413). `None` for a batch of one event.
    pub(crate) fn split(self) -> Option<(Self, Self)> {
        if self.json.len() < 2 {
            return None;
        }
        let at = SystemTime::now();
        let half = self.json.len() / 2;
        let mut first = Batch::new(at);
        let mut second = Batch::new(at);
        for (index, json) in self.json.into_iter().enumerate() {
            let target = if index < half {
                &mut first
            } else {
                &mut second
            };
            target.push(json);
        }
        Some((first, second))
    }

    fn push(&mut self, json: Box<RawValue>) {
        self.json_bytes += json_size(&json);
        self.json.push(json);
    }
}

/// What an event's JSON counts for in a batch's size: its bytes and one separator.
pub(crate) fn json_size(json: &RawValue) -> usize {
    json.get().len() + 1
}

/// Seals batches of at most `max_events` events and `max_bytes` of event JSON. The byte
/// limit may change between events (the worker adapts it); a new limit applies to the
/// open batch from the next event on.
#[derive(Debug)]
pub(crate) struct Batcher {
    max_events: usize,
    max_bytes: usize,
    open: Option<Batch>,
}

impl Batcher {
    pub(crate) fn new(max_events: usize, max_bytes: usize) -> Self {
        Self {
            max_events: max_events.max(1),
            max_bytes,
            open: None,
        }
    }

    /// Changes the byte limit for the events added from now on (at least 1).
    pub(crate) fn set_max_bytes(&mut self, max_bytes: usize) {
        self.max_bytes = max_bytes.max(1);
    }

    /// Adds an event (with its JSON), returning the batches it sealed: the previous open
    /// batch when the event does not fit in it, and the event alone when it is larger
    /// than a batch may be (sent by itself; the destination decides).
    pub(crate) fn add(&mut self, json: Box<RawValue>) -> Vec<Batch> {
        let size = json_size(&json);
        let full = self.open.as_ref().is_some_and(|open| {
            open.len() >= self.max_events || open.json_bytes + size > self.max_bytes
        });
        let mut sealed: Vec<Batch> = match full {
            true => self.open.take().into_iter().collect(),
            false => Vec::new(),
        };
        self.open
            .get_or_insert_with(|| Batch::new(SystemTime::now()))
            .push(json);
        if size > self.max_bytes {
            sealed.extend(self.open.take());
        }
        sealed
    }

    /// The open batch when it is full, or any open batch when `all`.
    pub(crate) fn seal(&mut self, all: bool) -> Option<Batch> {
        let ready = self
            .open
            .as_ref()
            .is_some_and(|open| all || open.len() >= self.max_events);
        if ready { self.open.take() } else { None }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.open.is_none()
    }

    /// Events in the open batch.
    pub(crate) fn open_len(&self) -> usize {
        self.open.as_ref().map_or(0, Batch::len)
    }

    /// Bytes of event JSON in the open batch.
    pub(crate) fn open_bytes(&self) -> usize {
        self.open.as_ref().map_or(0, Batch::json_bytes)
    }

    /// About how many more events of `event_bytes` each get the open batch sealed (at
    /// least 1).
    pub(crate) fn room_for(&self, event_bytes: usize) -> usize {
        let events = self.max_events.saturating_sub(self.open_len());
        let bytes = self.max_bytes.saturating_sub(self.open_bytes());
        events.min(bytes / event_bytes.max(1) + 1).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(batcher: &mut Batcher, event: Event) -> Vec<Batch> {
        let json = serde_json::value::to_raw_value(&event).expect("serialises");
        batcher.add(json)
    }

    fn event(size: usize) -> Event {
        serde_json::from_value(serde_json::json!({
            "id": "evt_x", "event_type": "mcp:ping", "timestamp": "t", "duration_ms": 0.0,
            "method": "ping", "outcome": "success", "is_error": false,
            "progress_notifications": 0, "log_notifications": 0, "batch": false,
            "resource_name": "x".repeat(size),
        }))
        .expect("event")
    }

    #[test]
    fn seals_by_count_and_by_bytes() {
        let mut batcher = Batcher::new(3, 10_000);
        let sealed: Vec<Batch> = (0..7).flat_map(|_| add(&mut batcher, event(10))).collect();
        assert_eq!(sealed.iter().map(Batch::len).collect::<Vec<_>>(), [3, 3]);
        assert_eq!(batcher.seal(true).map(|b| b.len()), Some(1));

        let mut batcher = Batcher::new(100, 1_000);
        let sealed = (0..10).flat_map(|_| add(&mut batcher, event(300))).count();
        assert!(sealed >= 3, "bytes seal batches before the count does");
        assert!(batcher.seal(true).is_some_and(|open| !open.is_empty()));
        let alone = add(&mut batcher, event(2_000));
        let sizes: Vec<usize> = alone.iter().map(Batch::len).collect();
        assert_eq!(sizes, [1], "a large event goes alone");
        assert!(batcher.is_empty());
    }

    #[test]
    fn a_new_byte_limit_applies_from_the_next_event() {
        let size = json_size(&serde_json::value::to_raw_value(&event(100)).expect("json"));
        let mut batcher = Batcher::new(1_000, size * 2);
        assert!(add(&mut batcher, event(100)).is_empty());
        assert_eq!(batcher.room_for(size), 2);
        batcher.set_max_bytes(size * 4);
        assert_eq!(batcher.room_for(size), 4);
        let sealed: Vec<Batch> = (0..4).flat_map(|_| add(&mut batcher, event(100))).collect();
        assert_eq!(sealed.iter().map(Batch::len).collect::<Vec<_>>(), [4]);
        batcher.set_max_bytes(size);
        assert_eq!(
            add(&mut batcher, event(100)).len(),
            1,
            "the open batch no longer fits"
        );
        assert_eq!(batcher.open_len(), 1);
    }

    #[test]
    fn split_halves_keep_events_and_json_together() {
        let mut batcher = Batcher::new(10, 1_000_000);
        for n in 0..5 {
            assert!(add(&mut batcher, event(n)).is_empty());
        }
        let batch = batcher.seal(true).expect("open batch");
        let id = batch.id().to_owned();
        let (a, b) = batch.split().expect("splits");
        assert_eq!((a.len(), b.len()), (2, 3));
        assert_ne!(a.id(), id);
        assert_eq!(a.events_json().len(), 2);
        assert!(a.events_json()[1].get().contains(r#""resource_name":"x""#));
    }
}
