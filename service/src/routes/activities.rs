use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::domain::{Activity, NewActivity, NewActivityRequest};
use crate::error::{AppError, ErrorBody};
use crate::extract::{JsonBody, Path, Query};
use crate::page::{self, Page};
use crate::state::AppState;
use crate::store::mysql;

#[utoipa::path(
    post,
    path = "/v1/activities",
    tag = "activities",
    request_body = NewActivityRequest,
    responses(
        (status = 201, description = "Created", body = Activity),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 503, description = "MySQL unavailable or overloaded", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<NewActivityRequest>,
) -> Result<(StatusCode, Json<Activity>), AppError> {
    let new = NewActivity::try_from(request).map_err(AppError::Validation)?;
    let record = mysql::insert_activity(state.db(), &new).await?;
    Ok((
        StatusCode::CREATED,
        Json(Activity {
            record,
            reserved_count: 0,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/activities/{id}",
    tag = "activities",
    params(("id" = u64, Path, description = "Activity id")),
    responses(
        (status = 200, description = "The activity with its live reserved count", body = Activity),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such activity", body = ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<Activity>, AppError> {
    let (record, reserved_count) = mysql::activity(state.db(), id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("activity {id} does not exist")))?;
    Ok(Json(Activity {
        record,
        reserved_count,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// The viewing user.
    pub user_id: u64,
}

#[utoipa::path(
    get,
    path = "/v1/activities/{id}/page",
    tag = "activities",
    params(("id" = u64, Path, description = "Activity id"), PageQuery),
    responses(
        (status = 200, description = "What a client renders on every view", body = Page),
        (status = 400, description = "Invalid id or user_id", body = ErrorBody),
        (status = 404, description = "No such activity", body = ErrorBody),
    )
)]
pub async fn page(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page>, AppError> {
    Ok(Json(page::page(&state, id, query.user_id).await?))
}
