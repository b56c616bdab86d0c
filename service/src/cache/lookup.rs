//! The request path's reads and writes of the in-process cache, each as a span, with the time it
//! waited for the cache lock recorded on the span and in `leaklab_cache_lock_wait_seconds`: where
//! the leaky cache's sweep shows up in a request.

use std::sync::Arc;

use leaklab_cache::Lookup;
use tracing::field::Empty;

use super::slot::ActivityCache;
use crate::domain::ActivitySummary;

// Numbers go into spans as i64: tracing-opentelemetry records unsigned values as strings.

/// The in-process cache read, as a span: how long it waited for the cache lock is where the
/// leaky cache's sweep shows up in a request.
pub fn get(cache: &ActivityCache, activity_id: u64) -> Option<Arc<ActivitySummary>> {
    let span = crate::telemetry::request_span!(
        "cache.get",
        cache.mode = cache.mode().as_str(),
        cache.operation = "get",
        cache.hit = Empty,
        cache.lock_wait_us = Empty,
    );
    let lookup = lookup(cache, &activity_id);
    span.record("cache.hit", lookup.value.is_some());
    span.record("cache.lock_wait_us", lookup.lock_wait.as_micros() as i64);
    crate::metrics::record_lock_wait(cache.mode(), "get", lookup.lock_wait);
    lookup.value
}

/// One cache read that never stalls a runtime worker behind a sweep. The cache lock is a
/// blocking mutex: a request that waited for it on a worker thread would hold up every other
/// task of that worker, so during a sweep each of the two workers stopped at its first cache
/// read and every later request waited unseen, before its first span. Waiting in
/// `block_in_place` hands the worker's other tasks to another thread first (as Go's scheduler
/// parks a goroutine blocked on a mutex), so each request that arrives during a sweep waits
/// inside its own `cache.get` span, where a trace shows the wait.
fn lookup(cache: &ActivityCache, key: &u64) -> Lookup<Arc<ActivitySummary>> {
    if let Some(found) = cache.try_get(key) {
        return found;
    }
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
            tokio::task::block_in_place(|| cache.get(key))
        }
        // A current-thread runtime (a test's) has no other worker to hand its tasks to.
        _ => cache.get(key),
    }
}

/// The in-process cache reads of a page's related activities, as ONE span: a warm page view
/// makes half as many spans as with a span per read. `cache.lock_wait_us` is the sum of the
/// reads' lock waits (they run one after the other), `cache.lock_wait_max_us` the longest.
pub fn get_many(cache: &ActivityCache, ids: &[u64]) -> Vec<Option<Arc<ActivitySummary>>> {
    let span = crate::telemetry::request_span!(
        "cache.get_many",
        cache.mode = cache.mode().as_str(),
        cache.operation = "get_many",
        cache.keys = ids.len() as i64,
        cache.hits = Empty,
        cache.lock_wait_us = Empty,
        cache.lock_wait_max_us = Empty,
    );
    let mut hits = 0_i64;
    let mut total = std::time::Duration::ZERO;
    let mut max = std::time::Duration::ZERO;
    let values = ids
        .iter()
        .map(|id| {
            let lookup = lookup(cache, id);
            crate::metrics::record_lock_wait(cache.mode(), "get", lookup.lock_wait);
            hits += i64::from(lookup.value.is_some());
            total += lookup.lock_wait;
            max = max.max(lookup.lock_wait);
            lookup.value
        })
        .collect();
    if !span.is_disabled() {
        span.record("cache.hits", hits);
        span.record("cache.lock_wait_us", total.as_micros() as i64);
        span.record("cache.lock_wait_max_us", max.as_micros() as i64);
    }
    values
}

/// The in-process cache write, as a span: eviction is where the leaky cache walks its list.
pub fn set(cache: &ActivityCache, activity_id: u64, summary: Arc<ActivitySummary>) {
    let span = crate::telemetry::request_span!(
        "cache.set",
        cache.mode = cache.mode().as_str(),
        cache.operation = "set",
        cache.evicted = Empty,
        cache.nodes_walked = Empty,
        cache.lock_wait_us = Empty,
    );
    let outcome = cache.set(activity_id, summary);
    span.record("cache.evicted", outcome.evicted as i64);
    span.record("cache.nodes_walked", outcome.nodes_walked as i64);
    span.record("cache.lock_wait_us", outcome.lock_wait.as_micros() as i64);
    crate::metrics::record_lock_wait(cache.mode(), "set", outcome.lock_wait);
}
