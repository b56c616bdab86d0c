//! Counts and times every request for Prometheus, and feeds the anomaly profiler's latency window.

use std::time::Instant;

use crate::error::ErrorCode;
use crate::metrics;
use crate::state::AppState;
use crate::telemetry::traceparent::{TRACEPARENT, traceparent_trace_id};

/// Outermost: counts and times every request against the quota, tracks in-flight requests and
/// feeds the anomaly profiler's latency window. Outside the tracing layer, so it reads the trace
/// id the response carries.
pub async fn track(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    // With OpenTelemetry on, the response names the trace (`traceparent`); off, the caller's
    // `traceparent` is the only id there is. Kept as the header value (a clone shares its
    // bytes) and read only if the request turns out slow enough to keep.
    let caller_traceparent = state
        .settings()
        .request_sampler
        .is_none()
        .then(|| request.headers().get(TRACEPARENT).cloned())
        .flatten();
    // Decremented on drop too, so a request whose connection closed mid-way is not left counted.
    let _in_flight = InFlight::enter();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    metrics::record_request(
        &route,
        &method,
        status,
        elapsed,
        state.settings().request_quota,
    );
    if response
        .extensions()
        .get::<ErrorCode>()
        .is_some_and(|&c| c == ErrorCode::Overloaded)
    {
        metrics::record_shed();
    }
    // Only the API feeds the anomaly profiler's latency window: a 30-s `/debug/pprof/profile`
    // or a slow scrape is not the service getting slow, and would fire a capture of its own.
    if route.starts_with("/v1/") {
        state.latencies().record(elapsed, || {
            let traceparent = response.headers().get(TRACEPARENT);
            traceparent_trace_id(traceparent.or(caller_traceparent.as_ref())?)
        });
    }
    response
}

struct InFlight;

impl InFlight {
    fn enter() -> Self {
        metrics::in_flight(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::in_flight(-1.0);
    }
}
