//! Where the cache's mode comes from, and how a runtime flip outlives the process.
//!
//! The service starts in the mode CACHE_MODE/`--cache-mode` names ("environment"). A
//! `PUT /admin/cache` stores its choice in MySQL (`runtime_settings`, row `cache_mode`) before it
//! swaps the cache, and `serve` reads it back at start: a stored flip wins over the environment
//! ("runtime_flip") and the service says so at WARN. A restart (a crash, an OOM kill,
//! `docker compose restart`) therefore keeps the flip instead of silently undoing it, while the
//! environment's mode stays what a fresh lab starts in: `seed --reset`, which every
//! `docker compose up` runs, deletes the stored flip.
//!
//! Not knowing is not taken for "no flip": if the stored mode cannot be read at start, the
//! service does not start (see [`restore`]).

use anyhow::Context;
use chrono::{DateTime, SubsecRound, Utc};
use leaklab_cache::Mode;
use serde::Serialize;
use sqlx::MySqlPool;

use crate::store::mysql;

/// The `runtime_settings` row that holds the flipped mode.
pub const SETTING: &str = "cache_mode";

/// Where the mode in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeSource {
    /// CACHE_MODE / `--cache-mode`.
    Environment,
    /// A `PUT /admin/cache`, stored in MySQL: it outlives restarts until the next PUT or
    /// `seed --reset`.
    RuntimeFlip,
}

impl ModeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Environment => "environment",
            Self::RuntimeFlip => "runtime_flip",
        }
    }
}

/// Where the mode in force came from and, for a runtime flip, when it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeOrigin {
    pub source: ModeSource,
    /// When the flip in force was made; `None` for the environment's mode.
    pub flipped_at: Option<DateTime<Utc>>,
}

impl ModeOrigin {
    pub const ENVIRONMENT: Self = Self {
        source: ModeSource::Environment,
        flipped_at: None,
    };

    pub fn runtime_flip(at: DateTime<Utc>) -> Self {
        Self {
            source: ModeSource::RuntimeFlip,
            flipped_at: Some(at),
        }
    }
}

/// A flip as MySQL holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredFlip {
    pub mode: Mode,
    pub at: DateTime<Utc>,
}

/// The stored flip, if any. A value this build does not know is an error, not "no flip".
pub async fn stored(pool: &MySqlPool) -> anyhow::Result<Option<StoredFlip>> {
    let Some((value, at)) = mysql::runtime_setting(pool, SETTING).await? else {
        return Ok(None);
    };
    let mode = value.parse().with_context(|| {
        format!(
            "runtime_settings row {SETTING:?} holds {value:?}, stored at {at}, which this build \
             does not know; PUT /admin/cache replaces it and `seed --reset` deletes it"
        )
    })?;
    Ok(Some(StoredFlip { mode, at }))
}

/// Stores `mode` as the flip in force, made now; returns the time stored.
pub async fn store(pool: &MySqlPool, mode: Mode) -> Result<DateTime<Utc>, sqlx::Error> {
    // To the microsecond, as DATETIME(6) keeps it: the time reported now is the one read back
    // after a restart.
    let at = Utc::now().trunc_subsecs(6);
    mysql::save_runtime_setting(pool, SETTING, mode.as_str(), at).await?;
    Ok(at)
}

/// Deletes the stored flip: the next start is in the environment's mode. Returns what was
/// stored (the raw value, which need not be a mode this build knows) and when.
pub async fn clear(pool: &MySqlPool) -> Result<Option<(String, DateTime<Utc>)>, sqlx::Error> {
    mysql::delete_runtime_setting(pool, SETTING).await
}

/// At start: the mode to run and where it came from. A stored flip wins over `configured` (the
/// environment's mode) and is announced at WARN. Failing to read it is an error: starting in the
/// environment's mode without knowing would be the silent undo this module exists to prevent.
pub async fn restore(pool: &MySqlPool, configured: Mode) -> anyhow::Result<(Mode, ModeOrigin)> {
    let flip = stored(pool).await.with_context(|| {
        format!(
            "cannot read the cache mode stored by a runtime flip (MySQL table runtime_settings); \
             not starting in CACHE_MODE={configured}, which could silently undo that flip"
        )
    })?;
    let Some(flip) = flip else {
        tracing::info!(
            cache_mode = %configured,
            mode_source = ModeSource::Environment.as_str(),
            "cache mode {configured} from CACHE_MODE/--cache-mode (no runtime flip stored)"
        );
        return Ok((configured, ModeOrigin::ENVIRONMENT));
    };
    let environment = if flip.mode == configured {
        format!("CACHE_MODE={configured} agrees, but the flip is what holds it")
    } else {
        format!("CACHE_MODE={configured} ignored")
    };
    let at = flip.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    tracing::warn!(
        cache_mode = %flip.mode,
        mode_source = ModeSource::RuntimeFlip.as_str(),
        flipped_at = %at,
        configured_cache_mode = %configured,
        "cache mode {} restored from a runtime flip at {at} ({environment}); PUT /admin/cache to \
         change it, or `seed --reset` to clear it",
        flip.mode
    );
    Ok((flip.mode, ModeOrigin::runtime_flip(flip.at)))
}
