use sqlx::MySqlPool;

use crate::helpers::spawn_app;

#[sqlx::test(migrations = "../migrations")]
async fn page_reads_through_memory_redis_and_mysql(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let id = app.create_activity(Some(3)).await;
    let related: Vec<u64> = {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(app.create_activity(None).await);
        }
        ids
    };
    let path = format!("/v1/activities/{id}/page?user_id=9");

    let (status, first) = app.get(&path).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["sources"]["activity"], "mysql");
    assert_eq!(first["reserved_count"], 0);
    assert_eq!(first["user"]["reservation"], "none");
    let shown: Vec<u64> = first["related"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(shown, related, "the next activities by start time");

    let (_, second) = app.get(&path).await;
    assert_eq!(second["sources"]["activity"], "memory");

    // A write shows on the next view: the counter and the user's state are live.
    assert_eq!(
        app.put(&format!("/v1/activities/{id}/reservations/9"))
            .await
            .0,
        201
    );
    let (_, after) = app.get(&path).await;
    assert_eq!(after["reserved_count"], 1);
    assert_eq!(after["user"]["reservation"], "active");
    assert_eq!(after["sources"]["hot_state"], "redis");
}

#[sqlx::test(migrations = "../migrations")]
async fn page_of_a_missing_activity_is_404(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let (status, error) = app.get("/v1/activities/424242/page?user_id=1").await;
    assert_eq!(status, 404);
    assert_eq!(error["error"]["code"], "not_found");
}
