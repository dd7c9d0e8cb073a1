//! The layer's own OTLP/HTTP export (feature `otel-otlp`): an `opentelemetry_sdk` tracer
//! provider with a batch span processor and a meter provider with a periodic reader, both
//! exporting protobuf over HTTP, configured by the standard `OTEL_EXPORTER_OTLP_*` and
//! `OTEL_*` variables (or given an endpoint).
//!
//! Owns building, flushing and shutting down those providers (always off the async
//! runtime's threads: the exporter's HTTP client blocks), and counting what their
//! exports lost. Never exports on the request path; the processors' own queues bound the
//! memory spans and measurements may take.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use opentelemetry_otlp::{
    Compression, MetricExporter, SpanExporter, WithExportConfig, WithHttpConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData};

use super::OpenTelemetry;
use crate::stats::ExportFailures;

/// Why the OTLP exporters could not be built (e.g. an invalid `OTEL_EXPORTER_OTLP_*`
/// value).
///
/// ```
/// # fn f(error: tower_mcp_analytics::otel::OtlpSetupError) {
/// eprintln!("OpenTelemetry is off: {error}");
/// # }
/// ```
#[derive(Debug)]
pub struct OtlpSetupError(String);

impl std::fmt::Display for OtlpSetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OTLP exporter setup failed: {}", self.0)
    }
}

impl std::error::Error for OtlpSetupError {}

/// The providers the layer made, and what their exports lost.
pub(crate) struct Owned {
    tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
    pub(crate) failures: Arc<ExportFailures>,
}

impl OpenTelemetry {
    /// Spans and metrics exported over OTLP/HTTP (protobuf) as the standard variables say:
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (default `http://localhost:4318`; `/v1/traces` and
    /// `/v1/metrics` appended), the per-signal `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` /
    /// `..._METRICS_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`, `..._TIMEOUT`,
    /// `..._COMPRESSION` (gzip unless set: spans shrink about ninefold),
    /// `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, the batch processor's
    /// `OTEL_BSP_*` and the reader's `OTEL_METRIC_EXPORT_INTERVAL`. The layer owns these
    /// providers: [`AnalyticsLayer::flush`](crate::AnalyticsLayer::flush) exports what
    /// they hold and [`AnalyticsLayer::shutdown`](crate::AnalyticsLayer::shutdown) shuts
    /// them down. Failed exports are counted in
    /// [`Stats::telemetry`](crate::Stats::telemetry).
    ///
    /// ```
    /// use tower_mcp_analytics::AnalyticsLayer;
    /// use tower_mcp_analytics::otel::OpenTelemetry;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let layer = AnalyticsLayer::builder()
    ///     .opentelemetry(OpenTelemetry::otlp_from_env()?)
    ///     .build();
    /// # Ok(()) }
    /// ```
    pub fn otlp_from_env() -> Result<Self, OtlpSetupError> {
        Self::otlp(None)
    }

    /// As [`otlp_from_env`](Self::otlp_from_env), sending to the collector at `endpoint`
    /// (its base URL, e.g. `http://localhost:4318`; `/v1/traces` and `/v1/metrics` are
    /// appended) whatever the endpoint variables say.
    ///
    /// ```
    /// let otel = tower_mcp_analytics::otel::OpenTelemetry::otlp_http("http://localhost:4318")?;
    /// # Ok::<(), tower_mcp_analytics::otel::OtlpSetupError>(())
    /// ```
    pub fn otlp_http(endpoint: &str) -> Result<Self, OtlpSetupError> {
        Self::otlp(Some(endpoint.trim_end_matches('/').to_owned()))
    }

    fn otlp(endpoint: Option<String>) -> Result<Self, OtlpSetupError> {
        // The exporters' blocking HTTP client must not be made on an async runtime's
        // thread.
        let owned = std::thread::spawn(move || build(endpoint.as_deref()))
            .join()
            .map_err(|_| OtlpSetupError("building the exporters panicked".into()))??;
        let mut otel = Self::new()
            .tracer_provider(&owned.tracer)
            .meter_provider(&owned.meter);
        otel.owned = Some(owned);
        Ok(otel)
    }
}

fn build(endpoint: Option<&str>) -> Result<Owned, OtlpSetupError> {
    let error = |e: opentelemetry_otlp::ExporterBuildError| OtlpSetupError(e.to_string());
    let mut spans = SpanExporter::builder().with_http();
    let mut metrics = MetricExporter::builder().with_http();
    // Gzip unless the variables say otherwise: spans are several hundred bytes each.
    let chosen = |signal: &str| {
        std::env::var_os(signal).is_some()
            || std::env::var_os(opentelemetry_otlp::OTEL_EXPORTER_OTLP_COMPRESSION).is_some()
    };
    if !chosen(opentelemetry_otlp::OTEL_EXPORTER_OTLP_TRACES_COMPRESSION) {
        spans = spans.with_compression(Compression::Gzip);
    }
    if !chosen(opentelemetry_otlp::OTEL_EXPORTER_OTLP_METRICS_COMPRESSION) {
        metrics = metrics.with_compression(Compression::Gzip);
    }
    if let Some(base) = endpoint {
        spans = spans.with_endpoint(format!("{base}/v1/traces"));
        metrics = metrics.with_endpoint(format!("{base}/v1/metrics"));
    }
    let failures = Arc::new(ExportFailures::default());
    let resource = Resource::builder().build();
    let tracer = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_batch_exporter(Counted {
            inner: spans.build().map_err(error)?,
            failures: Arc::clone(&failures),
        })
        .build();
    let meter = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_periodic_exporter(Counted {
            inner: metrics.build().map_err(error)?,
            failures: Arc::clone(&failures),
        })
        .build();
    Ok(Owned {
        tracer,
        meter,
        failures,
    })
}

/// Runs `work` on a thread where blocking is allowed, and waits for it.
fn off_runtime(work: impl FnOnce() + Send + 'static) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let _ = tokio::task::spawn_blocking(work).await;
    })
}

/// Exports what the providers hold.
pub(crate) fn flush(owned: Arc<Owned>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    off_runtime(move || {
        if let Err(error) = owned.tracer.force_flush() {
            tracing::debug!(%error, "mcp analytics: flushing spans failed");
        }
        if let Err(error) = owned.meter.force_flush() {
            tracing::debug!(%error, "mcp analytics: flushing metrics failed");
        }
    })
}

/// Exports what the providers hold and stops them.
pub(crate) fn shutdown(owned: Arc<Owned>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    off_runtime(move || {
        let timeout = Duration::from_secs(5);
        if let Err(error) = owned.tracer.shutdown_with_timeout(timeout) {
            tracing::debug!(%error, "mcp analytics: shutting the tracer provider down failed");
        }
        if let Err(error) = owned.meter.shutdown_with_timeout(timeout) {
            tracing::debug!(%error, "mcp analytics: shutting the meter provider down failed");
        }
    })
}

/// An exporter whose failed exports are counted.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    failures: Arc<ExportFailures>,
}

impl opentelemetry_sdk::trace::SpanExporter for Counted<SpanExporter> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        if result.is_err() {
            self.failures.spans.fetch_add(n, Relaxed);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl PushMetricExporter for Counted<MetricExporter> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        if result.is_err() {
            self.failures.metric_exports.fetch_add(1, Relaxed);
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
