//! Logs and traces. The subscriber is composed here and nowhere else.
//!
//! Traces go through `tracing` spans, which the `tracing-opentelemetry` layer turns into
//! OpenTelemetry spans, which a batch processor exports over OTLP (gRPC by default, or
//! HTTP/protobuf). The request path never waits on the collector: a finished span is pushed
//! onto a bounded queue (`OTEL_BSP_MAX_QUEUE_SIZE`) that a dedicated exporter thread drains every
//! `OTEL_BSP_SCHEDULE_DELAY`; when the queue is full the span is dropped on the spot, and an
//! export that fails (collector down, or slower than `OTEL_EXPORTER_OTLP_TIMEOUT`) loses its batch.
//! Both losses are counted in [`ExportStats`] and reported at shutdown.
//!
//! Without an endpoint the OpenTelemetry layer still runs, with no exporter: incoming
//! `traceparent`s are continued and responses and JSON log lines carry trace ids, so logs of a
//! load test can be joined with its requests; only `OTEL_SDK_DISABLED=true` removes the layer.

mod export;
mod filter;
mod json_log;
mod provider;
mod request;
mod sampling;
mod subscriber;
pub mod traceparent;

pub use crate::config::DEFAULT_ROOT_SAMPLING_RATIO;
pub use export::{ExportSnapshot, ExportStats};
pub use provider::{Telemetry, Tracing};
pub(crate) use request::request_span;
pub use request::{
    always_sample, as_current_request, request_sampled, request_spans_off, sample_as,
    spawn_detached,
};
pub use sampling::RequestSampler;
pub use subscriber::{init, subscriber};
