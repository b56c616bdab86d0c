//! --flip-at calls PUT /admin/cache once, at the right moment, with the token.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::put;

use crate::helpers::{self, unix_us};

#[derive(Default)]
struct Seen {
    puts: Vec<(i64, Option<String>, serde_json::Value)>,
    gets: usize,
}

fn app(seen: Arc<Mutex<Seen>>) -> Router {
    Router::new()
        .route(
            "/admin/cache",
            put(
                |State(s): State<Arc<Mutex<Seen>>>,
                 h: HeaderMap,
                 body: axum::Json<serde_json::Value>| async move {
                    let auth = h
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_string());
                    s.lock()
                        .unwrap()
                        .puts
                        .push((unix_us(), auth, body.0.clone()));
                    axum::Json(serde_json::json!({"mode": body.0["mode"], "items": 10}))
                },
            )
            .get(|State(s): State<Arc<Mutex<Seen>>>| async move {
                s.lock().unwrap().gets += 1;
                axum::Json(serde_json::json!({"mode": "leaky", "nodes": 4242}))
            }),
        )
        .fallback(|| async { "page" })
        .with_state(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flip_calls_the_admin_endpoint_at_the_right_moment() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let url = helpers::spawn(app(seen.clone())).await;
    let r = helpers::run(&[
        "--target",
        &url,
        "--rate",
        "100",
        "--duration",
        "3s",
        "--flip-at",
        "1500ms",
        "--flip-to",
        "fixed",
        "--admin-token",
        "s3cret",
    ])
    .await;
    let s = &r.summary;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.puts.len(), 1);
    let (at, auth, body) = &seen.puts[0];
    assert_eq!(auth.as_deref(), Some("Bearer s3cret"));
    assert_eq!(body, &serde_json::json!({"mode": "fixed"}));
    let offset = (*at - s.runs[0].start_unix_us) as f64 / 1e6;
    assert!(
        (1.5..1.65).contains(&offset),
        "flip reached the server at +{offset}s"
    );
    // Stats read before the flip and at the end.
    assert_eq!(seen.gets, 2);
    let f = s.flip.as_ref().unwrap();
    assert!(f.ok && f.status == Some(200));
    assert!((f.offset_s - 1.5).abs() < 0.05);
    assert_eq!(f.cache_before.as_ref().unwrap()["nodes"], 4242);
    assert_eq!(s.runs[0].cache_end.as_ref().unwrap()["nodes"], 4242);
    let (b, a) = (f.before.as_ref().unwrap(), f.after.as_ref().unwrap());
    assert!(b.counts.sent > 0 && a.counts.sent > 0);
    assert!(b.counts.sent + a.counts.sent <= 300);
    assert!(loadtest::report::html::report_html(s).contains("class=\"flip\""));
}
