//! Profiles behind the admin token: on demand (`/debug/pprof/*`) and the anomaly profiler's
//! dumps (`/debug/profiles`). Also `/metrics`, open, for Prometheus.

use std::time::Duration;

use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::admin::Admin;
use crate::error::{AppError, ErrorBody, ErrorCode};
use crate::extract::{Path, Query};
use crate::profiling::anomaly::list_dumps;
use crate::profiling::capture::Capture;
use crate::profiling::cpu::{self, Format};
use crate::profiling::heap;
use crate::state::AppState;

const MAX_PROFILE: Duration = Duration::from_secs(120);

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = crate::metrics::global().render(&state.cache().stats());
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        body,
    )
        .into_response()
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ProfileQuery {
    /// Seconds to sample, 1 to 120 (default 10).
    pub seconds: Option<u64>,
    /// `pprof` (default; `go tool pprof`, speedscope) or `flamegraph` (SVG).
    pub format: Option<String>,
}

fn format(name: Option<&str>) -> Result<Format, AppError> {
    match name.unwrap_or("pprof") {
        "pprof" => Ok(Format::Pprof),
        "flamegraph" => Ok(Format::Flamegraph),
        other => Err(AppError::bad_request(
            ErrorCode::InvalidQuery,
            format!("format must be pprof or flamegraph, not {other:?}"),
        )),
    }
}

fn profile_response(body: Vec<u8>, format: Format, pprof_name: &str) -> Response {
    match format {
        Format::Pprof => (
            [
                (CONTENT_TYPE, "application/octet-stream".to_owned()),
                (
                    CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{pprof_name}\""),
                ),
            ],
            body,
        )
            .into_response(),
        Format::Flamegraph => ([(CONTENT_TYPE, "image/svg+xml")], body).into_response(),
    }
}

#[utoipa::path(get, path = "/debug/pprof/profile", tag = "admin", security(("bearer" = [])),
    params(ProfileQuery),
    responses(
        (status = 200, description = "CPU profile"),
        (status = 400, description = "Bad seconds or format", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 409, description = "Another profile is being taken", body = ErrorBody),
        (status = 503, description = "Too close to the memory limit to take one", body = ErrorBody),
    ))]
pub async fn cpu_profile(
    _: Admin,
    Query(query): Query<ProfileQuery>,
) -> Result<Response, AppError> {
    let seconds = query.seconds.unwrap_or(10);
    if !(1..=MAX_PROFILE.as_secs()).contains(&seconds) {
        return Err(AppError::bad_request(
            ErrorCode::InvalidQuery,
            format!("seconds must be between 1 and {}", MAX_PROFILE.as_secs()),
        ));
    }
    let format = format(query.format.as_deref())?;
    let capture = Capture::begin()?;
    let body = cpu::profile(&capture, Duration::from_secs(seconds), format).await?;
    capture.finish().await;
    Ok(profile_response(body, format, "cpu.pb"))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct HeapQuery {
    /// `pprof` (default, gzipped) or `flamegraph` (SVG).
    pub format: Option<String>,
}

#[utoipa::path(get, path = "/debug/pprof/heap", tag = "admin", security(("bearer" = [])),
    params(HeapQuery),
    responses(
        (status = 200, description = "Live heap by allocation site (jemalloc sampling)"),
        (status = 400, description = "Bad format", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 501, description = "Not running on jemalloc with profiling", body = ErrorBody),
        (status = 503, description = "Too close to the memory limit to take one", body = ErrorBody),
    ))]
pub async fn heap_profile(_: Admin, Query(query): Query<HeapQuery>) -> Result<Response, AppError> {
    let format = format(query.format.as_deref())?;
    // Waits rather than refuses: a heap profile takes well under a second once its turn comes.
    let capture = Capture::wait().await?;
    let body = heap::profile(&capture, format).await?;
    capture.finish().await;
    Ok(profile_response(body, format, "heap.pb.gz"))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Dump {
    pub name: String,
    pub files: Vec<String>,
}

#[utoipa::path(get, path = "/debug/profiles", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "Profiles written by the anomaly profiler, newest first", body = [Dump]),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
    ))]
pub async fn list_profiles(
    _: Admin,
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<Dump>>, AppError> {
    let dir = &state.settings().profile_dir;
    let mut names = list_dumps(dir)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("listing {}: {e}", dir.display())))?;
    names.sort_unstable_by(|a, b| b.cmp(a));
    let mut dumps = Vec::with_capacity(names.len());
    for name in names {
        let mut files = Vec::new();
        if let Ok(mut entries) = tokio::fs::read_dir(dir.join(&name)).await {
            while let Ok(Some(entry)) = entries.next_entry().await {
                files.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        files.sort();
        dumps.push(Dump { name, files });
    }
    Ok(axum::Json(dumps))
}

/// A dump or file name: what the profiler writes, nothing that could leave the directory.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[utoipa::path(get, path = "/debug/profiles/{dump}/{file}", tag = "admin", security(("bearer" = [])),
    params(("dump" = String, Path), ("file" = String, Path)),
    responses(
        (status = 200, description = "One file of a dump"),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such dump or file", body = ErrorBody),
    ))]
pub async fn profile_file(
    _: Admin,
    State(state): State<AppState>,
    Path((dump, file)): Path<(String, String)>,
) -> Result<Response, AppError> {
    if !safe_name(&dump) || !safe_name(&file) {
        return Err(AppError::NotFound("no such profile".into()));
    }
    let path = state.settings().profile_dir.join(&dump).join(&file);
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| AppError::NotFound("no such profile".into()))?;
    let content_type = if file.ends_with(".json") {
        "application/json"
    } else {
        "application/octet-stream"
    };
    Ok(([(CONTENT_TYPE, content_type)], bytes).into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_cannot_escape_the_profile_directory() {
        for bad in ["..", "../x", "a/b", ".hidden", "", "a\\b", "a%2f"] {
            assert!(!super::safe_name(bad), "{bad:?}");
        }
        assert!(super::safe_name("20261126T060000.000Z-p99_ms"));
        assert!(super::safe_name("cpu.pb"));
    }
}
