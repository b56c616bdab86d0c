//! One request's whole trace, over OTLP/gRPC and over OTLP/HTTP: the server span, the cache,
//! MySQL and Redis spans under it, their attributes, the sweep's root span, the resource.

use std::collections::HashMap;
use std::time::Duration;

use leaklab_otlp_receiver::proto::tonic::common::v1::any_value::Value as AnyValue;
use leaklab_otlp_receiver::proto::tonic::trace::v1::Span;
use leaklab_otlp_receiver::proto::tonic::trace::v1::span::SpanKind;
use sqlx::MySqlPool;

use super::{CALLER_SPAN_ID, Collector, TRACE_ID, TracedApp, attr, hex, int_attr, str_attr};
use crate::helpers::body;

/// Whether `ancestor` is `span`'s parent, or its parent's, and so on.
fn descends_from(span: &Span, ancestor: &Span, by_id: &HashMap<Vec<u8>, &Span>) -> bool {
    let mut parent = span.parent_span_id.clone();
    for _ in 0..32 {
        if parent == ancestor.span_id {
            return true;
        }
        match by_id.get(&parent) {
            Some(p) => parent = p.parent_span_id.clone(),
            None => return false,
        }
    }
    false
}

#[sqlx::test(migrations = "../migrations")]
async fn a_page_request_is_one_trace_from_http_to_cache_mysql_and_redis(pool: MySqlPool) {
    let traced = TracedApp::spawn(pool, Collector::InProcess).await;
    let app = &traced.app;
    let id = app.create_activity(Some(7)).await;
    for _ in 0..3 {
        app.create_activity(None).await;
    }

    let response = app
        .client
        .get(app.url(&format!("/v1/activities/{id}/page?user_id=4242")))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01"))
        .send()
        .await
        .unwrap();
    let traceparent = response
        .headers()
        .get("traceparent")
        .expect("a traceparent on the response")
        .to_str()
        .unwrap()
        .to_owned();
    let (status, page) = body(response).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["sources"]["activity"], "mysql", "a cold read: {page}");
    assert!(
        traceparent.starts_with(&format!("00-{TRACE_ID}-")) && traceparent.ends_with("-01"),
        "the response continues the caller's trace: {traceparent}"
    );

    // Let the sweeper (every 200 ms in tests) run at least once, then export.
    tokio::time::sleep(Duration::from_millis(450)).await;
    traced.flush().await;
    let received = traced.received.as_ref().unwrap();

    let spans = received.of_trace(&hex(TRACE_ID));
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let by_id: HashMap<Vec<u8>, &Span> = spans.iter().map(|s| (s.span_id.clone(), s)).collect();

    // The HTTP server span, child of the caller's span.
    let servers: Vec<&Span> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server as i32)
        .collect();
    assert_eq!(servers.len(), 1, "one server span in {names:?}");
    let server = servers[0];
    assert_eq!(server.name, "GET /v1/activities/{id}/page");
    assert_eq!(server.parent_span_id, hex(CALLER_SPAN_ID));
    assert_eq!(
        traceparent,
        format!("00-{TRACE_ID}-{}-01", hex_string(&server.span_id)),
        "the response's traceparent names the server span"
    );
    assert_eq!(str_attr(server, "http.request.method"), "GET");
    assert_eq!(str_attr(server, "http.route"), "/v1/activities/{id}/page");
    assert_eq!(
        str_attr(server, "url.path"),
        format!("/v1/activities/{id}/page")
    );
    assert_eq!(int_attr(server, "http.response.status_code"), 200);
    assert!(attr(server, "error.type").is_none());

    // Cache: a miss on the page's own activity, then the fill.
    let cache_gets: Vec<&Span> = spans.iter().filter(|s| s.name == "cache.get").collect();
    assert!(!cache_gets.is_empty(), "cache.get spans in {names:?}");
    let miss = cache_gets
        .iter()
        .find(|s| attr(s, "cache.hit") == Some(AnyValue::BoolValue(false)))
        .expect("a cache miss");
    assert_eq!(str_attr(miss, "cache.mode"), "fixed");
    assert_eq!(str_attr(miss, "cache.operation"), "get");
    assert!(int_attr(miss, "cache.lock_wait_us") >= 0);
    // The related activities' reads: one span for the whole batch.
    let batches: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "cache.get_many")
        .collect();
    assert_eq!(batches.len(), 1, "one cache.get_many span in {names:?}");
    let batch = batches[0];
    assert_eq!(str_attr(batch, "cache.operation"), "get_many");
    assert_eq!(str_attr(batch, "cache.mode"), "fixed");
    let keys = int_attr(batch, "cache.keys");
    assert!(
        (0..=3).contains(&int_attr(batch, "cache.hits")) && int_attr(batch, "cache.hits") <= keys
    );
    assert!(int_attr(batch, "cache.lock_wait_us") >= 0);
    assert!(int_attr(batch, "cache.lock_wait_max_us") >= 0);
    let set = spans
        .iter()
        .find(|s| s.name == "cache.set")
        .unwrap_or_else(|| panic!("a cache.set span in {names:?}"));
    assert!(int_attr(set, "cache.nodes_walked") >= 0);
    assert!(int_attr(set, "cache.evicted") >= 0);

    // MySQL: client spans with the statement text and no bound value.
    let selects: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "SELECT activities")
        .collect();
    assert!(!selects.is_empty(), "MySQL spans in {names:?}");
    for span in spans
        .iter()
        .filter(|s| attr(s, "db.system.name") == Some(AnyValue::StringValue("mysql".into())))
    {
        assert_eq!(span.kind, SpanKind::Client as i32);
        let text = str_attr(span, "db.query.text");
        assert!(text.contains('?'), "placeholders in {text:?}");
        assert!(
            !text.contains(&id.to_string()) && !text.contains("4242"),
            "no parameter values in {text:?}"
        );
        assert!(!str_attr(span, "db.operation.name").is_empty());
        assert!(!str_attr(span, "db.collection.name").is_empty());
    }
    let by_pk = selects
        .iter()
        .find(|s| str_attr(s, "db.query.text").ends_with("FROM activities WHERE id = ?"))
        .expect("the activity read");
    assert_eq!(str_attr(by_pk, "db.operation.name"), "SELECT");
    assert_eq!(str_attr(by_pk, "db.collection.name"), "activities");
    assert!(
        spans.iter().any(|s| s.name == "SELECT reservations"),
        "the user's state came from MySQL too: {names:?}"
    );

    // Redis: client spans named after the command.
    let redis: Vec<&Span> = spans
        .iter()
        .filter(|s| attr(s, "db.system.name") == Some(AnyValue::StringValue("redis".into())))
        .collect();
    assert!(
        redis.iter().any(|s| s.name == "GET"),
        "redis GET in {names:?}"
    );
    assert!(
        redis.iter().all(
            |s| str_attr(s, "db.operation.name") == s.name && s.kind == SpanKind::Client as i32
        )
    );

    // The server span is the ancestor of every cache, MySQL and Redis span of the request.
    for span in cache_gets
        .iter()
        .copied()
        .chain([batch, set])
        .chain(selects.iter().copied())
        .chain(redis.iter().copied())
    {
        assert!(
            descends_from(span, server, &by_id),
            "{} under the server span",
            span.name
        );
    }

    // The sweep: a root span of its own.
    let sweeps = received.named("cache.sweep");
    let sweep = sweeps.first().expect("a cache.sweep span");
    assert!(sweep.parent_span_id.is_empty(), "the sweep is a root span");
    assert!(int_attr(sweep, "cache.nodes_walked") >= 0);
    assert!(int_attr(sweep, "cache.items_expired") >= 0);
    assert!(int_attr(sweep, "cache.pause_us") >= 0);

    // The resource names the service and carries OTEL_RESOURCE_ATTRIBUTES.
    let resource = received.resources().pop().unwrap();
    assert_eq!(
        resource.get("service.name"),
        Some(&AnyValue::StringValue("reservation-service".into()))
    );
    assert_eq!(
        resource.get("deployment.environment"),
        Some(&AnyValue::StringValue("test".into()))
    );
    assert_eq!(traced.tracing.stats().snapshot().export_failed, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn spans_also_export_over_otlp_http_protobuf(pool: MySqlPool) {
    let traced = TracedApp::spawn(pool, Collector::InProcessHttp).await;
    let app = &traced.app;
    let trace_id = "7bf92f3577b34da6a3ce929d0e0e4739";
    let response = app
        .client
        .get(app.url("/v1/activities/424242/page?user_id=1"))
        .header("traceparent", format!("00-{trace_id}-{CALLER_SPAN_ID}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(body(response).await.0, 404);
    traced.flush().await;
    let spans = traced.received.as_ref().unwrap().of_trace(&hex(trace_id));
    assert!(
        spans
            .iter()
            .any(|s| s.name == "GET /v1/activities/{id}/page"
                && s.parent_span_id == hex(CALLER_SPAN_ID)),
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    assert!(spans.iter().any(|s| s.name == "SELECT activities"));
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
