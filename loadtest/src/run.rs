//! `loadtest run`: wire scheduler, workers, collector, flip and progress
//! together for one run and turn what they measured into a [`Summary`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::client::{self, ClientCtx, Target};
use crate::collect::{self, Collector, CollectorConfig};
use crate::error::Result;
use crate::flip::{self, FlipConfig};
use crate::progress::{self, ProgressMode};
use crate::recording::Recording;
use crate::schedule::{self, Dispatch, RatePolicy, Stage};
use crate::summary::{self, Parts, RunInfo, Summary};
use crate::util;
use crate::verify::{self, VerifyConfig, record::Recorder};
use crate::workload::{Workload, WorkloadConfig};

/// A validated `run` configuration (the CLI builds it; tests may too).
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub target: String,
    pub policy: RatePolicy,
    pub stages: Option<Vec<Stage>>,
    pub workload: WorkloadConfig,
    pub quota: Duration,
    pub slo: f64,
    pub connections: usize,
    pub jaeger_url: String,
    pub trace_sample: f64,
    pub keep_slowest: usize,
    pub keep_failed: usize,
    pub lag_threshold: Duration,
    pub flip: Option<FlipConfig>,
    pub admin_token: Option<String>,
    pub progress: ProgressMode,
    /// `--verify`: check acknowledged writes in MySQL and Redis after the run.
    pub verify: Option<VerifyConfig>,
}

pub struct RunResult {
    pub summary: Summary,
    pub recording: Recording,
}

/// Outcomes in flight between workers and the collector; large enough that a
/// busy collector never makes a worker wait in practice.
const RESULT_CHANNEL: usize = 1 << 16;
/// The schedule starts this long after set-up so the first requests are not
/// born late while workers are still being spawned.
const START_DELAY: Duration = Duration::from_millis(100);

pub async fn run(cfg: &RunConfig) -> Result<RunResult> {
    let target = Target::resolve(&cfg.target).await?;
    let workload = Workload::new(cfg.workload)?;
    // Connect and take the baseline before loading anything: a bad URL fails the setup.
    let baseline = match &cfg.verify {
        Some(v) => Some(verify::prepare(v).await?),
        None => None,
    };
    let (jobs_tx, jobs_rx) = flume::bounded(schedule::queue_capacity(&cfg.policy, cfg.quota));
    let (res_tx, res_rx) = mpsc::channel(RESULT_CHANNEL);
    let start = Instant::now() + START_DELAY;
    let start_unix_us =
        util::unix_micros(SystemTime::now()) + util::duration_us(START_DELAY) as i64;

    let ctx = Arc::new(ClientCtx {
        target: target.clone(),
        quota: cfg.quota,
        trace_sample: cfg.trace_sample,
        start,
        recorder: cfg
            .verify
            .as_ref()
            .map(|_| Arc::new(Recorder::new(start_unix_us))),
    });
    let workers: Vec<_> = (0..cfg.connections)
        .map(|_| tokio::spawn(client::worker(ctx.clone(), jobs_rx.clone(), res_tx.clone())))
        .collect();
    drop(jobs_rx);

    let (snap_tx, snap_rx) = watch::channel(collect::Snapshot::default());
    let collector = Collector::new(CollectorConfig {
        start_unix_us,
        duration: cfg.policy.duration(),
        quota: cfg.quota,
        keep_slowest: cfg.keep_slowest,
        keep_failed: cfg.keep_failed,
    });
    let collector = tokio::spawn(collect::run(collector, res_rx, start, snap_tx));
    let progress = progress::spawn(cfg.progress, cfg.policy.duration(), snap_rx);
    let flip_task = cfg
        .flip
        .clone()
        .map(|f| tokio::spawn(flip::run(target.clone(), f, start, start_unix_us)));

    // Ctrl-C ends the schedule early; what was measured is still reported.
    let (stop_tx, stop_rx) = watch::channel(false);
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });

    let dispatch = Dispatch {
        start,
        lag_threshold: cfg.lag_threshold,
        quota: cfg.quota,
        jobs: jobs_tx,
        results: res_tx,
        stop: stop_rx,
    };
    let sched = schedule::dispatch(&cfg.policy, workload, dispatch).await;
    let end = if sched.stopped_early {
        start.elapsed().min(cfg.policy.duration())
    } else {
        cfg.policy.duration()
    };
    ctrl_c.abort();
    for w in workers {
        let _ = w.await;
    }
    let collected = collector.await.expect("collector task does not panic");
    let _ = progress.await;
    let flip = match flip_task {
        Some(t) if sched.stopped_early && t.is_finished() => t.await.ok(),
        Some(t) if sched.stopped_early => {
            t.abort();
            None
        }
        Some(t) => t.await.ok(),
        None => None,
    };
    let cache_end = match &cfg.admin_token {
        Some(tok) => flip::cache_stats(&target, tok).await,
        None => None,
    };

    let duration_s = end.as_secs_f64().max(1e-9);
    let info = RunInfo {
        target: target.url.clone(),
        scenario: cfg.workload.scenario,
        policy: cfg.policy.describe(),
        stages: cfg.stages.clone(),
        duration_s,
        connections: cfg.connections,
        seed: cfg.workload.seed,
        activities: cfg.workload.activities,
        users: cfg.workload.users,
        zipf: cfg.workload.zipf_exponent,
        trace_sample: cfg.trace_sample,
        lag_threshold_ms: cfg.lag_threshold.as_secs_f64() * 1e3,
        start_unix_us,
        end_unix_us: start_unix_us + util::duration_us(end) as i64,
        target_rate: sched.scheduled as f64 / duration_s,
        achieved_rate: collected.sent_in_time as f64 / duration_s,
        sent_in_time: collected.sent_in_time,
        scheduler: sched,
        late_results: collected.late_results,
        cache_end,
    };
    let mut summary = summary::build(
        &collected.recording,
        Parts {
            runs: vec![info],
            quota_ms: cfg.quota.as_secs_f64() * 1e3,
            slo: cfg.slo,
            jaeger_url: cfg.jaeger_url.clone(),
            slowest: collected.slowest,
            failed: collected.failed,
            flip,
        },
    )?;
    if let (Some(vcfg), Some(base), Some(rec)) = (&cfg.verify, &baseline, &ctx.recorder) {
        let report = verify::verify(vcfg, base, &rec.take()).await;
        verify::apply(&mut summary.verdict, &report);
        summary.verify = Some(report);
    }
    Ok(RunResult {
        summary,
        recording: collected.recording,
    })
}
