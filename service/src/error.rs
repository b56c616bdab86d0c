//! One error type for every handler, one JSON shape for every failure:
//! `{"error":{"code":"not_found","message":"..."}}`.
//!
//! Variants split "your input is wrong" (4xx) from "something broke" (5xx); the latter keep their
//! cause for the log and never leak it to the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A rejection from an extractor that already knows its status (413, 415, ...).
    #[error("{message}")]
    Rejected {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0} is unavailable")]
    DependencyUnavailable(&'static str, #[source] anyhow::Error),
    #[error("the server is at its concurrency limit")]
    Overloaded,
    #[error("the request exceeded its {0} ms quota")]
    QuotaExceeded(u64),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `bad_request`, `invalid_path`, `invalid_query`, `malformed_json`,
    /// `validation_failed`, `not_found`, `activity_full`, `activity_closed`, `payload_too_large`,
    /// `unsupported_media_type`, `method_not_allowed`, `uri_too_long` (414),
    /// `headers_too_large` (431), `unauthorized`, `dependency_unavailable`, `overloaded`,
    /// `quota_exceeded`, `internal`.
    pub code: String,
    pub message: String,
}

impl AppError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Rejected { status, .. } => *status,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::DependencyUnavailable(..) | Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::QuotaExceeded(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Conflict { code, .. }
            | Self::Rejected { code, .. } => code,
            Self::Validation(_) => "validation_failed",
            Self::NotFound(_) => "not_found",
            Self::Unauthorized => "unauthorized",
            Self::DependencyUnavailable(..) => "dependency_unavailable",
            Self::Overloaded => "overloaded",
            Self::QuotaExceeded(_) => "quota_exceeded",
            Self::Internal(_) => "internal",
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        if is_unavailable(&err) {
            Self::DependencyUnavailable("mysql", err.into())
        } else {
            Self::Internal(anyhow::Error::new(err).context("mysql query failed"))
        }
    }
}

/// Errors that mean "MySQL is not there right now" rather than "this query is wrong": the client
/// gets a 503 it may retry, not a 500.
fn is_unavailable(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_)
    ) || matches!(err, sqlx::Error::Database(db) if is_server_gone(db.as_ref()))
}

fn is_server_gone(db: &dyn sqlx::error::DatabaseError) -> bool {
    // 08S01: communication link failure; 08004: connection refused; 70100: query interrupted.
    if matches!(db.code().as_deref(), Some("08S01" | "08004" | "70100")) {
        return true;
    }
    // A refusal during the handshake may come without an SQLSTATE: 1040 too many connections,
    // 1053 server shutdown in progress, 1129/1130 host blocked or not allowed, 1203 user over
    // max_user_connections.
    db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .is_some_and(|e| matches!(e.number(), 1040 | 1053 | 1129 | 1130 | 1203))
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Internal(err) => tracing::error!(error = ?err, "request failed"),
            Self::DependencyUnavailable(dep, err) => {
                tracing::warn!(dependency = dep, error = %format!("{err:#}"), "dependency unavailable")
            }
            _ => {}
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        response.extensions_mut().insert(ErrorCode(self.code()));
        response
    }
}

/// Left on error responses so that middleware (logs, metrics, spans) can tell error classes apart.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);
