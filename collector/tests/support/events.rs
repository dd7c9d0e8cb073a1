//! Events and v1 batches as the layer writes them (times in RFC 3339, UTC, milliseconds),
//! for tests and benches that build batches by hand.

#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// A `tools/call` event as the layer sends it (see the README's example), stamped now.
pub fn layer_event(id: &str) -> Value {
    json!({
        "id": id,
        "event_type": "mcp:tools/call",
        "timestamp": now_rfc3339(),
        "duration_ms": 1.29,
        "method": "tools/call",
        "resource_name": "progress",
        "request_id": 3,
        "arguments": { "steps": 3 },
        "result": { "content": [{ "type": "text", "text": "done" }] },
        "outcome": "success",
        "is_error": false,
        "protocol_version": "2025-11-25",
        "client_name": "claude-ai",
        "client_version": "0.7.4",
        "client_display_name": "Claude Desktop",
        "session_id": "ses_2Od85HW6h643yiymDfnsfejb1wM",
        "user": { "id": "user-42" },
        "http_status": 200,
        "response_kind": "sse",
        "progress_notifications": 3,
        "log_notifications": 0,
        "batch": false
    })
}

/// A v1 batch envelope around `events`, sent now.
pub fn v1_batch(batch_id: &str, events: Vec<Value>) -> Value {
    json!({
        "schema": "tower-mcp-analytics/v1",
        "batch_id": batch_id,
        "sent_at": now_rfc3339(),
        "events": events,
    })
}

/// Now, in ms since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

/// Now as RFC 3339.
pub fn now_rfc3339() -> String {
    rfc3339(now_ms())
}

/// `ms` since the Unix epoch as RFC 3339 in UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}
