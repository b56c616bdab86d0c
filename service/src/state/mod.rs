//! The application state every handler and middleware reads: the stores, the cache slot, the
//! latency window and the settings. Built once by `startup` (or by a test), cheap to clone.

mod settings;

use std::sync::{Arc, RwLock};

use leaklab_cache::Mode;
use sqlx::MySqlPool;

use crate::cache::mode::{self as cache_mode, ModeOrigin};
use crate::cache::{ActivityCache, CacheSlot};
use crate::error::AppError;
use crate::profiling::window::LatencyWindow;
use crate::server::HttpLimits;
use crate::store::redis::RedisStore;

pub use settings::{LimitPolicy, Settings};

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

    /// The slot behind [`AppState::cache`], for the background workers that outlive one cache.
    pub fn cache_slot(&self) -> Arc<CacheSlot> {
        self.0.cache.clone()
    }

    pub fn latencies_arc(&self) -> Arc<LatencyWindow> {
        self.0.latencies.clone()
    }
}
