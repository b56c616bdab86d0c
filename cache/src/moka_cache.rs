//! [`Mode::Moka`]: `moka::sync::Cache` behind the same trait, the production choice.

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;

use crate::stats::{Figures, duration_micros};
use crate::{Cache, Lookup, Mode, SetOutcome, Stats, SweepReport};

/// moka has no frequency list and no cache-wide lock, so `nodes` and every `lock_wait` are 0,
/// and `heap_bytes` is reported as 0 (moka exposes no allocation figures; see the README for a
/// measured bytes-per-entry figure). Evictions and expirations are counted by moka's eviction
/// listener, which runs during moka's own maintenance, so they lag behind `set` a little.
pub struct MokaCache<K, V> {
    inner: moka::sync::Cache<K, V>,
    capacity: usize,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    expired: AtomicU64,
    sweeps: AtomicU64,
    last_sweep_pause_us: AtomicU64,
    max_sweep_pause_us: AtomicU64,
}

impl<K, V> MokaCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub fn new(capacity: usize, ttl: Option<Duration>) -> Self {
        let counters = Arc::new(Counters::default());
        let listener_counters = Arc::clone(&counters);
        let mut builder = moka::sync::Cache::builder()
            .max_capacity(capacity as u64)
            .eviction_listener(move |_key, _value, cause| {
                let counter = match cause {
                    RemovalCause::Size => &listener_counters.evictions,
                    RemovalCause::Expired => &listener_counters.expired,
                    RemovalCause::Explicit | RemovalCause::Replaced => return,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            });
        if let Some(ttl) = ttl {
            builder = builder.time_to_live(ttl);
        }
        Self {
            inner: builder.build(),
            capacity,
            counters,
        }
    }

    /// The wrapped moka cache, for callers that want its own API.
    pub fn inner(&self) -> &moka::sync::Cache<K, V> {
        &self.inner
    }
}

impl<K, V> Cache<K, V> for MokaCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn mode(&self) -> Mode {
        Mode::Moka
    }

    fn get(&self, key: &K) -> Lookup<V> {
        let value = self.inner.get(key);
        let counter = if value.is_some() {
            &self.counters.hits
        } else {
            &self.counters.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Lookup {
            value,
            lock_wait: Duration::ZERO,
        }
    }

    fn set(&self, key: K, value: V) -> SetOutcome {
        self.inner.insert(key, value);
        SetOutcome::default()
    }

    fn remove(&self, key: &K) -> bool {
        self.inner.remove(key).is_some()
    }

    fn sweep(&self) -> SweepReport {
        let expired_before = self.counters.expired.load(Ordering::Relaxed);
        let start = Instant::now();
        self.inner.run_pending_tasks();
        let pause = start.elapsed();
        let c = &self.counters;
        let pause_us = duration_micros(pause);
        c.sweeps.fetch_add(1, Ordering::Relaxed);
        c.last_sweep_pause_us.store(pause_us, Ordering::Relaxed);
        c.max_sweep_pause_us.fetch_max(pause_us, Ordering::Relaxed);
        SweepReport {
            nodes_walked: 0,
            items_expired: c
                .expired
                .load(Ordering::Relaxed)
                .saturating_sub(expired_before),
            pause,
            lock_wait: Duration::ZERO,
        }
    }

    fn stats(&self) -> Stats {
        let c = &self.counters;
        let r = Ordering::Relaxed;
        Figures {
            items: self.inner.entry_count(),
            nodes: 0,
            heap_bytes: 0,
            hits: c.hits.load(r),
            misses: c.misses.load(r),
            evictions: c.evictions.load(r),
            expired: c.expired.load(r),
            sweeps: c.sweeps.load(r),
            last_sweep_pause_us: c.last_sweep_pause_us.load(r),
            max_sweep_pause_us: c.max_sweep_pause_us.load(r),
            last_sweep_nodes: 0,
            max_sweep_nodes: 0,
        }
        .to_stats(Mode::Moka, self.capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basics() {
        let c: MokaCache<u64, u64> = MokaCache::new(10, None);
        assert_eq!(c.mode(), Mode::Moka);
        assert_eq!(c.get(&1).value, None);
        c.set(1, 11);
        assert_eq!(c.get(&1).value, Some(11));
        c.set(1, 12);
        assert_eq!(c.get(&1).value, Some(12));
        assert!(c.remove(&1));
        assert!(!c.remove(&1));
        let s = c.stats();
        assert_eq!((s.hits, s.misses), (2, 1));
        assert_eq!(s.nodes, 0);
    }

    #[test]
    fn capacity_is_enforced_after_maintenance() {
        let c: MokaCache<u64, u64> = MokaCache::new(100, None);
        for k in 0..1_000 {
            c.set(k, k);
        }
        let report = c.sweep();
        assert_eq!(report.nodes_walked, 0);
        let s = c.stats();
        assert!(s.items <= 100, "items {}", s.items);
        assert!(s.evictions > 0);
        assert_eq!(s.sweeps, 1);
    }
}
