//! What each dashboard page shows, computed from stored rows: totals, exact percentiles
//! (nearest rank), time series in even buckets, tables per tool, client and user, and the
//! tools page's insights (tools advertised but never called, calls of unknown tools, what
//! agents asked for).
//!
//! Owns the numbers' definitions, so the dashboard and the JSON API agree. Pure: never
//! touches storage or HTTP.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use crate::store::{Advertised, EventRow, SessionRow};

/// Bucket widths a series may use, in ms: the smallest giving at most [`MAX_BUCKETS`].
const BUCKETS: &[i64] = &[
    60_000,
    5 * 60_000,
    15 * 60_000,
    3_600_000,
    3 * 3_600_000,
    6 * 3_600_000,
    86_400_000,
    7 * 86_400_000,
];
const MAX_BUCKETS: i64 = 60;
/// Clients named in a tool's row, at most.
const TOP_CLIENTS: usize = 3;
/// Rows of each insights list (never called, unknown tools), at most.
pub const INSIGHT_ROWS: usize = 500;
/// What agents asked for, at most: the newest.
pub const ASKS: usize = 50;
/// The `event_type` of the layer's record of an agent looking for a tool it lacks.
const MISSING_CAPABILITY: &str = "missing_capability";

/// The `q`-quantile of sorted values by nearest rank (the smallest value with at least
/// `q` of the values at or below it); `None` for no values.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The bucket width for a range: the smallest of the fixed widths giving ≤ 60 buckets.
pub fn bucket_ms(from: i64, to: i64) -> i64 {
    let span = (to - from).max(1);
    BUCKETS
        .iter()
        .copied()
        .find(|bucket| span / bucket <= MAX_BUCKETS)
        .unwrap_or(BUCKETS[BUCKETS.len() - 1])
}

/// The bucket starts covering [from, to), aligned to the bucket width (UTC).
fn bucket_starts(from: i64, to: i64, bucket: i64) -> Vec<i64> {
    let first = from.div_euclid(bucket) * bucket;
    let count = ((to - first + bucket - 1) / bucket).clamp(0, MAX_BUCKETS * 2);
    (0..count).map(|n| first + n * bucket).collect()
}

/// A `tools/call` of a tool, not the layer's record of an agent asking for a missing one
/// (the layer answered those itself: they are not calls of the server's tools).
fn is_tool_call(row: &EventRow) -> bool {
    &*row.method == "tools/call" && &*row.event_type != MISSING_CAPABILITY
}

/// The overview page.
#[derive(Debug, Serialize)]
pub struct Overview {
    /// The range's start (ms).
    pub from: i64,
    /// The range's end (ms, exclusive).
    pub to: i64,
    /// The series' bucket width.
    pub bucket_ms: i64,
    /// Over the whole range.
    pub totals: Totals,
    /// One point per bucket.
    pub series: Vec<OverviewPoint>,
}

/// Totals over a range.
#[derive(Debug, Serialize, PartialEq)]
pub struct Totals {
    /// Events (every request and notification).
    pub events: u64,
    /// `tools/call` events.
    pub tool_calls: u64,
    /// Events with `is_error`.
    pub errors: u64,
    /// errors / events.
    pub error_rate: Option<f64>,
    /// Distinct identified users.
    pub users: u64,
    /// Distinct sessions.
    pub sessions: u64,
    /// Median duration (ms).
    pub p50_ms: Option<f64>,
    /// 95th percentile duration (ms).
    pub p95_ms: Option<f64>,
}

/// One bucket of the overview: its start and the [`Totals`] of its events.
#[derive(Debug, Serialize)]
pub struct OverviewPoint {
    /// The bucket's start (ms).
    pub t: i64,
    /// Over the bucket.
    #[serde(flatten)]
    pub totals: Totals,
}

fn totals<'a>(rows: impl IntoIterator<Item = &'a EventRow>) -> Totals {
    let mut events = 0;
    let mut tool_calls = 0;
    let mut errors = 0;
    let mut users = HashSet::new();
    let mut sessions = HashSet::new();
    let mut durations = Vec::new();
    for row in rows {
        events += 1;
        tool_calls += u64::from(is_tool_call(row));
        errors += u64::from(row.is_error);
        if let Some(user) = &row.user_id {
            users.insert(user.as_ref());
        }
        sessions.insert(row.session_id.as_ref());
        durations.push(row.duration_ms);
    }
    let durations = sorted(durations);
    Totals {
        events,
        tool_calls,
        errors,
        error_rate: rate(errors, events),
        users: users.len() as u64,
        sessions: sessions.len() as u64,
        p50_ms: percentile(&durations, 0.5),
        p95_ms: percentile(&durations, 0.95),
    }
}

/// Groups rows by bucket start.
fn by_bucket(rows: &[EventRow], bucket: i64) -> HashMap<i64, Vec<&EventRow>> {
    let mut buckets: HashMap<i64, Vec<&EventRow>> = HashMap::new();
    for row in rows {
        buckets
            .entry(row.ts.div_euclid(bucket) * bucket)
            .or_default()
            .push(row);
    }
    buckets
}

/// The overview of `rows` over [from, to).
pub fn overview(rows: &[EventRow], from: i64, to: i64) -> Overview {
    let bucket = bucket_ms(from, to);
    let buckets = by_bucket(rows, bucket);
    let series = bucket_starts(from, to, bucket)
        .into_iter()
        .map(|t| OverviewPoint {
            t,
            totals: totals(buckets.get(&t).into_iter().flatten().copied()),
        })
        .collect();
    Overview {
        from,
        to,
        bucket_ms: bucket,
        totals: totals(rows),
        series,
    }
}

/// One tool's numbers.
#[derive(Debug, Serialize, PartialEq)]
pub struct ToolRow {
    /// The tool's name.
    pub tool: String,
    /// Calls.
    pub calls: u64,
    /// Calls with `is_error`.
    pub errors: u64,
    /// errors / calls.
    pub error_rate: Option<f64>,
    /// Median duration (ms).
    pub p50_ms: Option<f64>,
    /// 95th percentile duration (ms).
    pub p95_ms: Option<f64>,
    /// 99th percentile duration (ms).
    pub p99_ms: Option<f64>,
    /// Calls per outcome.
    pub outcomes: BTreeMap<Arc<str>, u64>,
    /// The clients calling it most, most first.
    pub clients: Vec<ClientCalls>,
}

/// Calls from one client.
#[derive(Debug, Serialize, PartialEq)]
pub struct ClientCalls {
    /// The client's label.
    pub client: String,
    /// Calls.
    pub calls: u64,
}

fn tool_row(tool: &str, calls: &[&EventRow]) -> ToolRow {
    let errors = calls.iter().filter(|row| row.is_error).count() as u64;
    let durations = sorted(calls.iter().map(|row| row.duration_ms).collect());
    let mut outcomes = BTreeMap::new();
    let mut clients: HashMap<&str, u64> = HashMap::new();
    for row in calls {
        *outcomes.entry(row.outcome.clone()).or_default() += 1;
        *clients.entry(row.client.as_ref()).or_default() += 1;
    }
    let mut clients: Vec<ClientCalls> = clients
        .into_iter()
        .map(|(client, calls)| ClientCalls {
            client: client.to_owned(),
            calls,
        })
        .collect();
    clients.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.client.cmp(&b.client)));
    clients.truncate(TOP_CLIENTS);
    ToolRow {
        tool: tool.to_owned(),
        calls: calls.len() as u64,
        errors,
        error_rate: rate(errors, calls.len() as u64),
        p50_ms: percentile(&durations, 0.5),
        p95_ms: percentile(&durations, 0.95),
        p99_ms: percentile(&durations, 0.99),
        outcomes,
        clients,
    }
}

fn tool_calls_by_name(rows: &[EventRow]) -> HashMap<&str, Vec<&EventRow>> {
    let mut tools: HashMap<&str, Vec<&EventRow>> = HashMap::new();
    for row in rows.iter().filter(|row| is_tool_call(row)) {
        if let Some(tool) = &row.tool {
            tools.entry(tool.as_ref()).or_default().push(row);
        }
    }
    tools
}

/// Every tool called in `rows`, most called first.
pub fn tools(rows: &[EventRow]) -> Vec<ToolRow> {
    let mut tools: Vec<ToolRow> = tool_calls_by_name(rows)
        .into_iter()
        .map(|(tool, calls)| tool_row(tool, &calls))
        .collect();
    tools.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.tool.cmp(&b.tool)));
    tools
}

/// One tool's page.
#[derive(Debug, Serialize)]
pub struct ToolDetail {
    /// The tool's numbers.
    pub tool: ToolRow,
    /// The series' bucket width.
    pub bucket_ms: i64,
    /// Calls, errors and latency per bucket.
    pub series: Vec<ToolPoint>,
    /// Who calls it most.
    pub users: Vec<UserCalls>,
    /// Its latest calls, newest first.
    pub recent: Vec<EventRow>,
}

/// One bucket of a tool's series.
#[derive(Debug, Serialize)]
pub struct ToolPoint {
    /// The bucket's start (ms).
    pub t: i64,
    /// Calls.
    pub calls: u64,
    /// Calls with `is_error`.
    pub errors: u64,
    /// Median duration (ms).
    pub p50_ms: Option<f64>,
    /// 95th percentile duration (ms).
    pub p95_ms: Option<f64>,
}

/// Calls by one user.
#[derive(Debug, Serialize)]
pub struct UserCalls {
    /// The user's id.
    pub user_id: String,
    /// The user's name.
    pub user_name: Option<Arc<str>>,
    /// Calls.
    pub calls: u64,
}

/// The page of `tool` over [from, to), or `None` if it was not called.
pub fn tool_detail(rows: &[EventRow], tool: &str, from: i64, to: i64) -> Option<ToolDetail> {
    let calls: Vec<&EventRow> = rows
        .iter()
        .filter(|row| is_tool_call(row) && row.tool.as_deref() == Some(tool))
        .collect();
    if calls.is_empty() {
        return None;
    }
    let bucket = bucket_ms(from, to);
    let mut buckets: HashMap<i64, Vec<&EventRow>> = HashMap::new();
    let mut users: HashMap<&str, (Option<&Arc<str>>, u64)> = HashMap::new();
    for row in &calls {
        buckets
            .entry(row.ts.div_euclid(bucket) * bucket)
            .or_default()
            .push(row);
        if let Some(user) = &row.user_id {
            let entry = users.entry(user.as_ref()).or_insert((None, 0));
            entry.0 = entry.0.or(row.user_name.as_ref());
            entry.1 += 1;
        }
    }
    let series = bucket_starts(from, to, bucket)
        .into_iter()
        .map(|t| {
            let part = buckets.get(&t).map(Vec::as_slice).unwrap_or_default();
            let durations = sorted(part.iter().map(|row| row.duration_ms).collect());
            ToolPoint {
                t,
                calls: part.len() as u64,
                errors: part.iter().filter(|row| row.is_error).count() as u64,
                p50_ms: percentile(&durations, 0.5),
                p95_ms: percentile(&durations, 0.95),
            }
        })
        .collect();
    let mut users: Vec<UserCalls> = users
        .into_iter()
        .map(|(user_id, (user_name, calls))| UserCalls {
            user_id: user_id.to_owned(),
            user_name: user_name.cloned(),
            calls,
        })
        .collect();
    users.sort_by(|a, b| {
        b.calls
            .cmp(&a.calls)
            .then_with(|| a.user_id.cmp(&b.user_id))
    });
    users.truncate(20);
    let mut recent: Vec<EventRow> = calls.iter().map(|row| (*row).clone()).collect();
    recent.sort_by(|a, b| b.ts.cmp(&a.ts).then_with(|| b.seq.cmp(&a.seq)));
    recent.truncate(50);
    Some(ToolDetail {
        tool: tool_row(tool, &calls),
        bucket_ms: bucket,
        series,
        users,
        recent,
    })
}

/// The clients page.
#[derive(Debug, Serialize)]
pub struct Clients {
    /// The series' bucket width.
    pub bucket_ms: i64,
    /// One row per client, most events first.
    pub clients: Vec<ClientRow>,
    /// Events per client per bucket.
    pub series: Vec<ClientPoint>,
}

/// One client's numbers.
#[derive(Debug, Serialize, PartialEq)]
pub struct ClientRow {
    /// The label (display name, else name).
    pub client: String,
    /// The self-reported name most often behind the label.
    pub client_name: Option<String>,
    /// Events.
    pub events: u64,
    /// Distinct users.
    pub users: u64,
    /// Distinct sessions.
    pub sessions: u64,
    /// Its share of all events.
    pub share: Option<f64>,
}

/// One bucket of the clients' series.
#[derive(Debug, Serialize)]
pub struct ClientPoint {
    /// The bucket's start (ms).
    pub t: i64,
    /// Events per client label.
    pub clients: BTreeMap<Arc<str>, u64>,
}

/// The clients in `rows` over [from, to).
pub fn clients(rows: &[EventRow], from: i64, to: i64) -> Clients {
    let bucket = bucket_ms(from, to);
    #[derive(Default)]
    struct Seen<'a> {
        events: u64,
        users: HashSet<&'a str>,
        sessions: HashSet<&'a str>,
        names: HashMap<&'a str, u64>,
    }
    let mut seen: HashMap<&str, Seen<'_>> = HashMap::new();
    let mut buckets: HashMap<i64, BTreeMap<Arc<str>, u64>> = HashMap::new();
    for row in rows {
        let client = seen.entry(row.client.as_ref()).or_default();
        client.events += 1;
        if let Some(user) = &row.user_id {
            client.users.insert(user);
        }
        client.sessions.insert(&row.session_id);
        if let Some(name) = &row.client_name {
            *client.names.entry(name).or_default() += 1;
        }
        *buckets
            .entry(row.ts.div_euclid(bucket) * bucket)
            .or_default()
            .entry(row.client.clone())
            .or_default() += 1;
    }
    let total = rows.len() as u64;
    let mut clients: Vec<ClientRow> = seen
        .into_iter()
        .map(|(client, seen)| ClientRow {
            client: client.to_owned(),
            client_name: seen
                .names
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                .map(|(name, _)| (*name).to_owned()),
            events: seen.events,
            users: seen.users.len() as u64,
            sessions: seen.sessions.len() as u64,
            share: rate(seen.events, total),
        })
        .collect();
    clients.sort_by(|a, b| {
        b.events
            .cmp(&a.events)
            .then_with(|| a.client.cmp(&b.client))
    });
    let series = bucket_starts(from, to, bucket)
        .into_iter()
        .map(|t| ClientPoint {
            t,
            clients: buckets.remove(&t).unwrap_or_default(),
        })
        .collect();
    Clients {
        bucket_ms: bucket,
        clients,
        series,
    }
}

/// The users page.
#[derive(Debug, Serialize)]
pub struct Users {
    /// One row per identified user, most recently seen first.
    pub users: Vec<UserRow>,
    /// Events with no identified user.
    pub anonymous_events: u64,
}

/// One user's numbers.
#[derive(Debug, Serialize, PartialEq)]
pub struct UserRow {
    /// The user's id.
    pub user_id: Arc<str>,
    /// The user's name (the latest one seen).
    pub user_name: Option<Arc<str>>,
    /// Events.
    pub events: u64,
    /// `tools/call` events.
    pub tool_calls: u64,
    /// Events with `is_error`.
    pub errors: u64,
    /// Distinct sessions.
    pub sessions: u64,
    /// First event (ms).
    pub first_seen: i64,
    /// Last event (ms).
    pub last_seen: i64,
}

/// The users in `rows`.
pub fn users(rows: &[EventRow]) -> Users {
    struct Seen<'a> {
        row: UserRow,
        name_at: i64,
        sessions: HashSet<&'a str>,
    }
    let mut seen: HashMap<&str, Seen<'_>> = HashMap::new();
    let mut anonymous_events = 0;
    for row in rows {
        let Some(user) = &row.user_id else {
            anonymous_events += 1;
            continue;
        };
        let entry = seen.entry(user.as_ref()).or_insert_with(|| Seen {
            row: UserRow {
                user_id: user.clone(),
                user_name: None,
                events: 0,
                tool_calls: 0,
                errors: 0,
                sessions: 0,
                first_seen: row.ts,
                last_seen: row.ts,
            },
            name_at: i64::MIN,
            sessions: HashSet::new(),
        });
        entry.row.events += 1;
        entry.row.tool_calls += u64::from(is_tool_call(row));
        entry.row.errors += u64::from(row.is_error);
        entry.row.first_seen = entry.row.first_seen.min(row.ts);
        entry.row.last_seen = entry.row.last_seen.max(row.ts);
        if row.user_name.is_some() && row.ts >= entry.name_at {
            entry.row.user_name = row.user_name.clone();
            entry.name_at = row.ts;
        }
        entry.sessions.insert(&row.session_id);
    }
    let mut users: Vec<UserRow> = seen
        .into_values()
        .map(|mut seen| {
            seen.row.sessions = seen.sessions.len() as u64;
            seen.row
        })
        .collect();
    users.sort_by(|a, b| {
        b.last_seen
            .cmp(&a.last_seen)
            .then_with(|| a.user_id.cmp(&b.user_id))
    });
    Users {
        users,
        anonymous_events,
    }
}

/// What the tools page says beyond call counts.
#[derive(Debug, Serialize, PartialEq)]
pub struct Insights {
    /// Distinct tool names advertised (`listed_tools` of `tools/list` events) in the range.
    pub advertised_tools: u64,
    /// Advertised in the range and never called in it, the most recently advertised first.
    pub advertised_never_called: Vec<Advertised>,
    /// Tools called though not advertised (or unknown to the server), most called first.
    pub unknown_tools: Vec<UnknownTool>,
    /// What agents looked for and did not find (`missing_capability` events), newest first.
    pub asked_for: Vec<Ask>,
}

/// Calls of one tool flagged `unknown_tool`.
#[derive(Debug, Serialize, PartialEq)]
pub struct UnknownTool {
    /// The tool's name, as called.
    pub tool: String,
    /// Calls.
    pub calls: u64,
    /// The latest call (ms).
    pub last_seen: i64,
}

/// One `missing_capability` event: what an agent asked for.
#[derive(Debug, Serialize, PartialEq)]
pub struct Ask {
    /// The event id.
    pub id: String,
    /// When (ms).
    pub ts: i64,
    /// The agent's words: what it was looking for.
    pub user_intent: String,
    /// The tool it asked through (the layer's virtual tool).
    pub tool: Option<Arc<str>>,
    /// The client's label.
    pub client: Arc<str>,
    /// The user's id.
    pub user_id: Option<Arc<str>>,
    /// The session.
    pub session_id: Arc<str>,
}

/// The insights of a range: `rows` are its events, `advertised` the names its `tools/list`
/// answers carried (with when each was last advertised) and `asks` its latest
/// `missing_capability` events with their intents. Every list is bounded: at most
/// [`INSIGHT_ROWS`] tools per list and [`ASKS`] asks.
pub fn insights(
    rows: &[EventRow],
    advertised: Vec<Advertised>,
    asks: Vec<(EventRow, String)>,
) -> Insights {
    let mut called: HashSet<&str> = HashSet::new();
    let mut unknown: HashMap<&str, (u64, i64)> = HashMap::new();
    for row in rows.iter().filter(|row| is_tool_call(row)) {
        let Some(tool) = row.tool.as_deref() else {
            continue;
        };
        called.insert(tool);
        if row.unknown_tool {
            let entry = unknown.entry(tool).or_insert((0, row.ts));
            entry.0 += 1;
            entry.1 = entry.1.max(row.ts);
        }
    }
    let advertised_tools = advertised.len() as u64;
    let mut never_called: Vec<Advertised> = advertised
        .into_iter()
        .filter(|name| !called.contains(name.tool.as_str()))
        .collect();
    never_called.sort_by(|a, b| {
        b.last_advertised
            .cmp(&a.last_advertised)
            .then_with(|| a.tool.cmp(&b.tool))
    });
    never_called.truncate(INSIGHT_ROWS);
    let mut unknown_tools: Vec<UnknownTool> = unknown
        .into_iter()
        .map(|(tool, (calls, last_seen))| UnknownTool {
            tool: tool.to_owned(),
            calls,
            last_seen,
        })
        .collect();
    unknown_tools.sort_by(|a, b| {
        b.calls
            .cmp(&a.calls)
            .then_with(|| b.last_seen.cmp(&a.last_seen))
            .then_with(|| a.tool.cmp(&b.tool))
    });
    unknown_tools.truncate(INSIGHT_ROWS);
    let mut asks: Vec<(EventRow, String)> = asks
        .into_iter()
        .filter(|(row, _)| &*row.event_type == MISSING_CAPABILITY)
        .collect();
    asks.sort_by(|a, b| b.0.ts.cmp(&a.0.ts).then_with(|| b.0.seq.cmp(&a.0.seq)));
    asks.truncate(ASKS);
    let asked_for = asks
        .into_iter()
        .map(|(row, user_intent)| Ask {
            id: row.id,
            ts: row.ts,
            user_intent,
            tool: row.tool,
            client: row.client,
            user_id: row.user_id,
            session_id: row.session_id,
        })
        .collect();
    Insights {
        advertised_tools,
        advertised_never_called: never_called,
        unknown_tools,
        asked_for,
    }
}

/// One session's page.
#[derive(Debug, Serialize)]
pub struct SessionDetail {
    /// The session, summed over all its events.
    pub session: SessionRow,
    /// Every event, in time order.
    pub events: Vec<EventRow>,
}

/// The page of a session from all its events (in time order), or `None` if it has none.
pub fn session_detail(events: Vec<EventRow>) -> Option<SessionDetail> {
    let first = events.first()?;
    let last = events.last()?;
    let session = SessionRow {
        session_id: first.session_id.to_string(),
        user_id: events
            .iter()
            .find_map(|row| row.user_id.as_deref().map(String::from)),
        user_name: events
            .iter()
            .rev()
            .find_map(|row| row.user_name.as_deref().map(String::from)),
        client: first.client.to_string(),
        started: first.ts,
        ended: last.ts,
        events: events.len() as u64,
        tool_calls: events.iter().filter(|row| is_tool_call(row)).count() as u64,
        errors: events.iter().filter(|row| row.is_error).count() as u64,
        grouped_by: first.grouping,
    };
    Some(SessionDetail { session, events })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Grouping;

    fn row(
        ts: i64,
        tool: &str,
        ms: f64,
        error: bool,
        client: &str,
        user: Option<&str>,
    ) -> EventRow {
        EventRow {
            seq: ts,
            id: format!("e{ts}"),
            ts,
            event_type: "mcp:tools/call".into(),
            method: "tools/call".into(),
            tool: Some(tool.into()),
            outcome: if error { "tool_error" } else { "success" }.into(),
            is_error: error,
            duration_ms: ms,
            client: client.into(),
            client_name: None,
            user_id: user.map(Arc::from),
            user_name: None,
            session_id: format!("s{}", user.unwrap_or("anon")).into(),
            grouping: Grouping::Layer,
            unknown_tool: false,
            model: None,
        }
    }

    #[test]
    fn percentiles_are_nearest_rank_and_buckets_fit_the_range() {
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.95), Some(4.0));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(bucket_ms(0, 3_600_000), 60_000); // an hour: by the minute
        assert_eq!(bucket_ms(0, 86_400_000), 3_600_000); // a day: by the hour
        assert_eq!(bucket_ms(0, 30 * 86_400_000), 86_400_000); // a month: by the day
    }

    #[test]
    fn tools_count_errors_and_exact_percentiles() {
        let rows: Vec<EventRow> = (1..=10)
            .map(|n| {
                row(
                    n,
                    "search",
                    n as f64 * 10.0,
                    n % 5 == 0,
                    "Cursor",
                    Some("a"),
                )
            })
            .chain([row(11, "fetch", 5.0, false, "Claude Desktop", None)])
            .collect();
        let tools = tools(&rows);
        assert_eq!(tools[0].tool, "search");
        assert_eq!((tools[0].calls, tools[0].errors), (10, 2));
        assert_eq!(tools[0].error_rate, Some(0.2));
        assert_eq!(tools[0].p50_ms, Some(50.0));
        assert_eq!(tools[0].p95_ms, Some(100.0));
        assert_eq!(tools[0].outcomes["tool_error"], 2);
        assert_eq!(tools[1].clients[0].client, "Claude Desktop");
    }

    #[test]
    fn series_cover_the_range_with_empty_buckets() {
        let rows = vec![row(90_000, "t", 1.0, false, "c", None)];
        let page = overview(&rows, 0, 3_600_000);
        assert_eq!(page.series.len(), 60);
        assert_eq!(page.series[1].totals.events, 1);
        assert_eq!(page.series[0].totals.p50_ms, None);
        assert_eq!(page.totals.sessions, 1);
    }

    #[test]
    fn users_count_sessions_and_anonymous_events() {
        let rows = vec![
            row(1, "t", 1.0, false, "c", Some("alice")),
            row(2, "t", 1.0, true, "c", Some("alice")),
            row(3, "t", 1.0, false, "c", None),
        ];
        let page = users(&rows);
        assert_eq!(page.anonymous_events, 1);
        assert_eq!(page.users[0].events, 2);
        assert_eq!(page.users[0].errors, 1);
        assert_eq!(page.users[0].sessions, 1);
    }

    fn advertised(tool: &str, at: i64) -> Advertised {
        Advertised {
            tool: tool.into(),
            last_advertised: at,
        }
    }

    fn ask(ts: i64, intent: &str) -> (EventRow, String) {
        let mut row = row(ts, "get_more_tools", 1.0, false, "c", Some("alice"));
        row.event_type = MISSING_CAPABILITY.into();
        (row, intent.to_owned())
    }

    #[test]
    fn advertised_tools_never_called_are_those_without_a_call_in_the_range() {
        let mut unknown = row(5, "summarize_inbox", 1.0, true, "c", None);
        unknown.unknown_tool = true;
        let (mut asked, _) = ask(6, "ignored here");
        // A missing_capability event naming an advertised tool is no call of it.
        asked.tool = Some("delete_repo".into());
        let rows = vec![row(1, "search", 1.0, false, "c", None), unknown, asked];
        let page = insights(
            &rows,
            vec![
                advertised("search", 9),
                advertised("delete_repo", 3),
                advertised("<img src=x>", 7),
            ],
            Vec::new(),
        );
        assert_eq!(page.advertised_tools, 3);
        let never: Vec<(&str, i64)> = page
            .advertised_never_called
            .iter()
            .map(|name| (name.tool.as_str(), name.last_advertised))
            .collect();
        assert_eq!(never, [("<img src=x>", 7), ("delete_repo", 3)]);
        assert!(page.asked_for.is_empty());
    }

    #[test]
    fn unknown_tools_are_counted_with_their_last_call_most_called_first() {
        let flagged = |ts: i64, tool: &str| {
            let mut row = row(ts, tool, 1.0, true, "c", None);
            row.unknown_tool = true;
            row
        };
        let rows = vec![
            flagged(10, "summarize_inbox"),
            flagged(30, "summarize_inbox"),
            flagged(20, "send_email"),
            row(40, "search", 1.0, false, "c", None),
        ];
        let page = insights(&rows, Vec::new(), Vec::new());
        let unknown: Vec<(&str, u64, i64)> = page
            .unknown_tools
            .iter()
            .map(|tool| (tool.tool.as_str(), tool.calls, tool.last_seen))
            .collect();
        assert_eq!(unknown, [("summarize_inbox", 2, 30), ("send_email", 1, 20)]);
        assert_eq!(page.advertised_tools, 0);
        assert!(page.advertised_never_called.is_empty());
    }

    #[test]
    fn asks_are_the_newest_first_and_every_list_is_bounded() {
        let asks = (0..ASKS as i64 + 10)
            .map(|n| ask(n, &format!("need {n}")))
            .collect();
        let listed = (0..INSIGHT_ROWS as i64 + 10)
            .map(|n| advertised(&format!("tool_{n}"), n))
            .collect();
        let rows: Vec<EventRow> = (0..INSIGHT_ROWS as i64 + 10)
            .map(|n| {
                let mut row = row(n, &format!("odd_{n}"), 1.0, true, "c", None);
                row.unknown_tool = true;
                row
            })
            .collect();
        let page = insights(&rows, listed, asks);
        assert_eq!(page.asked_for.len(), ASKS);
        assert_eq!(page.asked_for[0].user_intent, format!("need {}", ASKS + 9));
        assert_eq!(page.asked_for[0].tool.as_deref(), Some("get_more_tools"));
        assert_eq!(page.advertised_never_called.len(), INSIGHT_ROWS);
        assert_eq!(page.unknown_tools.len(), INSIGHT_ROWS);
        assert_eq!(page.advertised_tools, INSIGHT_ROWS as u64 + 10);
    }
}
