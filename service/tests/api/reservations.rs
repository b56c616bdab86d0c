use std::collections::HashSet;

use leaklab_contract::{ReservationAck, ReservationState};
use sqlx::MySqlPool;

use crate::helpers::spawn_app;

#[sqlx::test(migrations = "../migrations")]
async fn reserve_is_idempotent(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let id = app.create_activity(Some(5)).await;
    let path = format!("/v1/activities/{id}/reservations/42");

    let (first_status, first) = app.put(&path).await;
    assert_eq!(first_status, 201, "{first}");
    assert_eq!(first["state"], "active");
    let (again_status, again) = app.put(&path).await;
    assert_eq!(again_status, 200);
    assert_eq!(
        again["id"], first["id"],
        "a repeat returns the same reservation"
    );
    assert_eq!(again["version"], first["version"]);

    let (status, read) = app.get(&path).await;
    assert_eq!(status, 200);
    assert_eq!(read["id"], first["id"]);

    let rows: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM reservations WHERE activity_id = ? AND user_id = 42",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(rows, 1);
    let count: u32 = sqlx::query_scalar("SELECT reserved_count FROM activities WHERE id = ?")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "a repeat does not count twice");
}

#[sqlx::test(migrations = "../migrations")]
async fn cancel_is_idempotent_and_reserve_again_reactivates(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let id = app.create_activity(Some(1)).await;
    let path = format!("/v1/activities/{id}/reservations/7");

    assert_eq!(app.delete(&path).await.0, 404, "nothing to cancel yet");
    let (_, reserved) = app.put(&path).await;
    let (status, cancelled) = app.delete(&path).await;
    assert_eq!(status, 200);
    assert_eq!(cancelled["state"], "cancelled");
    // What the load generator's --verify reads of an answer (leaklab-contract), read from ours.
    let ack: ReservationAck = serde_json::from_value(cancelled.clone()).expect("a ReservationAck");
    assert_eq!(ack.id, reserved["id"].as_u64().unwrap());
    assert_eq!(ack.state, ReservationState::Cancelled);
    assert_eq!(ack.version, cancelled["version"].as_u64().unwrap());
    let (status, again) = app.delete(&path).await;
    assert_eq!(status, 200);
    assert_eq!(
        again["version"], cancelled["version"],
        "a repeat changes nothing"
    );

    // The seat was freed: another user fits, then the first one no longer does.
    assert_eq!(
        app.put(&format!("/v1/activities/{id}/reservations/8"))
            .await
            .0,
        201
    );
    let (status, full) = app.put(&path).await;
    assert_eq!(status, 409);
    assert_eq!(full["error"]["code"], "activity_full");
    app.delete(&format!("/v1/activities/{id}/reservations/8"))
        .await;
    let (status, back) = app.put(&path).await;
    assert_eq!(status, 201);
    assert_eq!(back["id"], reserved["id"], "the same row is reactivated");
}

#[sqlx::test(migrations = "../migrations")]
async fn concurrent_reservers_never_overbook(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let id = app.create_activity(Some(10)).await;
    let requests = (1..=50u64).map(|user| {
        let client = app.client.clone();
        let url = app.url(&format!("/v1/activities/{id}/reservations/{user}"));
        tokio::spawn(async move { client.put(url).send().await.unwrap().status().as_u16() })
    });
    let statuses: Vec<u16> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 201).count(), 10);
    assert_eq!(statuses.iter().filter(|&&s| s == 409).count(), 40);

    let active: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM reservations WHERE activity_id = ? AND state = 'active'",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(active, 10);
    let (_, read) = app.get(&format!("/v1/activities/{id}")).await;
    assert_eq!(read["reserved_count"], 10);
}

#[sqlx::test(migrations = "../migrations")]
async fn closed_activities_refuse_reservations(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let (_, created) = app
        .post_json(
            "/v1/activities",
            &serde_json::json!({"title": "Past", "starts_at": "2030-01-01T00:00:00Z", "status": "closed"}),
        )
        .await;
    let id = created["id"].as_u64().unwrap();
    let (status, error) = app
        .put(&format!("/v1/activities/{id}/reservations/1"))
        .await;
    assert_eq!(status, 409);
    assert_eq!(error["error"]["code"], "activity_closed");
    let (status, error) = app.put("/v1/activities/999999/reservations/1").await;
    assert_eq!(status, 404, "{error}");
}

#[sqlx::test(migrations = "../migrations")]
async fn user_reservations_paginate_without_gaps_or_repeats(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let mut expected = HashSet::new();
    for _ in 0..23 {
        let id = app.create_activity(None).await;
        app.put(&format!("/v1/activities/{id}/reservations/5"))
            .await;
        expected.insert(id);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/users/5/reservations?limit=10&cursor={c}"),
            None => "/v1/users/5/reservations?limit=10".to_owned(),
        };
        let (status, page) = app.get(&path).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            assert_eq!(item["user_id"], 5);
            seen.push(item["activity_id"].as_u64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 23);
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), expected);
}
