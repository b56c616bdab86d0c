//! The periodic sweep that reclaims the cache's expired entries.
//!
//! The sweep is the lab's stand-in for Go's GC mark phase (see the cache crate's docs): it walks
//! the whole frequency list under the cache lock, so in `leaky` mode its cost grows with every
//! leaked node and requests that need the cache wait behind it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use leaklab_cache::{Mode, SweepReport};
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;

use super::slot::{ActivityCache, CacheSlot};

/// When the sweep runs. Like Go's collector, which starts a cycle once the program has allocated
/// enough since the last one, the sweep is paced by the work the cache does: it runs after every
/// `lookups` lookups (hits and misses), so it runs more often at a peak, when requests can least
/// afford it, and the interval is only a backstop for an idle cache, whose expired entries must
/// still be reclaimed. A wall-clock period alone would cost the same at every load: with it, the
/// lab's leaky service either never missed the quota or missed it every second, peaks or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepPacing {
    /// Longest time between two sweeps; zero turns the sweep off.
    pub max_interval: Duration,
    /// Lookups between two sweeps; zero paces by `max_interval` alone.
    pub lookups: u64,
}

/// How often the sweeper reads the cache's lookup count: small against any sweep's cost, and
/// the count is published without the cache lock.
const PACING_POLL: Duration = Duration::from_millis(5);

/// Runs the sweep, paced by `pacing`, until shutdown. The sweep runs on a blocking thread, as
/// reclaim work in a real service would, and holds the cache lock for its whole walk.
pub async fn run_sweeper(slot: Arc<CacheSlot>, pacing: SweepPacing, shutdown: CancellationToken) {
    if pacing.max_interval.is_zero() {
        return;
    }
    let mut last = SweepMark::now(&slot.get());
    loop {
        let cache = tokio::select! {
            _ = shutdown.cancelled() => return,
            cache = sweep_due(&slot, pacing, &last) => cache,
        };
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
            cache.lookups_since_last = Empty,
            cache.pause_us = Empty,
            cache.lock_wait_us = Empty,
            otel.status_code = Empty,
        );
        // Every sweep is exported, not 1 % of them: a few spans a second, and the one thing a
        // slow request's trace cannot show is what held the lock it waited for.
        crate::telemetry::always_sample(&span);
        let lookups_since_last = lookups(&cache).saturating_sub(last.lookups);
        span.record("cache.lookups_since_last", lookups_since_last as i64);
        let swept = cache.clone();
        match tokio::task::spawn_blocking(move || swept.sweep()).await {
            Ok(report) => span.in_scope(|| record_sweep(&span, mode, &report)),
            Err(error) => span.in_scope(|| {
                span.record("otel.status_code", "ERROR");
                tracing::error!(%error, "cache sweep failed");
            }),
        }
        last = SweepMark::now(&cache);
        if !Arc::ptr_eq(&cache, &slot.get()) {
            // Swapped out while being swept: this may be the last reference to millions of nodes.
            tokio::task::spawn_blocking(move || drop(cache));
        }
    }
}

/// Where the last sweep left off: the cache it swept, its lookup count and the time. Only a weak
/// reference: after a swap the old cache must be freed where `CacheSlot::swap` frees it (a
/// blocking thread), not here on a runtime worker, which freeing millions of nodes would stall.
struct SweepMark {
    cache: Weak<ActivityCache>,
    lookups: u64,
    at: tokio::time::Instant,
}

impl SweepMark {
    fn now(cache: &Arc<ActivityCache>) -> Self {
        Self {
            cache: Arc::downgrade(cache),
            lookups: lookups(cache),
            at: tokio::time::Instant::now(),
        }
    }
}

fn lookups(cache: &Arc<ActivityCache>) -> u64 {
    let stats = cache.stats();
    stats.hits + stats.misses
}

/// Waits until a sweep is due and returns the cache to sweep: the current one, which a swap may
/// have replaced since the last sweep (its count then starts from zero). No reference to a cache
/// is held while waiting: after a swap, this task must not be the one left to free the old cache.
async fn sweep_due(slot: &CacheSlot, pacing: SweepPacing, last: &SweepMark) -> Arc<ActivityCache> {
    let deadline = last.at + pacing.max_interval;
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline || (pacing.lookups > 0 && lookups_due(&slot.get(), pacing, last)) {
            return slot.get();
        }
        let wake = if pacing.lookups > 0 {
            (now + PACING_POLL).min(deadline)
        } else {
            deadline
        };
        tokio::time::sleep_until(wake).await;
    }
}

fn lookups_due(cache: &Arc<ActivityCache>, pacing: SweepPacing, last: &SweepMark) -> bool {
    let base = if Weak::ptr_eq(&Arc::downgrade(cache), &last.cache) {
        last.lookups
    } else {
        0
    };
    lookups(cache).saturating_sub(base) >= pacing.lookups
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
