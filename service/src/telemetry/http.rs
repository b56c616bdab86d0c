//! The HTTP server span of every request, after the OpenTelemetry HTTP semantic conventions.
//!
//! An incoming W3C `traceparent` becomes the span's parent, so the caller's trace (the load
//! generator's) continues here and the caller's sampled flag decides (parent-based sampler).
//! Every response carries the trace back: `traceparent` names this server span, `x-trace-id` is
//! the bare trace id for a log search.

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::error::ErrorCode;

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const X_TRACE_ID: HeaderName = HeaderName::from_static("x-trace-id");

/// Middleware (`axum::middleware::from_fn`) to put outside every other layer, so that the span
/// sees the final status, including the quota's 504 and the shed's 503.
pub async fn trace_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let name = match &route {
        Some(route) => format!("{method} {route}"),
        None => method.to_string(),
    };
    let span = tracing::info_span!(
        "http.server.request",
        otel.name = name,
        otel.kind = "server",
        http.request.method = method.as_str(),
        http.route = route.as_deref(),
        url.path = request.uri().path(),
        http.response.status_code = Empty,
        "error.type" = Empty,
        otel.status_code = Empty,
        leaklab.quota_exceeded = Empty,
    );
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));
    if parent.span().span_context().is_valid() {
        // Fails only if the span was already built, which nothing here has done yet.
        let _ = span.set_parent(parent);
    }
    let span_context = span.context().span().span_context().clone();
    if !span_context.is_sampled() {
        super::mark_unsampled(&span);
    }

    let mut response = next.run(request).instrument(span.clone()).await;

    let status = response.status();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if let Some(ErrorCode(code)) = response.extensions().get::<ErrorCode>().copied() {
        span.record("error.type", code);
        if code == "quota_exceeded" {
            span.record("leaklab.quota_exceeded", true);
        }
    }
    // Server spans: 5xx are errors, 4xx are the client's (semantic conventions).
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    if span_context.is_valid() {
        let trace_id = span_context.trace_id().to_string();
        let traceparent = format!(
            "00-{trace_id}-{}-{:02x}",
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        );
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&traceparent) {
            headers.insert(TRACEPARENT, value);
        }
        if let Ok(value) = HeaderValue::from_str(&trace_id) {
            headers.insert(X_TRACE_ID, value);
        }
    }
    response
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}
