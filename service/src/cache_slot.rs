//! The in-process activity cache, swappable at runtime (`PUT /admin/cache`), and the periodic
//! sweep that reclaims its expired entries.
//!
//! The sweep is the lab's stand-in for Go's GC mark phase (see the cache crate's docs): it walks
//! the whole frequency list under the cache lock, so in `leaky` mode its cost grows with every
//! leaked node and requests that need the cache wait behind it.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use leaklab_cache::{Cache, Config, Mode, SweepReport};
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;

use crate::domain::ActivitySummary;

pub type ActivityCache = dyn Cache<u64, Arc<ActivitySummary>>;

pub struct CacheSlot {
    current: RwLock<Arc<ActivityCache>>,
    config: RwLock<Config>,
}

impl CacheSlot {
    pub fn new(config: Config) -> Self {
        Self {
            current: RwLock::new(leaklab_cache::build(&config)),
            config: RwLock::new(config),
        }
    }

    /// The cache to use for one request; a swap does not disturb requests holding the old one.
    pub fn get(&self) -> Arc<ActivityCache> {
        self.current.read().expect("cache slot poisoned").clone()
    }

    /// Installs a new, empty cache of `mode`. The old one is dropped on a blocking thread:
    /// freeing millions of leaked nodes takes long enough to stall a request worker.
    pub fn swap(&self, mode: Mode) -> Arc<ActivityCache> {
        let config = {
            let mut config = self.config.write().expect("cache slot poisoned");
            config.mode = mode;
            config.clone()
        };
        let fresh = leaklab_cache::build(&config);
        let old = std::mem::replace(
            &mut *self.current.write().expect("cache slot poisoned"),
            fresh.clone(),
        );
        tokio::task::spawn_blocking(move || drop(old));
        tracing::info!(%mode, "cache swapped");
        fresh
    }
}

/// Runs the sweep every `every` until shutdown. The sweep runs on a blocking thread, as reclaim
/// work in a real service would, and holds the cache lock for its whole walk.
pub async fn run_sweeper(slot: Arc<CacheSlot>, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let cache = slot.get();
        let mode = cache.mode();
        // A root span of its own: the sweep belongs to no request, yet it is what the requests
        // that waited for the cache lock meanwhile were waiting for.
        let span = tracing::info_span!(
            parent: None,
            "cache.sweep",
            cache.mode = mode.as_str(),
            cache.operation = "sweep",
            cache.nodes_walked = Empty,
            cache.items_expired = Empty,
            cache.pause_us = Empty,
            cache.lock_wait_us = Empty,
            otel.status_code = Empty,
        );
        match tokio::task::spawn_blocking(move || cache.sweep()).await {
            Ok(report) => span.in_scope(|| record_sweep(&span, mode, &report)),
            Err(error) => span.in_scope(|| {
                span.record("otel.status_code", "ERROR");
                tracing::error!(%error, "cache sweep failed");
            }),
        }
    }
}

fn record_sweep(span: &tracing::Span, mode: Mode, report: &SweepReport) {
    span.record("cache.nodes_walked", report.nodes_walked as i64);
    span.record("cache.items_expired", report.items_expired as i64);
    span.record("cache.pause_us", report.pause.as_micros() as i64);
    span.record("cache.lock_wait_us", report.lock_wait.as_micros() as i64);
    crate::metrics::record_sweep(mode, report);
    tracing::debug!(
        cache.mode = %mode,
        nodes_walked = report.nodes_walked,
        items_expired = report.items_expired,
        pause_us = report.pause.as_micros() as u64,
        lock_wait_us = report.lock_wait.as_micros() as u64,
        "cache sweep"
    );
}
