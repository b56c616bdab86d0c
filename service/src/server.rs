//! The HTTP server: hyper's connection builder with explicit request-head limits (`axum::serve`
//! does not expose them), any number of listeners, and one graceful shutdown across all of them.
//!
//! Limits come in two tiers:
//! - [`HttpLimits`] are checked by a middleware ([`crate::middleware::head_limits`]), which answers with the service's
//!   JSON error: 414 `uri_too_long`, 431 `headers_too_large`.
//! - hyper's own caps sit well above them ([`HttpLimits::hard_max_headers`],
//!   [`HttpLimits::hard_max_head_bytes`]) and bound the memory one request head can take before any
//!   of our code runs. Past those, hyper answers by itself — 431 (head too large or too many
//!   headers) or 414 (request target over 65,534 bytes), with an empty body — and closes the
//!   connection. No request is ever dropped without a status line.

use std::io;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::{AppError, ErrorCode};

/// hyper's default read buffer (8 KiB + 100 × 4 KiB); the head of a request must fit in it.
const HYPER_DEFAULT_MAX_BUF: usize = 8192 + 4096 * 100;

/// Limits on the request head, answered with JSON errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Request target (path and query string), in bytes.
    pub max_uri_bytes: usize,
    /// All header names and values together, in bytes (each header counts `name: value\r\n`).
    pub max_header_bytes: usize,
    /// Number of header fields.
    pub max_headers: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_uri_bytes: 4096,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
        }
    }
}

impl HttpLimits {
    /// hyper's cap on the number of headers: four times ours (at least hyper's default of 100),
    /// so that requests over our limit reach the middleware and get a JSON answer.
    pub fn hard_max_headers(&self) -> usize {
        self.max_headers.saturating_mul(4).max(100)
    }

    /// hyper's cap on the bytes of a request head (its read buffer): four times ours, and never
    /// below hyper's default (~400 KiB).
    pub fn hard_max_head_bytes(&self) -> usize {
        self.max_uri_bytes
            .saturating_add(self.max_header_bytes)
            .saturating_mul(4)
            .max(HYPER_DEFAULT_MAX_BUF)
    }

    /// The first limit `request` breaks, as the error to answer with.
    pub fn check<B>(&self, request: &axum::http::Request<B>) -> Result<(), AppError> {
        let uri_len = request
            .uri()
            .path_and_query()
            .map_or(0, |pq| pq.as_str().len());
        if uri_len > self.max_uri_bytes {
            return Err(AppError::Rejected {
                status: StatusCode::URI_TOO_LONG,
                code: ErrorCode::UriTooLong,
                message: format!(
                    "the request target is {uri_len} bytes; at most {} are accepted",
                    self.max_uri_bytes
                ),
            });
        }
        let headers = request.headers();
        if headers.len() > self.max_headers {
            return Err(AppError::Rejected {
                status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                code: ErrorCode::HeadersTooLarge,
                message: format!(
                    "{} header fields; at most {} are accepted",
                    headers.len(),
                    self.max_headers
                ),
            });
        }
        let bytes: usize = headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        if bytes > self.max_header_bytes {
            return Err(AppError::Rejected {
                status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                code: ErrorCode::HeadersTooLarge,
                message: format!(
                    "the header fields take {bytes} bytes; at most {} are accepted",
                    self.max_header_bytes
                ),
            });
        }
        Ok(())
    }
}

fn builder(limits: &HttpLimits) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    let hard_head = limits.hard_max_head_bytes();
    builder
        .http1()
        .max_headers(limits.hard_max_headers())
        .max_buf_size(hard_head);
    builder
        .http2()
        .max_header_list_size(u32::try_from(hard_head).unwrap_or(u32::MAX))
        // As axum::serve: needed for WebSockets over HTTP/2.
        .enable_connect_protocol();
    builder
}

/// Serves `app` on `listener` until `stop` is cancelled, then stops accepting, lets every open
/// connection finish its in-flight requests (idle ones are closed at once) and returns when all
/// are done. The caller bounds that wait.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    stop: CancellationToken,
) {
    let builder = builder(&limits);
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                accept_error(error).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::trace!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// As axum::serve: a failed connection is the peer's problem; anything else (out of file
/// descriptors, ...) is logged and retried after a pause instead of spinning.
async fn accept_error(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, headers: &[(&str, String)]) -> axum::http::Request<()> {
        let mut builder = axum::http::Request::get(uri);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn limits_are_inclusive() {
        let limits = HttpLimits {
            max_uri_bytes: 10,
            max_header_bytes: 20,
            max_headers: 2,
        };
        assert!(limits.check(&request("/123456789", &[])).is_ok());
        let err = limits.check(&request("/1234567890", &[])).unwrap_err();
        assert_eq!(err.status(), StatusCode::URI_TOO_LONG);
        // "a: 1234567890123\r\n" is 1 + 13 + 4 = 18 bytes.
        assert!(
            limits
                .check(&request("/", &[("a", "1234567890123".into())]))
                .is_ok()
        );
        let err = limits
            .check(&request("/", &[("a", "1234567890123456".into())]))
            .unwrap_err();
        assert_eq!(err.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        let three = [("a", "1".into()), ("b", "1".into()), ("c", "1".into())];
        let err = limits.check(&request("/", &three)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::HeadersTooLarge);
    }

    #[test]
    fn hyper_caps_sit_above_ours() {
        let limits = HttpLimits::default();
        assert!(limits.hard_max_headers() >= 4 * limits.max_headers);
        assert!(
            limits.hard_max_head_bytes() >= 4 * (limits.max_uri_bytes + limits.max_header_bytes)
        );
        assert_eq!(
            HttpLimits {
                max_uri_bytes: 1,
                max_header_bytes: 1,
                max_headers: 1
            }
            .hard_max_head_bytes(),
            HYPER_DEFAULT_MAX_BUF
        );
    }
}
