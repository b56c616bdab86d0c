use std::future::Future;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use utoipa::{IntoParams, ToSchema};

use crate::domain::{Reservation, UserReservation};
use crate::error::{AppError, ErrorBody, ErrorCode};
use crate::extract::{Path, Query};
use crate::state::AppState;
use crate::store::Versioned;
use crate::store::mysql::{self, WriteError, WriteOutcome};
use crate::store::redis::{DirtyKey, RedisStore};

const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;

impl From<WriteError> for AppError {
    fn from(err: WriteError) -> Self {
        match err {
            WriteError::ActivityNotFound(_) | WriteError::ReservationNotFound { .. } => {
                AppError::NotFound(err.to_string())
            }
            WriteError::Full(_) => AppError::Conflict {
                code: ErrorCode::ActivityFull,
                message: err.to_string(),
            },
            WriteError::Closed(_) => AppError::Conflict {
                code: ErrorCode::ActivityClosed,
                message: err.to_string(),
            },
            WriteError::Db(db) => db.into(),
        }
    }
}

/// Runs a reservation write, then brings the Redis copies up to date.
///
/// The write itself stops when the request is cut by its quota (the transaction rolls back), but a
/// cut can land after MySQL committed and before the client heard of it. The guard covers that
/// window: unless the write finished and its Redis update was handed off, the keys it touches are
/// queued for repair, so Redis never keeps an old copy until its TTL.
async fn write_through<F>(
    state: &AppState,
    activity_id: u64,
    user_id: u64,
    write: F,
) -> Result<WriteOutcome, AppError>
where
    F: Future<Output = Result<WriteOutcome, WriteError>>,
{
    let redis = state.redis_arc();
    let mut guard = RepairOnDrop {
        redis: redis.clone(),
        keys: [
            DirtyKey::Counter(activity_id),
            DirtyKey::User {
                activity_id,
                user_id,
            },
        ],
        armed: true,
    };
    let result = write.await;
    match &result {
        Ok(outcome) if outcome.changed => {
            let r = &outcome.reservation;
            let counter = Some((r.activity_id, outcome.counter));
            let user = Some((
                r.activity_id,
                r.user_id,
                Versioned {
                    value: UserReservation::from(Some(r.state)),
                    version: r.version,
                },
            ));
            // Spawned so that a quota cut from here on cannot stop it; `put` queues the keys
            // for repair itself if Redis is away.
            let put = async move { redis.put(counter, user).await }.in_current_span();
            let update = tokio::spawn(crate::telemetry::as_current_request(put));
            guard.armed = false;
            if let Ok(Err(error)) = update.await {
                tracing::warn!(%error, "redis copy not updated; queued for repair");
            }
        }
        // Nothing was written.
        Ok(_)
        | Err(
            WriteError::ActivityNotFound(_)
            | WriteError::Full(_)
            | WriteError::Closed(_)
            | WriteError::ReservationNotFound { .. },
        ) => guard.armed = false,
        // A failed commit may still have committed: repair rather than guess.
        Err(WriteError::Db(_)) => {}
    }
    Ok(result?)
}

struct RepairOnDrop {
    redis: Arc<RedisStore>,
    keys: [DirtyKey; 2],
    armed: bool,
}

impl Drop for RepairOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.redis.requeue(self.keys);
        }
    }
}

#[utoipa::path(
    put,
    path = "/v1/activities/{id}/reservations/{user_id}",
    tag = "reservations",
    params(("id" = u64, Path, description = "Activity id"), ("user_id" = u64, Path, description = "User id")),
    responses(
        (status = 201, description = "Reserved by this call", body = Reservation),
        (status = 200, description = "Already reserved: the same reservation", body = Reservation),
        (status = 400, description = "Invalid ids", body = ErrorBody),
        (status = 404, description = "No such activity", body = ErrorBody),
        (status = 409, description = "Activity full or closed", body = ErrorBody),
        (status = 503, description = "MySQL unavailable or overloaded", body = ErrorBody),
    )
)]
pub async fn reserve(
    State(state): State<AppState>,
    Path((activity_id, user_id)): Path<(u64, u64)>,
) -> Result<(StatusCode, Json<Reservation>), AppError> {
    let outcome = write_through(
        &state,
        activity_id,
        user_id,
        mysql::reserve(state.db(), activity_id, user_id),
    )
    .await?;
    let status = if outcome.changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(outcome.reservation)))
}

#[utoipa::path(
    delete,
    path = "/v1/activities/{id}/reservations/{user_id}",
    tag = "reservations",
    params(("id" = u64, Path, description = "Activity id"), ("user_id" = u64, Path, description = "User id")),
    responses(
        (status = 200, description = "Cancelled (by this call or before)", body = Reservation),
        (status = 400, description = "Invalid ids", body = ErrorBody),
        (status = 404, description = "No such activity or reservation", body = ErrorBody),
        (status = 503, description = "MySQL unavailable or overloaded", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    Path((activity_id, user_id)): Path<(u64, u64)>,
) -> Result<Json<Reservation>, AppError> {
    let outcome = write_through(
        &state,
        activity_id,
        user_id,
        mysql::cancel(state.db(), activity_id, user_id),
    )
    .await?;
    Ok(Json(outcome.reservation))
}

#[utoipa::path(
    get,
    path = "/v1/activities/{id}/reservations/{user_id}",
    tag = "reservations",
    params(("id" = u64, Path, description = "Activity id"), ("user_id" = u64, Path, description = "User id")),
    responses(
        (status = 200, description = "The reservation", body = Reservation),
        (status = 400, description = "Invalid ids", body = ErrorBody),
        (status = 404, description = "No such reservation", body = ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    Path((activity_id, user_id)): Path<(u64, u64)>,
) -> Result<Json<Reservation>, AppError> {
    mysql::reservation(state.db(), activity_id, user_id)
        .await?
        .map(Json)
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "user {user_id} holds no reservation for activity {activity_id}"
            ))
        })
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 100; default 20.
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReservationPage {
    pub items: Vec<Reservation>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/reservations",
    tag = "reservations",
    params(("user_id" = u64, Path, description = "User id"), ListQuery),
    responses(
        (status = 200, description = "The user's reservations, oldest first", body = ReservationPage),
        (status = 400, description = "Invalid id, cursor or limit", body = ErrorBody),
    )
)]
pub async fn list_for_user(
    State(state): State<AppState>,
    Path(user_id): Path<u64>,
    Query(query): Query<ListQuery>,
) -> Result<Json<ReservationPage>, AppError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(AppError::bad_request(
            ErrorCode::InvalidQuery,
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let after = match query.cursor.as_deref() {
        None | Some("") => 0,
        Some(cursor) => cursor
            .parse::<u64>()
            .map_err(|_| AppError::bad_request(ErrorCode::InvalidQuery, "cursor is not valid"))?,
    };
    // One extra row tells whether another page follows.
    let mut items = mysql::user_reservations(state.db(), user_id, after, limit + 1).await?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|r| r.id.to_string())
    } else {
        None
    };
    Ok(Json(ReservationPage { items, next_cursor }))
}
