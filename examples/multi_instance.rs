//! Multi-instance demo: three instances of one stateless MCP server, each with its own
//! analytics layer, share their sessions on Redis, so a user's calls make one session
//! whichever instance serves them.
//!
//! ```text
//! redis-server --port 6379 --save '' --daemonize yes   # a Redis to talk to (see below)
//! cargo run --all-features --example multi_instance
//! redis-cli -p 6379 shutdown nosave                    # when done
//! ```
//!
//! The example connects to `REDIS_URL` (default `redis://127.0.0.1:6379/`) and exits with
//! instructions if no Redis answers there. Without `redis-server`, install it first
//! (`apt-get install -y redis-server`), or set `REDIS_URL` to a Redis you have, e.g.
//! `REDIS_URL=redis://10.0.0.5:6379/2`.
//!
//! Three instances of the demo MCP server (rmcp 3.9, stateless, JSON responses) run on
//! loopback ports, each behind its own `AnalyticsLayer` with its own
//! `RedisSessionStore` (keys under a prefix of this run's own, removed at the end). The
//! layers identify users by their `x-user-id` header and share a manual clock, so a
//! morning of traffic runs in a moment. A client sends each 2026-07-28 `tools/call` to
//! the next instance in turn, as a round-robin load balancer would: the morning of
//! `sessions_demo` (alice with Claude Desktop at 10:00, 10:15 and 10:55, with Cursor at
//! 10:20, bob with Cursor at 10:02, an anonymous call at 10:56), then two more Claude
//! Desktop calls of alice's at 11:05 and 11:15. It prints one line per call: the instance
//! that served it and its session, one per user + client + 30-minute stretch, exactly as
//! on a single instance. Then it runs the same calls with each instance keeping its
//! sessions in its own memory (no `session_store`) and shows where they split.

#[path = "support/demo_server.rs"]
mod demo_server;
// This example uses the scenario's clock and steps, not its runner.
#[allow(dead_code)]
#[path = "support/sessions_scenario.rs"]
mod sessions_scenario;

use std::env::{self, VarError};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use axum::Router;
use serde_json::Value;
use tokio::task::JoinHandle;
use tower_mcp_analytics::redis::{self, aio::MultiplexedConnection};
use tower_mcp_analytics::{AnalyticsLayer, Event, MemorySink, RedisSessionStore, Stats, identity};

use sessions_scenario::{CLAUDE, ManualClock, STEPS, Step, USER_HEADER};

/// Where Redis is looked for when `REDIS_URL` is not set.
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";
/// Instances of the server.
const INSTANCES: usize = 3;
/// Longest wait for Redis to answer the first PING.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a layer to deliver what it holds on shutdown.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Calls after the scenario's morning: alice goes on with Claude Desktop.
const MORE: [Step; 2] = [
    Step {
        hour: 11,
        minute: 5,
        user: Some("alice"),
        client: CLAUDE,
        note: "10 min after 10:55: same session",
    },
    Step {
        hour: 11,
        minute: 15,
        user: Some("alice"),
        client: CLAUDE,
        note: "10 min after 11:05: same session",
    },
];

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let url = match redis_url() {
        Ok(url) => url,
        Err(error) => {
            eprintln!("multi_instance: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let client = match redis::Client::open(url.as_str()) {
        Ok(client) => client,
        Err(error) => {
            eprintln!(
                "multi_instance: REDIS_URL {} is not a Redis URL ({error}); expected \
                 redis://[[user]:password@]host[:port][/db]",
                redacted(&url)
            );
            return ExitCode::FAILURE;
        }
    };
    let mut connection = match connect(&client).await {
        Ok(connection) => connection,
        Err(error) => {
            eprint!("{}", no_redis(&url, &error));
            return ExitCode::FAILURE;
        }
    };
    match run(&url, &mut connection).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("multi_instance: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the script on a cluster sharing Redis, then on a cluster that does not.
async fn run(url: &str, connection: &mut MultiplexedConnection) -> anyhow::Result<()> {
    let script: Vec<Step> = STEPS.iter().chain(MORE.iter()).copied().collect();
    let clock = ManualClock::new(sessions_scenario::at(10, 0));

    // A prefix of this run's own, so that runs (and other users of this Redis) do not see
    // each other's sessions.
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    let prefix = format!("mcp-analytics-demo:{}-{started}:", std::process::id());

    let shared = Cluster::start(&clock, Some((url, &prefix))).await?;
    println!(
        "{INSTANCES} instances, each behind its own AnalyticsLayer: {}",
        shared.addresses()
    );
    println!(
        "Sessions on Redis at {}, keys under {prefix}\n",
        redacted(url)
    );
    let outcome = shared.drive(&clock, &script).await;
    let errors = shared.stats().session_store_errors;
    let stats = shared.shutdown().await;
    outcome?;
    let redis_rows = shared.rows(script.len())?;
    let redis_labels = labels(&redis_rows);
    print!("{}", render(&redis_rows, &redis_labels, None));
    println!(
        "{} sessions for {} calls: one per user + client + 30-minute stretch, whichever \
         instance served the call.",
        count(&redis_labels),
        script.len()
    );
    let removed = remove_keys(connection, &prefix).await?;
    println!("(Redis held {removed} keys under the prefix; removed.)");
    report("with Redis", &stats);
    if errors > 0 {
        eprintln!(
            "warning: Redis failed {errors} times during the run; those batches were \
             grouped in memory, so sessions above may split as below"
        );
    }

    clock.set(sessions_scenario::at(10, 0));
    let local = Cluster::start(&clock, None).await?;
    let outcome = local.drive(&clock, &script).await;
    let stats = local.shutdown().await;
    outcome?;
    let local_rows = local.rows(script.len())?;
    let local_labels = labels(&local_rows);
    println!("\nThe same calls, each instance keeping sessions in its own memory:\n");
    print!(
        "{}",
        render(&local_rows, &local_labels, Some(&redis_labels))
    );
    println!(
        "{} sessions for {} calls: a call served by an instance that did not serve the \
         pair's previous call opens a new session.",
        count(&local_labels),
        script.len()
    );
    report("in memory", &stats);
    Ok(())
}

/// `REDIS_URL`, or the default when it is unset or empty.
fn redis_url() -> anyhow::Result<String> {
    match env::var("REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => Ok(url.trim().to_owned()),
        Ok(_) | Err(VarError::NotPresent) => Ok(DEFAULT_REDIS_URL.to_owned()),
        Err(VarError::NotUnicode(_)) => bail!("REDIS_URL is not valid UTF-8"),
    }
}

/// A connection to `client`'s Redis that answered a PING.
async fn connect(client: &redis::Client) -> anyhow::Result<MultiplexedConnection> {
    let ping = async {
        let mut connection = client.get_multiplexed_async_connection().await?;
        let pong: String = redis::cmd("PING").query_async(&mut connection).await?;
        anyhow::Ok((connection, pong))
    };
    let (connection, pong) = tokio::time::timeout(PING_TIMEOUT, ping)
        .await
        .with_context(|| format!("no answer within {} s", PING_TIMEOUT.as_secs()))??;
    ensure!(pong == "PONG", "PING answered {pong:?}");
    Ok(connection)
}

/// What to do when no Redis answers at `url`.
fn no_redis(url: &str, error: &anyhow::Error) -> String {
    format!(
        "multi_instance: no Redis answers at {} ({}).\n\
         \n\
         This example needs a Redis server. Start one on this machine:\n\
         \n    apt-get install -y redis-server                        # if not installed\
         \n    redis-server --port 6379 --save '' --daemonize yes\
         \n    cargo run --all-features --example multi_instance\
         \n    redis-cli -p 6379 shutdown nosave                      # when done\n\
         \n\
         or point REDIS_URL at a Redis you have:\n\
         \n    REDIS_URL=redis://host:6379/ cargo run --all-features --example multi_instance\n",
        redacted(url),
        causes(error)
    )
}

/// `error` and its causes, each left out when the one before already says it.
fn causes(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    text
}

/// `url` without its password, for printing.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// One instance: a demo server on a loopback port behind its own layer.
struct Instance {
    name: String,
    addr: String,
    url: String,
    analytics: AnalyticsLayer,
    sink: MemorySink,
    server: JoinHandle<()>,
}

/// The instances, in the load balancer's order.
struct Cluster(Vec<Instance>);

impl Cluster {
    /// Starts [`INSTANCES`] instances reading `clock`; with `redis` (URL, key prefix),
    /// each layer gets a `RedisSessionStore` of its own on it.
    async fn start(clock: &ManualClock, redis: Option<(&str, &str)>) -> anyhow::Result<Self> {
        let mut instances = Vec::with_capacity(INSTANCES);
        for number in 1..=INSTANCES {
            let sink = MemorySink::new();
            let mut builder = AnalyticsLayer::builder()
                .identify(identity::from_header(USER_HEADER))
                .clock(clock.reader())
                .sink(sink.clone());
            if let Some((url, prefix)) = redis {
                builder = builder.session_store(RedisSessionStore::open(url)?.key_prefix(prefix));
            }
            let analytics = builder.build();
            let app = Router::new()
                .nest_service(
                    "/mcp",
                    demo_server::mcp_service(demo_server::Mode::StatelessJson),
                )
                .layer(analytics.clone());
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .context("binding a loopback port")?;
            let addr = listener.local_addr()?;
            let name = format!("mcp-{number}");
            let server = {
                let name = name.clone();
                tokio::spawn(async move {
                    if let Err(error) = axum::serve(listener, app).await {
                        eprintln!("{name} stopped: {error}");
                    }
                })
            };
            instances.push(Instance {
                name,
                addr: addr.to_string(),
                url: format!("http://{addr}/mcp"),
                analytics,
                sink,
                server,
            });
        }
        Ok(Self(instances))
    }

    /// `mcp-1 127.0.0.1:port, ...`.
    fn addresses(&self) -> String {
        let list: Vec<String> = self
            .0
            .iter()
            .map(|instance| format!("{} {}", instance.name, instance.addr))
            .collect();
        list.join(", ")
    }

    /// Sends each step to the next instance in turn, at the step's time, then flushes
    /// every layer.
    async fn drive(&self, clock: &ManualClock, script: &[Step]) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()?;
        for ((index, step), instance) in script.iter().enumerate().zip(self.0.iter().cycle()) {
            clock.set(sessions_scenario::at(step.hour, step.minute));
            sessions_scenario::call_echo(
                &http,
                &instance.url,
                index as u64,
                step.user,
                step.client,
            )
            .await
            .with_context(|| format!("call {index} to {}", instance.name))?;
            // The calls are minutes apart and a layer sends its batch within a second:
            // flush, so that the next instance finds this call's session where a real
            // deployment would.
            instance.analytics.flush().await;
        }
        for instance in &self.0 {
            instance.analytics.flush().await;
        }
        Ok(())
    }

    /// The counters of every layer, summed.
    fn stats(&self) -> Totals {
        let mut total = Totals::default();
        for instance in &self.0 {
            total.add(&instance.analytics.stats());
        }
        total
    }

    /// Shuts every layer down and stops the servers; the counters, summed.
    async fn shutdown(&self) -> Totals {
        let mut total = Totals::default();
        for instance in &self.0 {
            let report = instance.analytics.shutdown(SHUTDOWN_TIMEOUT).await;
            if !report.flushed {
                eprintln!("{}: not everything was delivered in time", instance.name);
            }
            total.add(&report.stats);
            instance.server.abort();
        }
        total
    }

    /// The first `calls` calls' `tools/call` events (found by JSON-RPC id), with the
    /// instance whose sink holds each.
    fn rows(&self, calls: usize) -> anyhow::Result<Vec<Row>> {
        let served: Vec<(&str, Vec<Event>)> = self
            .0
            .iter()
            .map(|instance| (instance.name.as_str(), instance.sink.events()))
            .collect();
        (0..calls)
            .map(|index| {
                let (instance, event) = served
                    .iter()
                    .find_map(|(instance, events)| {
                        events
                            .iter()
                            .find(|e| {
                                e.method == "tools/call" && e.request_id == Some(Value::from(index))
                            })
                            .map(|event| (*instance, event))
                    })
                    .with_context(|| format!("no tools/call event for call {index}"))?;
                Ok(Row {
                    time: sessions_scenario::time_label(event),
                    user: sessions_scenario::user_label(event),
                    client: sessions_scenario::client_label(event),
                    instance: instance.to_owned(),
                    session_id: event
                        .session_id
                        .clone()
                        .with_context(|| format!("call {index} has no session"))?,
                })
            })
            .collect()
    }
}

/// The counters the example reports, summed over a cluster's layers.
#[derive(Default)]
struct Totals {
    recorded: u64,
    delivered: u64,
    session_store_errors: u64,
}

impl Totals {
    fn add(&mut self, stats: &Stats) {
        self.recorded += stats.recorded;
        self.delivered += stats.delivered;
        self.session_store_errors += stats.session_store_errors;
    }
}

/// One call's line.
struct Row {
    time: String,
    user: String,
    client: String,
    instance: String,
    session_id: String,
}

/// `S1`, `S2`, ... for each row's session, in order of first use.
fn labels(rows: &[Row]) -> Vec<String> {
    let mut seen: Vec<&str> = Vec::new();
    rows.iter()
        .map(|row| {
            let position = match seen.iter().position(|id| *id == row.session_id) {
                Some(position) => position,
                None => {
                    seen.push(&row.session_id);
                    seen.len() - 1
                }
            };
            format!("S{}", position + 1)
        })
        .collect()
}

/// Distinct sessions among `labels`.
fn count(labels: &[String]) -> usize {
    let mut distinct: Vec<&String> = labels.iter().collect();
    distinct.sort();
    distinct.dedup();
    distinct.len()
}

/// The rows as an aligned table. With `shared` (the labels of the run on Redis), the last
/// column says where a session split instead of giving its id.
fn render(rows: &[Row], labels: &[String], shared: Option<&[String]>) -> String {
    let last = if shared.is_some() { "" } else { "session_id" };
    let header = format!(
        "{:<6} {:<10} {:<15} {:<9} {:<8} {last}",
        "time", "user", "client", "instance", "session"
    );
    let mut table = format!("{}\n", header.trim_end());
    for (index, (row, label)) in rows.iter().zip(labels).enumerate() {
        let tail = match shared {
            None => row.session_id.clone(),
            Some(shared) => split_note(rows, labels, shared, index),
        };
        let line = format!(
            "{:<6} {:<10} {:<15} {:<9} {:<8} {tail}",
            row.time, row.user, row.client, row.instance, label
        );
        // Writing to a String cannot fail.
        let _ = writeln!(table, "{}", line.trim_end());
    }
    table
}

/// For row `index`: "split from ..." when the run on Redis put it in the same session as
/// an earlier row that this run did not.
fn split_note(rows: &[Row], labels: &[String], shared: &[String], index: usize) -> String {
    let (Some(label), Some(shared_label)) = (labels.get(index), shared.get(index)) else {
        return String::new();
    };
    let earlier = (0..index).find(|&before| shared.get(before) == Some(shared_label));
    match earlier {
        Some(before) if labels.get(before) != Some(label) => match rows.get(before) {
            Some(first) => format!(
                "split from {} on {} (one session with Redis)",
                first.time, first.instance
            ),
            None => String::new(),
        },
        _ => String::new(),
    }
}

/// Removes every key under `prefix`; how many there were.
async fn remove_keys(
    connection: &mut MultiplexedConnection,
    prefix: &str,
) -> anyhow::Result<usize> {
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(100)
            .query_async(connection)
            .await
            .context("listing the run's keys")?;
        keys.extend(found);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    if !keys.is_empty() {
        let _: u64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(connection)
            .await
            .context("removing the run's keys")?;
    }
    Ok(keys.len())
}

/// The layers' counters, on stderr.
fn report(run: &str, stats: &Totals) {
    eprintln!(
        "analytics ({run}): {} events recorded, {} delivered, {} session store errors",
        stats.recorded, stats.delivered, stats.session_store_errors
    );
}
