//! Realistic events for the collector's benches: ids, timestamps and JSON as the layer's
//! `HttpSink` sends them, from a seeded generator (no `rand` dependency), and the small
//! statistics helpers both benches print with.
//!
//! Shared by `ingest.rs` and `dashboard_queries.rs` through `#[path]`; not a bench itself.

#![allow(dead_code)]

#[path = "../../tests/support/events.rs"]
mod events;

use std::io::Write as _;

use flate2::Compression;
use flate2::write::GzEncoder;
use mcp_analytics_collector::store::IncomingEvent;
use serde_json::json;

/// The batch format's schema marker.
pub const SCHEMA_V1: &str = "tower-mcp-analytics/v1";
/// The layer gzips batch bodies larger than this (`src/sink/http.rs`).
pub const GZIP_ABOVE: usize = 1024;

pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;

/// SplitMix64: small, fast and good enough to spread a workload.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A standard normal variate (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.unit().max(f64::MIN_POSITIVE);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Exponential with this mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

/// Picks indexes with Zipf-like weights (`1 / (rank + 1)^s`): a few popular, a long tail.
pub struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (0..n)
            .map(|rank| {
                total += 1.0 / ((rank + 1) as f64).powf(s);
                total
            })
            .collect();
        Self { cumulative }
    }

    pub fn pick(&self, rng: &mut Rng) -> usize {
        let total = *self.cumulative.last().unwrap_or(&1.0);
        let target = rng.unit() * total;
        self.cumulative
            .partition_point(|&c| c <= target)
            .min(self.cumulative.len() - 1)
    }
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn base62(mut value: u64, width: usize, out: &mut String) {
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out.push_str(std::str::from_utf8(&digits).expect("ascii"));
}

/// `prefix_` and 27 base62 characters, sortable by `ts` as the layer's ids are (8 of time,
/// 7 of `n`, which must be unique per `ts` range, 12 random).
pub fn time_id(prefix: &str, ts: i64, n: u64, rng: &mut Rng) -> String {
    let mut id = String::with_capacity(prefix.len() + 28);
    id.push_str(prefix);
    id.push('_');
    base62(ts.max(0) as u64, 8, &mut id);
    base62(n, 7, &mut id);
    base62(rng.next_u64() % 62u64.pow(6), 6, &mut id);
    base62(rng.next_u64() % 62u64.pow(6), 6, &mut id);
    id
}

/// `prefix_` and 27 base62 characters derived from `key` (as the layer derives session ids).
pub fn derived_id(prefix: &str, key: u64) -> String {
    let mut rng = Rng::new(key.wrapping_mul(0xA24B_AED4_963E_E407));
    let mut id = String::with_capacity(prefix.len() + 28);
    id.push_str(prefix);
    id.push('_');
    for _ in 0..3 {
        base62(rng.next_u64() % 62u64.pow(9), 9, &mut id);
    }
    id
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, as the layer stamps events.
pub use events::rfc3339 as rfc3339_millis;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

/// Tool names: 40 of them, popular first.
pub const TOOLS: [&str; 40] = [
    "search_docs",
    "read_file",
    "list_files",
    "run_query",
    "get_issue",
    "create_issue",
    "update_issue",
    "list_issues",
    "search_code",
    "get_pull_request",
    "list_pull_requests",
    "create_pull_request",
    "add_comment",
    "get_weather",
    "fetch_url",
    "summarize",
    "translate",
    "send_email",
    "list_calendar_events",
    "create_calendar_event",
    "get_customer",
    "update_customer",
    "list_orders",
    "refund_order",
    "get_invoice",
    "create_invoice",
    "get_metrics",
    "query_logs",
    "list_alerts",
    "ack_alert",
    "deploy_service",
    "rollback_service",
    "get_deployment",
    "list_buckets",
    "upload_object",
    "download_object",
    "describe_table",
    "export_csv",
    "generate_report",
    "ping_service",
];

/// Clients: `client_name`, `client_version`, `client_display_name` (8 labels).
pub const CLIENTS: [(&str, &str, Option<&str>); 8] = [
    ("claude-ai", "0.1.0", Some("Claude Desktop")),
    ("cursor-vscode", "1.0.0", Some("Cursor")),
    ("claude-code", "2.0.14", Some("Claude Code")),
    ("Visual Studio Code", "1.105.1", Some("VS Code")),
    ("windsurf-client", "1.12.2", Some("Windsurf")),
    ("zed", "0.207.4", Some("Zed")),
    ("goose", "1.9.3", None),
    ("mcp-inspector", "0.17.0", None),
];

const WORDS: [&str; 48] = [
    "quarterly",
    "revenue",
    "deployment",
    "latency",
    "customer",
    "migration",
    "postgres",
    "kubernetes",
    "invoice",
    "refund",
    "onboarding",
    "dashboard",
    "timeout",
    "retry",
    "webhook",
    "payload",
    "schema",
    "rollout",
    "incident",
    "escalation",
    "europe",
    "pricing",
    "contract",
    "renewal",
    "analytics",
    "pipeline",
    "warehouse",
    "snapshot",
    "backup",
    "restore",
    "permissions",
    "audit",
    "compliance",
    "session",
    "token",
    "cache",
    "eviction",
    "replica",
    "shard",
    "index",
    "vacuum",
    "release",
    "changelog",
    "feature",
    "flag",
    "experiment",
    "cohort",
    "funnel",
];

fn words(rng: &mut Rng, bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + 16);
    while text.len() < bytes {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    text
}

/// What differs from one event to the next.
#[derive(Clone, Debug)]
pub struct Spec {
    pub ts: i64,
    /// `tools/call`, `tools/list`, `initialize`, ..., or `identify`.
    pub method: &'static str,
    /// An index into [`TOOLS`] (used by `tools/call`).
    pub tool: u16,
    /// An index into [`CLIENTS`].
    pub client: u8,
    /// A user number; `None` is anonymous.
    pub user: Option<u32>,
    /// The layer's session, when it named one.
    pub session: Option<u64>,
    pub duration_ms: f64,
    pub outcome: &'static str,
}

impl Spec {
    /// An event of `method`: a `tools/call` takes its tool's duration and a drawn outcome,
    /// anything else a short duration and success.
    pub fn drawn(
        ts: i64,
        method: &'static str,
        tool: u16,
        client: u8,
        user: Option<u32>,
        session: Option<u64>,
        rng: &mut Rng,
    ) -> Self {
        let call = method == "tools/call";
        let duration_ms = if call {
            duration_for(tool, rng)
        } else {
            (rng.exponential(2.0) * 1000.0).round() / 1000.0
        };
        let outcome = if call { outcome(rng) } else { "success" };
        Self {
            ts,
            method,
            tool,
            client,
            user,
            session,
            duration_ms,
            outcome,
        }
    }
}

pub fn user_id(user: u32) -> String {
    format!("usr_{user:05}")
}

pub fn user_name(user: u32) -> String {
    const FIRST: [&str; 12] = [
        "Alice", "Bruno", "Chen", "Dana", "Emeka", "Fatima", "Gustav", "Hana", "Ivan", "Jia",
        "Kofi", "Lena",
    ];
    format!("{} {}", FIRST[user as usize % FIRST.len()], user)
}

/// A tool's typical duration (ms): each tool has its own median, spread log-normally.
fn duration_for(tool: u16, rng: &mut Rng) -> f64 {
    let median = 4.0 * 1.13f64.powi(i32::from(tool % 40));
    let value = median * (0.8 * rng.normal()).exp();
    (value * 1000.0).round() / 1000.0
}

/// An outcome drawn as traffic looks: mostly successes.
fn outcome(rng: &mut Rng) -> &'static str {
    let x = rng.unit();
    if x < 0.93 {
        "success"
    } else if x < 0.97 {
        "tool_error"
    } else if x < 0.99 {
        "error"
    } else {
        "cancelled"
    }
}

pub fn is_error(outcome: &str) -> bool {
    matches!(
        outcome,
        "tool_error" | "error" | "cancelled" | "http_error" | "no_response"
    )
}

/// One event as the layer serialises it (field order and omissions as `Event`'s serde),
/// with an `arguments` object of about 300 bytes and a short result for a `tools/call`.
pub fn event_json(spec: &Spec, id: &str, request_id: u64, rng: &mut Rng) -> String {
    let (client_name, client_version, display) = CLIENTS[spec.client as usize];
    let error = is_error(spec.outcome);
    let mut event = serde_json::Map::new();
    event.insert("id".into(), json!(id));
    let event_type = if spec.method == "identify" {
        "identify".to_string()
    } else {
        format!("mcp:{}", spec.method)
    };
    event.insert("event_type".into(), json!(event_type));
    event.insert("timestamp".into(), json!(rfc3339_millis(spec.ts)));
    event.insert("duration_ms".into(), json!(spec.duration_ms));
    event.insert("method".into(), json!(spec.method));
    match spec.method {
        "tools/call" => {
            let tool = TOOLS[spec.tool as usize];
            event.insert("resource_name".into(), json!(tool));
            event.insert("request_id".into(), json!(request_id));
            event.insert(
                "arguments".into(),
                json!({
                    "query": words(rng, 120),
                    "filters": {
                        "project": format!("prj_{:04}", rng.below(500)),
                        "labels": [WORDS[rng.below(48) as usize], WORDS[rng.below(48) as usize]],
                        "since": rfc3339_millis(spec.ts - 7 * DAY),
                        "include_archived": rng.chance(0.1),
                    },
                    "limit": 20 + rng.below(5) * 10,
                    "cursor": derived_id("cur", rng.next_u64()),
                }),
            );
            if error {
                event.insert(
                    "result".into(),
                    json!({"content":[{"type":"text","text":"upstream returned 503: service unavailable"}],"isError":true}),
                );
            } else {
                event.insert(
                    "result".into(),
                    json!({"content":[{"type":"text","text":words(rng, 140)}]}),
                );
            }
        }
        "resources/read" => {
            event.insert(
                "resource_name".into(),
                json!(format!(
                    "file:///workspace/src/{}.rs",
                    WORDS[rng.below(48) as usize]
                )),
            );
            event.insert("request_id".into(), json!(request_id));
        }
        "prompts/get" => {
            event.insert("resource_name".into(), json!("code_review"));
            event.insert("request_id".into(), json!(request_id));
            event.insert("arguments".into(), json!({"language": "rust"}));
        }
        "identify" | "notifications/initialized" => {}
        _ => {
            event.insert("request_id".into(), json!(request_id));
        }
    }
    event.insert("outcome".into(), json!(spec.outcome));
    event.insert("is_error".into(), json!(error));
    if error && spec.outcome == "error" {
        event.insert(
            "error".into(),
            json!({"code": -32603, "message": "internal error"}),
        );
    }
    if spec.method != "identify" {
        event.insert("protocol_version".into(), json!("2025-06-18"));
        event.insert("client_name".into(), json!(client_name));
        event.insert("client_version".into(), json!(client_version));
        if let Some(display) = display {
            event.insert("client_display_name".into(), json!(display));
        }
    }
    if let Some(session) = spec.session {
        event.insert("session_id".into(), json!(derived_id("ses", session)));
    }
    if let Some(user) = spec.user {
        event.insert(
            "user".into(),
            json!({"id": user_id(user), "name": user_name(user)}),
        );
    }
    if spec.method != "identify" {
        event.insert(
            "http_status".into(),
            json!(if spec.method.starts_with("notifications/") {
                202
            } else {
                200
            }),
        );
        event.insert(
            "response_kind".into(),
            json!(if spec.method.starts_with("notifications/") {
                "empty"
            } else {
                "json"
            }),
        );
    }
    event.insert("progress_notifications".into(), json!(0));
    event.insert("log_notifications".into(), json!(0));
    event.insert("batch".into(), json!(false));
    serde_json::to_string(&event).expect("serialisable")
}

/// The event as the store takes it, the way the collector reads it off the wire.
pub fn incoming(spec: &Spec, id: String, json: String) -> IncomingEvent {
    let (client_name, _, display) = CLIENTS[spec.client as usize];
    let identify = spec.method == "identify";
    let client_name = (!identify).then(|| client_name.to_string());
    IncomingEvent {
        id,
        ts: spec.ts,
        event_type: if identify {
            "identify".into()
        } else {
            format!("mcp:{}", spec.method)
        },
        method: spec.method.into(),
        tool: match spec.method {
            "tools/call" => Some(TOOLS[spec.tool as usize].into()),
            "prompts/get" => Some("code_review".into()),
            _ => None,
        },
        outcome: spec.outcome.into(),
        is_error: is_error(spec.outcome),
        duration_ms: spec.duration_ms,
        client: display
            .map(str::to_string)
            .or_else(|| client_name.clone())
            .unwrap_or_else(|| "unknown".into()),
        client_name,
        user_id: spec.user.map(user_id),
        user_name: spec.user.map(user_name),
        session_id: spec.session.map(|session| derived_id("ses", session)),
        listed_tools: None,
        unknown_tool: false,
        user_intent: None,
        model: None,
        json,
    }
}

/// A v1 batch body (as `HttpSink` builds it), gzipped (fast level) above 1 KiB as the layer
/// does; the bool says whether it is gzipped.
pub fn batch_body(batch_id: &str, events: &[String]) -> (Vec<u8>, bool) {
    let mut json = Vec::with_capacity(events.iter().map(|e| e.len() + 1).sum::<usize>() + 128);
    write!(
        json,
        r#"{{"schema":"{SCHEMA_V1}","batch_id":"{batch_id}","sent_at":"{}","events":["#,
        rfc3339_millis(now_ms())
    )
    .expect("vec");
    for (n, event) in events.iter().enumerate() {
        if n > 0 {
            json.push(b',');
        }
        json.extend_from_slice(event.as_bytes());
    }
    json.extend_from_slice(b"]}");
    if json.len() <= GZIP_ABOVE {
        return (json, false);
    }
    let mut encoder = GzEncoder::new(Vec::with_capacity(json.len() / 4), Compression::fast());
    encoder.write_all(&json).expect("vec");
    (encoder.finish().expect("vec"), true)
}

/// Nearest-rank percentile of sorted values.
pub fn percentile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.trim().replace(['_', ','], "").parse().ok())
        .unwrap_or(default)
}

/// `12,345,678`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (n, digit) in digits.chars().enumerate() {
        if n > 0 && (digits.len() - n).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A duration in µs, in ms above 10 ms.
pub fn show_us(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// What the machine is doing, for the header of a run.
pub fn environment() -> String {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| {
            let fields: Vec<&str> = text.split_whitespace().take(3).collect();
            (fields.len() == 3).then(|| fields.join(" "))
        })
        .unwrap_or_else(|| "?".into());
    format!("{cpus} CPUs, load average {load}")
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "?".into())
}
