//! Rate policy: when each request is *meant* to be sent.
//!
//! The policy is a list of linear segments (a constant rate is one flat
//! segment). The n-th request is due at the time `t` where the integral of the
//! rate from 0 to `t` equals `n`, so the schedule never depends on how fast the
//! server answers: that is what makes the generator an open model.

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::model::{Class, Job, Outcome, TraceCtx};
use crate::recording::{LatencyStats, new_hist};
use crate::util;
use crate::workload::Workload;

/// One `--stages` item: ramp linearly to `rate` over `duration`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    #[serde(with = "crate::util::duration_secs")]
    pub duration: Duration,
    pub rate: f64,
}

impl FromStr for Stage {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let (d, r) = s
            .split_once(':')
            .ok_or_else(|| format!("stage {s:?}: expected DURATION:RATE, e.g. 30s:1000"))?;
        let duration = humantime::parse_duration(d.trim())
            .map_err(|e| format!("stage {s:?}: bad duration {d:?}: {e}"))?;
        let rate: f64 = r
            .trim()
            .parse()
            .map_err(|_| format!("stage {s:?}: bad rate {r:?}"))?;
        if !rate.is_finite() || rate < 0.0 {
            return Err(format!("stage {s:?}: rate must be a finite number >= 0"));
        }
        if duration.is_zero() {
            return Err(format!("stage {s:?}: duration must be > 0"));
        }
        Ok(Stage { duration, rate })
    }
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    start: f64,
    len: f64,
    r0: f64,
    r1: f64,
    /// Requests due before this segment starts (the integral up to `start`).
    before: f64,
}

impl Segment {
    fn count(&self) -> f64 {
        (self.r0 + self.r1) * 0.5 * self.len
    }

    /// Local time at which the local integral reaches `m` (0 <= m < count).
    fn solve(&self, m: f64) -> f64 {
        if m <= 0.0 {
            // Also avoids 0/0 below for a ramp starting at rate 0.
            return 0.0;
        }
        let a = (self.r1 - self.r0) / (2.0 * self.len);
        let b = self.r0;
        if a.abs() < 1e-12 {
            return m / b;
        }
        // Root of a t^2 + b t - m = 0 written so that it stays accurate when
        // `a` is tiny and exact when b = 0 (a ramp from zero).
        let disc = (b * b + 4.0 * a * m).max(0.0);
        2.0 * m / (b + disc.sqrt())
    }
}

#[derive(Debug, Clone)]
pub struct RatePolicy {
    segments: Vec<Segment>,
    total: f64,
}

impl RatePolicy {
    pub fn constant(rate: f64, duration: Duration) -> Result<Self> {
        if !rate.is_finite() || rate <= 0.0 {
            return Err(Error::Usage(format!("--rate must be > 0, got {rate}")));
        }
        if duration.is_zero() {
            return Err(Error::Usage("--duration must be > 0".into()));
        }
        Self::ramps(rate, &[Stage { duration, rate }])
    }

    /// Stages ramp linearly from the previous stage's rate (`start_rate` for the
    /// first one); repeat a rate to hold it, e.g. `30s:1000,2m:1000`.
    pub fn ramps(start_rate: f64, stages: &[Stage]) -> Result<Self> {
        if stages.is_empty() {
            return Err(Error::Usage("--stages needs at least one stage".into()));
        }
        if !start_rate.is_finite() || start_rate < 0.0 {
            return Err(Error::Usage(format!(
                "start rate must be >= 0, got {start_rate}"
            )));
        }
        let mut segments = Vec::with_capacity(stages.len());
        let (mut t, mut before, mut prev) = (0.0, 0.0, start_rate);
        for st in stages {
            let seg = Segment {
                start: t,
                len: st.duration.as_secs_f64(),
                r0: prev,
                r1: st.rate,
                before,
            };
            before += seg.count();
            t += seg.len;
            prev = st.rate;
            segments.push(seg);
        }
        if before < 1.0 {
            return Err(Error::Usage("the rate policy schedules no request".into()));
        }
        Ok(RatePolicy { segments, total: t })
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.total)
    }

    /// Number of requests the policy schedules over its whole duration.
    pub fn total_requests(&self) -> u64 {
        let last = self.segments.last().expect("non-empty by construction");
        let n = last.before + last.count();
        // Requests are due at integral = 0, 1, 2, ... strictly before the end.
        (n - 1e-9).ceil().max(0.0) as u64
    }

    pub fn max_rate(&self) -> f64 {
        self.segments
            .iter()
            .map(|s| s.r0.max(s.r1))
            .fold(0.0, f64::max)
    }

    pub fn mean_rate(&self) -> f64 {
        self.total_requests() as f64 / self.total
    }

    /// Intended send time of the n-th request (0-based), or `None` past the end.
    pub fn time_of(&self, n: u64) -> Option<Duration> {
        let n = n as f64;
        let idx = self.segments.partition_point(|s| s.before <= n);
        let seg = self.segments.get(idx.checked_sub(1)?)?;
        // `seg` is the last segment starting at or before n, so n can only
        // overflow it when it is the final one (the run is over).
        let m = (n - seg.before).min(seg.count());
        if m >= seg.count() - 1e-9 && idx == self.segments.len() {
            return None;
        }
        let t = seg.start + seg.solve(m);
        (t < self.total).then(|| Duration::from_secs_f64(t))
    }

    /// Human description used in reports, e.g. "constant 1000/s for 60s".
    pub fn describe(&self) -> String {
        if self.segments.len() == 1 && self.segments[0].r0 == self.segments[0].r1 {
            let s = self.segments[0];
            return format!("constant {}/s for {}s", s.r1, s.len);
        }
        let parts: Vec<String> = self
            .segments
            .iter()
            .map(|s| format!("{}s:{}", s.len, s.r1))
            .collect();
        format!("from {}/s, stages {}", self.segments[0].r0, parts.join(","))
    }

    /// Target rate at offset `t` seconds (for charts).
    pub fn rate_at(&self, t: f64) -> f64 {
        self.segments
            .iter()
            .find(|s| t >= s.start && t < s.start + s.len)
            .map(|s| s.r0 + (s.r1 - s.r0) * (t - s.start) / s.len)
            .unwrap_or(0.0)
    }
}

/// What the scheduler itself observed: the generator's health.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedulerStats {
    /// Requests the policy had scheduled up to where the run ended.
    pub scheduled: u64,
    pub late: u64,
    pub dropped: u64,
    /// Timed out in the generator's queue because every connection was busy
    /// for longer than the quota (also counted as timeouts).
    pub queue_full: u64,
    /// Dispatch time minus intended time.
    pub lag: LatencyStats,
    pub stopped_early: bool,
}

pub struct Dispatch {
    pub start: Instant,
    pub lag_threshold: Duration,
    pub quota: Duration,
    pub jobs: flume::Sender<Job>,
    pub results: mpsc::Sender<Outcome>,
    pub stop: watch::Receiver<bool>,
}

/// The scheduler loop: hands each request to the worker queue at its intended
/// time and never waits for an earlier one to finish. When it falls behind it
/// catches up immediately (latency still counts from the intended time) and
/// records how late it was instead of silently stretching the schedule.
pub async fn dispatch(
    policy: &RatePolicy,
    mut workload: Workload,
    mut d: Dispatch,
) -> SchedulerStats {
    let mut st = SchedulerStats::default();
    let mut lag_hist = new_hist();
    let sleep = tokio::time::sleep_until(d.start);
    tokio::pin!(sleep);
    let mut n = 0u64;
    while let Some(offset) = policy.time_of(n) {
        let intended = d.start + offset;
        // Drawn before waiting so the request stream depends on the seed only.
        let op = workload.next_op();
        n += 1;
        let mut now = Instant::now();
        if intended > now {
            sleep.as_mut().reset(intended);
            tokio::select! {
                _ = &mut sleep => {}
                _ = d.stop.changed() => {
                    st.stopped_early = true;
                    n -= 1;
                    break;
                }
            }
            now = Instant::now();
        }
        let lag = now.saturating_duration_since(intended);
        lag_hist.saturating_record(util::duration_us(lag).max(1));
        let late = lag > d.lag_threshold;
        st.late += late as u64;
        let unsent = |class| Outcome {
            intended: offset,
            // A request refused by a full queue is a timeout: record it at the
            // quota like any other, not at the few µs it took to refuse it.
            latency: if class == Class::Timeout {
                d.quota.max(lag)
            } else {
                lag
            },
            sent_at: None,
            class,
            status: 0,
            late,
            op,
            trace: TraceCtx {
                trace_id: 0,
                span_id: 0,
                sampled: false,
            },
        };
        let failed = if lag >= d.quota {
            // Sending now could only produce a timeout the server did not cause.
            st.dropped += 1;
            unsent(Class::Dropped)
        } else {
            match d.jobs.try_send(Job { intended, op, late }) {
                Ok(()) => continue,
                Err(flume::TrySendError::Full(_)) => {
                    st.queue_full += 1;
                    unsent(Class::Timeout)
                }
                Err(flume::TrySendError::Disconnected(_)) => break,
            }
        };
        if d.results.send(failed).await.is_err() {
            break;
        }
    }
    st.scheduled = n;
    st.lag = LatencyStats::of(&lag_hist);
    st
}

/// Queue length that holds a full quota's worth of requests at the peak rate:
/// anything beyond would time out before a connection could take it.
pub fn queue_capacity(policy: &RatePolicy, quota: Duration) -> usize {
    ((policy.max_rate() * quota.as_secs_f64()).ceil() as usize).max(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_spaces_requests_evenly() {
        let p = RatePolicy::constant(100.0, Duration::from_secs(2)).unwrap();
        assert_eq!(p.total_requests(), 200);
        assert_eq!(p.time_of(0), Some(Duration::ZERO));
        assert_eq!(p.time_of(50).unwrap().as_millis(), 500);
        assert!(p.time_of(199).is_some());
        assert_eq!(p.time_of(200), None);
    }

    #[test]
    fn ramp_from_zero_follows_the_integral() {
        // 0 -> 100/s over 10 s: integral t^2 * 5, so request 125 is due at 5 s.
        let p = RatePolicy::ramps(
            0.0,
            &[Stage {
                duration: Duration::from_secs(10),
                rate: 100.0,
            }],
        )
        .unwrap();
        assert_eq!(p.total_requests(), 500);
        assert_eq!(p.time_of(0), Some(Duration::ZERO));
        assert!((p.time_of(1).unwrap().as_secs_f64() - 0.2_f64.sqrt()).abs() < 1e-9);
        let t = p.time_of(125).unwrap().as_secs_f64();
        assert!((t - 5.0).abs() < 1e-6, "{t}");
    }

    #[test]
    fn stages_chain_and_times_increase() {
        let stages: Vec<Stage> = ["1s:100", "1s:300", "1s:0"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let p = RatePolicy::ramps(100.0, &stages).unwrap();
        // 100 + 200 + 150
        assert_eq!(p.total_requests(), 450);
        let mut last = Duration::ZERO;
        for n in 1..450 {
            let t = p
                .time_of(n)
                .unwrap_or_else(|| panic!("request {n} missing"));
            assert!(t > last);
            last = t;
        }
        assert_eq!(p.time_of(450), None);
    }

    #[test]
    fn bad_stages_are_rejected() {
        assert!("30s".parse::<Stage>().is_err());
        assert!("x:10".parse::<Stage>().is_err());
        assert!("1s:-5".parse::<Stage>().is_err());
        assert!("0s:5".parse::<Stage>().is_err());
        assert!(RatePolicy::constant(0.0, Duration::from_secs(1)).is_err());
    }
}
