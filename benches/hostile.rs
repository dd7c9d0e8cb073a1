//! Hostile-traffic benchmark: what a real rmcp server behind `AnalyticsLayer` costs in
//! memory, and what the layer records and loses, when its collector is down or misbehaves
//! and when clients send what no well-behaved client would.
//!
//! ```text
//! cargo bench --bench hostile
//! HOSTILE_BENCH_SECS=60 HOSTILE_BENCH_ONLY=outage-dead,outage-hung cargo bench --bench hostile
//! ```
//!
//! Every scenario runs twice, each time against a fresh server process (this binary,
//! started again with `HOSTILE_BENCH_SERVER` set): once **bare** (the rmcp service alone)
//! and once **layered** (behind `AnalyticsLayer::builder().identify(identity::from_bearer_token())
//! .sink(HttpSink::new(url))`, every other setting at its default). The server is the
//! examples' demo server (rmcp, stateless, JSON answers) with two tools only benchmarks
//! need (`benches/support/bench_server.rs`): `sleep { ms }` and `nest { depth }`.
//!
//! While a scenario runs, the server's resident memory (`VmRSS`) is sampled every 100 ms;
//! its peak (`VmHWM`) is read when the load stops. "Added by the layer" is the layered
//! server's peak minus the bare server's, in the same scenario. The layered server then
//! stops serving and shuts its layer down, with up to 5 s to deliver what it still holds,
//! and reports the layer's counters: events recorded, delivered, and lost by reason.
//!
//! Scenarios (`HOSTILE_BENCH_ONLY` picks some, comma separated):
//!
//! * `outage-dead`, `outage-hung`, `outage-500`, `outage-429`: 16 keep-alive connections
//!   send small `add` calls as fast as the server answers, for `HOSTILE_BENCH_SECS`
//!   (default 20), while the collector refuses connections / accepts and never answers /
//!   answers every batch 500 / answers every batch 429 with `Retry-After: 1`. Goal: the
//!   layer adds at most 40 MiB.
//! * `slow-big`: 32 connections each keep one `sleep` call of 2 s in flight, each request
//!   carrying a 3.9 MiB string argument (under rmcp's 4 MiB request limit and the layer's
//!   4 MiB capture limit), for `HOSTILE_BENCH_SECS`.
//! * `batch-415`: 4 connections send JSON-RPC batches of 100 `tools/call`s (rmcp does not
//!   take batches: the status and the start of its answer are printed), while 4 others send
//!   single `add` calls, for `HOSTILE_BENCH_SECS`. Reports the single calls' throughput,
//!   layered against bare, and what the layer recorded and lost.
//! * `huge-id`: one `add` call whose JSON-RPC `id` is a 3 MiB string. Reports the answers
//!   (bare and layered must be the same) and the largest event the collector received
//!   (after gzip decoding), with the fields that made it large.
//! * `deep-result`: one `nest` call whose result's `structuredContent` is 200 objects
//!   deep (the whole answer deeper than the 128 levels `serde_json` parses by default).
//!   Reports whether the event has a `result` and how it begins (200 characters).
//!
//! The collector runs in this process on loopback and, when it answers 202, decodes and
//! reads every batch. With `taskset` present the servers run on CPU 1 and the load
//! generator and collector on CPU 0.

#[path = "support/bench_server.rs"]
mod bench_server;
#[path = "support/closing.rs"]
mod closing;
#[path = "../examples/support/demo_server.rs"]
mod demo_server;
#[path = "support/process.rs"]
mod process;

use process::{ChildServer, env_number, memory_kib, pin_self, serve_until_stdin_closes};
use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::value::RawValue;
use tower_mcp_analytics::{AnalyticsLayer, HttpSink, identity};

use bench_server::BenchServer;
use closing::{Closing, thousands};

const SCENARIOS: [&str; 8] = [
    "outage-dead",
    "outage-hung",
    "outage-500",
    "outage-429",
    "slow-big",
    "batch-415",
    "huge-id",
    "deep-result",
];
/// How long a stopping server's layer may take to deliver what it still holds.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// No single request may take longer; one that does counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const USERS: usize = 50;
const CLIENTS: [&str; 2] = ["claude-ai", "cursor-vscode"];
/// The memory the layer may add in an outage.
const OUTAGE_GOAL_MIB: f64 = 40.0;

fn main() {
    if std::env::var_os("HOSTILE_BENCH_SERVER").is_some() {
        server_main();
        return;
    }
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let secs = Duration::from_secs(env_number("HOSTILE_BENCH_SECS", 20).max(1));
    let scenarios: Vec<&'static str> = match std::env::var("HOSTILE_BENCH_ONLY") {
        Ok(list) => {
            for wanted in list.split(',').map(str::trim) {
                if !wanted.is_empty() && !SCENARIOS.contains(&wanted) {
                    eprintln!("hostile: unknown scenario {wanted:?}; skipped");
                }
            }
            SCENARIOS
                .into_iter()
                .filter(|scenario| list.split(',').any(|wanted| wanted.trim() == *scenario))
                .collect()
        }
        Err(_) => SCENARIOS.to_vec(),
    };
    let pinned = pin_self(0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    eprintln!(
        "hostile: {} scenarios, {} s of load each, pinned: {pinned}",
        scenarios.len(),
        secs.as_secs()
    );
    runtime.block_on(async {
        for scenario in scenarios {
            run_scenario(scenario, secs, pinned).await;
        }
    });
}

// ---------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------

fn server_main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mcp = BenchServer::service(demo_server::Mode::StatelessJson);
        let mut router = Router::new().route_service("/mcp", mcp);
        let layer = std::env::var("HOSTILE_BENCH_COLLECTOR").ok().map(|url| {
            AnalyticsLayer::builder()
                .identify(identity::from_bearer_token())
                .sink(HttpSink::new(url))
                .build()
        });
        if let Some(layer) = &layer {
            router = router.layer(layer.clone());
        }
        serve_until_stdin_closes(router).await;
        closing::shut_down_and_print(layer, SHUTDOWN_DEADLINE).await;
    });
}

/// A fresh server: layered when `collector` is given.
fn start_server(collector: Option<&str>, pinned: bool) -> ChildServer {
    ChildServer::start(pinned, |command| {
        command
            .env("HOSTILE_BENCH_SERVER", "1")
            .env_remove("HOSTILE_BENCH_COLLECTOR");
        if let Some(url) = collector {
            command.env("HOSTILE_BENCH_COLLECTOR", url);
        }
    })
}

/// Samples a process's `VmRSS` every `SAMPLE_EVERY` until stopped; keeps the highest.
struct RssSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            loop {
                peak = peak.max(memory_kib(pid, "VmRSS:"));
                if stopped.load(Ordering::Relaxed) {
                    return peak;
                }
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
        });
        Self { stop, task }
    }

    /// The highest sample, in KiB.
    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------
// The collector
// ---------------------------------------------------------------------------------------

/// How the collector answers a batch.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Collector {
    /// 202, after decoding and reading the batch.
    Records,
    /// Nothing listens on its port.
    Refuses,
    /// Accepts, reads, never answers.
    Hangs,
    /// 500.
    Fails,
    /// 429 with `Retry-After: 1`.
    Throttles,
}

/// Events the collector kept whole: the first few that are not identify events.
const KEPT_EVENTS: usize = 8;
/// The most a batch may decode to.
const LARGEST_DECODED: u64 = 256 * 1024 * 1024;

/// What a recording collector received.
#[derive(Default)]
struct Received {
    batches: u64,
    events: u64,
    largest_event: usize,
    largest_batch: usize,
    unreadable: Vec<String>,
    kept: Vec<String>,
}

#[derive(Deserialize)]
struct Envelope {
    events: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
struct EventHead {
    #[serde(default)]
    method: String,
}

type Shared = Arc<Mutex<Received>>;

async fn collect(
    State((mode, received)): State<(Collector, Shared)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match mode {
        Collector::Hangs => std::future::pending().await,
        Collector::Fails => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Collector::Throttles => {
            (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")]).into_response()
        }
        Collector::Records | Collector::Refuses => {
            record(&received, &headers, &body);
            StatusCode::ACCEPTED.into_response()
        }
    }
}

/// Decodes a batch (gzip when so marked) and notes its events.
fn record(received: &Shared, headers: &HeaderMap, body: &[u8]) {
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|encoding| encoding.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let mut decoded = Vec::new();
    let body: &[u8] = if gzip {
        let read = flate2::read::GzDecoder::new(body)
            .take(LARGEST_DECODED)
            .read_to_end(&mut decoded);
        if let Err(error) = read {
            let mut received = received.lock().unwrap_or_else(PoisonError::into_inner);
            received.unreadable.push(format!("gzip: {error}"));
            return;
        }
        &decoded
    } else {
        body
    };
    let mut received = received.lock().unwrap_or_else(PoisonError::into_inner);
    received.batches += 1;
    received.largest_batch = received.largest_batch.max(body.len());
    let envelope: Envelope = match serde_json::from_slice(body) {
        Ok(envelope) => envelope,
        Err(error) => {
            received.unreadable.push(format!("batch: {error}"));
            return;
        }
    };
    for event in envelope.events {
        let text = event.get();
        received.events += 1;
        received.largest_event = received.largest_event.max(text.len());
        let method = serde_json::from_str::<EventHead>(text)
            .map(|head| head.method)
            .unwrap_or_default();
        if method != "identify" && received.kept.len() < KEPT_EVENTS {
            received.kept.push(text.to_owned());
        }
    }
}

/// A collector on 127.0.0.1 (a refused port for `Refuses`), and what it received.
async fn collector(mode: Collector) -> (String, Shared) {
    let received = Shared::default();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("address");
    if mode == Collector::Refuses {
        drop(listener);
    } else {
        let app = Router::new()
            .route("/v1/events", post(collect))
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state((mode, received.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    (format!("http://{addr}/v1/events"), received)
}

// ---------------------------------------------------------------------------------------
// The load
// ---------------------------------------------------------------------------------------

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn http_client(connections: usize) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(connections)
        .build(connector)
}

/// `_meta` of a protocol 2026-07-28 request from `client`.
fn meta(client: &str) -> String {
    format!(
        r#""_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{{"name":"{client}","version":"1.0.0"}},"io.modelcontextprotocol/clientCapabilities":{{}}}}"#
    )
}

/// One `tools/call` message; `id` is JSON (a number, or a quoted string).
fn tool_call(id: &str, tool: &str, arguments: &str, client: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{arguments},{}}}}}"#,
        meta(client)
    )
}

/// A POST to the MCP endpoint from `worker`'s user; `tool` names the single call (none
/// for a batch).
fn mcp_request(url: &str, worker: usize, tool: Option<&str>, body: String) -> Request<Full<Bytes>> {
    let mut request = Request::post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .header(
            header::AUTHORIZATION,
            format!("Bearer user-{}", worker % USERS),
        )
        .header("mcp-protocol-version", "2026-07-28");
    if let Some(tool) = tool {
        request = request
            .header("mcp-method", "tools/call")
            .header("mcp-name", tool);
    }
    request.body(Full::new(Bytes::from(body))).expect("request")
}

/// The answers to one kind of request: how many by status, and the first answer of each
/// status.
#[derive(Default)]
struct Tally {
    sent: u64,
    /// Status code (or `error`, `timeout`) and count.
    statuses: BTreeMap<String, u64>,
    first: BTreeMap<String, Bytes>,
}

impl Tally {
    fn answered_ok(&self) -> u64 {
        self.statuses.get("200").copied().unwrap_or(0)
    }

    fn merge(&mut self, other: Tally) {
        self.sent += other.sent;
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        for (status, body) in other.first {
            self.first.entry(status).or_insert(body);
        }
    }

    fn statuses(&self) -> String {
        self.statuses
            .iter()
            .map(|(status, count)| format!("{status} × {}", thousands(*count)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

async fn send(client: &HttpClient, request: Request<Full<Bytes>>, tally: &mut Tally) {
    tally.sent += 1;
    let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let response = client.request(request).await.map_err(|_| "error")?;
        let status = response.status().as_u16().to_string();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|_| "error")?
            .to_bytes();
        Ok::<_, &str>((status, body))
    })
    .await;
    let (status, body) = match answer {
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) => (error.to_owned(), Bytes::new()),
        Err(_) => ("timeout".to_owned(), Bytes::new()),
    };
    *tally.statuses.entry(status.clone()).or_default() += 1;
    tally.first.entry(status).or_insert(body);
}

/// `connections` connections, each sending `make(worker, sequence)` as soon as its
/// previous answer is read, until `until` (at least once each).
async fn repeat<F>(
    client: &HttpClient,
    connections: usize,
    first_worker: usize,
    until: Instant,
    make: F,
) -> Tally
where
    F: Fn(usize, u64) -> Request<Full<Bytes>> + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let tasks: Vec<_> = (first_worker..first_worker + connections)
        .map(|worker| {
            let client = client.clone();
            let make = make.clone();
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut sequence = worker as u64 * 1_000_000;
                loop {
                    sequence += 1;
                    send(&client, make(worker, sequence), &mut tally).await;
                    if Instant::now() >= until {
                        return tally;
                    }
                }
            })
        })
        .collect();
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(task.await.expect("load task"));
    }
    tally
}

fn add_calls(url: &str) -> impl Fn(usize, u64) -> Request<Full<Bytes>> + Send + Sync + 'static {
    let url = url.to_owned();
    move |worker, sequence| {
        let client = CLIENTS[worker % CLIENTS.len()];
        let arguments = format!(r#"{{"a":{sequence},"b":2}}"#);
        let body = tool_call(&sequence.to_string(), "add", &arguments, client);
        mcp_request(&url, worker, Some("add"), body)
    }
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

/// The collector a scenario's layered server delivers to, and what the scenario is.
fn describe(scenario: &str) -> (Collector, &'static str) {
    match scenario {
        "outage-dead" => (
            Collector::Refuses,
            "the collector refuses connections; 16 connections of `add` calls",
        ),
        "outage-hung" => (
            Collector::Hangs,
            "the collector accepts and never answers; 16 connections of `add` calls",
        ),
        "outage-500" => (
            Collector::Fails,
            "the collector answers every batch 500; 16 connections of `add` calls",
        ),
        "outage-429" => (
            Collector::Throttles,
            "the collector answers every batch 429 with `Retry-After: 1`; 16 connections of `add` calls",
        ),
        "slow-big" => (
            Collector::Records,
            "32 connections, each with one 2 s `sleep` call carrying 3.9 MiB of arguments in flight",
        ),
        "batch-415" => (
            Collector::Records,
            "4 connections of JSON-RPC batches of 100 `tools/call`s, 4 of single `add` calls",
        ),
        "huge-id" => (
            Collector::Records,
            "one `add` call whose JSON-RPC id is a 3 MiB string",
        ),
        _ => (
            Collector::Records,
            "one `nest` call whose result is 200 objects deep",
        ),
    }
}

/// One server's run of a scenario.
struct Run {
    label: &'static str,
    /// The answers, by kind of request.
    tallies: Vec<(&'static str, Tally)>,
    elapsed: Duration,
    rss_before: u64,
    rss_peak_sampled: u64,
    hwm: u64,
    rss_after: u64,
    closing: Closing,
    received: Option<Shared>,
}

/// Sends the scenario's requests to `url` (for `secs` where it lasts).
async fn load(scenario: &str, url: &str, secs: Duration) -> Vec<(&'static str, Tally)> {
    let until = Instant::now() + secs;
    match scenario {
        "slow-big" => {
            const BIG: usize = 3_900 * 1024;
            let client = http_client(32);
            let padding: Arc<str> = Arc::from("x".repeat(BIG).as_str());
            let url = url.to_owned();
            let tally = repeat(&client, 32, 0, until, move |worker, sequence| {
                let client = CLIENTS[worker % CLIENTS.len()];
                let arguments = format!(r#"{{"ms":2000,"padding":"{padding}"}}"#);
                let body = tool_call(&sequence.to_string(), "sleep", &arguments, client);
                mcp_request(&url, worker, Some("sleep"), body)
            })
            .await;
            vec![("sleep 2 s, 3.9 MiB", tally)]
        }
        "batch-415" => {
            let client = http_client(8);
            let batch_url = url.to_owned();
            let batches = repeat(&client, 4, 0, until, move |worker, sequence| {
                let client = CLIENTS[worker % CLIENTS.len()];
                let calls: Vec<String> = (0..100)
                    .map(|index| {
                        let id = sequence * 100 + index;
                        tool_call(&id.to_string(), "add", r#"{"a":1,"b":2}"#, client)
                    })
                    .collect();
                mcp_request(&batch_url, worker, None, format!("[{}]", calls.join(",")))
            });
            let singles = repeat(&client, 4, 4, until, add_calls(url));
            let (batches, singles) = tokio::join!(batches, singles);
            vec![("single add", singles), ("batch of 100", batches)]
        }
        "huge-id" => {
            let client = http_client(1);
            let id = format!("\"{}\"", "i".repeat(3 * 1024 * 1024));
            let body = tool_call(&id, "add", r#"{"a":1,"b":2}"#, CLIENTS[0]);
            let mut tally = Tally::default();
            send(&client, mcp_request(url, 0, Some("add"), body), &mut tally).await;
            vec![("add, 3 MiB id", tally)]
        }
        "deep-result" => {
            let client = http_client(1);
            let body = tool_call("1", "nest", r#"{"depth":200}"#, CLIENTS[0]);
            let mut tally = Tally::default();
            send(&client, mcp_request(url, 0, Some("nest"), body), &mut tally).await;
            vec![("nest 200 deep", tally)]
        }
        _ => {
            let client = http_client(16);
            vec![("add", repeat(&client, 16, 0, until, add_calls(url)).await)]
        }
    }
}

async fn run_scenario(scenario: &'static str, secs: Duration, pinned: bool) {
    let (mode, description) = describe(scenario);
    eprintln!("hostile: {scenario}");
    let mut runs = Vec::new();
    for layered in [false, true] {
        let (collector_url, received) = if layered {
            let (url, received) = collector(mode).await;
            (Some(url), Some(received))
        } else {
            (None, None)
        };
        let server = start_server(collector_url.as_deref(), pinned);
        let rss_before = server.memory_kib("VmRSS:");
        let sampler = RssSampler::start(server.pid());
        let started = Instant::now();
        let tallies = load(scenario, &server.url, secs).await;
        let elapsed = started.elapsed();
        let rss_peak_sampled = sampler.stop().await;
        let hwm = server.memory_kib("VmHWM:");
        let rss_after = server.memory_kib("VmRSS:");
        let closing = Closing::parse(&server.stop());
        runs.push(Run {
            label: if layered { "layered" } else { "bare" },
            tallies,
            elapsed,
            rss_before,
            rss_peak_sampled,
            hwm,
            rss_after,
            closing,
            received,
        });
    }
    report(scenario, description, &runs);
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn added_mib(layered: u64, bare: u64) -> f64 {
    (layered as f64 - bare as f64) / 1024.0
}

/// The start of an answer, as text on one line.
fn head(body: &[u8], chars: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let mut head: String = text.chars().take(chars).collect();
    head = head.replace(['\n', '\r'], " ").replace('|', "\\|");
    if text.chars().count() > chars {
        head.push('…');
    }
    head
}

fn report(scenario: &str, description: &str, runs: &[Run]) {
    let [bare, layered] = runs else {
        return;
    };
    println!();
    println!("## {scenario}: {description}");
    println!();
    println!("| server | requests | answers by status | answered 200 per second | load time |");
    println!("|---|---|---|---|---|");
    for run in runs {
        for (kind, tally) in &run.tallies {
            // A rate means nothing for a scenario of one request.
            let rate = if tally.sent > 1 {
                format!(
                    "{:.0}",
                    tally.answered_ok() as f64 / run.elapsed.as_secs_f64()
                )
            } else {
                "-".to_owned()
            };
            println!(
                "| {} | {kind}: {} | {} | {rate} | {:.1} s |",
                run.label,
                thousands(tally.sent),
                tally.statuses(),
                run.elapsed.as_secs_f64(),
            );
        }
    }
    println!();
    println!(
        "| server | resident before the load | peak resident (sampled every 100 ms) | peak (VmHWM) | resident when the load stopped |"
    );
    println!("|---|---|---|---|---|");
    for run in runs {
        println!(
            "| {} | {} | {} | {} | {} |",
            run.label,
            mib(run.rss_before),
            mib(run.rss_peak_sampled),
            mib(run.hwm),
            mib(run.rss_after),
        );
    }
    println!();
    let added_sampled = added_mib(layered.rss_peak_sampled, bare.rss_peak_sampled);
    let added_hwm = added_mib(layered.hwm, bare.hwm);
    let goal = if scenario.starts_with("outage-") {
        format!(
            " (goal ≤ {OUTAGE_GOAL_MIB:.0} MiB: {})",
            if added_hwm <= OUTAGE_GOAL_MIB {
                "met"
            } else {
                "**missed**"
            }
        )
    } else {
        String::new()
    };
    println!(
        "Added by the layer: **{added_hwm:+.1} MiB** at the peak (VmHWM), {added_sampled:+.1} MiB \
         between sampled peaks{goal}."
    );
    println!();
    println!(
        "Layer counters, after its shutdown (up to {} s to deliver what it still held):",
        SHUTDOWN_DEADLINE.as_secs()
    );
    println!();
    println!("| server | {}", Closing::HEADER);
    println!("|---|{}", Closing::RULE);
    println!("| layered | {}", layered.closing.row());
    match scenario {
        "batch-415" => report_batches(bare, layered),
        "huge-id" | "deep-result" => report_single(scenario, bare, layered),
        _ => {}
    }
}

fn report_batches(bare: &Run, layered: &Run) {
    let rate = |run: &Run| {
        run.tallies
            .iter()
            .find(|(kind, _)| *kind == "single add")
            .map_or(0.0, |(_, tally)| {
                tally.answered_ok() as f64 / run.elapsed.as_secs_f64()
            })
    };
    println!();
    println!(
        "Single `add` calls beside the batches: {:.0}/s layered, {:.0}/s bare: **{:.3}** of bare.",
        rate(layered),
        rate(bare),
        rate(layered) / rate(bare).max(f64::MIN_POSITIVE),
    );
    for run in [bare, layered] {
        if let Some((_, tally)) = run.tallies.iter().find(|(kind, _)| *kind == "batch of 100") {
            for (status, body) in &tally.first {
                println!(
                    "{} server answered a batch {status}: `{}`",
                    run.label,
                    head(body, 160)
                );
            }
        }
    }
    let recorded = layered.closing.count("recorded");
    println!(
        "Events recorded: {} for {} single calls answered and {} batches sent.",
        thousands(recorded),
        thousands(
            layered
                .tallies
                .iter()
                .find(|(kind, _)| *kind == "single add")
                .map_or(0, |(_, tally)| tally.answered_ok())
        ),
        thousands(
            layered
                .tallies
                .iter()
                .find(|(kind, _)| *kind == "batch of 100")
                .map_or(0, |(_, tally)| tally.sent)
        ),
    );
}

fn report_single(scenario: &str, bare: &Run, layered: &Run) {
    let answer = |run: &Run| -> Option<(String, Bytes)> {
        let (_, tally) = run.tallies.first()?;
        let (status, body) = tally.first.iter().next()?;
        Some((status.clone(), body.clone()))
    };
    println!();
    match (answer(bare), answer(layered)) {
        (Some((bare_status, bare_body)), Some((status, body))) => println!(
            "Answers: bare {bare_status} with {} bytes, layered {status} with {} bytes; \
             the same bytes: {}.",
            thousands(bare_body.len() as u64),
            thousands(body.len() as u64),
            if bare_status == status && bare_body == body {
                "yes"
            } else {
                "**no**"
            },
        ),
        _ => println!("Answers: missing."),
    }
    let Some(received) = &layered.received else {
        return;
    };
    let received = received.lock().unwrap_or_else(PoisonError::into_inner);
    println!(
        "Collector: batches {}, events {}; largest event {} bytes, largest batch {} bytes \
         (after gzip decoding).",
        thousands(received.batches),
        thousands(received.events),
        thousands(received.largest_event as u64),
        thousands(received.largest_batch as u64),
    );
    for problem in &received.unreadable {
        println!("Collector could not read a batch: {problem}");
    }
    let Some(event) = received.kept.first() else {
        println!("No event for the call reached the collector.");
        return;
    };
    let fields: BTreeMap<String, Box<RawValue>> = match serde_json::from_str(event) {
        Ok(fields) => fields,
        Err(error) => {
            println!("The call's event is not a JSON object: {error}");
            return;
        }
    };
    let sizes: Vec<String> = fields
        .iter()
        .map(|(name, value)| format!("{name} {}", thousands(value.get().len() as u64)))
        .collect();
    println!(
        "The call's event, {} bytes; its fields and their sizes in bytes: {}.",
        thousands(event.len() as u64),
        sizes.join(", ")
    );
    let field = |name: &str| {
        fields
            .get(name)
            .map(|value| head(value.get().as_bytes(), 200))
    };
    if scenario == "huge-id" {
        if let Some(id) = field("request_id") {
            println!("Its `request_id` begins: `{id}`");
        }
    } else {
        match field("result") {
            Some(result) => println!("Its `result` is there and begins: `{result}`"),
            None => println!("Its `result` is **absent**."),
        }
    }
    for name in ["outcome", "error"] {
        if let Some(value) = field(name) {
            println!("Its `{name}`: `{value}`");
        }
    }
}
