//! Automatic profiling on anomalies, after the Go tool Holmes: a few signals are sampled every
//! interval; a rule fires when its signal is at least `min` and either reaches `abs` or jumps
//! `diff` percent above its recent average, at most once per `cooldown`; for CPU, which rises
//! with the load, only from a busy baseline ([`Detector::for_signal`]). On firing, a CPU profile,
//! a heap profile and `trigger.json` (the rule, the figures that tripped it, the slowest
//! requests' trace ids, the cache's figures, what the capture cost) are written to a new folder
//! under the profile directory, which `GET /debug/profiles` lists and serves.
//!
//! The profiler keeps out of its own way: what was sampled while a profile was being taken
//! (here or on demand) is not judged, and a capture is skipped, with a warning and a count in
//! `leaklab_anomaly_captures_skipped_total`, when memory is too close to the cgroup's limit for
//! it ([`Capture::begin`]).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::capture::{self, Capture, CaptureCost};
use super::cpu::{self, Format};
use super::window::{LatencyWindow, WindowSummary};
use super::{ProfileError, heap, process};
use crate::cache::CacheSlot;
use crate::config::Rule;

/// Samples kept for the "recent average" a jump is measured against; also how long CPU must have
/// been busy before a jump counts.
const HISTORY: usize = 10;
/// Dumps kept on disk; older ones are deleted.
const KEPT_DUMPS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Process CPU, percent of one core.
    CpuPercent,
    RssMb,
    /// p99 of the requests served in the last interval.
    P99Ms,
    /// The cache's last expiry sweep pause.
    SweepPauseMs,
}

impl Signal {
    /// Rises with the work the service is given, whether or not anything is wrong. Latency and
    /// sweep pauses do not: their jump from any baseline is the harm itself (in a `leaky` lab
    /// run the p99 rule fired as a jump from 2 ms to 240 ms, under its 250 ms `abs`).
    fn follows_load(self) -> bool {
        matches!(self, Signal::CpuPercent)
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub interval: Duration,
    pub dir: PathBuf,
    pub cpu_profile: Duration,
    pub rules: Vec<(Signal, Rule)>,
}

/// Evaluates one signal against its rule; pure, so the firing logic is tested on its own.
#[derive(Debug)]
pub struct Detector {
    rule: Rule,
    history: VecDeque<f64>,
    last_fired: Option<Instant>,
    /// A jump counts only against a full window of samples, none below `min`.
    busy_baseline: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Firing {
    pub value: f64,
    pub recent_average: Option<f64>,
    pub reason: &'static str,
}

impl Detector {
    pub fn new(rule: Rule) -> Self {
        Self {
            rule,
            history: VecDeque::with_capacity(HISTORY),
            last_fired: None,
            busy_baseline: false,
        }
    }

    /// For CPU, a jump is measured only from a busy baseline. From a quiet one, ordinary work is
    /// a jump of thousands of percent (an idle service's CPU is about 1 %, its first loaded
    /// second 50 % or more), and the start of traffic is not an anomaly; `abs` still fires
    /// whatever came before.
    pub fn for_signal(signal: Signal, rule: Rule) -> Self {
        Self {
            busy_baseline: signal.follows_load(),
            ..Self::new(rule)
        }
    }

    pub fn observe(&mut self, value: f64, now: Instant) -> Option<Firing> {
        let average = (!self.history.is_empty())
            .then(|| self.history.iter().sum::<f64>() / self.history.len() as f64);
        let busy =
            self.history.len() == HISTORY && self.history.iter().all(|&v| v >= self.rule.min);
        let baseline = average.filter(|_| busy || !self.busy_baseline);
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(value);
        if value < self.rule.min {
            return None;
        }
        if self
            .last_fired
            .is_some_and(|at| now.duration_since(at) < self.rule.cooldown)
        {
            return None;
        }
        let reason = if value >= self.rule.abs {
            "absolute"
        } else if baseline
            .is_some_and(|avg| avg > 0.0 && value >= avg * (1.0 + self.rule.diff_pct / 100.0))
        {
            "jump"
        } else {
            return None;
        };
        self.last_fired = Some(now);
        Some(Firing {
            value,
            recent_average: average,
            reason,
        })
    }

    /// Forgets the recent samples: those taken across a capture measure the capture (its CPU
    /// and the memory it held), not the service.
    pub fn rebaseline(&mut self) {
        self.history.clear();
    }
}

#[derive(Serialize)]
struct Trigger<'a> {
    rule: Signal,
    thresholds: Rule,
    firing: &'a Firing,
    at: chrono::DateTime<chrono::Utc>,
    window: &'a WindowSummary,
    cache: leaklab_cache::Stats,
    files: Vec<String>,
    errors: Vec<String>,
    capture: CaptureCost,
}

/// Runs until shutdown: samples every `interval`, dumps profiles when a rule fires.
pub async fn run(
    settings: Settings,
    latencies: Arc<LatencyWindow>,
    cache: Arc<CacheSlot>,
    shutdown: CancellationToken,
) {
    let mut detectors: Vec<(Signal, Detector)> = settings
        .rules
        .iter()
        .map(|&(signal, rule)| (signal, Detector::for_signal(signal, rule)))
        .collect();
    capture::describe();
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_cpu = (Instant::now(), process::cpu_time());
    // Set while a profile is being taken, here or on demand, and for the tick after, whose CPU
    // and latencies still span part of it.
    let mut perturbed = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let cpu_now = process::cpu_time();
        let cpu_percent = match (last_cpu.1, cpu_now) {
            (Some(before), Some(after)) => Some(
                (after.saturating_sub(before)).as_secs_f64()
                    / now.duration_since(last_cpu.0).as_secs_f64()
                    * 100.0,
            ),
            _ => None,
        };
        last_cpu = (now, cpu_now);
        let window = latencies.take();
        if capture::in_progress() {
            perturbed = true;
            continue;
        }
        if std::mem::take(&mut perturbed) {
            // Those samples measured the profiler (its CPU, the memory it held, any stall it
            // caused), not the service: the RSS rule fired on the memory a capture had just used.
            for (_, detector) in &mut detectors {
                detector.rebaseline();
            }
            continue;
        }
        let stats = cache.get().stats();
        for (signal, detector) in &mut detectors {
            let value = match signal {
                Signal::CpuPercent => cpu_percent,
                Signal::RssMb => process::rss_bytes().map(|b| b as f64 / (1024.0 * 1024.0)),
                Signal::P99Ms => (window.requests > 0).then_some(window.p99_ms),
                Signal::SweepPauseMs => Some(stats.last_sweep_pause_us as f64 / 1000.0),
            };
            let Some(value) = value else { continue };
            let Some(firing) = detector.observe(value, now) else {
                continue;
            };
            let capture = match Capture::begin() {
                Ok(capture) => capture,
                Err(error) => {
                    let reason = match error {
                        ProfileError::NoHeadroom(_) => "memory",
                        _ => "busy",
                    };
                    tracing::warn!(rule = ?signal, value, %error, "anomaly: capture skipped");
                    metrics::counter!(capture::SKIPPED, "reason" => reason).increment(1);
                    continue;
                }
            };
            tracing::warn!(rule = ?signal, value, reason = firing.reason, "anomaly: taking profiles");
            perturbed = true;
            let dump = dump(
                &settings,
                capture,
                *signal,
                detector.rule,
                &firing,
                &window,
                stats.clone(),
            )
            .await;
            match dump {
                Ok(path) => tracing::info!(path = %path.display(), "anomaly profiles written"),
                Err(error) => tracing::error!(%error, "anomaly profiles not written"),
            }
        }
    }
}

async fn dump(
    settings: &Settings,
    capture: Capture,
    signal: Signal,
    rule: Rule,
    firing: &Firing,
    window: &WindowSummary,
    cache: leaklab_cache::Stats,
) -> std::io::Result<PathBuf> {
    let at = chrono::Utc::now();
    let name = format!(
        "{}-{}",
        at.format("%Y%m%dT%H%M%S%.3fZ"),
        serde_json::to_value(signal)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    );
    let dir = settings.dir.join(&name);
    tokio::fs::create_dir_all(&dir).await?;
    let mut files = Vec::new();
    let mut errors = Vec::new();
    match heap::profile(&capture, Format::Pprof).await {
        Ok(bytes) => {
            tokio::fs::write(dir.join("heap.pb.gz"), bytes).await?;
            files.push("heap.pb.gz".to_owned());
        }
        Err(e) => errors.push(format!("heap: {e}")),
    }
    match cpu::profile(&capture, settings.cpu_profile, Format::Pprof).await {
        Ok(bytes) => {
            tokio::fs::write(dir.join("cpu.pb"), bytes).await?;
            files.push("cpu.pb".to_owned());
        }
        Err(e) => errors.push(format!("cpu: {e}")),
    }
    let capture = capture.finish().await;
    let trigger = Trigger {
        rule: signal,
        thresholds: rule,
        firing,
        at,
        window,
        cache,
        files,
        errors,
        capture,
    };
    let json = serde_json::to_vec_pretty(&trigger).map_err(std::io::Error::other)?;
    tokio::fs::write(dir.join("trigger.json"), json).await?;
    prune(&settings.dir).await;
    Ok(dir)
}

/// Keeps the newest dumps only (names start with their UTC time, so they sort by age).
async fn prune(dir: &Path) {
    let Ok(mut names) = list_dumps(dir).await else {
        return;
    };
    names.sort();
    let excess = names.len().saturating_sub(KEPT_DUMPS);
    for old in &names[..excess] {
        let _ = tokio::fs::remove_dir_all(dir.join(old)).await;
    }
}

pub async fn list_dumps(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(e),
    };
    while let Some(entry) = entries.next_entry().await? {
        if entry.file_type().await?.is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> Rule {
        "10,50,100,1m".parse().unwrap()
    }

    #[test]
    fn parses_rules_and_refuses_bad_ones() {
        assert_eq!(
            rule(),
            Rule {
                min: 10.0,
                diff_pct: 50.0,
                abs: 100.0,
                cooldown: Duration::from_secs(60)
            }
        );
        for bad in ["", "1,2,3", "a,1,1,1s", "1,1,1,soon", "-1,1,1,1s"] {
            assert!(bad.parse::<Rule>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fires_on_a_jump_above_the_recent_average_but_not_below_min() {
        let mut d = Detector::new(rule());
        let t = Instant::now();
        for _ in 0..5 {
            assert!(d.observe(20.0, t).is_none(), "steady is not anomalous");
        }
        let f = d.observe(31.0, t).expect("55 % above a 20 average");
        assert_eq!(f.reason, "jump");
        assert_eq!(f.recent_average, Some(20.0));

        let mut quiet = Detector::new(rule());
        quiet.observe(1.0, t);
        assert!(
            quiet.observe(9.0, t).is_none(),
            "a 9x jump under min stays quiet"
        );
    }

    #[test]
    fn fires_at_the_absolute_threshold_and_respects_the_cooldown() {
        let mut d = Detector::new(rule());
        let t = Instant::now();
        assert_eq!(d.observe(150.0, t).unwrap().reason, "absolute");
        assert!(
            d.observe(500.0, t + Duration::from_secs(30)).is_none(),
            "cooling down"
        );
        assert!(d.observe(500.0, t + Duration::from_secs(61)).is_some());
    }

    /// The rules `serve` runs with by default (config.rs).
    fn defaults() -> crate::config::ProfilingArgs {
        #[derive(clap::Parser)]
        struct Serve {
            #[command(flatten)]
            profiling: crate::config::ProfilingArgs,
        }
        <Serve as clap::Parser>::try_parse_from(["serve"])
            .expect("the defaults parse")
            .profiling
    }

    /// Feeds one sample a second; returns when (index) and why the rule fired.
    fn firings(signal: Signal, rule: Rule, samples: &[f64]) -> Vec<(usize, &'static str)> {
        let mut d = Detector::for_signal(signal, rule);
        let t = Instant::now();
        samples
            .iter()
            .enumerate()
            .filter_map(|(i, &v)| {
                d.observe(v, t + Duration::from_secs(i as u64))
                    .map(|f| (i, f.reason))
            })
            .collect()
    }

    /// Process CPU (% of a core, one sample a second) of a release `fixed` service, measured:
    /// idle, then three rounds of `wrk -t1 -c32 -d15s` on the warm page as
    /// service/bench/page_vs_bare.sh sends them, 15 s apart.
    const CPU_FIXED_WRK: &[f64] = &[
        1., 1., 1., 0., 1., 77., 83., 77., 79., 82., 83., 80., 77., 86., 84., 75., 82., 82., 75.,
        75., 1., 1., 0., 1., 1., 1., 1., 1., 0., 1., 0., 2., 1., 0., 31., 85., 69., 79., 76., 80.,
        68., 80., 83., 74., 83., 84., 80., 82., 80., 35., 1., 0., 1., 1., 0., 1., 1., 1., 0., 1.,
        1., 1., 1., 0., 61., 83., 81., 81., 75., 93., 79., 84., 76., 78., 82., 80., 83., 86., 82.,
        3.,
    ];

    #[test]
    fn the_start_of_load_on_a_fixed_service_is_not_an_anomaly() {
        let cpu = defaults().anomaly_cpu;
        assert_eq!(firings(Signal::CpuPercent, cpu, CPU_FIXED_WRK), []);
        // What the rule fired on when any recent average would do: the first loaded second
        // against the idle ones.
        let idle = CPU_FIXED_WRK[..5].iter().sum::<f64>() / 5.0;
        let loaded = CPU_FIXED_WRK[5];
        assert!(loaded >= cpu.min && loaded >= idle * (1.0 + cpu.diff_pct / 100.0));
    }

    #[test]
    fn a_cpu_jump_from_a_busy_baseline_still_fires() {
        let cpu = defaults().anomaly_cpu;
        let mut samples = CPU_FIXED_WRK[5..20].to_vec();
        samples.push(130.0);
        assert_eq!(firings(Signal::CpuPercent, cpu, &samples), [(15, "jump")]);

        // One quiet second in the window: the baseline is not yet busy.
        let mut samples = vec![80.0; HISTORY];
        samples[3] = 10.0;
        samples.push(130.0);
        assert_eq!(firings(Signal::CpuPercent, cpu, &samples), []);
    }

    #[test]
    fn a_leaky_service_still_trips_the_sweep_and_p99_rules() {
        let rules = defaults();
        // Shaped on leaky runs (release build, 200 M hits pre-aged, 1,500 page views/s): sweep
        // pauses of 280-355 ms from the first second; the p99 rule fired at 240 ms against a
        // recent average of 2.1 ms.
        let sweep = [280.7, 301.2, 326.8, 290.4];
        assert_eq!(
            firings(Signal::SweepPauseMs, rules.anomaly_sweep, &sweep),
            [(0, "absolute")],
            "once per cooldown"
        );
        let p99 = [36.7, 2.4, 2.1, 1.9, 240.0, 239.9];
        assert_eq!(
            firings(Signal::P99Ms, rules.anomaly_p99, &p99),
            [(4, "jump")]
        );
    }

    #[test]
    fn after_a_capture_the_baseline_is_built_again() {
        let mut d = Detector::for_signal(Signal::CpuPercent, defaults().anomaly_cpu);
        let t = Instant::now();
        for _ in 0..HISTORY {
            d.observe(80.0, t);
        }
        d.rebaseline();
        for _ in 0..HISTORY - 1 {
            d.observe(80.0, t);
        }
        assert!(
            d.observe(140.0, t).is_none(),
            "nine samples are no baseline"
        );
        assert_eq!(
            d.observe(140.0, t).map(|f| f.reason),
            Some("jump"),
            "a full, busy window again"
        );
    }
}
