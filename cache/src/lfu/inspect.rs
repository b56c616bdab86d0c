//! Test-only view of the locked structure: its node layout and the invariants both upstream
//! versions keep.

use std::hash::Hash;

use super::{Inner, LfuVersion};
use crate::freq_list::NIL;

/// Read-only access to the locked structure for invariant checks in tests.
pub(crate) struct InnerView<'a, K, V>(pub(super) &'a Inner<K, V>);

impl<K: Hash + Eq + Clone + std::fmt::Debug, V: Clone> InnerView<'_, K, V> {
    /// (freq, keys) of every node from the head, in list order.
    pub fn nodes(&self) -> Vec<(u64, Vec<K>)> {
        let inner = self.0;
        inner
            .list
            .ids()
            .into_iter()
            .map(|n| {
                let node = inner.list.node(n);
                let keys = node
                    .items
                    .iter()
                    .map(|id| inner.slab.get(id).key.clone())
                    .collect();
                (node.freq, keys)
            })
            .collect()
    }

    /// Structural invariants shared by both versions, plus v0.0.2's exactness.
    pub fn check_invariants(&self) {
        let inner = self.0;
        let ids = inner.list.ids();
        assert_eq!(ids.len(), inner.list.len(), "live node count");
        assert_eq!(inner.list.node(ids[0]).freq, 0, "head has freq 0");
        let mut prev = NIL;
        let mut in_nodes = 0;
        for (i, &n) in ids.iter().enumerate() {
            let node = inner.list.node(n);
            assert_eq!(node.prev, prev, "prev link of node {i}");
            if i > 0 {
                assert!(node.freq > inner.list.node(prev).freq, "freqs increase");
            }
            for id in node.items.iter() {
                let item = inner.slab.get(id);
                assert_eq!(item.node, n, "item points back at its node");
                assert_eq!(
                    node.items.iter().nth(item.pos as usize),
                    Some(id),
                    "position"
                );
                assert_eq!(inner.items.get(&item.key), Some(&id), "map agrees");
            }
            in_nodes += node.items.len();
            if inner.version == LfuVersion::V0_0_2 && i > 0 {
                assert!(
                    !node.items.is_empty(),
                    "v0.0.2 keeps no empty non-head node"
                );
            }
            if inner.version == LfuVersion::V0_0_1 {
                assert_eq!(node.freq, i as u64, "v0.0.1 node freqs are 0,1,2,...");
            }
            prev = n;
        }
        assert_eq!(
            in_nodes,
            inner.items.len(),
            "every item in exactly one node"
        );
        assert!(inner.items.len() <= inner.capacity, "capacity respected");
        if inner.version == LfuVersion::V0_0_2 {
            assert!(ids.len() <= inner.items.len() + 1, "nodes <= items + 1");
        }
    }
}
