//! `OpenTelemetry::otlp_from_env`: the exporter configured by the standard variables
//! alone, against a real OTLP/HTTP receiver. One test in its own binary, so that setting
//! the process's environment races with nothing.

#![cfg(feature = "otel-otlp")]

mod common;
#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;

use std::time::Duration;

use serde_json::json;
use tower_mcp_analytics::AnalyticsLayer;
use tower_mcp_analytics::otel::OpenTelemetry;

use otlp_receiver::OtlpReceiver;

#[test]
fn the_standard_variables_configure_the_exporter() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    // The receiver's port is known only once it listens: bind it on the runtime, then set
    // the variables while nothing else reads the environment (the runtime's threads are
    // parked).
    let receiver = runtime.block_on(OtlpReceiver::start());
    // SAFETY: this binary's only test; no other thread reads or writes the environment.
    unsafe {
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint());
        std::env::set_var("OTEL_SERVICE_NAME", "env-configured-server");
        std::env::set_var(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=test",
        );
    }
    runtime.block_on(async {
        let layer = AnalyticsLayer::builder()
            .opentelemetry(OpenTelemetry::otlp_from_env().expect("exporters build"))
            .without_sink()
            .build();
        let wrap = layer.clone();
        let server = common::spawn(common::Mode::StatelessJson, move |router| {
            router.layer(wrap)
        })
        .await;
        let response =
            common::raw_modern_tools_call(&server.url, "add", json!({ "a": 2, "b": 3 }), None)
                .await;
        assert_eq!(response.status, 200);
        let report = layer.shutdown(Duration::from_secs(10)).await;
        assert!(report.flushed);
        assert_eq!(report.stats.telemetry.spans, 1);
        assert_eq!(report.stats.telemetry.spans_export_failed, 0);
        let spans = receiver.wait_for_spans(1, Duration::from_secs(10)).await;
        assert_eq!(spans.len(), 1);
        let span = &spans[0];
        assert_eq!(span.name, "tools/call add");
        assert_eq!(span.scope_name, "tower-mcp-analytics");
        let resource = |key: &str| {
            span.resource
                .get(key)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        assert_eq!(
            resource("service.name").as_deref(),
            Some("env-configured-server")
        );
        assert_eq!(
            resource("deployment.environment.name").as_deref(),
            Some("test")
        );
        // Shutting the layer down exported the measurement too.
        let points = receiver.latest_histogram_points("mcp.server.operation.duration");
        assert_eq!(points.iter().map(|p| p.count).sum::<u64>(), 1);
    });
}
