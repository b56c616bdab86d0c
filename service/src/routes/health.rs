use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;
use crate::store::mysql;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`, `degraded` (Redis is down: reads are served from MySQL) or `unavailable`.
    pub status: &'static str,
    pub mysql: DependencyState,
    pub redis: DependencyState,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DependencyState {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl<E: std::fmt::Display> From<Result<(), E>> for DependencyState {
    fn from(result: Result<(), E>) -> Self {
        match result {
            Ok(()) => Self {
                ok: true,
                error: None,
            },
            Err(e) => Self {
                ok: false,
                error: Some(e.to_string()),
            },
        }
    }
}

/// 200 while MySQL answers, even with Redis down: the service still serves every request then
/// (reads fall back to MySQL), and taking replicas out of rotation would turn a cache outage into
/// a full outage. The body says which dependency is down.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready, or degraded without Redis", body = Readiness),
        (status = 503, description = "MySQL unreachable", body = Readiness),
    ))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let limit = state.settings().request_quota;
    let (mysql, redis) = tokio::join!(
        async {
            match tokio::time::timeout(limit, mysql::ping(state.db())).await {
                Ok(result) => DependencyState::from(result),
                Err(_) => DependencyState::from(Err::<(), _>("no answer within the quota")),
            }
        },
        async { DependencyState::from(state.redis().ping().await) },
    );
    let (status, code) = match (mysql.ok, redis.ok) {
        (true, true) => ("ready", StatusCode::OK),
        (true, false) => ("degraded", StatusCode::OK),
        (false, _) => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
    };
    (
        code,
        Json(Readiness {
            status,
            mysql,
            redis,
        }),
    )
}
