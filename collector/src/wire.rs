//! The v1 batch format, as sent by `tower-mcp-analytics`'s `HttpSink`: reading an
//! envelope into [`IncomingBatch`] and each event into the columns the store indexes.
//!
//! Owns validation only: a batch is taken whole or refused whole with a reason. Never
//! touches storage, and never drops an event field it does not know: the event's own JSON
//! is kept byte for byte, so newer layers can talk to older collectors. The optional
//! fields the tools page reads (`listed_tools`, `unknown_tool`, `user_intent`, `model`)
//! are taken when they have their documented type and otherwise left to that JSON alone:
//! they never refuse a batch.

use serde::Deserialize;
use serde_json::value::RawValue;

/// The only schema this collector reads.
pub const SCHEMA_V1: &str = "tower-mcp-analytics/v1";
/// The longest id (batch or event) accepted.
const MAX_ID_LEN: usize = 256;
/// Longer indexed strings (names, methods) are cut to this many bytes in the index columns;
/// the stored event keeps them whole.
const MAX_COLUMN_LEN: usize = 1024;
/// The most `listed_tools` names kept in the index columns (the layer sends at most as
/// many); the stored event keeps them all.
const MAX_LISTED_TOOLS: usize = 1000;

/// A batch that passed validation, ready to store.
///
/// ```
/// use std::time::Duration;
/// use mcp_analytics_collector::store::{
///     Committed, IncomingBatch, IncomingEvent, SqliteStore, Store,
/// };
///
/// let event = IncomingEvent {
///     id: "evt_1".into(),
///     ts: 1_796_032_800_000,
///     event_type: "mcp:tools/call".into(),
///     method: "tools/call".into(),
///     tool: Some("search".into()),
///     outcome: "success".into(),
///     is_error: false,
///     duration_ms: 12.5,
///     client: "Cursor".into(),
///     client_name: Some("cursor-vscode".into()),
///     user_id: Some("alice".into()),
///     user_name: None,
///     session_id: None,
///     listed_tools: None,
///     unknown_tool: false,
///     user_intent: None,
///     model: None,
///     json: r#"{"id":"evt_1"}"#.into(),
/// };
/// let store = SqliteStore::open_in_memory(Duration::from_secs(1800))?;
/// let batch = IncomingBatch { batch_id: "bat_1".into(), events: vec![event], bytes: 14 };
/// let results = store.commit(&[batch])?;
/// assert!(matches!(results[0], Ok(Committed { stored: 1, .. })));
/// # Ok::<(), mcp_analytics_collector::store::StoreError>(())
/// ```
#[derive(Debug)]
pub struct IncomingBatch {
    /// The sender's `batch_id`: a retry carries the same one.
    pub batch_id: String,
    /// The events, in the order sent.
    pub events: Vec<IncomingEvent>,
    /// Bytes of event JSON held, for the queue's budget.
    pub bytes: usize,
}

/// One event: the columns the dashboard filters and groups on, and the event's JSON
/// (see [`IncomingBatch`] for one built by hand).
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingEvent {
    /// `id`.
    pub id: String,
    /// `timestamp`, in ms since the Unix epoch.
    pub ts: i64,
    /// `event_type`.
    pub event_type: String,
    /// `method`.
    pub method: String,
    /// `resource_name` (the tool of a `tools/call`).
    pub tool: Option<String>,
    /// `outcome`.
    pub outcome: String,
    /// `is_error`.
    pub is_error: bool,
    /// `duration_ms`.
    pub duration_ms: f64,
    /// What the dashboard calls the client: the display name, else the client's own name.
    pub client: String,
    /// `client_name`.
    pub client_name: Option<String>,
    /// `user.id`.
    pub user_id: Option<String>,
    /// `user.name`.
    pub user_name: Option<String>,
    /// `session_id`, when the layer set one.
    pub session_id: Option<String>,
    /// `listed_tools`: the tool names a `tools/list` answer advertised (at most 1,000).
    pub listed_tools: Option<Vec<String>>,
    /// `unknown_tool`: a `tools/call` of a tool that was not advertised or that the server
    /// does not know.
    pub unknown_tool: bool,
    /// `user_intent`: why the agent called the tool, or (on a `missing_capability` event)
    /// what it was looking for.
    pub user_intent: Option<String>,
    /// `model`: the model behind the AI client, when the layer knows it.
    pub model: Option<String>,
    /// The event as it was sent.
    pub json: String,
}

/// Why a batch was refused (a 400, or a 413 for [`Refusal::TooManyEvents`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The body is not the v1 envelope.
    Envelope(String),
    /// Event number `index` is not a valid event.
    Event {
        /// Its position in `events`.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// More events than the collector takes in one batch.
    TooManyEvents {
        /// How many came.
        count: usize,
        /// The limit.
        limit: usize,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Envelope(reason) => write!(f, "not a {SCHEMA_V1} batch: {reason}"),
            Self::Event { index, reason } => write!(f, "events[{index}]: {reason}"),
            Self::TooManyEvents { count, limit } => write!(
                f,
                "{count} events in one batch; this collector takes at most {limit}: split the batch"
            ),
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    schema: Option<String>,
    batch_id: Option<String>,
    #[serde(borrow)]
    events: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct EventFields {
    id: Option<String>,
    timestamp: Option<String>,
    event_type: Option<String>,
    method: Option<String>,
    resource_name: Option<String>,
    outcome: Option<String>,
    #[serde(default)]
    is_error: bool,
    duration_ms: Option<f64>,
    client_name: Option<String>,
    client_display_name: Option<String>,
    session_id: Option<String>,
    user: Option<UserFields>,
    #[serde(default)]
    listed_tools: Lenient<Vec<String>>,
    #[serde(default)]
    unknown_tool: Lenient<bool>,
    #[serde(default)]
    user_intent: Lenient<String>,
    #[serde(default)]
    model: Lenient<String>,
}

/// An optional field read when it has the expected type; anything else (`null`, another
/// type) reads as absent and stays in the stored JSON only.
#[derive(Deserialize)]
#[serde(untagged)]
enum Lenient<T> {
    Read(T),
    Other(serde::de::IgnoredAny),
}

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Self::Other(serde::de::IgnoredAny)
    }
}

impl<T> Lenient<T> {
    fn get(self) -> Option<T> {
        match self {
            Self::Read(value) => Some(value),
            Self::Other(_) => None,
        }
    }
}

#[derive(Deserialize)]
struct UserFields {
    id: Option<String>,
    name: Option<String>,
}

/// Reads a whole (decompressed) request body as a v1 batch.
pub(crate) fn read_batch(body: &[u8], max_events: usize) -> Result<IncomingBatch, Refusal> {
    let text = std::str::from_utf8(body)
        .map_err(|error| Refusal::Envelope(format!("invalid UTF-8 ({error})")))?;
    let envelope: Envelope<'_> =
        serde_json::from_str(text).map_err(|error| Refusal::Envelope(error.to_string()))?;
    match envelope.schema.as_deref() {
        Some(SCHEMA_V1) => {}
        Some(other) => {
            return Err(Refusal::Envelope(format!(
                "unsupported schema {:?}",
                cut(other, 64)
            )));
        }
        None => return Err(Refusal::Envelope("missing \"schema\"".into())),
    }
    let batch_id = envelope
        .batch_id
        .ok_or_else(|| Refusal::Envelope("missing \"batch_id\"".into()))?;
    if batch_id.is_empty() || batch_id.len() > MAX_ID_LEN {
        return Err(Refusal::Envelope(format!(
            "\"batch_id\" must have 1 to {MAX_ID_LEN} bytes"
        )));
    }
    let raw = envelope
        .events
        .ok_or_else(|| Refusal::Envelope("missing \"events\" array".into()))?;
    if raw.len() > max_events {
        return Err(Refusal::TooManyEvents {
            count: raw.len(),
            limit: max_events,
        });
    }
    let mut bytes = 0;
    let mut events = Vec::with_capacity(raw.len());
    for (index, json) in raw.into_iter().enumerate() {
        let event = read_event(json).map_err(|reason| Refusal::Event { index, reason })?;
        bytes += event.json.len();
        events.push(event);
    }
    Ok(IncomingBatch {
        batch_id,
        events,
        bytes,
    })
}

fn read_event(json: &RawValue) -> Result<IncomingEvent, String> {
    let fields: EventFields =
        serde_json::from_str(json.get()).map_err(|error| format!("not an event ({error})"))?;
    let id = fields.id.ok_or("missing \"id\"")?;
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(format!("\"id\" must have 1 to {MAX_ID_LEN} bytes"));
    }
    let timestamp = fields.timestamp.ok_or("missing \"timestamp\"")?;
    let ts = parse_rfc3339_ms(&timestamp)
        .ok_or_else(|| format!("\"timestamp\" {:?} is not RFC 3339", cut(&timestamp, 64)))?;
    let method = fields.method.ok_or("missing \"method\"")?;
    let event_type = fields.event_type.unwrap_or_else(|| format!("mcp:{method}"));
    let duration_ms = fields.duration_ms.unwrap_or(0.0);
    if !duration_ms.is_finite() || duration_ms < 0.0 {
        return Err("\"duration_ms\" must be a non-negative number".into());
    }
    let client_name = fields.client_name.map(|name| column(&name));
    let client = fields
        .client_display_name
        .map(|name| column(&name))
        .or_else(|| client_name.clone())
        .unwrap_or_else(|| "unknown".into());
    let (user_id, user_name) = match fields.user {
        Some(user) => (
            user.id.filter(|id| !id.is_empty()).map(|id| column(&id)),
            user.name.map(|name| column(&name)),
        ),
        None => (None, None),
    };
    Ok(IncomingEvent {
        id,
        ts,
        event_type: column(&event_type),
        method: column(&method),
        tool: fields.resource_name.map(|name| column(&name)),
        outcome: column(fields.outcome.as_deref().unwrap_or("unknown")),
        is_error: fields.is_error,
        duration_ms,
        client,
        client_name,
        user_id,
        user_name,
        session_id: fields
            .session_id
            .filter(|id| !id.is_empty())
            .map(|id| column(&id)),
        listed_tools: fields.listed_tools.get().map(|names| {
            names
                .iter()
                .take(MAX_LISTED_TOOLS)
                .map(|name| column(name))
                .collect()
        }),
        unknown_tool: fields.unknown_tool.get().unwrap_or(false),
        user_intent: fields.user_intent.get().map(|intent| column(&intent)),
        model: fields.model.get().map(|model| column(&model)),
        json: json.get().to_owned(),
    })
}

/// A string cut to the index column limit, on a character boundary.
fn column(text: &str) -> String {
    cut(text, MAX_COLUMN_LEN).to_owned()
}

fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` into ms since the Unix epoch.
pub(crate) fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes.len() > 40 {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = bytes.get(range)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        part.iter()
            .try_fold(0i64, |acc, digit| Some(acc * 10 + i64::from(digit - b'0')))
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, byte)| bytes[at] != byte)
        || !matches!(bytes[10], b'T' | b't' | b' ')
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if bytes[at] == b'.' {
        at += 1;
        let start = at;
        while at < bytes.len() && bytes[at].is_ascii_digit() {
            at += 1;
        }
        if at == start {
            return None;
        }
        let digits = &bytes[start..at.min(start + 3)];
        millis = digits
            .iter()
            .fold(0i64, |acc, digit| acc * 10 + i64::from(digit - b'0'))
            * 10i64.pow(3 - digits.len() as u32);
    }
    let offset_minutes = match bytes.get(at)? {
        b'Z' | b'z' if at + 1 == bytes.len() => 0,
        sign @ (b'+' | b'-') if at + 6 == bytes.len() && bytes[at + 3] == b':' => {
            let (hours, minutes) = (number(at + 1..at + 3)?, number(at + 4..at + 6)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let minutes = hours * 60 + minutes;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_batch_reads_into_columns() {
        let body = br#"{"schema":"tower-mcp-analytics/v1","batch_id":"bat_1","events":[
          {"id":"evt_1","timestamp":"2026-11-30T10:00:00.250Z","event_type":"mcp:tools/call",
           "method":"tools/call","resource_name":"search","outcome":"success","duration_ms":3.5,
           "client_name":"claude-ai","client_display_name":"Claude Desktop","user":{"id":"alice"}}]}"#;
        let batch = read_batch(body, 5000).unwrap();
        assert_eq!(batch.events[0].client, "Claude Desktop");
        assert_eq!(batch.events[0].ts, 1_796_032_800_250);
        assert_eq!(batch.events[0].user_id.as_deref(), Some("alice"));
    }

    #[test]
    fn timestamps_of_the_layer_parse() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_rfc3339_ms("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2026-11-22T10:00:06.991Z"),
            Some(1_795_341_606_991)
        );
        assert_eq!(
            parse_rfc3339_ms("2000-02-29T00:00:00Z"),
            Some(951_782_400_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-22T10:00:06.9912345Z"),
            Some(1_795_341_606_991)
        );
        for bad in [
            "2026-13-01T00:00:00Z",
            "2026-11-22T10:00:06",
            "2026-11-22T10:00:06.Z",
            "x",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_bad_event_refuses_the_batch_with_its_index() {
        let body = br#"{"schema":"tower-mcp-analytics/v1","batch_id":"b","events":[
            {"id":"e1","timestamp":"2026-11-22T10:00:06Z","method":"ping"},
            {"id":"e2","timestamp":"noon","method":"ping"}]}"#;
        let refusal = read_batch(body, 10).unwrap_err();
        assert!(
            matches!(refusal, Refusal::Event { index: 1, .. }),
            "{refusal}"
        );
    }

    #[test]
    fn tool_catalog_fields_read_into_columns_and_a_wrong_type_refuses_nothing() {
        let body = br#"{"schema":"tower-mcp-analytics/v1","batch_id":"b","events":[
            {"id":"e1","timestamp":"2026-11-22T10:00:06Z","method":"tools/list",
             "listed_tools":["search","delete_repo"],"model":"claude-opus"},
            {"id":"e2","timestamp":"2026-11-22T10:00:07Z","method":"tools/call",
             "resource_name":"summarize_inbox","unknown_tool":true,"user_intent":"triage mail"},
            {"id":"e3","timestamp":"2026-11-22T10:00:08Z","method":"tools/call",
             "listed_tools":"search","unknown_tool":"yes","user_intent":{"text":1},"model":null}]}"#;
        let batch = read_batch(body, 10).unwrap();
        let [list, call, odd] = &batch.events[..] else {
            panic!("three events");
        };
        assert_eq!(
            list.listed_tools.as_deref(),
            Some(&["search".to_owned(), "delete_repo".to_owned()][..])
        );
        assert_eq!(list.model.as_deref(), Some("claude-opus"));
        assert!(call.unknown_tool);
        assert_eq!(call.user_intent.as_deref(), Some("triage mail"));
        assert_eq!(
            (
                &odd.listed_tools,
                odd.unknown_tool,
                &odd.user_intent,
                &odd.model
            ),
            (&None, false, &None, &None)
        );
        assert!(odd.json.contains(r#""user_intent":{"text":1}"#));
    }

    #[test]
    fn a_long_tool_list_is_bounded_in_the_columns() {
        let names: Vec<String> = (0..1500).map(|n| format!("tool_{n}")).collect();
        let event = serde_json::json!({
            "id": "e1", "timestamp": "2026-11-22T10:00:06Z", "method": "tools/list",
            "listed_tools": names, "user_intent": "x".repeat(5000),
        });
        let body =
            format!(r#"{{"schema":"tower-mcp-analytics/v1","batch_id":"b","events":[{event}]}}"#);
        let batch = read_batch(body.as_bytes(), 10).unwrap();
        let event = &batch.events[0];
        assert_eq!(
            event.listed_tools.as_ref().map(Vec::len),
            Some(MAX_LISTED_TOOLS)
        );
        assert_eq!(
            event.user_intent.as_ref().map(String::len),
            Some(MAX_COLUMN_LEN)
        );
        assert!(event.json.contains("tool_1499"));
    }

    #[test]
    fn unknown_fields_are_kept_in_the_stored_json() {
        let body = br#"{"schema":"tower-mcp-analytics/v1","batch_id":"b","future":1,"events":[
            {"id":"e1","timestamp":"2026-11-22T10:00:06Z","method":"ping","new_field":{"x":[1]}}]}"#;
        let batch = read_batch(body, 10).unwrap();
        assert!(batch.events[0].json.contains(r#""new_field":{"x":[1]}"#));
        assert_eq!(batch.events[0].client, "unknown");
    }
}
