//! `RedisSessionStore` benchmark (cargo feature `redis`): what assigning sessions on a
//! local Redis costs, beside `MemorySessionStore`, in one run.
//!
//! ```text
//! cargo bench --features redis --bench redis_store
//! REDIS_BENCH_ROUNDS=1 REDIS_BENCH_EVENTS=10000 cargo bench --features redis --bench redis_store
//! ```
//!
//! The bench starts its own `redis-server` (no persistence) on a free loopback port and
//! kills it at the end. It measures:
//!
//! 1. **Throughput and latency of `assign`.** A workload of `REDIS_BENCH_PAIRS` active
//!    user + client pairs (group keys of 31 characters, `grp_` and 27 base62 characters),
//!    first given one event each (unmeasured; their ages as in a steady state), then
//!    `REDIS_BENCH_EVENTS` events from pairs picked at random, times advancing so that
//!    about 20% of a pair's gaps exceed the 30-minute inactivity window. Events go to the
//!    store in batches of 100 `SessionRequest`s (`REDIS_BENCH_BATCH`). Redis is called
//!    by 1 caller (calls one after another) and by several concurrent callers
//!    (`REDIS_BENCH_CALLERS`), batches dealt out in turn, each caller with a store and a
//!    connection of its own, as separate instances of a server would.
//!    `MemorySessionStore` is called by 1 caller, as one worker calls it. Reported: events
//!    per second of wall time, the median and p99 round trip of one batch, the mean time
//!    Redis itself spent running a batch's script (`INFO commandstats`), and the
//!    sessions opened (with 1 caller exactly the workload's gaps over the window; with
//!    several, batches reach Redis out of order and a few more can open). Every round
//!    starts from an empty store (`FLUSHALL`, or a new memory store).
//! 2. **Redis memory per pair.** After assigning `REDIS_BENCH_PAIRS` pairs one session
//!    each, and again with 4 sessions of history each: the `used_memory` delta of
//!    `INFO memory` divided by the pairs, and `MEMORY USAGE` of a key (median over 100
//!    random keys).
//!
//! Variants alternate within a round, the order reversed every other round, and the
//! tables give medians over rounds. The goal reported against: at least 50,000 events/s
//! through one local Redis from one caller.
//!
//! Environment: `REDIS_BENCH_ROUNDS` (default 5), `REDIS_BENCH_EVENTS` (measured events
//! per round and variant, default 50,000), `REDIS_BENCH_PAIRS` (active pairs, default
//! 10,000), `REDIS_BENCH_BATCH` (requests per `assign` call in the throughput part,
//! default 100; the layer's worker asks about at most 16 exchanges' events at a time),
//! `REDIS_BENCH_CALLERS` (comma separated caller counts, default `1,2,4`). The default
//! run takes well under a minute here.

#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, ensure};
use redis_server::RedisServer;
use tower_mcp_analytics::{MemorySessionStore, RedisSessionStore, SessionRequest, SessionStore};

/// The inactivity window (the layer's default).
const WINDOW: Duration = Duration::from_secs(30 * 60);
/// Requests per `assign` call by default.
const BATCH: usize = 100;
/// Share of a pair's gaps longer than the window.
const OVER_WINDOW: f64 = 0.2;
/// Sessions of history per pair in the second memory measurement.
const HISTORY: usize = 4;
/// Keys sampled for `MEMORY USAGE`.
const SAMPLED_KEYS: usize = 100;
/// The events/s goal for one caller on one local Redis.
const GOAL: f64 = 50_000.0;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(default)
}

struct Settings {
    rounds: usize,
    events: usize,
    pairs: usize,
    batch: usize,
    callers: Vec<usize>,
}

impl Settings {
    fn from_env() -> Self {
        let mut callers: Vec<usize> = std::env::var("REDIS_BENCH_CALLERS")
            .ok()
            .map(|list| {
                list.split(',')
                    .filter_map(|count| count.trim().parse().ok())
                    .filter(|&count| count > 0)
                    .collect()
            })
            .unwrap_or_default();
        if callers.is_empty() {
            callers = vec![1, 2, 4];
        }
        Self {
            rounds: env_number("REDIS_BENCH_ROUNDS", 5).max(1),
            events: env_number("REDIS_BENCH_EVENTS", 50_000).max(1),
            pairs: env_number("REDIS_BENCH_PAIRS", 10_000).max(1),
            batch: env_number("REDIS_BENCH_BATCH", BATCH).max(1),
            callers,
        }
    }
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let settings = Settings::from_env();
    let server = RedisServer::start()?;
    let mut admin = server.connection()?;
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;

    println!("redis_store: cargo bench --features redis --bench redis_store");
    println!(
        "environment: {cpus} CPUs; redis-server {} ({}) at {}, no persistence; \
         tokio multi-thread runtime, 2 workers",
        info_field(&mut admin, "server", "redis_version")?,
        info_field(&mut admin, "memory", "mem_allocator")?,
        server.url(),
    );
    println!(
        "settings: REDIS_BENCH_ROUNDS={} REDIS_BENCH_EVENTS={} REDIS_BENCH_PAIRS={} \
         REDIS_BENCH_BATCH={} REDIS_BENCH_CALLERS={}",
        settings.rounds,
        settings.events,
        settings.pairs,
        settings.batch,
        settings
            .callers
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(","),
    );

    let workload = Arc::new(Workload::new(
        settings.pairs,
        settings.events,
        settings.batch,
    ));
    println!(
        "workload: {} pairs given one event each, then {} measured events in batches of \
         {}; {:.1}% of their gaps over the {}-minute window ({} sessions to open)",
        settings.pairs,
        workload.events,
        settings.batch,
        100.0 * workload.over_window as f64 / workload.events as f64,
        WINDOW.as_secs() / 60,
        workload.over_window,
    );
    println!();

    // 1. Throughput and latency.
    let variants: Vec<Variant> = std::iter::once(Variant {
        kind: Kind::Memory,
        callers: 1,
    })
    .chain(settings.callers.iter().map(|&callers| Variant {
        kind: Kind::Redis,
        callers,
    }))
    .collect();
    let mut results: Vec<Vec<Figures>> = vec![Vec::new(); variants.len()];
    for round in 0..settings.rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..variants.len()).collect()
        } else {
            (0..variants.len()).rev().collect()
        };
        for index in order {
            let variant = variants[index];
            let redis = variant.kind == Kind::Redis;
            if redis {
                flush(&mut admin)?;
            }
            let prepared = runtime.block_on(prepare(variant, &server.url(), &workload))?;
            if redis {
                redis::cmd("CONFIG").arg("RESETSTAT").exec(&mut admin)?;
            }
            let mut figures = runtime.block_on(measure(prepared, &workload))?;
            if redis {
                figures.redis_us = script_time(&mut admin)?;
            }
            eprintln!(
                "round {} {:>10}: {:>9.0} events/s  p50 {:>6.0} µs  p99 {:>6.0} µs  \
                 redis {}  {} new sessions",
                round + 1,
                variant.name(),
                figures.events_per_second,
                figures.p50,
                figures.p99,
                redis_time(figures.redis_us),
                figures.new_sessions,
            );
            results[index].push(figures);
        }
    }
    let medians: Vec<Figures> = results
        .iter()
        .map(|rounds| median_figures(rounds))
        .collect();
    let memory_single = variants
        .iter()
        .position(|variant| variant.kind == Kind::Memory && variant.callers == 1);

    println!(
        "assign, batches of {}, {} active pairs, {} events per round \
         (medians of {} rounds):",
        settings.batch, settings.pairs, workload.events, settings.rounds
    );
    println!();
    println!(
        "| store | callers | events/s | vs memory, 1 caller | batch p50 | batch p99 | Redis time per batch | sessions opened (expected {}) |",
        workload.over_window
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (variant, figures) in variants.iter().zip(&medians) {
        let ratio = memory_single.map_or_else(
            || "-".to_owned(),
            |index| {
                format!(
                    "{:.3}",
                    figures.events_per_second / medians[index].events_per_second
                )
            },
        );
        println!(
            "| {} | {} | {:.0} | {ratio} | {:.0} µs | {:.0} µs | {} | {} |",
            variant.kind.name(),
            variant.callers,
            figures.events_per_second,
            figures.p50,
            figures.p99,
            redis_time(figures.redis_us),
            figures.new_sessions,
        );
    }
    if let Some(index) = variants
        .iter()
        .position(|variant| variant.kind == Kind::Redis && variant.callers == 1)
    {
        let rate = medians[index].events_per_second;
        println!();
        println!(
            "goal: >= {GOAL:.0} events/s through one local Redis from one caller: {} ({rate:.0})",
            if rate >= GOAL { "met" } else { "missed" },
        );
    }

    // 2. Redis memory per pair.
    println!();
    println!("Redis memory, {} pairs:", settings.pairs);
    println!();
    println!(
        "| sessions per pair | keys | used_memory delta | per pair | MEMORY USAGE of a key (median of {SAMPLED_KEYS}) | value |"
    );
    println!("|---|---|---|---|---|---|");
    for sessions in [1, HISTORY] {
        let cost = memory_cost(&runtime, &server, &mut admin, settings.pairs, sessions)?;
        println!(
            "| {sessions} | {} | {} B | {:.0} B | {} B | {} B |",
            cost.keys,
            cost.delta,
            cost.delta as f64 / settings.pairs as f64,
            cost.key_usage,
            cost.value_bytes,
        );
    }
    flush(&mut admin)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The workload
// ---------------------------------------------------------------------------------------

/// A small deterministic generator (splitmix64): the same workload on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    fn fraction(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A group key as the layer makes them: `grp_` and 27 base62 characters.
fn group_key(rng: &mut Rng) -> String {
    let mut key = String::with_capacity(31);
    key.push_str("grp_");
    for _ in 0..27 {
        key.push(char::from(BASE62[rng.below(BASE62.len())]));
    }
    key
}

struct Workload {
    /// Every pair once, in time order: the store's state before the measured events.
    prefill: Vec<Vec<SessionRequest>>,
    /// The measured events, in batches.
    measured: Vec<Vec<SessionRequest>>,
    events: usize,
    /// Measured events more than the window after their pair's previous event.
    over_window: usize,
    start: SystemTime,
}

impl Workload {
    /// `pairs` pairs, one event each, then `events` events from pairs picked at random.
    /// Time advances by the same step per event. A pair is picked once in `pairs` events
    /// on average, so its gaps are close to exponential with a mean of `pairs` steps; a
    /// step of `window / (pairs × ln 5)` puts 20% of them over the window. The first
    /// events are as old as the steady state makes them (exponential ages, same mean), so
    /// that share holds from the first measured event.
    fn new(pairs: usize, events: usize, batch: usize) -> Self {
        let mut rng = Rng(0x6d63_702d_616e_616c);
        let keys: Vec<String> = (0..pairs).map(|_| group_key(&mut rng)).collect();
        let step = WINDOW.div_f64(pairs as f64 * (1.0 / OVER_WINDOW).ln());
        let mean_gap = step.mul_f64(pairs as f64);
        let start = SystemTime::now();
        let mut first: Vec<(SystemTime, usize)> = (0..pairs)
            .map(|pair| {
                let age = mean_gap.mul_f64(-(1.0 - rng.fraction()).ln());
                (start.checked_sub(age).unwrap_or(start), pair)
            })
            .collect();
        first.sort_unstable();
        let mut last = vec![start; pairs];
        let mut prefill = Vec::with_capacity(pairs);
        for &(at, pair) in &first {
            last[pair] = at;
            prefill.push(SessionRequest::new(keys[pair].clone(), at));
        }
        let mut measured = Vec::with_capacity(events);
        let mut over_window = 0;
        for tick in 1..=events {
            let at = start + step.mul_f64(tick as f64);
            let pair = rng.below(pairs);
            if at.duration_since(last[pair]).is_ok_and(|gap| gap > WINDOW) {
                over_window += 1;
            }
            last[pair] = at;
            measured.push(SessionRequest::new(keys[pair].clone(), at));
        }
        Self {
            prefill: batches(prefill, batch),
            measured: batches(measured, batch),
            events,
            over_window,
            start,
        }
    }
}

fn batches(requests: Vec<SessionRequest>, batch: usize) -> Vec<Vec<SessionRequest>> {
    requests.chunks(batch).map(<[_]>::to_vec).collect()
}

// ---------------------------------------------------------------------------------------
// Throughput rounds
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Memory,
    Redis,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Memory => "memory",
            Kind::Redis => "redis",
        }
    }
}

#[derive(Clone, Copy)]
struct Variant {
    kind: Kind,
    callers: usize,
}

impl Variant {
    fn name(self) -> String {
        format!("{} ×{}", self.kind.name(), self.callers)
    }

    /// One store per caller: a Redis store (and connection) each, or one memory store
    /// shared by all (only ever one caller here: a memory store is one worker's).
    fn stores(self, url: &str) -> anyhow::Result<Vec<Arc<dyn SessionStore>>> {
        match self.kind {
            Kind::Memory => {
                let store: Arc<dyn SessionStore> = Arc::new(MemorySessionStore::new());
                Ok(vec![store; self.callers])
            }
            Kind::Redis => (0..self.callers)
                .map(|_| {
                    let store: Arc<dyn SessionStore> = Arc::new(RedisSessionStore::open(url)?);
                    Ok(store)
                })
                .collect(),
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Figures {
    events_per_second: f64,
    /// Round trip of one batch, µs.
    p50: f64,
    p99: f64,
    /// Distinct sessions the measured events opened.
    new_sessions: usize,
    /// Time Redis spent running one batch's script, µs (`INFO commandstats`).
    redis_us: f64,
}

/// What one caller did: the round trip of each of its batches and the ids it got.
type CallerResult = (Vec<Duration>, Vec<Vec<String>>);

/// A round's stores, holding every pair's first session, and the ids of those sessions.
struct Prepared {
    stores: Vec<Arc<dyn SessionStore>>,
    before: HashSet<String>,
}

/// New stores for `variant`, given the workload's first events (not measured).
async fn prepare(variant: Variant, url: &str, workload: &Workload) -> anyhow::Result<Prepared> {
    let stores = variant.stores(url)?;
    let first = stores.first().context("no caller")?;
    // The state before: every pair has a session. This also opens the first connection.
    let mut before = HashSet::new();
    for batch in &workload.prefill {
        let ids = first.assign(batch, WINDOW).await?;
        ensure!(ids.len() == batch.len(), "one id per request");
        before.extend(ids);
    }
    // Open the other callers' connections.
    for store in &stores[1..] {
        let warm_up = [SessionRequest::new("grp_warm-up", workload.start)];
        store.assign(&warm_up, WINDOW).await?;
    }
    Ok(Prepared { stores, before })
}

/// The measured events through the prepared stores, batches dealt out to the callers.
async fn measure(prepared: Prepared, workload: &Arc<Workload>) -> anyhow::Result<Figures> {
    let Prepared { stores, before } = prepared;
    let callers = stores.len();
    let started = Instant::now();
    let tasks: Vec<_> = stores
        .into_iter()
        .enumerate()
        .map(|(caller, store)| {
            let workload = Arc::clone(workload);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut assigned = Vec::new();
                for batch in workload.measured.iter().skip(caller).step_by(callers) {
                    let sent = Instant::now();
                    let ids = store.assign(batch, WINDOW).await?;
                    latencies.push(sent.elapsed());
                    ensure!(ids.len() == batch.len(), "one id per request");
                    assigned.push(ids);
                }
                anyhow::Ok::<CallerResult>((latencies, assigned))
            })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await??);
    }
    let elapsed = started.elapsed();

    let mut latencies: Vec<Duration> = Vec::new();
    let mut opened: HashSet<String> = HashSet::new();
    for (caller_latencies, assigned) in results {
        latencies.extend(caller_latencies);
        opened.extend(
            assigned
                .into_iter()
                .flatten()
                .filter(|id| !before.contains(id)),
        );
    }
    latencies.sort_unstable();
    Ok(Figures {
        events_per_second: workload.events as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        new_sessions: opened.len(),
        redis_us: f64::NAN,
    })
}

/// Redis time per batch for display: `-` for the memory store.
fn redis_time(micros: f64) -> String {
    if micros.is_nan() {
        "-".to_owned()
    } else {
        format!("{micros:.0} µs")
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1e6
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn median_figures(rounds: &[Figures]) -> Figures {
    let of = |pick: &dyn Fn(&Figures) -> f64| median(rounds.iter().map(pick).collect());
    Figures {
        events_per_second: of(&|f| f.events_per_second),
        p50: of(&|f| f.p50),
        p99: of(&|f| f.p99),
        new_sessions: of(&|f| f.new_sessions as f64) as usize,
        redis_us: of(&|f| f.redis_us),
    }
}

// ---------------------------------------------------------------------------------------
// Redis memory
// ---------------------------------------------------------------------------------------

struct MemoryCost {
    keys: u64,
    /// `used_memory` after minus before, bytes.
    delta: i64,
    /// Median `MEMORY USAGE` of sampled keys, bytes.
    key_usage: u64,
    /// Median length of the sampled keys' values, bytes.
    value_bytes: u64,
}

/// Assigns `sessions` sessions to each of `pairs` pairs (each session more than the
/// window after the previous one) on an empty Redis and reads what that costs.
fn memory_cost(
    runtime: &tokio::runtime::Runtime,
    server: &RedisServer,
    admin: &mut redis::Connection,
    pairs: usize,
    sessions: usize,
) -> anyhow::Result<MemoryCost> {
    let mut rng = Rng(0x6d65_6d6f_7279 + sessions as u64);
    let keys: Vec<String> = (0..pairs).map(|_| group_key(&mut rng)).collect();
    let start = SystemTime::now();
    let mut requests = Vec::with_capacity(pairs * sessions);
    for session in 0..sessions {
        let opened = start + (WINDOW + Duration::from_secs(5 * 60)) * session as u32;
        for (index, key) in keys.iter().enumerate() {
            let at = opened + Duration::from_millis(10) * index as u32;
            requests.push(SessionRequest::new(key.clone(), at));
        }
    }
    let requests = batches(requests, BATCH);

    flush(admin)?;
    let store = RedisSessionStore::open(&server.url())?;
    // Connect (and load the script) before the first reading.
    runtime.block_on(store.assign(&[SessionRequest::new("grp_warm-up", start)], WINDOW))?;
    flush(admin)?;
    let before = used_memory(admin)?;
    let mut distinct = HashSet::new();
    runtime.block_on(async {
        for batch in &requests {
            distinct.extend(store.assign(batch, WINDOW).await?);
        }
        anyhow::Ok(())
    })?;
    let after = used_memory(admin)?;
    ensure!(
        distinct.len() == pairs * sessions,
        "{} sessions opened, {} expected",
        distinct.len(),
        pairs * sessions
    );
    let keys: u64 = redis::cmd("DBSIZE").query(admin)?;
    let mut usages = Vec::with_capacity(SAMPLED_KEYS);
    let mut lengths = Vec::with_capacity(SAMPLED_KEYS);
    for _ in 0..SAMPLED_KEYS {
        let key: Option<String> = redis::cmd("RANDOMKEY").query(admin)?;
        let key = key.context("Redis holds no key")?;
        let usage: Option<u64> = redis::cmd("MEMORY").arg("USAGE").arg(&key).query(admin)?;
        let length: u64 = redis::cmd("STRLEN").arg(&key).query(admin)?;
        usages.push(usage.unwrap_or(0) as f64);
        lengths.push(length as f64);
    }
    Ok(MemoryCost {
        keys,
        delta: after - before,
        key_usage: median(usages) as u64,
        value_bytes: median(lengths) as u64,
    })
}

/// Empties the database at once (not in the background, so memory readings settle).
fn flush(admin: &mut redis::Connection) -> anyhow::Result<()> {
    redis::cmd("FLUSHALL").arg("SYNC").exec(admin)?;
    Ok(())
}

fn used_memory(admin: &mut redis::Connection) -> anyhow::Result<i64> {
    info_field(admin, "memory", "used_memory")?
        .parse()
        .context("used_memory is a number")
}

/// Mean time Redis spent in one script call since the last `CONFIG RESETSTAT`, µs
/// (the script runs as `EVALSHA`, or `EVAL` when Redis did not have it cached).
fn script_time(admin: &mut redis::Connection) -> anyhow::Result<f64> {
    let stats: String = redis::cmd("INFO").arg("commandstats").query(admin)?;
    let (mut calls, mut usec) = (0u64, 0u64);
    for command in ["cmdstat_evalsha:", "cmdstat_eval:"] {
        let Some(fields) = stats.lines().find_map(|line| line.strip_prefix(command)) else {
            continue;
        };
        for field in fields.split(',') {
            match field.split_once('=') {
                Some(("calls", value)) => calls += value.parse::<u64>().unwrap_or(0),
                Some(("usec", value)) => usec += value.parse::<u64>().unwrap_or(0),
                _ => {}
            }
        }
    }
    Ok(if calls == 0 {
        f64::NAN
    } else {
        usec as f64 / calls as f64
    })
}

/// One field of `INFO <section>`.
fn info_field(admin: &mut redis::Connection, section: &str, field: &str) -> anyhow::Result<String> {
    let info: String = redis::cmd("INFO").arg(section).query(admin)?;
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .map(|value| value.trim().to_owned())
        .with_context(|| format!("INFO {section} has no {field}"))
}
