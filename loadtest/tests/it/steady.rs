//! A steady server: the generator must keep the target rate.

use crate::helpers;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn achieved_rate_is_within_one_percent_of_target() {
    let url = helpers::spawn(helpers::ok_app()).await;
    let r = helpers::run(&[
        "--target",
        &url,
        "--rate",
        "400",
        "--duration",
        "4s",
        "--connections",
        "32",
    ])
    .await;
    let s = &r.summary;
    let g = &s.generator;
    assert_eq!(g.scheduled, 1600);
    assert_eq!(s.totals.counts.sent, 1600);
    assert_eq!(g.dropped, 0);
    // Requests actually handed to a connection within the 4 s, vs intended.
    let sent_in_time = s.runs[0].sent_in_time as f64;
    assert!(
        (sent_in_time / 1600.0 - 1.0).abs() <= 0.01,
        "sent in time {sent_in_time}"
    );
    assert!(
        (g.achieved_ratio - 1.0).abs() <= 0.01,
        "ratio {}",
        g.achieved_ratio
    );
    assert_eq!(s.totals.counts.good, 1600);
    assert_eq!(s.verdict.exit_code, loadtest::EXIT_OK);
    // Windows: the 1 s rows add up to the totals.
    let sum: u64 = s.windows_1s.iter().map(|w| w.counts.sent).sum();
    assert_eq!(sum, 1600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_ramp_the_rate() {
    let url = helpers::spawn(helpers::ok_app()).await;
    // 0 -> 100/s over 1 s (50 requests), then 100 -> 300/s over 1 s (200).
    let r = helpers::run(&[
        "--target",
        &url,
        "--stages",
        "1s:100,1s:300",
        "--connections",
        "16",
    ])
    .await;
    let s = &r.summary;
    assert_eq!(s.generator.scheduled, 250);
    assert_eq!(s.totals.counts.good, 250);
    // Windows are whole unix seconds, so the run's first one is cut short and
    // its last may be a sliver; the second window always holds more requests
    // than the first one because the rate only rises.
    let sent: Vec<u64> = s.windows_1s.iter().map(|w| w.counts.sent).collect();
    assert!(sent.len() >= 2 && sent[1] > sent[0], "{sent:?}");
}
