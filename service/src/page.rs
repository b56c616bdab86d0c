//! The hot read: what a client renders on every view of an activity.
//!
//! Activity summaries come through three layers — the in-process cache (the LFU under study),
//! then Redis, then MySQL — and each page needs one summary for the activity and one per related
//! activity, as a monolith's page handler does. The live counter and the user's own state come
//! from Redis, falling back to MySQL when Redis misses or is away.

use std::sync::Arc;

use leaklab_cache::Lookup;
use serde::Serialize;
use tracing::Instrument;
use tracing::field::Empty;
use utoipa::ToSchema;

use crate::cache_slot::ActivityCache;
use crate::domain::{ActivityRecord, ActivitySummary, UserReservation};
use crate::error::AppError;
use crate::startup::AppState;
use crate::store::mysql;

#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Memory,
    Redis,
    Mysql,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Page {
    pub activity: ActivityRecord,
    pub reserved_count: u32,
    pub user: PageUser,
    pub related: Vec<ActivityRecord>,
    /// Where each part came from: makes cache behaviour and Redis fallback visible.
    pub sources: PageSources,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PageUser {
    pub user_id: u64,
    pub reservation: UserReservation,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PageSources {
    pub activity: Source,
    /// The reserved count and the user's state. `hot_state` on the wire, the name clients and
    /// the published API have always read.
    #[serde(rename = "hot_state")]
    pub cached_reservation: Source,
}

pub async fn page(state: &AppState, activity_id: u64, user_id: u64) -> Result<Page, AppError> {
    let cache = state.cache();
    let (summary, activity_source) = summary(state, &*cache, activity_id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("activity {activity_id} does not exist")))?;
    let related = related(state, &*cache, &summary.related_ids).await?;
    let (reserved_count, reservation, reservation_source) =
        cached_reservation(state, activity_id, user_id).await?;
    Ok(Page {
        activity: summary.activity.clone(),
        reserved_count,
        user: PageUser {
            user_id,
            reservation,
        },
        related,
        sources: PageSources {
            activity: activity_source,
            cached_reservation: reservation_source,
        },
    })
}

/// The related activities: one in-process cache pass over all of them (one span), then the
/// misses, concurrently, from Redis or MySQL.
async fn related(
    state: &AppState,
    cache: &ActivityCache,
    ids: &[u64],
) -> Result<Vec<ActivityRecord>, AppError> {
    let mut found = cache_get_many(cache, ids);
    // A warm page stops here: no futures, no allocation for the misses.
    if found.iter().any(Option::is_none) {
        found = futures::future::try_join_all(ids.iter().zip(found).map(|(&id, hit)| async move {
            match hit {
                Some(summary) => Ok::<_, AppError>(Some(summary)),
                None => Ok(fill(state, cache, id).await?.map(|(s, _)| s)),
            }
        }))
        .await?;
    }
    Ok(found
        .into_iter()
        .flatten()
        .map(|s| s.activity.clone())
        .collect())
}

/// Read-through: memory, then Redis, then MySQL; each lower layer fills the ones above it.
async fn summary(
    state: &AppState,
    cache: &ActivityCache,
    activity_id: u64,
) -> Result<Option<(Arc<ActivitySummary>, Source)>, AppError> {
    if let Some(hit) = cache_get(cache, activity_id) {
        return Ok(Some((hit, Source::Memory)));
    }
    fill(state, cache, activity_id).await
}

/// A summary the in-process cache missed: from Redis, else MySQL, into the cache.
async fn fill(
    state: &AppState,
    cache: &ActivityCache,
    activity_id: u64,
) -> Result<Option<(Arc<ActivitySummary>, Source)>, AppError> {
    match state.redis().summary(activity_id).await {
        Ok(Some(summary)) => {
            let summary = Arc::new(summary);
            cache_set(cache, activity_id, summary.clone());
            return Ok(Some((summary, Source::Redis)));
        }
        Ok(None) => {}
        Err(error) => tracing::debug!(%error, activity_id, "redis summary read failed"),
    }
    let Some(summary) =
        mysql::activity_summary(state.db(), activity_id, state.settings().related_activities)
            .await?
    else {
        return Ok(None);
    };
    let summary = Arc::new(summary);
    cache_set(cache, activity_id, summary.clone());
    let redis = state.redis_arc();
    let copy = summary.clone();
    // Filling Redis is not the reader's business: it must not add a round trip to the page.
    spawn_background("redis.fill_summary", async move {
        if let Err(error) = redis.put_summary(&copy).await {
            tracing::debug!(%error, "redis summary write failed");
        }
    });
    Ok(Some((summary, Source::Mysql)))
}

async fn cached_reservation(
    state: &AppState,
    activity_id: u64,
    user_id: u64,
) -> Result<(u32, UserReservation, Source), AppError> {
    let cached = match state.redis().cached_reservation(activity_id, user_id).await {
        Ok(cached) => Some(cached),
        Err(error) => {
            tracing::debug!(%error, "redis read of the cached reservation failed; reading MySQL");
            None
        }
    };
    if let Some(crate::store::redis::CachedReservation {
        counter: Some(count),
        user: Some(user),
    }) = cached
    {
        return Ok((count, user, Source::Redis));
    }
    let redis_up = cached.is_some();
    // Each part is either Redis's copy or MySQL's row with its version (`loaded`), which is
    // what a read-repair writes back.
    let (count, loaded_counter) = match cached.and_then(|c| c.counter) {
        Some(count) => (count, None),
        None => {
            let row = mysql::counter(state.db(), activity_id)
                .await?
                .ok_or_else(|| {
                    AppError::NotFound(format!("activity {activity_id} does not exist"))
                })?;
            (row.value, Some(row))
        }
    };
    let (user, loaded_user) = match cached.and_then(|c| c.user) {
        Some(user) => (user, None),
        None => {
            let row = mysql::user_state(state.db(), activity_id, user_id).await?;
            (row.value, Some(row))
        }
    };
    if redis_up {
        // Read-repair of the parts Redis missed; versions keep it from undoing a newer write.
        let redis = state.redis_arc();
        let counter = loaded_counter.map(|c| (activity_id, c));
        let user = loaded_user.map(|u| (activity_id, user_id, u));
        spawn_background("redis.read_repair", async move {
            let _ = redis.put(counter, user).await;
        });
    }
    Ok((count, user, Source::Mysql))
}

// Numbers go into spans as i64: tracing-opentelemetry records unsigned values as strings.

/// The in-process cache read, as a span: how long it waited for the cache lock is where the
/// leaky cache's sweep shows up in a request.
fn cache_get(cache: &ActivityCache, activity_id: u64) -> Option<Arc<ActivitySummary>> {
    let span = crate::telemetry::request_span!(
        "cache.get",
        cache.mode = cache.mode().as_str(),
        cache.operation = "get",
        cache.hit = Empty,
        cache.lock_wait_us = Empty,
    );
    let lookup = lookup(cache, &activity_id);
    span.record("cache.hit", lookup.value.is_some());
    span.record("cache.lock_wait_us", lookup.lock_wait.as_micros() as i64);
    crate::metrics::record_lock_wait(cache.mode(), "get", lookup.lock_wait);
    lookup.value
}

/// One cache read that never stalls a runtime worker behind a sweep. The cache lock is a
/// blocking mutex: a request that waited for it on a worker thread would hold up every other
/// task of that worker, so during a sweep each of the two workers stopped at its first cache
/// read and every later request waited unseen, before its first span. Waiting in
/// `block_in_place` hands the worker's other tasks to another thread first (as Go's scheduler
/// parks a goroutine blocked on a mutex), so each request that arrives during a sweep waits
/// inside its own `cache.get` span, where a trace shows the wait.
fn lookup(cache: &ActivityCache, key: &u64) -> Lookup<Arc<ActivitySummary>> {
    if let Some(found) = cache.try_get(key) {
        return found;
    }
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
            tokio::task::block_in_place(|| cache.get(key))
        }
        // A current-thread runtime (a test's) has no other worker to hand its tasks to.
        _ => cache.get(key),
    }
}

/// The in-process cache reads of a page's related activities, as ONE span: a warm page view
/// makes half as many spans as with a span per read. `cache.lock_wait_us` is the sum of the
/// reads' lock waits (they run one after the other), `cache.lock_wait_max_us` the longest.
fn cache_get_many(cache: &ActivityCache, ids: &[u64]) -> Vec<Option<Arc<ActivitySummary>>> {
    let span = crate::telemetry::request_span!(
        "cache.get_many",
        cache.mode = cache.mode().as_str(),
        cache.operation = "get_many",
        cache.keys = ids.len() as i64,
        cache.hits = Empty,
        cache.lock_wait_us = Empty,
        cache.lock_wait_max_us = Empty,
    );
    let mut hits = 0_i64;
    let mut total = std::time::Duration::ZERO;
    let mut max = std::time::Duration::ZERO;
    let values = ids
        .iter()
        .map(|id| {
            let lookup = lookup(cache, id);
            crate::metrics::record_lock_wait(cache.mode(), "get", lookup.lock_wait);
            hits += i64::from(lookup.value.is_some());
            total += lookup.lock_wait;
            max = max.max(lookup.lock_wait);
            lookup.value
        })
        .collect();
    if !span.is_disabled() {
        span.record("cache.hits", hits);
        span.record("cache.lock_wait_us", total.as_micros() as i64);
        span.record("cache.lock_wait_max_us", max.as_micros() as i64);
    }
    values
}

/// The in-process cache write, as a span: eviction is where the leaky cache walks its list.
fn cache_set(cache: &ActivityCache, activity_id: u64, summary: Arc<ActivitySummary>) {
    let span = crate::telemetry::request_span!(
        "cache.set",
        cache.mode = cache.mode().as_str(),
        cache.operation = "set",
        cache.evicted = Empty,
        cache.nodes_walked = Empty,
        cache.lock_wait_us = Empty,
    );
    let outcome = cache.set(activity_id, summary);
    span.record("cache.evicted", outcome.evicted as i64);
    span.record("cache.nodes_walked", outcome.nodes_walked as i64);
    span.record("cache.lock_wait_us", outcome.lock_wait.as_micros() as i64);
    crate::metrics::record_lock_wait(cache.mode(), "set", outcome.lock_wait);
}

/// A span for work the request starts but does not wait for. It is a root linked to the request
/// (not a child), so that the request's span ends when the response goes out, not when the
/// background write does.
fn background_span(name: &'static str) -> tracing::Span {
    let span = crate::telemetry::request_span!(parent: None, "background", otel.name = name);
    if !span.is_disabled() {
        let request = tracing::Span::current();
        span.follows_from(&request);
        crate::telemetry::sample_as(&span, &request);
    }
    span
}

/// Spawns work the request does not wait for, in its own root span (see [`background_span`]),
/// sampled as the request is: an unsampled request's background writes make no spans either.
fn spawn_background<F>(name: &'static str, work: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let span = background_span(name);
    tokio::spawn(crate::telemetry::as_current_request(work).instrument(span));
}
