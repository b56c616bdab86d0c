//! The frequency list: gcache's `freqList *list.List` of `*freqEntry`, as an index-linked list of
//! individually boxed nodes.
//!
//! Every node is its own allocation (made in [`FreqList::new_node`]) and owns a `HashSet` whose
//! table is allocated in [`grow_table`]; neither is ever shrunk, exactly like the Go entry and its
//! map. That keeps the bytes a leaked node holds real, and puts the allocation sites of the leak in
//! this file for heap profiles. Ids of unlinked nodes are recycled so a cache that unlinks nodes
//! (v0.0.2) stays bounded.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::mem::size_of;

/// Index of a node in [`FreqList::nodes`].
pub(crate) type NodeId = usize;
/// Index of an item in the LFU's item slab (the Go `*lfuItem`).
pub(crate) type ItemId = u32;
/// "No node": the end of the list.
pub(crate) const NIL: NodeId = usize::MAX;

/// Item ids are small dense integers; a multiply spreads them into the high bits hashbrown uses
/// for its control bytes while the low bits (the bucket index) stay distinct. Zero-sized builder,
/// so a node carries no per-set hasher state.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SlotHasher(u64);

impl Hasher for SlotHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type ItemSet = HashSet<ItemId, BuildHasherDefault<SlotHasher>>;

/// gcache's `freqEntry` plus its `list.Element` links.
#[derive(Debug)]
pub(crate) struct Node {
    pub freq: u64,
    pub prev: NodeId,
    pub next: NodeId,
    pub items: ItemSet,
    /// Full capacity of `items`' table as of its last growth. `HashSet::capacity` drops while the
    /// table holds tombstones, so it cannot tell the allocation size by itself.
    table_cap: usize,
}

#[derive(Debug)]
pub(crate) struct FreqList {
    nodes: Vec<Option<Box<Node>>>,
    free: Vec<NodeId>,
    live: usize,
    /// Sum of the estimated table bytes of every live node's set.
    table_bytes: usize,
}

impl FreqList {
    /// The list with its frequency-0 head, as gcache's `init` makes it.
    pub fn new() -> Self {
        Self {
            nodes: vec![Some(Self::new_node(0))],
            free: Vec::new(),
            live: 1,
            table_bytes: 0,
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
            table_cap: 0,
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

    /// `freqList.Remove(element)`: frees the node and its table, recycles the id.
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
        self.table_bytes -= set_table_bytes(node.table_cap);
        self.free.push(id);
        self.live -= 1;
    }

    pub fn insert_item(&mut self, id: NodeId, item: ItemId) {
        let node = self.nodes[id]
            .as_deref_mut()
            .expect("freq node id refers to a live node");
        if node.items.len() == node.items.capacity() {
            grow_table(node, &mut self.table_bytes);
        }
        node.items.insert(item);
    }

    /// Like `delete(entry.items, item)`: the table keeps its size.
    pub fn remove_item(&mut self, id: NodeId, item: ItemId) -> bool {
        self.node_mut(id).items.remove(&item)
    }

    /// Estimated bytes held by the list: node boxes, their set tables and the id vectors.
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * size_of::<Option<Box<Node>>>()
            + self.free.capacity() * size_of::<NodeId>()
            + self.live * size_of::<Node>()
            + self.table_bytes
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

/// Every allocation of a node's item table happens here (out of line, so heap profiles of the
/// leak name it). Called only when the set has no room left, i.e. exactly when `insert` would
/// otherwise rehash or grow; `reserve` does that now and we record the new size.
#[cold]
#[inline(never)]
fn grow_table(node: &mut Node, table_bytes: &mut usize) {
    node.items.reserve(1);
    let cap = node.items.capacity().max(node.table_cap);
    *table_bytes = *table_bytes - set_table_bytes(node.table_cap) + set_table_bytes(cap);
    node.table_cap = cap;
}

fn set_table_bytes(capacity: usize) -> usize {
    hash_table_bytes(capacity, size_of::<ItemId>())
}

/// Bytes of a hashbrown (std `HashMap`/`HashSet`) table of full `capacity` with `slot` bytes per
/// element: buckets of data, one control byte per bucket plus one SIMD group. Mirrors hashbrown's
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
    fn emptied_set_keeps_its_table_bytes_until_unlinked() {
        let mut l = FreqList::new();
        let a = l.push_after(l.head(), 1);
        let before = l.heap_bytes();
        l.insert_item(a, 7);
        let grown = l.heap_bytes();
        assert!(grown > before);
        l.remove_item(a, 7);
        assert_eq!(
            l.heap_bytes(),
            grown,
            "emptying does not shrink, like a Go map"
        );
        l.unlink(a);
        assert_eq!(l.table_bytes, 0);
    }

    #[test]
    fn table_estimate_matches_hashbrown_sizes() {
        assert_eq!(hash_table_bytes(0, 4), 0);
        assert_eq!(hash_table_bytes(3, 4), 16 + 4 + 16);
        assert_eq!(hash_table_bytes(7, 4), 32 + 8 + 16);
        assert_eq!(hash_table_bytes(14, 4), 64 + 16 + 16);
        let mut s = ItemSet::default();
        s.insert(1);
        assert_eq!(s.capacity(), 3);
    }
}
