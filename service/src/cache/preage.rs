//! Pre-ageing: replays past cache hits into the in-process cache before the load starts.
//!
//! The incident's cache had taken hours of peak traffic to leak over a million nodes; a lab run
//! lasts minutes. Rather than fake the result, this replays the traffic: `hits` real `get`s on
//! the hottest activities, drawn with the same Zipf law as the load generator, through the same
//! cache code a request uses. In `leaky` mode the frequency list grows exactly as that many past
//! hits would have grown it; in `fixed` and `moka` mode the same replay leaves nothing behind.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Zipf};
use sqlx::MySqlPool;

use crate::cache::ActivityCache;
use crate::domain::ActivitySummary;
use crate::store::mysql;

#[derive(Debug, Clone, Copy)]
pub struct Preage {
    /// Cache hits to replay.
    pub hits: u64,
    /// How many of the most popular activities (ids 1..=keys, as `seed` makes them) receive them.
    pub keys: u32,
    pub zipf: f64,
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PreageReport {
    /// Activities loaded into the cache.
    pub warmed: usize,
    pub hits: u64,
    pub keys: usize,
    pub nodes: u64,
    pub heap_bytes: u64,
    pub elapsed_ms: u128,
}

/// Loads activities into `cache`, then replays the hits on a blocking thread.
pub async fn run(
    pool: &MySqlPool,
    cache: Arc<ActivityCache>,
    preage: Preage,
    related: u32,
) -> anyhow::Result<PreageReport> {
    let started = Instant::now();
    // Warm the whole cache first (ids 1..=capacity, as `seed` numbers them), as hours of traffic
    // would have: a run then measures the leak, not a cold start.
    let capacity = cache.stats().capacity as u64;
    let mut summaries: Vec<(u64, Arc<ActivitySummary>)> = futures::stream::iter(1..=capacity)
        .map(|id| async move {
            mysql::activity_summary(pool, id, related)
                .await
                .map(|s| s.map(|s| (id, Arc::new(s))))
        })
        .buffered(16)
        .try_filter_map(|found| async move { Ok(found) })
        .try_collect()
        .await
        .context("loading activities to pre-age the cache")?;
    if summaries.is_empty() {
        // A lab default must not stop a service from starting on an empty database.
        tracing::warn!(
            "cache not pre-aged: no activities with ids 1..={capacity}; run `seed` first to \
             reproduce the leak"
        );
        return Ok(PreageReport {
            warmed: 0,
            hits: 0,
            keys: 0,
            nodes: 0,
            heap_bytes: 0,
            elapsed_ms: started.elapsed().as_millis(),
        });
    }
    let warmed = summaries.len();
    let keys = warmed.min(preage.keys as usize);
    let zipf = Zipf::new(keys as f64, preage.zipf).context("invalid Zipf exponent")?;
    let report = tokio::task::spawn_blocking(move || {
        for (id, summary) in &summaries {
            cache.set(*id, summary.clone());
        }
        summaries.truncate(keys);
        let mut rng = StdRng::seed_from_u64(0x1eaf);
        for _ in 0..preage.hits {
            let rank = zipf.sample(&mut rng) as usize - 1;
            cache.get(&summaries[rank].0);
        }
        let stats = cache.stats();
        PreageReport {
            warmed,
            hits: preage.hits,
            keys,
            nodes: stats.nodes,
            heap_bytes: stats.heap_bytes,
            elapsed_ms: 0,
        }
    })
    .await
    .context("pre-ageing failed")?;
    Ok(PreageReport {
        elapsed_ms: started.elapsed().as_millis(),
        ..report
    })
}
