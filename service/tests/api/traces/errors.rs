//! Error responses on the server span: a 4xx is the client's error, a 5xx (here the request
//! quota's 504) the server's.

use std::time::Duration;

use leaklab_otlp_receiver::proto::tonic::common::v1::any_value::Value as AnyValue;
use leaklab_otlp_receiver::proto::tonic::trace::v1::span::SpanKind;
use leaklab_otlp_receiver::proto::tonic::trace::v1::status::StatusCode;
use sqlx::MySqlPool;

use super::{CALLER_SPAN_ID, Collector, TracedApp, attr, hex, int_attr, str_attr};
use crate::helpers::{AppOptions, FaultProxy, body, redis_addr, settings};

#[sqlx::test(migrations = "../migrations")]
async fn error_responses_mark_the_server_span(pool: MySqlPool) {
    let traced = TracedApp::spawn(pool, Collector::InProcess).await;
    let app = &traced.app;
    let response = app
        .client
        .get(app.url("/v1/activities/424242/page?user_id=1"))
        .send()
        .await
        .unwrap();
    let trace_id = response
        .headers()
        .get("traceparent")
        .expect("a traceparent on error responses too")
        .to_str()
        .unwrap()[3..35]
        .to_owned();
    assert_eq!(body(response).await.0, 404);
    traced.flush().await;
    let spans = traced.received.as_ref().unwrap().of_trace(&hex(&trace_id));
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .expect("a server span");
    assert!(server.parent_span_id.is_empty(), "no traceparent: a root");
    assert_eq!(int_attr(server, "http.response.status_code"), 404);
    assert_eq!(str_attr(server, "error.type"), "not_found");
    // A 4xx is the client's error, not the server's (HTTP semantic conventions).
    assert_ne!(
        server.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_request_cut_by_the_quota_says_so(pool: MySqlPool) {
    let proxy = FaultProxy::start(redis_addr()).await;
    let mut settings = settings();
    settings.request_quota = Duration::from_millis(100);
    let options = AppOptions {
        settings,
        redis_url: format!("redis://{}", proxy.addr),
        // Longer than the quota, so the quota is what cuts the request.
        redis_timeout: Duration::from_secs(2),
    };
    let traced = TracedApp::spawn_with(pool, Collector::InProcess, options, 1.0).await;
    let app = &traced.app;
    let id = app.create_activity(None).await;
    proxy.set_latency(Duration::from_millis(400));
    let trace_id = "5bf92f3577b34da6a3ce929d0e0e4737";
    let response = app
        .client
        .get(app.url(&format!("/v1/activities/{id}/page?user_id=1")))
        .header("traceparent", format!("00-{trace_id}-{CALLER_SPAN_ID}-01"))
        .send()
        .await
        .unwrap();
    let (status, error) = body(response).await;
    assert_eq!(status, 504, "{error}");
    proxy.set_latency(Duration::ZERO);
    traced.flush().await;
    let spans = traced.received.as_ref().unwrap().of_trace(&hex(trace_id));
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .expect("a server span");
    assert_eq!(int_attr(server, "http.response.status_code"), 504);
    assert_eq!(str_attr(server, "error.type"), "quota_exceeded");
    assert_eq!(
        attr(server, "leaklab.quota_exceeded"),
        Some(AnyValue::BoolValue(true))
    );
    assert_eq!(
        server.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32),
        "a 5xx is an error span, which the collector's tail sampling keeps"
    );
    // The Redis call the quota cut short is in the trace, under the server span.
    assert!(
        spans.iter().any(|s| s.name == "GET"),
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
}
