//! A real OTLP/HTTP receiver for tests: an axum app on a loopback port that owns
//! `POST /v1/traces` and `POST /v1/metrics`, decodes every binary-protobuf export (gzip
//! too, when `Content-Encoding: gzip`) into the `opentelemetry-proto` request types, keeps
//! them, and answers as told (accept, fail with a status, or hang).
//!
//! What it received is offered flattened, easy to assert on: [`ReceivedSpan`] for each
//! span (ids as lowercase hex, attributes in a sorted map) and [`HistPoint`] for each
//! histogram data point. The raw requests stay available too.
//!
//! Include it with `#[path = "support/otlp_receiver.rs"] mod otlp_receiver;`.
//!
//! Every connection runs as a task owned by the receiver, so dropping the receiver closes
//! every connection, hung ones included. JSON (`application/json`) exports are refused
//! with `415`; a body that does not decode is answered `400`. Both still count as export
//! requests.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Path of the traces endpoint.
pub const TRACES_PATH: &str = "/v1/traces";
/// Path of the metrics endpoint.
pub const METRICS_PATH: &str = "/v1/metrics";

/// How the receiver answers an export request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Decode and keep the export, answer `200` with an empty `Export*ServiceResponse`.
    Accept,
    /// Answer this status with an empty body; the export is counted but not kept.
    Fail(u16),
    /// Never answer: the request is counted, not kept, and its connection stays open until
    /// the receiver is dropped (switching the mode back does not release it).
    Hang,
}

/// An attribute value, flattened from the proto `AnyValue`.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// A string value.
    Str(String),
    /// An integer value.
    Int(i64),
    /// A floating-point value.
    Double(f64),
    /// A boolean value.
    Bool(bool),
    /// Anything else (arrays, key-value lists, bytes, empty), as its `Debug` text.
    Other(String),
}

impl AttrValue {
    /// The string, if this is a [`AttrValue::Str`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an [`AttrValue::Int`].
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            AttrValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number, if this is an [`AttrValue::Double`] (or an [`AttrValue::Int`]).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AttrValue::Double(d) => Some(*d),
            AttrValue::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The boolean, if this is a [`AttrValue::Bool`].
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            AttrValue::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

/// One received span, flattened out of its resource and scope.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// The span name.
    pub name: String,
    /// The proto `SpanKind` (0 unspecified, 1 internal, 2 server, 3 client, 4 producer,
    /// 5 consumer).
    pub kind: i32,
    /// Trace id, lowercase hex (32 digits).
    pub trace_id: String,
    /// Span id, lowercase hex (16 digits).
    pub span_id: String,
    /// Parent span id, lowercase hex; empty for a root span.
    pub parent_span_id: String,
    /// Status code: 0 unset, 1 ok, 2 error.
    pub status_code: i32,
    /// Status message (set with an error status).
    pub status_message: String,
    /// The span attributes.
    pub attributes: BTreeMap<String, AttrValue>,
    /// The names of the span events, in order.
    pub events: Vec<String>,
    /// Links, as `(trace_id_hex, span_id_hex)`.
    pub links: Vec<(String, String)>,
    /// Start time, unix nanoseconds.
    pub start_unix_nanos: u64,
    /// End time, unix nanoseconds.
    pub end_unix_nanos: u64,
    /// Name of the instrumentation scope (the tracer name).
    pub scope_name: String,
    /// Attributes of the resource the span was exported under.
    pub resource: BTreeMap<String, AttrValue>,
}

impl ReceivedSpan {
    /// Whether the span is of kind `SERVER`.
    pub fn is_server(&self) -> bool {
        self.kind == SpanKind::Server as i32
    }

    /// Whether the span is of kind `CLIENT`.
    pub fn is_client(&self) -> bool {
        self.kind == SpanKind::Client as i32
    }

    /// The attribute under `key`.
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes.get(key)
    }

    /// The string attribute under `key` (`None` if absent or not a string).
    pub fn str_attr(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(AttrValue::as_str)
    }

    /// The integer attribute under `key` (`None` if absent or not an integer).
    pub fn int_attr(&self, key: &str) -> Option<i64> {
        self.attr(key).and_then(AttrValue::as_i64)
    }

    /// The span duration in nanoseconds.
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nanos.saturating_sub(self.start_unix_nanos)
    }
}

/// One received histogram data point, with what its metric says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistPoint {
    /// The data point attributes.
    pub attributes: BTreeMap<String, AttrValue>,
    /// Number of recorded values.
    pub count: u64,
    /// Sum of recorded values (0 when the exporter left it out).
    pub sum: f64,
    /// Smallest recorded value, if exported.
    pub min: Option<f64>,
    /// Largest recorded value, if exported.
    pub max: Option<f64>,
    /// Upper bounds of the buckets (one fewer than `bucket_counts`).
    pub explicit_bounds: Vec<f64>,
    /// Count per bucket.
    pub bucket_counts: Vec<u64>,
    /// Start of the aggregation window, unix nanoseconds.
    pub start_unix_nanos: u64,
    /// End of the aggregation window, unix nanoseconds.
    pub time_unix_nanos: u64,
    /// Aggregation temporality of the histogram (1 delta, 2 cumulative).
    pub temporality: i32,
    /// The metric unit.
    pub unit: String,
    /// The metric description.
    pub description: String,
}

impl HistPoint {
    /// The attribute under `key`.
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes.get(key)
    }

    /// The string attribute under `key` (`None` if absent or not a string).
    pub fn str_attr(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(AttrValue::as_str)
    }
}

/// State shared between the receiver handle and its handlers.
struct Shared {
    mode: Mutex<Mode>,
    trace_requests: AtomicUsize,
    metric_requests: AtomicUsize,
    traces: Mutex<Vec<ExportTraceServiceRequest>>,
    metrics: Mutex<Vec<ExportMetricsServiceRequest>>,
}

/// Locks a mutex, ignoring poisoning (a panicking test thread must not hide the data).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running OTLP/HTTP receiver. Dropping it stops the server and closes every connection.
pub struct OtlpReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        // Aborting the server task drops its `JoinSet`, which aborts every connection.
        self.task.abort();
    }
}

impl OtlpReceiver {
    /// Starts a receiver on a free `127.0.0.1` port, in [`Mode::Accept`].
    ///
    /// Panics if no loopback port can be bound.
    pub async fn start() -> OtlpReceiver {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(e) => panic!("otlp receiver: cannot bind 127.0.0.1:0: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(e) => panic!("otlp receiver: no local address: {e}"),
        };
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Accept),
            trace_requests: AtomicUsize::new(0),
            metric_requests: AtomicUsize::new(0),
            traces: Mutex::new(Vec::new()),
            metrics: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route(TRACES_PATH, post(traces))
            .route(METRICS_PATH, post(metrics))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
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
        });
        OtlpReceiver { addr, shared, task }
    }

    /// The base URL, `http://127.0.0.1:PORT` (no path): what `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// takes, the exporter appending `/v1/traces` and `/v1/metrics` itself.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The full traces URL, `http://127.0.0.1:PORT/v1/traces`: what a signal-specific
    /// endpoint (`with_endpoint`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) takes verbatim.
    pub fn traces_url(&self) -> String {
        format!("{}{TRACES_PATH}", self.endpoint())
    }

    /// The full metrics URL, `http://127.0.0.1:PORT/v1/metrics`.
    pub fn metrics_url(&self) -> String {
        format!("{}{METRICS_PATH}", self.endpoint())
    }

    /// The address the receiver listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A base URL on `127.0.0.1` where nothing listens (a port that was free a moment
    /// ago), so connections to it are refused.
    ///
    /// Panics if no loopback port can be bound.
    pub fn dead_endpoint() -> String {
        let listener = match std::net::TcpListener::bind("127.0.0.1:0") {
            Ok(listener) => listener,
            Err(e) => panic!("otlp receiver: cannot bind 127.0.0.1:0: {e}"),
        };
        let port = match listener.local_addr() {
            Ok(addr) => addr.port(),
            Err(e) => panic!("otlp receiver: no local address: {e}"),
        };
        drop(listener);
        format!("http://127.0.0.1:{port}")
    }

    /// Sets how the following requests are answered.
    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.shared.mode) = mode;
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        *lock(&self.shared.mode)
    }

    /// How many requests reached `/v1/traces`, answered or not, failed or not.
    pub fn trace_requests(&self) -> usize {
        self.shared.trace_requests.load(Ordering::SeqCst)
    }

    /// How many requests reached `/v1/metrics`, answered or not, failed or not.
    pub fn metric_requests(&self) -> usize {
        self.shared.metric_requests.load(Ordering::SeqCst)
    }

    /// Forgets everything received so far (the request counters included).
    pub fn clear(&self) {
        lock(&self.shared.traces).clear();
        lock(&self.shared.metrics).clear();
        self.shared.trace_requests.store(0, Ordering::SeqCst);
        self.shared.metric_requests.store(0, Ordering::SeqCst);
    }

    /// Every accepted trace export, decoded, in arrival order.
    pub fn trace_exports(&self) -> Vec<ExportTraceServiceRequest> {
        lock(&self.shared.traces).clone()
    }

    /// Every accepted metrics export, decoded, in arrival order.
    pub fn metric_exports(&self) -> Vec<ExportMetricsServiceRequest> {
        lock(&self.shared.metrics).clone()
    }

    /// Every accepted span, flattened, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        let exports = lock(&self.shared.traces);
        let mut spans = Vec::new();
        for export in exports.iter() {
            for resource_spans in &export.resource_spans {
                let resource = resource_spans
                    .resource
                    .as_ref()
                    .map(|r| attributes(&r.attributes))
                    .unwrap_or_default();
                for scope_spans in &resource_spans.scope_spans {
                    let scope_name = scope_spans
                        .scope
                        .as_ref()
                        .map(|s| s.name.clone())
                        .unwrap_or_default();
                    for span in &scope_spans.spans {
                        let status = span.status.clone().unwrap_or_default();
                        spans.push(ReceivedSpan {
                            name: span.name.clone(),
                            kind: span.kind,
                            trace_id: hex(&span.trace_id),
                            span_id: hex(&span.span_id),
                            parent_span_id: hex(&span.parent_span_id),
                            status_code: status.code,
                            status_message: status.message,
                            attributes: attributes(&span.attributes),
                            events: span.events.iter().map(|e| e.name.clone()).collect(),
                            links: span
                                .links
                                .iter()
                                .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                                .collect(),
                            start_unix_nanos: span.start_time_unix_nano,
                            end_unix_nanos: span.end_time_unix_nano,
                            scope_name: scope_name.clone(),
                            resource: resource.clone(),
                        });
                    }
                }
            }
        }
        spans
    }

    /// The accepted spans named `name`.
    pub fn spans_named(&self, name: &str) -> Vec<ReceivedSpan> {
        self.spans()
            .into_iter()
            .filter(|s| s.name == name)
            .collect()
    }

    /// Waits until at least `n` spans were accepted, polling; returns the spans received
    /// by then (fewer than `n` if `timeout` ran out first).
    pub async fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if spans.len() >= n || Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Names of every metric received, sorted, without repeats.
    pub fn metric_names(&self) -> Vec<String> {
        let exports = lock(&self.shared.metrics);
        let names: BTreeSet<String> = exports
            .iter()
            .flat_map(|e| &e.resource_metrics)
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .map(|m| m.name.clone())
            .collect();
        names.into_iter().collect()
    }

    /// Every histogram data point of the metric `name`, across every accepted export, in
    /// arrival order. Cumulative exports repeat a point once per export, so the same
    /// series shows up several times; see [`Self::latest_histogram_points`].
    pub fn histogram_points(&self, name: &str) -> Vec<HistPoint> {
        lock(&self.shared.metrics)
            .iter()
            .flat_map(|export| histogram_points_in(export, name))
            .collect()
    }

    /// The histogram data points of the metric `name` in the last accepted export that
    /// held that metric (empty if none did): with cumulative temporality, the current
    /// totals, one point per attribute set.
    pub fn latest_histogram_points(&self, name: &str) -> Vec<HistPoint> {
        lock(&self.shared.metrics)
            .iter()
            .rev()
            .map(|export| histogram_points_in(export, name))
            .find(|points| !points.is_empty())
            .unwrap_or_default()
    }

    /// Waits until an export holding histogram points of `name` was accepted, polling;
    /// returns [`Self::latest_histogram_points`] (empty if `timeout` ran out first).
    pub async fn wait_for_histogram(&self, name: &str, timeout: Duration) -> Vec<HistPoint> {
        let deadline = Instant::now() + timeout;
        loop {
            let points = self.latest_histogram_points(name);
            if !points.is_empty() || Instant::now() >= deadline {
                return points;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The histogram points of the metric `name` in one export.
fn histogram_points_in(export: &ExportMetricsServiceRequest, name: &str) -> Vec<HistPoint> {
    let mut points = Vec::new();
    for metric in export
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter(|m| m.name == name)
    {
        let Some(metric::Data::Histogram(histogram)) = &metric.data else {
            continue;
        };
        for point in &histogram.data_points {
            points.push(HistPoint {
                attributes: attributes(&point.attributes),
                count: point.count,
                sum: point.sum.unwrap_or(0.0),
                min: point.min,
                max: point.max,
                explicit_bounds: point.explicit_bounds.clone(),
                bucket_counts: point.bucket_counts.clone(),
                start_unix_nanos: point.start_time_unix_nano,
                time_unix_nanos: point.time_unix_nano,
                temporality: histogram.aggregation_temporality,
                unit: metric.unit.clone(),
                description: metric.description.clone(),
            });
        }
    }
    points
}

/// Lowercase hex of an id (empty for an empty id).
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Proto key-values as a sorted map.
fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, AttrValue> {
    kvs.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => AttrValue::Str(s.clone()),
                Some(any_value::Value::IntValue(i)) => AttrValue::Int(*i),
                Some(any_value::Value::DoubleValue(d)) => AttrValue::Double(*d),
                Some(any_value::Value::BoolValue(b)) => AttrValue::Bool(*b),
                Some(other) => AttrValue::Other(format!("{other:?}")),
                None => AttrValue::Other(String::new()),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

/// An answer other than `200`: the status and a text body.
type Refusal = (StatusCode, String);

/// The request body, gunzipped when `Content-Encoding: gzip`.
fn body_bytes(headers: &HeaderMap, body: &Bytes) -> Result<Vec<u8>, Refusal> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/x-protobuf") {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported content-type {content_type:?}; only application/x-protobuf"),
        ));
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    match encoding {
        "identity" | "" => Ok(body.to_vec()),
        "gzip" => {
            let mut decoded = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut decoded)
                .map_err(|e| (StatusCode::BAD_REQUEST, format!("bad gzip body: {e}")))?;
            Ok(decoded)
        }
        other => Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported content-encoding {other:?}"),
        )),
    }
}

/// Applies the mode: `Ok(())` to go on and accept, `Err` with the answer otherwise (a
/// hung request never gets past this).
async fn gate(shared: &Shared) -> Result<(), Refusal> {
    let mode = *lock(&shared.mode);
    match mode {
        Mode::Accept => Ok(()),
        Mode::Fail(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Err((status, format!("otlp receiver told to fail with {status}")))
        }
        Mode::Hang => std::future::pending().await,
    }
}

/// Counts the request, applies the mode, decodes the body as a `Req` and keeps it in
/// `store`; the `Ok` value is the encoded empty `Resp` to answer with.
async fn receive<Req: Message + Default, Resp: Message + Default>(
    shared: &Shared,
    counter: &AtomicUsize,
    store: &Mutex<Vec<Req>>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Vec<u8>, Refusal> {
    counter.fetch_add(1, Ordering::SeqCst);
    gate(shared).await?;
    let bytes = body_bytes(headers, body)?;
    let request = Req::decode(&bytes[..])
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("not an OTLP export: {e}")))?;
    lock(store).push(request);
    Ok(Resp::default().encode_to_vec())
}

/// The HTTP answer: `200` with the protobuf body, or the refusal as text.
fn answer(result: Result<Vec<u8>, Refusal>) -> Response {
    match result {
        Ok(body) => {
            let mut response = Response::new(Body::from(body));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            );
            response
        }
        Err((status, text)) => {
            let mut response = Response::new(Body::from(text));
            *response.status_mut() = status;
            response
        }
    }
}

async fn traces(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    answer(
        receive::<ExportTraceServiceRequest, ExportTraceServiceResponse>(
            &shared,
            &shared.trace_requests,
            &shared.traces,
            &headers,
            &body,
        )
        .await,
    )
}

async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    answer(
        receive::<ExportMetricsServiceRequest, ExportMetricsServiceResponse>(
            &shared,
            &shared.metric_requests,
            &shared.metrics,
            &headers,
            &body,
        )
        .await,
    )
}
