//! The one collector: receives every request's outcome over a bounded channel
//! and owns all histograms and windows, so recording needs no locks.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::{mpsc, watch};

use crate::model::Outcome;
use crate::recording::{
    Counts, LatencyStats, Recording, Window, encode_hist, has_latency, new_hist,
};
use crate::trace::{TraceKeeper, TraceRecord};
use crate::util;

#[derive(Debug, Clone)]
pub struct CollectorConfig {
    pub start_unix_us: i64,
    pub duration: Duration,
    pub quota: Duration,
    pub keep_slowest: usize,
    pub keep_failed: usize,
}

/// What the progress display shows; published once per second.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub elapsed: Duration,
    pub totals: Counts,
    /// The latest second whose requests have all had time to finish.
    pub last_window: Option<(i64, Counts, LatencyStats)>,
}

pub struct Collected {
    pub recording: Recording,
    pub slowest: Vec<TraceRecord>,
    pub failed: Vec<TraceRecord>,
    /// Requests handed to a connection no later than the run duration: the
    /// numerator of the achieved rate.
    pub sent_in_time: u64,
    /// Outcomes that arrived after their window had been finalized; their
    /// counts are in, their latencies only in the run totals' neighbours.
    pub late_results: u64,
}

pub struct Collector {
    cfg: CollectorConfig,
    live: BTreeMap<i64, (Counts, Histogram<u64>)>,
    rec: Recording,
    traces: TraceKeeper,
    sent_in_time: u64,
    late_results: u64,
}

impl Collector {
    pub fn new(cfg: CollectorConfig) -> Self {
        Collector {
            traces: TraceKeeper::new(cfg.keep_slowest, cfg.keep_failed),
            cfg,
            live: BTreeMap::new(),
            rec: Recording::default(),
            sent_in_time: 0,
            late_results: 0,
        }
    }

    fn second_of(&self, o: &Outcome) -> i64 {
        (self.cfg.start_unix_us + util::duration_us(o.intended) as i64).div_euclid(1_000_000)
    }

    pub fn record(&mut self, o: &Outcome) {
        let sec = self.second_of(o);
        if let Some(sent) = o.sent_at
            && sent <= self.cfg.duration
        {
            self.sent_in_time += 1;
        }
        self.traces.consider(o, self.cfg.start_unix_us);
        if let Some(w) = self.rec.windows.get_mut(&sec) {
            // Only a generator stalled for seconds gets here (results normally
            // arrive within quota + 2 s of their intended time).
            w.counts.record(o);
            self.late_results += 1;
            return;
        }
        let (counts, hist) = self
            .live
            .entry(sec)
            .or_insert_with(|| (Counts::default(), new_hist()));
        counts.record(o);
        if has_latency(o.class) {
            hist.saturating_record(util::duration_us(o.latency).max(1));
        }
    }

    /// Encode and retire every live window that starts before `sec`.
    pub fn finalize_before(&mut self, sec: i64) {
        let keep = self.live.split_off(&sec);
        let done = std::mem::replace(&mut self.live, keep);
        for (s, (counts, hist)) in done {
            self.rec.windows.insert(
                s,
                Window {
                    counts,
                    hist: encode_hist(&hist),
                },
            );
        }
    }

    pub fn snapshot(&self, elapsed: Duration) -> Snapshot {
        let mut totals = self.rec.totals();
        for (c, _) in self.live.values() {
            totals.add(c);
        }
        let now_us = self.cfg.start_unix_us + util::duration_us(elapsed) as i64;
        let settled = (now_us - util::duration_us(self.cfg.quota) as i64).div_euclid(1_000_000) - 1;
        let last_window = self
            .live
            .range(..=settled)
            .next_back()
            .map(|(s, (c, h))| (*s, *c, LatencyStats::of(h)));
        Snapshot {
            elapsed,
            totals,
            last_window,
        }
    }

    pub fn finish(mut self) -> Collected {
        self.finalize_before(i64::MAX);
        let (slowest, failed) = self.traces.finish();
        Collected {
            recording: self.rec,
            slowest,
            failed,
            sent_in_time: self.sent_in_time,
            late_results: self.late_results,
        }
    }
}

/// Drain outcomes until every worker is gone; finalize old windows and publish
/// a snapshot every second.
pub async fn run(
    mut col: Collector,
    mut rx: mpsc::Receiver<Outcome>,
    start: tokio::time::Instant,
    snapshots: watch::Sender<Snapshot>,
) -> Collected {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = Vec::with_capacity(1024);
    // A window is final once its last request's deadline has passed, with
    // slack for the scheduler and the channel.
    let slack_us = util::duration_us(col.cfg.quota) as i64 + 2_000_000;
    loop {
        tokio::select! {
            n = rx.recv_many(&mut buf, 1024) => {
                if n == 0 {
                    break;
                }
                for o in buf.drain(..) {
                    col.record(&o);
                }
            }
            _ = tick.tick() => {
                let elapsed = start.elapsed();
                let now_us = col.cfg.start_unix_us + util::duration_us(elapsed) as i64;
                col.finalize_before((now_us - slack_us).div_euclid(1_000_000));
                let _ = snapshots.send(col.snapshot(elapsed));
            }
        }
    }
    col.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Class, Op, OpKind, TraceCtx};

    fn outcome(intended_ms: u64, latency_ms: u64, class: Class) -> Outcome {
        Outcome {
            intended: Duration::from_millis(intended_ms),
            latency: Duration::from_millis(latency_ms),
            sent_at: Some(Duration::from_millis(intended_ms)),
            class,
            status: if class == Class::ServerError {
                500
            } else {
                200
            },
            late: false,
            op: Op {
                kind: OpKind::Page,
                activity: 1,
                user: 1,
            },
            trace: TraceCtx {
                trace_id: intended_ms as u128 + 1,
                span_id: 1,
                sampled: true,
            },
        }
    }

    #[test]
    fn windows_follow_intended_time_and_survive_finalization() {
        let mut c = Collector::new(CollectorConfig {
            start_unix_us: 1_000_000_000,
            duration: Duration::from_secs(3),
            quota: Duration::from_millis(250),
            keep_slowest: 2,
            keep_failed: 10,
        });
        for i in 0..300 {
            c.record(&outcome(i * 10, 5, Class::Good));
        }
        c.record(&outcome(1500, 900, Class::Timeout));
        c.finalize_before(1001);
        // A straggler for an already finalized window still counts.
        c.record(&outcome(10, 3, Class::ServerError));
        let out = c.finish();
        let rec = &out.recording;
        assert_eq!(rec.windows.len(), 3);
        let w0 = &rec.windows[&1000].counts;
        assert_eq!((w0.sent, w0.good, w0.server_error), (101, 100, 1));
        assert_eq!(rec.windows[&1001].counts.timeout, 1);
        assert_eq!(out.late_results, 1);
        assert_eq!(out.slowest.len(), 2);
        assert_eq!(out.slowest[0].latency_ms, 900.0);
        assert_eq!(out.failed.len(), 2);
        let rows = rec.rows(1, 1_000_000_000).unwrap();
        assert_eq!(rows[1].latency.max_ms.map(|m| m.round()), Some(900.0));
    }
}
