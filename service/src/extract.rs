//! Extractors that turn axum's rejections into the service's JSON errors, so malformed input
//! gets the same error shape as everything else.

use axum::extract::FromRequest;
use axum::extract::FromRequestParts;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;

use crate::error::{AppError, ErrorCode};

#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct JsonBody<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct Path<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct Query<T>(pub T);

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        let message = rejection.body_text();
        match rejection {
            JsonRejection::JsonDataError(_) => AppError::Validation(message),
            JsonRejection::JsonSyntaxError(_) => {
                AppError::bad_request(ErrorCode::MalformedJson, message)
            }
            JsonRejection::MissingJsonContentType(_) => AppError::Rejected {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: ErrorCode::UnsupportedMediaType,
                message,
            },
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => AppError::Rejected {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: ErrorCode::PayloadTooLarge,
                message,
            },
            _ => AppError::bad_request(ErrorCode::BadRequest, message),
        }
    }
}

impl From<PathRejection> for AppError {
    fn from(rejection: PathRejection) -> Self {
        AppError::bad_request(ErrorCode::InvalidPath, rejection.body_text())
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        AppError::bad_request(ErrorCode::InvalidQuery, rejection.body_text())
    }
}
