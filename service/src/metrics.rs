//! Prometheus metrics at `GET /metrics`: requests by route, status and SLO outcome, latency with a
//! bucket edge at exactly the 250 ms quota, the cache's figures, process, allocator and tokio
//! runtime figures.
//!
//! Most figures are sampled when Prometheus scrapes (cheap, O(1) reads); only per-request and
//! per-sweep values are recorded as they happen.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use leaklab_cache::{Mode, Stats, SweepReport};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUESTS: &str = "http_server_requests_total";
pub const REQUEST_DURATION: &str = "http_server_request_duration_seconds";
pub const IN_FLIGHT: &str = "http_server_in_flight_requests";
pub const SHED: &str = "http_server_shed_requests_total";
pub const CONCURRENCY_LIMIT: &str = "http_server_concurrency_limit";
pub const SWEEP_PAUSE: &str = "leaklab_cache_sweep_pause_seconds";
pub const SWEEP_NODES: &str = "leaklab_cache_sweep_nodes_walked";
pub const LOCK_WAIT: &str = "leaklab_cache_lock_wait_seconds";

/// Latency buckets: the edge at 0.25 s lets "within the quota" be read straight off the histogram.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 1.0, 2.5, 5.0,
];
const PAUSE_BUCKETS: &[f64] = &[
    0.000_01, 0.000_1, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
const NODE_BUCKETS: &[f64] = &[1.0, 10.0, 1e2, 1e3, 1e4, 1e5, 1e6, 3e6, 1e7, 3e7, 1e8];
const LOCK_BUCKETS: &[f64] = &[
    0.000_001, 0.000_01, 0.000_1, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// The process-wide recorder (metrics' recorder is global; tests start several apps in one
/// process, and they share it).
pub struct Metrics {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
    runtime: Mutex<RuntimeSample>,
}

struct RuntimeSample {
    at: Instant,
    busy: Duration,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

pub fn global() -> &'static Metrics {
    METRICS.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(SWEEP_PAUSE.into()), PAUSE_BUCKETS)
            })
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(SWEEP_NODES.into()), NODE_BUCKETS))
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(LOCK_WAIT.into()), LOCK_BUCKETS))
            .expect("bucket lists are non-empty")
            .install_recorder()
            .expect("the Prometheus recorder is installed once");
        let process = metrics_process::Collector::default();
        process.describe();
        describe();
        // Present from the first scrape, before the first shed or request.
        counter!(SHED).increment(0);
        gauge!(IN_FLIGHT).set(0.0);
        Metrics {
            handle,
            process,
            runtime: Mutex::new(RuntimeSample {
                at: Instant::now(),
                busy: Duration::ZERO,
            }),
        }
    })
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        REQUESTS,
        "Requests by route, method, status and SLO outcome (good: not 5xx and within the quota)"
    );
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Server-side request latency"
    );
    describe_gauge!(IN_FLIGHT, "Requests being served");
    describe_counter!(SHED, "Requests refused at the concurrency limit (503)");
    describe_gauge!(
        CONCURRENCY_LIMIT,
        "API requests served at once before the next is refused (adaptive or fixed)"
    );
    describe_histogram!(
        SWEEP_PAUSE,
        Unit::Seconds,
        "Time each expiry sweep held the cache lock"
    );
    describe_histogram!(SWEEP_NODES, "Frequency nodes walked by each expiry sweep");
    describe_histogram!(
        LOCK_WAIT,
        Unit::Seconds,
        "Time cache operations waited for the cache lock"
    );
    describe_gauge!(
        "leaklab_cache_nodes",
        "Frequency nodes in the LFU list (leaky: only grows)"
    );
    describe_gauge!("leaklab_cache_items", "Live items in the cache");
    describe_gauge!(
        "leaklab_cache_heap_bytes",
        Unit::Bytes,
        "Bytes held by the cache structure (estimate from its allocations)"
    );
    describe_gauge!("leaklab_cache_mode", "1 for the cache mode in use");
    describe_gauge!(
        "jemalloc_allocated_bytes",
        Unit::Bytes,
        "Bytes allocated by the application (jemalloc stats.allocated)"
    );
    describe_gauge!(
        "jemalloc_resident_bytes",
        Unit::Bytes,
        "Bytes in physically resident allocator pages (jemalloc stats.resident)"
    );
    describe_gauge!(
        "tokio_busy_ratio",
        "Share of worker time spent running tasks since the last scrape"
    );
}

pub fn record_request(route: &str, method: &str, status: u16, elapsed: Duration, quota: Duration) {
    let outcome = if status < 500 && elapsed <= quota {
        "good"
    } else {
        "bad"
    };
    let labels = [
        ("route", route.to_owned()),
        ("method", method.to_owned()),
        ("status", status.to_string()),
        ("outcome", outcome.to_owned()),
    ];
    counter!(REQUESTS, &labels).increment(1);
    histogram!(REQUEST_DURATION, "route" => route.to_owned(), "method" => method.to_owned())
        .record(elapsed.as_secs_f64());
}

pub fn record_shed() {
    counter!(SHED).increment(1);
}

/// Set whenever the adaptive limit changes.
pub fn concurrency_limit(limit: usize) {
    gauge!(CONCURRENCY_LIMIT).set(limit as f64);
}

pub fn in_flight(delta: f64) {
    gauge!(IN_FLIGHT).increment(delta);
}

pub fn record_sweep(mode: Mode, report: &SweepReport) {
    let mode = mode.as_str();
    histogram!(SWEEP_PAUSE, "mode" => mode).record(report.pause.as_secs_f64());
    histogram!(SWEEP_NODES, "mode" => mode).record(report.nodes_walked as f64);
}

pub fn record_lock_wait(mode: Mode, operation: &'static str, wait: Duration) {
    histogram!(LOCK_WAIT, "mode" => mode.as_str(), "operation" => operation)
        .record(wait.as_secs_f64());
}

impl Metrics {
    /// Samples the scrape-time figures and renders the Prometheus text format.
    pub fn render(&self, cache: &Stats) -> String {
        self.process.collect();
        record_cache(cache);
        record_allocator();
        self.record_runtime();
        self.handle.render()
    }

    fn record_runtime(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let m = handle.metrics();
        let workers = m.num_workers();
        let busy: Duration = (0..workers).map(|w| m.worker_total_busy_duration(w)).sum();
        let now = Instant::now();
        let mut last = self.runtime.lock().expect("runtime sample poisoned");
        let wall = now.duration_since(last.at).as_secs_f64() * workers as f64;
        if wall > 0.0 && last.busy <= busy {
            gauge!("tokio_busy_ratio").set((busy - last.busy).as_secs_f64() / wall);
        }
        *last = RuntimeSample { at: now, busy };
        gauge!("tokio_workers").set(workers as f64);
        gauge!("tokio_alive_tasks").set(m.num_alive_tasks() as f64);
        gauge!("tokio_global_queue_depth").set(m.global_queue_depth() as f64);
    }
}

fn record_cache(stats: &Stats) {
    let mode = stats.mode.as_str();
    for m in Mode::ALL {
        gauge!("leaklab_cache_mode", "mode" => m.as_str()).set(if m == stats.mode {
            1.0
        } else {
            0.0
        });
    }
    gauge!("leaklab_cache_items", "mode" => mode).set(stats.items as f64);
    gauge!("leaklab_cache_nodes", "mode" => mode).set(stats.nodes as f64);
    gauge!("leaklab_cache_heap_bytes", "mode" => mode).set(stats.heap_bytes as f64);
    gauge!("leaklab_cache_capacity", "mode" => mode).set(stats.capacity as f64);
    gauge!("leaklab_cache_hit_ratio", "mode" => mode).set(stats.hit_ratio);
    // Counters of the cache in place; a swap starts them again from zero, which Prometheus'
    // rate() reads as a counter reset.
    counter!("leaklab_cache_hits_total", "mode" => mode).absolute(stats.hits);
    counter!("leaklab_cache_misses_total", "mode" => mode).absolute(stats.misses);
    counter!("leaklab_cache_evictions_total", "mode" => mode).absolute(stats.evictions);
    counter!("leaklab_cache_expired_total", "mode" => mode).absolute(stats.expired);
    counter!("leaklab_cache_sweeps_total", "mode" => mode).absolute(stats.sweeps);
    gauge!("leaklab_cache_sweep_pause_last_seconds", "mode" => mode)
        .set(stats.last_sweep_pause_us as f64 / 1e6);
    gauge!("leaklab_cache_sweep_pause_max_seconds", "mode" => mode)
        .set(stats.max_sweep_pause_us as f64 / 1e6);
    gauge!("leaklab_cache_sweep_nodes_last", "mode" => mode).set(stats.last_sweep_nodes as f64);
}

fn record_allocator() {
    use tikv_jemalloc_ctl::{epoch, stats};
    // jemalloc caches its statistics; advancing the epoch refreshes them.
    if epoch::advance().is_err() {
        return;
    }
    if let Ok(allocated) = stats::allocated::read() {
        gauge!("jemalloc_allocated_bytes").set(allocated as f64);
    }
    if let Ok(resident) = stats::resident::read() {
        gauge!("jemalloc_resident_bytes").set(resident as f64);
    }
}
