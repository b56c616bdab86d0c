//! Admin routes: read the cache's figures and swap its implementation at runtime.
//! Disabled (404) unless an admin token is configured; otherwise they need `Authorization: Bearer`.
//!
//! A swap is a runtime flip: stored in MySQL first, it outlives restarts (`crate::cache::mode`).

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use leaklab_cache::{Mode, Stats};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::cache::ActivityCache;
use crate::cache::mode::{ModeOrigin, ModeSource};
use crate::error::{AppError, ErrorBody};
use crate::extract::JsonBody;
use crate::state::AppState;

/// Proof that the request carried the admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Some(expected) = state.settings().admin_token.as_deref() else {
            return Err(AppError::NotFound(
                "admin routes are disabled: no admin token is configured".into(),
            ));
        };
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Constant time, so response timing does not reveal how much of a guess was right.
        if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            Ok(Admin)
        } else {
            Err(AppError::Unauthorized)
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheSwap {
    /// `leaky`, `fixed` or `moka`.
    #[schema(value_type = ModeName, example = "fixed")]
    pub mode: Mode,
}

/// The spec's name for [`Mode`]: the values `--cache-mode` accepts.
#[derive(ToSchema)]
#[schema(as = CacheMode)]
#[allow(dead_code)]
#[schema(rename_all = "lowercase")]
enum ModeName {
    Leaky,
    Fixed,
    Moka,
}

/// What `GET` and `PUT /admin/cache` answer: the cache's figures and where its mode came from.
#[derive(Debug, Serialize)]
pub struct CacheView {
    #[serde(flatten)]
    pub stats: Stats,
    /// `environment` (CACHE_MODE/`--cache-mode`) or `runtime_flip` (a `PUT /admin/cache`, stored
    /// in MySQL: it survives restarts until the next PUT or `seed --reset`).
    pub mode_source: ModeSource,
    /// When the runtime flip in force was made; null for `environment`.
    pub flipped_at: Option<DateTime<Utc>>,
    /// The mode CACHE_MODE/`--cache-mode` names: the mode in force unless a flip overrides it.
    pub environment_mode: Mode,
}

impl CacheView {
    fn new(state: &AppState, cache: &ActivityCache, origin: ModeOrigin) -> Self {
        Self {
            stats: cache.stats(),
            mode_source: origin.source,
            flipped_at: origin.flipped_at,
            environment_mode: state.settings().cache.mode,
        }
    }
}

#[utoipa::path(get, path = "/admin/cache", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The in-process cache's figures, and where its mode came \
            from: `mode_source` (`environment` or `runtime_flip`), `flipped_at`, \
            `environment_mode`", body = Object),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "Admin routes disabled", body = ErrorBody),
    ))]
pub async fn cache_stats(_: Admin, State(state): State<AppState>) -> Json<CacheView> {
    let (cache, origin) = state.cache_and_origin();
    Json(CacheView::new(&state, cache.as_ref(), origin))
}

#[utoipa::path(put, path = "/admin/cache", tag = "admin",
    security(("bearer" = [])),
    request_body = CacheSwap,
    responses(
        (status = 200, description = "The mode is stored in MySQL (it survives restarts) and a \
            new, empty cache of that mode is in place; the same figures as GET", body = Object),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "Admin routes disabled", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Unknown mode", body = ErrorBody),
        (status = 503, description = "MySQL unreachable: the mode could not be stored, so the \
            cache was not swapped", body = ErrorBody),
    ))]
pub async fn swap_cache(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(swap): JsonBody<CacheSwap>,
) -> Result<Json<CacheView>, AppError> {
    let (cache, origin) = state.flip_cache(swap.mode).await?;
    Ok(Json(CacheView::new(&state, cache.as_ref(), origin)))
}
