//! [`SqliteStore`]: one SQLite file in WAL mode, one writing connection and a small pool
//! of reading ones.
//!
//! Owns the SQL. A commit is durable when it returns (`synchronous = FULL`), so the
//! collector may answer 2xx. Never aggregates beyond what a `GROUP BY` gives cheaply.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params, params_from_iter};

use super::{
    Advertised, Committed, EventRow, Facets, Filter, Grouping, SessionRow, Store, StoreError,
    migrations,
};
use crate::wire::{IncomingBatch, IncomingEvent};

/// Reading connections kept open.
const READERS: usize = 4;

const ROW_COLUMNS: &str = "seq, id, ts, event_type, method, tool, outcome, is_error, \
                           duration_ms, client, client_name, user_id, user_name, session, grouping, \
                           unknown_tool, model";
/// The longest `user_intent` read back, in characters.
const MAX_INTENT_CHARS: i64 = 1024;

/// The default store: a single SQLite file, created (and migrated) on first open.
///
/// ```
/// use std::time::Duration;
/// use mcp_analytics_collector::store::{SqliteStore, Store};
///
/// let dir = std::env::temp_dir().join(format!("doc-store-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let store = SqliteStore::open(dir.join("analytics.db"), Duration::from_secs(30 * 60))?;
/// assert_eq!(store.count()?, 0);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SqliteStore {
    writer: Mutex<Connection>,
    /// `None` for an in-memory database, which only the writer's connection can see.
    readers: Option<Readers>,
    gap_ms: i64,
}

struct Readers {
    path: std::path::PathBuf,
    idle: Mutex<Vec<Connection>>,
}

fn fail(error: impl std::fmt::Display) -> StoreError {
    StoreError(error.to_string())
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`; events of one user and client less than
    /// `session_gap` apart share a session.
    pub fn open(path: impl AsRef<Path>, session_gap: Duration) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut writer = Connection::open(&path).map_err(fail)?;
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA busy_timeout = 5000;
                 PRAGMA cache_size = -65536;
                 PRAGMA wal_autocheckpoint = 16384;
                 PRAGMA journal_size_limit = 268435456;",
            )
            .map_err(fail)?;
        migrations::migrate(&mut writer)
            .map_err(fail)?
            .map_err(StoreError)?;
        Ok(Self {
            writer: Mutex::new(writer),
            readers: Some(Readers {
                path,
                idle: Mutex::new(Vec::new()),
            }),
            gap_ms: gap_ms(session_gap),
        })
    }

    /// A database in memory, gone with the store (for tests and examples).
    pub fn open_in_memory(session_gap: Duration) -> Result<Self, StoreError> {
        let mut writer = Connection::open_in_memory().map_err(fail)?;
        migrations::migrate(&mut writer)
            .map_err(fail)?
            .map_err(StoreError)?;
        Ok(Self {
            writer: Mutex::new(writer),
            readers: None,
            gap_ms: gap_ms(session_gap),
        })
    }

    /// Runs `read` on a reading connection (the writer's, in memory).
    fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let Some(readers) = &self.readers else {
            let writer = self.writer.lock().map_err(fail)?;
            return read(&writer).map_err(fail);
        };
        let pooled = readers.idle.lock().map_err(fail)?.pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => {
                let connection = Connection::open_with_flags(
                    &readers.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(fail)?;
                connection
                    .execute_batch(
                        "PRAGMA busy_timeout = 5000;
                         PRAGMA cache_size = -32768;
                         PRAGMA temp_store = MEMORY;
                         PRAGMA mmap_size = 1073741824;",
                    )
                    .map_err(fail)?;
                connection
            }
        };
        let result = read(&connection).map_err(fail);
        let mut idle = readers.idle.lock().map_err(fail)?;
        if idle.len() < READERS {
            idle.push(connection);
        }
        result
    }
}

fn gap_ms(gap: Duration) -> i64 {
    i64::try_from(gap.as_millis()).unwrap_or(i64::MAX / 4)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

/// The (user, client) pair of the collector's grouping, unambiguous whatever the strings.
fn pair_key(user: &str, client: &str) -> String {
    format!("{}:{user}{client}", user.len())
}

fn collector_session(id: i64) -> String {
    format!("col_{id}")
}

/// Puts an event at `ts` into its pair's sessions: sessions are the runs of the pair's
/// events with gaps of at most `gap`, kept as [start, end] intervals. A new event joins
/// the interval it falls within `gap` of, or bridges (merges) the two around it, or starts
/// a new one; the result depends only on the set of events, never on their order.
fn place(transaction: &Connection, pair: &str, ts: i64, gap: i64) -> rusqlite::Result<i64> {
    let near: Vec<(i64, i64, i64)> = {
        let mut statement = transaction.prepare_cached(
            "SELECT id, start_ts, end_ts FROM pair_sessions
             WHERE pair = ?1 AND start_ts <= ?2 ORDER BY start_ts DESC LIMIT 2",
        )?;
        let rows = statement.query_map(params![pair, ts.saturating_add(gap)], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
        let mut near = rows.collect::<rusqlite::Result<Vec<(i64, i64, i64)>>>()?;
        // Disjoint intervals in start order: only the latest two can be within reach.
        near.retain(|&(_, _, end)| end >= ts.saturating_sub(gap));
        near.reverse();
        near
    };
    match near.as_slice() {
        [] => {
            transaction
                .prepare_cached(
                    "INSERT INTO pair_sessions (pair, start_ts, end_ts) VALUES (?1, ?2, ?2)",
                )?
                .execute(params![pair, ts])?;
            Ok(transaction.last_insert_rowid())
        }
        [(id, start, end)] => {
            if ts < *start || ts > *end {
                transaction
                    .prepare_cached(
                        "UPDATE pair_sessions SET start_ts = ?2, end_ts = ?3 WHERE id = ?1",
                    )?
                    .execute(params![id, ts.min(*start), ts.max(*end)])?;
            }
            Ok(*id)
        }
        [(keep, start, _), (other, _, end), ..] => {
            transaction
                .prepare_cached(
                    "UPDATE pair_sessions SET start_ts = ?2, end_ts = ?3 WHERE id = ?1",
                )?
                .execute(params![keep, ts.min(*start), ts.max(*end)])?;
            transaction
                .prepare_cached("UPDATE events SET session = ?1 WHERE session = ?2")?
                .execute(params![collector_session(*keep), collector_session(*other)])?;
            transaction
                .prepare_cached("DELETE FROM pair_sessions WHERE id = ?1")?
                .execute(params![other])?;
            Ok(*keep)
        }
    }
}

/// The number of the session named `key`, given at first sight.
fn session_number(transaction: &Connection, key: &str) -> rusqlite::Result<i64> {
    let known = transaction
        .prepare_cached("SELECT n FROM session_keys WHERE key = ?1")?
        .query_row(params![key], |row| row.get(0))
        .optional()?;
    if let Some(n) = known {
        return Ok(n);
    }
    transaction
        .prepare_cached("INSERT INTO session_keys (key) VALUES (?1)")?
        .execute(params![key])?;
    Ok(transaction.last_insert_rowid())
}

fn insert_event(
    transaction: &Connection,
    event: &IncomingEvent,
    gap: i64,
    received_at: i64,
) -> rusqlite::Result<bool> {
    let known = transaction
        .prepare_cached("SELECT 1 FROM events WHERE id = ?1")?
        .exists(params![event.id])?;
    if known {
        return Ok(false);
    }
    let (session, grouping) = match (&event.session_id, &event.user_id) {
        _ if event.event_type == "identify" => (event.id.clone(), Grouping::Identify),
        (Some(session), _) => (session.clone(), Grouping::Layer),
        (None, Some(user)) => {
            let pair = pair_key(user, event.client_name.as_deref().unwrap_or_default());
            let id = place(transaction, &pair, event.ts, gap)?;
            (collector_session(id), Grouping::Collector)
        }
        (None, None) => (event.id.clone(), Grouping::Single),
    };
    let session_n = session_number(transaction, &session)?;
    let listed_tools = event
        .listed_tools
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))?;
    transaction
        .prepare_cached(
            "INSERT INTO events (id, ts, event_type, method, tool, outcome, is_error,
                 duration_ms, client, client_name, user_id, user_name, session, session_n,
                 grouping, received_at, listed_tools, unknown_tool, user_intent, model)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                 ?17, ?18, ?19, ?20)",
        )?
        .execute(params![
            event.id,
            event.ts,
            event.event_type,
            event.method,
            event.tool,
            event.outcome,
            event.is_error,
            event.duration_ms,
            event.client,
            event.client_name,
            event.user_id,
            event.user_name,
            session,
            session_n,
            grouping.code(),
            received_at,
            listed_tools,
            event.unknown_tool,
            event.user_intent,
            event.model,
        ])?;
    let seq = transaction.last_insert_rowid();
    transaction
        .prepare_cached("INSERT INTO event_json (seq, json) VALUES (?1, ?2)")?
        .execute(params![seq, event.json])?;
    Ok(true)
}

fn commit_batch(
    transaction: &Connection,
    batch: &IncomingBatch,
    gap: i64,
    received_at: i64,
) -> rusqlite::Result<Committed> {
    let replayed = transaction
        .prepare_cached("SELECT 1 FROM batches WHERE batch_id = ?1")?
        .exists(params![batch.batch_id])?;
    if replayed {
        return Ok(Committed {
            replayed: true,
            ..Committed::default()
        });
    }
    let mut committed = Committed::default();
    for event in &batch.events {
        if insert_event(transaction, event, gap, received_at)? {
            committed.stored += 1;
        } else {
            committed.duplicates += 1;
        }
    }
    transaction
        .prepare_cached("INSERT INTO batches (batch_id, received_at, events) VALUES (?1, ?2, ?3)")?
        .execute(params![
            batch.batch_id,
            received_at,
            batch.events.len() as i64
        ])?;
    Ok(committed)
}

/// A row mapper for one read, sharing names across its rows.
fn rows_with_shared_names() -> impl FnMut(&Row<'_>) -> rusqlite::Result<EventRow> {
    let mut names = Names::default();
    move |row| names.event_row(row)
}

/// Shares one copy of each repeated string (tools, clients, users, sessions) across the
/// rows of one read.
#[derive(Default)]
struct Names(HashMap<Box<str>, Arc<str>>);

impl Names {
    fn name(&mut self, row: &Row<'_>, column: usize) -> rusqlite::Result<Option<Arc<str>>> {
        let Some(text) = row.get_ref(column)?.as_str_or_null()? else {
            return Ok(None);
        };
        if let Some(shared) = self.0.get(text) {
            return Ok(Some(Arc::clone(shared)));
        }
        let shared: Arc<str> = Arc::from(text);
        self.0.insert(text.into(), Arc::clone(&shared));
        Ok(Some(shared))
    }

    fn required(&mut self, row: &Row<'_>, column: usize) -> rusqlite::Result<Arc<str>> {
        self.name(row, column)?
            .ok_or(rusqlite::Error::InvalidColumnType(
                column,
                "NULL".into(),
                rusqlite::types::Type::Null,
            ))
    }

    fn event_row(&mut self, row: &Row<'_>) -> rusqlite::Result<EventRow> {
        Ok(EventRow {
            seq: row.get(0)?,
            id: row.get(1)?,
            ts: row.get(2)?,
            event_type: self.required(row, 3)?,
            method: self.required(row, 4)?,
            tool: self.name(row, 5)?,
            outcome: self.required(row, 6)?,
            is_error: row.get(7)?,
            duration_ms: row.get(8)?,
            client: self.required(row, 9)?,
            client_name: self.name(row, 10)?,
            user_id: self.name(row, 11)?,
            user_name: self.name(row, 12)?,
            session_id: self.required(row, 13)?,
            grouping: Grouping::from_code(row.get(14)?),
            unknown_tool: row.get(15)?,
            model: self.name(row, 16)?,
        })
    }
}

/// `WHERE` conditions for a filter's names (and range, when `with_range`), and their
/// parameters.
fn conditions(filter: &Filter, with_range: bool) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut sql = vec!["grouping < 3"];
    let mut values = Vec::new();
    if with_range {
        sql.push("ts >= ? AND ts < ?");
        values.push(Value::Integer(filter.from));
        values.push(Value::Integer(filter.to));
    }
    for (column, value) in [
        ("tool = ?", &filter.tool),
        ("client = ?", &filter.client),
        ("user_id = ?", &filter.user),
    ] {
        if let Some(value) = value {
            sql.push(column);
            values.push(Value::Text(value.clone()));
        }
    }
    (sql.join(" AND "), values)
}

impl Store for SqliteStore {
    fn commit(
        &self,
        batches: &[IncomingBatch],
    ) -> Result<Vec<Result<Committed, StoreError>>, StoreError> {
        let mut writer = self.writer.lock().map_err(fail)?;
        let received_at = now_ms();
        let mut transaction = writer.transaction().map_err(fail)?;
        let mut results = Vec::with_capacity(batches.len());
        for batch in batches {
            // Each batch all or nothing: one that fails is rolled back alone.
            let mut savepoint = transaction.savepoint().map_err(fail)?;
            savepoint.set_drop_behavior(rusqlite::DropBehavior::Rollback);
            match commit_batch(&savepoint, batch, self.gap_ms, received_at) {
                Ok(committed) => {
                    savepoint.commit().map_err(fail)?;
                    results.push(Ok(committed));
                }
                Err(error) => results.push(Err(fail(error))),
            }
        }
        transaction.commit().map_err(fail)?;
        Ok(results)
    }

    fn delete_before(&self, cutoff: i64, limit: usize) -> Result<u64, StoreError> {
        let mut writer = self.writer.lock().map_err(fail)?;
        let transaction = writer.transaction().map_err(fail)?;
        let deleted = transaction
            .execute(
                "DELETE FROM event_json WHERE seq IN
                     (SELECT seq FROM events WHERE ts < ?1 ORDER BY ts LIMIT ?2)",
                params![cutoff, limit as i64],
            )
            .and_then(|_| {
                transaction.execute(
                    "DELETE FROM events WHERE seq IN
                         (SELECT seq FROM events WHERE ts < ?1 ORDER BY ts LIMIT ?2)",
                    params![cutoff, limit as i64],
                )
            })
            .map_err(fail)?;
        if deleted < limit {
            transaction
                .execute(
                    "DELETE FROM pair_sessions WHERE end_ts < ?1",
                    params![cutoff],
                )
                .and_then(|_| {
                    transaction.execute(
                        "DELETE FROM batches WHERE received_at < ?1",
                        params![cutoff],
                    )
                })
                .and_then(|_| {
                    transaction.execute(
                        "DELETE FROM session_keys WHERE NOT EXISTS
                             (SELECT 1 FROM events WHERE session_n = session_keys.n)",
                        [],
                    )
                })
                .map_err(fail)?;
        }
        transaction.commit().map_err(fail)?;
        Ok(deleted as u64)
    }

    fn scan(&self, filter: &Filter, limit: usize) -> Result<Vec<EventRow>, StoreError> {
        let (conditions, mut values) = conditions(filter, true);
        values.push(rusqlite::types::Value::Integer(
            i64::try_from(limit).unwrap_or(i64::MAX),
        ));
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {ROW_COLUMNS} FROM events WHERE {conditions} LIMIT ?"
            ))?;
            statement
                .query_map(params_from_iter(values), rows_with_shared_names())?
                .collect()
        })
    }

    fn session(&self, session_id: &str) -> Result<Vec<EventRow>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {ROW_COLUMNS} FROM events
                 WHERE session_n = (SELECT n FROM session_keys WHERE key = ?1) AND grouping < 3
                 ORDER BY ts, seq"
            ))?;
            statement
                .query_map(params![session_id], rows_with_shared_names())?
                .collect()
        })
    }

    fn sessions(&self, filter: &Filter, limit: usize) -> Result<Vec<SessionRow>, StoreError> {
        let (conditions, mut values) = conditions(filter, true);
        values.push(rusqlite::types::Value::Integer(limit as i64));
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT session, max(user_id), max(user_name), max(client), min(ts), max(ts),
                        count(*), sum(method = 'tools/call'), sum(is_error), max(grouping)
                 FROM events WHERE {conditions}
                 GROUP BY session ORDER BY min(ts) DESC, session LIMIT ?"
            ))?;
            statement
                .query_map(params_from_iter(values), |row| {
                    Ok(SessionRow {
                        session_id: row.get(0)?,
                        user_id: row.get(1)?,
                        user_name: row.get(2)?,
                        client: row.get(3)?,
                        started: row.get(4)?,
                        ended: row.get(5)?,
                        events: row.get::<_, i64>(6)? as u64,
                        tool_calls: row.get::<_, i64>(7)? as u64,
                        errors: row.get::<_, i64>(8)? as u64,
                        grouped_by: Grouping::from_code(row.get(9)?),
                    })
                })?
                .collect()
        })
    }

    fn event(&self, id: &str) -> Result<Option<(EventRow, String)>, StoreError> {
        self.read(|connection| {
            let row = connection
                .prepare_cached(&format!("SELECT {ROW_COLUMNS} FROM events WHERE id = ?1"))?
                .query_row(params![id], |row| Names::default().event_row(row))
                .optional()?;
            let Some(row) = row else { return Ok(None) };
            let json: String = connection
                .prepare_cached("SELECT json FROM event_json WHERE seq = ?1")?
                .query_row(params![row.seq], |found| found.get(0))?;
            Ok(Some((row, json)))
        })
    }

    fn tail(
        &self,
        after: Option<i64>,
        limit: usize,
        filter: &Filter,
    ) -> Result<Vec<EventRow>, StoreError> {
        let (conditions, mut values) = conditions(filter, false);
        let sql = match after {
            Some(after) => {
                values.push(rusqlite::types::Value::Integer(after));
                format!(
                    "SELECT {ROW_COLUMNS} FROM events WHERE {conditions} AND seq > ?
                     ORDER BY seq LIMIT ?"
                )
            }
            None => format!(
                "SELECT * FROM (SELECT {ROW_COLUMNS} FROM events WHERE {conditions}
                 ORDER BY seq DESC LIMIT ?) ORDER BY seq"
            ),
        };
        values.push(rusqlite::types::Value::Integer(limit as i64));
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&sql)?;
            statement
                .query_map(params_from_iter(values), rows_with_shared_names())?
                .collect()
        })
    }

    fn facets(&self, filter: &Filter, limit: usize) -> Result<Facets, StoreError> {
        let names = Filter {
            from: filter.from,
            to: filter.to,
            ..Filter::default()
        };
        let (conditions, values) = conditions(&names, true);
        self.read(|connection| {
            // One pass; a name is copied once, the first time it is seen.
            let mut seen: [HashMap<Box<str>, u64>; 3] = Default::default();
            let mut statement = connection.prepare_cached(&format!(
                "SELECT tool, client, user_id FROM events WHERE {conditions}"
            ))?;
            let mut rows = statement.query(params_from_iter(values.iter()))?;
            while let Some(row) = rows.next()? {
                for (column, counts) in seen.iter_mut().enumerate() {
                    if let Some(name) = row.get_ref(column)?.as_str_or_null()? {
                        match counts.get_mut(name) {
                            Some(count) => *count += 1,
                            None => {
                                counts.insert(name.into(), 1);
                            }
                        }
                    }
                }
            }
            let [tools, clients, users] = seen.map(|counts| {
                let mut names: Vec<(Box<str>, u64)> = counts.into_iter().collect();
                names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                names
                    .into_iter()
                    .take(limit)
                    .map(|(name, _)| name.into_string())
                    .collect()
            });
            Ok(Facets {
                tools,
                clients,
                users,
            })
        })
    }

    fn advertised(&self, filter: &Filter, limit: usize) -> Result<Vec<Advertised>, StoreError> {
        use rusqlite::types::Value;
        // The tool filter names a listed tool, not the `tools/list` event's own.
        let names = Filter {
            tool: None,
            ..filter.clone()
        };
        let (conditions, mut values) = conditions(&names, true);
        let only = match &filter.tool {
            Some(tool) => {
                values.push(Value::Text(tool.clone()));
                "AND listed.value = ?"
            }
            None => "",
        };
        values.push(Value::Integer(limit as i64));
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT listed.value, max(events.ts)
                 FROM events, json_each(events.listed_tools) AS listed
                 WHERE {conditions} AND events.listed_tools IS NOT NULL
                     AND events.method = 'tools/list' AND listed.type = 'text' {only}
                 GROUP BY listed.value ORDER BY max(events.ts) DESC, listed.value LIMIT ?"
            ))?;
            statement
                .query_map(params_from_iter(values), |row| {
                    Ok(Advertised {
                        tool: row.get(0)?,
                        last_advertised: row.get(1)?,
                    })
                })?
                .collect()
        })
    }

    fn asks(&self, filter: &Filter, limit: usize) -> Result<Vec<(EventRow, String)>, StoreError> {
        let (conditions, mut values) = conditions(filter, true);
        values.push(rusqlite::types::Value::Integer(limit as i64));
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {ROW_COLUMNS}, substr(user_intent, 1, {MAX_INTENT_CHARS}) FROM events
                 WHERE {conditions} AND event_type = 'missing_capability'
                     AND user_intent IS NOT NULL
                 ORDER BY ts DESC, seq DESC LIMIT ?"
            ))?;
            let mut names = Names::default();
            statement
                .query_map(params_from_iter(values), |row| {
                    Ok((names.event_row(row)?, row.get(17)?))
                })?
                .collect()
        })
    }

    fn span(&self) -> Result<Option<(i64, i64)>, StoreError> {
        self.read(|connection| {
            connection.query_row("SELECT min(ts), max(ts) FROM events", [], |row| {
                Ok(row
                    .get::<_, Option<i64>>(0)?
                    .zip(row.get::<_, Option<i64>>(1)?))
            })
        })
    }

    fn count(&self) -> Result<u64, StoreError> {
        self.read(|connection| {
            connection.query_row("SELECT count(*) FROM events", [], |row| {
                row.get::<_, i64>(0)
            })
        })
        .map(|count| count as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::IncomingEvent;

    const MINUTE: i64 = 60_000;

    fn event(id: &str, user: Option<&str>, client: &str, minute: i64) -> IncomingEvent {
        IncomingEvent {
            id: id.into(),
            ts: minute * MINUTE,
            event_type: "mcp:tools/call".into(),
            method: "tools/call".into(),
            tool: Some("search".into()),
            outcome: "success".into(),
            is_error: false,
            duration_ms: 1.0,
            client: client.into(),
            client_name: Some(client.into()),
            user_id: user.map(String::from),
            user_name: None,
            session_id: None,
            listed_tools: None,
            unknown_tool: false,
            user_intent: None,
            model: None,
            json: format!(r#"{{"id":"{id}"}}"#),
        }
    }

    fn batch(id: &str, events: Vec<IncomingEvent>) -> IncomingBatch {
        IncomingBatch {
            batch_id: id.into(),
            events,
            bytes: 0,
        }
    }

    /// The session of each event id, as letters in order of first appearance.
    fn sessions_of(store: &SqliteStore, ids: &[&str]) -> String {
        let mut seen: Vec<String> = Vec::new();
        ids.iter()
            .map(|id| {
                let (row, _) = store.event(id).unwrap().unwrap();
                let index = seen.iter().position(|known| **known == *row.session_id);
                let index = index.unwrap_or_else(|| {
                    seen.push(row.session_id.to_string());
                    seen.len() - 1
                });
                char::from(b'A' + index as u8)
            })
            .collect()
    }

    fn scenario() -> Vec<IncomingEvent> {
        vec![
            event("a1", Some("alice"), "claude", 600),
            event("b1", Some("bob"), "cursor", 602),
            event("a2", Some("alice"), "claude", 615),
            event("a3", Some("alice"), "cursor", 620),
            event("a4", Some("alice"), "claude", 655),
            event("x1", None, "claude", 656),
            event("x2", None, "claude", 657),
        ]
    }

    #[test]
    fn sessions_are_the_same_in_every_arrival_order() {
        let ids = ["a1", "b1", "a2", "a3", "a4", "x1", "x2"];
        let orders: Vec<Vec<usize>> = vec![
            (0..7).collect(),
            (0..7).rev().collect(),
            vec![4, 0, 6, 2, 1, 5, 3],
        ];
        for order in orders {
            let store = SqliteStore::open_in_memory(Duration::from_secs(30 * 60)).unwrap();
            let events = scenario();
            for (n, index) in order.iter().enumerate() {
                store
                    .commit(&[batch(&format!("b{n}"), vec![events[*index].clone()])])
                    .unwrap();
            }
            assert_eq!(sessions_of(&store, &ids), "ABACDEF", "order {order:?}");
        }
    }

    #[test]
    fn a_late_event_bridging_two_sessions_merges_them() {
        let store = SqliteStore::open_in_memory(Duration::from_secs(30 * 60)).unwrap();
        let events = vec![
            event("e1", Some("u"), "c", 0),
            event("e3", Some("u"), "c", 50),
        ];
        store.commit(&[batch("one", events)]).unwrap();
        assert_eq!(sessions_of(&store, &["e1", "e3"]), "AB");
        store
            .commit(&[batch("two", vec![event("e2", Some("u"), "c", 25)])])
            .unwrap();
        assert_eq!(sessions_of(&store, &["e1", "e2", "e3"]), "AAA");
    }

    #[test]
    fn a_retried_batch_and_a_repeated_event_are_stored_once() {
        let store = SqliteStore::open_in_memory(Duration::from_secs(30 * 60)).unwrap();
        let first = store
            .commit(&[batch("b", vec![event("e1", None, "c", 0)])])
            .unwrap();
        assert_eq!(first[0].as_ref().unwrap().stored, 1);
        let again = store
            .commit(&[
                batch("b", vec![event("e1", None, "c", 0)]),
                batch(
                    "c",
                    vec![event("e1", None, "c", 0), event("e2", None, "c", 0)],
                ),
            ])
            .unwrap();
        assert!(again[0].as_ref().unwrap().replayed);
        let second = again[1].as_ref().unwrap();
        assert_eq!((second.stored, second.duplicates), (1, 1));
        assert_eq!(store.count().unwrap(), 2);
    }

    #[test]
    fn retention_deletes_old_events_and_their_json() {
        let store = SqliteStore::open_in_memory(Duration::from_secs(30 * 60)).unwrap();
        let events = (0..12_000)
            .map(|n| event(&format!("e{n}"), Some("u"), "c", n))
            .collect();
        store.commit(&[batch("b", events)]).unwrap();
        assert_eq!(
            store.delete_before(11_000 * MINUTE, 10_000).unwrap(),
            10_000
        );
        assert_eq!(store.delete_before(11_000 * MINUTE, 10_000).unwrap(), 1_000);
        assert_eq!(store.delete_before(11_000 * MINUTE, 10_000).unwrap(), 0);
        assert_eq!(store.count().unwrap(), 1_000);
        assert!(store.event("e0").unwrap().is_none());
        assert!(store.event("e11000").unwrap().is_some());
    }

    #[test]
    fn advertised_names_and_asks_are_read_back_by_range_and_names() {
        let store = SqliteStore::open_in_memory(Duration::from_secs(30 * 60)).unwrap();
        let list = |id: &str, client: &str, minute: i64, names: &[&str]| IncomingEvent {
            event_type: "mcp:tools/list".into(),
            method: "tools/list".into(),
            tool: None,
            listed_tools: Some(names.iter().map(|name| (*name).to_owned()).collect()),
            ..event(id, Some("u"), client, minute)
        };
        let ask = |id: &str, minute: i64, intent: &str| IncomingEvent {
            event_type: "missing_capability".into(),
            tool: Some("get_more_tools".into()),
            user_intent: Some(intent.into()),
            model: Some("some-model".into()),
            ..event(id, Some("u"), "claude", minute)
        };
        let unknown = IncomingEvent {
            unknown_tool: true,
            ..event("c1", Some("u"), "claude", 12)
        };
        let events = vec![
            list("l1", "claude", 10, &["search", "delete_repo"]),
            list("l2", "cursor", 20, &["search", "write"]),
            list("l3", "claude", 99, &["late"]),
            ask("a1", 11, "send an email"),
            ask("a2", 13, "book a flight"),
            unknown,
        ];
        store.commit(&[batch("b", events)]).unwrap();
        let range = Filter {
            from: 0,
            to: 50 * MINUTE,
            ..Filter::default()
        };
        let advertised = |filter: &Filter| -> Vec<(String, i64)> {
            store
                .advertised(filter, 100)
                .unwrap()
                .into_iter()
                .map(|row| (row.tool, row.last_advertised / MINUTE))
                .collect()
        };
        assert_eq!(
            advertised(&range),
            [
                ("search".to_owned(), 20),
                ("write".to_owned(), 20),
                ("delete_repo".to_owned(), 10)
            ]
        );
        let claude = Filter {
            client: Some("claude".into()),
            ..range.clone()
        };
        assert_eq!(
            advertised(&claude),
            [("delete_repo".to_owned(), 10), ("search".to_owned(), 10)]
        );
        let only_write = Filter {
            tool: Some("write".into()),
            ..range.clone()
        };
        assert_eq!(advertised(&only_write), [("write".to_owned(), 20)]);
        assert_eq!(store.advertised(&range, 1).unwrap().len(), 1);

        let asks = store.asks(&range, 10).unwrap();
        let intents: Vec<&str> = asks.iter().map(|(_, intent)| intent.as_str()).collect();
        assert_eq!(intents, ["book a flight", "send an email"]);
        assert_eq!(asks[0].0.model.as_deref(), Some("some-model"));
        assert_eq!(store.asks(&range, 1).unwrap().len(), 1);
        let (row, _) = store.event("c1").unwrap().unwrap();
        assert!(row.unknown_tool);
    }

    /// The reference rule: per (user, client), events sorted by time, a new session at
    /// every gap over the window; anonymous events alone. Returns each event's partner set.
    fn reference_partition(events: &[IncomingEvent], gap: i64) -> Vec<Vec<String>> {
        let mut pairs: std::collections::BTreeMap<(String, String), Vec<&IncomingEvent>> =
            std::collections::BTreeMap::new();
        let mut sessions = Vec::new();
        for event in events {
            match &event.user_id {
                Some(user) => pairs
                    .entry((user.clone(), event.client.clone()))
                    .or_default()
                    .push(event),
                None => sessions.push(vec![event.id.clone()]),
            }
        }
        for (_, mut pair) in pairs {
            pair.sort_by_key(|event| event.ts);
            let mut current: Vec<String> = Vec::new();
            let mut last = i64::MIN;
            for event in pair {
                if !current.is_empty() && event.ts - last > gap {
                    sessions.push(std::mem::take(&mut current));
                }
                current.push(event.id.clone());
                last = event.ts;
            }
            sessions.push(current);
        }
        normalise(sessions)
    }

    fn normalise(mut sessions: Vec<Vec<String>>) -> Vec<Vec<String>> {
        for session in &mut sessions {
            session.sort();
        }
        sessions.sort();
        sessions
    }

    fn stored_partition(store: &SqliteStore) -> Vec<Vec<String>> {
        let all = Filter {
            from: i64::MIN,
            to: i64::MAX,
            ..Filter::default()
        };
        let mut by_session: std::collections::BTreeMap<String, Vec<String>> =
            std::collections::BTreeMap::new();
        for row in store.scan(&all, usize::MAX).unwrap() {
            by_session
                .entry(row.session_id.to_string())
                .or_default()
                .push(row.id);
        }
        normalise(by_session.into_values().collect())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever the arrival order and batching, the collector's sessions are the
        /// reference rule's.
        #[test]
        fn sessions_equal_gap_segmentation_in_any_arrival_order(
            spec in proptest::collection::vec((0u8..4, 0u8..2, 0i64..240), 1..60),
            order in proptest::collection::vec(proptest::prelude::any::<u64>(), 60),
            split in 1usize..8,
        ) {
            let gap = 30 * MINUTE;
            let clients = ["claude", "cursor"];
            let events: Vec<IncomingEvent> = spec
                .iter()
                .enumerate()
                .map(|(n, (user, client, minute))| {
                    let user = (*user > 0).then(|| format!("u{user}"));
                    event(&format!("e{n}"), user.as_deref(), clients[*client as usize], *minute)
                })
                .collect();
            let mut shuffled: Vec<(u64, IncomingEvent)> =
                order.iter().copied().zip(events.iter().cloned()).collect();
            shuffled.sort_by_key(|(key, _)| *key);
            let shuffled: Vec<IncomingEvent> = shuffled.into_iter().map(|(_, e)| e).collect();
            let store = SqliteStore::open_in_memory(Duration::from_millis(gap as u64)).unwrap();
            for (n, chunk) in shuffled.chunks(split).enumerate() {
                store.commit(&[batch(&format!("b{n}"), chunk.to_vec())]).unwrap();
            }
            proptest::prop_assert_eq!(stored_partition(&store), reference_partition(&events, gap));
        }
    }
}
