use std::time::Duration;

use reservation_service::server::HttpLimits;
use serde_json::json;
use sqlx::MySqlPool;

use crate::app::{ADMIN_TOKEN, assert_error, json, spawn};

const ADMIN_PATHS: [&str; 3] = ["/admin/cache", "/debug/profiles", "/debug/pprof/heap"];

#[sqlx::test(migrations = "../migrations")]
async fn admin_routes_move_to_their_own_listener(pool: MySqlPool) {
    let app = spawn(pool, true, HttpLimits::default()).await;

    // The public listener no longer knows the admin and debug routes, token or not.
    for path in ADMIN_PATHS {
        let (status, body) = json(
            app.client
                .get(app.url(path))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &body, 404, "not_found");
    }
    let (status, body) = json(
        app.client
            .put(app.url("/admin/cache"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"mode": "moka"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 404, "not_found");

    // ... and still serves the API, the probes and /metrics.
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let (status, _) = json(
        app.client
            .post(app.url("/v1/activities"))
            .json(&json!({"title": "t", "starts_at": "2030-01-01T00:00:00Z"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201);

    // The admin listener: the same token check, and nothing else.
    for path in ADMIN_PATHS {
        let (status, body) = app.get(app.admin_url(path)).await;
        assert_error(status, &body, 401, "unauthorized");
        let (status, body) = json(
            app.client
                .get(app.admin_url(path))
                .bearer_auth("wrong")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &body, 401, "unauthorized");
    }
    let (status, stats) = json(
        app.client
            .put(app.admin_url("/admin/cache"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"mode": "moka"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["mode"], "moka");
    let response = app
        .client
        .get(app.admin_url("/debug/profiles"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    for path in ["/v1/activities/1", "/healthz", "/metrics"] {
        let (status, body) = app.get(app.admin_url(path)).await;
        assert_error(status, &body, 404, "not_found");
    }

    // Each listener describes what it serves.
    let (_, public_spec) = app.get(app.url("/openapi.json")).await;
    let (_, admin_spec) = app.get(app.admin_url("/openapi.json")).await;
    assert!(public_spec["paths"]["/v1/activities"].is_object());
    assert!(public_spec["paths"]["/metrics"].is_object());
    assert!(public_spec["paths"]["/admin/cache"].is_null());
    assert!(public_spec["paths"]["/debug/profiles"].is_null());
    assert!(admin_spec["paths"]["/admin/cache"].is_object());
    assert!(admin_spec["paths"]["/debug/profiles"].is_object());
    assert!(admin_spec["paths"]["/v1/activities"].is_null());
    assert!(admin_spec["components"]["securitySchemes"]["bearer"].is_object());
}

#[sqlx::test(migrations = "../migrations")]
async fn without_an_admin_listener_everything_is_on_one(pool: MySqlPool) {
    let app = spawn(pool, false, HttpLimits::default()).await;
    let response = app
        .client
        .get(app.url("/admin/cache"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, body) = app.get(app.url("/debug/profiles")).await;
    assert_error(status, &body, 401, "unauthorized");
    let (_, spec) = app.get(app.url("/openapi.json")).await;
    assert!(spec["paths"]["/admin/cache"].is_object());
    assert!(spec["paths"]["/v1/activities"].is_object());
}

/// One shutdown for both listeners: both stop accepting, and a request in flight on the admin
/// listener (a one-second CPU profile) still completes before `serve` returns.
#[sqlx::test(migrations = "../migrations")]
async fn shutdown_drains_both_listeners(pool: MySqlPool) {
    let mut app = spawn(pool, true, HttpLimits::default()).await;
    let in_flight = {
        let request = app
            .client
            .get(app.admin_url("/debug/pprof/profile?seconds=1"))
            .bearer_auth(ADMIN_TOKEN);
        tokio::spawn(async move { request.send().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.shut_down();
    let served = app.served.take().unwrap();
    // The profile parses the test binary's debug info afresh (the profiler drops its symbol
    // cache after each capture): 3 s alone, up to 8 s beside the other tests.
    let result = tokio::time::timeout(Duration::from_secs(25), served)
        .await
        .expect("serve returns once the profile is done, within the grace period");
    result.unwrap().unwrap();
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request got its answer");
    assert_eq!(response.status(), 200);
    assert!(!response.bytes().await.unwrap().is_empty());
    for addr in [app.addr, app.admin_addr.unwrap()] {
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "{addr} still accepts after shutdown"
        );
    }
}
