//! Exactly once, end to end: every event the layer counts as delivered is stored by the
//! collector exactly once, even when the collector is SIGKILLed in the middle of a run.
//!
//! `under_load_with_two_kills_every_delivered_event_is_stored_once` runs the whole chain
//! with real parts only: the demo rmcp server behind `tower_mcp_analytics::AnalyticsLayer`
//! served by axum on loopback, four real rmcp clients (two legacy `initialize` clients, two
//! 2026-07-28 clients) calling tools concurrently (successes, tool errors, JSON-RPC
//! errors), the layer's real `HttpSink`, and the real collector binary as a child process
//! writing a real SQLite file. While the clients call, the collector is SIGKILLed and
//! restarted on the same port and file twice, each time only after the layer has seen a
//! send fail (so the kills really hit delivery). At the end the SQLite file holds exactly
//! `stats.delivered` events, no id twice, and `recorded = delivered + dropped`.
//!
//! `a_batch_sent_again_or_overlapping_is_stored_once` POSTs batches by hand to the binary:
//! the same bytes twice, the same batch eight times at once, the same batch again after a
//! SIGKILL and restart, and a batch under a new id repeating stored events: each event is
//! stored once, and the answers say what happened (`stored`, `duplicates`, `replayed`).

#[path = "support/collector_process.rs"]
mod collector_process;
#[path = "../../examples/support/demo_server.rs"]
mod demo_server;
#[path = "support/events.rs"]
mod events;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use collector_process::{CollectorProcess, ScratchDir, count_where, event_counts, event_ids};
use demo_server::Mode;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, JsonObject,
    ProtocolVersion,
};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, RoleClient};
use serde_json::{Value, json};
use tower_mcp_analytics::{AnalyticsLayer, HttpSink, Stats};

/// Generous bound for anything that must happen eventually; only reached on failure.
const WAIT: Duration = Duration::from_secs(60);
/// Calls each client makes at least (it keeps calling until both kills are done).
const MIN_CALLS_PER_CLIENT: u64 = 300;

/// Polls `condition` every 10 ms until it holds, failing after [`WAIT`] with `what`.
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {WAIT:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// rmcp clients
// ---------------------------------------------------------------------------------------

/// A client handler that only says who it is.
#[derive(Clone)]
struct LoadClient(ClientConfig);

impl LoadClient {
    fn new(name: &str, version: ProtocolVersion) -> Self {
        Self(
            ClientConfig::new(
                ClientCapabilities::default(),
                Implementation::new(name, "1.0.0"),
            )
            .with_protocol_version(version),
        )
    }
}

impl ClientHandler for LoadClient {
    fn get_info(&self) -> ClientConfig {
        self.0.clone()
    }
}

type Client = RunningService<RoleClient, LoadClient>;

/// A legacy (`initialize`, session) client or a 2026-07-28 (discover, no session) one.
async fn connect(url: &str, name: &str, modern: bool) -> anyhow::Result<Client> {
    let (version, lifecycle) = if modern {
        (
            ProtocolVersion::V_2026_07_28,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
    } else {
        (
            ProtocolVersion::V_2025_11_25,
            ClientLifecycleMode::Initialize,
        )
    };
    LoadClient::new(name, version)
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_uri(url.to_owned()),
            lifecycle,
        )
        .await
        .with_context(|| format!("{name} connects to {url}"))
}

fn arguments(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    }
}

/// What one client did.
#[derive(Debug, Default, Clone, Copy)]
struct Calls {
    /// `tools/call` requests answered (whatever the answer).
    total: u64,
    /// Answered with `isError: true`.
    tool_errors: u64,
    /// Answered with a JSON-RPC error (unknown tool).
    rpc_errors: u64,
}

/// Calls tools on `client` until `stop` is set and at least [`MIN_CALLS_PER_CLIENT`] were
/// made: echo, add, progress, fail (`isError`), an overflowing add (`isError`), and an
/// unknown tool (a JSON-RPC error). Checks every answer.
async fn call_tools(client: Client, label: String, stop: Arc<AtomicBool>) -> anyhow::Result<Calls> {
    let mut calls = Calls::default();
    let mut n: u64 = 0;
    while n < MIN_CALLS_PER_CLIENT || !stop.load(Ordering::Acquire) {
        let (tool, args) = match n % 10 {
            0..=3 => ("echo", json!({ "text": format!("{label} #{n}") })),
            4 | 5 => ("add", json!({ "a": n, "b": 1 })),
            6 => ("progress", json!({ "steps": 2 })),
            7 => ("fail", json!({ "reason": format!("planned failure #{n}") })),
            8 => ("add", json!({ "a": i64::MAX, "b": 1 })),
            _ => ("no_such_tool", json!({})),
        };
        let params = CallToolRequestParams::new(tool).with_arguments(arguments(args));
        match (tool, client.call_tool(params).await) {
            ("no_such_tool", Err(_)) => calls.rpc_errors += 1,
            ("no_such_tool", Ok(result)) => bail!("{label}: an unknown tool answered {result:?}"),
            (_, Err(error)) => bail!("{label}: {tool} #{n} failed: {error}"),
            (_, Ok(result)) => {
                let is_error = result.is_error == Some(true);
                let expect_error = tool == "fail" || n % 10 == 8;
                ensure!(
                    is_error == expect_error,
                    "{label}: {tool} #{n} answered {result:?}"
                );
                if is_error {
                    calls.tool_errors += 1;
                }
            }
        }
        calls.total += 1;
        n += 1;
    }
    client
        .cancel()
        .await
        .with_context(|| format!("closing {label}"))?;
    Ok(calls)
}

// ---------------------------------------------------------------------------------------
// The end-to-end run
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_with_two_kills_every_delivered_event_is_stored_once() -> anyhow::Result<()> {
    let dir = ScratchDir::new("exactly-once-load")?;
    let mut collector = CollectorProcess::start(dir.join("analytics.db"), &[]).await?;

    // Default sink (retries on transport errors with backoff and jitter, 10 s timeout)
    // and default backoff. Two settings differ from the defaults:
    // - a short flush interval and small batches, so that many batches are in flight
    //   while the collector is killed;
    // - more attempts per batch: with full jitter, five attempts could all fall inside
    //   one restart of the collector, and a batch stored just before a kill but counted
    //   as lost would make "stored = delivered" fail without any collector bug.
    let analytics = AnalyticsLayer::builder()
        .sink(HttpSink::new(collector.events_url()))
        .flush_interval(Duration::from_millis(50))
        .batch_size(40)
        .max_attempts(12)
        .build();
    let router = axum::Router::new()
        .nest_service("/mcp", demo_server::mcp_service(Mode::LegacyStateful))
        .layer(analytics.clone());
    let (server_addr, server) = demo_server::serve(router).await;
    let url = format!("http://{server_addr}/mcp");

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for (index, (name, modern)) in [
        ("claude-ai", false),
        ("cursor", false),
        ("load-modern-a", true),
        ("load-modern-b", true),
    ]
    .into_iter()
    .enumerate()
    {
        let client = connect(&url, name, modern).await?;
        let label = format!("client {index} ({name})");
        clients.push(tokio::spawn(call_tools(client, label, Arc::clone(&stop))));
    }

    // The collector stores while the clients call.
    wait_until("the collector stored a first batch", || {
        analytics.stats().delivered > 0
    })
    .await?;
    let mut killed_retries = 0;
    for round in 1..=2 {
        let retries_before = analytics.stats().retries;
        collector.kill()?;
        // A send fails against the dead collector (refused, or cut off mid-request) and
        // is scheduled for a retry: the kill hit delivery.
        wait_until(&format!("a send fails after kill {round}"), || {
            analytics.stats().retries > retries_before
        })
        .await?;
        killed_retries += analytics.stats().retries - retries_before;
        collector.restart().await?;
        let delivered_at_restart = analytics.stats().delivered;
        wait_until(
            &format!("the collector stores again after restart {round}"),
            || analytics.stats().delivered > delivered_at_restart,
        )
        .await?;
        for client in &clients {
            ensure!(
                !client.is_finished(),
                "a client stopped during round {round}"
            );
        }
    }
    stop.store(true, Ordering::Release);

    let mut calls = Calls::default();
    for client in clients {
        let done = client.await.context("a client task panicked")??;
        calls.total += done.total;
        calls.tool_errors += done.tool_errors;
        calls.rpc_errors += done.rpc_errors;
    }

    let report = analytics.shutdown(Duration::from_secs(120)).await;
    server.abort();
    let stats: Stats = report.stats;
    let (rows, distinct) = event_counts(collector.db())?;
    println!(
        "calls: {calls:?}; stats: recorded {} delivered {} batches {} retries {} \
         (at least {} right after the kills) in_queue {}; dropped {:?}; \
         SQLite: {rows} rows, {distinct} distinct ids; collector started {} times",
        stats.recorded,
        stats.delivered,
        stats.batches,
        stats.retries,
        killed_retries,
        stats.in_queue,
        stats.dropped,
        collector.starts(),
    );

    ensure!(
        report.flushed,
        "shutdown did not deliver everything: {stats:?}"
    );
    ensure!(stats.in_queue == 0, "events still queued: {stats:?}");
    ensure!(
        stats.delivered + stats.dropped.total() == stats.recorded,
        "the layer lost track of events: {stats:?}"
    );
    ensure!(stats.retries > 0, "no send was retried: {stats:?}");
    ensure!(
        rows == distinct,
        "{} events stored more than once",
        rows - distinct
    );
    ensure!(
        rows == stats.delivered,
        "the collector stored {rows} events, the layer delivered {}",
        stats.delivered
    );
    // Drops that would leave the collector's side unknown (a batch refused, or given up
    // on after it may have been stored) must not happen against a collector that only
    // restarts.
    let dropped = stats.dropped;
    ensure!(
        dropped.rejected == 0 && dropped.too_large == 0 && dropped.retries_exhausted == 0,
        "the collector refused or lost batches: {dropped:?}\n{}",
        collector.log_text()
    );
    if dropped.total() == 0 {
        // Nothing lost anywhere: every call the clients made is stored, once.
        let db = collector.db();
        ensure!(
            count_where(db, "method = 'tools/call'")? == calls.total,
            "tools/call events stored: {}, calls made: {}",
            count_where(db, "method = 'tools/call'")?,
            calls.total
        );
        ensure!(count_where(db, "outcome = 'tool_error'")? == calls.tool_errors);
        ensure!(count_where(db, "outcome = 'error'")? == calls.rpc_errors);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Batches sent again by hand
// ---------------------------------------------------------------------------------------

/// A v1 batch body, gzip-compressed as the layer sends bodies over 1 KiB.
fn gzipped_batch(batch_id: &str, ids: &[String]) -> anyhow::Result<Vec<u8>> {
    let body = events::v1_batch(
        batch_id,
        ids.iter().map(|id| events::layer_event(id)).collect(),
    );
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&serde_json::to_vec(&body)?)?;
    Ok(encoder.finish()?)
}

/// What the collector answered to one POST.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    stored: u64,
    duplicates: u64,
    replayed: bool,
}

/// POSTs `body` exactly as the `HttpSink` would; expects 200 and reads the answer.
async fn post(
    http: &reqwest::Client,
    url: &str,
    batch_id: &str,
    body: &[u8],
) -> anyhow::Result<Answer> {
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .header("idempotency-key", batch_id)
        .body(body.to_vec())
        .send()
        .await?;
    let status = response.status();
    let answer: Value = response.json().await?;
    ensure!(status == reqwest::StatusCode::OK, "{status}: {answer}");
    ensure!(answer["batch_id"] == batch_id, "{answer}");
    Ok(Answer {
        stored: answer["stored"].as_u64().context("stored")?,
        duplicates: answer["duplicates"].as_u64().context("duplicates")?,
        replayed: answer["replayed"].as_bool().context("replayed")?,
    })
}

fn ids(prefix: &str, range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|n| format!("evt_{prefix}_{n:04}")).collect()
}

#[tokio::test]
async fn a_batch_sent_again_or_overlapping_is_stored_once() -> anyhow::Result<()> {
    let dir = ScratchDir::new("exactly-once-by-hand")?;
    let mut collector = CollectorProcess::start(dir.join("analytics.db"), &[]).await?;
    let http = reqwest::Client::new();
    let url = collector.events_url();
    let fresh = |stored| Answer {
        stored,
        duplicates: 0,
        replayed: false,
    };
    let replayed = Answer {
        stored: 0,
        duplicates: 0,
        replayed: true,
    };

    // The same bytes twice: stored, then recognised as a retry.
    let a_ids = ids("a", 0..25);
    let a = gzipped_batch("bat_a", &a_ids)?;
    assert_eq!(post(&http, &url, "bat_a", &a).await?, fresh(25));
    assert_eq!(post(&http, &url, "bat_a", &a).await?, replayed);

    // The same batch eight times at once (the writer may commit them together): stored
    // by exactly one request.
    let b_ids = ids("b", 0..40);
    let b = Arc::new(gzipped_batch("bat_b", &b_ids)?);
    let mut sends = Vec::new();
    for _ in 0..8 {
        let (http, url, b) = (http.clone(), url.clone(), Arc::clone(&b));
        sends.push(tokio::spawn(
            async move { post(&http, &url, "bat_b", &b).await },
        ));
    }
    let mut answers = Vec::new();
    for send in sends {
        answers.push(send.await??);
    }
    assert_eq!(
        answers
            .iter()
            .filter(|answer| **answer == fresh(40))
            .count(),
        1,
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|answer| **answer == replayed).count(),
        7,
        "{answers:?}"
    );

    // Batch ids survive a SIGKILL: the retry of a batch stored before the crash is still
    // recognised.
    collector.kill()?;
    collector.restart().await?;
    assert_eq!(post(&http, &url, "bat_a", &a).await?, replayed);

    // A new batch id carrying events already stored (a sender that re-batched them) and
    // two new ones: only the new ones are stored.
    let mut c_ids = a_ids.clone();
    c_ids.extend(b_ids[..5].iter().cloned());
    c_ids.extend(ids("c", 0..2));
    let c = gzipped_batch("bat_c", &c_ids)?;
    assert_eq!(
        post(&http, &url, "bat_c", &c).await?,
        Answer {
            stored: 2,
            duplicates: 30,
            replayed: false
        }
    );
    // ... and that batch, retried, is a replay.
    assert_eq!(post(&http, &url, "bat_c", &c).await?, replayed);

    let expected: BTreeSet<String> = a_ids
        .iter()
        .chain(&b_ids)
        .chain(&ids("c", 0..2))
        .cloned()
        .collect();
    let (rows, distinct) = event_counts(collector.db())?;
    assert_eq!((rows, distinct), (67, 67));
    let stored: BTreeSet<String> = event_ids(collector.db())?.into_iter().collect();
    assert_eq!(stored, expected);
    Ok(())
}
