//! The hot read: what a client renders on every view of an activity.
//!
//! Activity summaries come through three layers — the in-process cache (the LFU under study),
//! then Redis, then MySQL — and each page needs one summary for the activity and one per related
//! activity, as a monolith's page handler does. The live counter and the user's own state come
//! from Redis, falling back to MySQL when Redis misses or is away.

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

use crate::cache::{ActivityCache, lookup};
use crate::domain::{ActivityRecord, ActivitySummary, UserReservation};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::mysql;
use crate::telemetry;

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
    let mut found = lookup::get_many(cache, ids);
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
    if let Some(hit) = lookup::get(cache, activity_id) {
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
            lookup::set(cache, activity_id, summary.clone());
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
    lookup::set(cache, activity_id, summary.clone());
    let redis = state.redis_arc();
    let copy = summary.clone();
    // Filling Redis is not the reader's business: it must not add a round trip to the page.
    telemetry::spawn_detached("redis.fill_summary", async move {
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
        telemetry::spawn_detached("redis.read_repair", async move {
            let _ = redis.put(counter, user).await;
        });
    }
    Ok((count, user, Source::Mysql))
}
