//! What the request path reads, validated from the command line once at startup.

use std::time::Duration;

use anyhow::Context;

use crate::cache::SweepPacing;
use crate::config::{LimitKind, ServeArgs};
use crate::profiling::anomaly::{self, Signal};
use crate::server::HttpLimits;
use crate::telemetry::RequestSampler;

/// How the limit is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitPolicy {
    /// Always `max_in_flight`.
    Fixed,
    /// Between `min` and `max_in_flight`, from measured latency (`middleware::admission`).
    Adaptive { min: usize, target: Duration },
}

/// Settings the request path reads.
#[derive(Debug, Clone)]
pub struct Settings {
    pub request_quota: Duration,
    /// The limit (`Fixed`) or its ceiling (`Adaptive`).
    pub max_in_flight: usize,
    pub limit_policy: LimitPolicy,
    pub max_body_bytes: usize,
    pub related_activities: u32,
    pub admin_token: Option<String>,
    pub cache: leaklab_cache::Config,
    pub cache_sweep: SweepPacing,
    pub shutdown_grace: Duration,
    pub profile_dir: std::path::PathBuf,
    /// `None`: the anomaly profiler is off.
    pub anomaly: Option<anomaly::Settings>,
    /// The trace sampler the HTTP middleware runs; `None` when OpenTelemetry is off.
    pub request_sampler: Option<RequestSampler>,
}

impl Settings {
    pub fn from_args(args: &ServeArgs) -> anyhow::Result<Self> {
        let cache = leaklab_cache::Config {
            mode: args.cache.cache_mode,
            capacity: args.cache.cache_capacity,
            ttl: Some(args.cache.cache_ttl),
        };
        cache.validate().context("invalid cache settings")?;
        anyhow::ensure!(
            !args.request_quota.is_zero(),
            "--request-quota must be greater than zero"
        );
        anyhow::ensure!(args.max_in_flight > 0, "--max-in-flight must be at least 1");
        let limit_policy = match args.concurrency_limit {
            LimitKind::Fixed => LimitPolicy::Fixed,
            LimitKind::Adaptive => {
                anyhow::ensure!(
                    (1..=args.max_in_flight).contains(&args.min_in_flight),
                    "--min-in-flight must be between 1 and --max-in-flight"
                );
                anyhow::ensure!(
                    !args.limit_target_latency.is_zero()
                        && args.limit_target_latency < args.request_quota,
                    "--limit-target-latency must be above zero and below --request-quota"
                );
                LimitPolicy::Adaptive {
                    min: args.min_in_flight,
                    target: args.limit_target_latency,
                }
            }
        };
        Ok(Self {
            request_quota: args.request_quota,
            max_in_flight: args.max_in_flight,
            limit_policy,
            max_body_bytes: args.max_body_bytes,
            related_activities: args.related_activities,
            admin_token: args.admin_token.clone().filter(|t| !t.is_empty()),
            cache,
            cache_sweep: SweepPacing {
                max_interval: args.cache.cache_sweep_interval,
                lookups: args.cache.cache_sweep_lookups,
            },
            shutdown_grace: args.shutdown_grace,
            profile_dir: args.profiling.profile_dir.clone(),
            anomaly: args.profiling.anomaly_profiling.then(|| {
                let p = &args.profiling;
                anomaly::Settings {
                    interval: p.anomaly_interval,
                    dir: p.profile_dir.clone(),
                    cpu_profile: p.anomaly_cpu_profile,
                    rules: vec![
                        (Signal::CpuPercent, p.anomaly_cpu),
                        (Signal::RssMb, p.anomaly_rss),
                        (Signal::P99Ms, p.anomaly_p99),
                        (Signal::SweepPauseMs, p.anomaly_sweep),
                    ],
                }
            }),
            // Set by whoever built the tracer provider (main: from telemetry::init).
            request_sampler: None,
        })
    }
}

impl HttpLimits {
    pub fn from_args(args: &ServeArgs) -> anyhow::Result<Self> {
        let limits = Self {
            max_uri_bytes: args.max_uri_bytes,
            max_header_bytes: args.max_header_bytes,
            max_headers: args.max_headers,
        };
        anyhow::ensure!(
            limits.max_uri_bytes >= 64 && limits.max_header_bytes >= 256 && limits.max_headers >= 8,
            "--max-uri-bytes must be at least 64, --max-header-bytes at least 256 and \
             --max-headers at least 8"
        );
        Ok(limits)
    }
}
