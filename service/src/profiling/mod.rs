//! CPU and heap profiles on demand (`/debug/pprof/*`) and on anomalies (`anomaly`), the way the
//! incident team used pprof and the Go tool Holmes.

pub mod anomaly;
pub mod capture;
pub mod cpu;
pub mod heap;
pub mod memory;
pub mod process;
pub mod window;

/// Why a profile could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("a profile is already being taken; try again when it ends")]
    Busy,
    #[error("not taking a profile now: {0}")]
    NoHeadroom(memory::Refusal),
    #[error("heap profiling is not available: {0}")]
    HeapUnavailable(&'static str),
    #[error("profiling failed: {0}")]
    Failed(String),
}

impl From<ProfileError> for crate::error::AppError {
    fn from(err: ProfileError) -> Self {
        use axum::http::StatusCode;
        match err {
            ProfileError::Busy => crate::error::AppError::Conflict {
                code: crate::error::ErrorCode::ProfileInProgress,
                message: err.to_string(),
            },
            ProfileError::NoHeadroom(_) => crate::error::AppError::Rejected {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: crate::error::ErrorCode::ProfileMemoryHeadroom,
                message: err.to_string(),
            },
            ProfileError::HeapUnavailable(_) => crate::error::AppError::Rejected {
                status: StatusCode::NOT_IMPLEMENTED,
                code: crate::error::ErrorCode::HeapProfilingUnavailable,
                message: err.to_string(),
            },
            ProfileError::Failed(_) => crate::error::AppError::Internal(anyhow::anyhow!(err)),
        }
    }
}
