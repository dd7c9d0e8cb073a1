//! [`RedisSessionStore`]: session grouping shared by every instance of a server, on Redis.
//!
//! Owns the Redis side of the session rule: one Lua script per batch (one round trip,
//! atomic, so two instances seeing a pair's first event at once agree on one session),
//! applying the same rule as [`History`](super::history) to a short history of each
//! group's sessions; and the legacy clients shared between instances. Every key expires
//! the inactivity window plus a margin after its last use, so Redis holds only active
//! groups. Keys are digests; no user id, client name of a query, session header or
//! `User-Agent` is stored as sent. Never runs on the request path, never retries on its
//! own (the worker's guard times calls out and decides in memory while Redis is away).

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, Script};
use serde::Serialize;

use super::clients::{ClientUpdate, ClientsFuture, SharedClient};
use super::history::HISTORY;
use super::{SessionRequest, SessionStore, StoreError, StoreFuture};
use crate::event::ids::new_id;

/// The default key prefix.
const DEFAULT_PREFIX: &str = "mcp-analytics:";
/// How long a key outlives the inactivity window by default.
const DEFAULT_TTL_MARGIN: Duration = Duration::from_secs(60);
/// Longest client name or version shared.
const MAX_CLIENT_FIELD: usize = 256;

/// Places each request among its group's recent sessions (the rule of `History`).
///
/// KEYS: one per group of the batch. ARGV: window ms, TTL ms, history length, then one
/// (key index, start ms, id for a new session) triple per request, in order. Each group
/// is a string of `id,start,last` entries joined by `;`. Reads every group with one MGET
/// (in chunks of 1,000 keys), writes each once; times keep the text they came as, so no
/// number is formatted.
const ASSIGN: &str = r"
local window = tonumber(ARGV[1])
local ttl = ARGV[2]
local keep = tonumber(ARGV[3])
local groups = {}
for first = 1, #KEYS, 1000 do
  local last = math.min(first + 999, #KEYS)
  local raws = redis.call('MGET', unpack(KEYS, first, last))
  for k = first, last do
    local group = {}
    local raw = raws[k - first + 1]
    if raw then
      for id, start, latest in string.gmatch(raw, '([^,;]+),(%d+),(%d+)') do
        group[#group + 1] = { id, tonumber(start), tonumber(latest), start, latest }
      end
    end
    groups[k] = group
  end
end
local out = {}
for n = 4, #ARGV, 3 do
  local group = groups[tonumber(ARGV[n])]
  local text = ARGV[n + 1]
  local at = tonumber(text)
  local best, best_gap = nil, nil
  for i = 1, #group do
    local span = group[i]
    local gap = 0
    if at < span[2] then gap = span[2] - at elseif at > span[3] then gap = at - span[3] end
    if gap <= window and (best == nil or gap < best_gap or (gap == best_gap and span[3] > best[3])) then
      best, best_gap = span, gap
    end
  end
  if best == nil then
    best = { ARGV[n + 2], at, at, text, text }
    local size = #group + 1
    group[size] = best
    if size > keep then
      local oldest = 1
      for i = 2, size do
        if group[i][3] < group[oldest][3] then oldest = i end
      end
      group[oldest] = group[size]
      group[size] = nil
    end
  else
    if at < best[2] then best[2] = at; best[4] = text end
    if at > best[3] then best[3] = at; best[5] = text end
  end
  out[#out + 1] = best[1]
end
for k = 1, #KEYS do
  local group = groups[k]
  local parts = {}
  for i = 1, #group do
    local span = group[i]
    parts[i] = span[1] .. ',' .. span[4] .. ',' .. span[5]
  end
  redis.call('SET', KEYS[k], table.concat(parts, ';'), 'PX', ttl)
end
return out
";

/// Learns, forgets and looks up legacy clients.
///
/// KEYS: every key the update names. ARGV[1]: the update as JSON (key indices into KEYS).
/// Each client is stored as `{"at":ms,"n":name,"v":version}`. Answers one string per
/// query: `""` when unknown, else `[name, version]` as JSON.
const CLIENTS: &str = r#"
local update = cjson.decode(ARGV[1])
local window, ttl = update.w, update.t
for _, note in ipairs(update.learn) do
  local key = KEYS[note.k]
  local raw = redis.call('GET', key)
  if not raw or cjson.decode(raw).at <= note.at then
    redis.call('SET', key, cjson.encode({ at = note.at, n = note.n, v = note.v }), 'PX', ttl)
  end
end
for _, k in ipairs(update.forget) do
  redis.call('DEL', KEYS[k])
end
local out = {}
for i, query in ipairs(update.find) do
  out[i] = ''
  for _, k in ipairs(query.ks) do
    local raw = redis.call('GET', KEYS[k])
    if raw then
      local client = cjson.decode(raw)
      if query.at - client.at <= window then
        if query.at > client.at then
          client.at = query.at
          redis.call('SET', KEYS[k], cjson.encode(client), 'PX', ttl)
        else
          redis.call('PEXPIRE', KEYS[k], ttl)
        end
        out[i] = cjson.encode({ client.n, client.v })
        break
      end
    end
  end
end
return out
"#;

/// Session grouping shared by every instance of a server, on Redis (cargo feature
/// `redis`).
///
/// Several instances behind a load balancer each see part of a user's calls; with their
/// own memory they would split one session into several. With this store the rule (same
/// user + same AI client + at most the inactivity window between events = one session)
/// holds for the whole deployment:
///
/// - **One round trip per batch**, a Lua script run atomically: two instances that see a
///   pair's first event at the same moment get one session.
/// - **Events in any order**: each group keeps its 4 most recent sessions; an event joins
///   the one whose span, widened by the window, it falls in.
/// - **Bounded**: every key expires the inactivity window plus a margin (default 60 s)
///   after its last use, so Redis holds only the groups active lately. A group costs
///   about 240 bytes of Redis memory with one session and 425 with four (measured; see
///   BENCHMARKS.md).
/// - **Redis down or slow**: the request path never touches Redis. The worker gives each
///   call a timeout (default 1 s,
///   [`session_store_timeout`](crate::AnalyticsLayerBuilder::session_store_timeout)) and
///   decides the batch in memory when Redis fails, counting it in
///   `stats().session_store_errors`; no event is lost, and Redis is used again as soon as
///   it answers.
/// - **Legacy clients**: the client named by a legacy `initialize` is shared too, so a
///   call that lands on another instance than its `initialize` still names its client.
///
/// The connection is a multiplexed [`ConnectionManager`] (no pool), made on first use and
/// re-established by itself after a failure. One Redis server (or a primary with
/// replicas); Redis Cluster is not supported, since a batch's keys span slots.
///
/// ```no_run
/// use tower_mcp_analytics::{AnalyticsLayer, RedisSessionStore, identity};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_mcp_analytics::StoreError> {
/// let layer = AnalyticsLayer::builder()
///     .identify(identity::from_header("x-user-id"))
///     .session_store(RedisSessionStore::open("redis://:secret@10.0.0.5:6379/2")?)
///     .build();
/// # Ok(()) }
/// ```
pub struct RedisSessionStore {
    client: Option<Client>,
    connection: OnceLock<ConnectionManager>,
    prefix: String,
    ttl_margin: Duration,
    assign: Script,
    clients: Script,
}

impl RedisSessionStore {
    /// A store on the Redis server at `url`: `redis://[[user]:password@]host[:port][/db]`,
    /// or `rediss://` for TLS (`unix://` and `redis+unix://` paths work too). Nothing is
    /// sent until the first batch; an unreadable URL is an error now.
    ///
    /// ```
    /// use tower_mcp_analytics::RedisSessionStore;
    ///
    /// assert!(RedisSessionStore::open("redis://127.0.0.1:6379/0").is_ok());
    /// assert!(RedisSessionStore::open("rediss://:secret@redis.internal:6380/2").is_ok());
    /// assert!(RedisSessionStore::open("not a url").is_err());
    /// ```
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let client = Client::open(url).map_err(StoreError::from_error)?;
        Ok(Self::build(Some(client), OnceLock::new()))
    }

    /// A store on a connection the application already has (cloning a
    /// [`ConnectionManager`] shares its one multiplexed connection).
    ///
    /// ```no_run
    /// use tower_mcp_analytics::RedisSessionStore;
    /// use tower_mcp_analytics::redis::{Client, aio::ConnectionManager};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let connection = ConnectionManager::new(Client::open("redis://127.0.0.1/")?).await?;
    /// let store = RedisSessionStore::with_connection(connection.clone());
    /// # Ok(()) }
    /// ```
    pub fn with_connection(connection: ConnectionManager) -> Self {
        Self::build(None, OnceLock::from(connection))
    }

    fn build(client: Option<Client>, connection: OnceLock<ConnectionManager>) -> Self {
        Self {
            client,
            connection,
            prefix: DEFAULT_PREFIX.to_owned(),
            ttl_margin: DEFAULT_TTL_MARGIN,
            assign: Script::new(ASSIGN),
            clients: Script::new(CLIENTS),
        }
    }

    /// The prefix of every key the store writes (default `mcp-analytics:`), e.g. to keep
    /// two deployments apart on one Redis.
    ///
    /// ```
    /// # fn main() -> Result<(), tower_mcp_analytics::StoreError> {
    /// let store = tower_mcp_analytics::RedisSessionStore::open("redis://127.0.0.1/")?
    ///     .key_prefix("staging:mcp:");
    /// # Ok(()) }
    /// ```
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a key outlives the inactivity window after its last use (default 60 s):
    /// room for events that reach Redis late.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # fn main() -> Result<(), tower_mcp_analytics::StoreError> {
    /// let store = tower_mcp_analytics::RedisSessionStore::open("redis://127.0.0.1/")?
    ///     .ttl_margin(Duration::from_secs(300));
    /// # Ok(()) }
    /// ```
    pub fn ttl_margin(mut self, margin: Duration) -> Self {
        self.ttl_margin = margin;
        self
    }

    /// The connection, made on first use (on the worker's runtime).
    fn connection(&self) -> Result<ConnectionManager, StoreError> {
        if let Some(connection) = self.connection.get() {
            return Ok(connection.clone());
        }
        let client = self
            .client
            .clone()
            .ok_or_else(|| StoreError::new("no Redis connection"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let made = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(StoreError::from_error)?;
        Ok(self.connection.get_or_init(|| made).clone())
    }

    fn key(&self, kind: &str, key: &str) -> String {
        format!("{}{kind}:{key}", self.prefix)
    }

    fn ttl_ms(&self, window: Duration) -> u64 {
        millis(UNIX_EPOCH + window + self.ttl_margin).max(1)
    }

    async fn run_assign(
        &self,
        requests: &[SessionRequest],
        window: Duration,
    ) -> Result<Vec<String>, StoreError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        // 1-based indices into the script's KEYS.
        let mut keys: HashMap<&str, usize> = HashMap::new();
        let mut invocation = self.assign.prepare_invoke();
        invocation
            .arg(millis(UNIX_EPOCH + window))
            .arg(self.ttl_ms(window))
            .arg(HISTORY);
        for request in requests {
            let next = keys.len() + 1;
            let index = *keys.entry(&request.key).or_insert_with(|| {
                invocation.key(self.key("g", &request.key));
                next
            });
            invocation
                .arg(index)
                .arg(millis(request.at))
                .arg(new_id("ses", request.at));
        }
        let mut connection = self.connection()?;
        invocation
            .invoke_async(&mut connection)
            .await
            .map_err(StoreError::from_error)
    }

    async fn run_clients<'a>(
        &self,
        update: &'a ClientUpdate,
        window: Duration,
    ) -> Result<Vec<Option<SharedClient>>, StoreError> {
        // Key indices, 1-based, into the script's KEYS.
        let mut names: Vec<&str> = Vec::new();
        let mut indices: HashMap<&str, usize> = HashMap::new();
        let mut index = |key: &'a str| -> usize {
            *indices.entry(key).or_insert_with(|| {
                names.push(key);
                names.len()
            })
        };
        let document = ClientsDocument {
            w: millis(UNIX_EPOCH + window),
            t: self.ttl_ms(window),
            learn: update
                .learnt
                .iter()
                .map(|note| Note {
                    k: index(&note.key),
                    at: millis(note.at),
                    n: bounded(&note.name),
                    v: note.version.as_deref().map(bounded).unwrap_or_default(),
                })
                .collect(),
            forget: update.forgotten.iter().map(|key| index(key)).collect(),
            find: update
                .queries
                .iter()
                .map(|query| Find {
                    at: millis(query.at),
                    ks: query.keys.iter().map(|key| index(key)).collect(),
                })
                .collect(),
        };
        let json = serde_json::to_string(&document).map_err(StoreError::from_error)?;
        let mut invocation = self.clients.prepare_invoke();
        for name in &names {
            invocation.key(self.key("c", name));
        }
        invocation.arg(json);
        let mut connection = self.connection()?;
        let answers: Vec<String> = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(StoreError::from_error)?;
        Ok(answers.iter().map(|answer| shared_client(answer)).collect())
    }
}

impl SessionStore for RedisSessionStore {
    fn assign<'a>(&'a self, requests: &'a [SessionRequest], window: Duration) -> StoreFuture<'a> {
        Box::pin(self.run_assign(requests, window))
    }

    fn clients<'a>(&'a self, update: &'a ClientUpdate, window: Duration) -> ClientsFuture<'a> {
        Box::pin(self.run_clients(update, window))
    }
}

impl fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSessionStore")
            .field("prefix", &self.prefix)
            .field("ttl_margin", &self.ttl_margin)
            .field("connected", &self.connection.get().is_some())
            .finish_non_exhaustive()
    }
}

/// The clients script's argument.
#[derive(Serialize)]
struct ClientsDocument<'a> {
    w: u64,
    t: u64,
    learn: Vec<Note<'a>>,
    forget: Vec<usize>,
    find: Vec<Find>,
}

#[derive(Serialize)]
struct Note<'a> {
    k: usize,
    at: u64,
    n: &'a str,
    v: &'a str,
}

#[derive(Serialize)]
struct Find {
    at: u64,
    ks: Vec<usize>,
}

/// Milliseconds since the Unix epoch (0 before it).
fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

/// `text` cut to [`MAX_CLIENT_FIELD`] bytes at a character boundary.
fn bounded(text: &str) -> &str {
    let mut end = text.len().min(MAX_CLIENT_FIELD);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A lookup's answer: `""`, or `[name, version]` as JSON.
fn shared_client(answer: &str) -> Option<SharedClient> {
    let (name, version): (String, String) = serde_json::from_str(answer).ok()?;
    Some(SharedClient::new(
        name,
        (!version.is_empty()).then_some(version),
    ))
}
