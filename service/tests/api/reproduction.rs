//! The reproduction, scaled down: the same pre-aged history and the same open-model load on a
//! `fixed` and then a `leaky` app. Only relationships are asserted, never absolute times.

use std::sync::Arc;
use std::time::{Duration, Instant};

use leaklab_cache::Mode;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Zipf};
use reservation_service::cache::preage::Preage;
use reservation_service::state::LimitPolicy;
use serde_json::Value;
use sqlx::MySqlPool;

use crate::helpers::{AppOptions, TestApp, settings, spawn_app_aged};

const ACTIVITIES: u64 = 100;
const RATE: u64 = 100;
const LOAD: Duration = Duration::from_secs(6);

async fn lab_app(pool: MySqlPool, mode: Mode, hits: u64) -> TestApp {
    let mut settings = settings();
    settings.cache.mode = mode;
    settings.cache.capacity = ACTIVITIES as usize;
    settings.cache.ttl = Some(Duration::from_secs(600));
    settings.cache_sweep.max_interval = Duration::from_millis(100);
    // Stalls are measured here as latency: a stalled debug build in a busy CI must not start
    // shedding (503) instead, which would end the test with a failed request.
    settings.max_in_flight = 100_000;
    settings.limit_policy = LimitPolicy::Fixed;
    settings.request_quota = Duration::from_secs(30);
    // The hits go to the ten hottest activities: the hottest gets a third of them, so the leaky
    // list reaches a million nodes in a few seconds of replay.
    let preage = Preage {
        hits,
        keys: 10,
        zipf: 1.0,
    };
    let options = AppOptions {
        settings,
        ..AppOptions::default()
    };
    spawn_app_aged(pool, options, Some(preage)).await
}

async fn cache_stats(app: &TestApp) -> Value {
    app.admin_get("/admin/cache").await.json().await.unwrap()
}

/// Page views at a fixed rate, Zipf over the activities like the load generator; each latency
/// counts from the request's intended send time, so a stalled app is charged for the wait.
async fn load(app: Arc<TestApp>) -> Vec<Duration> {
    let zipf = Zipf::new(ACTIVITIES as f64, 1.0).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let start = tokio::time::Instant::now();
    let period = Duration::from_secs(1) / RATE as u32;
    let total = RATE * LOAD.as_secs();
    let mut requests = Vec::with_capacity(total as usize);
    for n in 0..total {
        let intended = start + period * n as u32;
        tokio::time::sleep_until(intended).await;
        let id = zipf.sample(&mut rng) as u64;
        let app = app.clone();
        requests.push(tokio::spawn(async move {
            let response = app
                .client
                .get(app.url(&format!("/v1/activities/{id}/page?user_id=1")))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = response.bytes().await.unwrap();
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            intended.into_std().elapsed()
        }));
    }
    let mut latencies = Vec::with_capacity(requests.len());
    for request in requests {
        latencies.push(request.await.unwrap());
    }
    latencies.sort();
    latencies
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Samples the cache figures while the load runs.
async fn watch(app: Arc<TestApp>, until: Instant) -> Vec<Value> {
    let mut samples = vec![];
    while Instant::now() < until {
        samples.push(cache_stats(&app).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    samples.push(cache_stats(&app).await);
    samples
}

/// Activities 1..=ACTIVITIES, starting an hour apart, as `seed` numbers them.
async fn seed(pool: &MySqlPool) {
    for n in 0..ACTIVITIES {
        sqlx::query(
            "INSERT INTO activities (title, starts_at, capacity) \
             VALUES (?, TIMESTAMPADD(HOUR, ?, '2030-01-01 10:00:00'), 100)",
        )
        .bind(format!("Activity {}", n + 1))
        .bind(n)
        .execute(pool)
        .await
        .unwrap();
    }
}

/// What one app went through: its cache after pre-ageing, the latencies of the load, and the
/// cache figures sampled meanwhile.
struct Run {
    aged: Value,
    latency: Vec<Duration>,
    samples: Vec<Value>,
}

async fn run_lab(pool: MySqlPool, mode: Mode, hits: u64) -> Run {
    let app = Arc::new(lab_app(pool, mode, hits).await);
    let aged = cache_stats(&app).await;
    let until = Instant::now() + LOAD;
    let (latency, samples) = tokio::join!(load(app.clone()), watch(app.clone(), until));
    Run {
        aged,
        latency,
        samples,
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn leaky_grows_stalls_and_worsens_the_tail_where_fixed_does_not(pool: MySqlPool) {
    // One after the other, not side by side: a stalled runtime would stall both apps.
    seed(&pool).await;
    let hits = 4_000_000;
    let fixed = run_lab(pool.clone(), Mode::Fixed, hits).await;
    let leaky = run_lab(pool, Mode::Leaky, hits).await;
    let (aged_leaky, leaky_samples, leaky_latency) = (&leaky.aged, &leaky.samples, &leaky.latency);
    let (aged_fixed, fixed_samples, fixed_latency) = (&fixed.aged, &fixed.samples, &fixed.latency);

    // Leaky: the pre-aged list is already far longer than the cache, and the load lengthens it
    // further, sample after sample, with the bytes to match.
    let nodes = |s: &Value| s["nodes"].as_u64().unwrap();
    let bytes = |s: &Value| s["heap_bytes"].as_u64().unwrap();
    let items = |s: &Value| s["items"].as_u64().unwrap();
    assert!(nodes(aged_leaky) > 100 * items(aged_leaky), "{aged_leaky}");
    let leaky_nodes: Vec<u64> = leaky_samples.iter().map(nodes).collect();
    assert!(
        leaky_nodes.windows(2).all(|w| w[1] >= w[0]) && leaky_nodes.last() > leaky_nodes.first(),
        "leaky nodes must only grow under load: {leaky_nodes:?}"
    );
    assert!(nodes(leaky_samples.last().unwrap()) > nodes(aged_leaky));
    assert!(bytes(leaky_samples.last().unwrap()) > bytes(aged_leaky));

    // Fixed: the same history and load leave at most one node per live item plus the head.
    for sample in std::iter::once(aged_fixed).chain(fixed_samples) {
        assert!(nodes(sample) <= items(sample) + 1, "{sample}");
    }
    let last_fixed = fixed_samples.last().unwrap();
    assert!(bytes(leaky_samples.last().unwrap()) > 10 * bytes(last_fixed));

    // The sweep walks every node under the cache lock: longer pauses, and a worse tail.
    let pause = |s: &Value| s["max_sweep_pause_us"].as_u64().unwrap();
    let leaky_pause = pause(leaky_samples.last().unwrap());
    let fixed_pause = pause(last_fixed);
    assert!(
        leaky_pause > 5 * fixed_pause.max(1),
        "sweep pause leaky {leaky_pause} µs, fixed {fixed_pause} µs"
    );
    let (leaky_p99, fixed_p99) = (quantile(leaky_latency, 0.99), quantile(fixed_latency, 0.99));
    assert!(
        leaky_p99 > fixed_p99,
        "p99 leaky {leaky_p99:?}, fixed {fixed_p99:?} (sweep pause leaky {leaky_pause} µs)"
    );
    eprintln!(
        "leaky: nodes {} -> {}, max sweep pause {leaky_pause} µs, p99 {leaky_p99:?}; \
         fixed: nodes {}, max sweep pause {fixed_pause} µs, p99 {fixed_p99:?}",
        nodes(aged_leaky),
        leaky_nodes.last().unwrap(),
        nodes(last_fixed),
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn the_heap_profile_points_at_the_leaked_frequency_nodes(pool: MySqlPool) {
    seed(&pool).await;
    let app = lab_app(pool, Mode::Leaky, 4_000_000).await;
    let svg = app
        .admin_get("/debug/pprof/heap?format=flamegraph")
        .await
        .text()
        .await
        .unwrap();
    // Frames read "<function> (<bytes> bytes, <share>%)". Other tests share this process's heap,
    // so compare with what the cache itself counts rather than with the whole heap: the boxed
    // nodes are about half of the cache's bytes (the rest is the slab of node pointers), and
    // jemalloc's sampled estimate must find them at the node allocation site.
    let leaked_bytes: f64 = svg
        .split("<title>")
        .filter_map(|t| t.split_once("</title>").map(|(title, _)| title))
        .filter(|title| title.contains("freq_list::FreqList::new_node"))
        .filter_map(|title| {
            let bytes = title.rsplit_once(" (")?.1.split_once(" bytes")?.0;
            bytes.replace(',', "").parse::<f64>().ok()
        })
        .sum();
    let cache_bytes = cache_stats(&app).await["heap_bytes"].as_f64().unwrap();
    assert!(
        leaked_bytes >= 0.3 * cache_bytes,
        "the heap profile puts {leaked_bytes} bytes at FreqList::new_node; the cache holds \
         {cache_bytes} bytes"
    );
}
