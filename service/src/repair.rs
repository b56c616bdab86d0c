//! Brings Redis back in line with MySQL after Redis was unreachable, without a restart.
//!
//! Writes that could not reach Redis left their keys in the Redis store's dirty set. Once Redis
//! answers again, those keys are deleted, so the next read of each repairs it from MySQL through
//! the same version-checked path as any other miss.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::redis::RedisStore;

const BATCH: usize = 500;

pub async fn run(redis: Arc<RedisStore>, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if redis.dirty_len() > 0 {
            repair_once(&redis).await;
        }
    }
}

pub async fn repair_once(redis: &RedisStore) {
    let Some(keys) = redis.take_dirty(BATCH) else {
        match redis.drop_prefix().await {
            Ok(dropped) => {
                redis.clear_overflow();
                tracing::info!(dropped, "redis copies dropped after too many missed writes");
            }
            Err(error) => tracing::debug!(%error, "redis still unavailable for repair"),
        }
        return;
    };
    let mut keys = keys.into_iter();
    while let Some(key) = keys.next() {
        if let Err(error) = redis.forget(key).await {
            tracing::debug!(%error, "redis still unavailable for repair");
            redis.requeue(std::iter::once(key).chain(keys));
            return;
        }
    }
}
