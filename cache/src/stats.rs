//! Introspection figures, published so that reading them never takes the cache lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::Mode;

/// A snapshot of a cache's figures. `heap_bytes` is an *estimate* of the bytes held by the cache
/// structure (maps, slab, frequency nodes and their tables), computed from capacities tracked as
/// they change; it excludes what the values point to (the service stores `Arc`s).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub mode: Mode,
    pub capacity: usize,
    pub items: u64,
    pub nodes: u64,
    pub heap_bytes: u64,
    pub hits: u64,
    pub misses: u64,
    pub hit_ratio: f64,
    pub evictions: u64,
    pub expired: u64,
    pub sweeps: u64,
    pub last_sweep_pause_us: u64,
    pub max_sweep_pause_us: u64,
    pub last_sweep_nodes: u64,
    pub max_sweep_nodes: u64,
}

/// The figures as plain integers, owned by whoever holds the cache lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Figures {
    pub items: u64,
    pub nodes: u64,
    pub heap_bytes: u64,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub expired: u64,
    pub sweeps: u64,
    pub last_sweep_pause_us: u64,
    pub max_sweep_pause_us: u64,
    pub last_sweep_nodes: u64,
    pub max_sweep_nodes: u64,
}

impl Figures {
    pub fn record_sweep(&mut self, nodes: u64, pause: Duration) {
        let pause_us = duration_micros(pause);
        self.sweeps += 1;
        self.last_sweep_pause_us = pause_us;
        self.max_sweep_pause_us = self.max_sweep_pause_us.max(pause_us);
        self.last_sweep_nodes = nodes;
        self.max_sweep_nodes = self.max_sweep_nodes.max(nodes);
    }

    pub fn to_stats(self, mode: Mode, capacity: usize) -> Stats {
        let lookups = self.hits + self.misses;
        Stats {
            mode,
            capacity,
            items: self.items,
            nodes: self.nodes,
            heap_bytes: self.heap_bytes,
            hits: self.hits,
            misses: self.misses,
            hit_ratio: if lookups == 0 {
                0.0
            } else {
                self.hits as f64 / lookups as f64
            },
            evictions: self.evictions,
            expired: self.expired,
            sweeps: self.sweeps,
            last_sweep_pause_us: self.last_sweep_pause_us,
            max_sweep_pause_us: self.max_sweep_pause_us,
            last_sweep_nodes: self.last_sweep_nodes,
            max_sweep_nodes: self.max_sweep_nodes,
        }
    }
}

/// Atomic mirror of [`Figures`]. The lock holder stores its figures here before unlocking, so
/// `stats()` (the admin endpoint, metrics scrapes) reads them without waiting behind a sweep
/// that may hold the lock for a long time. Relaxed is enough: the fields are independent gauges
/// and counters, not a consistent cut.
#[derive(Debug, Default)]
pub(crate) struct Published {
    items: AtomicU64,
    nodes: AtomicU64,
    heap_bytes: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    expired: AtomicU64,
    sweeps: AtomicU64,
    last_sweep_pause_us: AtomicU64,
    max_sweep_pause_us: AtomicU64,
    last_sweep_nodes: AtomicU64,
    max_sweep_nodes: AtomicU64,
}

impl Published {
    pub fn store(&self, f: &Figures) {
        let r = Ordering::Relaxed;
        self.items.store(f.items, r);
        self.nodes.store(f.nodes, r);
        self.heap_bytes.store(f.heap_bytes, r);
        self.hits.store(f.hits, r);
        self.misses.store(f.misses, r);
        self.evictions.store(f.evictions, r);
        self.expired.store(f.expired, r);
        self.sweeps.store(f.sweeps, r);
        self.last_sweep_pause_us.store(f.last_sweep_pause_us, r);
        self.max_sweep_pause_us.store(f.max_sweep_pause_us, r);
        self.last_sweep_nodes.store(f.last_sweep_nodes, r);
        self.max_sweep_nodes.store(f.max_sweep_nodes, r);
    }

    pub fn load(&self) -> Figures {
        let r = Ordering::Relaxed;
        Figures {
            items: self.items.load(r),
            nodes: self.nodes.load(r),
            heap_bytes: self.heap_bytes.load(r),
            hits: self.hits.load(r),
            misses: self.misses.load(r),
            evictions: self.evictions.load(r),
            expired: self.expired.load(r),
            sweeps: self.sweeps.load(r),
            last_sweep_pause_us: self.last_sweep_pause_us.load(r),
            max_sweep_pause_us: self.max_sweep_pause_us.load(r),
            last_sweep_nodes: self.last_sweep_nodes.load(r),
            max_sweep_nodes: self.max_sweep_nodes.load(r),
        }
    }
}

pub(crate) fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

pub(crate) fn duration_as_micros<S: serde::Serializer>(
    d: &Duration,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_u64(duration_micros(*d))
}
