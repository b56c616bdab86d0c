//! Property tests: arbitrary path ids, query strings and JSON bodies, sent through the real router
//! (`tower::ServiceExt::oneshot`, real MySQL and Redis), never make the service panic or fail:
//! every answer is a success or a 4xx with the JSON error shape.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reservation_service::routes;
use reservation_service::server::HttpLimits;
use serde_json::Value;
use sqlx::MySqlPool;
use tower::ServiceExt;

use crate::app::{ADMIN_TOKEN, state};

const CASES: u32 = 300;

/// Percent-encodes every byte but the unreserved ones, so any string makes a valid URI.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A path segment: arbitrary text, encoded; or raw URI characters, including bad escapes such
/// as `%zz` or `%FF` (not UTF-8 once decoded); or a number near the edges of u64.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>().prop_map(|s| encode(&s)),
        "[A-Za-z0-9._~!$&'()*+,;=:@%-]{0,24}",
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[0-9]{18,40}",
        Just(String::new()),
    ]
}

/// A query string: pairs of arbitrary (encoded) keys and values, the real keys among them.
fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("user_id".to_owned()),
        Just("limit".to_owned()),
        Just("cursor".to_owned()),
        any::<String>().prop_map(|s| encode(&s)),
    ];
    let value = prop_oneof![
        any::<String>().prop_map(|s| encode(&s)),
        segment(),
        Just("%FF%FE".to_owned()),
    ];
    prop_oneof![
        proptest::collection::vec((key, value), 0..5).prop_map(|pairs| {
            pairs
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        }),
        "[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,40}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Bodies for `POST /v1/activities`: near-valid objects with arbitrary field values (where
/// validation and the database meet: long, blank, non-BMP or control-character titles,
/// out-of-range dates and capacities), arbitrary JSON, and arbitrary bytes.
fn activity_body() -> impl Strategy<Value = Vec<u8>> {
    let title = prop_oneof![
        2 => any::<String>().prop_map(Value::from),
        4 => "\\PC{0,210}".prop_map(Value::from),
        4 => "[😀𝄞a \u{200b}\u{fffd}]{0,210}".prop_map(Value::from),
        1 => json_value(),
    ];
    let starts_at = prop_oneof![
        6 => Just(Value::from("2030-01-01T10:00:00Z")),
        1 => any::<String>().prop_map(Value::from),
        2 => (-300_000i64..300_000, 0u32..13, 0u32..32).prop_map(|(y, m, d)| Value::from(
            format!("{y:04}-{m:02}-{d:02}T00:00:00Z")
        )),
        1 => json_value(),
    ];
    let number = prop_oneof![
        Just(Value::Null),
        any::<u32>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        json_value(),
    ];
    let status = prop_oneof![
        3 => Just(Value::from("open")),
        3 => Just(Value::from("closed")),
        1 => json_value(),
    ];
    let object = (
        title,
        starts_at,
        number,
        status,
        proptest::bool::weighted(0.1),
    )
        .prop_map(|(title, starts_at, capacity, status, extra)| {
            let mut body = serde_json::json!({
                "title": title, "starts_at": starts_at, "capacity": capacity, "status": status,
            });
            if extra {
                body["unexpected"] = Value::from(1);
            }
            serde_json::to_vec(&body).unwrap()
        });
    prop_oneof![
        4 => object,
        1 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => proptest::collection::vec(any::<u8>(), 0..256),
    ]
}

fn admin_body() -> impl Strategy<Value = Vec<u8>> {
    let mode = prop_oneof![
        prop_oneof![Just("leaky"), Just("fixed"), Just("moka")].prop_map(Value::from),
        json_value(),
    ];
    prop_oneof![
        mode.prop_map(|v| serde_json::to_vec(&serde_json::json!({ "mode": v })).unwrap()),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

/// Sends one request; fails the case unless the answer is a success or a JSON 4xx error.
async fn check(app: &Router, request: Request<Body>) -> Result<u16, TestCaseError> {
    let what = format!("{} {}", request.method(), request.uri());
    let response = app
        .clone()
        .oneshot(request)
        .await
        .map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map_err(|e| TestCaseError::fail(format!("{what}: body: {e}")))?;
    let text = String::from_utf8_lossy(&bytes);
    prop_assert!(status < 500, "{what}: status {status}: {text}");
    prop_assert!(
        content_type.starts_with("application/json"),
        "{what}: content type {content_type:?}: {text}"
    );
    let body: Value = serde_json::from_slice(&bytes)
        .map_err(|_| TestCaseError::fail(format!("{what}: status {status}: not JSON: {text}")))?;
    if status >= 400 {
        prop_assert!(
            body["error"]["code"]
                .as_str()
                .is_some_and(|c| !c.is_empty()),
            "{what}: {status}: {text}"
        );
        prop_assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {status}: {text}"
        );
    }
    Ok(status)
}

fn request(method: Method, uri: &str, body: Option<(&str, Vec<u8>)>) -> Option<Request<Body>> {
    let mut builder = Request::builder().method(method).uri(uri);
    let body = match body {
        Some((content_type, bytes)) => {
            builder = builder.header(header::CONTENT_TYPE, content_type);
            Body::from(bytes)
        }
        None => Body::empty(),
    };
    // A string the http crate refuses as a URI never reaches a server either (hyper answers 400).
    builder.body(body).ok()
}

/// Runs `property` for `CASES` generated inputs on a blocking thread, driving each request on the
/// test's runtime, so proptest can shrink a failure to its smallest input.
async fn run<M, S, F>(name: &'static str, strategy: M, property: F)
where
    M: FnOnce() -> S + Send + 'static,
    S: Strategy,
    S::Value: std::fmt::Debug,
    F: Fn(S::Value) -> Vec<Request<Body>> + Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    let app = APP.with(|a| a.borrow().clone()).expect("app set");
    let result = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(Config {
            cases: CASES,
            failure_persistence: None,
            ..Config::default()
        });
        let statuses = std::cell::RefCell::new(std::collections::BTreeMap::<u16, u32>::new());
        let result = runner
            .run(&strategy(), |input| {
                for request in property(input) {
                    let status = handle.block_on(check(&app, request))?;
                    *statuses.borrow_mut().entry(status).or_default() += 1;
                }
                Ok(())
            })
            .map_err(|error| error.to_string());
        (result, statuses.into_inner())
    })
    .await
    .unwrap();
    let (result, statuses) = result;
    // Shown with `--nocapture`: which answers the generated inputs reached.
    println!("{name}: statuses {statuses:?}");
    if let Err(error) = result {
        panic!("{name}: {error}");
    }
}

thread_local! {
    static APP: std::cell::RefCell<Option<Router>> = const { std::cell::RefCell::new(None) };
}

fn set_app(pool: MySqlPool) {
    let app = routes::app(state(pool, HttpLimits::default()));
    APP.with(|a| *a.borrow_mut() = Some(app));
}

#[sqlx::test(migrations = "../migrations")]
async fn arbitrary_path_ids_get_json_answers(pool: MySqlPool) {
    set_app(pool);
    run(
        "path ids",
        || (segment(), segment()),
        |(a, b)| {
            [
                (Method::GET, format!("/v1/activities/{a}")),
                (Method::GET, format!("/v1/activities/{a}/page?user_id=1")),
                (Method::PUT, format!("/v1/activities/{a}/reservations/{b}")),
                (Method::GET, format!("/v1/activities/{a}/reservations/{b}")),
                (
                    Method::DELETE,
                    format!("/v1/activities/{a}/reservations/{b}"),
                ),
                (Method::GET, format!("/v1/users/{a}/reservations")),
                (Method::GET, format!("/v1/{a}/{b}")),
            ]
            .into_iter()
            .filter_map(|(method, uri)| request(method, &uri, None))
            .collect()
        },
    )
    .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn arbitrary_query_strings_get_json_answers(pool: MySqlPool) {
    set_app(pool);
    run("query strings", query, |q| {
        [
            format!("/v1/activities/1/page?{q}"),
            format!("/v1/users/1/reservations?{q}"),
            format!("/v1/activities/1?{q}"),
        ]
        .into_iter()
        .filter_map(|uri| request(Method::GET, &uri, None))
        .collect()
    })
    .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn arbitrary_json_bodies_get_json_answers(pool: MySqlPool) {
    set_app(pool);
    let content_type = || {
        prop_oneof![
            6 => Just("application/json"),
            1 => Just("application/json; charset=utf-8"),
            1 => Just("text/plain"),
            1 => Just("application/x-www-form-urlencoded"),
        ]
    };
    run(
        "json bodies",
        move || (activity_body(), admin_body(), content_type()),
        |(activity, admin, content_type)| {
            let mut requests: Vec<_> = [
                request(
                    Method::POST,
                    "/v1/activities",
                    Some((content_type, activity)),
                ),
                request(Method::PUT, "/admin/cache", Some((content_type, admin))),
            ]
            .into_iter()
            .flatten()
            .collect();
            requests[1].headers_mut().insert(
                header::AUTHORIZATION,
                format!("Bearer {ADMIN_TOKEN}").parse().unwrap(),
            );
            requests
        },
    )
    .await;
}

/// Found by the property test above: sqlx sent `starts_at` as a MySQL TIMESTAMP, which MariaDB
/// turned into NULL outside 1970..2038-01-19, so valid dates got a 500 (and related activities
/// after 2038 were never found). The whole documented range now round-trips.
#[sqlx::test(migrations = "../migrations")]
async fn starts_at_round_trips_across_the_documented_range(pool: MySqlPool) {
    let app = routes::app(state(pool, HttpLimits::default()));
    let mut ids = Vec::new();
    for starts_at in [
        "1000-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "2038-01-19T03:14:08Z",
        "2100-06-01T12:00:00Z",
        "2100-06-02T12:00:00Z",
        "9999-12-31T23:59:59.999999Z",
    ] {
        let body = serde_json::json!({"title": "t", "starts_at": starts_at});
        let request = request(
            Method::POST,
            "/v1/activities",
            Some(("application/json", serde_json::to_vec(&body).unwrap())),
        )
        .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let created: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(status, 201, "{starts_at}: {created}");
        assert_eq!(created["starts_at"], starts_at);
        ids.push(created["id"].as_u64().unwrap());
    }
    let request = request(
        Method::GET,
        &format!("/v1/activities/{}/page?user_id=1", ids[3]),
        None,
    );
    let response = app.clone().oneshot(request.unwrap()).await.unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let page: Value = serde_json::from_slice(&bytes).unwrap();
    let related: Vec<u64> = page["related"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert!(related.contains(&ids[4]), "{page}");
}
