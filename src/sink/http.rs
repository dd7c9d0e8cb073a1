//! [`HttpSink`]: batches to an HTTP collector, in the documented wire format.
//!
//! Owns one attempt at one batch: build the body once (gzip above 1 KiB) and keep it on
//! the batch for retries, POST it, and classify the answer (2xx delivered; transport
//! errors, timeouts, 408, 429, 500, 502, 503, 504 retryable, with `Retry-After` read as
//! seconds or an HTTP date; 413 too large; any other status rejected). Never retries or
//! sleeps itself: the worker schedules retries.
//!
//! The wire format, version 1:
//!
//! ```text
//! POST {endpoint}
//! Content-Type: application/json
//! Content-Encoding: gzip                      (bodies over 1 KiB)
//! Authorization: Bearer {api key}             (when configured)
//! Idempotency-Key: {batch id}
//! User-Agent: tower-mcp-analytics/{version}
//!
//! {"schema":"tower-mcp-analytics/v1","batch_id":"bat_...","sent_at":"2026-11-22T10:00:00.000Z",
//!  "events":[{...event...}, ...]}
//! ```
//!
//! `batch_id` is the same on every attempt (de-duplicate on it); `sent_at` is the time of
//! the first attempt.

use std::io::Write as _;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http::StatusCode;
use http::header::{
    AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER,
};
use serde::Serialize;
use serde_json::value::RawValue;

use super::{Batch, Sink, SinkError, SinkFuture};
use crate::delivery::batch::Encoded;
use crate::event::time::rfc3339_millis;

/// The schema marker of the batch format.
pub const SCHEMA: &str = "tower-mcp-analytics/v1";
/// Bodies larger than this are gzip-compressed.
const GZIP_ABOVE: usize = 1024;

/// Sends batches to an HTTP collector (reqwest with rustls).
///
/// ```no_run
/// use std::time::Duration;
/// use tower_mcp_analytics::{AnalyticsLayer, HttpSink};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let sink = HttpSink::new("https://collector.example.com/v1/events")
///     .api_key("sk_live_...")
///     .header("x-tenant", "acme")
///     .timeout(Duration::from_secs(10));
/// let layer = AnalyticsLayer::new(sink);
/// # }
/// ```
pub struct HttpSink {
    endpoint: String,
    api_key: Option<String>,
    headers: HeaderMap,
    timeout: Duration,
    connect_timeout: Duration,
    gzip: bool,
    /// Built on first use, so that configuration errors surface as counted rejections
    /// instead of failing the server's start.
    client: OnceLock<Result<reqwest::Client, String>>,
}

impl HttpSink {
    /// Batches POSTed to `endpoint`, with a 10 s request timeout, a 5 s connect timeout
    /// and gzip above 1 KiB.
    ///
    /// ```
    /// let sink = tower_mcp_analytics::HttpSink::new("http://127.0.0.1:4318/v1/events");
    /// ```
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            api_key: None,
            headers: HeaderMap::new(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            gzip: true,
            client: OnceLock::new(),
        }
    }

    /// Sends `Authorization: Bearer {key}`.
    ///
    /// ```
    /// let sink = tower_mcp_analytics::HttpSink::new("http://127.0.0.1:9/e").api_key("secret");
    /// ```
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Adds a header to every request (ignored when the name or value is invalid).
    ///
    /// ```
    /// let sink = tower_mcp_analytics::HttpSink::new("http://127.0.0.1:9/e").header("x-tenant", "acme");
    /// ```
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(name), Ok(value)) => {
                self.headers.append(name, value);
            }
            _ => tracing::warn!(
                header = name,
                "invalid header for the analytics collector; ignored"
            ),
        }
        self
    }

    /// Longest time one request may take (default 10 s). A shutdown deadline cuts an
    /// unfinished request short.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let sink = tower_mcp_analytics::HttpSink::new("http://127.0.0.1:9/e").timeout(Duration::from_secs(3));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Longest time to connect (default 5 s).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let sink = tower_mcp_analytics::HttpSink::new("http://127.0.0.1:9/e").connect_timeout(Duration::from_secs(1));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Whether bodies over 1 KiB are gzip-compressed (default true).
    ///
    /// ```
    /// let sink = tower_mcp_analytics::HttpSink::new("http://127.0.0.1:9/e").gzip(false);
    /// ```
    pub fn gzip(mut self, gzip: bool) -> Self {
        self.gzip = gzip;
        self
    }

    fn client(&self) -> Result<&reqwest::Client, SinkError> {
        let built = self.client.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(self.timeout)
                .connect_timeout(self.connect_timeout)
                .user_agent(concat!("tower-mcp-analytics/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|error| error.to_string())
        });
        built
            .as_ref()
            .map_err(|error| SinkError::rejected(format!("cannot build the HTTP client: {error}")))
    }

    fn encode(&self, batch: &Batch) -> Result<Encoded, SinkError> {
        #[derive(Serialize)]
        struct Wire<'a> {
            schema: &'static str,
            batch_id: &'a str,
            sent_at: String,
            events: &'a [Box<RawValue>],
        }
        let json = serde_json::to_vec(&Wire {
            schema: SCHEMA,
            batch_id: batch.id(),
            sent_at: rfc3339_millis(SystemTime::now()),
            events: batch.events_json(),
        })?;
        if !self.gzip || json.len() <= GZIP_ABOVE {
            return Ok(Encoded {
                body: Bytes::from(json),
                gzip: false,
            });
        }
        let mut encoder = GzEncoder::new(Vec::with_capacity(json.len() / 4), Compression::fast());
        encoder.write_all(&json)?;
        Ok(Encoded {
            body: Bytes::from(encoder.finish()?),
            gzip: true,
        })
    }
}

impl Sink for HttpSink {
    fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a> {
        Box::pin(async move {
            let client = self.client()?;
            let encoded = match batch.encoded.get() {
                Some(encoded) => encoded.clone(),
                None => {
                    let encoded = self.encode(batch)?;
                    let _ = batch.encoded.set(encoded.clone());
                    encoded
                }
            };
            let mut request = client
                .post(&self.endpoint)
                .headers(self.headers.clone())
                .header(CONTENT_TYPE, "application/json")
                .header("idempotency-key", batch.id());
            if encoded.gzip {
                request = request.header(CONTENT_ENCODING, "gzip");
            }
            if let Some(key) = &self.api_key {
                request = request.header(AUTHORIZATION, format!("Bearer {key}"));
            }
            let response =
                request.body(encoded.body).send().await.map_err(|error| {
                    match error.is_builder() {
                        true => SinkError::rejected(error),
                        false => SinkError::retryable(error),
                    }
                })?;
            classify(response.status(), response.headers())
        })
    }
}

/// What an HTTP answer means for the batch.
fn classify(status: StatusCode, headers: &HeaderMap) -> Result<(), SinkError> {
    if status.is_success() {
        return Ok(());
    }
    let message = format!("collector answered {status}");
    match status.as_u16() {
        408 | 429 | 500 | 502 | 503 | 504 => {
            let error = SinkError::retryable(message);
            Err(match retry_after(headers) {
                Some(pause) => error.with_retry_after(pause),
                None => error,
            })
        }
        413 => Err(SinkError::too_large(message)),
        _ => Err(SinkError::rejected(message)),
    }
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(SystemTime::now()).unwrap_or_default())
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink")
            .field("endpoint", &self.endpoint)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("gzip", &self.gzip)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(retry: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(retry) {
            headers.insert(RETRY_AFTER, value);
        }
        headers
    }

    #[test]
    fn classifies_statuses() {
        let none = HeaderMap::new();
        assert!(classify(StatusCode::ACCEPTED, &none).is_ok());
        for retryable in [408, 429, 500, 502, 503, 504] {
            let status = StatusCode::from_u16(retryable).unwrap_or(StatusCode::IM_A_TEAPOT);
            assert!(
                classify(status, &none).unwrap_err().is_retryable(),
                "{retryable}"
            );
        }
        for rejected in [400, 401, 403, 404, 422, 501] {
            let status = StatusCode::from_u16(rejected).unwrap_or(StatusCode::IM_A_TEAPOT);
            assert!(
                !classify(status, &none).unwrap_err().is_retryable(),
                "{rejected}"
            );
        }
        let too_large = classify(StatusCode::PAYLOAD_TOO_LARGE, &none).unwrap_err();
        assert_eq!(too_large.kind(), super::super::Kind::TooLarge);
    }

    #[test]
    fn reads_retry_after_in_seconds_and_as_a_date() {
        let error = classify(StatusCode::TOO_MANY_REQUESTS, &headers("2")).unwrap_err();
        assert_eq!(error.retry_after(), Some(Duration::from_secs(2)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        let pause = retry_after(&headers(&later)).expect("a date");
        assert!(pause > Duration::from_secs(25) && pause <= Duration::from_secs(30));
        assert_eq!(retry_after(&headers("soon")), None);
    }
}
