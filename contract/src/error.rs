//! Every failure the service answers carries one JSON shape,
//! `{"error":{"code":"not_found","message":"..."}}`, whose `code` is one of [`ErrorCode`].

use serde::{Deserialize, Serialize};

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For people: wording may change, `code` does not.
    pub message: String,
}

/// Stable, machine-readable error codes. The HTTP status that goes with each is the service's
/// business; a client needs the code to tell, say, a shed request (`overloaded`, never applied)
/// from a quota cut (`quota_exceeded`, which may land after the database committed).
///
/// ```
/// use leaklab_contract::{ErrorBody, ErrorCode};
///
/// let body: ErrorBody =
///     serde_json::from_str(r#"{"error":{"code":"overloaded","message":"busy"}}"#).unwrap();
/// assert_eq!(body.error.code, ErrorCode::Overloaded);
/// assert_eq!(ErrorCode::QuotaExceeded.as_str(), "quota_exceeded");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // 4xx: the request is wrong.
    BadRequest,
    InvalidPath,
    InvalidQuery,
    MalformedJson,
    ValidationFailed,
    NotFound,
    ActivityFull,
    ActivityClosed,
    PayloadTooLarge,
    UnsupportedMediaType,
    MethodNotAllowed,
    UriTooLong,
    HeadersTooLarge,
    Unauthorized,
    ProfileInProgress,
    ProfileMemoryHeadroom,
    HeapProfilingUnavailable,
    // 5xx: the service could not do it.
    DependencyUnavailable,
    Overloaded,
    QuotaExceeded,
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire, in logs, span attributes and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::InvalidPath => "invalid_path",
            Self::InvalidQuery => "invalid_query",
            Self::MalformedJson => "malformed_json",
            Self::ValidationFailed => "validation_failed",
            Self::NotFound => "not_found",
            Self::ActivityFull => "activity_full",
            Self::ActivityClosed => "activity_closed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UriTooLong => "uri_too_long",
            Self::HeadersTooLarge => "headers_too_large",
            Self::Unauthorized => "unauthorized",
            Self::ProfileInProgress => "profile_in_progress",
            Self::ProfileMemoryHeadroom => "profile_memory_headroom",
            Self::HeapProfilingUnavailable => "heap_profiling_unavailable",
            Self::DependencyUnavailable => "dependency_unavailable",
            Self::Overloaded => "overloaded",
            Self::QuotaExceeded => "quota_exceeded",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    /// Every code, for the round trip below (a code left out here is left untested, not wrong).
    const ALL: [ErrorCode; 21] = [
        ErrorCode::BadRequest,
        ErrorCode::InvalidPath,
        ErrorCode::InvalidQuery,
        ErrorCode::MalformedJson,
        ErrorCode::ValidationFailed,
        ErrorCode::NotFound,
        ErrorCode::ActivityFull,
        ErrorCode::ActivityClosed,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::MethodNotAllowed,
        ErrorCode::UriTooLong,
        ErrorCode::HeadersTooLarge,
        ErrorCode::Unauthorized,
        ErrorCode::ProfileInProgress,
        ErrorCode::ProfileMemoryHeadroom,
        ErrorCode::HeapProfilingUnavailable,
        ErrorCode::DependencyUnavailable,
        ErrorCode::Overloaded,
        ErrorCode::QuotaExceeded,
        ErrorCode::Internal,
    ];

    #[test]
    fn wire_names_are_the_serde_names() {
        for code in ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, code);
        }
    }

    #[test]
    fn an_unknown_code_does_not_parse() {
        assert!(serde_json::from_str::<ErrorCode>("\"teapot\"").is_err());
    }
}
