//! What a task knows of the request it serves (sampled or not, its ids), and the
//! [`request_span!`] shortcut that reads it.

use std::sync::atomic::Ordering;

use opentelemetry::trace::TraceContextExt;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::sampling::RequestSampler;

/// What the request a task serves knows of its trace. One task-local for both, so that a
/// request's future swaps one value in and out at each poll, not two.
#[derive(Debug, Clone, Copy)]
pub(super) struct RequestTrace {
    /// Whether the trace is sampled: [`SampledOnly`](super::filter::SampledOnly) and
    /// [`UnsampledSpansOff`](super::filter::UnsampledSpansOff) decide for every span made inside
    /// the request with one task-local read, not with a walk of the registry.
    pub(super) sampled: bool,
    /// Whether spans are made at all: yes in a sampled request, and in an unsampled one only when
    /// the log layer takes them. [`request_span!`] reads it before calling into the subscriber.
    pub(super) spans: bool,
    /// The trace and span ids of an unsampled request, whose server span does not exist: the
    /// JSON log lines written while serving it take their ids from here.
    pub(super) ids: Option<(opentelemetry::trace::TraceId, opentelemetry::trace::SpanId)>,
}

tokio::task_local! {
    /// Unset outside requests, and in a sampled request (whose spans carry everything).
    pub(super) static REQUEST_TRACE: RequestTrace;
}

impl RequestSampler {
    /// Runs an unsampled request's handling: no spans are made inside it (unless the log layer
    /// takes them), and its log lines carry the ids of the server span it would have had.
    pub fn unsampled_request<F: Future>(
        &self,
        sc: &opentelemetry::trace::SpanContext,
        fut: F,
    ) -> impl Future<Output = F::Output> {
        REQUEST_TRACE.scope(self.unsampled_trace(sc), fut)
    }

    pub(super) fn unsampled_trace(&self, sc: &opentelemetry::trace::SpanContext) -> RequestTrace {
        RequestTrace {
            sampled: false,
            spans: self.log_takes_spans.load(Ordering::Relaxed),
            ids: Some((sc.trace_id(), sc.span_id())),
        }
    }
}

/// Runs work that the current request spawns as the request runs: an unsampled request's
/// background writes make no spans either, and log with the request's ids.
pub fn as_current_request<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    let trace = REQUEST_TRACE
        .try_with(|trace| *trace)
        .unwrap_or(RequestTrace {
            sampled: true,
            spans: true,
            ids: None,
        });
    REQUEST_TRACE.scope(trace, fut)
}

/// The sampling decision of the request this task serves, if it serves one.
pub fn request_sampled() -> Option<bool> {
    REQUEST_TRACE.try_with(|trace| trace.sampled).ok()
}

/// Samples `root`, a new root span made for work that `origin` started, as `origin` was. Left to
/// the provider, a sampled request's background work would be drawn again at the root ratio (1 %
/// by default) and mostly go missing from its trace's links. Call it before `root` is entered.
pub fn sample_as(root: &tracing::Span, origin: &tracing::Span) {
    if origin.context().span().span_context().is_sampled() {
        RequestSampler::build_sampled(|| drop(root.context()));
    }
}

/// Samples `root`, a new root span, whatever the root ratio: for the few roots a second that
/// explain what many requests waited for (the cache sweep). Call it before `root` is entered.
pub fn always_sample(root: &tracing::Span) {
    RequestSampler::build_sampled(|| drop(root.context()));
}

/// True inside an unsampled request whose spans no layer takes.
pub fn request_spans_off() -> bool {
    REQUEST_TRACE
        .try_with(|trace| !trace.spans)
        .unwrap_or(false)
}

/// `tracing::info_span!` for a span made while serving a request. Inside an unsampled request
/// whose spans the log layer does not take, it is `Span::none()` at the cost of one task-local
/// read. [`UnsampledSpansOff`](super::filter::UnsampledSpansOff) would disable the span as well,
/// but only once the dispatcher has gone through the layers; a page view makes about ten spans,
/// and that walk, plus a field lookup by name for each `record` on the disabled span, was the
/// part of tracing's cost on an unsampled request that sat in the `tracing` crates
/// (docs/tracing-overhead.md).
macro_rules! request_span {
    ($($arg:tt)+) => {
        if $crate::telemetry::request_spans_off() {
            ::tracing::Span::none()
        } else {
            ::tracing::info_span!($($arg)+)
        }
    };
}
pub(crate) use request_span;

/// A span for work the request starts but does not wait for. It is a root linked to the request
/// (not a child), so that the request's span ends when the response goes out, not when the
/// background write does.
fn background_span(name: &'static str) -> tracing::Span {
    let span = request_span!(parent: None, "background", otel.name = name);
    if !span.is_disabled() {
        let request = tracing::Span::current();
        span.follows_from(&request);
        sample_as(&span, &request);
    }
    span
}

/// Spawns work the request does not wait for, in its own root span (see [`background_span`]),
/// sampled as the request is: an unsampled request's background writes make no spans either.
pub fn spawn_detached<F>(name: &'static str, work: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let span = background_span(name);
    tokio::spawn(as_current_request(work).instrument(span));
}
