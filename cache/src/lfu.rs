//! The port of gcache's `LFUCache` (`lfu.go`). Rules are ported from upstream
//! `github.com/bluele/gcache` v0.0.1 and v0.0.2; the two versions differ only in
//! [`Inner::increment`] and [`Inner::remove_item`].

use std::collections::HashMap;
use std::hash::Hash;
use std::mem::size_of;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use crate::clock::{Clock, SystemClock};
use crate::freq_list::{FreqList, ItemId, NIL, NodeId, hash_table_bytes};
use crate::stats::{Figures, Published};
use crate::{Cache, Lookup, MAX_CAPACITY, Mode, SetOutcome, Stats, SweepReport};

/// Which upstream `lfu.go` the cache follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LfuVersion {
    /// gcache v0.0.1: the frequency list only grows (the leak).
    V0_0_1,
    /// gcache v0.0.2: emptied frequency nodes are reused or unlinked.
    V0_0_2,
}

impl LfuVersion {
    pub fn mode(self) -> Mode {
        match self {
            LfuVersion::V0_0_1 => Mode::Leaky,
            LfuVersion::V0_0_2 => Mode::Fixed,
        }
    }

    /// `None` for [`Mode::Moka`], which is not an LFU port.
    pub fn from_mode(mode: Mode) -> Option<Self> {
        match mode {
            Mode::Leaky => Some(LfuVersion::V0_0_1),
            Mode::Fixed => Some(LfuVersion::V0_0_2),
            Mode::Moka => None,
        }
    }
}

/// gcache's `lfuItem`; `node` is its `freqElement`, `pos` its place in that node's set.
#[derive(Debug)]
struct Item<K, V> {
    key: K,
    value: V,
    node: NodeId,
    pos: u32,
    expires_at: Option<Instant>,
}

impl<K, V> Item<K, V> {
    /// `lfuItem.IsExpired`: `expiration.Before(now)`, so an item is still live at its deadline.
    fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at < now)
    }
}

/// Items by dense `u32` id, standing in for Go's `*lfuItem` pointers so node sets stay small.
#[derive(Debug)]
struct Slab<K, V> {
    slots: Vec<Option<Item<K, V>>>,
    free: Vec<ItemId>,
}

impl<K, V> Slab<K, V> {
    fn insert(&mut self, item: Item<K, V>) -> ItemId {
        match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some(item);
                id
            }
            None => {
                self.slots.push(Some(item));
                // The capacity is capped at MAX_CAPACITY, so live ids always fit in u32.
                ItemId::try_from(self.slots.len() - 1).expect("item ids fit in u32")
            }
        }
    }

    fn get(&self, id: ItemId) -> &Item<K, V> {
        self.slots[id as usize]
            .as_ref()
            .expect("item id refers to a live item")
    }

    fn get_mut(&mut self, id: ItemId) -> &mut Item<K, V> {
        self.slots[id as usize]
            .as_mut()
            .expect("item id refers to a live item")
    }

    fn take(&mut self, id: ItemId) -> Item<K, V> {
        let item = self.slots[id as usize]
            .take()
            .expect("item id refers to a live item");
        self.free.push(id);
        item
    }

    fn heap_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<Option<Item<K, V>>>()
            + self.free.capacity() * size_of::<ItemId>()
    }
}

type KeyMap<K> = HashMap<K, ItemId, foldhash::fast::RandomState>;

/// Everything behind the cache lock.
struct Inner<K, V> {
    version: LfuVersion,
    capacity: usize,
    ttl: Option<Duration>,
    items: KeyMap<K>,
    slab: Slab<K, V>,
    list: FreqList,
    figures: Figures,
    /// Reused by `sweep` to collect one node's expired items without allocating each time.
    sweep_buf: Vec<ItemId>,
    /// xorshift64 state for eviction's choice within a node (Go randomizes map iteration). A
    /// fixed seed keeps replays and tests reproducible.
    rng: u64,
}

impl<K: Hash + Eq + Clone, V: Clone> Inner<K, V> {
    fn new(capacity: usize, ttl: Option<Duration>, version: LfuVersion) -> Self {
        let capacity = capacity.clamp(1, MAX_CAPACITY);
        let mut inner = Self {
            version,
            capacity,
            ttl,
            // gcache `init`: make(map[interface{}]*lfuItem, c.size+1)
            items: KeyMap::with_capacity_and_hasher(capacity + 1, Default::default()),
            slab: Slab {
                slots: Vec::new(),
                free: Vec::new(),
            },
            list: FreqList::new(),
            figures: Figures::default(),
            sweep_buf: Vec::new(),
            rng: 0x2545_F491_4F6C_DD1D,
        };
        inner.refresh_gauges();
        inner
    }

    /// `getValue`: an expired item is removed and counted as a miss.
    fn get(&mut self, key: &K, clock: &dyn Clock) -> Option<V> {
        let Some(&id) = self.items.get(key) else {
            self.figures.misses += 1;
            return None;
        };
        let item = self.slab.get(id);
        if item.expires_at.is_some() && item.is_expired(clock.now()) {
            self.remove_item(id);
            self.figures.expired += 1;
            self.figures.misses += 1;
            return None;
        }
        self.increment(id);
        self.figures.hits += 1;
        Some(self.slab.get(id).value.clone())
    }

    /// `set`: replace in place, or evict one item when full and insert at the head.
    fn set(&mut self, key: K, value: V, clock: &dyn Clock) -> (usize, usize) {
        // A TTL too large to represent means "never expires", not a panic.
        let expires_at = self.ttl.and_then(|ttl| clock.now().checked_add(ttl));
        if let Some(&id) = self.items.get(&key) {
            let item = self.slab.get_mut(id);
            item.value = value;
            if expires_at.is_some() {
                item.expires_at = expires_at;
            }
            return (0, 0);
        }
        let (evicted, walked) = if self.items.len() >= self.capacity {
            self.evict_one()
        } else {
            (0, 0)
        };
        let head = self.list.head();
        let id = self.slab.insert(Item {
            key: key.clone(),
            value,
            node: head,
            pos: 0,
            expires_at,
        });
        self.attach(id, head);
        self.items.insert(key, id);
        (evicted, walked)
    }

    fn remove(&mut self, key: &K) -> bool {
        match self.items.get(key) {
            Some(&id) => {
                self.remove_item(id);
                true
            }
            None => false,
        }
    }

    /// `increment`: move a hit item to a later frequency node.
    fn increment(&mut self, id: ItemId) {
        let current = self.slab.get(id).node;
        self.detach(id);
        let next_freq = self.list.node(current).freq + 1;
        let next = self.list.node(current).next;
        let target = match self.version {
            // v0.0.1 lfu.go: the NEXT node, whatever its freq; a new node only past the tail.
            // The node just left stays linked even if empty: this is the leak.
            LfuVersion::V0_0_1 => {
                if next == NIL {
                    self.list.push_after(current, next_freq)
                } else {
                    next
                }
            }
            // v0.0.2 lfu.go: the node with freq exactly +1; an emptied non-head node is reused
            // (when no +1 node exists) or unlinked (`isRemovableFreqEntry`).
            LfuVersion::V0_0_2 => {
                let removable = self.list.is_removable(current);
                if next == NIL || self.list.node(next).freq > next_freq {
                    if removable {
                        self.list.set_freq(current, next_freq);
                        current
                    } else {
                        self.list.push_after(current, next_freq)
                    }
                } else {
                    // The list is strictly increasing, so here next.freq == next_freq (upstream
                    // panics "unreachable" on anything else).
                    debug_assert_eq!(self.list.node(next).freq, next_freq);
                    if removable {
                        self.list.unlink(current);
                    }
                    next
                }
            }
        };
        self.attach(id, target);
    }

    /// `removeItem`: used by remove, eviction, lazy expiry and the sweep.
    fn remove_item(&mut self, id: ItemId) -> Item<K, V> {
        self.detach(id);
        let item = self.slab.take(id);
        self.items.remove(&item.key);
        match self.version {
            // v0.0.1 lfu.go: the node stays, however empty.
            LfuVersion::V0_0_1 => {}
            // v0.0.2 lfu.go: `if isRemovableFreqEntry(entry) { c.freqList.Remove(..) }`.
            LfuVersion::V0_0_2 => {
                if self.list.is_removable(item.node) {
                    self.list.unlink(item.node);
                }
            }
        }
        item
    }

    /// Puts the item into `node`'s set (`entry.items[item] = struct{}{}`).
    fn attach(&mut self, id: ItemId, node: NodeId) {
        let pos = self.list.insert_item(node, id);
        let item = self.slab.get_mut(id);
        item.node = node;
        item.pos = pos;
    }

    /// Takes the item out of its node's set (`delete(entry.items, item)`); the item that fills
    /// its place learns its new position.
    fn detach(&mut self, id: ItemId) {
        let item = self.slab.get(id);
        let pos = item.pos;
        if let Some(moved) = self.list.remove_at(item.node, pos) {
            self.slab.get_mut(moved).pos = pos;
        }
    }

    /// `evict(1)`: from the head, remove one item of the first non-empty node. Returns
    /// (items evicted, nodes walked).
    fn evict_one(&mut self) -> (usize, usize) {
        let mut cur = self.list.head();
        let mut walked = 0;
        while cur != NIL {
            walked += 1;
            let node = self.list.node(cur);
            if node.items.is_empty() {
                // v0.0.1 walks every leaked empty node between the head and the first item.
                cur = node.next;
                continue;
            }
            let random = self.next_random();
            if let Some(id) = self.list.node(cur).items.pick(random) {
                self.remove_item(id);
                self.figures.evictions += 1;
                return (1, walked);
            }
        }
        (0, walked)
    }

    fn next_random(&mut self) -> usize {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x as usize
    }

    /// The reclaim walk: every node from the head, every item in it.
    fn sweep(&mut self, now: Instant) -> (u64, u64) {
        let mut walked = 0u64;
        let mut expired = 0u64;
        let mut buf = std::mem::take(&mut self.sweep_buf);
        let mut cur = self.list.head();
        while cur != NIL {
            walked += 1;
            let node = self.list.node(cur);
            // Read before removing: in v0.0.2 removing the last item unlinks `cur`.
            let next = node.next;
            buf.clear();
            buf.extend(
                node.items
                    .iter()
                    .filter(|&id| self.slab.get(id).is_expired(now)),
            );
            for &id in &buf {
                self.remove_item(id);
            }
            expired += buf.len() as u64;
            cur = next;
        }
        buf.clear();
        self.sweep_buf = buf;
        self.figures.expired += expired;
        (walked, expired)
    }

    /// Gauges derived from sizes; O(1).
    fn refresh_gauges(&mut self) {
        self.figures.items = self.items.len() as u64;
        self.figures.nodes = self.list.len() as u64;
        let map_bytes =
            hash_table_bytes(self.items.capacity(), size_of::<K>() + size_of::<ItemId>());
        let bytes = map_bytes
            + self.slab.heap_bytes()
            + self.list.heap_bytes()
            + self.sweep_buf.capacity() * size_of::<ItemId>();
        self.figures.heap_bytes = bytes as u64;
    }
}

/// gcache's LFU cache, in the version chosen at construction. One `std::sync::Mutex` guards the
/// whole structure, as gcache's `mu` does: every operation, hits included, mutates the list.
pub struct Lfu<K, V> {
    inner: Mutex<Inner<K, V>>,
    /// Set while a sweep holds the lock, for [`Cache::try_get`]: a sweep holds it for as long
    /// as the list is long, every other operation for a microsecond or so.
    sweeping: AtomicBool,
    published: Published,
    clock: Arc<dyn Clock>,
    version: LfuVersion,
    capacity: usize,
}

impl<K, V> Lfu<K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    /// `capacity` is clamped into `1..=MAX_CAPACITY` (gcache rejects 0 with a panic; we don't
    /// panic). Every `set` gives the item `ttl`, when there is one.
    pub fn new(capacity: usize, ttl: Option<Duration>, version: LfuVersion) -> Self {
        Self::with_clock(capacity, ttl, version, Arc::new(SystemClock))
    }

    pub fn with_clock(
        capacity: usize,
        ttl: Option<Duration>,
        version: LfuVersion,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let inner = Inner::new(capacity, ttl, version);
        let published = Published::default();
        published.store(&inner.figures);
        Self {
            capacity: inner.capacity,
            inner: Mutex::new(inner),
            sweeping: AtomicBool::new(false),
            published,
            clock,
            version,
        }
    }

    pub fn version(&self) -> LfuVersion {
        self.version
    }

    /// Lock wait is measured only when the lock is contended, so the uncontended path pays no
    /// clock reads. A poisoned lock is recovered: no code path panics midway through a mutation.
    fn lock(&self) -> (MutexGuard<'_, Inner<K, V>>, Duration) {
        match self.inner.try_lock() {
            Ok(guard) => (guard, Duration::ZERO),
            Err(TryLockError::Poisoned(p)) => (p.into_inner(), Duration::ZERO),
            Err(TryLockError::WouldBlock) => {
                let start = Instant::now();
                let guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
                (guard, start.elapsed())
            }
        }
    }

    fn publish(&self, inner: &mut Inner<K, V>) {
        inner.refresh_gauges();
        self.published.store(&inner.figures);
    }

    #[cfg(test)]
    pub(crate) fn with_inner<R>(&self, f: impl FnOnce(&inspect::InnerView<'_, K, V>) -> R) -> R {
        let (guard, _) = self.lock();
        f(&inspect::InnerView(&guard))
    }
}

impl<K, V> Cache<K, V> for Lfu<K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    fn mode(&self) -> Mode {
        self.version.mode()
    }

    fn get(&self, key: &K) -> Lookup<V> {
        let (mut inner, lock_wait) = self.lock();
        let value = inner.get(key, &*self.clock);
        self.publish(&mut inner);
        Lookup { value, lock_wait }
    }

    fn try_get(&self, key: &K) -> Option<Lookup<V>> {
        if self.sweeping.load(Ordering::Acquire) {
            return None;
        }
        Some(self.get(key))
    }

    fn set(&self, key: K, value: V) -> SetOutcome {
        let (mut inner, lock_wait) = self.lock();
        let (evicted, nodes_walked) = inner.set(key, value, &*self.clock);
        self.publish(&mut inner);
        SetOutcome {
            evicted,
            nodes_walked,
            lock_wait,
        }
    }

    fn remove(&self, key: &K) -> bool {
        let (mut inner, _) = self.lock();
        let removed = inner.remove(key);
        self.publish(&mut inner);
        removed
    }

    fn sweep(&self) -> SweepReport {
        // Raised before the lock is taken, so that no `try_get` slips in between and then blocks
        // its caller's thread behind the whole walk.
        self.sweeping.store(true, Ordering::Release);
        let (mut inner, lock_wait) = self.lock();
        let start = Instant::now();
        let now = self.clock.now();
        let (nodes_walked, items_expired) = inner.sweep(now);
        let pause = start.elapsed();
        self.sweeping.store(false, Ordering::Release);
        inner.figures.record_sweep(nodes_walked, pause);
        self.publish(&mut inner);
        SweepReport {
            nodes_walked,
            items_expired,
            pause,
            lock_wait,
        }
    }

    fn stats(&self) -> Stats {
        self.published.load().to_stats(self.mode(), self.capacity)
    }
}

#[cfg(test)]
mod inspect;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
