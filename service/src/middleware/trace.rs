//! The HTTP server span of every request, after the OpenTelemetry HTTP semantic conventions.
//!
//! An incoming W3C `traceparent` becomes the span's parent, so the caller's trace (the load
//! generator's) continues here and the caller's sampled flag decides (parent-based sampler).

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::error::ErrorCode;
use crate::state::AppState;
use crate::telemetry::RequestSampler;
use crate::telemetry::traceparent::{set_traceparent, traceparent};

/// Second from the outside, inside only [`super::metrics::track`] (which reads the trace id the
/// response carries), so that the span sees the final status, including the quota's 504 and the
/// shed's 503.
///
/// The sampler runs first, before any span exists: an unsampled request (99 % at the default
/// ratio) gets its ids for the response headers and its log lines and no span at all. Only a
/// sampled request gets the server span. (What tracing still costs: docs/tracing-overhead.md.)
pub async fn trace_request(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(sampler) = state.settings().request_sampler.as_ref() else {
        // OpenTelemetry is off (OTEL_SDK_DISABLED): no spans, no ids to give.
        return next.run(request).await;
    };
    let parent = traceparent(request.headers());
    let parent_sc = parent.as_ref().map(|cx| cx.span().span_context().clone());
    let trace_id = parent_sc.as_ref().map_or_else(
        || RandomIdGenerator::default().new_trace_id(),
        SpanContext::trace_id,
    );
    if !sampler.sampled(parent.as_ref(), trace_id) {
        let span_context = SpanContext::new(
            trace_id,
            RandomIdGenerator::default().new_span_id(),
            TraceFlags::default(),
            false,
            parent_sc
                .map(|sc| sc.trace_state().clone())
                .unwrap_or_default(),
        );
        let mut response = sampler
            .unsampled_request(&span_context, next.run(request))
            .await;
        set_traceparent(&mut response, &span_context);
        return response;
    }

    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let span = tracing::info_span!(
        "http.server.request",
        otel.name = match &route {
            Some(route) => format!("{method} {}", route.as_str()),
            None => method.to_string(),
        },
        otel.kind = "server",
        http.request.method = method.as_str(),
        http.route = route.as_ref().map(MatchedPath::as_str),
        url.path = request.uri().path(),
        http.response.status_code = Empty,
        "error.type" = Empty,
        otel.status_code = Empty,
        leaklab.quota_exceeded = Empty,
    );
    if let Some(parent) = parent {
        // Fails only if the span was already built, which nothing here has done yet.
        let _ = span.set_parent(parent);
    }
    // Builds the OpenTelemetry span, sampled as decided above.
    let span_context =
        RequestSampler::build_sampled(|| span.context().span().span_context().clone());

    // No sampling task-local: unset, the OpenTelemetry filter takes the request's spans.
    let mut response = next.run(request).instrument(span.clone()).await;

    let status = response.status();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if let Some(code) = response.extensions().get::<ErrorCode>().copied() {
        span.record("error.type", code.as_str());
        if code == ErrorCode::QuotaExceeded {
            span.record("leaklab.quota_exceeded", true);
        }
    }
    // Server spans: 5xx are errors, 4xx are the client's (semantic conventions).
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    // Invalid only when no OpenTelemetry layer took the span (a test's own subscriber).
    if span_context.is_valid() {
        set_traceparent(&mut response, &span_context);
    }
    response
}
