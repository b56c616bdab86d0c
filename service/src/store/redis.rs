//! Redis copies of what the page needs on every view: each activity's reserved counter and each
//! user's reservation state, plus a shared copy of activity summaries.
//!
//! MySQL stays the source of truth. Every copy carries the MySQL row version it was read at, and a
//! Lua script refuses to overwrite a newer version, so late, repeated or racing writers (a write
//! path and a read-repair) can never move a copy backwards. Writes that fail while Redis is away
//! are remembered and repaired by a background task once it is back; reads that miss repair on
//! the way out.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use leaklab_contract::RedisKeys;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tracing::Instrument;
use tracing::field::Empty;

use super::Versioned;
use crate::domain::{ActivitySummary, UserReservation};

/// Sets `KEYS[i]` to value `ARGV[2i-1]` at version `ARGV[2i]` unless it already holds a newer
/// version; the last ARGV is the TTL in milliseconds.
const SET_IF_NEWER: &str = r"
local ttl = ARGV[#ARGV]
local written = 0
for i, key in ipairs(KEYS) do
  local value, version = ARGV[2 * i - 1], tonumber(ARGV[2 * i])
  local current = tonumber(redis.call('HGET', key, 'v'))
  if current == nil or current < version then
    redis.call('HSET', key, 'x', value, 'v', version)
    written = written + 1
  end
  redis.call('PEXPIRE', key, ttl)
end
return written
";

/// Past this many remembered keys a precise repair costs more than starting over, so the whole
/// prefix is dropped instead and reads repopulate it.
const MAX_DIRTY_KEYS: usize = 100_000;

#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: String,
    pub prefix: String,
    /// Upper bound on one Redis round trip, so a slow or dead Redis costs a request this much at
    /// most before it falls back to MySQL.
    pub op_timeout: Duration,
    pub hot_ttl: Duration,
    pub summary_ttl: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DirtyKey {
    Counter(u64),
    User { activity_id: u64, user_id: u64 },
}

#[derive(Default)]
struct Dirty {
    keys: HashSet<DirtyKey>,
    overflowed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RedisStoreError {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error("redis holds an unreadable copy: {0}")]
    Corrupt(String),
}

pub struct RedisStore {
    conn: ConnectionManager,
    settings: RedisSettings,
    script: redis::Script,
    dirty: Mutex<Dirty>,
}

/// What Redis knows for one page view; `None` means "not cached, ask MySQL".
#[derive(Debug, Clone, Copy)]
pub struct CachedReservation {
    pub counter: Option<u32>,
    pub user: Option<UserReservation>,
}

impl RedisStore {
    /// Does not connect: the service starts, and serves from MySQL, while Redis is down.
    pub fn new(settings: RedisSettings) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(settings.url.as_str())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.op_timeout))
            .set_response_timeout(Some(settings.op_timeout))
            // One quick retry; after that the next command triggers a new attempt, so recovery
            // needs no restart and a dead Redis never holds requests in a backoff loop.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(100));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            conn,
            settings,
            script: redis::Script::new(SET_IF_NEWER),
            dirty: Mutex::new(Dirty::default()),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.settings.prefix
    }

    fn keys(&self) -> RedisKeys<'_> {
        RedisKeys::new(&self.settings.prefix)
    }

    fn key(&self, key: DirtyKey) -> String {
        match key {
            DirtyKey::Counter(id) => self.keys().counter(id),
            DirtyKey::User {
                activity_id,
                user_id,
            } => self.keys().reservation(activity_id, user_id),
        }
    }

    /// Every round trip goes through here: bounded by the op timeout, and traced as a client
    /// span named after the command (database semantic conventions; no keys or values).
    async fn bounded<T>(
        &self,
        operation: &'static str,
        fut: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisStoreError> {
        let span = crate::telemetry::request_span!(
            "redis",
            otel.name = operation,
            otel.kind = "client",
            db.system.name = "redis",
            db.operation.name = operation,
            otel.status_code = Empty,
        );
        let timed = tokio::time::timeout(self.settings.op_timeout, fut)
            .instrument(span.clone())
            .await;
        let result = match timed {
            Ok(result) => result.map_err(RedisStoreError::from),
            Err(_) => Err(RedisStoreError::Timeout(self.settings.op_timeout)),
        };
        if let Err(error) = &result {
            span.record("otel.status_code", "ERROR");
            // An unnamed event with an `error` field becomes the span's exception event.
            tracing::debug!(parent: &span, error = %error);
        }
        result
    }

    pub async fn ping(&self) -> Result<(), RedisStoreError> {
        let mut conn = self.conn.clone();
        self.bounded("PING", redis::cmd("PING").query_async::<String>(&mut conn))
            .await
            .map(drop)
    }

    /// Counter and user state in one round trip.
    pub async fn cached_reservation(
        &self,
        activity_id: u64,
        user_id: u64,
    ) -> Result<CachedReservation, RedisStoreError> {
        let mut conn = self.conn.clone();
        let (counter, user): (Option<String>, Option<String>) = self
            .bounded(
                "HGET",
                redis::pipe()
                    .hget(self.keys().counter(activity_id), "x")
                    .hget(self.keys().reservation(activity_id, user_id), "x")
                    .query_async(&mut conn),
            )
            .await?;
        let counter = counter
            .map(|c| c.parse::<u32>().map_err(|_| RedisStoreError::Corrupt(c)))
            .transpose()?;
        let user = user.map(|u| parse_user(&u)).transpose()?;
        Ok(CachedReservation { counter, user })
    }

    pub async fn summary(
        &self,
        activity_id: u64,
    ) -> Result<Option<ActivitySummary>, RedisStoreError> {
        let mut conn = self.conn.clone();
        let json: Option<String> = self
            .bounded(
                "GET",
                redis::cmd("GET")
                    .arg(self.keys().summary(activity_id))
                    .query_async(&mut conn),
            )
            .await?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| RedisStoreError::Corrupt(e.to_string())))
            .transpose()
    }

    pub async fn put_summary(&self, summary: &ActivitySummary) -> Result<(), RedisStoreError> {
        let json =
            serde_json::to_string(summary).map_err(|e| RedisStoreError::Corrupt(e.to_string()))?;
        let mut conn = self.conn.clone();
        self.bounded(
            "SET",
            redis::cmd("SET")
                .arg(self.keys().summary(summary.activity.id))
                .arg(json)
                .arg("PX")
                .arg(self.settings.summary_ttl.as_millis() as u64)
                .query_async::<()>(&mut conn),
        )
        .await
    }

    /// Writes the copies unless Redis holds newer ones. On failure the keys are remembered for
    /// the repair task, so a write acknowledged by MySQL always reaches Redis eventually.
    pub async fn put(
        &self,
        counter: Option<(u64, Versioned<u32>)>,
        user: Option<(u64, u64, Versioned<UserReservation>)>,
    ) -> Result<(), RedisStoreError> {
        let mut invocation = self.script.prepare_invoke();
        let mut keys = Vec::with_capacity(2);
        if let Some((activity_id, c)) = counter {
            invocation
                .key(self.keys().counter(activity_id))
                .arg(c.value)
                .arg(c.version);
            keys.push(DirtyKey::Counter(activity_id));
        }
        if let Some((activity_id, user_id, u)) = user {
            invocation
                .key(self.keys().reservation(activity_id, user_id))
                .arg(user_str(u.value))
                .arg(u.version);
            keys.push(DirtyKey::User {
                activity_id,
                user_id,
            });
        }
        if keys.is_empty() {
            return Ok(());
        }
        invocation.arg(self.settings.hot_ttl.as_millis() as u64);
        let mut conn = self.conn.clone();
        let result = self
            .bounded("EVALSHA", invocation.invoke_async::<i64>(&mut conn))
            .await;
        if result.is_err() {
            self.mark_dirty(keys);
        }
        result.map(drop)
    }

    fn mark_dirty(&self, keys: impl IntoIterator<Item = DirtyKey>) {
        let mut dirty = self.dirty.lock().expect("dirty set poisoned");
        if dirty.overflowed {
            return;
        }
        dirty.keys.extend(keys);
        if dirty.keys.len() > MAX_DIRTY_KEYS {
            dirty.keys = HashSet::new();
            dirty.overflowed = true;
        }
    }

    pub fn dirty_len(&self) -> usize {
        let dirty = self.dirty.lock().expect("dirty set poisoned");
        if dirty.overflowed {
            usize::MAX
        } else {
            dirty.keys.len()
        }
    }

    /// Takes up to `max` keys to repair. `None` means the set overflowed: drop the whole prefix.
    pub fn take_dirty(&self, max: usize) -> Option<Vec<DirtyKey>> {
        let mut dirty = self.dirty.lock().expect("dirty set poisoned");
        if dirty.overflowed {
            return None;
        }
        let taken: Vec<DirtyKey> = dirty.keys.iter().take(max).copied().collect();
        for key in &taken {
            dirty.keys.remove(key);
        }
        Some(taken)
    }

    pub fn clear_overflow(&self) {
        self.dirty.lock().expect("dirty set poisoned").overflowed = false;
    }

    pub fn requeue(&self, keys: impl IntoIterator<Item = DirtyKey>) {
        self.mark_dirty(keys);
    }

    /// Deletes a key so that the next read repairs it from MySQL.
    pub async fn forget(&self, key: DirtyKey) -> Result<(), RedisStoreError> {
        let mut conn = self.conn.clone();
        self.bounded(
            "UNLINK",
            redis::cmd("UNLINK")
                .arg(self.key(key))
                .query_async::<()>(&mut conn),
        )
        .await
    }

    /// Drops every key under the prefix (after the dirty set overflowed).
    pub async fn drop_prefix(&self) -> Result<u64, RedisStoreError> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}*", escape_glob(&self.settings.prefix));
        let mut cursor: u64 = 0;
        let mut dropped = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .bounded(
                    "SCAN",
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut conn),
                )
                .await?;
            if !keys.is_empty() {
                dropped += keys.len() as u64;
                self.bounded(
                    "UNLINK",
                    redis::cmd("UNLINK").arg(&keys).query_async::<()>(&mut conn),
                )
                .await?;
            }
            if next == 0 {
                return Ok(dropped);
            }
            cursor = next;
        }
    }
}

fn user_str(u: UserReservation) -> &'static str {
    match u {
        UserReservation::Active => "active",
        UserReservation::Cancelled => "cancelled",
        UserReservation::None => "none",
    }
}

fn parse_user(s: &str) -> Result<UserReservation, RedisStoreError> {
    match s {
        "active" => Ok(UserReservation::Active),
        "cancelled" => Ok(UserReservation::Cancelled),
        "none" => Ok(UserReservation::None),
        other => Err(RedisStoreError::Corrupt(other.to_owned())),
    }
}

fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
