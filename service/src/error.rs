//! One error type for every handler, one JSON shape for every failure:
//! `{"error":{"code":"not_found","message":"..."}}`, whose body and codes are the contract shared
//! with the load generator ([`leaklab_contract`]).
//!
//! Variants split "your input is wrong" (4xx) from "something broke" (5xx); the latter keep their
//! cause for the log and never leak it to the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
pub use leaklab_contract::{ErrorBody, ErrorCode, ErrorDetail};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    BadRequest { code: ErrorCode, message: String },
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String },
    /// A rejection from an extractor that already knows its status (413, 415, ...).
    #[error("{message}")]
    Rejected {
        status: StatusCode,
        code: ErrorCode,
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

impl AppError {
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
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

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest { code, .. }
            | Self::Conflict { code, .. }
            | Self::Rejected { code, .. } => *code,
            Self::Validation(_) => ErrorCode::ValidationFailed,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Unauthorized => ErrorCode::Unauthorized,
            Self::DependencyUnavailable(..) => ErrorCode::DependencyUnavailable,
            Self::Overloaded => ErrorCode::Overloaded,
            Self::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
            Self::Internal(_) => ErrorCode::Internal,
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
                code: self.code(),
                message: self.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        // Left on the response so that middleware (logs, metrics, spans) can tell error classes
        // apart without parsing the body.
        response.extensions_mut().insert(self.code());
        response
    }
}
