//! The frequency list: gcache's `freqList *list.List` of `*freqEntry`, as an index-linked list of
//! individually boxed nodes.
//!
//! Every node is its own allocation (made in [`FreqList::new_node`]) and owns the storage of its
//! item set, allocated in [`grow_items`]; neither is ever shrunk, like the Go entry and its map.
//! That keeps the bytes a leaked node holds real, and puts the allocation sites of the leak in
//! this file for heap profiles. Ids of unlinked nodes are recycled so a cache that unlinks nodes
//! (v0.0.2) stays bounded.

use std::mem::size_of;

/// Index of a node in [`FreqList::nodes`].
pub(crate) type NodeId = usize;
/// Index of an item in the LFU's item slab (the Go `*lfuItem`).
pub(crate) type ItemId = u32;
/// "No node": the end of the list.
pub(crate) const NIL: NodeId = usize::MAX;

/// The item set of one node: gcache's `map[*lfuItem]struct{}`.
///
/// An indexed set (a vector of ids; each item remembers its position) rather than a hash set,
/// because eviction must take an *arbitrary* item the way Go's map iteration does (from a random
/// start) and do it cheaply. With a hash table that costs a scan of the buckets: the head node's
/// table grows to about `capacity` entries while the cache fills and then, under a Zipf load,
/// holds only a handful of items, so every eviction scanned thousands of empty buckets — we
/// measured fixed mode drop from ~10M to ~0.4M ops/s in `cache-sim` that way. Go's range over a
/// sparse map walks its empty buckets too; we keep the semantics (a random item of the lowest
/// node) and the leak (the storage of an emptied set is kept), not that scan.
#[derive(Debug, Default)]
pub(crate) struct ItemSet {
    ids: Vec<ItemId>,
}

impl ItemSet {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = ItemId> + '_ {
        self.ids.iter().copied()
    }

    /// An arbitrary item chosen by `random`, as a Go map iteration from a random start gives.
    pub fn pick(&self, random: usize) -> Option<ItemId> {
        if self.ids.is_empty() {
            None
        } else {
            Some(self.ids[random % self.ids.len()])
        }
    }
}

/// gcache's `freqEntry` plus its `list.Element` links.
#[derive(Debug)]
pub(crate) struct Node {
    pub freq: u64,
    pub prev: NodeId,
    pub next: NodeId,
    pub items: ItemSet,
}

#[derive(Debug)]
pub(crate) struct FreqList {
    nodes: Vec<Option<Box<Node>>>,
    free: Vec<NodeId>,
    live: usize,
    /// Sum of the item-set storage of every live node, in bytes.
    set_bytes: usize,
}

impl FreqList {
    /// The list with its frequency-0 head, as gcache's `init` makes it.
    pub fn new() -> Self {
        Self {
            nodes: vec![Some(Self::new_node(0))],
            free: Vec::new(),
            live: 1,
            set_bytes: 0,
        }
    }

    /// The head never moves: v0.0.2 never unlinks a frequency-0 node and v0.0.1 never unlinks any.
    pub fn head(&self) -> NodeId {
        0
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn node(&self, id: NodeId) -> &Node {
        self.nodes[id]
            .as_deref()
            .expect("freq node id refers to a live node")
    }

    fn node_mut(&mut self, id: NodeId) -> &mut Node {
        self.nodes[id]
            .as_deref_mut()
            .expect("freq node id refers to a live node")
    }

    pub fn set_freq(&mut self, id: NodeId, freq: u64) {
        self.node_mut(id).freq = freq;
    }

    /// `isRemovableFreqEntry` (gcache v0.0.2 lfu.go): not the head, and empty.
    pub fn is_removable(&self, id: NodeId) -> bool {
        let n = self.node(id);
        n.freq != 0 && n.items.is_empty()
    }

    /// The one place a node is allocated; kept out of line so heap profiles name it.
    #[inline(never)]
    fn new_node(freq: u64) -> Box<Node> {
        Box::new(Node {
            freq,
            prev: NIL,
            next: NIL,
            items: ItemSet::default(),
        })
    }

    /// `freqList.InsertAfter(&freqEntry{freq, make(map)}, prev)`.
    pub fn push_after(&mut self, prev: NodeId, freq: u64) -> NodeId {
        let mut node = Self::new_node(freq);
        let next = self.node(prev).next;
        node.prev = prev;
        node.next = next;
        let id = match self.free.pop() {
            Some(id) => {
                self.nodes[id] = Some(node);
                id
            }
            None => {
                self.nodes.push(Some(node));
                self.nodes.len() - 1
            }
        };
        self.node_mut(prev).next = id;
        if next != NIL {
            self.node_mut(next).prev = id;
        }
        self.live += 1;
        id
    }

    /// `freqList.Remove(element)`: frees the node and its set, recycles the id.
    pub fn unlink(&mut self, id: NodeId) {
        debug_assert_ne!(id, self.head(), "the head node is never unlinked");
        let node = self.nodes[id]
            .take()
            .expect("freq node id refers to a live node");
        if node.prev != NIL {
            self.node_mut(node.prev).next = node.next;
        }
        if node.next != NIL {
            self.node_mut(node.next).prev = node.prev;
        }
        self.set_bytes -= set_bytes(&node.items);
        self.free.push(id);
        self.live -= 1;
    }

    /// Adds `item` to the node and returns its position there, which the item must remember
    /// for [`FreqList::remove_at`].
    pub fn insert_item(&mut self, id: NodeId, item: ItemId) -> u32 {
        let node = self.nodes[id]
            .as_deref_mut()
            .expect("freq node id refers to a live node");
        if node.items.ids.len() == node.items.ids.capacity() {
            grow_items(&mut node.items, &mut self.set_bytes);
        }
        node.items.ids.push(item);
        // Positions are below the item count, which MAX_CAPACITY keeps within u32.
        (node.items.ids.len() - 1) as u32
    }

    /// Like `delete(entry.items, item)`: removes the item at `pos`, keeping the storage. Returns
    /// the item moved into `pos` to fill the hole, whose remembered position must be updated.
    pub fn remove_at(&mut self, id: NodeId, pos: u32) -> Option<ItemId> {
        let ids = &mut self.node_mut(id).items.ids;
        ids.swap_remove(pos as usize);
        ids.get(pos as usize).copied()
    }

    /// Estimated bytes held by the list: node boxes, their set storage and the id vectors.
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * size_of::<Option<Box<Node>>>()
            + self.free.capacity() * size_of::<NodeId>()
            + self.live * size_of::<Node>()
            + self.set_bytes
    }

    /// Node ids from the head in list order (tests and invariant checks).
    #[cfg(test)]
    pub fn ids(&self) -> Vec<NodeId> {
        let mut out = Vec::with_capacity(self.live);
        let mut cur = self.head();
        while cur != NIL {
            out.push(cur);
            cur = self.node(cur).next;
        }
        out
    }
}

/// Every allocation of a node's item storage happens here (out of line, so heap profiles of the
/// leak name it): called only when the set is full, i.e. exactly when `push` would reallocate.
#[cold]
#[inline(never)]
fn grow_items(items: &mut ItemSet, total: &mut usize) {
    let before = set_bytes(items);
    if items.ids.capacity() == 0 {
        // A Go map's first bucket holds 8 entries; start the same size so a leaked node holds
        // about what it would in Go beyond the node itself.
        items.ids.reserve_exact(GO_BUCKET_SLOTS);
    } else {
        items.ids.reserve(1);
    }
    *total = *total - before + set_bytes(items);
}

/// `bucketCnt` in Go's runtime map.
const GO_BUCKET_SLOTS: usize = 8;

fn set_bytes(items: &ItemSet) -> usize {
    items.ids.capacity() * size_of::<ItemId>()
}

/// Bytes of a hashbrown (std `HashMap`) table of full `capacity` with `slot` bytes per element:
/// buckets of data, one control byte per bucket plus one SIMD group. Mirrors hashbrown's
/// `capacity_to_buckets` (4 buckets up to 3 items, 8 up to 7, then 8/7 rounded to a power of two).
pub(crate) fn hash_table_bytes(capacity: usize, slot: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 4 {
        4
    } else if capacity < 8 {
        8
    } else {
        (capacity.saturating_mul(8) / 7).next_power_of_two()
    };
    const GROUP: usize = 16;
    (buckets * slot).next_multiple_of(GROUP) + buckets + GROUP
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_unlink_and_reuse_ids() {
        let mut l = FreqList::new();
        let a = l.push_after(l.head(), 1);
        let b = l.push_after(a, 2);
        assert_eq!(l.ids(), vec![0, a, b]);
        l.unlink(a);
        assert_eq!(l.ids(), vec![0, b]);
        assert_eq!(l.node(b).prev, 0);
        let c = l.push_after(b, 3);
        assert_eq!(c, a, "freed id is reused");
        assert_eq!(l.ids(), vec![0, b, c]);
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn emptied_set_keeps_its_storage_until_unlinked() {
        let mut l = FreqList::new();
        let a = l.push_after(l.head(), 1);
        let before = l.heap_bytes();
        assert_eq!(l.insert_item(a, 7), 0);
        let grown = l.heap_bytes();
        assert!(grown > before);
        assert_eq!(l.remove_at(a, 0), None);
        assert_eq!(
            l.heap_bytes(),
            grown,
            "emptying does not shrink, like a Go map"
        );
        l.unlink(a);
        assert_eq!(l.set_bytes, 0);
    }

    #[test]
    fn remove_at_reports_the_moved_item() {
        let mut l = FreqList::new();
        let h = l.head();
        for item in 10..13 {
            l.insert_item(h, item);
        }
        assert_eq!(l.remove_at(h, 0), Some(12), "last item fills the hole");
        assert_eq!(l.node(h).items.iter().collect::<Vec<_>>(), vec![12, 11]);
        assert_eq!(l.remove_at(h, 1), None);
    }

    #[test]
    fn table_estimate_matches_hashbrown_sizes() {
        assert_eq!(hash_table_bytes(0, 4), 0);
        assert_eq!(hash_table_bytes(3, 4), 16 + 4 + 16);
        assert_eq!(hash_table_bytes(7, 4), 32 + 8 + 16);
        assert_eq!(hash_table_bytes(14, 4), 64 + 16 + 16);
    }
}
