//! Graceful shutdown under load: requests the server accepted finish with their real answer, new
//! connections are refused once the listener is closed, nothing gets a 5xx.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reservation_service::startup;
use reservation_service::state::AppState;
use sqlx::MySqlPool;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::helpers::{FaultProxy, redis_addr, redis_store, settings};

/// How one request of the load ended.
#[derive(Debug)]
struct Sample {
    started: Instant,
    finished: Instant,
    result: Result<u16, reqwest::Error>,
}

#[sqlx::test(migrations = "../migrations")]
async fn shutdown_under_load_drains_accepted_requests_without_5xx(pool: MySqlPool) {
    // Every Redis answer 100 ms late, so that requests are in flight when the signal comes.
    let redis = FaultProxy::start(redis_addr()).await;
    redis.set_latency(Duration::from_millis(100));
    let redis = redis_store(
        &format!("redis://{}", redis.addr),
        &format!("test:shutdown:{}:", std::process::id()),
        Duration::from_secs(2),
    );
    let activity: u64 = sqlx::query(
        "INSERT INTO activities (title, starts_at) VALUES ('Shutdown', '2030-01-01 10:00:00')",
    )
    .execute(&pool)
    .await
    .unwrap()
    .last_insert_id();
    let settings = settings();
    let grace = settings.shutdown_grace;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(startup::run(
        listener,
        AppState::new(pool.clone(), redis, settings),
        async move {
            let _ = stopped.await;
        },
    ));

    // A fresh connection per request: a refused connection then means "after the listener
    // closed", not a kept-alive socket the server was closing.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let trigger_after = Duration::from_millis(800);
    let load_for = Duration::from_millis(1500);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut tasks = Vec::new();
    let mut stop = Some(stop);
    let mut trigger = None;
    let mut in_flight_at_trigger = 0;
    let mut n = 0u64;
    while started.elapsed() < load_for {
        tick.tick().await;
        if trigger.is_none() && started.elapsed() >= trigger_after {
            in_flight_at_trigger = in_flight.load(Ordering::SeqCst);
            trigger = Some(Instant::now());
            let _ = stop.take().unwrap().send(());
        }
        n += 1;
        // One reservation for four page views, every reservation a new user.
        let request = if n.is_multiple_of(5) {
            client.put(format!(
                "http://{addr}/v1/activities/{activity}/reservations/{n}"
            ))
        } else {
            client.get(format!(
                "http://{addr}/v1/activities/{activity}/page?user_id={n}"
            ))
        };
        let in_flight = in_flight.clone();
        tasks.push(tokio::spawn(async move {
            in_flight.fetch_add(1, Ordering::SeqCst);
            let started = Instant::now();
            let result = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    // The answer is complete only with its body.
                    response.bytes().await.map(|_| status)
                }
                Err(e) => Err(e),
            };
            in_flight.fetch_sub(1, Ordering::SeqCst);
            Sample {
                started,
                finished: Instant::now(),
                result,
            }
        }));
    }
    let trigger = trigger.expect("shutdown triggered during the load");
    let samples: Vec<Sample> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    tokio::time::timeout(grace * 2, server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
    let drained_in = trigger.elapsed();

    let answered: Vec<_> = samples
        .iter()
        .filter_map(|s| s.result.as_ref().ok().map(|&status| (s, status)))
        .collect();
    let errors: Vec<_> = samples
        .iter()
        .filter_map(|s| s.result.as_ref().err().map(|e| (s, e)))
        .collect();
    let refused = errors.iter().filter(|(_, e)| e.is_connect()).count();
    eprintln!(
        "{} requests: {} answered, {} connection errors ({} refused at connect); \
         {} in flight at the signal; server stopped {:?} after it",
        samples.len(),
        answered.len(),
        errors.len(),
        refused,
        in_flight_at_trigger,
        drained_in
    );

    // Accepted requests got their real answer: never a 5xx.
    let server_errors: Vec<u16> = answered
        .iter()
        .map(|&(_, status)| status)
        .filter(|&status| status >= 500)
        .collect();
    assert!(server_errors.is_empty(), "5xx answers: {server_errors:?}");
    // Requests well under way at the signal (sent at least 50 ms before it, still running at
    // it) completed with an answer: the drain waited for them.
    let settle = Duration::from_millis(50);
    let was_in_flight: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started + settle <= trigger && s.finished > trigger)
        .collect();
    assert!(
        !was_in_flight.is_empty() && in_flight_at_trigger > 0,
        "the signal came with requests in flight"
    );
    for s in &was_in_flight {
        assert!(s.result.is_ok(), "in-flight request failed: {:?}", s.result);
    }
    // Everything sent before the signal was accepted, hence answered.
    for s in samples.iter().filter(|s| s.started + settle <= trigger) {
        assert!(
            s.result.is_ok(),
            "request before the signal: {:?}",
            s.result
        );
    }
    // After the drain the listener is gone: later requests are connection errors, counted
    // apart, not answers.
    assert!(
        errors.iter().all(|(s, _)| s.started + settle > trigger),
        "only requests sent around or after the signal fail to connect"
    );
    assert!(
        refused > 0,
        "new connections are refused once the listener is closed"
    );
    assert!(
        drained_in < grace,
        "drained before the grace period ran out"
    );
    let reserved: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM reservations WHERE activity_id = ? AND state = 'active'",
    )
    .bind(activity)
    .fetch_one(&pool)
    .await
    .unwrap();
    let acknowledged = answered
        .iter()
        .filter(|&&(_, status)| status == 201)
        .count() as i64;
    assert_eq!(
        reserved, acknowledged,
        "every acknowledged reservation is stored, once"
    );
}
