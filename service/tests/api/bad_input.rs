use sqlx::MySqlPool;

use crate::helpers::spawn_app;

#[sqlx::test(migrations = "../migrations")]
async fn malformed_requests_get_documented_4xx(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            app.client.get(app.url("/v1/activities/abc")),
            400,
            "invalid_path",
        ),
        (
            app.client.get(app.url("/v1/activities/-1")),
            400,
            "invalid_path",
        ),
        (
            app.client
                .get(app.url("/v1/activities/99999999999999999999999")),
            400,
            "invalid_path",
        ),
        (
            app.client.get(app.url("/v1/activities/1/page")),
            400,
            "invalid_query",
        ),
        (
            app.client.get(app.url("/v1/activities/1/page?user_id=x")),
            400,
            "invalid_query",
        ),
        (
            app.client.put(app.url("/v1/activities/1/reservations/%00")),
            400,
            "invalid_path",
        ),
        (
            app.client.get(app.url("/v1/users/1/reservations?limit=0")),
            400,
            "invalid_query",
        ),
        (
            app.client
                .get(app.url("/v1/users/1/reservations?limit=101")),
            400,
            "invalid_query",
        ),
        (
            app.client
                .get(app.url("/v1/users/1/reservations?cursor=zz")),
            400,
            "invalid_query",
        ),
        (app.client.get(app.url("/no/such/route")), 404, "not_found"),
        (
            app.client.patch(app.url("/v1/activities/1")),
            405,
            "method_not_allowed",
        ),
        (
            app.client
                .post(app.url("/v1/activities"))
                .header("content-type", "application/json")
                .body("{\"title\": "),
            400,
            "malformed_json",
        ),
        (
            app.client.post(app.url("/v1/activities")).body("title=x"),
            415,
            "unsupported_media_type",
        ),
        (
            app.client
                .post(app.url("/v1/activities"))
                .header("content-type", "application/json")
                .body(format!("{{\"title\": \"{}\"}}", "a".repeat(64 * 1024))),
            413,
            "payload_too_large",
        ),
    ];
    for (request, expected, code) in cases {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, expected, "{text}");
        let body: serde_json::Value = serde_json::from_str(&text).expect("a JSON error body");
        assert_eq!(body["error"]["code"], code, "{text}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn openapi_describes_the_api(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let (status, spec) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    for path in [
        "/v1/activities",
        "/v1/activities/{id}",
        "/v1/activities/{id}/page",
        "/v1/activities/{id}/reservations/{user_id}",
        "/v1/users/{user_id}/reservations",
        "/healthz",
        "/readyz",
        "/admin/cache",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from the spec"
        );
    }
}
