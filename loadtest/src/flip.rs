//! The one-run before/after: switch the service's cache mode mid-run.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use crate::client::{Target, one_off};
use crate::recording::Half;
use crate::util;

pub const ADMIN_PATH: &str = "/admin/cache";
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Cache stats are read this long before the flip so the GET does not delay it.
const STATS_LEAD: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct FlipConfig {
    pub at: Duration,
    pub to: String,
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FlipReport {
    /// When the PUT was sent.
    pub at_unix_us: i64,
    pub at: String,
    pub offset_s: f64,
    pub to: String,
    pub status: Option<u16>,
    pub ok: bool,
    pub error: Option<String>,
    pub response: Option<Value>,
    /// `GET /admin/cache` shortly before the flip.
    pub cache_before: Option<Value>,
    /// Whole seconds before / after the flip (the second containing it is in neither).
    pub before: Option<Half>,
    pub after: Option<Half>,
}

fn auth(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

fn as_json(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// `GET /admin/cache`: stats for the report; `None` when the call fails.
pub async fn cache_stats(target: &Target, token: &str) -> Option<Value> {
    match one_off(target, "GET", ADMIN_PATH, &auth(token), None, ADMIN_TIMEOUT).await {
        Ok((200, body)) => Some(as_json(&body)),
        _ => None,
    }
}

pub async fn run(
    target: Target,
    cfg: FlipConfig,
    start: Instant,
    start_unix_us: i64,
) -> FlipReport {
    let at = start + cfg.at;
    tokio::time::sleep_until(at.checked_sub(STATS_LEAD).unwrap_or(start).max(start)).await;
    let cache_before = cache_stats(&target, &cfg.token).await;
    tokio::time::sleep_until(at).await;
    let sent = start.elapsed();
    let at_unix_us = start_unix_us + util::duration_us(sent) as i64;
    let body = Bytes::from(serde_json::json!({ "mode": cfg.to }).to_string());
    let mut headers = auth(&cfg.token);
    headers.push(("content-type", "application/json".into()));
    let res = one_off(
        &target,
        "PUT",
        ADMIN_PATH,
        &headers,
        Some(body),
        ADMIN_TIMEOUT,
    )
    .await;
    let (status, ok, error, response) = match res {
        Ok((s, b)) => {
            let ok = (200..300).contains(&s);
            let err = (!ok).then(|| format!("PUT {ADMIN_PATH} answered {s}"));
            (Some(s), ok, err, Some(as_json(&b)))
        }
        Err(e) => (None, false, Some(e), None),
    };
    FlipReport {
        at_unix_us,
        at: util::rfc3339(at_unix_us),
        offset_s: sent.as_secs_f64(),
        to: cfg.to,
        status,
        ok,
        error,
        response,
        cache_before,
        before: None,
        after: None,
    }
}
