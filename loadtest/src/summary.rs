//! The run's (or merged runs') results as one serializable value: what
//! summary.json holds and what every printer reads.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::flip::FlipReport;
use crate::recording::{Counts, LatencyStats, Recording, WindowRow};
use crate::schedule::{SchedulerStats, Stage};
use crate::trace::TraceRecord;
use crate::util;
use crate::verdict::{self, Verdict};
use crate::verify::VerifyReport;
use crate::workload::Scenario;

pub const FORMAT_VERSION: u32 = 1;

/// One generator process's configuration and health.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    pub target: String,
    pub scenario: Scenario,
    pub policy: String,
    pub stages: Option<Vec<Stage>>,
    pub duration_s: f64,
    pub connections: usize,
    pub seed: u64,
    pub activities: u32,
    pub users: u32,
    pub zipf: f64,
    pub trace_sample: f64,
    pub lag_threshold_ms: f64,
    pub start_unix_us: i64,
    pub end_unix_us: i64,
    pub target_rate: f64,
    /// Requests handed to a connection within the duration, per second.
    pub achieved_rate: f64,
    pub sent_in_time: u64,
    pub scheduler: SchedulerStats,
    pub late_results: u64,
    pub cache_end: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Totals {
    #[serde(flatten)]
    pub counts: Counts,
    pub bad: u64,
    pub availability: Option<f64>,
    pub latency: LatencyStats,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Generator {
    pub scheduled: u64,
    pub target_rate: f64,
    pub achieved_rate: f64,
    /// achieved / target; the goal is >= 0.99.
    pub achieved_ratio: f64,
    pub late: u64,
    pub dropped: u64,
    pub queue_full: u64,
    pub max_lag_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Traces {
    pub jaeger_url: String,
    pub slowest: Vec<TraceRecord>,
    pub failed: Vec<TraceRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub format: u32,
    pub tool: String,
    pub start_unix_us: i64,
    pub end_unix_us: i64,
    pub started_at: String,
    pub duration_s: f64,
    pub quota_ms: f64,
    pub slo: f64,
    pub runs: Vec<RunInfo>,
    pub totals: Totals,
    pub generator: Generator,
    pub verdict: Verdict,
    pub flip: Option<FlipReport>,
    pub traces: Traces,
    pub windows_1s: Vec<WindowRow>,
    pub windows_10s: Vec<WindowRow>,
    /// `run --verify`: acknowledged writes checked against MySQL and Redis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyReport>,
}

pub struct Parts {
    pub runs: Vec<RunInfo>,
    pub quota_ms: f64,
    pub slo: f64,
    pub jaeger_url: String,
    pub slowest: Vec<TraceRecord>,
    pub failed: Vec<TraceRecord>,
    pub flip: Option<FlipReport>,
}

/// Trace links only for requests that reached the server with the sampled flag.
fn link(jaeger: &str, mut r: TraceRecord) -> TraceRecord {
    if r.sampled && r.trace_id.chars().any(|c| c != '0') {
        r.url = Some(format!(
            "{}/trace/{}",
            jaeger.trim_end_matches('/'),
            r.trace_id
        ));
    }
    r
}

pub fn build(rec: &Recording, p: Parts) -> Result<Summary> {
    let start = p.runs.iter().map(|r| r.start_unix_us).min().unwrap_or(0);
    let end = p.runs.iter().map(|r| r.end_unix_us).max().unwrap_or(start);
    let rows_1s = rec.rows(1, start)?;
    let rows_10s = rec.rows(10, start)?;
    let counts = rec.totals();
    let totals = Totals {
        counts,
        bad: counts.bad(),
        availability: counts.availability(),
        latency: LatencyStats::of(&rec.overall()?),
    };
    let target_rate: f64 = p.runs.iter().map(|r| r.target_rate).sum();
    let achieved_rate: f64 = p.runs.iter().map(|r| r.achieved_rate).sum();
    let generator = Generator {
        scheduled: p.runs.iter().map(|r| r.scheduler.scheduled).sum(),
        target_rate,
        achieved_rate,
        achieved_ratio: if target_rate > 0.0 {
            achieved_rate / target_rate
        } else {
            0.0
        },
        late: p.runs.iter().map(|r| r.scheduler.late).sum(),
        dropped: p.runs.iter().map(|r| r.scheduler.dropped).sum(),
        queue_full: p.runs.iter().map(|r| r.scheduler.queue_full).sum(),
        max_lag_ms: p
            .runs
            .iter()
            .filter_map(|r| r.scheduler.lag.max_ms)
            .reduce(f64::max),
    };
    let verdict = verdict::judge(p.slo, &counts, &rows_1s, &rows_10s);
    let flip = match p.flip {
        Some(mut f) => {
            let (before, after) = rec.halves(f.at_unix_us)?;
            f.before = Some(before);
            f.after = Some(after);
            Some(f)
        }
        None => None,
    };
    let jaeger = p.jaeger_url;
    Ok(Summary {
        format: FORMAT_VERSION,
        tool: format!("loadtest {}", env!("CARGO_PKG_VERSION")),
        start_unix_us: start,
        end_unix_us: end,
        started_at: util::rfc3339(start),
        duration_s: (end - start) as f64 / 1e6,
        quota_ms: p.quota_ms,
        slo: p.slo,
        runs: p.runs,
        totals,
        generator,
        verdict,
        flip,
        traces: Traces {
            slowest: p.slowest.into_iter().map(|r| link(&jaeger, r)).collect(),
            failed: p.failed.into_iter().map(|r| link(&jaeger, r)).collect(),
            jaeger_url: jaeger,
        },
        windows_1s: rows_1s,
        windows_10s: rows_10s,
        verify: None,
    })
}
