//! Command line and environment: every flag has an env fallback, and `--help` shows them all.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use leaklab_cache::Mode;
use serde::Serialize;

/// Share of root traces (requests that arrive without a `traceparent`) that are sampled: the
/// default of `OTEL_TRACES_SAMPLER_ARG`. Not 1.0: at saturation a sampled page view costs about
/// 1.6 times the CPU of an unsampled one (recording and exporting its spans), so every percent
/// sampled costs about a third of a percent of throughput (docs/tracing-overhead.md), and the
/// goal is at most 5 % for all of tracing. The price is paid at the collector: Jaeger's tail
/// sampling (deploy/jaeger/config.yaml) can only keep a slow or failed trace the service
/// exported, so it sees this share of the slow root requests. Callers that send a sampled
/// `traceparent` are always followed (parent-based), so the load generator (`--trace-sample`, 1.0
/// by default) still gets every one of its requests traced; set the ratio to 1.0 when traffic
/// without a `traceparent` must be tail-sampled.
pub const DEFAULT_ROOT_SAMPLING_RATIO: f64 = 0.01;

#[derive(Debug, Parser)]
#[command(
    name = "reservation-service",
    version,
    about = "The leaklab reservation API: a monolith on MySQL and Redis with an in-process LFU cache"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API.
    Serve(Box<ServeArgs>),
    /// Fill the database with a realistic data set (Zipf-popular activities).
    Seed(SeedArgs),
    /// Apply the embedded migrations and exit.
    Migrate(DatabaseArgs),
}

fn duration(s: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(s)
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log filter, in tracing's EnvFilter syntax.
    #[arg(long, env = "RUST_LOG", default_value = "info", global = true)]
    pub log_filter: String,
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// How the API's concurrency limit is set (`crate::admission`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LimitKind {
    Adaptive,
    Fixed,
}

/// OpenTelemetry tracing, configured by the standard `OTEL_*` variables (each has a flag too).
///
/// Export is off unless an endpoint is given: spans are then still made, so responses and log
/// lines carry trace ids and incoming `traceparent`s are continued, but nothing leaves the process.
#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// OTLP collector base URL, e.g. http://127.0.0.1:4317 (gRPC) or http://127.0.0.1:4318
    /// (HTTP; `/v1/traces` is appended). Unset: traces are not exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,
    /// OTLP transport: `grpc` or `http/protobuf`.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_PROTOCOL", value_enum, default_value_t = OtlpProtocol::Grpc, global = true)]
    pub otlp_protocol: OtlpProtocol,
    /// Upper bound on one export call; a slow collector costs the export thread this much, never
    /// a request.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TIMEOUT", value_parser = millis, default_value = "5000", global = true)]
    pub otlp_timeout_ms: Duration,
    /// `service.name` of every span.
    #[arg(
        long,
        env = "OTEL_SERVICE_NAME",
        default_value = "reservation-service",
        global = true
    )]
    pub otel_service_name: String,
    /// More resource attributes, `key=value,key=value`.
    #[arg(long, env = "OTEL_RESOURCE_ATTRIBUTES", global = true)]
    pub otel_resource_attributes: Option<String>,
    /// Sampler: `parentbased_traceidratio` (default), `parentbased_always_on`,
    /// `parentbased_always_off`, `traceidratio`, `always_on` or `always_off`.
    #[arg(long, env = "OTEL_TRACES_SAMPLER", value_enum, default_value_t = SamplerKind::ParentbasedTraceidratio, global = true)]
    pub otel_traces_sampler: SamplerKind,
    /// Ratio of root traces (requests without a `traceparent`) sampled by the `*traceidratio`
    /// samplers; callers that send a `traceparent` decide for themselves. 0.01 by default, so that
    /// requests without one cost little more than unsampled ones (docs/tracing.md, "Sampling").
    #[arg(
        long,
        env = "OTEL_TRACES_SAMPLER_ARG",
        default_value_t = DEFAULT_ROOT_SAMPLING_RATIO,
        global = true
    )]
    pub otel_traces_sampler_arg: f64,
    /// Spans waiting for export; past it new spans are dropped (and counted), never waited for.
    #[arg(
        long,
        env = "OTEL_BSP_MAX_QUEUE_SIZE",
        default_value_t = 2048,
        global = true
    )]
    pub otel_bsp_max_queue_size: usize,
    /// Delay between two batch exports, in milliseconds.
    #[arg(long, env = "OTEL_BSP_SCHEDULE_DELAY", value_parser = millis, default_value = "5000", global = true)]
    pub otel_bsp_schedule_delay_ms: Duration,
    /// Turns OpenTelemetry off entirely: no spans, no trace ids in logs or responses.
    #[arg(long, env = "OTEL_SDK_DISABLED", global = true)]
    pub otel_sdk_disabled: bool,
}

fn millis(s: &str) -> Result<Duration, std::num::ParseIntError> {
    s.parse().map(Duration::from_millis)
}

impl Default for TelemetryArgs {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            otlp_protocol: OtlpProtocol::Grpc,
            otlp_timeout_ms: Duration::from_secs(5),
            otel_service_name: "reservation-service".into(),
            otel_resource_attributes: None,
            otel_traces_sampler: SamplerKind::ParentbasedTraceidratio,
            otel_traces_sampler_arg: DEFAULT_ROOT_SAMPLING_RATIO,
            otel_bsp_max_queue_size: 2048,
            otel_bsp_schedule_delay_ms: Duration::from_secs(5),
            otel_sdk_disabled: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OtlpProtocol {
    Grpc,
    #[value(name = "http/protobuf")]
    HttpProtobuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum SamplerKind {
    AlwaysOn,
    AlwaysOff,
    Traceidratio,
    ParentbasedAlwaysOn,
    ParentbasedAlwaysOff,
    ParentbasedTraceidratio,
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// MySQL URL, e.g. mysql://root@127.0.0.1:3306/leaklab.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Largest number of MySQL connections in the pool.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 32)]
    pub db_max_connections: u32,
    /// How long a request waits for a free MySQL connection before it gets a 503.
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT", value_parser = duration, default_value = "200ms")]
    pub db_acquire_timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct RedisArgs {
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub redis_url: String,
    /// Prefix of every Redis key this service writes (lets several labs or tests share a Redis).
    #[arg(long, env = "REDIS_PREFIX", default_value = "leaklab:")]
    pub redis_prefix: String,
    /// Upper bound on one Redis round trip before reads fall back to MySQL.
    #[arg(long, env = "REDIS_TIMEOUT", value_parser = duration, default_value = "50ms")]
    pub redis_timeout: Duration,
    /// Lifetime of Redis copies of counters and per-user state (bounds any staleness).
    #[arg(long, env = "REDIS_HOT_TTL", value_parser = duration, default_value = "10m")]
    pub redis_hot_ttl: Duration,
    /// Lifetime of Redis copies of activity summaries.
    #[arg(long, env = "REDIS_SUMMARY_TTL", value_parser = duration, default_value = "5m")]
    pub redis_summary_ttl: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct CacheArgs {
    /// In-process cache: `leaky` (gcache v0.0.1), `fixed` (v0.0.2) or `moka`.
    #[arg(long, env = "CACHE_MODE", default_value = "leaky")]
    pub cache_mode: Mode,
    /// Largest number of activity summaries held in process.
    #[arg(long, env = "CACHE_CAPACITY", default_value_t = 10_000)]
    pub cache_capacity: usize,
    /// Expiry of each cached summary.
    #[arg(long, env = "CACHE_TTL", value_parser = duration, default_value = "10m")]
    pub cache_ttl: Duration,
    /// Longest time between two expiry sweeps (each walks the cache's frequency list under its
    /// lock); 0 turns the sweep off.
    #[arg(long, env = "CACHE_SWEEP_INTERVAL", value_parser = duration, default_value = "10s")]
    pub cache_sweep_interval: Duration,
    /// A sweep also starts after this many cache lookups since the last one, so sweeps come
    /// more often as load rises, the way Go's GC cycles follow allocation; 0 paces by the
    /// interval alone. The default sweeps about every 8 s at the lab's base load (1,000 page
    /// views/s, 6 lookups each) and every 4 s at its 2,000/s peaks (README, "docker compose up").
    #[arg(long, env = "CACHE_SWEEP_LOOKUPS", default_value_t = 48_000)]
    pub cache_sweep_lookups: u64,
    /// Cache hits to replay into the cache before serving (`0`: none). Time compression: the
    /// leaky list grows as if that many hits had already happened. The default is about 14 hours
    /// of 1,000 page views/s at 6 lookups each (see docs/default-run.md, "Why it dips"): 40.1 M leaked nodes,
    /// whose sweeps (about 290 ms on the lab's machine) each pass the 250 ms quota.
    #[arg(long, env = "CACHE_PREAGE_HITS", default_value_t = 300_000_000)]
    pub cache_preage_hits: u64,
    /// Activities (ids 1..=N, the most popular after `seed`) the replayed hits go to.
    #[arg(long, env = "CACHE_PREAGE_KEYS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub cache_preage_keys: u32,
    /// Zipf exponent of the replayed hits (the load generator's default is 1.0).
    #[arg(long, env = "CACHE_PREAGE_ZIPF", default_value_t = 1.0)]
    pub cache_preage_zipf: f64,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Do not apply the embedded migrations at start.
    #[arg(long, env = "SKIP_MIGRATIONS")]
    pub skip_migrations: bool,
    /// Deadline of every request; past it the service answers 504 and stops the work.
    #[arg(long, env = "REQUEST_QUOTA", value_parser = duration, default_value = "250ms")]
    pub request_quota: Duration,
    /// API requests served at once; more are shed at once with a 503. With the adaptive limit,
    /// its ceiling and starting point.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,
    /// `adaptive`: the limit shrinks (down to --min-in-flight) while even the fastest requests
    /// take longer than --limit-target-latency, and grows back once they are fast again.
    /// `fixed`: always --max-in-flight.
    #[arg(long, env = "CONCURRENCY_LIMIT", value_enum, default_value_t = LimitKind::Adaptive)]
    pub concurrency_limit: LimitKind,
    /// Floor of the adaptive limit.
    #[arg(long, env = "MIN_IN_FLIGHT", default_value_t = 16)]
    pub min_in_flight: usize,
    /// Latency the fastest request of a 100-ms window may take before the adaptive limit
    /// shrinks: a queue that every request waits in, not a stall that slows some.
    #[arg(long, env = "LIMIT_TARGET_LATENCY", value_parser = duration, default_value = "20ms")]
    pub limit_target_latency: Duration,
    /// Largest accepted request body.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    pub max_body_bytes: usize,
    /// Longest request target (path and query string), in bytes; longer ones get a JSON 414.
    #[arg(long, env = "MAX_URI_BYTES", default_value_t = 4096)]
    pub max_uri_bytes: usize,
    /// Largest total size of the request's header fields, in bytes; larger get a JSON 431.
    #[arg(long, env = "MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,
    /// Most header fields in one request; more get a JSON 431.
    #[arg(long, env = "MAX_HEADERS", default_value_t = 64)]
    pub max_headers: usize,
    /// How long SIGTERM/SIGINT waits for in-flight requests before exiting.
    #[arg(long, env = "SHUTDOWN_GRACE", value_parser = duration, default_value = "10s")]
    pub shutdown_grace: Duration,
    /// Related activities shown on each page.
    #[arg(long, env = "RELATED_ACTIVITIES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=50))]
    pub related_activities: u32,
    #[command(flatten)]
    pub profiling: ProfilingArgs,
    /// Bearer token of the admin routes (`/admin/...`); unset disables them.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Serve the admin and debug routes (`/admin/*`, `/debug/*`) on this address only, e.g.
    /// 127.0.0.1:9091; the public listener then answers 404 for them. Unset: they are served on
    /// `--listen`. `/metrics` and the probes stay on `--listen` either way.
    #[arg(long, env = "ADMIN_LISTEN_ADDR")]
    pub admin_listen_addr: Option<SocketAddr>,
}

#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Activities to create.
    #[arg(long, default_value_t = 10_000)]
    pub activities: u32,
    /// Distinct users who reserve (user ids 1..=N).
    #[arg(long, default_value_t = 100_000)]
    pub users: u64,
    /// Reservations per user on average.
    #[arg(long, default_value_t = 3)]
    pub reservations_per_user: u32,
    /// Zipf exponent of activity popularity (larger: fewer, hotter activities).
    #[arg(long, default_value_t = 1.0)]
    pub zipf: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Delete all activities and reservations first, so ids start at 1, and the cache mode a
    /// runtime flip stored (the service then starts in CACHE_MODE's mode).
    #[arg(long)]
    pub reset: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ProfilingArgs {
    /// Where the anomaly profiler writes its dumps (served at /debug/profiles).
    #[arg(long, env = "PROFILE_DIR", default_value = "profiles")]
    pub profile_dir: std::path::PathBuf,
    /// Take CPU and heap profiles automatically when a rule below fires.
    #[arg(long, env = "ANOMALY_PROFILING", default_value_t = true, action = clap::ArgAction::Set)]
    pub anomaly_profiling: bool,
    /// How often the anomaly profiler samples its signals.
    #[arg(long, env = "ANOMALY_INTERVAL", value_parser = duration, default_value = "1s")]
    pub anomaly_interval: Duration,
    /// Length of the CPU profile taken when a rule fires.
    #[arg(long, env = "ANOMALY_CPU_PROFILE", value_parser = duration, default_value = "5s")]
    pub anomaly_cpu_profile: Duration,
    /// Rule on process CPU (% of one core): MIN,DIFF%,ABS,COOLDOWN — fires when the value is at
    /// least MIN and either reaches ABS or jumps DIFF% above its recent average.
    #[arg(long, env = "ANOMALY_CPU", default_value = "50,50,180,2m")]
    pub anomaly_cpu: Rule,
    /// Rule on resident memory (MiB): MIN,DIFF%,ABS,COOLDOWN.
    #[arg(long, env = "ANOMALY_RSS", default_value = "256,30,2048,2m")]
    pub anomaly_rss: Rule,
    /// Rule on the p99 latency of the last interval (ms): MIN,DIFF%,ABS,COOLDOWN.
    #[arg(long, env = "ANOMALY_P99", default_value = "50,100,250,1m")]
    pub anomaly_p99: Rule,
    /// Rule on the cache's last sweep pause (ms): MIN,DIFF%,ABS,COOLDOWN.
    #[arg(long, env = "ANOMALY_SWEEP", default_value = "20,100,100,1m")]
    pub anomaly_sweep: Rule,
}

/// An anomaly rule as the `--anomaly-*` flags give it: `MIN,DIFF%,ABS,COOLDOWN`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rule {
    /// Below this the rule never fires (quiet processes are not anomalous).
    pub min: f64,
    /// Fires on a jump of this many percent above the recent average...
    pub diff_pct: f64,
    /// ...or at this absolute value, whatever the average.
    pub abs: f64,
    #[serde(serialize_with = "secs")]
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
