use serde_json::json;
use sqlx::MySqlPool;

use crate::helpers::{ADMIN_TOKEN, AppOptions, body, settings, spawn_app, spawn_app_with};

#[sqlx::test(migrations = "../migrations")]
async fn admin_routes_need_the_token(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let url = app.url("/admin/cache");
    let (status, _) = body(app.client.get(&url).send().await.unwrap()).await;
    assert_eq!(status, 401);
    let (status, _) = body(
        app.client
            .get(&url)
            .bearer_auth("test-admin-tokeX")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = body(
        app.client
            .put(&url)
            .json(&json!({"mode": "moka"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401, "a swap without the token is refused");
    let (status, stats) = body(
        app.client
            .get(&url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(stats["mode"], "fixed", "unchanged by refused swaps");
}

#[sqlx::test(migrations = "../migrations")]
async fn put_admin_cache_swaps_the_mode(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let id = app.create_activity(None).await;
    app.get(&format!("/v1/activities/{id}/page?user_id=1"))
        .await;
    let url = app.url("/admin/cache");
    for mode in ["leaky", "moka", "fixed"] {
        let (status, stats) = body(
            app.client
                .put(&url)
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({ "mode": mode }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{stats}");
        assert_eq!(stats["mode"], mode);
        assert_eq!(stats["items"], 0, "a swapped-in cache starts empty");
        let (_, page) = app
            .get(&format!("/v1/activities/{id}/page?user_id=1"))
            .await;
        assert_ne!(page["sources"]["activity"], "memory");
        let (_, stats) = body(
            app.client
                .get(&url)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(stats["mode"], mode);
        // Counted at once in every mode (moka's item count is only eventually consistent).
        assert!(stats["misses"].as_u64().unwrap() >= 1, "{stats}");
    }
    let (status, error) = body(
        app.client
            .put(&url)
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"mode": "lru"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{error}");
}

#[sqlx::test(migrations = "../migrations")]
async fn admin_routes_are_disabled_without_a_token(pool: MySqlPool) {
    let mut settings = settings();
    settings.admin_token = None;
    let app = spawn_app_with(
        pool,
        AppOptions {
            settings,
            ..AppOptions::default()
        },
    )
    .await;
    let (status, _) = body(
        app.client
            .get(app.url("/admin/cache"))
            .bearer_auth("anything")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
}
