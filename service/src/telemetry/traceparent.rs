//! The W3C `traceparent` header: reading the caller's, writing ours on every response.
//!
//! Every response carries the trace back in a `traceparent` naming the server span (its second
//! field is the trace id, for a log search). One header, not also a bare `x-trace-id`: a second
//! header value is one more allocation and 46 more bytes on every response, sampled or not.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::propagation::TraceContextPropagator;

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

pub fn set_traceparent(response: &mut Response, span_context: &SpanContext) {
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
pub fn traceparent(headers: &HeaderMap) -> Option<Context> {
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
