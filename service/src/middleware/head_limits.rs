//! The request head's limits ([`HttpLimits`]), answered with the service's JSON errors.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::server::HttpLimits;

/// Answers requests over `limits` with a JSON 414 or 431 before any extractor runs.
pub async fn enforce(limits: HttpLimits, request: Request, next: Next) -> Response {
    match limits.check(&request) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}
