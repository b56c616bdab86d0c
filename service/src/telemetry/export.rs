//! The OTLP exporter and the counts of what it exported and lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::Context;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchSpanProcessor, Span, SpanData, SpanExporter, SpanProcessor};

use crate::config::OtlpProtocol;

/// Counts of sampled spans, for "spans are dropped and counted". `ended - exported - failed` is
/// what sits in the queue or was dropped at a full queue; after a flush, only the latter.
#[derive(Debug, Default)]
pub struct ExportStats {
    ended: AtomicU64,
    exported: AtomicU64,
    export_failed: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportSnapshot {
    pub ended: u64,
    pub exported: u64,
    pub export_failed: u64,
    /// Exact after a flush; before it, also counts spans still queued.
    pub queue_dropped: u64,
}

impl ExportStats {
    pub fn snapshot(&self) -> ExportSnapshot {
        let exported = self.exported.load(Ordering::Relaxed);
        let export_failed = self.export_failed.load(Ordering::Relaxed);
        let ended = self.ended.load(Ordering::Relaxed);
        ExportSnapshot {
            ended,
            exported,
            export_failed,
            queue_dropped: ended.saturating_sub(exported + export_failed),
        }
    }
}

/// The batch processor drops spans at a full queue without saying how many (until shutdown);
/// counting what goes in and what the exporter saw gives the number.
#[derive(Debug)]
pub(super) struct CountingProcessor {
    pub(super) inner: BatchSpanProcessor,
    pub(super) stats: Arc<ExportStats>,
}

impl SpanProcessor for CountingProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.stats.ended.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[derive(Debug)]
pub(super) struct CountingExporter {
    pub(super) inner: opentelemetry_otlp::SpanExporter,
    pub(super) stats: Arc<ExportStats>,
}

impl SpanExporter for CountingExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        let counter = match result {
            Ok(()) => &self.stats.exported,
            Err(_) => &self.stats.export_failed,
        };
        counter.fetch_add(n, Ordering::Relaxed);
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

pub(super) fn exporter(
    protocol: OtlpProtocol,
    endpoint: &str,
    timeout: Duration,
) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
    let exporter = match protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(timeout)
            .build(),
        // OTEL_EXPORTER_OTLP_ENDPOINT is a base URL; the traces path goes after it.
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(http_traces_url(endpoint))
            .with_timeout(timeout)
            .build(),
    };
    exporter.with_context(|| format!("cannot build the OTLP exporter for {endpoint}"))
}

fn http_traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_endpoint_gets_the_traces_path_once() {
        assert_eq!(http_traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(http_traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            http_traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }
}
