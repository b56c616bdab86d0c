//! The HTTP server span of every request, after the OpenTelemetry HTTP semantic conventions.
//!
//! An incoming W3C `traceparent` becomes the span's parent, so the caller's trace (the load
//! generator's) continues here and the caller's sampled flag decides (parent-based sampler).
//! Every response carries the trace back in a `traceparent` naming this server span (its second
//! field is the trace id, for a log search). One header, not also a bare `x-trace-id`: a second
//! header value is one more allocation and 46 more bytes on every response, sampled or not.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::RequestSampler;
use crate::error::ErrorCode;
use crate::startup::AppState;

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Middleware (`axum::middleware::from_fn_with_state`) to put outside every other layer but
/// `metrics::track` (which is outermost, to read the trace id the response carries), so that
/// the span sees the final status, including the quota's 504 and the shed's 503.
///
/// The sampler runs first, before any span exists: an unsampled request (99 % at the default
/// ratio) gets its ids for the response headers and its log lines and no span at all. Only a
/// sampled request gets the server span. (What tracing still costs: README, "Tracing overhead".)
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

fn set_traceparent(response: &mut Response, span_context: &SpanContext) {
    response
        .headers_mut()
        .insert(TRACEPARENT, traceparent_value(span_context));
}

/// The trace id field of a `traceparent` value (`00-{trace id}-...`), unchecked: the caller's
/// on a request, ours (written by [`traceparent_value`]) on a response.
pub fn traceparent_trace_id(traceparent: &HeaderValue) -> Option<&str> {
    traceparent.to_str().ok()?.get(3..35)
}

/// The caller's context from a W3C `traceparent`, when there is a valid one.
fn traceparent(headers: &HeaderMap) -> Option<Context> {
    headers.get(TRACEPARENT)?;
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    parent.span().span_context().is_valid().then_some(parent)
}

/// `00-{trace id}-{span id}-{flags}`, written in place: no formatting machinery per response.
fn traceparent_value(sc: &SpanContext) -> HeaderValue {
    let mut buf = [0_u8; 55];
    buf[..3].copy_from_slice(b"00-");
    write_hex(&mut buf[3..35], &sc.trace_id().to_bytes());
    buf[35] = b'-';
    write_hex(&mut buf[36..52], &sc.span_id().to_bytes());
    buf[52] = b'-';
    write_hex(&mut buf[53..55], &[sc.trace_flags().to_u8()]);
    HeaderValue::from_bytes(&buf).expect("hex digits and dashes are a valid header value")
}

fn write_hex(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
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

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    #[test]
    fn traceparent_is_written_as_w3c_says_and_its_trace_id_read_back() {
        let sc = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        assert_eq!(
            traceparent_value(&sc),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(
            traceparent_trace_id(&traceparent_value(&sc)),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    }
}
