//! Property tests: the port against a plain reference model of gcache's LFU, both versions.
//!
//! The model keeps, per key, its value, its hit count since (last) insertion and its expiry in
//! virtual milliseconds. Which item an eviction picks is arbitrary upstream (Go map order), so
//! the model only checks that the victim had the fewest hits, then follows the cache's choice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::{Lfu, LfuVersion};
use crate::{Cache, ManualClock};

#[derive(Debug, Clone)]
enum Op {
    Get(u64),
    Set(u64, u64),
    Remove(u64),
    Advance(u64),
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..12u64;
    prop_oneof![
        6 => key.clone().prop_map(Op::Get),
        4 => (key.clone(), any::<u64>()).prop_map(|(k, v)| Op::Set(k, v)),
        1 => key.prop_map(Op::Remove),
        1 => (0..15u64).prop_map(Op::Advance),
        1 => Just(Op::Sweep),
    ]
}

#[derive(Debug, Clone, Copy)]
struct ModelItem {
    value: u64,
    hits: u64,
    expires_at: Option<u64>,
}

#[derive(Debug, Default)]
struct Model {
    items: HashMap<u64, ModelItem>,
    now: u64,
    max_hits_ever: u64,
    hits: u64,
    misses: u64,
}

impl Model {
    fn expired(&self, item: &ModelItem) -> bool {
        item.expires_at.is_some_and(|at| at < self.now)
    }
}

fn run(version: LfuVersion, capacity: usize, ttl_ms: Option<u64>, ops: Vec<Op>) {
    let clock = Arc::new(ManualClock::new());
    let ttl = ttl_ms.map(Duration::from_millis);
    let cache: Lfu<u64, u64> = Lfu::with_clock(capacity, ttl, version, clock.clone());
    let mut m = Model::default();

    for op in ops {
        match op {
            Op::Get(k) => {
                let want = match m.items.get(&k).copied() {
                    Some(item) if m.expired(&item) => {
                        m.items.remove(&k);
                        None
                    }
                    Some(_) => {
                        let item = m.items.get_mut(&k).unwrap();
                        item.hits += 1;
                        m.max_hits_ever = m.max_hits_ever.max(item.hits);
                        Some(item.value)
                    }
                    None => None,
                };
                if want.is_some() {
                    m.hits += 1;
                } else {
                    m.misses += 1;
                }
                assert_eq!(cache.get(&k).value, want, "get {k}");
            }
            Op::Set(k, v) => {
                let expires_at = ttl_ms.map(|t| m.now + t);
                if let Some(item) = m.items.get_mut(&k) {
                    item.value = v;
                    if expires_at.is_some() {
                        item.expires_at = expires_at;
                    }
                    assert_eq!(cache.set(k, v).evicted, 0);
                } else {
                    let full = m.items.len() >= capacity;
                    let fewest = m.items.values().map(|i| i.hits).min();
                    let out = cache.set(k, v);
                    assert_eq!(out.evicted, usize::from(full), "evicts only when full");
                    if full {
                        let present = present_keys(&cache);
                        let victims: Vec<u64> = m
                            .items
                            .keys()
                            .copied()
                            .filter(|key| !present.contains(key))
                            .collect();
                        assert_eq!(victims.len(), 1, "exactly one victim");
                        let victim = m.items.remove(&victims[0]).unwrap();
                        assert_eq!(Some(victim.hits), fewest, "victim from lowest node");
                    }
                    m.items.insert(
                        k,
                        ModelItem {
                            value: v,
                            hits: 0,
                            expires_at,
                        },
                    );
                }
            }
            Op::Remove(k) => {
                assert_eq!(cache.remove(&k), m.items.remove(&k).is_some(), "remove {k}");
            }
            Op::Advance(ms) => {
                clock.advance(Duration::from_millis(ms));
                m.now += ms;
            }
            Op::Sweep => {
                let before = m.items.len();
                let now = m.now;
                m.items
                    .retain(|_, i| i.expires_at.is_none_or(|at| at >= now));
                let nodes = cache.stats().nodes;
                let r = cache.sweep();
                assert_eq!(r.items_expired as usize, before - m.items.len());
                assert_eq!(r.nodes_walked, nodes, "sweep walks the whole list");
            }
        }
        check(&cache, &m, version);
    }
}

fn present_keys(cache: &Lfu<u64, u64>) -> Vec<u64> {
    cache.with_inner(|v| v.nodes().into_iter().flat_map(|(_, ks)| ks).collect())
}

fn check(cache: &Lfu<u64, u64>, m: &Model, version: LfuVersion) {
    let nodes = cache.with_inner(|v| {
        v.check_invariants();
        v.nodes()
    });
    let mut seen = 0;
    for (freq, keys) in &nodes {
        for k in keys {
            let item = m.items.get(k).expect("cache holds only model keys");
            // v0.0.1 too: a node's position is the hit count of its items, and its freq equals
            // its position (checked by check_invariants).
            assert_eq!(
                item.hits, *freq,
                "key {k} sits in the node of its hit count"
            );
            seen += 1;
        }
    }
    assert_eq!(seen, m.items.len(), "same keys as the model");
    match version {
        LfuVersion::V0_0_1 => assert_eq!(
            nodes.len() as u64,
            1 + m.max_hits_ever,
            "v0.0.1: one node per hit of the most-hit item, never removed"
        ),
        LfuVersion::V0_0_2 => {
            assert!(nodes.len() <= m.items.len() + 1);
            assert!(nodes.iter().skip(1).all(|(_, ks)| !ks.is_empty()));
        }
    }
    let s = cache.stats();
    assert_eq!((s.hits, s.misses), (m.hits, m.misses));
    assert_eq!(s.items as usize, m.items.len());
    assert_eq!(s.nodes as usize, nodes.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn v0_0_1_matches_model(
        capacity in 1..8usize,
        ttl in proptest::option::of(1..20u64),
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        run(LfuVersion::V0_0_1, capacity, ttl, ops);
    }

    #[test]
    fn v0_0_2_matches_model(
        capacity in 1..8usize,
        ttl in proptest::option::of(1..20u64),
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        run(LfuVersion::V0_0_2, capacity, ttl, ops);
    }
}
