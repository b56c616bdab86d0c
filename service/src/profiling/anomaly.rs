//! Automatic profiling on anomalies, after the Go tool Holmes: a few signals are sampled every
//! interval; a rule fires when its signal is at least `min` and either reaches `abs` or jumps
//! `diff` percent above its recent average, at most once per `cooldown`. On firing, a CPU
//! profile, a heap profile and `trigger.json` (the rule, the figures that tripped it, the slowest
//! requests' trace ids, the cache's figures) are written to a new folder under the profile
//! directory, which `GET /debug/profiles` lists and serves.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::cpu::{self, Format};
use super::window::{LatencyWindow, WindowSummary};
use super::{heap, process};
use crate::cache_slot::CacheSlot;

/// Samples kept for the "recent average" a jump is measured against.
const HISTORY: usize = 10;
/// Dumps kept on disk; older ones are deleted.
const KEPT_DUMPS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rule {
    /// Below this the rule never fires (quiet processes are not anomalous).
    pub min: f64,
    /// Fires on a jump of this many percent above the recent average...
    pub diff_pct: f64,
    /// ...or at this absolute value, whatever the average.
    pub abs: f64,
    #[serde(serialize_with = "crate::profiling::anomaly::secs")]
    pub cooldown: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// `MIN,DIFF%,ABS,COOLDOWN`, e.g. `50,100,250,1m`.
impl FromStr for Rule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let [min, diff, abs, cooldown] = parts[..] else {
            return Err(format!("expected MIN,DIFF%,ABS,COOLDOWN, got {s:?}"));
        };
        let number = |v: &str, what: &str| {
            v.trim_end_matches('%')
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| format!("{what} must be a non-negative number, got {v:?}"))
        };
        Ok(Rule {
            min: number(min, "MIN")?,
            diff_pct: number(diff, "DIFF")?,
            abs: number(abs, "ABS")?,
            cooldown: humantime::parse_duration(cooldown)
                .map_err(|e| format!("COOLDOWN {cooldown:?}: {e}"))?,
        })
    }
}

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
        }
    }

    pub fn observe(&mut self, value: f64, now: Instant) -> Option<Firing> {
        let average = (!self.history.is_empty())
            .then(|| self.history.iter().sum::<f64>() / self.history.len() as f64);
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
        } else if average
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
        .map(|&(signal, rule)| (signal, Detector::new(rule)))
        .collect();
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_cpu = (Instant::now(), process::cpu_time());
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
        let stats = cache.get().stats();
        for (signal, detector) in &mut detectors {
            let value = match signal {
                Signal::CpuPercent => cpu_percent,
                Signal::RssMb => process::rss_bytes().map(|b| b as f64 / (1024.0 * 1024.0)),
                Signal::P99Ms => (window.requests > 0).then_some(window.p99_ms),
                Signal::SweepPauseMs => Some(stats.last_sweep_pause_us as f64 / 1000.0),
            };
            let Some(value) = value else { continue };
            if let Some(firing) = detector.observe(value, now) {
                tracing::warn!(rule = ?signal, value, reason = firing.reason, "anomaly: taking profiles");
                let dump = dump(
                    &settings,
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
}

async fn dump(
    settings: &Settings,
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
    match heap::profile(Format::Pprof).await {
        Ok(bytes) => {
            tokio::fs::write(dir.join("heap.pb.gz"), bytes).await?;
            files.push("heap.pb.gz".to_owned());
        }
        Err(e) => errors.push(format!("heap: {e}")),
    }
    match cpu::profile(settings.cpu_profile, Format::Pprof).await {
        Ok(bytes) => {
            tokio::fs::write(dir.join("cpu.pb"), bytes).await?;
            files.push("cpu.pb".to_owned());
        }
        Err(e) => errors.push(format!("cpu: {e}")),
    }
    let trigger = Trigger {
        rule: signal,
        thresholds: rule,
        firing,
        at,
        window,
        cache,
        files,
        errors,
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
}
