//! Ingest benchmark: how fast the collector stores v1 batches into SQLite, over real HTTP.
//!
//! ```text
//! cargo bench -p mcp-analytics-collector --bench ingest
//! INGEST_BENCH_EVENTS=50000 INGEST_BENCH_RUNS=1 INGEST_BENCH_SENDERS=4 INGEST_BENCH_BATCHES=100 \
//!     cargo bench -p mcp-analytics-collector --bench ingest
//! ```
//!
//! A timed binary (no criterion). For every run it starts a collector in this process
//! (`Collector::builder().database(<temp dir>/collector.db).build()`, default settings:
//! WAL, `synchronous = FULL`, group commit on its one writer thread), serves it on a
//! loopback listener, and has `S` concurrent senders, each with a `reqwest::Client` of its
//! own (one keep-alive connection), POST pre-built batches until `INGEST_BENCH_EVENTS`
//! events are sent. Each sender takes the next batch as soon as its previous one is
//! answered, as the layer's `HttpSink` does with a window of `S` batches in flight.
//!
//! **The events.** They look like the layer's: time-sortable unique ids, timestamps
//! spread over the last hour (in order), 200 users (Zipf-weighted), 8 clients, 40 tools,
//! 10% anonymous; about 85% `tools/call` with a ~300-byte `arguments` object and a short
//! result, the rest `tools/list`, `initialize`, `notifications/initialized`,
//! `resources/read` and `prompts/get`. Half the events carry a `session_id` (the layer's
//! MCP session of their user and client, a new one every 20 minutes); the other half carry
//! none, so the collector groups them (user + client + 30-minute gap, a `pair_sessions`
//! lookup per event; anonymous ones become single-event sessions).
//! Bodies are the v1 envelope, gzipped (fast level) above 1 KiB as the layer does, built
//! before any timing, the same bodies for every run of a batch size (each run has a fresh
//! database).
//!
//! **Reported**, per variant (senders × events per batch), medians over
//! `INGEST_BENCH_RUNS` runs: events stored per second of wall time (first POST sent to last
//! answer read), batch round trip p50 and p99, database file size per event (after a
//! `wal_checkpoint(TRUNCATE)`); and where the time goes: how busy the collector's writer
//! thread was over the wall time, its CPU per event and the kernel's share of it, the
//! bytes it passed to `write`/`pwrite` per event (WAL frames and checkpoints; its `wchar`
//! in `/proc`), and the process's CPU per event (collector and senders together). The
//! senders run on a runtime of their own, in this process. Every answer
//! must be a 200: other statuses and transport errors are counted and printed, and the
//! stored count is checked against `SELECT count(*)`.
//!
//! Variants alternate within a round, the order reversed every other round.
//!
//! Environment: `INGEST_BENCH_EVENTS` (per run, default 500,000), `INGEST_BENCH_RUNS`
//! (default 3), `INGEST_BENCH_SENDERS` (comma separated, default `1,4,16`),
//! `INGEST_BENCH_BATCHES` (events per batch, comma separated, default `100,1000`),
//! `INGEST_BENCH_DIR` (where the temporary databases go, default the system temp dir).
//! The goal reported against: at least 50,000 events/s with batches of 100.

#[path = "support/workload.rs"]
mod workload;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use mcp_analytics_collector::Collector;
use workload::{
    CLIENTS, HOUR, Rng, Spec, TOOLS, Zipf, batch_body, derived_id, env_number, environment,
    event_json, median, now_ms, percentile, show_us, thousands, time_id,
};

/// The events/s goal with batches of 100.
const GOAL: f64 = 50_000.0;
/// Users in the workload.
const USERS: u32 = 200;
/// Share of anonymous events.
const ANONYMOUS: f64 = 0.10;

struct Settings {
    events: usize,
    runs: usize,
    senders: Vec<usize>,
    batches: Vec<usize>,
    dir: PathBuf,
}

fn list(name: &str, default: &[usize]) -> Vec<usize> {
    let parsed: Vec<usize> = std::env::var(name)
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|n| n.trim().replace('_', "").parse().ok())
                .filter(|&n| n > 0)
                .collect()
        })
        .unwrap_or_default();
    if parsed.is_empty() {
        default.to_vec()
    } else {
        parsed
    }
}

impl Settings {
    fn from_env() -> Self {
        Self {
            events: env_number("INGEST_BENCH_EVENTS", 500_000).max(1),
            runs: env_number("INGEST_BENCH_RUNS", 3).max(1),
            senders: list("INGEST_BENCH_SENDERS", &[1, 4, 16]),
            batches: list("INGEST_BENCH_BATCHES", &[100, 1000]),
            dir: std::env::var_os("INGEST_BENCH_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
        }
    }
}

/// One pre-built POST.
struct Body {
    id: String,
    bytes: Bytes,
    gzip: bool,
}

/// The workload's events, in time order.
fn specs(events: usize) -> Vec<Spec> {
    let mut rng = Rng::new(0x001A_6E57);
    let users = Zipf::new(USERS as usize, 0.8);
    let clients = Zipf::new(CLIENTS.len(), 1.0);
    let tools = Zipf::new(TOOLS.len(), 1.0);
    let start = now_ms() - HOUR;
    let step = HOUR as f64 / events as f64;
    (0..events)
        .map(|n| {
            let ts = start + (n as f64 * step) as i64;
            let user = (!rng.chance(ANONYMOUS)).then(|| users.pick(&mut rng) as u32);
            let client = clients.pick(&mut rng) as u8;
            let x = rng.unit();
            let method = match x {
                _ if x < 0.85 => "tools/call",
                _ if x < 0.90 => "tools/list",
                _ if x < 0.93 => "initialize",
                _ if x < 0.96 => "notifications/initialized",
                _ if x < 0.99 => "resources/read",
                _ => "prompts/get",
            };
            let tool = tools.pick(&mut rng) as u16;
            let pair = u64::from(user.map_or(u32::MAX, |u| u)) * 16 + u64::from(client);
            // Half the events carry an MCP session (one per pair, a new one every 20
            // minutes); the collector groups the other half.
            let named = rng.chance(0.5);
            let session = named.then(|| pair * 1_000_000 + (ts / (20 * 60_000)) as u64);
            Spec::drawn(ts, method, tool, client, user, session, &mut rng)
        })
        .collect()
}

/// Builds every batch body for one batch size (two threads); returns them and the mean
/// uncompressed event size.
fn bodies(specs: &[Spec], batch: usize, tag: &str) -> (Vec<Body>, f64, f64) {
    let chunks: Vec<(usize, &[Spec])> = specs.chunks(batch).enumerate().collect();
    let half = chunks.len().div_ceil(2);
    let build = |part: &[(usize, &[Spec])]| -> (Vec<Body>, usize, usize) {
        let mut json_bytes = 0;
        let mut wire_bytes = 0;
        let built = part
            .iter()
            .map(|&(index, chunk)| {
                let first = index * batch;
                let events: Vec<String> = chunk
                    .iter()
                    .enumerate()
                    .map(|(k, spec)| {
                        let n = (first + k) as u64;
                        let mut rng = Rng::new(n);
                        let id = time_id("evt", spec.ts, n, &mut rng);
                        event_json(spec, &id, n % 1000, &mut rng)
                    })
                    .collect();
                json_bytes += events.iter().map(String::len).sum::<usize>();
                let id = derived_id(&format!("bat_{tag}"), index as u64);
                let (bytes, gzip) = batch_body(&id, &events);
                wire_bytes += bytes.len();
                Body {
                    id,
                    bytes: Bytes::from(bytes),
                    gzip,
                }
            })
            .collect();
        (built, json_bytes, wire_bytes)
    };
    let (mut first, second) = std::thread::scope(|scope| {
        let other = scope.spawn(|| build(&chunks[half..]));
        let mine = build(&chunks[..half]);
        (mine, other.join().expect("builder thread"))
    });
    first.0.extend(second.0);
    let events = specs.len() as f64;
    (
        first.0,
        (first.1 + second.1) as f64 / events,
        (first.2 + second.2) as f64 / events,
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Variant {
    senders: usize,
    batch: usize,
}

impl Variant {
    fn name(self) -> String {
        format!("{:>2} × {:>4}", self.senders, self.batch)
    }
}

#[derive(Default, Clone)]
struct Figures {
    events_per_second: f64,
    p50_us: f64,
    p99_us: f64,
    db_bytes_per_event: f64,
    writer_busy: f64,
    /// Share of the writer's CPU spent in the kernel.
    writer_system: f64,
    writer_cpu_us_per_event: f64,
    /// Bytes the writer thread wrote (WAL frames, checkpoints) per event stored.
    written_per_event: f64,
    cpu_us_per_event: f64,
    stored: u64,
    counted: u64,
    failures: BTreeMap<String, u64>,
}

#[derive(Default)]
struct Sent {
    latencies_us: Vec<u64>,
    stored: u64,
    failures: BTreeMap<String, u64>,
}

#[derive(serde::Deserialize)]
struct Answer {
    stored: u64,
}

async fn sender(
    url: String,
    bodies: Arc<Vec<Body>>,
    next: Arc<AtomicUsize>,
) -> anyhow::Result<Sent> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(120))
        .build()
        .context("reqwest client")?;
    let mut sent = Sent::default();
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let Some(body) = bodies.get(index) else {
            return Ok(sent);
        };
        let mut request = client
            .post(&url)
            .header("content-type", "application/json")
            .header("idempotency-key", &body.id)
            .header("user-agent", "tower-mcp-analytics/0.1.0");
        if body.gzip {
            request = request.header("content-encoding", "gzip");
        }
        let started = Instant::now();
        let answer = match request.body(body.bytes.clone()).send().await {
            Ok(response) => {
                let status = response.status();
                let bytes = response.bytes().await;
                (status, bytes)
            }
            Err(error) => {
                let kind = if error.is_timeout() {
                    "timeout"
                } else if error.is_connect() {
                    "connect error"
                } else {
                    "transport error"
                };
                *sent.failures.entry(kind.into()).or_default() += 1;
                continue;
            }
        };
        sent.latencies_us.push(started.elapsed().as_micros() as u64);
        match answer {
            (status, Ok(bytes)) if status == reqwest::StatusCode::OK => {
                match serde_json::from_slice::<Answer>(&bytes) {
                    Ok(answer) => sent.stored += answer.stored,
                    Err(_) => *sent.failures.entry("200, unreadable".into()).or_default() += 1,
                }
            }
            (status, _) => {
                *sent
                    .failures
                    .entry(status.as_u16().to_string())
                    .or_default() += 1
            }
        }
    }
}

/// CPU time (user, system; µs) and bytes passed to `write`/`pwrite` of one thread, or of
/// the process (`task` None).
#[derive(Clone, Copy, Default)]
struct Usage {
    user_us: f64,
    system_us: f64,
    written: f64,
}

impl std::ops::Sub for Usage {
    type Output = Self;
    fn sub(self, earlier: Self) -> Self {
        Self {
            user_us: self.user_us - earlier.user_us,
            system_us: self.system_us - earlier.system_us,
            written: self.written - earlier.written,
        }
    }
}

fn usage(task: Option<&str>) -> Option<Usage> {
    let dir = match task {
        Some(tid) => format!("/proc/self/task/{tid}"),
        None => "/proc/self".into(),
    };
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime, in ticks of USER_HZ (100 on Linux).
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    let written = std::fs::read_to_string(format!("{dir}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|line| line.strip_prefix("wchar:"))
                .and_then(|value| value.trim().parse().ok())
        })
        .unwrap_or(f64::NAN);
    Some(Usage {
        user_us: user * 10_000.0,
        system_us: system * 10_000.0,
        written,
    })
}

/// The thread ids named `collector-writer` alive now.
fn writer_threads() -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| {
            let tid = task.file_name().to_string_lossy().into_owned();
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            // `comm` keeps 15 bytes of the name: "collector-write".
            matches!(comm.trim(), "collector-write" | "collector-writer").then_some(tid)
        })
        .collect()
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |meta| meta.len())
}

fn run_once(
    variant: Variant,
    bodies: &Arc<Vec<Body>>,
    dir: &Path,
    server: &tokio::runtime::Runtime,
    clients: &tokio::runtime::Runtime,
) -> anyhow::Result<Figures> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let db = dir.join("collector.db");
    let before_threads = writer_threads();
    let collector = Collector::builder()
        .database(&db)
        .build()
        .context("building the collector")?;
    // The thread names itself once it runs: wait for it.
    let mut writer = None;
    for _ in 0..200 {
        writer = writer_threads()
            .into_iter()
            .find(|tid| !before_threads.contains(tid));
        if writer.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let listener = server.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let address: SocketAddr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = server.spawn(collector.serve(listener, async move {
        let _ = stopped.await;
    }));
    let url = format!("http://{address}/v1/events");

    let writer_before = writer.as_deref().and_then(|tid| usage(Some(tid)));
    let process_before = usage(None);
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let sent: Vec<Sent> = clients.block_on(async {
        let tasks: Vec<_> = (0..variant.senders)
            .map(|_| tokio::spawn(sender(url.clone(), Arc::clone(bodies), Arc::clone(&next))))
            .collect();
        let mut sent = Vec::new();
        for task in tasks {
            sent.push(task.await.context("sender task")??);
        }
        anyhow::Ok(sent)
    })?;
    let wall = started.elapsed();
    let process = usage(None)
        .zip(process_before)
        .map(|(now, then)| now - then);
    let writer_usage = writer
        .as_deref()
        .and_then(|tid| usage(Some(tid)))
        .zip(writer_before)
        .map(|(now, then)| now - then);

    let _ = stop.send(());
    server
        .block_on(served)
        .context("serve task")?
        .context("serve")?;

    let connection = rusqlite::Connection::open(&db)?;
    connection.busy_timeout(Duration::from_secs(30))?;
    let counted: i64 = connection.query_row("SELECT count(*) FROM events", [], |row| row.get(0))?;
    connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    drop(connection);
    let db_bytes = file_len(&db) + file_len(&dir.join("collector.db-wal"));
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;

    let mut latencies: Vec<u64> = Vec::new();
    let mut stored = 0;
    let mut failures = BTreeMap::new();
    for part in sent {
        latencies.extend(part.latencies_us);
        stored += part.stored;
        for (kind, count) in part.failures {
            *failures.entry(kind).or_default() += count;
        }
    }
    latencies.sort_unstable();
    let seconds = wall.as_secs_f64();
    Ok(Figures {
        events_per_second: stored as f64 / seconds,
        p50_us: percentile(&latencies, 0.50).unwrap_or(0) as f64,
        p99_us: percentile(&latencies, 0.99).unwrap_or(0) as f64,
        db_bytes_per_event: db_bytes as f64 / (counted.max(1) as f64),
        writer_busy: writer_usage.map_or(f64::NAN, |u| (u.user_us + u.system_us) / 1e6 / seconds),
        writer_system: writer_usage.map_or(f64::NAN, |u| {
            u.system_us / (u.user_us + u.system_us).max(1.0)
        }),
        writer_cpu_us_per_event: writer_usage.map_or(f64::NAN, |u| {
            (u.user_us + u.system_us) / stored.max(1) as f64
        }),
        written_per_event: writer_usage.map_or(f64::NAN, |u| u.written / stored.max(1) as f64),
        cpu_us_per_event: process.map_or(f64::NAN, |u| {
            (u.user_us + u.system_us) / stored.max(1) as f64
        }),
        stored,
        counted: counted as u64,
        failures,
    })
}

fn failures_text(failures: &BTreeMap<String, u64>) -> String {
    if failures.is_empty() {
        return "none".into();
    }
    failures
        .iter()
        .map(|(kind, count)| format!("{count} × {kind}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let settings = Settings::from_env();
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("collector")
        .enable_all()
        .build()
        .context("server runtime")?;
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("senders")
        .enable_all()
        .build()
        .context("client runtime")?;

    println!("ingest: cargo bench -p mcp-analytics-collector --bench ingest");
    println!(
        "environment: {}; collector on a 2-worker tokio runtime (as the binary's \
         #[tokio::main] here), senders on a 1-worker runtime, same process; database in {}",
        environment(),
        settings.dir.display()
    );
    println!(
        "settings: INGEST_BENCH_EVENTS={} INGEST_BENCH_RUNS={} INGEST_BENCH_SENDERS={} \
         INGEST_BENCH_BATCHES={}",
        settings.events,
        settings.runs,
        settings
            .senders
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(","),
        settings
            .batches
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(","),
    );

    let specs = specs(settings.events);
    let anonymous = specs.iter().filter(|spec| spec.user.is_none()).count();
    let named = specs.iter().filter(|spec| spec.session.is_some()).count();
    let calls = specs
        .iter()
        .filter(|spec| spec.method == "tools/call")
        .count();
    let mut built: BTreeMap<usize, Arc<Vec<Body>>> = BTreeMap::new();
    for &batch in &settings.batches {
        let started = Instant::now();
        let (bodies, json_per_event, wire_per_event) = bodies(&specs, batch, &batch.to_string());
        println!(
            "workload, batches of {batch}: {} events in {} batches over the last hour; \
             {:.1}% tools/call, {:.1}% anonymous, {:.1}% with a session_id; event JSON {:.0} B \
             on average, {:.0} B per event on the wire ({}) (built in {:.1} s)",
            thousands(specs.len() as u64),
            thousands(bodies.len() as u64),
            100.0 * calls as f64 / specs.len() as f64,
            100.0 * anonymous as f64 / specs.len() as f64,
            100.0 * named as f64 / specs.len() as f64,
            json_per_event,
            wire_per_event,
            if bodies.iter().all(|body| body.gzip) {
                "gzip"
            } else {
                "gzip above 1 KiB"
            },
            started.elapsed().as_secs_f64(),
        );
        built.insert(batch, Arc::new(bodies));
    }
    drop(specs);
    println!();

    let variants: Vec<Variant> = settings
        .batches
        .iter()
        .flat_map(|&batch| {
            settings
                .senders
                .iter()
                .map(move |&senders| Variant { senders, batch })
        })
        .collect();
    let mut results: Vec<Vec<Figures>> = vec![Vec::new(); variants.len()];
    let mut serial = 0;
    for round in 0..settings.runs {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..variants.len()).collect()
        } else {
            (0..variants.len()).rev().collect()
        };
        for index in order {
            let variant = variants[index];
            serial += 1;
            let dir = settings.dir.join(format!(
                "collector-ingest-bench-{}-{serial}",
                std::process::id()
            ));
            let figures = run_once(variant, &built[&variant.batch], &dir, &server, &clients)?;
            eprintln!(
                "run {} {}: {:>7.0} events/s  p50 {:>9}  p99 {:>9}  {:.0} B/event  writer \
                 busy {:.0}% ({:.1} µs/event, {:.0}% kernel, wrote {:.0} B/event)  process \
                 {:.1} µs CPU/event  stored {} (count {})  non-200: {}  load {}",
                round + 1,
                variant.name(),
                figures.events_per_second,
                show_us(figures.p50_us),
                show_us(figures.p99_us),
                figures.db_bytes_per_event,
                100.0 * figures.writer_busy,
                figures.writer_cpu_us_per_event,
                100.0 * figures.writer_system,
                figures.written_per_event,
                figures.cpu_us_per_event,
                figures.stored,
                figures.counted,
                failures_text(&figures.failures),
                workload::load_average(),
            );
            results[index].push(figures);
        }
    }

    println!(
        "Medians of {} runs; {} events per run.",
        settings.runs,
        thousands(settings.events as u64)
    );
    println!();
    println!(
        "| senders | events per batch | events/s | vs goal | batch p50 | batch p99 | \
         DB file per event | non-200 / errors (all runs) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut problems = Vec::new();
    let mut costs = Vec::new();
    for (variant, runs) in variants.iter().zip(&results) {
        let pick = |f: fn(&Figures) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
        let mut failures: BTreeMap<String, u64> = BTreeMap::new();
        for run in runs {
            for (kind, count) in &run.failures {
                *failures.entry(kind.clone()).or_default() += count;
            }
            if run.stored != settings.events as u64 || run.counted != settings.events as u64 {
                problems.push(format!(
                    "{}: stored {} and counted {} of {} events",
                    variant.name(),
                    run.stored,
                    run.counted,
                    settings.events
                ));
            }
        }
        let rate = pick(|f| f.events_per_second);
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.0} B | {} |",
            variant.senders,
            thousands(variant.batch as u64),
            thousands(rate.round() as u64),
            if variant.batch == 100 {
                format!("{:.2}x", rate / GOAL)
            } else {
                "-".into()
            },
            show_us(pick(|f| f.p50_us)),
            show_us(pick(|f| f.p99_us)),
            pick(|f| f.db_bytes_per_event),
            failures_text(&failures),
        );
        costs.push(format!(
            "| {} | {} | {:.0}% | {:.1} µs | {:.0}% | {} | {:.1} µs |",
            variant.senders,
            thousands(variant.batch as u64),
            100.0 * pick(|f| f.writer_busy),
            pick(|f| f.writer_cpu_us_per_event),
            100.0 * pick(|f| f.writer_system),
            thousands(pick(|f| f.written_per_event).round() as u64),
            pick(|f| f.cpu_us_per_event),
        ));
    }
    println!();
    println!(
        "Where the time goes (medians): the collector's one writer thread (SQLite inserts, \
         session grouping, WAL writes and fsync) and the whole process (collector and senders)."
    );
    println!();
    println!(
        "| senders | events per batch | writer thread busy | writer CPU per event | of it in the \
         kernel | bytes the writer wrote per event | process CPU per event |"
    );
    println!("|---|---|---|---|---|---|---|");
    for line in costs {
        println!("{line}");
    }
    println!();
    let best_100 = variants
        .iter()
        .zip(&results)
        .filter(|(variant, _)| variant.batch == 100)
        .map(|(variant, runs)| {
            (
                variant.senders,
                median(&runs.iter().map(|f| f.events_per_second).collect::<Vec<_>>()),
            )
        })
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((senders, rate)) = best_100 {
        println!(
            "goal: ≥ {} events/s with batches of 100; best here {} events/s ({} senders): {}",
            thousands(GOAL as u64),
            thousands(rate.round() as u64),
            senders,
            if rate >= GOAL { "met" } else { "MISSED" }
        );
    }
    if problems.is_empty() {
        println!("every run stored every event (answers' `stored` and `SELECT count(*)` agree)");
        Ok(())
    } else {
        for problem in &problems {
            println!("PROBLEM: {problem}");
        }
        bail!("{} runs did not store every event", problems.len())
    }
}
