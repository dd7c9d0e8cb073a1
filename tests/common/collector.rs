//! A fake analytics collector for delivery tests: a real axum app on a loopback port that
//! records every request it receives and answers as told (scripted statuses,
//! `Retry-After`, 413 above a size, hanging, slow answers), and that can go down and come
//! back on the same URL.
//!
//! It also keeps count of the requests it is handling at once (received, not yet
//! answered), and of the most it ever handled at once.
//!
//! Bodies are decoded the way the wire format sends them (gzip when
//! `Content-Encoding: gzip`). "Stored" events are de-duplicated on `batch_id`, as a
//! collector honouring `Idempotency-Key` would: a batch accepted twice counts once.
//!
//! The server speaks HTTP/1.1 only (the sink talks plain `http://` to it, so HTTP/1.1 is
//! what it would negotiate anyway). Every connection runs as a task owned by the server,
//! so going down or dropping the collector closes every connection, hung ones included.

use std::{
    collections::{HashMap, VecDeque},
    fmt::Write as _,
    io::Read as _,
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    response::Response,
};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use serde_json::Value;
use tokio::{
    net::{TcpListener, TcpSocket},
    sync::{oneshot, watch},
    task::{JoinHandle, JoinSet},
};

/// Path of the events endpoint.
pub const EVENTS_PATH: &str = "/v1/events";
/// The `schema` marker of a version 1 batch body.
pub const SCHEMA: &str = "tower-mcp-analytics/v1";
/// Bodies larger than this (uncompressed, in bytes) are sent gzip-compressed.
pub const GZIP_ABOVE: usize = 1024;

// ---------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------

/// How the collector answers a `POST` to [`EVENTS_PATH`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answer with this status and an empty body.
    Status(u16),
    /// Answer with this status and `Retry-After: <value>` (seconds such as `"2"`, or an
    /// HTTP date), passed through verbatim.
    StatusWithRetryAfter(u16, String),
    /// `413 Payload Too Large` if the decoded (uncompressed) body is larger than this many
    /// bytes, `202 Accepted` otherwise.
    TooLargeAbove(usize),
    /// Read the request, record it (status 0) and never answer. The connection stays open
    /// until the collector goes down or is dropped.
    Hang,
    /// Record the request as answered with this status, wait, then answer. The collector
    /// has decided on the status when the request arrives, so a 2xx counts as accepted
    /// even if the client gives up before the answer reaches it (the "processed, but the
    /// client never heard" case that batch-id de-duplication exists for).
    Delay(Duration, u16),
}

impl Reply {
    /// The healthy default: `202 Accepted`.
    pub const ACCEPTED: Reply = Reply::Status(202);

    /// The status this reply gives a body of `decoded_len` bytes; 0 for [`Reply::Hang`].
    fn status_for(&self, decoded_len: usize) -> u16 {
        match self {
            Reply::Status(status)
            | Reply::StatusWithRetryAfter(status, _)
            | Reply::Delay(_, status) => *status,
            Reply::TooLargeAbove(limit) if decoded_len > *limit => 413,
            Reply::TooLargeAbove(_) => 202,
            Reply::Hang => 0,
        }
    }

    /// Panics on a reply the collector could not send, so a bad script fails where it is
    /// written rather than inside the server.
    fn validate(&self) {
        match self {
            Reply::Status(status)
            | Reply::StatusWithRetryAfter(status, _)
            | Reply::Delay(_, status) => {
                assert!(
                    StatusCode::from_u16(*status).is_ok(),
                    "invalid status in {self:?}"
                );
            }
            Reply::TooLargeAbove(_) | Reply::Hang => {}
        }
        if let Reply::StatusWithRetryAfter(_, value) = self {
            assert!(
                HeaderValue::from_str(value).is_ok(),
                "invalid Retry-After value in {self:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Received requests
// ---------------------------------------------------------------------------

/// One request as the collector saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Position in arrival order (0-based).
    pub index: usize,
    /// When the request's head arrived.
    pub at: Instant,
    pub method: Method,
    /// Path of the request URI (no query).
    pub path: String,
    pub headers: HeaderMap,
    /// The body exactly as sent (compressed if it was).
    pub raw_body: Bytes,
    /// The body after undoing `Content-Encoding` (empty if that failed).
    pub decoded_body: Vec<u8>,
    /// The decoded body parsed as JSON; `Value::Null` if it could not be decoded or parsed.
    pub body: Value,
    /// Why the body could not be decoded or parsed as JSON, if so.
    pub decode_error: Option<String>,
    /// The reply used, for requests to the events endpoint; `None` for other paths and
    /// methods (answered 404 and 405 without consuming the script).
    pub reply: Option<Reply>,
    /// What the collector answered: 0 for [`Reply::Hang`]; 400 instead of a 2xx when the
    /// body could not be decoded or parsed.
    pub status: u16,
}

impl Received {
    /// The value of header `name` (case-insensitive), if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the body was sent with `Content-Encoding: gzip`.
    pub fn is_gzip(&self) -> bool {
        self.header("content-encoding")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"))
    }

    /// Whether the collector answered 2xx.
    pub fn is_accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `batch_id` of the body.
    pub fn batch_id(&self) -> Option<&str> {
        self.body.get("batch_id").and_then(Value::as_str)
    }

    /// `events` of the body (empty if absent or not an array).
    pub fn events(&self) -> &[Value] {
        self.body
            .get("events")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// The `id` of each event, in order (see [`event_id`]).
    pub fn event_ids(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| event_id(e).unwrap_or_else(|| "<no id>".to_owned()))
            .collect()
    }

    /// Departures from the version 1 wire format; empty when the request conforms.
    /// `api_key`: `Some(key)` requires `Authorization: Bearer <key>`, `None` requires no
    /// `Authorization` header.
    pub fn wire_problems(&self, api_key: Option<&str>) -> Vec<String> {
        let mut problems = Vec::new();
        if self.method != Method::POST {
            problems.push(format!("method is {}, not POST", self.method));
        }
        if self.path != EVENTS_PATH {
            problems.push(format!("path is {}, not {EVENTS_PATH}", self.path));
        }
        match self.header("content-type") {
            Some(ct) if ct.to_ascii_lowercase().starts_with("application/json") => {}
            other => problems.push(format!("Content-Type is {other:?}, not application/json")),
        }
        match self.header("content-encoding") {
            None => {}
            Some(ce) if ce.trim().eq_ignore_ascii_case("gzip") => {}
            Some(ce) => problems.push(format!("unexpected Content-Encoding {ce:?}")),
        }
        if let Some(error) = &self.decode_error {
            problems.push(format!("body unreadable: {error}"));
        } else if self.is_gzip() != (self.decoded_body.len() > GZIP_ABOVE) {
            problems.push(format!(
                "a body of {} bytes was sent {} (gzip only above {GZIP_ABOVE} bytes)",
                self.decoded_body.len(),
                if self.is_gzip() {
                    "gzip-compressed"
                } else {
                    "uncompressed"
                }
            ));
        }
        let user_agent = format!("tower-mcp-analytics/{}", env!("CARGO_PKG_VERSION"));
        if self.header("user-agent") != Some(user_agent.as_str()) {
            problems.push(format!(
                "User-Agent is {:?}, not {user_agent:?}",
                self.header("user-agent")
            ));
        }
        let authorization = self.header("authorization");
        match api_key {
            Some(key) if authorization != Some(format!("Bearer {key}").as_str()) => {
                problems.push(format!(
                    "Authorization is {authorization:?}, not \"Bearer {key}\""
                ));
            }
            None if authorization.is_some() => {
                problems.push(format!("unexpected Authorization {authorization:?}"));
            }
            _ => {}
        }
        if self.decode_error.is_some() {
            return problems;
        }
        if !self.body.is_object() {
            problems.push("body is not a JSON object".to_owned());
            return problems;
        }
        if self.body.get("schema").and_then(Value::as_str) != Some(SCHEMA) {
            problems.push(format!(
                "schema is {:?}, not {SCHEMA:?}",
                self.body.get("schema")
            ));
        }
        match self.batch_id() {
            Some(id) if is_prefixed_id(id, "bat_") => {
                if self.header("idempotency-key") != Some(id) {
                    problems.push(format!(
                        "Idempotency-Key is {:?}, not the batch id {id:?}",
                        self.header("idempotency-key")
                    ));
                }
            }
            other => problems.push(format!(
                "batch_id is {other:?}, not bat_ + 27 base62 characters"
            )),
        }
        match self.body.get("sent_at").and_then(Value::as_str) {
            Some(sent_at) if is_rfc3339(sent_at) => {}
            other => problems.push(format!("sent_at is {other:?}, not an RFC 3339 time")),
        }
        match self.body.get("events").and_then(Value::as_array) {
            None => problems.push("events is not an array".to_owned()),
            Some(events) if events.is_empty() => problems.push("events is empty".to_owned()),
            Some(events) => {
                for (i, event) in events.iter().enumerate() {
                    if event.get("id").and_then(Value::as_str).is_none() {
                        problems.push(format!("event {i} has no string id"));
                    }
                }
            }
        }
        problems
    }

    /// One line for failure messages: index, time since `origin`, method, path, status,
    /// encoding, batch id and event ids.
    pub fn summary(&self, origin: Instant) -> String {
        format!(
            "#{} +{:.3}s {} {} -> {} {}batch {} events {:?}{}",
            self.index,
            self.at.saturating_duration_since(origin).as_secs_f64(),
            self.method,
            self.path,
            self.status,
            if self.is_gzip() { "gzip " } else { "" },
            self.batch_id().unwrap_or("<none>"),
            self.event_ids(),
            self.decode_error
                .as_ref()
                .map(|e| format!(" (unreadable: {e})"))
                .unwrap_or_default()
        )
    }
}

/// The `id` of an event: the string itself, or the JSON text of a non-string id.
pub fn event_id(event: &Value) -> Option<String> {
    match event.get("id")? {
        Value::String(id) => Some(id.clone()),
        other => Some(other.to_string()),
    }
}

/// Undoes `Content-Encoding` (`gzip`/`x-gzip`, `identity`, or none). Multi-member gzip
/// streams are read to the end; anything else is an error.
pub fn decode_body(headers: &HeaderMap, raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = raw.to_vec();
    let codings: Vec<String> = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .map(|v| v.to_str().map_err(|_| "Content-Encoding is not ASCII"))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty())
        .collect();
    // Codings are listed in the order they were applied: undo them last to first.
    for coding in codings.iter().rev() {
        match coding.as_str() {
            "identity" => {}
            "gzip" | "x-gzip" => {
                let mut out = Vec::new();
                flate2::read::MultiGzDecoder::new(body.as_slice())
                    .read_to_end(&mut out)
                    .map_err(|e| format!("invalid gzip body: {e}"))?;
                body = out;
            }
            other => return Err(format!("unsupported Content-Encoding {other:?}")),
        }
    }
    Ok(body)
}

/// `prefix` followed by exactly 27 base62 characters.
fn is_prefixed_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 27 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
fn is_rfc3339(s: &str) -> bool {
    fn digits(b: &[u8]) -> bool {
        !b.is_empty() && b.iter().all(u8::is_ascii_digit)
    }
    let b = s.as_bytes();
    if b.len() < 20
        || !(digits(&b[0..4])
            && b[4] == b'-'
            && digits(&b[5..7])
            && b[7] == b'-'
            && digits(&b[8..10])
            && matches!(b[10], b'T' | b't')
            && digits(&b[11..13])
            && b[13] == b':'
            && digits(&b[14..16])
            && b[16] == b':'
            && digits(&b[17..19]))
    {
        return false;
    }
    let mut rest = &b[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &fraction[n..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => digits(&[*h1, *h2, *m1, *m2]),
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Collector
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct Shared {
    state: Mutex<CollectorState>,
    /// Bumped after every recorded request, to wake waiters.
    changes: watch::Sender<usize>,
    started: Instant,
    /// Requests received and not yet answered (hung ones until their connection closes).
    open: AtomicUsize,
    /// The most requests ever open at once (since the last reset).
    most_open: AtomicUsize,
}

/// Counts a request as open from its arrival until it is answered or dropped.
struct OpenRequest<'a>(&'a Shared);

impl<'a> OpenRequest<'a> {
    fn new(shared: &'a Shared) -> Self {
        let open = shared.open.fetch_add(1, Ordering::SeqCst) + 1;
        shared.most_open.fetch_max(open, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for OpenRequest<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct CollectorState {
    script: VecDeque<Reply>,
    default: Reply,
    received: Vec<Received>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, CollectorState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The accept loop of a running collector.
#[derive(Debug)]
struct Server {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// A running fake collector; see the module docs. Dropping it stops the server and closes
/// every connection (hung requests see the connection close).
///
/// Going down and up keeps the URL: every socket on the port is created with
/// `SO_REUSEADDR` and `SO_REUSEPORT`, and [`Collector::go_down`] binds a second,
/// non-listening socket to the port *before* closing the listener. While down, the port
/// stays bound to that socket: connection attempts are refused (nothing listens), the
/// operating system does not pick the port for a bind to port 0 (another collector or
/// server) or as a client's ephemeral port, and a socket without `SO_REUSEADDR` cannot
/// bind it. [`Collector::go_up`] makes that socket listen. (Only a process binding this
/// very port with `SO_REUSEADDR` could take it meanwhile; `go_up` then panics.)
#[derive(Debug)]
pub struct Collector {
    /// The loopback address it listens on (the same across [`Collector::go_down`] and
    /// [`Collector::go_up`]).
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT/v1/events`.
    pub url: String,
    shared: Arc<Shared>,
    server: Option<Server>,
    /// While down: the socket holding the port.
    parked: Option<TcpSocket>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            // Dropping the accept loop drops its JoinSet, which aborts every connection.
            server.task.abort();
        }
    }
}

impl Collector {
    /// A healthy collector on `127.0.0.1:<free port>`: `202 Accepted` to every `POST` to
    /// [`EVENTS_PATH`].
    pub async fn start() -> Collector {
        let socket = port_socket().expect("create the collector's socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind the collector to a loopback port");
        let addr = socket.local_addr().expect("collector address");
        let listener = socket.listen(1024).expect("collector listens");
        let shared = Arc::new(Shared {
            state: Mutex::new(CollectorState {
                script: VecDeque::new(),
                default: Reply::ACCEPTED,
                received: Vec::new(),
            }),
            changes: watch::Sender::new(0),
            started: Instant::now(),
            open: AtomicUsize::new(0),
            most_open: AtomicUsize::new(0),
        });
        let server = spawn_server(listener, shared.clone());
        Collector {
            addr,
            url: format!("http://{addr}{EVENTS_PATH}"),
            shared,
            server: Some(server),
            parked: None,
        }
    }

    /// `http://127.0.0.1:PORT/v1/events`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url_for(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Appends replies to the script: the next requests to the endpoint get them in order,
    /// then the default again.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        let replies: Vec<Reply> = replies.into_iter().collect();
        replies.iter().for_each(Reply::validate);
        self.shared.lock().script.extend(replies);
    }

    /// The reply used when the script is empty (initially [`Reply::ACCEPTED`]).
    pub fn set_default(&self, reply: Reply) {
        reply.validate();
        self.shared.lock().default = reply;
    }

    /// How many scripted replies have not been used yet.
    pub fn script_remaining(&self) -> usize {
        self.shared.lock().script.len()
    }

    /// Whether the collector is listening.
    pub fn is_up(&self) -> bool {
        self.server.is_some()
    }

    /// Stops listening and closes every open connection (hung and delayed requests
    /// included); new connections are refused until [`Collector::go_up`]. Returns once
    /// all connections are closed. No-op when already down.
    pub async fn go_down(&mut self) {
        let Some(server) = self.server.take() else {
            return;
        };
        // Hold the port before the listener closes (allowed by SO_REUSEPORT); where that
        // is not possible, re-bind right after.
        let parked = park_port(self.addr).ok();
        let _ = server.shutdown.send(());
        let _ = server.task.await;
        self.parked = Some(match parked {
            Some(socket) => socket,
            None => park_port(self.addr).expect("re-bind the collector's port"),
        });
    }

    /// Listens again on the same port (same URL). No-op when already up.
    pub async fn go_up(&mut self) {
        if self.server.is_some() {
            return;
        }
        let socket = match self.parked.take() {
            Some(socket) => socket,
            None => park_port(self.addr).expect("re-bind the collector's port"),
        };
        let listener = socket.listen(1024).expect("collector listens again");
        self.server = Some(spawn_server(listener, self.shared.clone()));
    }

    /// Every request received, in arrival order, whatever it was answered.
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().received.clone()
    }

    /// The most requests the collector was handling at once (received, not yet answered)
    /// since it started or since [`Collector::reset_most_concurrent`].
    pub fn most_concurrent(&self) -> usize {
        self.shared.most_open.load(Ordering::SeqCst)
    }

    /// Starts [`Collector::most_concurrent`] again from the requests open now.
    pub fn reset_most_concurrent(&self) {
        let open = self.shared.open.load(Ordering::SeqCst);
        self.shared.most_open.store(open, Ordering::SeqCst);
    }

    /// Number of requests received so far.
    pub fn request_count(&self) -> usize {
        self.shared.lock().received.len()
    }

    /// The status answered to each request, in arrival order (0 for a hang).
    pub fn statuses(&self) -> Vec<u16> {
        self.shared
            .lock()
            .received
            .iter()
            .map(|r| r.status)
            .collect()
    }

    /// The `batch_id` of each request, in arrival order.
    pub fn batch_ids(&self) -> Vec<Option<String>> {
        self.shared
            .lock()
            .received
            .iter()
            .map(|r| r.batch_id().map(str::to_owned))
            .collect()
    }

    /// The events of every request answered 2xx, in arrival order. A batch accepted twice
    /// appears twice; see [`Collector::stored_events`] for the de-duplicated view.
    pub fn accepted_events(&self) -> Vec<Value> {
        self.shared
            .lock()
            .received
            .iter()
            .filter(|r| r.is_accepted())
            .flat_map(|r| r.events().iter().cloned())
            .collect()
    }

    /// The accepted batches, de-duplicated on `batch_id` (the first acceptance counts),
    /// in order of first acceptance. An accepted request without a batch id is listed
    /// under `""` each time.
    pub fn events_by_batch(&self) -> Vec<(String, Vec<Value>)> {
        stored_batches(&self.shared.lock().received)
            .into_iter()
            .map(|r| (r.batch_id().unwrap_or("").to_owned(), r.events().to_vec()))
            .collect()
    }

    /// The events a collector de-duplicating on `batch_id` would have stored.
    pub fn stored_events(&self) -> Vec<Value> {
        stored_batches(&self.shared.lock().received)
            .into_iter()
            .flat_map(|r| r.events().iter().cloned())
            .collect()
    }

    /// Waits until at least `n` events are stored (see [`Collector::stored_events`]) or
    /// `timeout` passes, and returns the stored events either way.
    pub async fn wait_for_events(&self, n: usize, timeout: Duration) -> Vec<Value> {
        self.wait_until(timeout, |c| c.stored_events().len() >= n)
            .await;
        self.stored_events()
    }

    /// Waits until at least `n` requests were received or `timeout` passes, and returns
    /// the received requests either way.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<Received> {
        self.wait_until(timeout, |c| c.request_count() >= n).await;
        self.received()
    }

    async fn wait_until(&self, timeout: Duration, done: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.shared.changes.subscribe();
        while !done(self) {
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    }

    /// A log of every request for failure messages, one [`Received::summary`] per line,
    /// times relative to the collector's start.
    pub fn describe(&self) -> String {
        let received = self.received();
        if received.is_empty() {
            return "  (no requests)".to_owned();
        }
        let mut out = String::new();
        for r in &received {
            let _ = writeln!(out, "  {}", r.summary(self.shared.started));
        }
        out
    }

    /// Asserts exactly-once delivery: after de-duplicating accepted batches on `batch_id`
    /// (a batch accepted twice counts once), every id in `expected_ids` is stored exactly
    /// once and nothing else is. Also fails if one batch id was accepted twice with
    /// different events, or a stored event has no `id`. Returns the stored events.
    #[track_caller]
    pub fn assert_each_event_once<I, S>(&self, expected_ids: I) -> Vec<Value>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let received = self.received();
        let mut problems = Vec::new();

        let mut first_acceptance: HashMap<&str, &Received> = HashMap::new();
        for r in received.iter().filter(|r| r.is_accepted()) {
            let Some(batch_id) = r.batch_id() else {
                continue;
            };
            match first_acceptance.get(batch_id) {
                None => {
                    first_acceptance.insert(batch_id, r);
                }
                Some(first) if first.event_ids() != r.event_ids() => problems.push(format!(
                    "batch {batch_id} accepted again (#{}) with different events: {:?} then {:?}",
                    r.index,
                    first.event_ids(),
                    r.event_ids()
                )),
                Some(_) => {}
            }
        }

        let stored = stored_batches(&received);
        let mut seen: HashMap<String, Vec<String>> = HashMap::new();
        let mut order = Vec::new();
        for r in &stored {
            for (i, event) in r.events().iter().enumerate() {
                let Some(id) = event_id(event) else {
                    problems.push(format!("event {i} of request #{} has no id", r.index));
                    continue;
                };
                let batches = seen.entry(id.clone()).or_insert_with(|| {
                    order.push(id.clone());
                    Vec::new()
                });
                batches.push(format!(
                    "{} (#{})",
                    r.batch_id().unwrap_or("<no batch id>"),
                    r.index
                ));
            }
        }

        let mut expected: Vec<String> = Vec::new();
        for id in expected_ids {
            let id = id.into();
            if !expected.contains(&id) {
                expected.push(id);
            }
        }
        for id in &expected {
            match seen.get(id) {
                None => problems.push(format!("event {id} missing")),
                Some(batches) if batches.len() > 1 => problems.push(format!(
                    "event {id} duplicated: stored {} times, in {}",
                    batches.len(),
                    batches.join(", ")
                )),
                Some(_) => {}
            }
        }
        for id in &order {
            if !expected.contains(id) {
                problems.push(format!(
                    "unexpected event {id} (in {})",
                    seen[id].join(", ")
                ));
            }
        }

        assert!(
            problems.is_empty(),
            "exactly-once delivery failed:\n{}\nrequests:\n{}",
            problems
                .iter()
                .map(|p| format!("  - {p}"))
                .collect::<Vec<_>>()
                .join("\n"),
            self.describe()
        );
        stored
            .into_iter()
            .flat_map(|r| r.events().iter().cloned())
            .collect()
    }

    /// Asserts every request received conforms to the version 1 wire format (see
    /// [`Received::wire_problems`]).
    #[track_caller]
    pub fn assert_wire_format(&self, api_key: Option<&str>) {
        let problems: Vec<String> = self
            .received()
            .iter()
            .flat_map(|r| {
                r.wire_problems(api_key)
                    .into_iter()
                    .map(|p| format!("  - #{}: {p}", r.index))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(
            problems.is_empty(),
            "wire format violated:\n{}\nrequests:\n{}",
            problems.join("\n"),
            self.describe()
        );
    }
}

/// Accepted requests, de-duplicated on batch id (first acceptance kept), in order.
fn stored_batches(received: &[Received]) -> Vec<&Received> {
    let mut seen = std::collections::HashSet::new();
    received
        .iter()
        .filter(|r| r.is_accepted())
        .filter(|r| r.batch_id().is_none_or(|id| seen.insert(id.to_owned())))
        .collect()
}

/// A TCP socket that may share its port with the collector's other sockets.
fn port_socket() -> std::io::Result<TcpSocket> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    #[cfg(all(
        unix,
        not(target_os = "solaris"),
        not(target_os = "illumos"),
        not(target_os = "cygwin"),
        not(target_os = "nuttx"),
    ))]
    socket.set_reuseport(true)?;
    Ok(socket)
}

/// A socket bound to `addr` but not listening: it holds the port, and connection
/// attempts to it are refused.
fn park_port(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = port_socket()?;
    socket.bind(addr)?;
    Ok(socket)
}

fn spawn_server(listener: TcpListener, shared: Arc<Shared>) -> Server {
    let app = Router::new().fallback(handle).with_state(shared);
    let (shutdown, mut stop) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    let service = TowerToHyperService::new(app.clone());
                    connections.spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        connections.shutdown().await;
    });
    Server { shutdown, task }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let at = Instant::now();
    let _open = OpenRequest::new(&shared);
    let (parts, body) = request.into_parts();
    let (raw_body, read_error) = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => (bytes, None),
        Err(e) => (Bytes::new(), Some(format!("body read failed: {e}"))),
    };
    let decoded = match read_error {
        Some(e) => Err(e),
        None => decode_body(&parts.headers, &raw_body),
    };
    let (decoded_body, body, decode_error) = match decoded {
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(json) => (bytes, json, None),
            Err(e) => (bytes, Value::Null, Some(format!("not JSON: {e}"))),
        },
        Err(e) => (Vec::new(), Value::Null, Some(e)),
    };
    let path = parts.uri.path().to_owned();

    let (reply, status) = {
        let mut state = shared.lock();
        let (reply, status) = if path != EVENTS_PATH {
            (None, 404)
        } else if parts.method != Method::POST {
            (None, 405)
        } else {
            let reply = state
                .script
                .pop_front()
                .unwrap_or_else(|| state.default.clone());
            let mut status = reply.status_for(decoded_body.len());
            if decode_error.is_some() && (200..300).contains(&status) {
                status = 400;
            }
            (Some(reply), status)
        };
        let index = state.received.len();
        state.received.push(Received {
            index,
            at,
            method: parts.method,
            path,
            headers: parts.headers,
            raw_body,
            decoded_body,
            body,
            decode_error,
            reply: reply.clone(),
            status,
        });
        (reply, status)
    };
    shared.changes.send_modify(|n| *n += 1);

    match &reply {
        Some(Reply::Hang) => std::future::pending::<()>().await,
        Some(Reply::Delay(delay, _)) => tokio::time::sleep(*delay).await,
        _ => {}
    }
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::from_u16(status).expect("validated status");
    if let Some(Reply::StatusWithRetryAfter(_, value)) = &reply {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(value).expect("validated Retry-After"),
        );
    }
    response
}
