//! A server that stalls once for 1 s: every request scheduled during the
//! stall must carry its wait in its latency (no coordinated omission), and
//! the windows of the stall must lose availability.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use tokio::time::Instant;

use crate::helpers::{self, unix_us};

#[derive(Clone)]
struct Stall {
    from: Instant,
    until: Instant,
}

/// Requests arriving inside [from, until) are held until `until`: one shared
/// release moment, like a barrier opened after 1 s.
fn stalling_app(stall: Arc<Stall>) -> Router {
    Router::new()
        .fallback(|State(s): State<Arc<Stall>>| async move {
            let now = Instant::now();
            if now >= s.from && now < s.until {
                tokio::time::sleep_until(s.until).await;
            }
            "ok"
        })
        .with_state(stall)
}

/// Returns (URL, stall start, stall end) with the stall times as unix µs.
async fn stalling_server(after: Duration) -> (String, i64, i64) {
    let from = Instant::now() + after;
    let from_unix = unix_us() + after.as_micros() as i64;
    let stall = Arc::new(Stall {
        from,
        until: from + Duration::from_secs(1),
    });
    (
        helpers::spawn(stalling_app(stall)).await,
        from_unix,
        from_unix + 1_000_000,
    )
}

/// Every request intended inside the stall must report (about) the time left
/// until the release: whether it waited at the server (many connections) or
/// in the generator's queue behind busy connections (few connections, the
/// classic coordinated-omission trap of closed-loop tools).
async fn stall_latencies(connections: &str) {
    let (url, from, until) = stalling_server(Duration::from_millis(1500)).await;
    // A quota longer than the stall: every request is answered, so we can
    // compare each one's latency with how long it had to wait.
    let r = helpers::run(&[
        "--target",
        &url,
        "--rate",
        "100",
        "--duration",
        "4s",
        "--quota",
        "3s",
        "--connections",
        connections,
        "--trace-slowest",
        "1000",
    ])
    .await;
    let s = &r.summary;
    assert_eq!(s.totals.counts.sent, 400);
    assert_eq!(s.totals.counts.good, 400);
    let in_stall: Vec<_> = s
        .traces
        .slowest
        .iter()
        .filter(|t| t.at_unix_us >= from + 20_000 && t.at_unix_us < until - 20_000)
        .collect();
    // ~100 requests were scheduled inside the stall (minus the 40 ms margins).
    assert!(
        (85..=100).contains(&in_stall.len()),
        "{} requests in the stall",
        in_stall.len()
    );
    for t in &in_stall {
        let wait_ms = (until - t.at_unix_us) as f64 / 1e3;
        assert!(
            t.latency_ms >= wait_ms - 25.0 && t.latency_ms <= wait_ms + 150.0,
            "request intended {wait_ms} ms before the release took {} ms",
            t.latency_ms
        );
    }
    // The window holding the stall start shows near-second latencies.
    let worst = s
        .windows_1s
        .iter()
        .filter_map(|w| w.latency.max_ms)
        .fold(0.0, f64::max);
    assert!(
        (900.0..1200.0).contains(&worst),
        "max window latency {worst}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_counts_the_stall_from_the_intended_time() {
    stall_latencies("300").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_busy_connection_counts_too() {
    stall_latencies("4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stall_windows_lose_availability() {
    let (url, from, until) = stalling_server(Duration::from_millis(1500)).await;
    let r = helpers::run(&[
        "--target",
        &url,
        "--rate",
        "100",
        "--duration",
        "4s",
        "--connections",
        "300",
    ])
    .await;
    let s = &r.summary;
    // Requests intended up to 250 ms before the release cannot meet the
    // 250 ms quota: about 75 of the 100 scheduled during the stall.
    let t = &s.totals.counts;
    assert!((65..=85).contains(&t.timeout), "timeouts {}", t.timeout);
    assert_eq!(t.sent, 400);
    assert_eq!(s.verdict.exit_code, loadtest::EXIT_SLO_MISSED);
    // Every 1 s dip overlaps the stall and the stall's windows are all dips.
    assert!(!s.verdict.dips_1s.is_empty());
    for d in &s.verdict.dips_1s {
        let (a, b) = (d.start_unix * 1_000_000, (d.start_unix + 1) * 1_000_000);
        assert!(a < until && b > from, "dip at {} outside the stall", d.at);
    }
    let bad_in_dips: u64 = s.verdict.dips_1s.iter().map(|d| d.timeout).sum();
    assert_eq!(bad_in_dips, t.timeout);
    // Timed-out requests are recorded at their give-up time, i.e. >= quota.
    let p999 = s.totals.latency.p999_ms.unwrap();
    assert!(p999 >= 249.0, "p99.9 {p999}");
}
