//! Dashboard query benchmark: how long each page's JSON API takes on a month of events,
//! over real HTTP.
//!
//! ```text
//! cargo bench -p mcp-analytics-collector --bench dashboard_queries
//! QUERY_BENCH_EVENTS=100000 QUERY_BENCH_REQUESTS=5 cargo bench -p mcp-analytics-collector --bench dashboard_queries
//! ```
//!
//! A timed binary (no criterion).
//!
//! **The data.** `QUERY_BENCH_EVENTS` events (default 1,000,000) over the 30 days before the
//! seeding, written through `SqliteStore::commit` (the real store, its session grouping
//! included) in commits of 10 batches of 5,000 events, in time order as they would
//! arrive. Sessions of 3 to 90 events (mean about 16; `initialize`,
//! `notifications/initialized`, `tools/list`, then mostly `tools/call` of the session's few
//! favourite tools, with some `resources/read` and `prompts/get`), seconds to minutes
//! apart, started more in the day than at night; 2,000 users (Zipf-weighted, so some are
//! heavy), 8 clients, 40 tools, 10% of sessions anonymous; half the sessions carry the
//! layer's `session_id`, the other half are grouped by the collector (anonymous ones
//! without an id are single-event sessions); each user's first event is preceded by an
//! `identify` event. Each event is the layer's JSON with a ~300-byte `arguments` object.
//!
//! The seeded file is cached at `<target>/collector-bench/dashboard-<events>-v1.db` (with
//! a `.json` beside it saying when it was seeded), so reruns skip seeding;
//! `QUERY_BENCH_RESEED=1` seeds again. The collector serving it has retention off
//! (`retention_days(0)`), so the cache is never trimmed.
//!
//! **The requests.** The collector (default settings otherwise) serves the file on a
//! loopback listener, on a 2-worker tokio runtime; one `reqwest` client sends one request
//! at a time and reads each answer whole. For each range (24h, 7d, 30d) every endpoint
//! behind a dashboard page is asked: `/api/facets`, `/api/overview`, `/api/tools`,
//! `/api/tools/<the most called tool in the range>`, `/api/clients`, `/api/users`,
//! `/api/sessions`, `/api/sessions/<the longest session listed>`, `/api/events?limit=50`
//! (the live tail) and `/api/events/<the newest event>`. One unmeasured pass warms the
//! caches, then `QUERY_BENCH_REQUESTS` passes (default 20) each ask every (range,
//! endpoint) once, the order reversed every other pass. Reported: p50 and p95 per endpoint
//! and range, and the answer's size. Every answer must be a 200; others are counted.
//!
//! While the seed is less than `QUERY_BENCH_FRESH_MINUTES` (default 60) old the requests
//! use `range=24h|7d|30d`; past that they use `from`/`to` of the same widths ending a
//! minute after the seeding (what `range` computes against the seed time), and say so.
//!
//! **Where the time goes.** For the ranges in `QUERY_BENCH_BREAKDOWN` (default `30d`;
//! `none` to skip), after the requests, the store call behind each endpoint (`Store::scan`
//! of the range, `Store::sessions`, `Store::facets`, ...) is timed in process, without
//! HTTP (medians of 3), beside the endpoint's HTTP p50: the rest is the page built from
//! the rows (the collector's `report`), serialising, and HTTP.
//!
//! The goal reported against: every page's API under 200 ms at p95.

#[path = "support/workload.rs"]
mod workload;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use mcp_analytics_collector::Collector;
use mcp_analytics_collector::store::{Filter, IncomingBatch, SqliteStore, Store};
use serde_json::Value;
use workload::{
    CLIENTS, DAY, HOUR, MINUTE, Rng, Spec, TOOLS, Zipf, env_number, environment, event_json,
    incoming, median, now_ms, percentile, show_us, thousands, time_id,
};

/// Bump when the generated data changes, so old caches are not reused.
const SEED_VERSION: u32 = 1;
const USERS: usize = 2_000;
const ANONYMOUS_SESSIONS: f64 = 0.10;
const SPAN: i64 = 30 * DAY;
const EVENTS_PER_BATCH: usize = 5_000;
const BATCHES_PER_COMMIT: usize = 10;
/// The goal: every page's API under this at p95.
const GOAL_MS: f64 = 200.0;
const RANGES: [(&str, i64); 3] = [("24h", DAY), ("7d", 7 * DAY), ("30d", 30 * DAY)];

struct Settings {
    events: usize,
    requests: usize,
    reseed: bool,
    fresh_ms: i64,
    breakdown: Vec<String>,
}

impl Settings {
    fn from_env() -> Self {
        let breakdown = std::env::var("QUERY_BENCH_BREAKDOWN").unwrap_or_else(|_| "30d".into());
        Self {
            events: env_number("QUERY_BENCH_EVENTS", 1_000_000).max(1_000),
            requests: env_number("QUERY_BENCH_REQUESTS", 20).max(1),
            reseed: std::env::var("QUERY_BENCH_RESEED").is_ok_and(|v| v == "1"),
            fresh_ms: env_number("QUERY_BENCH_FRESH_MINUTES", 60) as i64 * MINUTE,
            breakdown: breakdown
                .split(',')
                .map(|r| r.trim().to_string())
                .filter(|r| RANGES.iter().any(|(name, _)| name == r))
                .collect(),
        }
    }
}

/// `<target>/collector-bench`: beside this binary's `target/<profile>/deps`.
fn cache_dir() -> PathBuf {
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("collector-bench");
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .filter(|target| target.join("CACHEDIR.TAG").exists() || target.ends_with("target"))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("collector-bench")
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SeedInfo {
    version: u32,
    events: usize,
    /// The seeding's "now": events are in the 30 days before it.
    anchor_ms: i64,
    sessions: u64,
    seconds: f64,
}

/// Sessions laid over 30 days before `anchor`, then sorted by time; `n` events in all,
/// `identify` events included.
fn generate(n: usize, anchor: i64) -> (Vec<Spec>, u64) {
    let mut rng = Rng::new(0xDA5B_0A2D);
    let users = Zipf::new(USERS, 0.9);
    let clients = Zipf::new(CLIENTS.len(), 1.0);
    let tools = Zipf::new(TOOLS.len(), 1.1);
    let start = anchor - SPAN;
    let mut specs: Vec<Spec> = Vec::with_capacity(n);
    let mut first_seen: HashMap<u32, (i64, u8)> = HashMap::new();
    let mut sessions = 0u64;
    'sessions: while specs.len() + first_seen.len() < n {
        // More sessions by day (UTC 8:00 to 20:00) than by night.
        let begin = loop {
            let t = start + rng.below(SPAN as u64) as i64;
            let hour = (t / HOUR) % 24;
            let weight = if (8..20).contains(&hour) { 1.0 } else { 0.35 };
            if rng.chance(weight) {
                break t;
            }
        };
        let user = (!rng.chance(ANONYMOUS_SESSIONS)).then(|| users.pick(&mut rng) as u32);
        let client = clients.pick(&mut rng) as u8;
        sessions += 1;
        let session = rng.chance(0.5).then_some(sessions);
        let length = (3.0 + rng.exponential(13.0)).min(90.0) as usize;
        let favourites: Vec<u16> = (0..1 + rng.below(4))
            .map(|_| tools.pick(&mut rng) as u16)
            .collect();
        let mut ts = begin;
        for k in 0..length {
            let new_user = user.is_some_and(|u| !first_seen.contains_key(&u));
            if ts > anchor || specs.len() + first_seen.len() + usize::from(new_user) >= n {
                continue 'sessions;
            }
            if let (Some(u), true) = (user, new_user) {
                first_seen.insert(u, (ts, client));
            }
            let method = match k {
                0 => "initialize",
                1 => "notifications/initialized",
                2 => "tools/list",
                _ => {
                    let x = rng.unit();
                    if x < 0.92 {
                        "tools/call"
                    } else if x < 0.96 {
                        "resources/read"
                    } else if x < 0.98 {
                        "prompts/get"
                    } else {
                        "tools/list"
                    }
                }
            };
            let tool = if rng.chance(0.8) {
                favourites[rng.below(favourites.len() as u64) as usize]
            } else {
                tools.pick(&mut rng) as u16
            };
            specs.push(Spec::drawn(
                ts, method, tool, client, user, session, &mut rng,
            ));
            ts += (1_000.0 + rng.exponential(40_000.0)).min(10.0 * MINUTE as f64) as i64;
        }
    }
    for (user, (ts, client)) in first_seen {
        specs.push(Spec {
            ts: ts - 1,
            method: "identify",
            tool: 0,
            client,
            user: Some(user),
            session: None,
            duration_ms: 0.0,
            outcome: "success",
        });
    }
    specs.sort_by_key(|spec| spec.ts);
    (specs, sessions)
}

/// Seeds `path` through `SqliteStore::commit`, the JSON built on a second thread.
fn seed(path: &Path, n: usize, anchor: i64) -> anyhow::Result<u64> {
    let started = Instant::now();
    let (specs, sessions) = generate(n, anchor);
    eprintln!(
        "seeding: {} events in {} sessions generated in {:.1} s",
        thousands(specs.len() as u64),
        thousands(sessions),
        started.elapsed().as_secs_f64()
    );
    let store = SqliteStore::open(path, Duration::from_secs(30 * 60))?;
    let (sender, groups) = std::sync::mpsc::sync_channel::<Vec<IncomingBatch>>(2);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let specs = &specs;
        scope.spawn(move || {
            let mut group = Vec::new();
            for (index, chunk) in specs.chunks(EVENTS_PER_BATCH).enumerate() {
                let first = index * EVENTS_PER_BATCH;
                let events: Vec<_> = chunk
                    .iter()
                    .enumerate()
                    .map(|(k, spec)| {
                        let number = (first + k) as u64;
                        let mut rng = Rng::new(number);
                        let id = time_id("evt", spec.ts, number, &mut rng);
                        let json = event_json(spec, &id, number % 1000, &mut rng);
                        incoming(spec, id, json)
                    })
                    .collect();
                let bytes = events.iter().map(|e| e.json.len()).sum();
                group.push(IncomingBatch {
                    batch_id: format!("bat_seed_{index:06}"),
                    events,
                    bytes,
                });
                if group.len() == BATCHES_PER_COMMIT
                    && sender.send(std::mem::take(&mut group)).is_err()
                {
                    return;
                }
            }
            if !group.is_empty() {
                let _ = sender.send(group);
            }
        });
        let mut stored = 0;
        let mut reported = 0;
        for group in groups {
            for committed in store.commit(&group)? {
                stored += committed?.stored;
            }
            if stored - reported >= 100_000 {
                reported = stored;
                eprintln!(
                    "seeding: {} events stored ({:.0} s)",
                    thousands(stored as u64),
                    started.elapsed().as_secs_f64()
                );
            }
        }
        ensure!(
            stored == specs.len(),
            "stored {stored} of {} events",
            specs.len()
        );
        Ok(())
    })?;
    drop(store);
    Ok(sessions)
}

/// The cached database for `n` events, seeded first if missing, stale or asked for.
fn database(settings: &Settings) -> anyhow::Result<(PathBuf, SeedInfo)> {
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let stem = format!("dashboard-{}-v{SEED_VERSION}", settings.events);
    let path = dir.join(format!("{stem}.db"));
    let info_path = dir.join(format!("{stem}.json"));
    if !settings.reseed
        && path.exists()
        && let Some(info) = std::fs::read(&info_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<SeedInfo>(&bytes).ok())
            .filter(|info| info.version == SEED_VERSION && info.events == settings.events)
    {
        return Ok((path, info));
    }
    let partial = dir.join(format!("{stem}.seeding"));
    for stale in [&path, &info_path, &partial] {
        let _ = std::fs::remove_file(stale);
        let _ = std::fs::remove_file(format!("{}-wal", stale.display()));
        let _ = std::fs::remove_file(format!("{}-shm", stale.display()));
    }
    let started = Instant::now();
    let anchor = now_ms();
    let sessions = seed(&partial, settings.events, anchor)?;
    let seconds = started.elapsed().as_secs_f64();
    ensure!(
        !Path::new(&format!("{}-wal", partial.display())).exists(),
        "the seeded database's WAL was not checkpointed on close"
    );
    std::fs::rename(&partial, &path)?;
    let info = SeedInfo {
        version: SEED_VERSION,
        events: settings.events,
        anchor_ms: anchor,
        sessions,
        seconds,
    };
    std::fs::write(&info_path, serde_json::to_vec_pretty(&info)?)?;
    Ok((path, info))
}

#[derive(Clone)]
struct Target {
    range: &'static str,
    endpoint: &'static str,
    path: String,
    /// The tool, session id or event id in the path.
    key: Option<String>,
}

#[derive(Default)]
struct Samples {
    micros: Vec<u64>,
    bytes: Vec<usize>,
    failures: BTreeMap<String, u64>,
}

async fn get(client: &reqwest::Client, url: &str) -> anyhow::Result<(u16, Vec<u8>, u64)> {
    let started = Instant::now();
    let response = client.get(url).send().await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?.to_vec();
    Ok((status, body, started.elapsed().as_micros() as u64))
}

async fn get_json(client: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let (status, body, _) = get(client, url).await?;
    ensure!(
        status == 200,
        "GET {url}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    Ok(serde_json::from_slice(&body)?)
}

/// The query string selecting a range: `range=` while the seed is fresh, else `from`/`to`.
fn range_query(name: &str, width: i64, anchor: Option<i64>) -> String {
    match anchor {
        None => format!("range={name}"),
        Some(anchor) => {
            let to = anchor + MINUTE;
            format!("from={}&to={to}", to - width)
        }
    }
}

/// Every endpoint of one range, with the names and ids they need picked from the answers.
async fn targets(
    client: &reqwest::Client,
    base: &str,
    range: &'static str,
    query: &str,
) -> anyhow::Result<(Vec<Target>, u64)> {
    let facets = get_json(client, &format!("{base}/api/facets?{query}")).await?;
    let tool = facets["tools"][0]
        .as_str()
        .context("no tool in the range")?
        .to_string();
    let sessions = get_json(client, &format!("{base}/api/sessions?{query}")).await?;
    let session = sessions["sessions"]
        .as_array()
        .context("sessions")?
        .iter()
        .max_by_key(|s| s["events"].as_u64().unwrap_or(0))
        .and_then(|s| s["session_id"].as_str())
        .context("no session in the range")?
        .to_string();
    let tail = get_json(client, &format!("{base}/api/events?limit=50&{query}")).await?;
    let event = tail["events"]
        .as_array()
        .and_then(|events| events.last())
        .and_then(|e| e["id"].as_str())
        .context("no event in the tail")?
        .to_string();
    let overview = get_json(client, &format!("{base}/api/overview?{query}")).await?;
    let events = overview["totals"]["events"].as_u64().unwrap_or(0);
    let target = |endpoint: &'static str, path: String, key: Option<&String>| Target {
        range,
        endpoint,
        path,
        key: key.cloned(),
    };
    Ok((
        vec![
            target("/api/facets", format!("/api/facets?{query}"), None),
            target("/api/overview", format!("/api/overview?{query}"), None),
            target("/api/tools", format!("/api/tools?{query}"), None),
            target(
                "/api/tools/<tool>",
                format!("/api/tools/{tool}?{query}"),
                Some(&tool),
            ),
            target("/api/clients", format!("/api/clients?{query}"), None),
            target("/api/users", format!("/api/users?{query}"), None),
            target("/api/sessions", format!("/api/sessions?{query}"), None),
            target(
                "/api/sessions/<id>",
                format!("/api/sessions/{session}"),
                Some(&session),
            ),
            target(
                "/api/events?limit=50",
                format!("/api/events?limit=50&{query}"),
                None,
            ),
            target(
                "/api/events/<id>",
                format!("/api/events/{event}"),
                Some(&event),
            ),
        ],
        events,
    ))
}

fn median_of<T>(
    runs: usize,
    mut measure: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<(f64, T)> {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        last = Some(measure()?);
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    Ok((median(&times), last.expect("runs ≥ 1")))
}

/// Times the store call behind each endpoint in process (no HTTP, no report), beside the
/// endpoint's HTTP p50: the difference is the report, serialising, and HTTP.
fn breakdown(
    store: &dyn Store,
    range: &str,
    from: i64,
    to: i64,
    measured: &[(Target, Samples)],
) -> anyhow::Result<()> {
    const RUNS: usize = 3;
    let filter = Filter {
        from,
        to,
        ..Filter::default()
    };
    let mut lines = Vec::new();
    for (target, samples) in measured.iter().filter(|(t, _)| t.range == range) {
        let key = target.key.clone();
        let (us, what) = match target.endpoint {
            "/api/facets" => {
                let (us, _) = median_of(RUNS, || Ok(store.facets(&filter, 200)?))?;
                (us, "`Store::facets` (3 GROUP BY queries)".to_string())
            }
            "/api/tools/<tool>" => {
                let by_tool = Filter {
                    tool: key,
                    ..filter.clone()
                };
                let (us, rows) = median_of(RUNS, || Ok(store.scan(&by_tool, usize::MAX)?))?;
                (
                    us,
                    format!(
                        "`Store::scan` with the tool ({} rows)",
                        thousands(rows.len() as u64)
                    ),
                )
            }
            "/api/sessions" => {
                let (us, rows) = median_of(RUNS, || Ok(store.sessions(&filter, 500)?))?;
                (us, format!("`Store::sessions` ({} listed)", rows.len()))
            }
            "/api/sessions/<id>" => {
                let id = key.unwrap_or_default();
                let (us, rows) = median_of(RUNS, || Ok(store.session(&id)?))?;
                (us, format!("`Store::session` ({} events)", rows.len()))
            }
            "/api/events?limit=50" => {
                let (us, _) = median_of(RUNS, || Ok(store.tail(None, 50, &Filter::default())?))?;
                (us, "`Store::tail`".to_string())
            }
            "/api/events/<id>" => {
                let id = key.unwrap_or_default();
                let (us, _) = median_of(RUNS, || Ok(store.event(&id)?))?;
                (us, "`Store::event`".to_string())
            }
            _ => {
                // overview, tools, clients, users: every row of the range.
                let (us, rows) = median_of(RUNS, || Ok(store.scan(&filter, usize::MAX)?))?;
                (
                    us,
                    format!(
                        "`Store::scan` of the range ({} rows)",
                        thousands(rows.len() as u64)
                    ),
                )
            }
        };
        let mut sorted = samples.micros.clone();
        sorted.sort_unstable();
        let http = percentile(&sorted, 0.5).unwrap_or(0) as f64;
        lines.push(format!(
            "| `{}` | {} | {what} | {} | {:.0}% | {} |",
            target.endpoint,
            show_us(http),
            show_us(us),
            100.0 * us / http.max(1.0),
            show_us((http - us).max(0.0)),
        ));
    }
    println!();
    println!(
        "Where the time goes, {range}: the store call behind each endpoint, timed in process \
         (median of {RUNS}), beside the endpoint's HTTP p50; the rest is building the page \
         from the rows (`report`), serialising it, and HTTP."
    );
    println!();
    println!("| endpoint | HTTP p50 | store call | its time | share | the rest |");
    println!("|---|---|---|---|---|---|");
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let settings = Settings::from_env();
    println!("dashboard_queries: cargo bench -p mcp-analytics-collector --bench dashboard_queries");
    println!("environment: {}", environment());
    println!(
        "settings: QUERY_BENCH_EVENTS={} QUERY_BENCH_REQUESTS={} QUERY_BENCH_BREAKDOWN={}",
        settings.events,
        settings.requests,
        if settings.breakdown.is_empty() {
            "none".into()
        } else {
            settings.breakdown.join(",")
        }
    );

    let (path, info) = database(&settings)?;
    let age = now_ms() - info.anchor_ms;
    let db_bytes = std::fs::metadata(&path).map_or(0, |meta| meta.len());
    println!(
        "data: {} ({} MiB, {:.0} B per event): {} events in {} generated sessions over the 30 \
         days before {}; seeded in {:.0} s, {:.1} h ago",
        path.display(),
        db_bytes / (1024 * 1024),
        db_bytes as f64 / info.events as f64,
        thousands(info.events as u64),
        thousands(info.sessions),
        workload::rfc3339_millis(info.anchor_ms),
        info.seconds,
        age as f64 / HOUR as f64,
    );
    let anchor = (age > settings.fresh_ms).then_some(info.anchor_ms);
    if anchor.is_some() {
        println!(
            "the seed is older than {} minutes: requests use from/to of each range's width \
             ending a minute after the seeding, not range=",
            settings.fresh_ms / MINUTE
        );
    }

    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("collector")
        .enable_all()
        .build()?;
    let collector = Collector::builder()
        .database(&path)
        .retention_days(0)
        .build()?;
    let store: Arc<dyn Store> = collector.store();
    let listener = server.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = server.spawn(collector.serve(listener, async move {
        let _ = stopped.await;
    }));

    let client_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(300))
        .build()?;

    let (results, in_range) = client_runtime.block_on(async {
        let mut targets_all: Vec<Target> = Vec::new();
        let mut in_range = BTreeMap::new();
        for (name, width) in RANGES {
            let query = range_query(name, width, anchor);
            let (targets, events) = targets(&client, &base, name, &query).await?;
            in_range.insert(name, events);
            targets_all.extend(targets);
        }
        let started = Instant::now();
        for target in &targets_all {
            let (status, body, _) = get(&client, &format!("{base}{}", target.path)).await?;
            ensure!(
                status == 200,
                "warm-up {}: {status} {}",
                target.path,
                String::from_utf8_lossy(&body)
            );
        }
        eprintln!(
            "warm-up pass: {:.1} s; {} measured passes follow",
            started.elapsed().as_secs_f64(),
            settings.requests
        );
        let mut samples: Vec<Samples> = targets_all.iter().map(|_| Samples::default()).collect();
        for pass in 0..settings.requests {
            let started = Instant::now();
            let order: Vec<usize> = if pass % 2 == 0 {
                (0..targets_all.len()).collect()
            } else {
                (0..targets_all.len()).rev().collect()
            };
            for index in order {
                let url = format!("{base}{}", targets_all[index].path);
                let sample = &mut samples[index];
                match get(&client, &url).await {
                    Ok((200, body, micros)) => {
                        sample.micros.push(micros);
                        sample.bytes.push(body.len());
                    }
                    Ok((status, _, _)) => {
                        *sample.failures.entry(status.to_string()).or_default() += 1;
                    }
                    Err(error) => {
                        *sample
                            .failures
                            .entry(format!("error: {error}"))
                            .or_default() += 1;
                    }
                }
            }
            eprintln!(
                "pass {}/{}: {:.1} s  load {}",
                pass + 1,
                settings.requests,
                started.elapsed().as_secs_f64(),
                workload::load_average()
            );
        }
        anyhow::Ok((
            targets_all.into_iter().zip(samples).collect::<Vec<_>>(),
            in_range,
        ))
    })?;

    println!();
    println!(
        "Events in range (the overview's total, `identify` events excluded): {}",
        RANGES
            .iter()
            .map(|(name, _)| format!("{name} {}", thousands(in_range[name])))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "{} requests per endpoint and range, one at a time; p50 and p95 of the round trip \
         (request sent to answer read).",
        settings.requests
    );
    println!();
    let mut header = String::from("| endpoint |");
    let mut rule = String::from("|---|");
    for (name, _) in RANGES {
        header.push_str(&format!(" {name} p50 | {name} p95 |"));
        rule.push_str("---|---|");
    }
    header.push_str(" answer (30d) |");
    rule.push_str("---|");
    println!("{header}");
    println!("{rule}");
    let endpoints: Vec<&str> = results
        .iter()
        .filter(|(target, _)| target.range == RANGES[0].0)
        .map(|(target, _)| target.endpoint)
        .collect();
    let mut missed = Vec::new();
    let mut failures = Vec::new();
    for endpoint in endpoints {
        let mut line = format!("| `{endpoint}` |");
        let mut size = String::from("-");
        for (name, _) in RANGES {
            let Some((_, samples)) = results
                .iter()
                .find(|(target, _)| target.range == name && target.endpoint == endpoint)
            else {
                continue;
            };
            let mut sorted = samples.micros.clone();
            sorted.sort_unstable();
            let p50 = percentile(&sorted, 0.50).unwrap_or(0) as f64;
            let p95 = percentile(&sorted, 0.95).unwrap_or(0) as f64;
            let over = p95 / 1000.0 > GOAL_MS;
            if over {
                missed.push(format!("{endpoint} {name} ({})", show_us(p95)));
            }
            line.push_str(&format!(
                " {} | {}{}{} |",
                show_us(p50),
                if over { "**" } else { "" },
                show_us(p95),
                if over { "**" } else { "" },
            ));
            if name == "30d" {
                let bytes = samples.bytes.last().copied().unwrap_or(0);
                size = if bytes >= 1024 {
                    format!("{} KiB", bytes / 1024)
                } else {
                    format!("{bytes} B")
                };
            }
            for (kind, count) in &samples.failures {
                failures.push(format!("{endpoint} {name}: {count} × {kind}"));
            }
        }
        line.push_str(&format!(" {size} |"));
        println!("{line}");
    }
    println!();
    if missed.is_empty() {
        println!("goal: every page's API under {GOAL_MS:.0} ms at p95: met");
    } else {
        println!(
            "goal: every page's API under {GOAL_MS:.0} ms at p95: MISSED by {} of {} (in bold): {}",
            missed.len(),
            results.len(),
            missed.join(", ")
        );
    }
    if failures.is_empty() {
        println!("every answer was a 200");
    } else {
        for failure in &failures {
            println!("NOT 200: {failure}");
        }
    }

    let _ = stop.send(());
    server.block_on(served)??;

    let now = match anchor {
        None => now_ms(),
        Some(anchor) => anchor,
    };
    for range in &settings.breakdown {
        let width = RANGES
            .iter()
            .find(|(name, _)| name == range)
            .map(|(_, width)| *width)
            .expect("filtered");
        let to = now + MINUTE;
        breakdown(store.as_ref(), range, to - width, to, &results)?;
    }
    if !failures.is_empty() {
        bail!(
            "{} endpoints answered something else than 200",
            failures.len()
        );
    }
    Ok(())
}
