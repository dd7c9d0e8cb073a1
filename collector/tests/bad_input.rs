//! Bad input at `POST /v1/events`, against an in-process collector on a loopback port with
//! a real SQLite file: every malformed, oversized, unauthenticated or unknown body is
//! refused with the documented status and an `{"error": ...}` naming the reason, nothing of
//! it is stored (not even its valid events), and the collector goes on storing valid
//! batches afterwards. Also: unknown fields are accepted and kept in the stored event;
//! limits hold without reading or inflating past them (a gzip bomb, 100 MB bodies with
//! and without `Content-Length`); a full queue answers 429 with `Retry-After` and stores
//! exactly the batches it accepted; and the dashboard password guards the page and the API,
//! whose every answer carries the Content-Security-Policy.

#[path = "support/collector_process.rs"]
mod collector_process;
#[path = "support/events.rs"]
mod events;

use events::{layer_event as event, v1_batch as batch};

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use collector_process::ScratchDir;
use mcp_analytics_collector::store::IncomingBatch;
use mcp_analytics_collector::store::{
    Advertised, Committed, EventRow, Facets, Filter, SessionRow, SqliteStore, Store, StoreError,
};
use mcp_analytics_collector::{Collector, CollectorBuilder};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::oneshot;

/// Generous bound for anything that must happen eventually; only reached on failure.
const WAIT: Duration = Duration::from_secs(60);
/// The collector's default body limit (10 MiB).
const BODY_LIMIT: usize = 10 * 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------------------

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

// ---------------------------------------------------------------------------------------
// An in-process collector
// ---------------------------------------------------------------------------------------

/// A collector served on a loopback port; stopped on drop.
struct Running {
    addr: SocketAddr,
    store: Arc<dyn Store>,
    http: reqwest::Client,
    /// Sent with every valid batch (the collector's API key, if it has one).
    api_key: Option<String>,
    /// Valid batches stored so far by [`Running::still_stores`].
    valid: u64,
    shutdown: Option<oneshot::Sender<()>>,
    _dir: Option<ScratchDir>,
}

impl Running {
    /// A collector with default settings on a fresh SQLite file.
    async fn start() -> anyhow::Result<Self> {
        Self::start_with(|builder| builder).await
    }

    /// A collector on a fresh SQLite file, with `configure` applied to its builder.
    async fn start_with(
        configure: impl FnOnce(CollectorBuilder) -> CollectorBuilder,
    ) -> anyhow::Result<Self> {
        let dir = ScratchDir::new("collector-bad-input")?;
        let builder = configure(Collector::builder().database(dir.join("analytics.db")));
        let mut running = Self::serve(builder.build()?).await?;
        running._dir = Some(dir);
        Ok(running)
    }

    /// Serves an already built collector.
    async fn serve(collector: Collector) -> anyhow::Result<Self> {
        let store = collector.store();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (shutdown, stop) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let stopped = async {
                let _ = stop.await;
            };
            if let Err(error) = collector.serve(listener, stopped).await {
                eprintln!("the collector stopped: {error}");
            }
        });
        Ok(Self {
            addr,
            store,
            http: reqwest::Client::new(),
            api_key: None,
            valid: 0,
            shutdown: Some(shutdown),
            _dir: None,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A GET of `path` that must succeed, as JSON.
    async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(self.url(path))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// A POST to the ingest endpoint, to finish and send.
    fn ingest(&self) -> reqwest::RequestBuilder {
        self.http
            .post(self.url("/v1/events"))
            .header("content-type", "application/json")
    }

    fn count(&self) -> anyhow::Result<u64> {
        Ok(self.store.count()?)
    }

    /// Checks that a refusal left nothing behind and that the collector still stores a
    /// valid batch: stored 1.
    async fn still_stores(&mut self) -> anyhow::Result<()> {
        ensure!(
            self.count()? == self.valid,
            "a refused batch was (partly) stored: {} events, {} expected",
            self.count()?,
            self.valid
        );
        let id = format!("evt_valid_{:04}", self.valid);
        let body = batch(&format!("bat_valid_{}", self.valid), vec![event(&id)]);
        let mut request = self.ingest().body(body.to_string());
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let (status, _, answer) = read(request.send().await?).await?;
        ensure!(
            status == StatusCode::OK && answer["stored"] == 1,
            "a valid batch after the refusal got {status}: {answer}"
        );
        self.valid += 1;
        ensure!(self.count()? == self.valid);
        ensure!(self.store.event(&id)?.is_some());
        Ok(())
    }

    /// Asserts a refusal (status, and an `error` containing `reason`), then
    /// [`Running::still_stores`].
    async fn refused(
        &mut self,
        answer: (StatusCode, HeaderMap, Value),
        status: StatusCode,
        reason: &str,
    ) -> anyhow::Result<HeaderMap> {
        let (got, headers, body) = answer;
        let error = body["error"].as_str().unwrap_or_default();
        ensure!(
            got == status && error.contains(reason),
            "expected {status} with an error containing {reason:?}, got {got}: {body}"
        );
        self.still_stores().await?;
        Ok(headers)
    }

    /// Sends raw bytes as a batch, with optional extra headers.
    async fn post_bytes(
        &self,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(StatusCode, HeaderMap, Value)> {
        let mut request = self.ingest().body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        read(request.send().await?).await
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Status, headers and JSON body of an answer.
async fn read(response: reqwest::Response) -> anyhow::Result<(StatusCode, HeaderMap, Value)> {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await?;
    let body = serde_json::from_str(&text)
        .with_context(|| format!("a {status} answer that is not JSON: {text:?}"))?;
    Ok((status, headers, body))
}

// ---------------------------------------------------------------------------------------
// Bodies the collector cannot read
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn broken_gzip_is_refused() -> anyhow::Result<()> {
    let mut collector = Running::start().await?;
    let events = (0..20).map(|n| event(&format!("evt_gz_{n}"))).collect();
    let zipped = gzip(batch("bat_gz", events).to_string().as_bytes());

    let truncated = zipped[..zipped.len() / 2].to_vec();
    let answer = collector
        .post_bytes(truncated, &[("content-encoding", "gzip")])
        .await?;
    collector
        .refused(answer, StatusCode::BAD_REQUEST, "invalid gzip body")
        .await?;

    // The whole stream but its 8-byte trailer (CRC and length).
    let no_trailer = zipped[..zipped.len() - 8].to_vec();
    let answer = collector
        .post_bytes(no_trailer, &[("content-encoding", "gzip")])
        .await?;
    collector
        .refused(answer, StatusCode::BAD_REQUEST, "invalid gzip body")
        .await?;

    let plain = batch("bat_plain", vec![event("evt_plain")]).to_string();
    let answer = collector
        .post_bytes(plain.into_bytes(), &[("content-encoding", "gzip")])
        .await?;
    collector
        .refused(answer, StatusCode::BAD_REQUEST, "invalid gzip body")
        .await?;
    Ok(())
}

/// The process's peak resident memory, in bytes (Linux only).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[tokio::test]
async fn a_gzip_bomb_is_refused_without_inflating_it() -> anyhow::Result<()> {
    let mut collector = Running::start().await?;

    // A few KB of gzip that inflate to 16 MiB of zeros, over the 10 MiB limit.
    let bomb = gzip(&vec![0u8; 16 << 20]);
    ensure!(bomb.len() < 64 * 1024, "the bomb is {} bytes", bomb.len());
    let answer = collector
        .post_bytes(bomb, &[("content-encoding", "gzip")])
        .await?;
    collector
        .refused(
            answer,
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("decompresses to over {BODY_LIMIT} bytes"),
        )
        .await?;

    // 1,024 gzip members of 1 MiB of zeros each, one after the other (a valid multi-member
    // stream): about 1 MB that inflates to 1 GiB. Refused, and the process never held
    // anything near 1 GiB: the collector stopped inflating at its limit.
    let member = gzip(&vec![0u8; 1 << 20]);
    let bomb: Vec<u8> = member.repeat(1024);
    ensure!(bomb.len() < BODY_LIMIT);
    let answer = collector
        .post_bytes(bomb, &[("content-encoding", "gzip")])
        .await?;
    collector
        .refused(
            answer,
            StatusCode::PAYLOAD_TOO_LARGE,
            "decompresses to over",
        )
        .await?;
    if let Some(peak) = peak_rss() {
        println!(
            "peak resident memory of the test process: {} MiB",
            peak >> 20
        );
        ensure!(
            peak < 512 << 20,
            "the test process peaked at {} MiB: the bomb was inflated",
            peak >> 20
        );
    }
    Ok(())
}

#[tokio::test]
async fn malformed_batches_are_refused_with_their_reason() -> anyhow::Result<()> {
    let mut collector = Running::start().await?;

    let answer = collector
        .post_bytes(
            br#"{"schema":"tower-mcp-analytics/v1","batch_id":"#.to_vec(),
            &[],
        )
        .await?;
    collector
        .refused(
            answer,
            StatusCode::BAD_REQUEST,
            "not a tower-mcp-analytics/v1 batch",
        )
        .await?;

    // Valid JSON structure, but a string with bytes that are not UTF-8.
    let mut not_utf8 = batch("bat_utf8", vec![event("evt_utf8")])
        .to_string()
        .into_bytes();
    let at = not_utf8
        .windows(8)
        .position(|window| window == b"evt_utf8")
        .context("the id in the body")?;
    not_utf8[at + 4] = 0xff;
    not_utf8[at + 5] = 0xfe;
    let answer = collector.post_bytes(not_utf8, &[]).await?;
    collector
        .refused(answer, StatusCode::BAD_REQUEST, "invalid UTF-8")
        .await?;

    let mut wrong_schema = batch("bat_schema", vec![event("evt_schema")]);
    wrong_schema["schema"] = json!("tower-mcp-analytics/v2");
    let answer = collector
        .post_bytes(wrong_schema.to_string().into_bytes(), &[])
        .await?;
    collector
        .refused(
            answer,
            StatusCode::BAD_REQUEST,
            r#"unsupported schema "tower-mcp-analytics/v2""#,
        )
        .await?;

    let mut no_batch_id = batch("bat_x", vec![event("evt_no_batch_id")]);
    no_batch_id
        .as_object_mut()
        .context("an object")?
        .remove("batch_id");
    let answer = collector
        .post_bytes(no_batch_id.to_string().into_bytes(), &[])
        .await?;
    collector
        .refused(answer, StatusCode::BAD_REQUEST, r#"missing "batch_id""#)
        .await?;

    // A valid event first, then a bad one: the whole batch is refused, naming the index.
    let mut no_id = event("evt_no_id");
    no_id.as_object_mut().context("an object")?.remove("id");
    let body = batch("bat_no_id", vec![event("evt_before_no_id"), no_id]);
    let answer = collector
        .post_bytes(body.to_string().into_bytes(), &[])
        .await?;
    collector
        .refused(
            answer,
            StatusCode::BAD_REQUEST,
            r#"events[1]: missing "id""#,
        )
        .await?;

    let mut bad_time = event("evt_bad_time");
    bad_time["timestamp"] = json!("yesterday at noon");
    let body = batch(
        "bat_bad_time",
        vec![event("evt_ok_1"), event("evt_ok_2"), bad_time],
    );
    let answer = collector
        .post_bytes(body.to_string().into_bytes(), &[])
        .await?;
    collector
        .refused(
            answer,
            StatusCode::BAD_REQUEST,
            r#"events[2]: "timestamp" "yesterday at noon" is not RFC 3339"#,
        )
        .await?;
    for id in ["evt_before_no_id", "evt_ok_1", "evt_ok_2"] {
        ensure!(
            collector.store.event(id)?.is_none(),
            "{id}, from a refused batch, was stored"
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_unknown_content_encoding_is_refused() -> anyhow::Result<()> {
    let mut collector = Running::start().await?;
    let body = batch("bat_br", vec![event("evt_br")]).to_string();
    let answer = collector
        .post_bytes(body.into_bytes(), &[("content-encoding", "br")])
        .await?;
    collector
        .refused(
            answer,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            r#"unsupported Content-Encoding "br""#,
        )
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Too large
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn more_events_than_the_limit_are_refused() -> anyhow::Result<()> {
    let mut collector = Running::start().await?;
    let events = (0..10_000)
        .map(|n| json!({ "id": format!("evt_many_{n}"), "timestamp": events::now_rfc3339(), "method": "ping" }))
        .collect();
    let body = batch("bat_many", events).to_string();
    ensure!(body.len() < BODY_LIMIT);
    let answer = collector.post_bytes(body.into_bytes(), &[]).await?;
    collector
        .refused(
            answer,
            StatusCode::PAYLOAD_TOO_LARGE,
            "10000 events in one batch; this collector takes at most 5000",
        )
        .await?;
    Ok(())
}

/// A raw HTTP/1.1 answer.
struct RawAnswer {
    status: u16,
    body: Value,
    /// Body bytes the client had written when the answer was complete.
    written_by_then: u64,
}

/// POSTs `total` bytes of body over a raw connection (with `Content-Length`, or chunked
/// without one when `declare` is false), writing and reading at once, and returns the
/// answer as soon as it is complete, whether or not the body was all sent.
async fn post_huge(addr: SocketAddr, total: u64, declare: bool) -> anyhow::Result<RawAnswer> {
    const CHUNK: usize = 64 * 1024;
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut reader, mut writer) = stream.into_split();
    let written = Arc::new(AtomicU64::new(0));
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n{}\r\n",
        if declare {
            format!("content-length: {total}\r\n")
        } else {
            "transfer-encoding: chunked\r\n".to_owned()
        }
    );
    let sending = {
        let written = Arc::clone(&written);
        tokio::spawn(async move {
            writer.write_all(head.as_bytes()).await?;
            // JSON whitespace: a body that would only be refused for its size.
            let chunk = vec![b' '; CHUNK];
            let mut sent = 0u64;
            while sent < total {
                let n = CHUNK.min((total - sent) as usize);
                if declare {
                    writer.write_all(&chunk[..n]).await?;
                } else {
                    writer.write_all(format!("{n:x}\r\n").as_bytes()).await?;
                    writer.write_all(&chunk[..n]).await?;
                    writer.write_all(b"\r\n").await?;
                }
                sent += n as u64;
                written.store(sent, Ordering::Release);
            }
            if !declare {
                writer.write_all(b"0\r\n\r\n").await?;
            }
            anyhow::Ok(())
        })
    };
    let receiving = async {
        let mut received = Vec::new();
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .context("an answer with a content-length")?
                    .trim()
                    .parse()?;
                if received.len() >= end + 4 + length {
                    let status: u16 = head
                        .split_whitespace()
                        .nth(1)
                        .context("a status line")?
                        .parse()?;
                    let body = serde_json::from_slice(&received[end + 4..end + 4 + length])?;
                    return anyhow::Ok((status, body));
                }
            }
            let n = reader.read(&mut buffer).await?;
            if n == 0 {
                bail!(
                    "the connection closed before a whole answer: {:?}",
                    String::from_utf8_lossy(&received)
                );
            }
            received.extend_from_slice(&buffer[..n]);
        }
    };
    let answer = tokio::time::timeout(WAIT, receiving).await;
    let written_by_then = written.load(Ordering::Acquire);
    sending.abort();
    let (status, body) = answer.context("no answer to a huge body")??;
    Ok(RawAnswer {
        status,
        body,
        written_by_then,
    })
}

#[tokio::test]
async fn a_100_mb_body_is_refused_with_or_without_content_length() -> anyhow::Result<()> {
    const HUNDRED_MB: u64 = 100 * 1000 * 1000;
    let mut collector = Running::start().await?;
    for declare in [true, false] {
        let answer = post_huge(collector.addr, HUNDRED_MB, declare).await?;
        println!(
            "content-length declared: {declare}: {} after {} MB written",
            answer.status,
            answer.written_by_then / 1_000_000
        );
        // Refused from its declared length, or once the limit was read: either way long
        // before the client could have sent it all.
        ensure!(
            answer.written_by_then < HUNDRED_MB,
            "the collector read the whole body before answering"
        );
        collector
            .refused(
                (
                    StatusCode::from_u16(answer.status)?,
                    HeaderMap::new(),
                    answer.body,
                ),
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the batch is over {BODY_LIMIT} bytes"),
            )
            .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_wrong_or_missing_api_key_is_refused() -> anyhow::Result<()> {
    let mut collector = Running::start_with(|builder| builder.api_key("k")).await?;
    collector.api_key = Some("k".to_owned());
    let body = batch("bat_key", vec![event("evt_key")]).to_string();

    for authorization in [
        None,
        Some("Bearer wrong"),
        Some("Bearer k2"),
        Some("Basic aDpr"),
    ] {
        let mut request = collector.ingest().body(body.clone());
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let answer = read(request.send().await?).await?;
        let headers = collector
            .refused(answer, StatusCode::UNAUTHORIZED, "missing or wrong API key")
            .await
            .with_context(|| format!("authorization {authorization:?}"))?;
        ensure!(
            headers
                .get("www-authenticate")
                .is_some_and(|value| value == "Bearer"),
            "{headers:?}"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Unknown fields
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_fields_are_accepted_and_kept() -> anyhow::Result<()> {
    let mut collector = Running::start().await?;
    let mut future = event("evt_future");
    future["new_field"] = json!({ "nested": [1, "two", null], "flag": true });
    let mut body = batch("bat_future", vec![future]);
    body["future_envelope_field"] = json!({ "compression": "zstd-maybe" });
    let (status, _, answer) = collector
        .post_bytes(body.to_string().into_bytes(), &[])
        .await?;
    ensure!(
        status == StatusCode::OK && answer["stored"] == 1,
        "{status}: {answer}"
    );

    let stored: Value = collector.get_json("/api/events/evt_future").await?;
    ensure!(
        stored["event"]["new_field"] == json!({ "nested": [1, "two", null], "flag": true }),
        "{stored}"
    );
    ensure!(stored["event"]["user"]["id"] == "user-42", "{stored}");
    collector.valid = 1;
    collector.still_stores().await?;
    Ok(())
}

#[tokio::test]
async fn a_view_over_its_event_limit_asks_for_a_narrower_range() -> anyhow::Result<()> {
    let mut collector = Running::start_with(|builder| builder.max_view_events(5)).await?;
    let mut events: Vec<Value> = (0..6).map(|n| event(&format!("evt_view_{n}"))).collect();
    events[0]["resource_name"] = json!("rare");
    let (status, _, answer) = collector
        .post_bytes(batch("bat_view", events).to_string().into_bytes(), &[])
        .await?;
    ensure!(
        status == StatusCode::OK && answer["stored"] == 6,
        "{status}: {answer}"
    );
    collector.valid = 6;

    for view in ["overview", "tools", "clients", "users"] {
        let answer = read(
            collector
                .http
                .get(collector.url(&format!("/api/{view}?range=all")))
                .send()
                .await?,
        )
        .await?;
        let (status, _, body) = &answer;
        ensure!(
            *status == StatusCode::UNPROCESSABLE_ENTITY
                && body["error"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("narrow the range"),
            "{view}: {status} {body}"
        );
    }
    // A view narrowed under the limit answers: one tool's page (5 calls), or a filter.
    let tool = collector.get_json("/api/tools/progress?range=all").await?;
    ensure!(tool["tool"]["calls"] == 5, "{tool}");
    let narrowed = collector
        .get_json("/api/overview?range=all&tool=rare")
        .await?;
    ensure!(narrowed["totals"]["events"] == 1, "{narrowed}");
    collector.still_stores().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Overload
// ---------------------------------------------------------------------------------------

/// Where the store's commits wait until the test opens it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    /// Commits that reached the gate.
    reached: AtomicUsize,
}

impl Gate {
    fn pass(&self) {
        self.reached.fetch_add(1, Ordering::AcqRel);
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while !*open {
            open = self
                .opened
                .wait(open)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    fn open(&self) {
        *self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        self.opened.notify_all();
    }
}

/// Opens the gate when dropped, so that a failing test does not leave the writer blocked.
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// A SQLite store whose commits first wait at a gate: the one stand-in of these tests
/// (the store is not what the overload test is about).
struct SlowStore {
    inner: SqliteStore,
    gate: Arc<Gate>,
}

impl Store for SlowStore {
    fn commit(
        &self,
        batches: &[IncomingBatch],
    ) -> Result<Vec<Result<Committed, StoreError>>, StoreError> {
        self.gate.pass();
        self.inner.commit(batches)
    }
    fn delete_before(&self, cutoff: i64, limit: usize) -> Result<u64, StoreError> {
        self.inner.delete_before(cutoff, limit)
    }
    fn scan(&self, filter: &Filter, limit: usize) -> Result<Vec<EventRow>, StoreError> {
        self.inner.scan(filter, limit)
    }
    fn session(&self, session_id: &str) -> Result<Vec<EventRow>, StoreError> {
        self.inner.session(session_id)
    }
    fn sessions(&self, filter: &Filter, limit: usize) -> Result<Vec<SessionRow>, StoreError> {
        self.inner.sessions(filter, limit)
    }
    fn event(&self, id: &str) -> Result<Option<(EventRow, String)>, StoreError> {
        self.inner.event(id)
    }
    fn tail(
        &self,
        after: Option<i64>,
        limit: usize,
        filter: &Filter,
    ) -> Result<Vec<EventRow>, StoreError> {
        self.inner.tail(after, limit, filter)
    }
    fn facets(&self, filter: &Filter, limit: usize) -> Result<Facets, StoreError> {
        self.inner.facets(filter, limit)
    }
    fn advertised(&self, filter: &Filter, limit: usize) -> Result<Vec<Advertised>, StoreError> {
        self.inner.advertised(filter, limit)
    }
    fn asks(&self, filter: &Filter, limit: usize) -> Result<Vec<(EventRow, String)>, StoreError> {
        self.inner.asks(filter, limit)
    }
    fn span(&self) -> Result<Option<(i64, i64)>, StoreError> {
        self.inner.span()
    }
    fn count(&self) -> Result<u64, StoreError> {
        self.inner.count()
    }
}

type Answers =
    tokio::sync::mpsc::UnboundedReceiver<(usize, anyhow::Result<(StatusCode, HeaderMap, Value)>)>;

/// The next batch answered: its index and the answer.
async fn next_answer(
    answers: &mut Answers,
) -> anyhow::Result<(usize, (StatusCode, HeaderMap, Value))> {
    let (index, answer) = tokio::time::timeout(WAIT, answers.recv())
        .await
        .context("no answer in time")?
        .context("a sender went away")?;
    Ok((index, answer?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_and_stores_exactly_what_it_accepted() -> anyhow::Result<()> {
    const BATCHES: usize = 12;
    const EVENTS: usize = 50;
    // Each batch carries about 186 KiB of event JSON; the queue takes 1 MiB of it. So
    // five batches fit (about 930 KiB) and a sixth does not (about 1.1 MiB), with a margin
    // of some 9% either way for how the collector rounds.
    const FIT: usize = 5;
    let gate = Arc::new(Gate::default());
    let _open_at_the_end = OpenOnDrop(Arc::clone(&gate));
    let store = SlowStore {
        inner: SqliteStore::open_in_memory(Duration::from_secs(30 * 60))?,
        gate: Arc::clone(&gate),
    };
    let collector = Collector::builder()
        .store(Arc::new(store))
        .queue_bytes(1 << 20)
        .build()?;
    let mut collector = Running::serve(collector).await?;

    let padding = "p".repeat(3_300);
    let mut bodies = Vec::new();
    let mut event_ids = Vec::new();
    for b in 0..BATCHES {
        let ids: Vec<String> = (0..EVENTS).map(|e| format!("evt_load_{b}_{e}")).collect();
        let events: Vec<Value> = ids
            .iter()
            .map(|id| {
                let mut event = event(id);
                event["arguments"] = json!({ "padding": padding });
                event
            })
            .collect();
        let json_bytes: usize = events.iter().map(|event| event.to_string().len()).sum();
        ensure!(
            (180 * 1024..192 * 1024).contains(&json_bytes),
            "a batch has {json_bytes} bytes of event JSON"
        );
        bodies.push(batch(&format!("bat_load_{b}"), events).to_string());
        event_ids.push(ids);
    }

    let (done, mut answers): (_, Answers) = tokio::sync::mpsc::unbounded_channel();
    for (index, body) in bodies.into_iter().enumerate() {
        let request = collector.ingest().body(body);
        let done = done.clone();
        tokio::spawn(async move {
            let answer = match request.send().await {
                Ok(response) => read(response).await,
                Err(error) => Err(error.into()),
            };
            let _ = done.send((index, answer));
        });
    }
    drop(done);

    // The batches past the queue's room are answered at once; the others wait for the
    // store, which waits at the gate.
    let mut refused = BTreeSet::new();
    for _ in 0..BATCHES - FIT {
        let (index, (status, headers, body)) = next_answer(&mut answers).await?;
        ensure!(
            status == StatusCode::TOO_MANY_REQUESTS,
            "batch {index} got {status} while the store was held: {body}"
        );
        ensure!(
            body["error"]
                .as_str()
                .is_some_and(|error| error.contains("busy")),
            "{body}"
        );
        let retry_after = headers
            .get("retry-after")
            .context("a 429 without Retry-After")?
            .to_str()?
            .parse::<u64>()?;
        ensure!(retry_after >= 1, "Retry-After: {retry_after}");
        refused.insert(index);
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while gate.reached.load(Ordering::Acquire) == 0 {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the writer never started a commit"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The accepted batches cannot be answered while their commit waits at the gate.
    ensure!(
        answers.try_recv().is_err(),
        "a batch was answered while the store was held"
    );
    ensure!(collector.count()? == 0, "stored while the store was held");

    gate.open();
    let mut accepted = BTreeSet::new();
    for _ in 0..FIT {
        let (index, (status, _, body)) = next_answer(&mut answers).await?;
        ensure!(
            status == StatusCode::OK && body["stored"] == EVENTS,
            "batch {index}: {status}: {body}"
        );
        accepted.insert(index);
    }
    ensure!(collector.count()? == (FIT * EVENTS) as u64);
    for (index, ids) in event_ids.iter().enumerate() {
        for id in ids {
            let stored = collector.store.event(id)?.is_some();
            ensure!(
                stored == accepted.contains(&index),
                "{id} of batch {index} (refused: {}) stored: {stored}",
                refused.contains(&index)
            );
        }
    }
    collector.valid = collector.count()?;
    collector.still_stores().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The dashboard password
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_dashboard_password_guards_the_page_and_the_api() -> anyhow::Result<()> {
    let mut collector = Running::start_with(|builder| builder.dashboard_password("pw")).await?;
    // Ingest is not behind the dashboard password.
    collector.still_stores().await?;
    let http = collector.http.clone();

    let csp = |headers: &HeaderMap, what: &str| -> anyhow::Result<()> {
        let policy = headers
            .get("content-security-policy")
            .with_context(|| format!("{what}: no Content-Security-Policy"))?
            .to_str()?;
        ensure!(
            policy.contains("default-src 'none'") && policy.contains("script-src 'self'"),
            "{what}: {policy}"
        );
        Ok(())
    };

    for path in ["/", "/api/tools", "/api/overview", "/assets/app.js"] {
        for (what, request) in [
            ("no password", http.get(collector.url(path))),
            (
                "a wrong password",
                http.get(collector.url(path))
                    .basic_auth("admin", Some("nope")),
            ),
        ] {
            let response = request.send().await?;
            let what = format!("{path} with {what}");
            ensure!(
                response.status() == StatusCode::UNAUTHORIZED,
                "{what}: {}",
                response.status()
            );
            let challenge = response
                .headers()
                .get("www-authenticate")
                .with_context(|| format!("{what}: no WWW-Authenticate"))?
                .to_str()?;
            ensure!(challenge.starts_with("Basic"), "{what}: {challenge}");
            csp(response.headers(), &what)?;
            let body: Value = response.json().await?;
            ensure!(body["error"].is_string(), "{what}: {body}");
        }
    }

    for (path, content_type) in [
        ("/", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
        ("/api/tools", "application/json"),
        ("/api/overview", "application/json"),
        ("/api/events/evt_valid_0000", "application/json"),
    ] {
        for (what, request) in [
            (
                "Basic",
                http.get(collector.url(path))
                    .basic_auth("anyone", Some("pw")),
            ),
            ("Bearer", http.get(collector.url(path)).bearer_auth("pw")),
        ] {
            let response = request.send().await?;
            let what = format!("{path} with {what}");
            ensure!(
                response.status() == StatusCode::OK,
                "{what}: {}",
                response.status()
            );
            csp(response.headers(), &what)?;
            let got = response
                .headers()
                .get("content-type")
                .map(|value| value.to_str().unwrap_or_default().to_owned())
                .unwrap_or_default();
            ensure!(got.starts_with(content_type), "{what}: {got}");
        }
    }

    // An answer of the API that is an error (here a 404) carries the policy too.
    let missing = http
        .get(collector.url("/api/events/evt_nobody_sent"))
        .basic_auth("anyone", Some("pw"))
        .send()
        .await?;
    ensure!(missing.status() == StatusCode::NOT_FOUND);
    csp(missing.headers(), "a 404 of the API")?;
    Ok(())
}
