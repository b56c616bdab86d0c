//! Command line: parse, validate into a [`RunConfig`], run, print, write
//! outputs and map the verdict to the exit status.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::error::{Error, Result};
use crate::flip::FlipConfig;
use crate::progress::ProgressMode;
use crate::recording::HIST_HIGH_US;
use crate::schedule::{RatePolicy, Stage};
use crate::verify::VerifyConfig;
use crate::workload::{Scenario, WorkloadConfig};
use crate::{EXIT_USAGE, merge, report, run};

#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    version,
    about = "Open-model HTTP load generator with an availability verdict",
    long_about = "Open-model HTTP load generator with an availability verdict.\n\n\
Requests are sent at their scheduled times whatever the server does; latency is measured \
from each request's intended send time, so a stalled server counts against every request \
it delays. A request is good when it gets a non-5xx answer within the quota.\n\n\
Exit status: 0 SLO met, 1 SLO missed, 2 usage or setup error, \
3 inconclusive (the generator fell behind and dropped requests, or nothing was measured), \
4 --verify found a lost, duplicated or unexplained write."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load a target and write summary.json, windows.csv, histograms.json, report.html.
    Run(RunArgs),
    /// Combine the output directories of several runs (e.g. several machines) into one report.
    Merge(MergeArgs),
}

fn duration(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 250ms, 90s, 2m)"))
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Base URL of the service, plain http (e.g. http://127.0.0.1:8080).
    #[arg(long)]
    pub target: String,
    /// Requests per second. With --stages: the rate the first stage ramps from (default 0).
    /// Without --rate or --stages: the lab's default shape (see --stages).
    #[arg(long, requires = "duration")]
    pub rate: Option<f64>,
    /// Run length at --rate (e.g. 60s, 5m).
    #[arg(long, value_parser = duration, requires = "rate", conflicts_with = "stages")]
    pub duration: Option<Duration>,
    /// Ramps DURATION:RATE,...; each ramps linearly from the previous rate, e.g. 30s:1000,2m:3000.
    /// Repeat a rate to hold it (30s:1000,2m:1000). Default (no --rate either): the lab's
    /// reproduction shape, a 20 s ramp to 1000/s then three cycles of 40 s at 1000/s and a 20 s
    /// peak at 2000/s (3 m 20 s): regular traffic with peak hours at twice the base, as in the
    /// incident.
    #[arg(long, value_delimiter = ',')]
    pub stages: Option<Vec<Stage>>,
    /// Workload: page reads, reservations, or a mix (90 % page, 7 % reserve, 3 % cancel).
    #[arg(long, value_enum, default_value_t = Scenario::Page)]
    pub scenario: Scenario,
    /// Client-side request quota: no complete answer by intended time + quota is a timeout.
    #[arg(long, value_parser = duration, default_value = "250ms")]
    pub quota: Duration,
    /// Availability objective (good / all) the run is judged against.
    #[arg(long, default_value_t = 0.999)]
    pub slo: f64,
    /// Connections, hence requests in flight at most.
    #[arg(long, default_value_t = 256)]
    pub connections: usize,
    /// Seed of the workload (request stream); trace ids stay random.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of activities in the service's seed data (ids 1..=N).
    #[arg(long, default_value_t = 10_000)]
    pub activities: u32,
    /// Number of users in the service's seed data (ids 1..=M).
    #[arg(long, default_value_t = 100_000)]
    pub users: u32,
    /// Zipf exponent of activity popularity (0 = uniform).
    #[arg(long, default_value_t = 1.0)]
    pub zipf: f64,
    /// Output directory (created if missing).
    #[arg(long, default_value = "loadtest-out")]
    pub out: PathBuf,
    /// Jaeger UI base URL for trace links.
    #[arg(long, default_value = "http://localhost:16686")]
    pub jaeger_url: String,
    /// Probability that a request's traceparent has the sampled flag set.
    #[arg(long, default_value_t = 1.0)]
    pub trace_sample: f64,
    /// How many of the slowest requests' trace ids to keep.
    #[arg(long, default_value_t = 20)]
    pub trace_slowest: usize,
    /// How many failed requests' trace ids to keep, per failure class.
    #[arg(long, default_value_t = 20)]
    pub trace_failed: usize,
    /// Dispatching a request later than this after its intended time counts it as late.
    #[arg(long, value_parser = duration, default_value = "10ms")]
    pub lag_threshold: Duration,
    /// Switch the service's cache mode at this offset (PUT /admin/cache).
    #[arg(long, value_parser = duration)]
    pub flip_at: Option<Duration>,
    /// Cache mode to switch to at --flip-at.
    #[arg(long, default_value = "fixed")]
    pub flip_to: String,
    /// Bearer token for /admin/cache (required by --flip-at).
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Runtime threads. 1 (default) runs everything on one thread: the least CPU
    /// per request and the steadiest timing; raise it for rates one core can't sustain.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Live display: bar on a terminal, plain lines every 5 s otherwise.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// After the run, check every acknowledged reserve and cancel in MySQL (and Redis against
    /// MySQL): nothing lost, duplicated or changed without an answer. Needs --scenario reserve
    /// or mix and --verify-database-url. Exit status 4 on a violation.
    #[arg(long)]
    pub verify: bool,
    /// MySQL URL of the service's database, read directly by --verify.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub verify_database_url: Option<String>,
    /// Redis URL of the service, for --verify to compare its copies with MySQL (skipped if unset).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub verify_redis_url: Option<String>,
    /// The service's Redis key prefix (its --redis-prefix).
    #[arg(long, env = "REDIS_PREFIX", default_value = "leaklab:")]
    pub redis_prefix: String,
    /// How long --verify waits for Redis (and late requests) to settle before reporting disagreement.
    #[arg(long, value_parser = duration, default_value = "10s")]
    pub verify_wait: Duration,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Output directories of `loadtest run`.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where to write the merged outputs.
    #[arg(long, default_value = "loadtest-merged")]
    pub out: PathBuf,
    /// Judge against this SLO instead of the first run's.
    #[arg(long)]
    pub slo: Option<f64>,
}

/// The default load: sized for the lab's 2-core machine, under the rate where the service in
/// `fixed` mode first misses the SLO with the load generator beside it (about 2,400 page views/s
/// in a ramp on a slow day, 8,000/s on a fast one), so that the dips in `leaky` mode are the leak's.
///
/// The peaks are twice the base so that they stand out in the leaky run: the sweep is paced by
/// cache lookups, so it comes twice as often at a peak (every 4 s against every 8 s). At 1,500/s
/// against 2,000/s the peaks dipped no more often than the rest in one CI run of two (5 % of peak
/// seconds against 9 %).
pub const LAB_STAGES: &str = "20s:1000,40s:1000,1s:2000,19s:2000,1s:1000,39s:1000,1s:2000,\
     19s:2000,1s:1000,39s:1000,1s:2000,19s:2000";

pub fn lab_stages() -> Vec<Stage> {
    LAB_STAGES
        .split(',')
        .map(|s| s.parse().expect("LAB_STAGES parses"))
        .collect()
}

fn usage(msg: String) -> Error {
    Error::Usage(msg)
}

impl RunArgs {
    pub fn to_config(&self) -> Result<run::RunConfig> {
        let policy = match (&self.stages, self.rate, self.duration) {
            (Some(st), start, _) => RatePolicy::ramps(start.unwrap_or(0.0), st)?,
            (None, Some(rate), Some(d)) => RatePolicy::constant(rate, d)?,
            (None, None, None) => RatePolicy::ramps(0.0, &lab_stages())?,
            _ => return Err(usage("give --rate and --duration, or --stages".into())),
        };
        if !(self.slo > 0.0 && self.slo <= 1.0) {
            return Err(usage(format!("--slo must be in (0, 1], got {}", self.slo)));
        }
        if !(0.0..=1.0).contains(&self.trace_sample) {
            return Err(usage(format!(
                "--trace-sample must be in [0, 1], got {}",
                self.trace_sample
            )));
        }
        if self.quota.is_zero() || self.quota.as_micros() >= HIST_HIGH_US as u128 {
            return Err(usage("--quota must be > 0 and < 60s".into()));
        }
        if self.threads == 0 || self.threads > 1024 {
            return Err(usage("--threads must be in 1..=1024".into()));
        }
        if self.connections == 0 || self.connections > 100_000 {
            return Err(usage("--connections must be in 1..=100000".into()));
        }
        let flip = match self.flip_at {
            None => None,
            Some(at) if at >= policy.duration() => {
                return Err(usage(format!(
                    "--flip-at {} is not before the end of the run ({})",
                    humantime::format_duration(at),
                    humantime::format_duration(policy.duration())
                )));
            }
            Some(at) => Some(FlipConfig {
                at,
                to: self.flip_to.clone(),
                token: self
                    .admin_token
                    .clone()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| usage("--flip-at needs --admin-token or ADMIN_TOKEN".into()))?,
            }),
        };
        let verify = if self.verify {
            if self.scenario == Scenario::Page {
                return Err(usage(
                    "--verify checks writes: use --scenario reserve or mix (page only reads)"
                        .into(),
                ));
            }
            Some(VerifyConfig {
                database_url: self
                    .verify_database_url
                    .clone()
                    .filter(|u| !u.is_empty())
                    .ok_or_else(|| {
                        usage("--verify needs --verify-database-url or DATABASE_URL".into())
                    })?,
                redis_url: self.verify_redis_url.clone().filter(|u| !u.is_empty()),
                redis_prefix: self.redis_prefix.clone(),
                wait: self.verify_wait,
            })
        } else {
            None
        };
        Ok(run::RunConfig {
            target: self.target.clone(),
            policy,
            stages: self.stages.clone(),
            workload: WorkloadConfig {
                scenario: self.scenario,
                activities: self.activities,
                users: self.users,
                zipf_exponent: self.zipf,
                seed: self.seed,
            },
            quota: self.quota,
            slo: self.slo,
            connections: self.connections,
            jaeger_url: self.jaeger_url.clone(),
            trace_sample: self.trace_sample,
            keep_slowest: self.trace_slowest,
            keep_failed: self.trace_failed,
            lag_threshold: self.lag_threshold,
            flip,
            admin_token: self.admin_token.clone().filter(|t| !t.is_empty()),
            progress: self.progress,
            verify,
        })
    }
}

async fn execute(cli: Cli) -> Result<u8> {
    let (summary, recording, out) = match cli.command {
        Command::Run(args) => {
            let cfg = args.to_config()?;
            // Fail on an unwritable directory before loading anything, not after.
            std::fs::create_dir_all(&args.out).map_err(|source| Error::Write {
                path: args.out.clone(),
                source,
            })?;
            let r = run::run(&cfg).await?;
            (r.summary, r.recording, args.out)
        }
        Command::Merge(args) => {
            if let Some(slo) = args.slo
                && !(slo > 0.0 && slo <= 1.0)
            {
                return Err(usage(format!("--slo must be in (0, 1], got {slo}")));
            }
            let m = merge::merge(&args.dirs, args.slo)?;
            (m.summary, m.recording, args.out)
        }
    };
    let files = report::write_all(&out, &summary, &recording)?;
    print!("{}", report::text::summary_text(&summary));
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(summary.verdict.exit_code)
}

fn parse<I, T>(args: I) -> std::result::Result<Cli, u8>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Cli::try_parse_from(args).map_err(|e| {
        let _ = e.print();
        if e.use_stderr() { EXIT_USAGE } else { 0 }
    })
}

async fn execute_reporting(cli: Cli) -> u8 {
    match execute(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadtest: {e}");
            e.exit_code()
        }
    }
}

/// Parse `args` (including the program name), run on the caller's runtime,
/// and return the exit status. Never panics on bad input: clap and
/// validation errors print and give 2.
pub async fn run_cli<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match parse(args) {
        Ok(cli) => execute_reporting(cli).await,
        Err(code) => code,
    }
}

/// The binary's entry point: like [`run_cli`], on a runtime sized by `--threads`.
pub fn main<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match parse(args) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let threads = match &cli.command {
        Command::Run(a) => a.threads.max(1),
        Command::Merge(_) => 1,
    };
    let rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    match rt {
        Ok(rt) => rt.block_on(execute_reporting(cli)),
        Err(e) => {
            eprintln!("loadtest: cannot start the runtime: {e}");
            EXIT_USAGE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> RunArgs {
        let argv = ["loadtest", "run", "--target", "http://127.0.0.1:1"]
            .iter()
            .chain(args);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Run(run) => run,
            other => panic!("not a run: {other:?}"),
        }
    }

    #[test]
    fn no_rate_means_the_lab_shape() {
        let stages = lab_stages();
        let total: Duration = stages.iter().map(|s| s.duration).sum();
        assert_eq!(total, Duration::from_secs(200));
        let peak = stages.iter().map(|s| s.rate).fold(0.0, f64::max);
        assert_eq!(peak, 2000.0);
        assert!(run_args(&[]).to_config().is_ok());
    }

    #[test]
    fn rate_needs_a_duration() {
        let argv = ["loadtest", "run", "--target", "http://x", "--rate", "10"];
        assert!(Cli::try_parse_from(argv).is_err());
        assert!(
            run_args(&["--rate", "10", "--duration", "5s"])
                .to_config()
                .is_ok()
        );
    }
}
