//! Builds the application from its configuration and runs it until shut down.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use leaklab_cache::Mode;
use sqlx::MySqlPool;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admission::LimitPolicy;
use crate::cache_mode::{self, ModeOrigin};
use crate::cache_slot::{ActivityCache, CacheSlot};
use crate::config::{DatabaseArgs, LimitKind, ServeArgs};
use crate::error::AppError;
use crate::profiling::anomaly::{self, Signal};
use crate::profiling::window::LatencyWindow;
use crate::server::{self, HttpLimits};
use crate::store::redis::{RedisSettings, RedisStore};
use crate::{cache_slot, repair, routes};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

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
    pub cache_sweep: cache_slot::SweepPacing,
    pub shutdown_grace: Duration,
    pub profile_dir: std::path::PathBuf,
    /// `None`: the anomaly profiler is off.
    pub anomaly: Option<anomaly::Settings>,
    /// The trace sampler the HTTP middleware runs; `None` when OpenTelemetry is off.
    pub request_sampler: Option<crate::telemetry::RequestSampler>,
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
            cache_sweep: cache_slot::SweepPacing {
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

/// Shared by every request; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    db: MySqlPool,
    redis: Arc<RedisStore>,
    cache: Arc<CacheSlot>,
    /// Where the cache's mode came from. Written together with a swap, under this lock, so that
    /// a reader never sees the new cache with the old origin.
    mode_origin: RwLock<ModeOrigin>,
    /// One flip at a time: the stored mode and the running one are changed in the same order.
    flips: tokio::sync::Mutex<()>,
    latencies: Arc<LatencyWindow>,
    settings: Settings,
    limits: HttpLimits,
}

impl AppState {
    /// As `serve` builds it: the cache in the mode a runtime flip stored in MySQL, if there is
    /// one (announced at WARN), else in `settings.cache.mode`. Fails when the stored mode cannot
    /// be read, rather than silently start in the environment's mode ([`cache_mode::restore`]).
    pub async fn restore(
        db: MySqlPool,
        redis: RedisStore,
        settings: Settings,
        limits: HttpLimits,
    ) -> anyhow::Result<Self> {
        let (mode, origin) = cache_mode::restore(&db, settings.cache.mode).await?;
        Ok(Self::build(db, redis, settings, limits, mode, origin))
    }

    /// In `settings.cache.mode`, without looking for a stored runtime flip (tests and tools;
    /// `serve` uses [`AppState::restore`]). With the default request-head limits.
    pub fn new(db: MySqlPool, redis: RedisStore, settings: Settings) -> Self {
        Self::with_limits(db, redis, settings, HttpLimits::default())
    }

    /// As [`AppState::new`], with `limits`.
    pub fn with_limits(
        db: MySqlPool,
        redis: RedisStore,
        settings: Settings,
        limits: HttpLimits,
    ) -> Self {
        let mode = settings.cache.mode;
        Self::build(db, redis, settings, limits, mode, ModeOrigin::ENVIRONMENT)
    }

    fn build(
        db: MySqlPool,
        redis: RedisStore,
        settings: Settings,
        limits: HttpLimits,
        mode: Mode,
        origin: ModeOrigin,
    ) -> Self {
        // Installs the process-wide recorder before the first request is counted.
        crate::metrics::global();
        let cache = Arc::new(CacheSlot::new(leaklab_cache::Config {
            mode,
            ..settings.cache.clone()
        }));
        Self(Arc::new(Inner {
            db,
            redis: Arc::new(redis),
            cache,
            mode_origin: RwLock::new(origin),
            flips: tokio::sync::Mutex::new(()),
            latencies: Arc::default(),
            settings,
            limits,
        }))
    }

    pub fn db(&self) -> &MySqlPool {
        &self.0.db
    }

    pub fn redis(&self) -> &RedisStore {
        &self.0.redis
    }

    pub fn redis_arc(&self) -> Arc<RedisStore> {
        self.0.redis.clone()
    }

    pub fn cache(&self) -> Arc<ActivityCache> {
        self.0.cache.get()
    }

    /// The cache in use and where its mode came from, read together.
    pub fn cache_and_origin(&self) -> (Arc<ActivityCache>, ModeOrigin) {
        let origin = self.0.mode_origin.read().expect("mode origin poisoned");
        (self.0.cache.get(), *origin)
    }

    /// A runtime flip (`PUT /admin/cache`): stores `mode` in MySQL, then installs a new, empty
    /// cache of that mode. If the store fails, nothing changes and the error says why (503 when
    /// MySQL is unreachable). The flip runs as a task of its own, so a caller that goes away
    /// mid-flip cannot leave the stored mode changed and the running one not.
    pub async fn flip_cache(
        &self,
        mode: Mode,
    ) -> Result<(Arc<ActivityCache>, ModeOrigin), AppError> {
        use tracing::Instrument;
        let state = self.clone();
        let flip = async move {
            let _one_at_a_time = state.0.flips.lock().await;
            let at = cache_mode::store(state.db(), mode).await.map_err(|error| {
                tracing::warn!(%mode, %error, "cache not swapped: the flip could not be stored");
                AppError::from(error)
            })?;
            let mut origin = state.0.mode_origin.write().expect("mode origin poisoned");
            let cache = state.0.cache.swap(mode);
            *origin = ModeOrigin::runtime_flip(at);
            Ok((cache, *origin))
        };
        tokio::spawn(flip.in_current_span())
            .await
            .map_err(|error| AppError::Internal(anyhow::Error::new(error).context("cache flip")))?
    }

    pub fn latencies(&self) -> &LatencyWindow {
        &self.0.latencies
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// Limits on the request line and headers (JSON 414/431 past them).
    pub fn limits(&self) -> HttpLimits {
        self.0.limits
    }

    /// Starts the sweeper and the Redis repairer; they stop when `shutdown` is cancelled.
    pub fn spawn_background(&self, shutdown: &CancellationToken) {
        if !self.0.settings.cache_sweep.max_interval.is_zero() {
            tokio::spawn(cache_slot::run_sweeper(
                self.0.cache.clone(),
                self.0.settings.cache_sweep,
                shutdown.clone(),
            ));
        }
        if let Some(anomaly) = &self.0.settings.anomaly {
            tokio::spawn(anomaly::run(
                anomaly.clone(),
                self.0.latencies.clone(),
                self.0.cache.clone(),
                shutdown.clone(),
            ));
        }
        tokio::spawn(repair::run(
            self.redis_arc(),
            Duration::from_millis(500),
            shutdown.clone(),
        ));
    }
}

/// A pool that connects lazily, so the service starts (and reports not-ready) while MySQL is
/// down, and answers 503 quickly instead of hanging when it goes away.
pub fn mysql_pool(args: &DatabaseArgs) -> anyhow::Result<MySqlPool> {
    let options: MySqlConnectOptions = args
        .database_url
        .parse()
        .context("DATABASE_URL is not a valid MySQL URL")?;
    Ok(MySqlPoolOptions::new()
        .max_connections(args.db_max_connections)
        .acquire_timeout(args.db_acquire_timeout)
        .connect_lazy_with(options))
}

pub async fn migrate(pool: &MySqlPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("applying migrations failed")
}

/// Serves `state` on `listener` until `shutdown` resolves, then drains in-flight requests for up
/// to the configured grace period.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve(listener, None, state, shutdown).await
}

/// As [`run`], with the admin and debug routes on `admin` when given (and then only there).
/// One shutdown covers both listeners: both stop accepting at once and share the grace period.
pub async fn serve(
    public: TcpListener,
    admin: Option<TcpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let background = CancellationToken::new();
    state.spawn_background(&background);
    let grace = state.settings().shutdown_grace;
    let limits = state.limits();
    let stop = CancellationToken::new();
    let mut servers = Vec::new();
    match admin {
        None => {
            let app: Router = routes::app(state);
            servers.push(server::serve(public, app, limits, stop.clone()));
        }
        Some(admin) => {
            let (public_app, admin_app) = routes::split(state);
            servers.push(server::serve(public, public_app, limits, stop.clone()));
            servers.push(server::serve(admin, admin_app, limits, stop.clone()));
        }
    }
    let signal = {
        let stop = stop.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight requests");
            stop.cancel();
        }
    };
    let servers = async move {
        tokio::join!(signal, futures::future::join_all(servers));
    };
    let deadline = async move {
        stop.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        _ = servers => {}
        _ = deadline => {
            tracing::warn!(?grace, "in-flight requests still running after the grace period");
        }
    }
    background.cancel();
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

pub fn redis_store(args: &crate::config::RedisArgs) -> anyhow::Result<RedisStore> {
    RedisStore::new(RedisSettings {
        url: args.redis_url.clone(),
        prefix: args.redis_prefix.clone(),
        op_timeout: args.redis_timeout,
        hot_ttl: args.redis_hot_ttl,
        summary_ttl: args.redis_summary_ttl,
    })
    .context("REDIS_URL is not a valid Redis URL")
}
