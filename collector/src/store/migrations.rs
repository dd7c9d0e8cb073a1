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
    // 2: what the tools page reads beyond calls: the names a `tools/list` answer advertised
    // (a JSON array), the unknown-tool flag, the agent's intent and the model. Events
    // stored before keep these fields in their JSON: the tool fields of `tools/list` and
    // `tools/call` events are copied from it. Two small partial indexes find the
    // `tools/list` answers and the `missing_capability` events of a range.
    "ALTER TABLE events ADD COLUMN listed_tools TEXT;
    ALTER TABLE events ADD COLUMN unknown_tool INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE events ADD COLUMN user_intent TEXT;
    ALTER TABLE events ADD COLUMN model TEXT;
    UPDATE events SET
        listed_tools = CASE WHEN json_type(stored.json, '$.listed_tools') = 'array'
            THEN json_extract(stored.json, '$.listed_tools') END,
        unknown_tool = json_type(stored.json, '$.unknown_tool') IS 'true',
        user_intent = CASE WHEN json_type(stored.json, '$.user_intent') = 'text'
            THEN json_extract(stored.json, '$.user_intent') END
    FROM event_json AS stored
    WHERE stored.seq = events.seq
        AND events.method IN ('tools/list', 'tools/call')
        AND json_valid(stored.json);
    CREATE INDEX events_listed ON events(ts) WHERE listed_tools IS NOT NULL;
    CREATE INDEX events_asks ON events(ts) WHERE event_type = 'missing_capability';",
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

    #[test]
    fn events_stored_before_version_2_get_their_tool_fields_from_their_json() {
        let mut connection = Connection::open_in_memory().unwrap();
        let transaction = connection.transaction().unwrap();
        transaction.execute_batch(MIGRATIONS[0]).unwrap();
        transaction.pragma_update(None, "user_version", 1).unwrap();
        transaction.commit().unwrap();
        let events = [
            (
                1,
                "tools/list",
                r#"{"listed_tools":["search","delete_repo"]}"#,
            ),
            (
                2,
                "tools/call",
                r#"{"unknown_tool":true,"user_intent":"send mail"}"#,
            ),
            (3, "tools/call", r#"{"unknown_tool":"yes","user_intent":7}"#),
            (4, "ping", r#"{"listed_tools":["x"]}"#),
        ];
        for (seq, method, json) in events {
            connection
                .execute(
                    "INSERT INTO events (seq, id, ts, event_type, method, outcome, is_error,
                         duration_ms, client, session, session_n, grouping, received_at)
                     VALUES (?1, ?1, 0, 'mcp:' || ?2, ?2, 'success', 0, 1, 'c', 's', 1, 0, 0)",
                    rusqlite::params![seq, method],
                )
                .unwrap();
            connection
                .execute(
                    "INSERT INTO event_json (seq, json) VALUES (?1, ?2)",
                    rusqlite::params![seq, json],
                )
                .unwrap();
        }
        migrate(&mut connection).unwrap().unwrap();
        let mut statement = connection
            .prepare("SELECT listed_tools, unknown_tool, user_intent FROM events ORDER BY seq")
            .unwrap();
        let rows: Vec<(Option<String>, bool, Option<String>)> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (Some(r#"["search","delete_repo"]"#.into()), false, None),
                (None, true, Some("send mail".into())),
                (None, false, None),
                (None, false, None),
            ]
        );
    }
}
