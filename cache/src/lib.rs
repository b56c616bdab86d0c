//! A faithful Rust port of the LFU cache of `github.com/bluele/gcache`, in the version that leaked
//! (v0.0.1) and the version that fixed it (v0.0.2), plus a `moka` adapter behind the same trait.
//! The incident this reproduces, and the lab's service-level definitions, are in the repository's
//! `docs/incident.md`.
//!
//! # Contents
//! - [The leak, runnable](#the-leak-runnable): three examples that replay the same operations
//!   through both versions and show the frequency list leaking, the sweep walking it, and
//!   eviction walking it.
//! - [Implementation details](#implementation-details): how gcache's LFU works;
//!   [v0.0.1, the leak](#v001--the-leak-modeleaky-lfuversionv0_0_1);
//!   [v0.0.2, the fix](#v002--the-fix-modefixed-lfuversionv0_0_2);
//!   [why there is a sweep](#why-there-is-a-sweep-standing-in-for-gos-gc-mark-phase);
//!   the memory layout of the port; upstream citations; where the port differs from Go.
//!
//! # The leak, runnable
//! Every example builds one cache per version with [`build`] and replays the same operations
//! through both; the figures come from [`Cache::stats`], [`Cache::sweep`] and [`Cache::set`].
//! They are exact: the algorithm, not timing, determines them.
//!
//! **The frequency list.** Four keys are cached, then key 0 is hit again and again. In v0.0.1
//! every hit of the most-hit key adds a node past the tail, so the list is one node (the
//! frequency-0 head) plus one per hit. In v0.0.2 the list holds one node per distinct hit count
//! among live items, plus the head — and gives a node back when its last item leaves.
//!
//! ```
//! use leaklab_cache::{Config, Mode, build};
//!
//! let config = |mode| Config { mode, capacity: 4, ttl: None };
//! let leaky = build::<u64, u64>(&config(Mode::Leaky));
//! let fixed = build::<u64, u64>(&config(Mode::Fixed));
//! for cache in [&leaky, &fixed] {
//!     for key in 0..4 {
//!         cache.set(key, key * 10);
//!     }
//!     assert_eq!(cache.stats().nodes, 1, "every new item starts in the head");
//! }
//!
//! for hits in 1..=1_000 {
//!     assert_eq!(leaky.get(&0).value, Some(0));
//!     assert_eq!(fixed.get(&0).value, Some(0));
//!     assert_eq!(leaky.stats().nodes, 1 + hits); // head + one node per hit of key 0
//!     assert_eq!(fixed.stats().nodes, 2); // head + the node of frequency `hits`
//! }
//!
//! // Key 1 is hit 3 times. v0.0.1 moves it into nodes key 0 left behind (their frequency is not
//! // its own) and allocates nothing; v0.0.2 needs a node for frequency 3.
//! for _ in 0..3 {
//!     leaky.get(&1);
//!     fixed.get(&1);
//! }
//! assert_eq!(leaky.stats().nodes, 1_001);
//! assert_eq!(fixed.stats().nodes, 3); // head, 3, 1000
//!
//! // Same items, same hits: the leak changes the list, not what is cached.
//! for cache in [&leaky, &fixed] {
//!     let stats = cache.stats();
//!     assert_eq!((stats.items, stats.hits, stats.misses), (4, 1_003, 0));
//! }
//! assert!(leaky.stats().heap_bytes > fixed.stats().heap_bytes);
//!
//! // Removing the hot key frees its node in v0.0.2 only.
//! assert!(leaky.remove(&0) && fixed.remove(&0));
//! assert_eq!(leaky.stats().nodes, 1_001);
//! assert_eq!(fixed.stats().nodes, 2); // head, 3
//! ```
//!
//! **The sweep** ([`Cache::sweep`]) is the expiry walk that stands in for Go's GC mark phase: it
//! visits every node under the cache lock. With the same history, and a [`ManualClock`] so the
//! items expire without waiting, v0.0.1 walks a node per past hit — and keeps doing so once
//! the cache is empty.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use leaklab_cache::{Config, ManualClock, Mode, build_with_clock};
//!
//! let clock = Arc::new(ManualClock::new());
//! let config = |mode| Config { mode, capacity: 4, ttl: Some(Duration::from_secs(60)) };
//! let leaky = build_with_clock::<u64, u64>(&config(Mode::Leaky), clock.clone());
//! let fixed = build_with_clock::<u64, u64>(&config(Mode::Fixed), clock.clone());
//! for cache in [&leaky, &fixed] {
//!     for key in 0..4 {
//!         cache.set(key, key);
//!     }
//!     for _ in 0..1_000 {
//!         cache.get(&0);
//!     }
//!     for _ in 0..3 {
//!         cache.get(&1);
//!     }
//! }
//!
//! // Nothing has expired yet: the walk is the whole list.
//! let (l, f) = (leaky.sweep(), fixed.sweep());
//! assert_eq!((l.nodes_walked, l.items_expired), (1_001, 0));
//! assert_eq!((f.nodes_walked, f.items_expired), (3, 0));
//!
//! // A minute later every item has expired; the sweep removes all four.
//! clock.advance(Duration::from_secs(61));
//! let (l, f) = (leaky.sweep(), fixed.sweep());
//! assert_eq!((l.nodes_walked, l.items_expired), (1_001, 4));
//! assert_eq!((f.nodes_walked, f.items_expired), (3, 4));
//! assert_eq!((leaky.stats().items, leaky.stats().nodes), (0, 1_001));
//! assert_eq!((fixed.stats().items, fixed.stats().nodes), (0, 1));
//!
//! // An empty cache: v0.0.1 still walks every leaked node, on every sweep.
//! assert_eq!(leaky.sweep().nodes_walked, 1_001);
//! assert_eq!(fixed.sweep().nodes_walked, 1);
//! assert_eq!(leaky.stats().last_sweep_nodes, 1_001);
//! ```
//!
//! **Eviction** also walks from the head, to the first node that holds an item. In v0.0.1 the
//! empty nodes between the head and that item are all leaked ones, and
//! [`SetOutcome::nodes_walked`] counts them.
//!
//! ```
//! use leaklab_cache::{Config, Mode, build};
//!
//! let config = |mode| Config { mode, capacity: 2, ttl: None };
//! for (mode, walked) in [(Mode::Leaky, 51), (Mode::Fixed, 2)] {
//!     let cache = build::<u64, u64>(&config(mode));
//!     cache.set(0, 0);
//!     for _ in 0..100 {
//!         cache.get(&0);
//!     }
//!     cache.set(1, 1);
//!     for _ in 0..50 {
//!         cache.get(&1);
//!     }
//!     // Full: inserting key 2 evicts the least-hit item, key 1. v0.0.1 reaches it past the
//!     // empty head and 49 empty leaked nodes; v0.0.2's list is just [head, 50, 100].
//!     let outcome = cache.set(2, 2);
//!     assert_eq!((outcome.evicted, outcome.nodes_walked), (1, walked), "{mode}");
//!     assert_eq!(cache.get(&1).value, None, "{mode}");
//!     assert_eq!(cache.get(&0).value, Some(0), "{mode}");
//! }
//! ```
//!
//! # Implementation details
//!
//! ## How gcache's LFU works (`lfu.go`, both versions)
//! The cache keeps a map `items: key -> *lfuItem` and a doubly linked list `freqList` of
//! *frequency entries* (`freqEntry { freq uint; items map[*lfuItem]struct{} }`). The list starts
//! with one entry of frequency 0, the *head*, where every new item goes. Each item points at the
//! entry that holds it. A hit (`getValue` -> `increment`) moves the item to a later entry; when
//! `len(items) >= size` before inserting a new key, `evict(1)` walks the list from the head and
//! removes an item from the first non-empty entry (Go map iteration order, i.e. an arbitrary
//! one). A `Set` on an existing key replaces the value and expiry without counting a hit.
//! Expiry is checked lazily: `getValue` removes an expired item and reports a miss. One mutex
//! guards everything.
//!
//! ## v0.0.1 — the leak ([`Mode::Leaky`], [`LfuVersion::V0_0_1`])
//! `increment` removes the item from its entry and puts it into `currentFreqElement.Next()`,
//! *whatever frequency that entry has*; it creates an entry (`freq + 1`) only when the current
//! one is the last of the list. Nothing ever unlinks an entry: not a hit that empties it, not
//! `removeItem` (used by `Remove`, eviction and expiry). The list therefore only grows, to one
//! entry more than the most hits any single item ever received — a hot key with a million hits
//! leaves a million entries behind, each with its (emptied, never shrunk) Go map.
//!
//! ## v0.0.2 — the fix ([`Mode::Fixed`], [`LfuVersion::V0_0_2`])
//! `increment` moves the item to the entry whose frequency is exactly `freq + 1`, creating it
//! when absent; if the entry it left is now empty and is not the frequency-0 head
//! (`isRemovableFreqEntry`: `freq != 0 && len(items) == 0`), that entry is either reused (its
//! `freq` bumped, when no `freq + 1` entry exists) or unlinked. `removeItem` also unlinks its
//! entry when it empties. The list is bounded by the number of distinct hit counts among live
//! items (plus the head).
//!
//! In this crate the whole difference is two `match self.version` blocks, in
//! `Inner::increment` and `Inner::remove_item` (`src/lfu.rs`), each branch citing the upstream
//! version it follows.
//!
//! ## Why there is a sweep: standing in for Go's GC mark phase
//! In Go each leaked entry is several heap objects full of pointers (list element, entry, map
//! header, buckets) and the garbage collector marks all of them on every cycle, so the mark phase
//! grows with the leak and steals CPU from request goroutines (mark assist). That is how the
//! incident hurt (the incident and its figures: `docs/incident.md`, section 3). Rust has no
//! collector: the leak alone only grows memory. The cost of the same
//! shape comes from [`Cache::sweep`], the reclaim work any cache without a GC has to do for
//! expired entries: it takes the cache lock and walks the *whole* frequency list from the head,
//! checking every item of every node. In fixed mode it walks about as many nodes as there are
//! distinct hit counts; in leaky mode it walks every leaked node, holding the lock while requests
//! wait. Nothing sleeps; every nanosecond of pause is real work proportional to the list.
//!
//! ## Memory layout of the port
//! Items live in a slab indexed by `u32` (the Go `*lfuItem`); the key map holds slab indices.
//! Each frequency node is its own heap allocation (`Box<Node>` made in
//! `freq_list::FreqList::new_node`) owning the set of its item indices, whose storage is
//! allocated in `freq_list::grow_items` — so a heap profile of a leaky cache points at those two
//! functions. Like a Go map, that storage is never shrunk when the set empties, so a leaked node
//! keeps its bytes. The set is an indexed vector rather than a hash set so that eviction can take
//! an arbitrary item in O(1), as Go's randomized map iteration does (see `freq_list::ItemSet`
//! for why a hash table made that a scan of thousands of empty buckets). Freed node slots are reused, so fixed mode stays bounded.
//!
//! ## Upstream citations
//! - v0.0.1: `github.com/bluele/gcache` tag v0.0.1, `lfu.go` (`init`, `set`, `getValue`,
//!   `increment`, `evict`, `removeItem`, `lfuItem.IsExpired`); read at commit `04d92e1`.
//! - v0.0.2: the same file after bluele/gcache PR #75 "lfu: remove an empty `freqEntry` in
//!   `freqList`" (merged 2021-02-15, fixing issue #71 "Memory Leak in LFU Cache Implementation"):
//!   `isRemovableFreqEntry`, the `switch` in `increment`, and the check in `removeItem`.
//!
//! ## Where the port differs from Go, on purpose
//! - Item sets are indexed vectors, not hash maps (see above); the victim within the lowest node
//!   is chosen by a seeded xorshift instead of Go's randomized map iteration.
//! - Capacity 0 is clamped to 1 instead of panicking; TTL applies to every `set` (gcache's
//!   `Expiration` option), there is no per-call `SetWithExpire`, loader or callbacks.
//! - Counters are published to atomics on every operation so [`Cache::stats`] never waits for
//!   the lock; lock wait is only timed when `try_lock` fails, so uncontended calls report zero.

mod clock;
mod freq_list;
mod lfu;
mod moka_cache;
pub mod sim;
mod stats;

use std::fmt;
use std::hash::Hash;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub use clock::{Clock, ManualClock, SystemClock};
pub use lfu::{Lfu, LfuVersion};
pub use moka_cache::MokaCache;
pub use stats::Stats;

/// Which cache implementation serves requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// gcache LFU as of v0.0.1: frequency nodes are never freed.
    Leaky,
    /// gcache LFU as of v0.0.2: emptied nodes are reused or unlinked.
    Fixed,
    /// `moka::sync::Cache`, the production choice.
    Moka,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Leaky, Mode::Fixed, Mode::Moka];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Leaky => "leaky",
            Mode::Fixed => "fixed",
            Mode::Moka => "moka",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode name that is not one of [`Mode::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown cache mode {input:?}: valid modes are leaky, fixed, moka")]
pub struct ParseModeError {
    pub input: String,
}

impl FromStr for Mode {
    type Err = ParseModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| ParseModeError {
                input: s.to_owned(),
            })
    }
}

/// What [`build`] makes.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    /// Maximum number of items. gcache refuses a size of 0; [`build`] treats 0 as 1 so it never
    /// panics, and [`Config::validate`] lets callers reject it at the edge instead.
    pub capacity: usize,
    /// Expiry applied by every `set` (gcache's `Expiration` builder option). `None`: no expiry.
    pub ttl: Option<Duration>,
}

/// A [`Config`] that cannot describe a working cache.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cache capacity must be at least 1")]
    ZeroCapacity,
    #[error("cache capacity {0} is above the maximum of {max}", max = MAX_CAPACITY)]
    CapacityTooLarge(usize),
    #[error("cache ttl must be greater than zero")]
    ZeroTtl,
}

/// Items are addressed by `u32` slab indices (see `lfu.rs`), which bounds the capacity.
pub const MAX_CAPACITY: usize = u32::MAX as usize - 1;

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.capacity == 0 {
            return Err(ConfigError::ZeroCapacity);
        }
        if self.capacity > MAX_CAPACITY {
            return Err(ConfigError::CapacityTooLarge(self.capacity));
        }
        if self.ttl == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroTtl);
        }
        Ok(())
    }

    /// The capacity actually used: clamped into `1..=MAX_CAPACITY` so building never panics.
    pub fn effective_capacity(&self) -> usize {
        self.capacity.clamp(1, MAX_CAPACITY)
    }
}

/// The interface the service codes against; one implementation per [`Mode`].
pub trait Cache<K, V>: Send + Sync {
    fn mode(&self) -> Mode;
    /// Counts a hit or a miss; an expired item is removed and reported as a miss, lazily, like
    /// gcache's `getValue`.
    fn get(&self, key: &K) -> Lookup<V>;
    /// [`get`](Cache::get), or `None` at once when a sweep holds the cache lock, so that an
    /// async caller can wait for it where waiting does not stall its runtime's worker thread.
    /// Brief contention from other operations is waited out in place, as `get` does.
    fn try_get(&self, key: &K) -> Option<Lookup<V>> {
        Some(self.get(key))
    }
    /// Inserts or replaces. Replacing neither counts a hit nor moves the item.
    fn set(&self, key: K, value: V) -> SetOutcome;
    fn remove(&self, key: &K) -> bool;
    /// Reclaim work: walks the WHOLE frequency list under the cache lock, removing expired
    /// items (moka: `run_pending_tasks`).
    fn sweep(&self) -> SweepReport;
    /// O(1): counters kept incrementally, never a walk, and never blocked by a running sweep.
    fn stats(&self) -> Stats;
}

/// Result of [`Cache::get`].
#[derive(Debug, Clone)]
pub struct Lookup<V> {
    pub value: Option<V>,
    /// Time spent waiting for the cache lock; zero when it was free.
    pub lock_wait: Duration,
}

/// Result of [`Cache::set`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SetOutcome {
    pub evicted: usize,
    /// Frequency nodes visited by the eviction walk (0 when nothing had to be evicted).
    pub nodes_walked: usize,
    pub lock_wait: Duration,
}

/// Result of [`Cache::sweep`].
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct SweepReport {
    pub nodes_walked: u64,
    pub items_expired: u64,
    /// Time the sweep held the cache lock.
    #[serde(rename = "pause_us", serialize_with = "stats::duration_as_micros")]
    pub pause: Duration,
    #[serde(rename = "lock_wait_us", serialize_with = "stats::duration_as_micros")]
    pub lock_wait: Duration,
}

/// Builds the cache `config` asks for, on the system clock.
pub fn build<K, V>(config: &Config) -> Arc<dyn Cache<K, V>>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    build_with_clock(config, Arc::new(SystemClock))
}

/// Like [`build`], with the clock the LFU modes read for expiry (tests and `cache-sim` use a
/// [`ManualClock`]). moka keeps its own clock.
pub fn build_with_clock<K, V>(config: &Config, clock: Arc<dyn Clock>) -> Arc<dyn Cache<K, V>>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    let capacity = config.effective_capacity();
    match config.mode {
        Mode::Leaky => Arc::new(Lfu::with_clock(
            capacity,
            config.ttl,
            LfuVersion::V0_0_1,
            clock,
        )),
        Mode::Fixed => Arc::new(Lfu::with_clock(
            capacity,
            config.ttl,
            LfuVersion::V0_0_2,
            clock,
        )),
        Mode::Moka => Arc::new(MokaCache::new(capacity, config.ttl)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_round_trips_through_str_and_serde() {
        for m in Mode::ALL {
            assert_eq!(m.to_string().parse::<Mode>(), Ok(m));
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{m}\""));
            assert_eq!(serde_json::from_str::<Mode>(&json).unwrap(), m);
        }
        assert_eq!(" FIXED ".parse::<Mode>(), Ok(Mode::Fixed));
    }

    #[test]
    fn bad_mode_lists_valid_ones() {
        let err = "lru".parse::<Mode>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown cache mode \"lru\": valid modes are leaky, fixed, moka"
        );
    }

    #[test]
    fn config_validation() {
        let mut c = Config {
            mode: Mode::Fixed,
            capacity: 0,
            ttl: None,
        };
        assert_eq!(c.validate(), Err(ConfigError::ZeroCapacity));
        assert_eq!(c.effective_capacity(), 1);
        c.capacity = 10;
        assert_eq!(c.validate(), Ok(()));
        c.ttl = Some(Duration::ZERO);
        assert_eq!(c.validate(), Err(ConfigError::ZeroTtl));
    }

    #[test]
    fn sweep_report_serializes_micros() {
        let r = SweepReport {
            nodes_walked: 3,
            items_expired: 1,
            pause: Duration::from_micros(42),
            lock_wait: Duration::from_micros(7),
        };
        let v = serde_json::to_value(r).unwrap();
        assert_eq!(v["pause_us"], 42);
        assert_eq!(v["lock_wait_us"], 7);
        assert_eq!(v["nodes_walked"], 3);
    }
}
