use serde_json::json;
use sqlx::MySqlPool;

use crate::helpers::spawn_app;

#[sqlx::test(migrations = "../migrations")]
async fn create_then_read_an_activity(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let (status, created) = app
        .post_json(
            "/v1/activities",
            &json!({"title": "  Jazz night ", "starts_at": "2030-05-01T19:30:00Z", "capacity": 40}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["title"], "Jazz night");
    assert_eq!(created["status"], "open");
    assert_eq!(created["reserved_count"], 0);
    let id = created["id"].as_u64().unwrap();

    let (status, read) = app.get(&format!("/v1/activities/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(read["capacity"], 40);
    assert_eq!(read["starts_at"], "2030-05-01T19:30:00Z");

    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM activities WHERE id = ?")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn reserved_count_is_live(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let id = app.create_activity(None).await;
    for user in 1..=3 {
        assert_eq!(
            app.put(&format!("/v1/activities/{id}/reservations/{user}"))
                .await
                .0,
            201
        );
    }
    app.delete(&format!("/v1/activities/{id}/reservations/2"))
        .await;
    let (_, read) = app.get(&format!("/v1/activities/{id}")).await;
    assert_eq!(read["reserved_count"], 2);
}

#[sqlx::test(migrations = "../migrations")]
async fn invalid_activities_are_refused_with_422(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    for body in [
        json!({"title": "   ", "starts_at": "2030-01-01T00:00:00Z"}),
        json!({"title": "x".repeat(201), "starts_at": "2030-01-01T00:00:00Z"}),
        json!({"title": "ok", "starts_at": "not a date"}),
        json!({"title": "ok", "starts_at": "2030-01-01T00:00:00Z", "capacity": -1}),
        json!({"title": "ok", "starts_at": "2030-01-01T00:00:00Z", "status": "maybe"}),
        json!({"title": "ok", "starts_at": "2030-01-01T00:00:00Z", "extra": true}),
        json!({"starts_at": "2030-01-01T00:00:00Z"}),
        json!([1, 2, 3]),
    ] {
        let (status, error) = app.post_json("/v1/activities", &body).await;
        assert_eq!(status, 422, "{body} -> {error}");
        assert_eq!(error["error"]["code"], "validation_failed");
    }
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM activities")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing invalid was stored");
}
