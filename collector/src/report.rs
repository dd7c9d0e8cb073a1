//! What each dashboard page shows, computed from stored rows: totals, exact percentiles
//! (nearest rank), time series in even buckets, and tables per tool, client and user.
//!
//! Owns the numbers' definitions, so the dashboard and the JSON API agree. Pure: never
//! touches storage or HTTP.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use crate::store::{EventRow, SessionRow};

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

fn is_tool_call(row: &EventRow) -> bool {
    &*row.method == "tools/call"
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
}
