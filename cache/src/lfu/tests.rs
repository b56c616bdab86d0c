//! Unit tests of the port: eviction order, the two increment rules, expiry, capacity, sweep.

use std::sync::Arc;
use std::time::Duration;

use super::{Lfu, LfuVersion};
use crate::{Cache, Config, ManualClock, Mode, build};

const BOTH: [LfuVersion; 2] = [LfuVersion::V0_0_1, LfuVersion::V0_0_2];

fn lfu(
    version: LfuVersion,
    capacity: usize,
    ttl: Option<Duration>,
) -> (Lfu<u64, u64>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    (
        Lfu::with_clock(capacity, ttl, version, clock.clone()),
        clock,
    )
}

fn hit(c: &Lfu<u64, u64>, key: u64, times: usize) {
    for _ in 0..times {
        assert!(c.get(&key).value.is_some(), "key {key} should hit");
    }
}

/// (freq, sorted keys) per node, head first.
fn layout(c: &Lfu<u64, u64>) -> Vec<(u64, Vec<u64>)> {
    c.with_inner(|v| {
        v.check_invariants();
        v.nodes()
            .into_iter()
            .map(|(f, mut keys)| {
                keys.sort_unstable();
                (f, keys)
            })
            .collect()
    })
}

#[test]
fn eviction_takes_from_the_lowest_non_empty_node() {
    for version in BOTH {
        let (c, _) = lfu(version, 3, None);
        for k in 1..=3 {
            c.set(k, k);
        }
        hit(&c, 1, 2);
        hit(&c, 2, 1);
        let out = c.set(4, 4);
        assert_eq!((out.evicted, out.nodes_walked), (1, 1), "{version:?}");
        assert!(c.get(&3).value.is_none(), "3 had no hits: {version:?}");
        // 4 is now the only item at frequency 0.
        c.set(5, 5);
        assert!(c.get(&4).value.is_none(), "{version:?}");
        hit(&c, 5, 1);
        // Head empty; 2 and 5 share frequency 1; 1 is at 2.
        let out = c.set(6, 6);
        assert_eq!((out.evicted, out.nodes_walked), (1, 2), "{version:?}");
        let survivors: Vec<u64> = [1, 2, 5]
            .into_iter()
            .filter(|k| c.with_inner(|v| v.nodes().iter().any(|(_, ks)| ks.contains(k))))
            .collect();
        assert_eq!(survivors.len(), 2, "{version:?}");
        assert!(
            survivors.contains(&1),
            "the most-hit item survives: {version:?}"
        );
    }
}

#[test]
fn v0_0_1_never_removes_a_node() {
    let (c, _) = lfu(LfuVersion::V0_0_1, 10, None);
    c.set(1, 1);
    hit(&c, 1, 5);
    assert_eq!(c.stats().nodes, 6);
    assert!(c.remove(&1));
    assert_eq!(c.stats().nodes, 6, "remove leaves the emptied node");
    c.set(2, 2);
    hit(&c, 2, 2);
    let l = layout(&c);
    assert_eq!(l.len(), 6);
    assert_eq!(l[2], (2, vec![2]), "item moves one node per hit");
    assert!(
        l.iter()
            .enumerate()
            .all(|(i, (_, ks))| i == 2 || ks.is_empty())
    );
}

#[test]
fn v0_0_1_eviction_walks_the_leaked_empty_nodes() {
    for (version, walked) in [(LfuVersion::V0_0_1, 6), (LfuVersion::V0_0_2, 2)] {
        let (c, _) = lfu(version, 2, None);
        c.set(1, 1);
        hit(&c, 1, 5);
        c.set(2, 2);
        hit(&c, 2, 5);
        // Head empty; both items at frequency 5.
        let out = c.set(3, 3);
        assert_eq!((out.evicted, out.nodes_walked), (1, walked), "{version:?}");
    }
}

#[test]
fn v0_0_2_reuses_a_lone_items_node() {
    let (c, _) = lfu(LfuVersion::V0_0_2, 10, None);
    c.set(1, 1);
    hit(&c, 1, 1000);
    assert_eq!(layout(&c), vec![(0, vec![]), (1000, vec![1])]);
    assert!(c.remove(&1));
    assert_eq!(
        layout(&c),
        vec![(0, vec![])],
        "remove unlinks the emptied node"
    );
}

#[test]
fn v0_0_2_unlinks_a_node_left_empty() {
    let (c, _) = lfu(LfuVersion::V0_0_2, 10, None);
    c.set(1, 1);
    c.set(2, 2);
    hit(&c, 1, 1);
    hit(&c, 2, 1);
    assert_eq!(layout(&c), vec![(0, vec![]), (1, vec![1, 2])]);
    hit(&c, 1, 1);
    assert_eq!(layout(&c), vec![(0, vec![]), (1, vec![2]), (2, vec![1])]);
    hit(&c, 2, 1);
    assert_eq!(layout(&c), vec![(0, vec![]), (2, vec![1, 2])]);
}

#[test]
fn set_on_existing_key_replaces_without_a_hit() {
    for version in BOTH {
        let (c, _) = lfu(version, 10, None);
        c.set(1, 10);
        assert_eq!(c.set(1, 11).evicted, 0);
        assert_eq!(c.get(&1).value, Some(11));
        assert_eq!(layout(&c)[1], (1, vec![1]), "{version:?}");
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.items), (1, 0, 1));
    }
}

#[test]
fn expiry_is_lazy_and_exclusive_of_the_deadline() {
    for version in BOTH {
        let (c, clock) = lfu(version, 10, Some(Duration::from_secs(10)));
        c.set(1, 1);
        clock.advance(Duration::from_secs(10));
        assert_eq!(
            c.get(&1).value,
            Some(1),
            "live at its deadline, like Before()"
        );
        assert_eq!(c.stats().items, 1);
        clock.advance(Duration::from_nanos(1));
        assert_eq!(c.get(&1).value, None);
        let s = c.stats();
        assert_eq!((s.items, s.expired, s.hits, s.misses), (0, 1, 1, 1));
        // A set on an existing key refreshes its expiry.
        c.set(2, 2);
        clock.advance(Duration::from_secs(8));
        c.set(2, 3);
        clock.advance(Duration::from_secs(8));
        assert_eq!(c.get(&2).value, Some(3), "{version:?}");
    }
}

#[test]
fn unrepresentable_ttl_means_no_expiry() {
    for version in BOTH {
        let (c, clock) = lfu(version, 10, Some(Duration::MAX));
        c.set(1, 1);
        clock.advance(Duration::from_secs(1 << 40));
        assert_eq!(c.get(&1).value, Some(1));
        assert_eq!(c.sweep().items_expired, 0);
    }
}

#[test]
fn capacity_is_never_exceeded() {
    for version in BOTH {
        let (c, _) = lfu(version, 10, None);
        for k in 0..100 {
            c.set(k, k);
            assert!(c.stats().items <= 10);
        }
        let s = c.stats();
        assert_eq!((s.items, s.evictions), (10, 90), "{version:?}");
        layout(&c);
    }
}

#[test]
fn sweep_removes_expired_items_in_both_versions() {
    for version in BOTH {
        let (c, clock) = lfu(version, 10, Some(Duration::from_secs(10)));
        for k in 1..=5 {
            c.set(k, k);
        }
        hit(&c, 1, 3);
        clock.advance(Duration::from_secs(11));
        c.set(6, 6);
        let before = c.stats().nodes;
        let r = c.sweep();
        assert_eq!(r.items_expired, 5, "{version:?}");
        assert_eq!(r.nodes_walked, before, "walks every node: {version:?}");
        let s = c.stats();
        assert_eq!((s.items, s.expired, s.sweeps), (1, 5, 1));
        assert_eq!(s.last_sweep_nodes, before);
        match version {
            LfuVersion::V0_0_1 => assert_eq!((before, s.nodes), (4, 4), "nodes stay"),
            LfuVersion::V0_0_2 => assert_eq!((before, s.nodes), (2, 1), "emptied node goes"),
        }
        assert_eq!(c.get(&6).value, Some(6));
        layout(&c);
    }
}

#[test]
fn leaked_nodes_hold_heap_bytes() {
    let (leaky, _) = lfu(LfuVersion::V0_0_1, 10, None);
    let (fixed, _) = lfu(LfuVersion::V0_0_2, 10, None);
    for c in [&leaky, &fixed] {
        c.set(1, 1);
        hit(c, 1, 10_000);
    }
    let (l, f) = (leaky.stats(), fixed.stats());
    assert_eq!((l.nodes, f.nodes), (10_001, 2));
    let per_node = (l.heap_bytes - f.heap_bytes) / (l.nodes - f.nodes);
    assert!(
        (64..=256).contains(&per_node),
        "estimated {per_node} B/node"
    );
}

#[test]
fn uncontended_calls_report_no_lock_wait() {
    let (c, _) = lfu(LfuVersion::V0_0_2, 10, None);
    assert_eq!(c.set(1, 1).lock_wait, Duration::ZERO);
    assert_eq!(c.get(&1).lock_wait, Duration::ZERO);
}

#[test]
fn concurrent_use_keeps_the_structure_sound() {
    for version in BOTH {
        let (c, _) = lfu(version, 64, None);
        let c = Arc::new(c);
        let workers: Vec<_> = (0..2u64)
            .map(|t| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        let k = (i * 7 + t) % 200;
                        if c.get(&k).value.is_none() {
                            c.set(k, k);
                        }
                        if i % 97 == 0 {
                            c.remove(&k);
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        let s = c.stats();
        assert_eq!(s.hits + s.misses, 40_000);
        layout(&c);
    }
}

#[test]
fn build_picks_the_mode() {
    for mode in Mode::ALL {
        let c = build::<u64, u64>(&Config {
            mode,
            capacity: 0,
            ttl: None,
        });
        assert_eq!(c.mode(), mode);
        c.set(1, 1);
        assert_eq!(c.get(&1).value, Some(1));
        assert_eq!(c.stats().capacity, 1);
    }
}

/// `try_get` steps aside for a sweep only: brief contention from another operation is waited
/// out in place, as `get` does.
#[test]
fn try_get_declines_only_while_a_sweep_holds_the_lock() {
    use std::sync::atomic::Ordering;
    for version in BOTH {
        let (c, _) = lfu(version, 4, None);
        c.set(1, 10);
        assert_eq!(c.try_get(&1).map(|l| l.value), Some(Some(10)));

        c.sweeping.store(true, Ordering::Release);
        assert!(
            c.try_get(&1).is_none(),
            "{version:?}: a sweep holds the lock"
        );
        c.sweeping.store(false, Ordering::Release);

        // Held by an ordinary operation: try_get waits for it and answers.
        let c = Arc::new(c);
        let guard = c.inner.lock().unwrap();
        let waiter = {
            let c = c.clone();
            std::thread::spawn(move || c.try_get(&1).map(|l| l.value))
        };
        std::thread::sleep(Duration::from_millis(20));
        drop(guard);
        assert_eq!(waiter.join().unwrap(), Some(Some(10)));
        assert!(!c.sweeping.load(Ordering::Acquire));
        c.sweep();
        assert!(
            !c.sweeping.load(Ordering::Acquire),
            "{version:?}: cleared after a sweep"
        );
    }
}
