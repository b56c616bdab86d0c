//! The router: API routes under the request quota and the concurrency limit, operational routes
//! beside them, and one JSON error shape for everything, including unknown routes.

mod activities;
mod admin;
mod debug;
mod health;
mod reservations;

use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{BoxError, Json, Router};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{AppError, ErrorCode};
use crate::middleware::admission::Admission;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "leaklab reservation API",
        description = "Reserve upcoming activities. Every request runs under a quota (504 past it) \
                       and a concurrency limit (503 when full)."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "activities"), (name = "reservations"), (name = "operations"), (name = "admin")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole application on one listener, ready to serve or to call with `oneshot` in tests.
pub fn app(state: AppState) -> Router {
    let (api, mut openapi) = api_routes(&state).split_for_parts();
    let (ops, ops_openapi) = ops_routes().split_for_parts();
    let (admin, admin_openapi) = admin_routes().split_for_parts();
    openapi.merge(ops_openapi);
    openapi.merge(admin_openapi);
    finish(api.merge(ops).merge(admin), openapi, state)
}

/// The application split over two listeners (`--admin-listen-addr`): the public one serves the
/// API, the probes, `/metrics` and `/openapi.json`; the admin one serves `/admin/*` and
/// `/debug/*` (still behind the token) and its own `/openapi.json`. Each answers 404 for the
/// other's routes.
pub fn split(state: AppState) -> (Router, Router) {
    let (api, mut openapi) = api_routes(&state).split_for_parts();
    let (ops, ops_openapi) = ops_routes().split_for_parts();
    openapi.merge(ops_openapi);
    let public = finish(api.merge(ops), openapi, state.clone());
    let (admin, admin_openapi) = admin_routes().split_for_parts();
    let mut admin_spec = ApiDoc::openapi();
    admin_spec.paths = Default::default();
    admin_spec.merge(admin_openapi);
    (public, finish(admin, admin_spec, state))
}

/// The API, under the request quota and the concurrency limit.
fn api_routes(state: &AppState) -> OpenApiRouter<AppState> {
    let settings = state.settings().clone();
    // One for all the routes (the layer below is copied into each route).
    let admission = Admission::new(settings.max_in_flight, settings.limit_policy);
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(activities::create))
        .routes(routes!(activities::get_one))
        .routes(routes!(activities::page))
        .routes(routes!(
            reservations::reserve,
            reservations::cancel,
            reservations::get_one
        ))
        .routes(routes!(reservations::list_for_user))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(move |err: BoxError| async move {
                    layer_error(err, settings.request_quota)
                }))
                .timeout(settings.request_quota)
                .layer(axum::middleware::from_fn_with_state(
                    admission,
                    crate::middleware::admission::admit,
                )),
        )
}

/// Operational routes stay outside the limit and the quota: probes must answer under load.
fn ops_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(debug::metrics))
}

/// Behind the admin token; on their own listener when one is configured.
fn admin_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(admin::cache_stats, admin::swap_cache))
        .routes(routes!(debug::cpu_profile))
        .routes(routes!(debug::heap_profile))
        .routes(routes!(debug::list_profiles))
        .routes(routes!(debug::profile_file))
}

/// The spec route, the JSON fallbacks and the layers every listener shares.
fn finish(routes: Router<AppState>, openapi: utoipa::openapi::OpenApi, state: AppState) -> Router {
    let settings = state.settings().clone();
    let limits = state.limits();
    let openapi = std::sync::Arc::new(openapi);
    routes
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let openapi = openapi.clone();
                async move { Json(openapi.as_ref().clone()) }
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                AppError::Internal(anyhow::anyhow!("a handler panicked")).into_response()
            },
        ))
        // Before any extractor: an over-long URI or oversized headers get a JSON 414/431.
        .layer(axum::middleware::from_fn(move |request, next| {
            crate::middleware::head_limits::enforce(limits, request, next)
        }))
        // Second from the outside, inside only `metrics::track` (the last `.layer()` is the
        // outermost): the server span times everything else and sees every final status.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::middleware::trace::trace_request,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::middleware::metrics::track,
        ))
        .with_state(state)
}

fn layer_error(err: BoxError, quota: Duration) -> AppError {
    if err.is::<tower::timeout::error::Elapsed>() {
        AppError::QuotaExceeded(quota.as_millis() as u64)
    } else {
        AppError::Internal(anyhow::anyhow!("middleware failed: {err}"))
    }
}

async fn not_found() -> AppError {
    AppError::NotFound("no such route".into())
}

async fn method_not_allowed() -> AppError {
    AppError::Rejected {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: ErrorCode::MethodNotAllowed,
        message: "method not allowed on this route".into(),
    }
}
