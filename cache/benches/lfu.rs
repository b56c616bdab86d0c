//! Criterion benchmarks of the three modes: get-hit, miss-then-set with eviction, a Zipf
//! read-through mix (1 and 2 threads), and the sweep's cost per leaked node.
//!
//! "leaky_aged" is a v0.0.1 cache that has already served `AGE_HITS` hits on a few hot keys, so
//! its frequency list holds about that many (mostly empty) nodes, as after hours of traffic.
//! Run: `cargo bench -p leaklab-cache` (about 3 minutes on a 2-core VM), then
//! `python3 cache/scripts/bench-table.py` for the README tables.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use leaklab_cache::{Cache, Lfu, LfuVersion, MokaCache, sim};

const CAPACITY: usize = 10_000;
/// Hits replayed on hot keys to age the leaky cache: key 0 gets 2M, keys 1..=8 get 100k each.
const AGE_HOT: u64 = 2_000_000;
const AGE_WARM: u64 = 100_000;

type DynCache = Arc<dyn Cache<u64, u64>>;

fn filled(cache: DynCache) -> DynCache {
    for k in 0..CAPACITY as u64 {
        cache.set(k, k);
    }
    cache.sweep(); // lets moka apply its pending writes; a no-op walk for the LFU
    cache
}

fn aged(cache: DynCache) -> DynCache {
    let cache = filled(cache);
    for _ in 0..AGE_HOT {
        cache.get(&0);
    }
    for k in 1..=8 {
        for _ in 0..AGE_WARM {
            cache.get(&k);
        }
    }
    cache
}

fn variant(name: &str) -> DynCache {
    match name {
        "fixed" => filled(Arc::new(Lfu::new(CAPACITY, None, LfuVersion::V0_0_2))),
        "leaky_fresh" => filled(Arc::new(Lfu::new(CAPACITY, None, LfuVersion::V0_0_1))),
        "leaky_aged" => aged(Arc::new(Lfu::new(CAPACITY, None, LfuVersion::V0_0_1))),
        "moka" => filled(Arc::new(MokaCache::new(CAPACITY, None))),
        other => unreachable!("unknown variant {other}"),
    }
}

const VARIANTS: [&str; 4] = ["fixed", "leaky_fresh", "leaky_aged", "moka"];

/// Runs `iters` operations on each of `threads` threads and returns the wall time. Each thread
/// continues its own operation counter across samples, so key streams never repeat by accident.
fn run<F>(threads: usize, iters: u64, cursors: &[AtomicU64], op: &F) -> Duration
where
    F: Fn(usize, u64) + Sync,
{
    if threads == 1 {
        let start_i = cursors[0].fetch_add(iters, Ordering::Relaxed);
        let start = Instant::now();
        for i in start_i..start_i + iters {
            op(0, i);
        }
        return start.elapsed();
    }
    let start = Instant::now();
    std::thread::scope(|s| {
        for (t, cursor) in cursors.iter().enumerate().take(threads) {
            s.spawn(move || {
                let start_i = cursor.fetch_add(iters, Ordering::Relaxed);
                for i in start_i..start_i + iters {
                    op(t, i);
                }
            });
        }
    });
    start.elapsed()
}

/// One benchmark group: every variant, on 1 and 2 threads. `make_op` builds the per-operation
/// closure for a cache; throughput is counted in operations across all threads.
fn group<F, O>(c: &mut Criterion, name: &str, make_op: F)
where
    F: Fn(DynCache) -> O,
    O: Fn(usize, u64) + Sync,
{
    let mut g = c.benchmark_group(name);
    for v in VARIANTS {
        let op = make_op(variant(v));
        for threads in [1usize, 2] {
            let cursors: Vec<AtomicU64> = (0..threads).map(|_| AtomicU64::new(0)).collect();
            g.throughput(Throughput::Elements(threads as u64));
            g.bench_function(BenchmarkId::new(v, format!("{threads}t")), |b| {
                b.iter_custom(|iters| run(threads, iters, &cursors, &op));
            });
        }
    }
    g.finish();
}

fn get_hit(c: &mut Criterion) {
    group(c, "get_hit", |cache| {
        move |t: usize, i: u64| {
            // Threads start half the key space apart; every key is resident.
            let key = (i * 7 + t as u64 * 5_003) % CAPACITY as u64;
            black_box(cache.get(&key).value);
        }
    });
}

fn miss_then_set(c: &mut Criterion) {
    group(c, "miss_then_set_evict", |cache| {
        move |t: usize, i: u64| {
            // Fresh keys only: every get misses and every set evicts.
            let key = (1u64 << 40) + ((t as u64) << 36) + i;
            if cache.get(&key).value.is_none() {
                black_box(cache.set(key, key));
            }
        }
    });
}

fn zipf_mix(c: &mut Criterion) {
    let trace: Arc<Vec<u64>> = Arc::new(
        sim::zipf_trace(1_000_000, 4_000_000, 1.0, 42).expect("valid workload parameters"),
    );
    group(c, "zipf_mix", |cache| {
        let trace = Arc::clone(&trace);
        move |t: usize, i: u64| {
            let pos = (i as usize + t * trace.len() / 2) % trace.len();
            let key = trace[pos];
            if cache.get(&key).value.is_none() {
                cache.set(key, key);
            }
        }
    });
}

fn sweep(c: &mut Criterion) {
    let mut g = c.benchmark_group("sweep");
    g.sample_size(10);
    let cases = [
        ("leaky", LfuVersion::V0_0_1, 10_000u64),
        ("leaky", LfuVersion::V0_0_1, 100_000),
        ("leaky", LfuVersion::V0_0_1, 1_000_000),
        // Same history in v0.0.2: the walk is the 10k items in 2 nodes, whatever the hits.
        ("fixed", LfuVersion::V0_0_2, 1_000_000),
    ];
    for (name, version, hits) in cases {
        let cache = filled(Arc::new(Lfu::new(CAPACITY, None, version)));
        for _ in 1..hits {
            cache.get(&0);
        }
        let walked = cache.stats().nodes;
        // Per node walked, so the leaky figure reads as time per node.
        g.throughput(Throughput::Elements(walked));
        g.bench_function(BenchmarkId::new(name, format!("{hits}hits")), |b| {
            b.iter(|| black_box(cache.sweep()));
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    // Short runs and a light analysis keep the whole suite at a few minutes on 2 shared cores.
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1200))
        .nresamples(10_000)
        .without_plots();
    targets = get_hit, miss_then_set, zipf_mix, sweep
}
criterion_main!(benches);
