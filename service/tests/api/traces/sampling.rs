//! What is sampled and exported: the caller's sampled flag is followed, background work is
//! sampled as the request that started it, and the latency window names the traces it saw.

use std::time::Duration;

use leaklab_otlp_receiver::proto::tonic::trace::v1::span::SpanKind;
use sqlx::MySqlPool;

use super::{CALLER_SPAN_ID, Collector, TracedApp, hex};
use crate::helpers::{AppOptions, body};

#[sqlx::test(migrations = "../migrations")]
async fn an_unsampled_caller_is_continued_but_not_exported(pool: MySqlPool) {
    let traced = TracedApp::spawn(pool, Collector::InProcess).await;
    let app = &traced.app;
    let trace_id = "6bf92f3577b34da6a3ce929d0e0e4738";
    let response = app
        .client
        .get(app.url("/v1/activities/424242/page?user_id=1"))
        .header("traceparent", format!("00-{trace_id}-{CALLER_SPAN_ID}-00"))
        .send()
        .await
        .unwrap();
    let traceparent = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        traceparent.starts_with(&format!("00-{trace_id}-")) && traceparent.ends_with("-00"),
        "the caller's trace, still unsampled: {traceparent}"
    );
    // A sampled request after it, to know the export has happened.
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, 200);
    traced.flush().await;
    let received = traced.received.as_ref().unwrap();
    assert!(
        !received.named("GET /healthz").is_empty(),
        "the sampled request was exported"
    );
    assert!(
        received.of_trace(&hex(trace_id)).is_empty(),
        "the parent-based sampler follows the caller's sampled flag"
    );
}

/// With OpenTelemetry on, the slowest requests' ids are the traces the responses name, for a
/// request that came without a `traceparent` too.
#[sqlx::test(migrations = "../migrations")]
async fn the_latency_window_names_the_trace_the_response_carries(pool: MySqlPool) {
    let traced = TracedApp::spawn(pool, Collector::InProcess).await;
    let app = &traced.app;
    let id = app.create_activity(None).await;
    app.state.latencies().take();
    let response = app
        .client
        .get(app.url(&format!("/v1/activities/{id}/page?user_id=1")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let traceparent = response.headers()["traceparent"].to_str().unwrap();
    let window = app.state.latencies().take();
    assert_eq!(window.requests, 1);
    assert_eq!(window.slowest_trace_ids, [&traceparent[3..35]]);
}

/// Work a request leaves running (here, filling Redis after a cold read) is a root span of its
/// own, linked to the request and sampled as the request was: not drawn again at the root ratio,
/// which is 0 here, so that nothing but the caller's flag can sample it.
#[sqlx::test(migrations = "../migrations")]
async fn background_work_is_sampled_as_the_request_that_started_it(pool: MySqlPool) {
    let traced =
        TracedApp::spawn_with(pool, Collector::InProcess, AppOptions::default(), 0.0).await;
    let app = &traced.app;
    let sampled_trace = "7bf92f3577b34da6a3ce929d0e0e4739";
    let unsampled_trace = "8bf92f3577b34da6a3ce929d0e0e473a";
    for (trace_id, flags) in [(sampled_trace, "01"), (unsampled_trace, "00")] {
        // A new activity each time: a cold read, whose summary is then copied to Redis.
        let id = app.create_activity(Some(7)).await;
        let response = app
            .client
            .get(app.url(&format!("/v1/activities/{id}/page?user_id=1")))
            .header(
                "traceparent",
                format!("00-{trace_id}-{CALLER_SPAN_ID}-{flags}"),
            )
            .send()
            .await
            .unwrap();
        let (status, page) = body(response).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["sources"]["activity"], "mysql", "a cold read: {page}");
    }
    // The copies to Redis finish after the responses.
    tokio::time::sleep(Duration::from_millis(300)).await;
    traced.flush().await;
    let received = traced.received.as_ref().unwrap();

    let server = received
        .of_trace(&hex(sampled_trace))
        .into_iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .expect("the sampled request's server span");
    let fills = received.named("redis.fill_summary");
    assert!(
        !fills.is_empty(),
        "the sampled request's copy to Redis was exported"
    );
    for fill in &fills {
        assert!(fill.parent_span_id.is_empty(), "a root span of its own");
        assert_ne!(fill.trace_id, hex(sampled_trace), "in a trace of its own");
        let links: Vec<(&[u8], &[u8])> = fill
            .links
            .iter()
            .map(|l| (l.trace_id.as_slice(), l.span_id.as_slice()))
            .collect();
        assert_eq!(
            links,
            [(hex(sampled_trace).as_slice(), server.span_id.as_slice())],
            "linked to the request that started it, and to no other"
        );
    }
    assert!(
        received.of_trace(&hex(unsampled_trace)).is_empty(),
        "nothing of the unsampled request"
    );
}
