use std::time::Duration;

use reservation_service::state::LimitPolicy;
use reservation_service::state::Settings;
use sqlx::MySqlPool;

use crate::helpers::{
    AppOptions, FaultProxy, TestApp, eventually, redis_addr, settings, spawn_app_with,
};

#[sqlx::test(migrations = "../migrations")]
async fn reads_fall_back_to_mysql_when_redis_is_unreachable(pool: MySqlPool) {
    // Nothing listens on port 1: every Redis call fails at once.
    let app = spawn_app_with(
        pool,
        AppOptions {
            redis_url: "redis://127.0.0.1:1".into(),
            ..AppOptions::default()
        },
    )
    .await;
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, 200, "still serving: {ready}");
    assert_eq!(ready["status"], "degraded");
    assert_eq!(ready["redis"]["ok"], false);
    assert_eq!(ready["mysql"]["ok"], true);

    let id = app.create_activity(Some(2)).await;
    assert_eq!(
        app.put(&format!("/v1/activities/{id}/reservations/3"))
            .await
            .0,
        201,
        "writes need only MySQL"
    );
    let (status, page) = app
        .get(&format!("/v1/activities/{id}/page?user_id=3"))
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["sources"]["hot_state"], "mysql");
    assert_eq!(page["reserved_count"], 1);
    assert_eq!(page["user"]["reservation"], "active");
}

#[sqlx::test(migrations = "../migrations")]
async fn redis_coming_back_is_repaired_without_restart(pool: MySqlPool) {
    let proxy = FaultProxy::start(redis_addr()).await;
    let app = spawn_app_with(
        pool,
        AppOptions {
            redis_url: format!("redis://{}", proxy.addr),
            ..AppOptions::default()
        },
    )
    .await;
    let id = app.create_activity(None).await;
    let page = format!("/v1/activities/{id}/page?user_id=4");
    let (_, before) = app.get(&page).await;
    assert_eq!(before["user"]["reservation"], "none");
    // Let the read-repair of the first view land in Redis.
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.get(&page).await.1["sources"]["hot_state"] == "redis"
        })
        .await
    );

    proxy.cut();
    let (status, _) = app
        .put(&format!("/v1/activities/{id}/reservations/4"))
        .await;
    assert_eq!(status, 201, "the write is acknowledged by MySQL alone");
    let (status, during) = app.get(&page).await;
    assert_eq!(status, 200);
    assert_eq!(during["sources"]["hot_state"], "mysql");
    assert_eq!(during["user"]["reservation"], "active");
    let (_, ready) = app.get("/readyz").await;
    assert_eq!(ready["redis"]["ok"], false);

    proxy.restore();
    // Redis still holds the copy from before the write; the repair must replace it.
    let repaired = eventually(Duration::from_secs(10), || async {
        let (_, p) = app.get(&page).await;
        p["sources"]["hot_state"] == "redis"
            && p["user"]["reservation"] == "active"
            && p["reserved_count"] == 1
    })
    .await;
    assert!(repaired, "Redis serves the current state again");
    let (_, ready) = app.get("/readyz").await;
    assert_eq!(ready["status"], "ready");
}

#[sqlx::test(migrations = "../migrations")]
async fn slow_dependency_is_cut_at_the_quota_with_504(pool: MySqlPool) {
    let proxy = FaultProxy::start(redis_addr()).await;
    let mut settings = settings();
    settings.request_quota = Duration::from_millis(100);
    // A Redis timeout longer than the quota, so the quota is what cuts the request.
    let app = behind_proxy(pool, &proxy, settings, Duration::from_secs(2)).await;
    let id = app.create_activity(None).await;
    app.get(&format!("/v1/activities/{id}/page?user_id=1"))
        .await;
    proxy.set_latency(Duration::from_millis(400));
    let (status, error) = app
        .get(&format!("/v1/activities/{id}/page?user_id=1"))
        .await;
    assert_eq!(status, 504, "{error}");
    assert_eq!(error["error"]["code"], "quota_exceeded");
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, 200, "probes are outside the quota");
}

#[sqlx::test(migrations = "../migrations")]
async fn excess_concurrency_is_shed_with_503_at_a_fixed_limit(pool: MySqlPool) {
    excess_concurrency_is_shed_with_503(pool, LimitPolicy::Fixed).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn excess_concurrency_is_shed_with_503_at_the_adaptive_limit(pool: MySqlPool) {
    let policy = LimitPolicy::Adaptive {
        min: 1,
        target: Duration::from_millis(20),
    };
    excess_concurrency_is_shed_with_503(pool, policy).await;
}

/// Concurrent requests that are all slow (every Redis round trip delayed) with the limit full: a
/// queue standing at the limit. The adaptive limit comes down, so that fewer requests than the
/// ceiling are refused; once the queue is gone it grows back and admits them all again.
#[sqlx::test(migrations = "../migrations")]
async fn the_adaptive_limit_comes_down_under_a_standing_queue_and_grows_back(pool: MySqlPool) {
    const CEILING: usize = 32;
    let proxy = FaultProxy::start(redis_addr()).await;
    let mut settings = settings();
    settings.max_in_flight = CEILING;
    settings.limit_policy = LimitPolicy::Adaptive {
        min: 2,
        target: Duration::from_millis(20),
    };
    let app = behind_proxy(pool, &proxy, settings, Duration::from_secs(2)).await;
    let id = app.create_activity(None).await;
    let page = format!("/v1/activities/{id}/page?user_id=1");
    let burst = |n: usize| {
        let requests = (0..n).map(|_| app.get(&page));
        async move {
            let answers = futures::future::join_all(requests).await;
            for (status, body) in &answers {
                assert!(
                    *status == 200 || (*status == 503 && body["error"]["code"] == "overloaded"),
                    "only answers or refusals: {status} {body}"
                );
            }
            answers.iter().filter(|(status, _)| *status == 503).count()
        }
    };
    assert_eq!(
        burst(CEILING / 4).await,
        0,
        "under the ceiling, nothing is refused"
    );

    proxy.set_latency(Duration::from_millis(30));
    // The limit full of requests that each take over 60 ms, round after round.
    let mut refused = 0;
    for _ in 0..20 {
        burst(CEILING).await;
        refused = burst(CEILING / 4).await;
        if refused > 0 {
            break;
        }
    }
    assert!(
        refused > 0,
        "a quarter of the ceiling is refused once the limit has come down"
    );

    proxy.set_latency(Duration::ZERO);
    let recovered = eventually(Duration::from_secs(30), || async {
        // One at a time: nothing queues, so the limit grows back.
        for _ in 0..5 {
            app.get(&page).await;
        }
        burst(CEILING / 4).await == 0
    })
    .await;
    assert!(recovered, "the limit grows back once the queue is gone");
}

/// One slow page holds the only place; a request to another route is refused: all API routes
/// share one limit.
async fn excess_concurrency_is_shed_with_503(pool: MySqlPool, policy: LimitPolicy) {
    let proxy = FaultProxy::start(redis_addr()).await;
    let mut settings = settings();
    settings.max_in_flight = 1;
    settings.limit_policy = policy;
    settings.request_quota = Duration::from_secs(5);
    let app = behind_proxy(pool, &proxy, settings, Duration::from_secs(1)).await;
    let id = app.create_activity(None).await;
    // Each Redis round trip now takes ~400 ms: the page holds its slot for a while.
    proxy.set_latency(Duration::from_millis(200));
    let slow = {
        let client = app.client.clone();
        let url = app.url(&format!("/v1/activities/{id}/page?user_id=1"));
        tokio::spawn(async move { client.get(url).send().await.unwrap().status().as_u16() })
    };
    // Wait until the slow request holds the only slot.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (status, error) = app.get(&format!("/v1/activities/{id}")).await;
    assert_eq!(status, 503, "{error}");
    assert_eq!(error["error"]["code"], "overloaded");
    assert_eq!(
        slow.await.unwrap(),
        200,
        "the admitted request still completes"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn mysql_outage_fails_fast_with_503_and_recovers(pool: MySqlPool) {
    let mysql: std::net::SocketAddr = "127.0.0.1:3306".parse().unwrap();
    let proxy = FaultProxy::start(mysql).await;
    let options = (*pool.connect_options())
        .clone()
        .host("127.0.0.1")
        .port(proxy.addr.port());
    let through_proxy = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_millis(200))
        .connect_lazy_with(options);
    let app = spawn_app_with(through_proxy, AppOptions::default()).await;
    let id = app.create_activity(Some(10)).await;

    proxy.cut();
    let started = std::time::Instant::now();
    let (status, error) = app
        .put(&format!("/v1/activities/{id}/reservations/1"))
        .await;
    assert_eq!(status, 503, "{error}");
    assert_eq!(error["error"]["code"], "dependency_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "fails fast, not after a client timeout"
    );
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(ready["mysql"]["ok"], false);

    proxy.restore();
    let recovered = eventually(Duration::from_secs(10), || async {
        app.put(&format!("/v1/activities/{id}/reservations/1"))
            .await
            .0
            == 201
    })
    .await;
    assert!(recovered, "writes succeed again without a restart");
    let (status, _) = app.get("/readyz").await;
    assert_eq!(status, 200);
    let active: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM reservations WHERE activity_id = ? AND state = 'active'",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(active, 1, "nothing written twice");
}

/// The app with its Redis traffic through `proxy`.
async fn behind_proxy(
    pool: MySqlPool,
    proxy: &FaultProxy,
    settings: Settings,
    redis_timeout: Duration,
) -> TestApp {
    spawn_app_with(
        pool,
        AppOptions {
            settings,
            redis_url: format!("redis://{}", proxy.addr),
            redis_timeout,
        },
    )
    .await
}
