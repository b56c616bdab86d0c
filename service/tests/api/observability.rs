use std::time::Duration;

use pprof::protos::Message;
use reservation_service::profiling::anomaly::{self, Signal};
use sqlx::MySqlPool;

use crate::helpers::{ADMIN_TOKEN, AppOptions, eventually, settings, spawn_app, spawn_app_with};

#[sqlx::test(migrations = "../migrations")]
async fn metrics_expose_every_family(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let id = app.create_activity(None).await;
    for _ in 0..3 {
        app.get(&format!("/v1/activities/{id}/page?user_id=1"))
            .await;
    }
    // Let one expiry sweep run (every 200 ms in the tests).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for family in [
        "http_server_requests_total{",
        "outcome=\"good\"",
        "http_server_request_duration_seconds_bucket{",
        "le=\"0.25\"",
        "http_server_in_flight_requests",
        "http_server_shed_requests_total",
        "leaklab_cache_items{",
        "leaklab_cache_nodes{",
        "leaklab_cache_heap_bytes{",
        "leaklab_cache_hit_ratio{",
        "leaklab_cache_evictions_total{",
        "leaklab_cache_mode{mode=\"fixed\"} 1",
        "leaklab_cache_sweep_pause_seconds_bucket{",
        "leaklab_cache_sweep_nodes_walked_bucket{",
        "leaklab_cache_lock_wait_seconds_bucket{",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "jemalloc_allocated_bytes",
        "jemalloc_resident_bytes",
        "tokio_busy_ratio",
        "tokio_global_queue_depth",
    ] {
        assert!(text.contains(family), "/metrics lacks {family}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn debug_routes_need_the_token(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    for path in [
        "/debug/pprof/heap",
        "/debug/pprof/profile?seconds=1",
        "/debug/profiles",
    ] {
        let status = app.client.get(app.url(path)).send().await.unwrap().status();
        assert_eq!(status, 401, "{path}");
    }
    let status = app
        .admin_get("/debug/profiles/..%2F..%2Fetc/passwd")
        .await
        .status();
    assert_eq!(status, 404);
}

#[sqlx::test(migrations = "../migrations")]
async fn profiles_on_demand_are_readable(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let heap = app.admin_get("/debug/pprof/heap").await;
    assert_eq!(heap.status(), 200);
    let heap = heap.bytes().await.unwrap();
    assert_eq!(&heap[..2], &[0x1f, 0x8b], "gzipped pprof");
    let svg = app
        .admin_get("/debug/pprof/heap?format=flamegraph")
        .await
        .text()
        .await
        .unwrap();
    assert!(svg.contains("<svg"), "a flame graph");
}

#[sqlx::test(migrations = "../migrations")]
async fn anomaly_profiler_fires_and_writes_readable_profiles(pool: MySqlPool) {
    let mut settings = settings();
    // A synthetic breach: the sweep rule fires at any pause, at the first sample.
    settings.anomaly = Some(anomaly::Settings {
        interval: Duration::from_millis(200),
        dir: settings.profile_dir.clone(),
        cpu_profile: Duration::from_secs(1),
        rules: vec![(Signal::SweepPauseMs, "0,0,0,1h".parse().unwrap())],
    });
    let app = spawn_app_with(
        pool,
        AppOptions {
            settings,
            ..AppOptions::default()
        },
    )
    .await;
    let id = app.create_activity(None).await;
    app.get(&format!("/v1/activities/{id}/page?user_id=1"))
        .await;

    let list = |app: &crate::helpers::TestApp| {
        let request = app
            .client
            .get(app.url("/debug/profiles"))
            .bearer_auth(ADMIN_TOKEN);
        async move {
            let dumps: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
            dumps
        }
    };
    let written = eventually(Duration::from_secs(15), || async {
        let dumps = list(&app).await;
        dumps[0]["files"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "trigger.json"))
    })
    .await;
    assert!(written, "a dump with trigger.json appears");
    let dumps = list(&app).await;
    let name = dumps[0]["name"].as_str().unwrap().to_owned();
    assert!(name.ends_with("sweep_pause_ms"), "{name}");

    let fetch = |file: &str| {
        app.client
            .get(app.url(&format!("/debug/profiles/{name}/{file}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
    };
    let trigger: serde_json::Value = fetch("trigger.json").await.unwrap().json().await.unwrap();
    assert_eq!(trigger["rule"], "sweep_pause_ms");
    assert_eq!(trigger["firing"]["reason"], "absolute");
    assert_eq!(trigger["cache"]["mode"], "fixed");
    assert!(
        trigger["errors"].as_array().unwrap().is_empty(),
        "{trigger}"
    );

    let cpu = fetch("cpu.pb").await.unwrap().bytes().await.unwrap();
    let profile = pprof::protos::Profile::decode(cpu.as_ref()).expect("a pprof protobuf");
    assert!(!profile.sample_type.is_empty());
    let heap = fetch("heap.pb.gz").await.unwrap().bytes().await.unwrap();
    assert_eq!(&heap[..2], &[0x1f, 0x8b], "gzipped pprof");
}

/// With OpenTelemetry off, the slowest requests' ids (what an anomaly dump names) are the
/// callers' trace ids.
#[sqlx::test(migrations = "../migrations")]
async fn the_latency_window_names_the_callers_trace_when_tracing_is_off(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let id = app.create_activity(None).await;
    app.state.latencies().take();
    let trace_id = "9bf92f3577b34da6a3ce929d0e0e4736";
    let response = app
        .client
        .get(app.url(&format!("/v1/activities/{id}/page?user_id=1")))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let window = app.state.latencies().take();
    assert_eq!(window.requests, 1);
    assert_eq!(window.slowest_trace_ids, [trace_id]);
}
