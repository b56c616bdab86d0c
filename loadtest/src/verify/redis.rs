//! Redis reads of the check: the cached copies of the counters and user states the run touched.

use leaklab_contract::RedisKeys;

use super::check::{DbSnapshot, Pair, RedisCopy, RedisSnapshot};
use super::{BATCH, bounded};

pub(super) async fn connect_redis(
    url: &str,
) -> std::result::Result<redis::aio::MultiplexedConnection, String> {
    let client = redis::Client::open(url).map_err(|e| format!("--verify-redis-url: {e}"))?;
    bounded(
        "connecting to Redis",
        client.get_multiplexed_async_connection(),
    )
    .await
}

/// `HMGET key x v` for every counter and user-state key of the snapshot, in pipelines.
pub(super) async fn load_redis(
    mut conn: redis::aio::MultiplexedConnection,
    prefix: &str,
    db: &DbSnapshot,
) -> std::result::Result<RedisSnapshot, String> {
    enum Key {
        Counter(u32),
        User(Pair),
    }
    let layout = RedisKeys::new(prefix);
    let mut keys: Vec<(Key, String)> = Vec::new();
    for &a in db.activities.keys() {
        keys.push((Key::Counter(a), layout.counter(a)));
    }
    for &(a, u) in db.rows.keys() {
        keys.push((Key::User((a, u)), layout.reservation(a, u)));
    }
    let mut snap = RedisSnapshot::default();
    for chunk in keys.chunks(BATCH) {
        let mut pipe = redis::pipe();
        for (_, k) in chunk {
            pipe.cmd("HMGET").arg(k).arg("x").arg("v");
        }
        let values: Vec<(Option<String>, Option<String>)> =
            bounded("reading Redis", pipe.query_async(&mut conn)).await?;
        for ((key, name), (x, v)) in chunk.iter().zip(values) {
            let Some(value) = x else { continue };
            let version = v
                .as_deref()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("Redis key {name} has no readable version"))?;
            let copy = RedisCopy { value, version };
            match key {
                Key::Counter(a) => {
                    snap.counters.insert(*a, copy);
                }
                Key::User(p) => {
                    snap.users.insert(*p, copy);
                }
            }
        }
    }
    Ok(snap)
}
