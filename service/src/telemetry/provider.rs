//! The tracer provider, its resource, the OpenTelemetry layer around it, and the handle that
//! flushes it at shutdown.

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::{Layer, Registry};

use super::export::{CountingExporter, CountingProcessor, ExportStats, exporter};
use super::filter::SampledOnly;
use super::sampling::{HonorRequestDecision, RequestSampler, sampler};
use crate::config::TelemetryArgs;

/// Spans of this crate reach OpenTelemetry; those of dependencies (hyper, h2, tonic, sqlx...)
/// do not, which also keeps the exporter's own work out of the traces it exports.
const TRACED_TARGET: &str = "reservation_service";

/// The tracer provider and its export counters. `None` from [`Tracing::new`] means OpenTelemetry
/// is disabled.
#[derive(Clone)]
pub struct Tracing {
    pub(super) provider: SdkTracerProvider,
    pub(super) stats: Arc<ExportStats>,
    pub(super) sampler: RequestSampler,
}

impl Tracing {
    /// Builds the provider; with an endpoint, also the exporter (which for gRPC must happen
    /// inside a Tokio runtime: its channel's I/O runs there).
    pub fn new(args: &TelemetryArgs) -> anyhow::Result<Option<Self>> {
        if args.otel_sdk_disabled {
            return Ok(None);
        }
        let stats = Arc::new(ExportStats::default());
        let endpoint = args.otlp_endpoint.as_deref().filter(|e| !e.is_empty());
        let sampler = match endpoint {
            Some(_) => sampler(args.otel_traces_sampler, args.otel_traces_sampler_arg)?,
            // Nothing leaves the process, so recording spans would be pure cost: spans still get
            // ids (for logs and responses) but are never recorded.
            None => Sampler::AlwaysOff,
        };
        let mut builder = SdkTracerProvider::builder()
            .with_sampler(HonorRequestDecision(sampler.clone()))
            .with_resource(resource(args));
        if let Some(endpoint) = endpoint {
            let exporter = CountingExporter {
                inner: exporter(args.otlp_protocol, endpoint, args.otlp_timeout_ms)?,
                stats: stats.clone(),
            };
            let config = BatchConfigBuilder::default()
                .with_max_queue_size(args.otel_bsp_max_queue_size.max(1))
                .with_scheduled_delay(args.otel_bsp_schedule_delay_ms)
                .build();
            builder = builder.with_span_processor(CountingProcessor {
                inner: BatchSpanProcessor::builder(exporter)
                    .with_batch_config(config)
                    .build(),
                stats: stats.clone(),
            });
        }
        Ok(Some(Self {
            provider: builder.build(),
            stats,
            sampler: RequestSampler::new(sampler),
        }))
    }

    /// The sampler, for the HTTP middleware to decide before it makes a server span.
    pub fn request_sampler(&self) -> RequestSampler {
        self.sampler.clone()
    }

    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    pub fn stats(&self) -> &ExportStats {
        &self.stats
    }

    pub(super) fn layer(&self) -> Box<dyn Layer<Registry> + Send + Sync> {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("reservation-service"))
            // Per-span thread, source location and busy/idle timings cost on every span and
            // say nothing the span tree does not.
            .with_threads(false)
            .with_location(false)
            .with_tracked_inactivity(false)
            // Parents come from the tracing span tree, not from OpenTelemetry's thread-local
            // context, which would otherwise be swapped on every poll of every instrumented future.
            .with_context_activation(false)
            .with_filter(SampledOnly {
                targets: Targets::new().with_target(TRACED_TARGET, Level::DEBUG),
            })
            .boxed()
    }
}

fn resource(args: &TelemetryArgs) -> Resource {
    Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes(
            args.otel_resource_attributes
                .as_deref()
                .map(parse_resource_attributes)
                .unwrap_or_default(),
        )
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .with_service_name(args.otel_service_name.clone())
        .build()
}

/// `key=value,key=value`, as in OTEL_RESOURCE_ATTRIBUTES; malformed pairs are skipped.
fn parse_resource_attributes(s: &str) -> Vec<KeyValue> {
    s.split(',')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let key = key.trim();
            (!key.is_empty()).then(|| KeyValue::new(key.to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// Flushes and stops the exporter when dropped.
pub struct Telemetry {
    pub(super) tracing: Option<Tracing>,
}

impl Telemetry {
    /// For [`crate::state::Settings::request_sampler`]; `None` when OpenTelemetry is off.
    pub fn request_sampler(&self) -> Option<RequestSampler> {
        self.tracing.as_ref().map(Tracing::request_sampler)
    }

    /// Exports what is queued (bounded by the export timeout) and reports what was lost.
    pub fn shutdown(mut self) {
        self.shutdown_inner();
    }

    fn shutdown_inner(&mut self) {
        let Some(tracing) = self.tracing.take() else {
            return;
        };
        if let Err(error) = tracing.provider.shutdown() {
            tracing::warn!(%error, "trace export did not shut down cleanly");
        }
        let stats = tracing.stats.snapshot();
        if stats.queue_dropped > 0 || stats.export_failed > 0 {
            tracing::warn!(
                spans_ended = stats.ended,
                spans_exported = stats.exported,
                spans_lost_in_failed_exports = stats.export_failed,
                spans_dropped_at_full_queue = stats.queue_dropped,
                "some spans were not exported"
            );
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_attributes_parse_and_skip_junk() {
        let kvs = parse_resource_attributes("deployment.environment=lab, team = x,junk,=y");
        let pairs: Vec<(String, String)> = kvs
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("deployment.environment".into(), "lab".into()),
                ("team".into(), "x".into())
            ]
        );
    }
}
