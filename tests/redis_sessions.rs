//! Sessions shared by several instances on a real `redis-server` (cargo feature `redis`).
//!
//! Every test starts its own `redis-server` on a free loopback port (never the system
//! service) and runs separate `AnalyticsLayer`s, each in front of its own real rmcp server
//! over loopback HTTP, as instances behind a load balancer would be.
//!
//! Covered:
//! * accuracy against ground truth: 4 instances, 200 users × 3 clients and a few anonymous
//!   calls (4,804 events), random gaps of which about 20% exceed the window, requests
//!   spread round-robin and at random, worker flushes interleaved at random so that events
//!   reach the store out of order; the partition into sessions equals the reference rule
//!   exactly with Redis, and the same traffic on per-instance memory stores is measured
//!   (and printed) for contrast;
//! * the seed table with its rows alternating across instances, flushed in order and in
//!   reverse: S1 S2 S1 S3 S4 S5;
//! * races: 4 instances receive the first event of the same 1,000 pairs at once, and end
//!   with exactly 1,000 sessions;
//! * the store's rule equals the memory store's on random out-of-order batches;
//! * legacy clients across instances: the `initialize` of an MCP session, or of a user's
//!   stateless client, names the calls that land on another instance; a DELETE on any
//!   instance forgets the session's client in Redis;
//! * faults: Redis killed mid-run and restarted (no request fails, no event is lost,
//!   failed batches counted, grouping resumes by itself); Redis frozen with SIGSTOP (the
//!   worker goes on within the timeout; events keep their sessions from memory); no
//!   Redis at all from the start;
//! * bounded: after a flood of 100,000 invented identities and the window passing, Redis
//!   holds none of their keys (`DBSIZE`).

#![cfg(feature = "redis")]

mod common;
#[path = "support/redis_server.rs"]
mod redis_server;
#[allow(dead_code)]
#[path = "../examples/support/sessions_scenario.rs"]
mod sessions_scenario;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, ensure};
use common::Mode;
use redis_server::RedisServer;
use serde_json::{Value, json};
use sessions_scenario::{CLAUDE, CURSOR, ManualClock, STEPS, USER_HEADER, at};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower_mcp_analytics::{
    AnalyticsLayer, Event, MemorySessionStore, MemorySink, RedisSessionStore, SessionRequest,
    SessionStore, identity,
};

/// Generous upper bound for anything asynchronous; only there to avoid hangs.
const WAIT: Duration = Duration::from_secs(60);
/// The inactivity window of every test but the flood.
const WINDOW: Duration = Duration::from_secs(30 * 60);
/// Key prefixes are unique per cluster, so tests sharing a server never meet.
static PREFIX: AtomicU64 = AtomicU64::new(0);

// ---------------------------------------------------------------------------
// A cluster of instances
// ---------------------------------------------------------------------------

/// One instance: a real rmcp server behind its own layer and sink.
struct Instance {
    server: common::Server,
    layer: AnalyticsLayer,
    sink: MemorySink,
}

/// Several instances of one deployment, and the client that calls them.
struct Cluster {
    instances: Vec<Instance>,
    http: reqwest::Client,
}

/// Which session store each instance of a cluster gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Store {
    /// One Redis shared by all.
    Redis,
    /// Each its own memory.
    Memory,
}

impl Cluster {
    /// `n` instances, stamping requests with `clock`, grouping with `store`. Workers
    /// flush only when told (or when a batch fills), so that the test decides the order
    /// in which events reach the store.
    async fn start(
        n: usize,
        store: Store,
        redis: &RedisServer,
        clock: &ManualClock,
    ) -> anyhow::Result<Self> {
        let prefix = format!(
            "test-{}-{}:",
            std::process::id(),
            PREFIX.fetch_add(1, Ordering::Relaxed)
        );
        let mut instances = Vec::with_capacity(n);
        for _ in 0..n {
            let sink = MemorySink::new();
            let mut builder = AnalyticsLayer::builder()
                .sink(sink.clone())
                .identify(identity::from_header(USER_HEADER))
                .clock(clock.reader())
                .flush_interval(Duration::from_secs(3600));
            if store == Store::Redis {
                builder = builder
                    .session_store(RedisSessionStore::open(&redis.url())?.key_prefix(&prefix));
            }
            let layer = builder.build();
            let wrapped = layer.clone();
            let server =
                common::spawn(Mode::StatelessJson, move |router| router.layer(wrapped)).await;
            instances.push(Instance {
                server,
                layer,
                sink,
            });
        }
        let http = reqwest::Client::builder().build()?;
        Ok(Self { instances, http })
    }

    /// A 2026-07-28 `tools/call echo` with JSON-RPC id `id` to instance `to`.
    async fn call(
        &self,
        to: usize,
        id: u64,
        user: Option<&str>,
        client: &str,
    ) -> anyhow::Result<()> {
        let instance = self.instances.get(to).context("no such instance")?;
        sessions_scenario::call_echo(&self.http, &instance.server.url, id, user, client).await
    }

    async fn flush(&self, index: usize) {
        if let Some(instance) = self.instances.get(index) {
            instance.layer.flush().await;
        }
    }

    async fn flush_all(&self) {
        for instance in &self.instances {
            instance.layer.flush().await;
        }
    }

    /// Every instance's `tools/call` events, by JSON-RPC id.
    async fn calls(&self) -> anyhow::Result<BTreeMap<u64, Event>> {
        self.flush_all().await;
        let mut calls = BTreeMap::new();
        for instance in &self.instances {
            for event in instance.sink.events() {
                if event.method != "tools/call" {
                    continue;
                }
                let id = event
                    .request_id
                    .as_ref()
                    .and_then(Value::as_u64)
                    .context("a call without a numeric id")?;
                ensure!(
                    calls.insert(id, event).is_none(),
                    "two events for call {id}"
                );
            }
        }
        Ok(calls)
    }

    /// Every instance's accounting balances, with nothing lost.
    fn assert_nothing_lost(&self) {
        for (index, instance) in self.instances.iter().enumerate() {
            let stats = instance.layer.stats();
            assert_eq!(
                stats.recorded,
                stats.delivered + stats.dropped.total() + stats.in_queue,
                "instance {index}: {stats:?}"
            );
            assert_eq!(stats.dropped.total(), 0, "instance {index}: {stats:?}");
            assert_eq!(stats.in_queue, 0, "instance {index}: {stats:?}");
        }
    }

    fn store_errors(&self) -> u64 {
        self.instances
            .iter()
            .map(|instance| instance.layer.stats().session_store_errors)
            .sum()
    }
}

fn session(calls: &BTreeMap<u64, Event>, id: u64) -> anyhow::Result<String> {
    calls
        .get(&id)
        .with_context(|| format!("no event for call {id}"))?
        .session_id
        .clone()
        .with_context(|| format!("call {id} has no session"))
}

// ---------------------------------------------------------------------------
// Ground truth
// ---------------------------------------------------------------------------

/// A small deterministic generator (xorshift64*), so that every run sends the same traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `low..=high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// One call of the generated traffic.
#[derive(Clone, Debug)]
struct Call {
    id: u64,
    at: SystemTime,
    user: Option<String>,
    client: &'static str,
}

const CLIENTS: [&str; 3] = [CLAUDE, CURSOR, "Visual Studio Code"];

/// 200 users × 3 clients, 8 calls per pair, plus 4 anonymous calls, in time order. Gaps
/// between a pair's calls: 20% from 1 to 15 s (quick succession), 60% from 16 s to
/// 29.5 min, 20% from 30.5 min to 3 h; no gap lies
/// within 30 s of the window, farther than any event's arrival lag in the test (see
/// `accuracy_against_ground_truth`).
fn traffic(seed: u64) -> Vec<Call> {
    let mut rng = Rng(seed);
    let start = at(8, 0);
    let mut calls = Vec::new();
    for user in 0..200 {
        for client in CLIENTS {
            let mut t = start + Duration::from_secs(rng.between(0, 3600));
            for n in 0..8 {
                if n > 0 {
                    let gap = match rng.between(1, 100) {
                        1..=20 => rng.between(30 * 60 + 30, 3 * 3600),
                        // Calls in quick succession (an agent's parallel tool calls).
                        21..=40 => rng.between(1, 15),
                        _ => rng.between(16, 29 * 60 + 30),
                    };
                    t += Duration::from_secs(gap);
                }
                calls.push(Call {
                    id: 0,
                    at: t,
                    user: Some(format!("user-{user}")),
                    client,
                });
            }
        }
    }
    for _ in 0..4 {
        calls.push(Call {
            id: 0,
            at: start + Duration::from_secs(rng.between(0, 4 * 3600)),
            user: None,
            client: CLAUDE,
        });
    }
    calls.sort_by_key(|call| call.at);
    for (id, call) in calls.iter_mut().enumerate() {
        call.id = id as u64;
    }
    calls
}

/// The reference rule, from scratch: per (user, client), calls in time order, a new session
/// whenever the gap exceeds the window; an anonymous call is a session of its own.
fn truth(calls: &[Call], window: Duration) -> HashMap<u64, usize> {
    let mut pairs: BTreeMap<(String, &str), Vec<&Call>> = BTreeMap::new();
    let mut labels = HashMap::new();
    let mut next = 0;
    for call in calls {
        match &call.user {
            Some(user) => pairs
                .entry((user.clone(), call.client))
                .or_default()
                .push(call),
            None => {
                labels.insert(call.id, next);
                next += 1;
            }
        }
    }
    for (_, mut pair) in pairs {
        pair.sort_by_key(|call| call.at);
        let mut last: Option<SystemTime> = None;
        for call in pair {
            let continues =
                last.is_some_and(|last| call.at.duration_since(last).unwrap_or_default() <= window);
            if !continues {
                next += 1;
            }
            labels.insert(call.id, next);
            last = Some(call.at);
        }
    }
    labels
}

/// How close a partition into sessions is to the truth.
#[derive(Debug)]
struct Accuracy {
    /// Share of events whose session holds exactly the right events.
    exact: f64,
    /// Share of same-session pairs of events (truth) that the store put together.
    recall: f64,
    /// Share of pairs the store put together that belong together.
    precision: f64,
    sessions: usize,
    true_sessions: usize,
}

fn accuracy(truth: &HashMap<u64, usize>, got: &HashMap<u64, String>) -> Accuracy {
    let mut true_groups: HashMap<usize, BTreeSet<u64>> = HashMap::new();
    let mut got_groups: HashMap<&str, BTreeSet<u64>> = HashMap::new();
    let mut both: HashMap<(usize, &str), u64> = HashMap::new();
    for (id, label) in truth {
        true_groups.entry(*label).or_default().insert(*id);
        if let Some(session) = got.get(id) {
            got_groups.entry(session).or_default().insert(*id);
            *both.entry((*label, session)).or_default() += 1;
        }
    }
    let exact = truth
        .iter()
        .filter(|(id, label)| {
            got.get(id)
                .and_then(|session| got_groups.get(session.as_str()))
                == true_groups.get(label)
        })
        .count();
    let pairs = |n: u64| n * n.saturating_sub(1) / 2;
    let true_pairs: u64 = true_groups.values().map(|g| pairs(g.len() as u64)).sum();
    let got_pairs: u64 = got_groups.values().map(|g| pairs(g.len() as u64)).sum();
    let shared: u64 = both.values().map(|n| pairs(*n)).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    Accuracy {
        exact: ratio(exact as u64, truth.len() as u64),
        recall: ratio(shared, true_pairs),
        precision: ratio(shared, got_pairs),
        sessions: got_groups.len(),
        true_sessions: true_groups.len(),
    }
}

// ---------------------------------------------------------------------------
// Accuracy
// ---------------------------------------------------------------------------

/// The headline: on multi-instance traffic the Redis store's sessions are exactly the
/// reference rule's, where per-instance memory splits them.
///
/// Arrival order: each request goes to the next instance (even calls) or a random one (odd
/// calls); after each request a random instance flushes with probability 1/8, and an
/// instance holding an event older than 20 simulated seconds flushes before the next
/// request. Events of one pair thus reach Redis out of order whenever their instances
/// flush in another order, but never more than 20 s late, which is nearer than any gap
/// comes to the window's edge. (An event arriving later than the gap between two sessions
/// it would bridge is the one case no store that names sessions at once can get right.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accuracy_against_ground_truth() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let clock = ManualClock::new(at(8, 0));
    let shared = Cluster::start(4, Store::Redis, &redis, &clock).await?;
    let local = Cluster::start(4, Store::Memory, &redis, &clock).await?;
    let calls = traffic(0x5EED_CAFE);
    assert_eq!(calls.len(), 4_804);
    let mut rng = Rng(0xD15C_0BA1);
    let mut arrivals = Arrivals::default();
    let mut round_robin = 0;
    for (n, call) in calls.iter().enumerate() {
        for index in 0..4 {
            if arrivals.oldest[index].is_some_and(|t| t + Duration::from_secs(20) < call.at) {
                arrivals.flush(&shared, &local, index).await;
            }
        }
        let to = if n % 2 == 0 {
            round_robin = (round_robin + 1) % 4;
            round_robin
        } else {
            rng.between(0, 3) as usize
        };
        clock.set(call.at);
        shared
            .call(to, call.id, call.user.as_deref(), call.client)
            .await?;
        local
            .call(to, call.id, call.user.as_deref(), call.client)
            .await?;
        arrivals.oldest[to].get_or_insert(call.at);
        arrivals.pending[to].push(call);
        if rng.between(1, 8) == 1 {
            let index = rng.between(0, 3) as usize;
            arrivals.flush(&shared, &local, index).await;
        }
    }
    let out_of_order = arrivals.out_of_order;
    let truth = truth(&calls, WINDOW);
    let mut report = Vec::new();
    for (label, cluster) in [("redis", &shared), ("memory", &local)] {
        let events = cluster.calls().await?;
        assert_eq!(events.len(), calls.len(), "{label}: one event per call");
        let got: HashMap<u64, String> = events
            .iter()
            .map(|(id, event)| Ok((*id, event.session_id.clone().context("no session")?)))
            .collect::<anyhow::Result<_>>()?;
        let accuracy = accuracy(&truth, &got);
        eprintln!(
            "{label}: {:.1}% of events in exactly the right session; pairwise recall {:.3}, \
             precision {:.3}; {} sessions for {} true ones ({out_of_order} events reached the \
             store after a later event of their pair)",
            accuracy.exact * 100.0,
            accuracy.recall,
            accuracy.precision,
            accuracy.sessions,
            accuracy.true_sessions
        );
        cluster.assert_nothing_lost();
        assert_eq!(cluster.store_errors(), 0, "{label}");
        report.push(accuracy);
    }
    assert!(
        out_of_order > 0,
        "the traffic must reach the store out of order"
    );
    let redis_accuracy = &report[0];
    assert_eq!(redis_accuracy.exact, 1.0, "{redis_accuracy:?}");
    assert_eq!(redis_accuracy.sessions, redis_accuracy.true_sessions);
    assert!(
        report[1].exact < 0.5,
        "memory on 4 instances: {:?}",
        report[1]
    );
    Ok(())
}

/// What each instance holds unflushed, and how events reached the store.
#[derive(Default)]
struct Arrivals<'a> {
    /// Start of the oldest unflushed call, per instance.
    oldest: [Option<SystemTime>; 4],
    /// Unflushed calls, per instance.
    pending: [Vec<&'a Call>; 4],
    /// Latest call of each pair that reached the store.
    flushed_up_to: HashMap<(Option<String>, &'static str), SystemTime>,
    /// Calls that reached the store after a later call of their pair.
    out_of_order: usize,
}

impl Arrivals<'_> {
    /// Flushes instance `index` of both clusters, noting calls that arrive out of order.
    async fn flush(&mut self, shared: &Cluster, local: &Cluster, index: usize) {
        shared.flush(index).await;
        local.flush(index).await;
        self.oldest[index] = None;
        for call in self.pending[index].drain(..) {
            let latest = self
                .flushed_up_to
                .entry((call.user.clone(), call.client))
                .or_insert(call.at);
            if call.user.is_some() && *latest > call.at {
                self.out_of_order += 1;
            }
            *latest = (*latest).max(call.at);
        }
    }
}

/// The seed table, its rows alternating across 4 instances, comes out S1 S2 S1 S3 S4 S5
/// whether the instances flush in order or in reverse.
#[tokio::test]
async fn seed_table_across_instances() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    for reverse in [false, true] {
        let clock = ManualClock::new(at(10, 0));
        let cluster = Cluster::start(4, Store::Redis, &redis, &clock).await?;
        for (index, step) in STEPS.iter().enumerate() {
            clock.set(at(step.hour, step.minute));
            cluster
                .call(index % 4, index as u64, step.user, step.client)
                .await?;
            if !reverse {
                cluster.flush(index % 4).await;
            }
        }
        for index in (0..4).rev() {
            cluster.flush(index).await;
        }
        let mut events = Vec::new();
        for instance in &cluster.instances {
            events.extend(instance.sink.events());
        }
        let rows = sessions_scenario::rows(&events)?;
        let labels: Vec<&str> = rows.iter().map(|row| row.label.as_str()).collect();
        assert_eq!(
            labels,
            ["S1", "S2", "S1", "S3", "S4", "S5"],
            "reverse flush: {reverse}\n{}",
            sessions_scenario::render(&rows)
        );
        cluster.assert_nothing_lost();
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Races
// ---------------------------------------------------------------------------

/// 4 instances receive the first event of the same 1,000 pairs at the same moment and
/// flush together: exactly 1,000 sessions, each pair's 4 events in one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_first_events_make_one_session_per_pair() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let clock = ManualClock::new(at(9, 0));
    let cluster = Arc::new(Cluster::start(4, Store::Redis, &redis, &clock).await?);
    let limit = Arc::new(Semaphore::new(32));
    let mut calls = JoinSet::new();
    for pair in 0..1_000u64 {
        for instance in 0..4 {
            let cluster = Arc::clone(&cluster);
            let permit = Arc::clone(&limit).acquire_owned().await?;
            calls.spawn(async move {
                let _permit = permit;
                let user = format!("racer-{pair}");
                cluster
                    .call(instance, pair * 4 + instance as u64, Some(&user), CLAUDE)
                    .await
            });
        }
    }
    while let Some(done) = calls.join_next().await {
        done??;
    }
    let flushes = cluster.instances.iter().map(|i| i.layer.flush());
    tokio::time::timeout(WAIT, futures_join_all(flushes)).await?;
    let events = cluster.calls().await?;
    assert_eq!(events.len(), 4_000);
    let sessions: BTreeSet<String> = events
        .values()
        .filter_map(|event| event.session_id.clone())
        .collect();
    assert_eq!(sessions.len(), 1_000);
    for pair in 0..1_000u64 {
        let first = session(&events, pair * 4)?;
        for instance in 1..4 {
            assert_eq!(session(&events, pair * 4 + instance)?, first, "pair {pair}");
        }
    }
    cluster.assert_nothing_lost();
    assert_eq!(cluster.store_errors(), 0);
    Ok(())
}

/// Awaits every future at once.
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    let mut set: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        set.retain_mut(|future| future.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// The rule itself
// ---------------------------------------------------------------------------

/// Random traffic of 5 groups over 6 hours, cut into batches of 1 to 8 requests (each in
/// time order) that reach the stores out of order, as instances flushing at different
/// moments send them (a batch swaps places with the next one half the time): Redis and
/// the memory store make the same partition.
#[tokio::test]
async fn redis_applies_the_memory_stores_rule() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let mut rng = Rng(0xAB5E_1234);
    let mut late = 0;
    for round in 0..20 {
        let store = RedisSessionStore::open(&redis.url())?.key_prefix(format!("rule-{round}:"));
        let memory = MemorySessionStore::new();
        let mut requests: Vec<SessionRequest> = (0..300)
            .map(|_| {
                let key = format!("k{}", rng.between(0, 4));
                SessionRequest::new(
                    key,
                    at(8, 0) + Duration::from_secs(rng.between(0, 6 * 3600)),
                )
            })
            .collect();
        requests.sort_by_key(|request| request.at);
        let mut batches: Vec<Vec<SessionRequest>> = Vec::new();
        let mut rest = requests.as_slice();
        while !rest.is_empty() {
            let (batch, tail) = rest.split_at((rng.between(1, 8) as usize).min(rest.len()));
            batches.push(batch.to_vec());
            rest = tail;
        }
        let mut index = 0;
        while index + 1 < batches.len() {
            if rng.between(0, 1) == 1 {
                batches.swap(index, index + 1);
                late += 1;
                index += 1;
            }
            index += 1;
        }
        let mut pairs = BTreeMap::new();
        for batch in &batches {
            let from_redis = store.assign(batch, WINDOW).await?;
            let from_memory = memory.assign(batch, WINDOW).await?;
            for (a, b) in from_redis.into_iter().zip(from_memory) {
                let previous = pairs.insert(a.clone(), b.clone());
                assert!(
                    previous.is_none_or(|previous| previous == b),
                    "round {round}: redis session {a} maps to two memory sessions"
                );
            }
        }
        let distinct: BTreeSet<&String> = pairs.values().collect();
        assert_eq!(distinct.len(), pairs.len(), "round {round}: one-to-one");
        assert!(pairs.len() > 5, "round {round}: several sessions per group");
    }
    assert!(late > 100, "batches arrived out of order {late} times");
    Ok(())
}

// ---------------------------------------------------------------------------
// Legacy clients across instances
// ---------------------------------------------------------------------------

/// A legacy `initialize` on one instance names the calls that land on another: in an MCP
/// session (rung 2), and on a stateless server by user + User-Agent (rung 3).
#[tokio::test]
async fn legacy_clients_are_shared_across_instances() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let clock = ManualClock::new(at(10, 0));
    let cluster = Cluster::start(2, Store::Redis, &redis, &clock).await?;
    let http = &cluster.http;
    let initialize = |id: u64, name: &str| {
        json!({
            "jsonrpc": "2.0", "id": id, "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": { "name": name, "version": "4.2" }
            }
        })
    };
    let list = |id: u64| json!({ "jsonrpc": "2.0", "id": id, "method": "tools/list" });
    let send = |to: usize, body: Value, headers: Vec<(&'static str, &'static str)>| {
        let url = cluster.instances[to].server.url.clone();
        async move {
            let mut request = http
                .post(url)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .header("mcp-protocol-version", "2025-06-18")
                .body(body.to_string());
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let response = request.send().await?;
            ensure!(response.status().is_success(), "{}", response.status());
            response.bytes().await?;
            anyhow::Ok(())
        }
    };
    // Rung 3: alice's stateless client initialises on instance 0, calls on instance 1.
    let agent = vec![(USER_HEADER, "alice"), ("user-agent", "ClaudeDesktop/0.9")];
    send(0, initialize(1, CLAUDE), agent.clone()).await?;
    cluster.flush(0).await;
    clock.set(at(10, 5));
    send(1, list(2), agent.clone()).await?;
    // Rung 2: an MCP session initialised on instance 1 (the session id as a later request
    // carries it), then used on instance 0.
    let in_session = vec![("mcp-session-id", "legacy-session-7")];
    send(1, initialize(3, CURSOR), in_session.clone()).await?;
    cluster.flush(1).await;
    send(0, list(4), in_session.clone()).await?;
    cluster.flush_all().await;
    let mut events: BTreeMap<u64, Event> = BTreeMap::new();
    for instance in &cluster.instances {
        for event in instance.sink.events() {
            if let Some(id) = event.request_id.as_ref().and_then(Value::as_u64) {
                events.insert(id, event);
            }
        }
    }
    let client = |id: u64| events.get(&id).and_then(|event| event.client_name.clone());
    assert_eq!(
        client(2).as_deref(),
        Some(CLAUDE),
        "rung 3 across instances"
    );
    assert_eq!(
        client(4).as_deref(),
        Some(CURSOR),
        "rung 2 across instances"
    );
    assert_eq!(
        events
            .get(&2)
            .and_then(|e| e.client_version.clone())
            .as_deref(),
        Some("4.2")
    );
    // DELETE ends the session everywhere: its client leaves Redis with the next batch.
    let client_keys = || -> anyhow::Result<usize> {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*:c:*")
            .query(&mut redis.connection()?)?;
        Ok(keys.len())
    };
    assert_eq!(client_keys()?, 2, "the session's and alice's user agent's");
    let response = http
        .delete(&cluster.instances[1].server.url)
        .header("mcp-session-id", "legacy-session-7")
        .send()
        .await?;
    response.bytes().await?;
    send(1, list(5), agent.clone()).await?;
    cluster.flush(1).await;
    assert_eq!(client_keys()?, 1, "the ended session's client is forgotten");
    cluster.assert_nothing_lost();
    assert_eq!(cluster.store_errors(), 0);
    Ok(())
}

// ---------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------

/// Redis killed mid-run and restarted: every request succeeds, every event is delivered
/// (grouped in memory while Redis is away, counted per batch), and grouping across
/// instances resumes by itself once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted() -> anyhow::Result<()> {
    let mut redis = RedisServer::start()?;
    let clock = ManualClock::new(at(10, 0));
    let cluster = Cluster::start(2, Store::Redis, &redis, &clock).await?;
    let mut id = 0;
    let mut next = || {
        id += 1;
        id
    };
    // Before: alice's calls on both instances share one session.
    let (a, b) = (next(), next());
    cluster.call(0, a, Some("alice"), CLAUDE).await?;
    cluster.flush(0).await;
    cluster.call(1, b, Some("alice"), CLAUDE).await?;
    cluster.flush(1).await;
    let before = cluster.calls().await?;
    assert_eq!(session(&before, a)?, session(&before, b)?);
    assert_eq!(cluster.store_errors(), 0);

    redis.kill();
    for _ in 0..20 {
        for instance in 0..2 {
            cluster.call(instance, next(), Some("bob"), CURSOR).await?;
            cluster.flush(instance).await;
        }
    }
    let during = cluster.store_errors();
    assert!(during >= 2, "failed batches are counted: {during}");
    redis.restart()?;

    // After: as soon as a pair's calls on both instances share a session again, Redis is
    // back in use. The wait is bounded by the store's longest pause (10 s).
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let user = format!("carol-{attempt}");
        let (c, d) = (next(), next());
        cluster.call(0, c, Some(&user), CLAUDE).await?;
        cluster.flush(0).await;
        cluster.call(1, d, Some(&user), CLAUDE).await?;
        cluster.flush(1).await;
        let events = cluster.calls().await?;
        if session(&events, c)? == session(&events, d)? {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "grouping did not resume"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (e, f) = (next(), next());
    cluster.call(1, e, Some("dave"), CURSOR).await?;
    cluster.flush(1).await;
    cluster.call(0, f, Some("dave"), CURSOR).await?;
    cluster.flush(0).await;
    let after = cluster.calls().await?;
    assert_eq!(session(&after, e)?, session(&after, f)?, "grouping resumed");
    assert_eq!(after.len() as u64, id, "one event per call, none lost");
    assert!(after.values().all(|event| event.session_id.is_some()));
    cluster.assert_nothing_lost();
    Ok(())
}

/// A Redis that is not there from the start (nothing listens on its port): requests and
/// events are untouched, sessions come from memory, every batch is counted.
#[tokio::test]
async fn redis_unreachable_from_the_start() -> anyhow::Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let clock = ManualClock::new(at(10, 0));
    let sink = MemorySink::new();
    let layer = AnalyticsLayer::builder()
        .sink(sink.clone())
        .identify(identity::from_header(USER_HEADER))
        .clock(clock.reader())
        .session_store(RedisSessionStore::open(&format!(
            "redis://127.0.0.1:{port}/"
        ))?)
        .build();
    let wrapped = layer.clone();
    let server = common::spawn(Mode::StatelessJson, move |router| router.layer(wrapped)).await;
    let http = reqwest::Client::new();
    for id in 1..=3 {
        clock.set(at(10, id));
        sessions_scenario::call_echo(&http, &server.url, id, Some("grace"), CLAUDE).await?;
        tokio::time::timeout(WAIT, layer.flush()).await?;
    }
    let events: Vec<Event> = sink
        .events()
        .into_iter()
        .filter(|event| event.method == "tools/call")
        .collect();
    assert_eq!(events.len(), 3);
    let sessions: BTreeSet<Option<String>> = events
        .iter()
        .map(|event| event.session_id.clone())
        .collect();
    assert_eq!(sessions.len(), 1, "one session, from memory: {sessions:?}");
    assert!(sessions.iter().all(Option::is_some));
    let stats = layer.stats();
    assert_eq!(stats.session_store_errors, 3, "{stats:?}");
    assert_eq!(stats.dropped.total(), 0, "{stats:?}");
    Ok(())
}

/// Redis frozen (SIGSTOP) for 5 s: the worker gives up on it within its timeout, decides
/// in memory (same pair on one instance, same session), and flushes while Redis is still
/// frozen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_paused_does_not_stall_the_worker() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let clock = ManualClock::new(at(10, 0));
    let cluster = Cluster::start(1, Store::Redis, &redis, &clock).await?;
    cluster.call(0, 1, Some("erin"), CLAUDE).await?;
    cluster.flush(0).await;
    redis.pause()?;
    let frozen = tokio::time::Instant::now();
    cluster.call(0, 2, Some("erin"), CLAUDE).await?;
    cluster.call(0, 3, Some("frank"), CLAUDE).await?;
    // The flush must complete while Redis is still frozen (it stays so for 5 s).
    let flushed = tokio::time::timeout(Duration::from_secs(4), cluster.flush(0)).await;
    let still_frozen = frozen.elapsed() < Duration::from_secs(5);
    tokio::time::sleep_until(frozen + Duration::from_secs(5)).await;
    redis.resume()?;
    ensure!(
        flushed.is_ok() && still_frozen,
        "the worker stalled on a frozen Redis"
    );
    let events = cluster.calls().await?;
    assert_eq!(events.len(), 3);
    assert_eq!(
        session(&events, 1)?,
        session(&events, 2)?,
        "decided in memory, which followed Redis"
    );
    assert_ne!(session(&events, 2)?, session(&events, 3)?);
    assert!(cluster.store_errors() >= 1);
    cluster.assert_nothing_lost();
    Ok(())
}

// ---------------------------------------------------------------------------
// Bounded
// ---------------------------------------------------------------------------

/// A flood of 100,000 invented identities: once the window (1 s here) and the margin
/// (9 s) have passed, Redis holds none of their keys.
#[tokio::test]
async fn a_flood_of_identities_expires_from_redis() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let store = RedisSessionStore::open(&redis.url())?.ttl_margin(Duration::from_secs(9));
    let window = Duration::from_secs(1);
    let now = SystemTime::now();
    for chunk in 0..100u64 {
        let batch: Vec<SessionRequest> = (0..1_000u64)
            .map(|n| SessionRequest::new(format!("grp_flood{:022}", chunk * 1_000 + n), now))
            .collect();
        store.assign(&batch, window).await?;
    }
    assert_eq!(redis.dbsize()?, 100_000);
    let deadline = tokio::time::Instant::now() + WAIT;
    while redis.dbsize()? > 0 {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{} keys left",
            redis.dbsize()?
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}
