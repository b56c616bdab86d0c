//! Verdict, dips and merge on hand-made recordings with known answers.

use loadtest::merge;
use loadtest::recording::{Counts, Recording, Window, encode_hist, new_hist};
use loadtest::report;
use loadtest::schedule::SchedulerStats;
use loadtest::summary::{self, Parts, RunInfo, Summary};
use loadtest::verdict::Outcome;
use loadtest::workload::Scenario;
use loadtest::{EXIT_INCONCLUSIVE, EXIT_OK, EXIT_SLO_MISSED};

use crate::helpers::tempdir;

pub const T0: i64 = 1_700_000_000;

/// A 1 s window: `good` answers at `ms`, `timeouts` given up at 250 ms, `errors` 5xx at `ms`.
pub fn window(good: u64, timeouts: u64, errors: u64, ms: u64) -> Window {
    let mut h = new_hist();
    h.record_n(ms * 1000, good + errors).unwrap();
    h.record_n(250_000, timeouts).unwrap();
    let counts = Counts {
        sent: good + timeouts + errors,
        good,
        timeout: timeouts,
        server_error: errors,
        ..Counts::default()
    };
    Window {
        counts,
        hist: encode_hist(&h),
    }
}

pub fn run_info(start_s: i64, secs: i64, rate: f64) -> RunInfo {
    RunInfo {
        target: "http://127.0.0.1:1".into(),
        scenario: Scenario::Page,
        policy: format!("constant {rate}/s for {secs}s"),
        stages: None,
        duration_s: secs as f64,
        connections: 8,
        seed: 1,
        activities: 10,
        users: 10,
        zipf: 1.0,
        trace_sample: 1.0,
        lag_threshold_ms: 10.0,
        start_unix_us: start_s * 1_000_000,
        end_unix_us: (start_s + secs) * 1_000_000,
        target_rate: rate,
        achieved_rate: rate,
        sent_in_time: (rate * secs as f64) as u64,
        scheduler: SchedulerStats::default(),
        late_results: 0,
        cache_end: None,
    }
}

pub fn build(rec: &Recording, runs: Vec<RunInfo>) -> Summary {
    summary::build(
        rec,
        Parts {
            runs,
            quota_ms: 250.0,
            slo: 0.999,
            jaeger_url: "http://jaeger:16686".into(),
            slowest: vec![],
            failed: vec![],
            flip: None,
        },
    )
    .unwrap()
}

/// Ten seconds of 1000 good requests; one second with 5 timeouts (a dip),
/// one with exactly 0.999 (not a dip: the SLO is met there).
pub fn ten_seconds() -> Recording {
    let mut rec = Recording::default();
    for s in 0..10 {
        let w = match s {
            4 => window(995, 5, 0, 10),
            7 => window(999, 0, 1, 10),
            _ => window(1000, 0, 0, 10),
        };
        rec.windows.insert(T0 + s, w);
    }
    rec
}

#[test]
fn verdict_passes_over_the_run_and_lists_the_one_dip() {
    let s = build(&ten_seconds(), vec![run_info(T0, 10, 1000.0)]);
    assert_eq!(s.totals.counts.sent, 10_000);
    assert_eq!(s.totals.bad, 6);
    assert!((s.totals.availability.unwrap() - 0.9994).abs() < 1e-9);
    assert_eq!(s.verdict.outcome, Outcome::Pass);
    assert_eq!(s.verdict.exit_code, EXIT_OK);
    let dips: Vec<i64> = s.verdict.dips_1s.iter().map(|d| d.start_unix).collect();
    assert_eq!(dips, vec![T0 + 4]);
    assert_eq!(s.verdict.dips_1s[0].timeout, 5);
    assert_eq!(s.verdict.dips_1s[0].offset_s, 4.0);
    assert!(s.verdict.dips_10s.is_empty());
    assert_eq!(s.windows_10s.len(), 1);
    assert_eq!(s.windows_10s[0].counts.sent, 10_000);
}

#[test]
fn verdict_fails_when_the_run_misses_the_slo() {
    let mut rec = ten_seconds();
    rec.windows.insert(T0 + 5, window(900, 60, 40, 10));
    let s = build(&rec, vec![run_info(T0, 10, 1000.0)]);
    assert_eq!(s.verdict.outcome, Outcome::Fail);
    assert_eq!(s.verdict.exit_code, EXIT_SLO_MISSED);
    assert_eq!(s.verdict.dips_1s.len(), 2);
    assert_eq!(s.verdict.dips_10s.len(), 1);
    // p99.9 over the run sees the timeouts at the quota.
    assert!(s.totals.latency.p999_ms.unwrap() >= 249.0);
}

#[test]
fn dropped_requests_make_a_pass_inconclusive() {
    let mut rec = ten_seconds();
    rec.windows.get_mut(&T0).unwrap().counts.dropped = 3;
    let s = build(&rec, vec![run_info(T0, 10, 1000.0)]);
    assert_eq!(s.verdict.outcome, Outcome::Inconclusive);
    assert_eq!(s.verdict.exit_code, EXIT_INCONCLUSIVE);
    // Dropped requests are not in availability.
    assert_eq!(s.totals.counts.sent, 10_000);
}

#[test]
fn merge_aligns_windows_by_unix_time_and_adds_histograms() {
    // Run A: seconds 0..6 at 10 ms; run B: seconds 3..9 at 100 ms with one timeout at second 4.
    let mut a = Recording::default();
    let mut b = Recording::default();
    for s in 0..6 {
        a.windows.insert(T0 + s, window(100, 0, 0, 10));
    }
    for s in 3..9 {
        b.windows
            .insert(T0 + s, window(100, (s == 4) as u64, 0, 100));
    }
    let (da, db, out) = (tempdir("merge-a"), tempdir("merge-b"), tempdir("merge-out"));
    report::write_all(&da, &build(&a, vec![run_info(T0, 6, 100.0)]), &a).unwrap();
    report::write_all(&db, &build(&b, vec![run_info(T0 + 3, 6, 100.0)]), &b).unwrap();

    let m = merge::merge(&[da, db], None).unwrap();
    let s = &m.summary;
    assert_eq!(s.runs.len(), 2);
    assert_eq!(s.windows_1s.len(), 9);
    let w = |sec: i64| {
        s.windows_1s
            .iter()
            .find(|w| w.start_unix == T0 + sec)
            .unwrap()
    };
    assert_eq!(w(0).counts.sent, 100);
    assert_eq!(w(3).counts.sent, 200);
    assert_eq!(w(4).counts.sent, 201);
    assert_eq!(w(4).counts.timeout, 1);
    assert_eq!(w(8).counts.sent, 100);
    // Overlap windows hold both runs' latencies: half at 10 ms, half at 100 ms.
    let l3 = &w(3).latency;
    assert!((l3.p50_ms.unwrap() - 10.0).abs() < 0.05 && (l3.max_ms.unwrap() - 100.0).abs() < 0.1);
    assert!((w(0).latency.max_ms.unwrap() - 10.0).abs() < 0.05);
    assert_eq!(s.totals.counts.sent, 1201);
    assert_eq!(s.totals.latency.count, 1201);
    assert_eq!(s.generator.target_rate, 200.0);
    assert_eq!(s.start_unix_us, T0 * 1_000_000);
    assert_eq!(s.end_unix_us, (T0 + 9) * 1_000_000);
    // 1 bad of 201 in second 4 is a dip; over the run 1/1201 still meets 0.999.
    assert_eq!(s.verdict.dips_1s.len(), 1);
    assert_eq!(s.verdict.exit_code, EXIT_OK);
    // The merged outputs can themselves be merged (same format).
    report::write_all(&out, s, &m.recording).unwrap();
    let again = merge::merge(std::slice::from_ref(&out), Some(0.9999)).unwrap();
    assert_eq!(again.summary.totals.counts, s.totals.counts);
    assert_eq!(again.summary.verdict.exit_code, EXIT_SLO_MISSED);
}

#[test]
fn merge_refuses_different_quotas_and_missing_dirs() {
    let a = ten_seconds();
    let (da, db) = (tempdir("quota-a"), tempdir("quota-b"));
    let sa = build(&a, vec![run_info(T0, 10, 1000.0)]);
    let mut sb = sa.clone();
    sb.quota_ms = 100.0;
    report::write_all(&da, &sa, &a).unwrap();
    report::write_all(&db, &sb, &a).unwrap();
    assert!(matches!(
        merge::merge(&[da.clone(), db], None),
        Err(loadtest::Error::Merge(_))
    ));
    assert!(matches!(
        merge::merge(&[da.join("nope")], None),
        Err(loadtest::Error::Read { .. })
    ));
}
