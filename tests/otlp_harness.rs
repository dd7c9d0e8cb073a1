#![cfg(feature = "otel-otlp")]
//! Self-test of the OTLP/HTTP receiver in `tests/support/otlp_receiver.rs`: the real
//! `opentelemetry-otlp` HTTP exporter (binary protobuf, blocking reqwest client) sends to
//! it, and what it decodes is checked field by field; its failure switch is checked to
//! reach the exporter as an error.
//!
//! The blocking reqwest client must not run on a tokio worker thread (it would block it,
//! and the receiver runs on the same runtime), so everything touching the SDK runs in
//! `spawn_blocking`.

#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;

use std::time::Duration;

use opentelemetry::trace::{
    Link, Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags,
    TraceId, TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, metrics::MeterProvider as _};
use opentelemetry_otlp::{
    MetricExporter, RetryPolicy, SpanExporter, WithExportConfig as _, WithHttpConfig as _,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use otlp_receiver::{AttrValue, Mode, OtlpReceiver};
use prost::Message as _;

const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";
const LINK_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const LINK_SPAN: &str = "b7ad6b7169203331";
const WAIT: Duration = Duration::from_secs(5);

/// A span exporter to `url`, built the way the crate's `otel-otlp` feature builds one.
fn span_exporter(url: String) -> anyhow::Result<SpanExporter> {
    Ok(SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .build()?)
}

/// A metric exporter to `url` (cumulative, the default temporality).
fn metric_exporter(url: String) -> anyhow::Result<MetricExporter> {
    Ok(MetricExporter::builder()
        .with_http()
        .with_endpoint(url)
        .build()?)
}

/// A meter provider whose reader only exports when flushed or shut down.
fn meter_provider(exporter: MetricExporter) -> SdkMeterProvider {
    let reader = PeriodicReader::builder(exporter)
        .with_interval(Duration::from_secs(3600))
        .build();
    SdkMeterProvider::builder()
        .with_resource(
            Resource::builder()
                .with_service_name("otlp-harness")
                .build(),
        )
        .with_reader(reader)
        .build()
}

/// Starts and ends one span named `name` on `provider`.
fn one_span(provider: &SdkTracerProvider, name: &'static str) {
    let tracer = provider.tracer("otlp-harness");
    tracer.start(name).end();
}

fn context(trace: &str, span: &str) -> anyhow::Result<SpanContext> {
    Ok(SpanContext::new(
        TraceId::from_hex(trace)?,
        SpanId::from_hex(span)?,
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decodes_a_server_span_with_parent_link_and_attributes() -> anyhow::Result<()> {
    let receiver = OtlpReceiver::start().await;
    let url = receiver.traces_url();

    let span_id = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let provider = SdkTracerProvider::builder()
            .with_resource(
                Resource::builder()
                    .with_service_name("otlp-harness")
                    .build(),
            )
            .with_simple_exporter(span_exporter(url)?)
            .build();
        let tracer = provider.tracer("otlp-harness-scope");
        let parent = Context::new().with_remote_span_context(context(PARENT_TRACE, PARENT_SPAN)?);
        let mut span = tracer
            .span_builder("tools/call echo")
            .with_kind(SpanKind::Server)
            .with_attributes(vec![
                KeyValue::new("mcp.method.name", "tools/call"),
                KeyValue::new("jsonrpc.request.id", 7_i64),
                KeyValue::new("mcp.ratio", 0.25_f64),
                KeyValue::new("mcp.flag", true),
            ])
            .with_links(vec![Link::with_context(context(LINK_TRACE, LINK_SPAN)?)])
            .start_with_context(&tracer, &parent);
        span.add_event("first event", vec![]);
        span.set_status(Status::error("tool failed"));
        let span_id = span.span_context().span_id().to_string();
        span.end();
        provider.force_flush()?;
        provider.shutdown()?;
        Ok(span_id)
    })
    .await??;

    let spans = receiver.wait_for_spans(1, WAIT).await;
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let span = &spans[0];
    assert_eq!(span.name, "tools/call echo");
    assert!(span.is_server());
    assert_eq!(span.kind, 2);
    assert_eq!(span.trace_id, PARENT_TRACE);
    assert_eq!(span.parent_span_id, PARENT_SPAN);
    assert_eq!(span.span_id, span_id);
    assert_eq!(span.span_id.len(), 16);
    assert_eq!(
        span.links,
        vec![(LINK_TRACE.to_owned(), LINK_SPAN.to_owned())]
    );
    assert_eq!(span.str_attr("mcp.method.name"), Some("tools/call"));
    assert_eq!(
        span.attr("jsonrpc.request.id").and_then(AttrValue::as_i64),
        Some(7)
    );
    assert_eq!(span.attr("mcp.ratio"), Some(&AttrValue::Double(0.25)));
    assert_eq!(span.attr("mcp.flag"), Some(&AttrValue::Bool(true)));
    assert_eq!(span.attributes.len(), 4);
    assert_eq!(span.events, vec!["first event".to_owned()]);
    assert_eq!(span.status_code, 2);
    assert_eq!(span.status_message, "tool failed");
    assert!(span.start_unix_nanos > 0);
    assert!(span.end_unix_nanos >= span.start_unix_nanos);
    assert_eq!(span.scope_name, "otlp-harness-scope");
    assert_eq!(
        span.resource
            .get("service.name")
            .and_then(AttrValue::as_str),
        Some("otlp-harness")
    );
    assert_eq!(receiver.trace_requests(), 1);
    assert_eq!(receiver.trace_exports().len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decodes_a_histogram_with_explicit_bounds() -> anyhow::Result<()> {
    const NAME: &str = "mcp.server.operation.duration";
    let receiver = OtlpReceiver::start().await;
    let url = receiver.metrics_url();

    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let provider = meter_provider(metric_exporter(url)?);
        let meter = provider.meter("otlp-harness");
        let histogram = meter
            .f64_histogram(NAME)
            .with_unit("s")
            .with_description("Duration of an MCP request")
            .with_boundaries(vec![0.01, 0.1, 1.0])
            .build();
        let attrs = [KeyValue::new("mcp.method.name", "tools/call")];
        histogram.record(0.05, &attrs);
        histogram.record(0.5, &attrs);
        provider.force_flush()?;
        histogram.record(2.0, &attrs);
        provider.force_flush()?;
        provider.shutdown()?;
        Ok(())
    })
    .await??;

    // Two flushes and the shutdown: three exports, each with the cumulative point.
    assert_eq!(receiver.metric_requests(), 3);
    assert_eq!(receiver.metric_names(), vec![NAME.to_owned()]);
    let all = receiver.histogram_points(NAME);
    assert_eq!(all.len(), 3, "{all:#?}");
    assert_eq!(all[0].count, 2);
    assert!((all[0].sum - 0.55).abs() < 1e-9);
    assert_eq!(all[0].bucket_counts, vec![0, 1, 1, 0]);

    let latest = receiver.latest_histogram_points(NAME);
    assert_eq!(latest.len(), 1, "{latest:#?}");
    let point = &latest[0];
    assert_eq!(point.count, 3);
    assert!((point.sum - 2.55).abs() < 1e-9);
    assert_eq!(point.explicit_bounds, vec![0.01, 0.1, 1.0]);
    assert_eq!(point.bucket_counts, vec![0, 1, 1, 1]);
    assert_eq!(point.min, Some(0.05));
    assert_eq!(point.max, Some(2.0));
    assert_eq!(point.str_attr("mcp.method.name"), Some("tools/call"));
    assert_eq!(point.unit, "s");
    assert_eq!(point.description, "Duration of an MCP request");
    assert_eq!(point.temporality, 2, "cumulative");
    assert!(point.time_unix_nanos >= point.start_unix_nanos);
    assert!(receiver.histogram_points("no.such.metric").is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_mode_reaches_the_span_exporter_as_an_error() -> anyhow::Result<()> {
    let receiver = OtlpReceiver::start().await;
    receiver.set_mode(Mode::Fail(500));
    let url = receiver.traces_url();

    // The simple processor swallows export errors; the batch one hands them to
    // `force_flush`.
    let (provider, failed) = tokio::task::spawn_blocking(
        move || -> anyhow::Result<(SdkTracerProvider, OTelSdkResult)> {
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(span_exporter(url)?)
                .build();
            one_span(&provider, "refused");
            let flushed = provider.force_flush();
            Ok((provider, flushed))
        },
    )
    .await??;
    let error = match failed {
        Ok(()) => anyhow::bail!("a 500 must fail the flush"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("500"), "{error}");
    // 500 is not retryable: one request.
    assert_eq!(receiver.trace_requests(), 1);
    assert!(receiver.spans().is_empty());

    receiver.set_mode(Mode::Accept);
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        one_span(&provider, "accepted");
        provider.force_flush()?;
        provider.shutdown()?;
        Ok(())
    })
    .await??;
    let spans = receiver.wait_for_spans(1, WAIT).await;
    let names: Vec<_> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["accepted"]);
    assert_eq!(receiver.trace_requests(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_mode_reaches_the_metric_exporter_as_an_error() -> anyhow::Result<()> {
    let receiver = OtlpReceiver::start().await;
    receiver.set_mode(Mode::Fail(500));
    let url = receiver.metrics_url();

    let (provider, failed) = tokio::task::spawn_blocking(
        move || -> anyhow::Result<(SdkMeterProvider, OTelSdkResult)> {
            let provider = meter_provider(metric_exporter(url)?);
            let histogram = provider.meter("otlp-harness").f64_histogram("h").build();
            histogram.record(1.0, &[]);
            let flushed = provider.force_flush();
            Ok((provider, flushed))
        },
    )
    .await??;
    assert!(failed.is_err(), "a 500 must fail the flush");
    assert_eq!(receiver.metric_requests(), 1);
    assert!(receiver.metric_names().is_empty());

    receiver.set_mode(Mode::Accept);
    tokio::task::spawn_blocking(move || provider.shutdown()).await??;
    assert_eq!(receiver.metric_requests(), 2);
    assert_eq!(receiver.latest_histogram_points("h").len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_statuses_are_retried_by_the_exporter() -> anyhow::Result<()> {
    let receiver = OtlpReceiver::start().await;
    receiver.set_mode(Mode::Fail(503));
    let url = receiver.traces_url();

    let failed = tokio::task::spawn_blocking(move || -> anyhow::Result<OTelSdkResult> {
        let exporter = SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .with_retry_policy(
                RetryPolicy::recommended()
                    .with_max_retries(2)
                    .with_initial_delay(Duration::from_millis(10))
                    .with_max_jitter(Duration::ZERO),
            )
            .build()?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .build();
        one_span(&provider, "retried");
        let flushed = provider.force_flush();
        provider.shutdown()?;
        Ok(flushed)
    })
    .await??;
    assert!(failed.is_err());
    // The first attempt and two retries.
    assert_eq!(receiver.trace_requests(), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_and_dead_endpoints_fail_the_export() -> anyhow::Result<()> {
    let receiver = OtlpReceiver::start().await;
    receiver.set_mode(Mode::Hang);
    let hung = receiver.traces_url();
    let dead = format!("{}/v1/traces", OtlpReceiver::dead_endpoint());

    let (hang_result, dead_result) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<(OTelSdkResult, OTelSdkResult)> {
            let flush = |url: String| -> anyhow::Result<OTelSdkResult> {
                let exporter = SpanExporter::builder()
                    .with_http()
                    .with_endpoint(url)
                    .with_timeout(Duration::from_millis(300))
                    .with_retry_policy(RetryPolicy::disabled())
                    .build()?;
                let provider = SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .build();
                one_span(&provider, "lost");
                let flushed = provider.force_flush();
                provider.shutdown()?;
                Ok(flushed)
            };
            Ok((flush(hung)?, flush(dead)?))
        })
        .await??;
    assert!(
        hang_result.is_err(),
        "a hung receiver must time the export out"
    );
    assert!(dead_result.is_err(), "a dead endpoint must fail the export");
    assert_eq!(receiver.trace_requests(), 1);
    assert!(receiver.spans().is_empty());
    Ok(())
}

#[tokio::test]
async fn decodes_gzip_bodies_and_refuses_garbage() -> anyhow::Result<()> {
    use std::io::Write as _;

    let receiver = OtlpReceiver::start().await;
    let span = opentelemetry_proto::tonic::trace::v1::Span {
        trace_id: vec![0xab; 16],
        span_id: vec![0x01; 8],
        name: "gzipped".to_owned(),
        kind: 3,
        attributes: vec![opentelemetry_proto::tonic::common::v1::KeyValue {
            key: "k".to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("v".to_owned())),
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "manual".to_owned(),
                    ..Default::default()
                }),
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&request.encode_to_vec())?;
    let gzipped = encoder.finish()?;

    let client = reqwest::Client::new();
    let response = client
        .post(receiver.traces_url())
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(gzipped)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/x-protobuf")
    );
    let answer = ExportTraceServiceResponse::decode(response.bytes().await?)?;
    assert_eq!(answer, ExportTraceServiceResponse::default());

    let spans = receiver.spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].name, "gzipped");
    assert_eq!(spans[0].trace_id, "ab".repeat(16));
    assert_eq!(spans[0].span_id, "0101010101010101");
    assert_eq!(spans[0].parent_span_id, "");
    assert!(spans[0].is_client());
    assert_eq!(spans[0].str_attr("k"), Some("v"));
    assert_eq!(spans[0].scope_name, "manual");
    assert!(spans[0].resource.is_empty());

    let garbage = client
        .post(receiver.metrics_url())
        .header("content-type", "application/x-protobuf")
        .body(vec![0xff, 0xff, 0xff])
        .send()
        .await?;
    assert_eq!(garbage.status(), 400);
    let json = client
        .post(receiver.traces_url())
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await?;
    assert_eq!(json.status(), 415);
    assert_eq!(receiver.trace_requests(), 2);
    assert_eq!(receiver.metric_requests(), 1);
    assert_eq!(receiver.spans().len(), 1);
    assert!(receiver.metric_exports().is_empty());
    Ok(())
}
