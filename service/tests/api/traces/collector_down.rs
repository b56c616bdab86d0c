//! A collector that is down or stalls costs requests nothing: they stay fast, and the spans
//! lost are counted.

use std::time::{Duration, Instant};

use futures::StreamExt;
use sqlx::MySqlPool;

use super::{CALLER_SPAN_ID, Collector, Stall, TracedApp};
use crate::helpers::body;

#[sqlx::test(migrations = "../migrations")]
async fn requests_stay_fast_when_the_collector_is_unreachable(pool: MySqlPool) {
    let traced = TracedApp::spawn(pool, Collector::Unreachable("http://127.0.0.1:1")).await;
    let app = &traced.app;
    let id = app.create_activity(None).await;
    let started = Instant::now();
    for user in 0..30 {
        let (status, page) = app
            .get(&format!("/v1/activities/{id}/page?user_id={user}"))
            .await;
        assert_eq!(status, 200, "{page}");
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(3),
        "30 page views took {elapsed:?} with the collector down"
    );
    // The export fails fast and the spans are counted as lost, not retried forever.
    let flush_started = Instant::now();
    traced.flush().await;
    assert!(flush_started.elapsed() < Duration::from_secs(5));
    let stats = traced.tracing.stats().snapshot();
    assert_eq!(stats.exported, 0);
    assert!(stats.export_failed > 0, "{stats:?}");
}

/// A collector that stalls must cost requests nothing: spans are dropped at the full queue or
/// lost with their timed-out batch, and counted, while every request is served on time.
async fn requests_stay_fast_and_spans_are_counted(pool: MySqlPool, stall: Stall) {
    let traced = TracedApp::spawn(pool, Collector::Stalled(stall)).await;
    let app = &traced.app;
    let id = app.create_activity(None).await;
    for _ in 0..3 {
        app.create_activity(None).await;
    }
    // 400 sampled page views, 8 at a time: several hundred spans per second against a queue of
    // 64 that nothing drains.
    let started = Instant::now();
    let latencies: Vec<Duration> = futures::stream::iter(0..400_u64)
        .map(|user| {
            let app = &traced.app;
            async move {
                let sent = Instant::now();
                let response = app
                    .client
                    .get(app.url(&format!("/v1/activities/{id}/page?user_id={user}")))
                    .header(
                        "traceparent",
                        format!("00-{:032x}-{CALLER_SPAN_ID}-01", 0xabc0_0000_u64 + user),
                    )
                    .send()
                    .await
                    .expect("the request is answered");
                let (status, page) = body(response).await;
                assert_eq!(status, 200, "{page}");
                sent.elapsed()
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let slowest = latencies.iter().max().unwrap();
    // A request that waited for the collector would wait for the export timeout (2 s) at least.
    assert!(
        *slowest < Duration::from_millis(1500),
        "the slowest of 400 page views took {slowest:?} with a stalled collector"
    );
    assert!(
        elapsed > Duration::from_millis(300),
        "{elapsed:?}: the load outlasts an export"
    );
    let stats = traced.tracing.stats().snapshot();
    assert!(
        stats.ended >= 400,
        "every sampled span is counted: {stats:?}"
    );
    assert_eq!(stats.exported, 0, "{stats:?}");
    assert!(
        stats.queue_dropped > stats.ended / 2,
        "spans dropped at the full queue are counted: {stats:?}"
    );
    // Flushing is bounded too (by the export timeout), and the stalled exports count as lost.
    let flush_started = Instant::now();
    traced.flush().await;
    assert!(flush_started.elapsed() < Duration::from_secs(8));
    let stats = traced.tracing.stats().snapshot();
    assert_eq!(stats.exported, 0, "{stats:?}");
    assert!(stats.export_failed > 0, "{stats:?}");
    assert!(stats.queue_dropped > stats.ended / 2, "{stats:?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn requests_stay_fast_when_the_collector_accepts_but_never_answers(pool: MySqlPool) {
    requests_stay_fast_and_spans_are_counted(pool, Stall::Silent).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn requests_stay_fast_when_the_collector_answers_late(pool: MySqlPool) {
    requests_stay_fast_and_spans_are_counted(pool, Stall::AnswersAfter(Duration::from_secs(30)))
        .await;
}
