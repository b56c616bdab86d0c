//! A runtime flip (`PUT /admin/cache`) is stored in MySQL before the swap and restored at start,
//! so a restart does not silently undo it; `seed --reset` clears it; a flip that cannot be
//! stored changes nothing. A "restart" is a new app on the same database, built the way `serve`
//! builds it (`AppState::restore`).

use std::time::Duration;

use leaklab_cache::Mode;
use reservation_service::cache::preage::Preage;
use reservation_service::config::{DatabaseArgs, SeedArgs};
use reservation_service::server::HttpLimits;
use reservation_service::state::AppState;
use serde_json::{Value, json};
use sqlx::MySqlPool;

use crate::helpers::{
    ADMIN_TOKEN, AppOptions, FaultProxy, TestApp, body, redis_store, redis_url, settings,
    spawn_app_aged, spawn_app_with,
};

/// The app as started with CACHE_MODE=`mode` (and a small cache, so pre-ageing is quick).
async fn start(pool: &MySqlPool, mode: Mode, preage: Option<Preage>) -> TestApp {
    let mut settings = settings();
    settings.cache.mode = mode;
    settings.cache.capacity = 20;
    spawn_app_aged(
        pool.clone(),
        AppOptions {
            settings,
            ..AppOptions::default()
        },
        preage,
    )
    .await
}

async fn cache(app: &TestApp) -> Value {
    let (status, view) = body(app.admin_get("/admin/cache").await).await;
    assert_eq!(status, 200, "{view}");
    view
}

async fn flip(app: &TestApp, mode: &str) -> (u16, Value) {
    body(
        app.client
            .put(app.url("/admin/cache"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "mode": mode }))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn stored_flips(pool: &MySqlPool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM runtime_settings WHERE name = 'cache_mode'")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_runtime_flip_survives_a_restart(pool: MySqlPool) {
    let app = start(&pool, Mode::Leaky, None).await;
    let before = cache(&app).await;
    assert_eq!(before["mode"], "leaky");
    assert_eq!(before["mode_source"], "environment");
    assert!(before["flipped_at"].is_null(), "{before}");
    assert_eq!(before["environment_mode"], "leaky");

    let (status, flipped) = flip(&app, "fixed").await;
    assert_eq!(status, 200, "{flipped}");
    assert_eq!(flipped["mode"], "fixed");
    assert_eq!(flipped["mode_source"], "runtime_flip");
    assert_eq!(flipped["environment_mode"], "leaky");
    let flipped_at = flipped["flipped_at"]
        .as_str()
        .expect("a flip time")
        .to_owned();
    assert_eq!(cache(&app).await["mode_source"], "runtime_flip");
    drop(app);

    // The restart: the environment still says leaky, the service comes back fixed and says why.
    for _ in 0..30 {
        sqlx::query(
            "INSERT INTO activities (title, starts_at) VALUES ('a', '2030-01-01 10:00:00')",
        )
        .execute(&pool)
        .await
        .unwrap();
    }
    let preage = Preage {
        hits: 500,
        keys: 5,
        zipf: 1.0,
    };
    let app = start(&pool, Mode::Leaky, Some(preage)).await;
    let after = cache(&app).await;
    assert_eq!(after["mode"], "fixed", "{after}");
    assert_eq!(after["mode_source"], "runtime_flip");
    assert_eq!(
        after["flipped_at"],
        flipped_at.as_str(),
        "the flip's own time"
    );
    assert_eq!(after["environment_mode"], "leaky");
    // Pre-ageing aged the restored cache, not one of the environment's mode.
    assert!(after["hits"].as_u64().unwrap() >= preage.hits, "{after}");

    // A later flip replaces the stored one, back to the environment's mode included.
    let (status, flipped) = flip(&app, "leaky").await;
    assert_eq!(status, 200, "{flipped}");
    drop(app);
    let app = start(&pool, Mode::Moka, None).await;
    let after = cache(&app).await;
    assert_eq!(after["mode"], "leaky", "{after}");
    assert_eq!(after["mode_source"], "runtime_flip");
    assert_eq!(after["environment_mode"], "moka");
    assert_eq!(stored_flips(&pool).await, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn seed_reset_clears_the_flip(pool: MySqlPool) {
    let app = start(&pool, Mode::Leaky, None).await;
    let (status, flipped) = flip(&app, "fixed").await;
    assert_eq!(status, 200, "{flipped}");
    drop(app);

    // What `seed --reset` runs (and every `docker compose up` with it).
    reservation_service::seed::run(
        &pool,
        &SeedArgs {
            database: DatabaseArgs {
                database_url: "mysql://unused".into(),
                db_max_connections: 4,
                db_acquire_timeout: Duration::from_secs(1),
            },
            activities: 10,
            users: 10,
            reservations_per_user: 1,
            zipf: 1.0,
            seed: 1,
            reset: true,
        },
    )
    .await
    .expect("seed --reset");
    assert_eq!(stored_flips(&pool).await, 0);

    let app = start(&pool, Mode::Leaky, None).await;
    let after = cache(&app).await;
    assert_eq!(after["mode"], "leaky", "{after}");
    assert_eq!(after["mode_source"], "environment");
    assert!(after["flipped_at"].is_null(), "{after}");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_flip_that_cannot_be_stored_changes_nothing(pool: MySqlPool) {
    // The app's MySQL through a proxy the test cuts.
    let proxy = FaultProxy::start("127.0.0.1:3306".parse().unwrap()).await;
    let options = (*pool.connect_options())
        .clone()
        .host("127.0.0.1")
        .port(proxy.addr.port());
    let through_proxy = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_millis(200))
        .connect_lazy_with(options);
    let app = spawn_app_with(through_proxy, AppOptions::default()).await;
    assert_eq!(cache(&app).await["mode"], "fixed");

    proxy.cut();
    let (status, error) = flip(&app, "moka").await;
    assert_eq!(status, 503, "{error}");
    assert_eq!(error["error"]["code"], "dependency_unavailable");
    let unchanged = cache(&app).await;
    assert_eq!(unchanged["mode"], "fixed", "not swapped: {unchanged}");
    assert_eq!(unchanged["mode_source"], "environment");
    assert!(unchanged["flipped_at"].is_null(), "{unchanged}");
    assert_eq!(stored_flips(&pool).await, 0, "nothing stored either");

    // MySQL back: the same flip goes through.
    proxy.restore();
    let (status, flipped) = flip(&app, "moka").await;
    assert_eq!(status, 200, "{flipped}");
    assert_eq!(flipped["mode"], "moka");
    assert_eq!(stored_flips(&pool).await, 1);
}

/// Starting in the environment's mode without knowing whether a flip is stored would be the
/// silent undo all this prevents: the start fails instead, and says why.
#[sqlx::test(migrations = "../migrations")]
async fn the_start_fails_when_the_stored_mode_cannot_be_read(pool: MySqlPool) {
    let redis = || {
        redis_store(
            &redis_url(),
            &format!("test:cache_flip:{}:", std::process::id()),
            Duration::from_millis(50),
        )
    };

    // MySQL unreachable.
    let proxy = FaultProxy::start("127.0.0.1:3306".parse().unwrap()).await;
    proxy.cut();
    let unreachable = sqlx::mysql::MySqlPoolOptions::new()
        .acquire_timeout(Duration::from_millis(200))
        .connect_lazy_with(
            (*pool.connect_options())
                .clone()
                .host("127.0.0.1")
                .port(proxy.addr.port()),
        );
    let error = AppState::restore(unreachable, redis(), settings(), HttpLimits::default())
        .await
        .err()
        .expect("no start without MySQL");
    assert!(
        error.to_string().contains("cannot read the cache mode"),
        "{error:#}"
    );

    // A stored mode this build does not know.
    sqlx::query(
        "INSERT INTO runtime_settings (name, value, updated_at) \
         VALUES ('cache_mode', 'lru', '2030-01-01 10:00:00')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let error = AppState::restore(pool, redis(), settings(), HttpLimits::default())
        .await
        .err()
        .expect("no start on an unknown stored mode");
    assert!(format!("{error:#}").contains("\"lru\""), "{error:#}");
}
