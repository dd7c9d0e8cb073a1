//! The SQLite schema, as numbered migrations recorded in `PRAGMA user_version`.
//!
//! Owns the schema's history: a migration, once released, is never edited; a change is a
//! new entry at the end. Never reads or writes events.

use rusqlite::Connection;

/// Migration `n` (1-based) brings the schema from version `n - 1` to `n`.
const MIGRATIONS: &[&str] = &[
    // 1: events, their JSON, batch ids, session numbers, and the collector's sessions.
    // Events are indexed by session number, not id: numbers grow as sessions start, so
    // the events of active sessions land on the index's last pages.
    "CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        ts INTEGER NOT NULL,
        event_type TEXT NOT NULL,
        method TEXT NOT NULL,
        tool TEXT,
        outcome TEXT NOT NULL,
        is_error INTEGER NOT NULL,
        duration_ms REAL NOT NULL,
        client TEXT NOT NULL,
        client_name TEXT,
        user_id TEXT,
        user_name TEXT,
        session TEXT NOT NULL,
        session_n INTEGER NOT NULL,
        grouping INTEGER NOT NULL,
        received_at INTEGER NOT NULL
    );
    CREATE INDEX events_ts ON events(ts);
    CREATE INDEX events_session ON events(session_n, ts);
    CREATE TABLE session_keys (n INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);
    CREATE TABLE event_json (seq INTEGER PRIMARY KEY, json TEXT NOT NULL);
    CREATE TABLE batches (
        batch_id TEXT PRIMARY KEY,
        received_at INTEGER NOT NULL,
        events INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX batches_received ON batches(received_at);
    CREATE TABLE pair_sessions (
        id INTEGER PRIMARY KEY,
        pair TEXT NOT NULL,
        start_ts INTEGER NOT NULL,
        end_ts INTEGER NOT NULL
    );
    CREATE INDEX pair_sessions_pair ON pair_sessions(pair, start_ts);",
];

/// The schema version this build writes.
pub(crate) const CURRENT: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`CURRENT`], each step in its own transaction. A database from
/// a newer collector is refused rather than written with an older schema.
pub(crate) fn migrate(connection: &mut Connection) -> rusqlite::Result<Result<(), String>> {
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > CURRENT {
        return Ok(Err(format!(
            "the database has schema version {version}, newer than this collector's {CURRENT}: \
             run a newer collector"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let transaction = connection.transaction()?;
        transaction.execute_batch(sql)?;
        transaction.pragma_update(None, "user_version", index as i64 + 1)?;
        transaction.commit()?;
        tracing::info!(version = index + 1, "database schema migrated");
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_a_no_op_and_a_newer_schema_is_refused() {
        let mut connection = Connection::open_in_memory().unwrap();
        migrate(&mut connection).unwrap().unwrap();
        migrate(&mut connection).unwrap().unwrap();
        connection
            .pragma_update(None, "user_version", CURRENT + 1)
            .unwrap();
        assert!(migrate(&mut connection).unwrap().is_err());
    }
}
