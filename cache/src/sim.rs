//! `cache-sim`: replays a key trace against one cache mode, read-through style (get; on a miss,
//! set), and reports hit ratio, structure size and speed as JSON. The binary only parses
//! arguments and calls [`run`], so tests drive the simulator in-process.

use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Zipf};

use crate::{Config, ConfigError, ManualClock, Mode, Stats, build_with_clock};

pub mod alloc_counter;

/// Command-line arguments of `cache-sim`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "cache-sim",
    about = "Replay a key trace read-through (get; on a miss, set) against one cache mode"
)]
pub struct Args {
    /// Cache implementation: leaky (gcache v0.0.1), fixed (gcache v0.0.2) or moka.
    #[arg(long)]
    pub mode: Mode,
    /// Maximum number of items.
    #[arg(long, default_value_t = 10_000)]
    pub capacity: usize,
    /// Expiry given to every set, e.g. "30s", "5m". LFU modes measure it in virtual time
    /// (--tick per operation) so replays are deterministic; moka uses wall-clock time.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub ttl: Option<Duration>,
    /// Virtual time that passes per operation in the LFU modes.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1us")]
    pub tick: Duration,
    /// Run the reclaim sweep every N operations.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub sweep_every: Option<u64>,
    /// Print one JSON line of figures every N operations.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_every: Option<u64>,
    /// Trace file: one unsigned integer key per line (blank lines are skipped).
    #[arg(long, conflicts_with_all = ["keys", "ops", "zipf", "seed"])]
    pub trace: Option<PathBuf>,
    /// Generated workload: number of distinct keys.
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: u64,
    /// Generated workload: number of operations.
    #[arg(long, default_value_t = 5_000_000)]
    pub ops: u64,
    /// Generated workload: Zipf exponent (>= 0; 0 is uniform).
    #[arg(long, default_value_t = 1.0)]
    pub zipf: f64,
    /// Generated workload: RNG seed (same seed, same trace).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid cache configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot read trace {path}: {source}")]
    ReadTrace { path: PathBuf, source: io::Error },
    #[error("{path}:{line}: expected one unsigned integer key per line, found {found:?}")]
    BadLine {
        path: PathBuf,
        line: usize,
        found: String,
    },
    #[error("invalid workload: {0}")]
    Workload(String),
    #[error("cannot write output: {0}")]
    Output(#[from] io::Error),
}

/// Final figures of a replay.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub mode: Mode,
    pub capacity: usize,
    pub ops: u64,
    pub hits: u64,
    pub misses: u64,
    pub hit_ratio: f64,
    pub items: u64,
    pub nodes: u64,
    /// The cache's own estimate (see [`Stats`]).
    pub heap_bytes: u64,
    /// Bytes live in the process allocator minus those live before the cache was built; only
    /// when the binary installed [`alloc_counter::CountingAlloc`].
    pub measured_heap_bytes: Option<u64>,
    pub evictions: u64,
    pub expired: u64,
    pub sweeps: u64,
    pub total_sweep_pause_us: u64,
    pub max_sweep_pause_us: u64,
    pub max_sweep_nodes: u64,
    pub elapsed_s: f64,
    pub ops_per_sec: f64,
}

#[derive(serde::Serialize)]
struct Checkpoint<'a> {
    checkpoint: u64,
    elapsed_s: f64,
    #[serde(flatten)]
    stats: &'a Stats,
}

/// Loads or generates the trace, replays it, writes checkpoint lines and the final report (one
/// JSON object per line) to `out`, and returns the report.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Report, SimError> {
    let config = Config {
        mode: args.mode,
        capacity: args.capacity,
        ttl: args.ttl,
    };
    config.validate()?;
    let trace = match &args.trace {
        Some(path) => load_trace(path)?,
        None => zipf_trace(args.keys, args.ops, args.zipf, args.seed)?,
    };

    let heap_before = alloc_counter::live_bytes();
    let clock = Arc::new(ManualClock::new());
    let cache = build_with_clock::<u64, u64>(&config, clock.clone());
    let mut total_sweep_pause = Duration::ZERO;
    let start = Instant::now();
    for (i, &key) in trace.iter().enumerate() {
        if args.ttl.is_some() {
            clock.advance(args.tick);
        }
        if cache.get(&key).value.is_none() {
            cache.set(key, key);
        }
        let done = i as u64 + 1;
        if args.sweep_every.is_some_and(|n| done.is_multiple_of(n)) {
            total_sweep_pause += cache.sweep().pause;
        }
        if args
            .checkpoint_every
            .is_some_and(|n| done.is_multiple_of(n))
        {
            let stats = cache.stats();
            let line = Checkpoint {
                checkpoint: done,
                elapsed_s: start.elapsed().as_secs_f64(),
                stats: &stats,
            };
            writeln!(out, "{}", to_json(&line))?;
        }
    }
    let elapsed = start.elapsed();
    let stats = cache.stats();
    let measured_heap_bytes = alloc_counter::live_bytes()
        .zip(heap_before)
        .map(|(after, before)| after.saturating_sub(before));
    let ops = trace.len() as u64;
    let report = Report {
        mode: args.mode,
        capacity: config.effective_capacity(),
        ops,
        hits: stats.hits,
        misses: stats.misses,
        hit_ratio: stats.hit_ratio,
        items: stats.items,
        nodes: stats.nodes,
        heap_bytes: stats.heap_bytes,
        measured_heap_bytes,
        evictions: stats.evictions,
        expired: stats.expired,
        sweeps: stats.sweeps,
        total_sweep_pause_us: crate::stats::duration_micros(total_sweep_pause),
        max_sweep_pause_us: stats.max_sweep_pause_us,
        max_sweep_nodes: stats.max_sweep_nodes,
        elapsed_s: elapsed.as_secs_f64(),
        ops_per_sec: ops as f64 / elapsed.as_secs_f64().max(1e-9),
    };
    writeln!(out, "{}", to_json(&report))?;
    Ok(report)
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Our report types only hold numbers and strings, which always serialize.
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// Reads the whole file at once and parses it in place: a 5M-line trace loads in well under a
/// second, and the replay timing then measures the cache only.
pub fn load_trace(path: &std::path::Path) -> Result<Vec<u64>, SimError> {
    let bytes = fs::read(path).map_err(|source| SimError::ReadTrace {
        path: path.to_owned(),
        source,
    })?;
    parse_trace(&bytes).map_err(|(line, found)| SimError::BadLine {
        path: path.to_owned(),
        line,
        found,
    })
}

/// Parses one key per line; on failure returns the 1-based line number and its text.
pub fn parse_trace(bytes: &[u8]) -> Result<Vec<u64>, (usize, String)> {
    let mut keys = Vec::with_capacity(bytes.len() / 8);
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let text = raw.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let key = std::str::from_utf8(text)
            .ok()
            .and_then(|s| s.parse::<u64>().ok());
        match key {
            Some(k) => keys.push(k),
            None => return Err((i + 1, String::from_utf8_lossy(raw).into_owned())),
        }
    }
    Ok(keys)
}

/// `ops` keys drawn from a Zipf distribution over `0..keys` (key 0 the most popular).
pub fn zipf_trace(keys: u64, ops: u64, exponent: f64, seed: u64) -> Result<Vec<u64>, SimError> {
    if keys == 0 {
        return Err(SimError::Workload("--keys must be at least 1".into()));
    }
    let zipf = Zipf::new(keys as f64, exponent)
        .map_err(|e| SimError::Workload(format!("--zipf {exponent}: {e}")))?;
    let len = usize::try_from(ops)
        .map_err(|_| SimError::Workload(format!("--ops {ops} is too large")))?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut trace = Vec::new();
    trace
        .try_reserve_exact(len)
        .map_err(|_| SimError::Workload(format!("--ops {ops}: not enough memory for the trace")))?;
    // Samples are ranks in 1..=keys; the cast back is exact for any realistic key count.
    trace.extend((0..len).map(|_| (zipf.sample(&mut rng) as u64).saturating_sub(1)));
    Ok(trace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["cache-sim"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).unwrap()
    }

    #[test]
    fn parse_trace_reports_line_numbers() {
        assert_eq!(parse_trace(b"1\n2\r\n\n 3 \n").unwrap(), vec![1, 2, 3]);
        assert_eq!(parse_trace(b"1\nx2\n3").unwrap_err(), (2, "x2".into()));
        assert_eq!(parse_trace(b"-1").unwrap_err().0, 1);
        assert_eq!(parse_trace(b"18446744073709551616").unwrap_err().0, 1);
    }

    #[test]
    fn replays_a_trace_file() {
        let path = std::env::temp_dir().join(format!("leaklab-trace-{}.txt", std::process::id()));
        fs::write(&path, "1\n2\n1\n3\n1\n").unwrap();
        let a = args(&[
            "--mode",
            "leaky",
            "--capacity",
            "2",
            "--trace",
            path.to_str().unwrap(),
        ]);
        let report = run(&a, &mut Vec::new()).unwrap();
        fs::write(&path, "1\n2\n\n-3\n").unwrap();
        let err = run(&a, &mut Vec::new()).unwrap_err().to_string();
        let _ = fs::remove_file(&path);
        assert_eq!((report.ops, report.hits, report.misses), (5, 2, 3));
        assert_eq!(report.nodes, 3, "key 1 was hit twice");
        assert!(err.ends_with(":4: expected one unsigned integer key per line, found \"-3\""));
    }

    #[test]
    fn zipf_is_deterministic_and_in_range() {
        let a = zipf_trace(100, 1000, 1.0, 7).unwrap();
        assert_eq!(a, zipf_trace(100, 1000, 1.0, 7).unwrap());
        assert!(a.iter().all(|&k| k < 100));
        assert!(zipf_trace(0, 10, 1.0, 1).is_err());
        assert!(zipf_trace(10, 10, -1.0, 1).is_err());
        assert!(zipf_trace(10, 10, f64::NAN, 1).is_err());
    }

    #[test]
    fn run_prints_checkpoints_and_report() {
        let a = args(&[
            "--mode",
            "fixed",
            "--capacity",
            "50",
            "--keys",
            "1000",
            "--ops",
            "2000",
            "--checkpoint-every",
            "1000",
            "--sweep-every",
            "500",
            "--ttl",
            "1ms",
        ]);
        let mut out = Vec::new();
        let report = run(&a, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["checkpoint"], 1000);
        assert_eq!(lines[2]["ops"], 2000);
        assert_eq!(report.hits + report.misses, 2000);
        assert_eq!(report.sweeps, 4);
        assert!(report.items <= 50);
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        assert!(Args::try_parse_from(["cache-sim", "--mode", "lru"]).is_err());
        assert!(
            Args::try_parse_from(["cache-sim", "--mode", "fixed", "--sweep-every", "0"]).is_err()
        );
        let mut out = Vec::new();
        let zero = args(&["--mode", "leaky", "--capacity", "0"]);
        assert!(matches!(run(&zero, &mut out), Err(SimError::Config(_))));
        let missing = args(&["--mode", "leaky", "--trace", "/nonexistent/trace.txt"]);
        let err = run(&missing, &mut out).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/trace.txt"));
    }
}
