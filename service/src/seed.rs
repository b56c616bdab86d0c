//! `reservation-service seed`: a realistic data set, fast.
//!
//! Activity popularity is Zipf-distributed by id: activity `first_id + k - 1` has weight
//! `1 / k^s`, so a few low ids are hot — the same law the load generator uses, so that load and
//! data agree. Rows go in as multi-row parameterised INSERTs on a few connections at once.

use std::collections::HashSet;
use std::time::Instant;

use anyhow::Context;
use chrono::{Duration as Days, Utc};
use futures::{StreamExt, TryStreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::Serialize;
use sqlx::{MySql, MySqlPool, QueryBuilder};

use crate::config::SeedArgs;

const ACTIVITY_BATCH: usize = 2_000;
const RESERVATION_BATCH: usize = 5_000;
const PARALLEL_BATCHES: usize = 4;

#[derive(Debug, Serialize)]
pub struct SeedReport {
    pub activities: IdRange,
    pub users: IdRange,
    pub reservations: u64,
    /// The most reserved activities: the hot keys of the page endpoint.
    pub hottest: Vec<HotActivity>,
    pub zipf_exponent: f64,
    pub elapsed_ms: u128,
}

#[derive(Debug, Serialize)]
pub struct IdRange {
    pub count: u64,
    pub first_id: u64,
    pub last_id: u64,
}

#[derive(Debug, Serialize)]
pub struct HotActivity {
    pub id: u64,
    pub reservations: u32,
}

struct PlannedActivity {
    title: String,
    starts_at: chrono::DateTime<Utc>,
    capacity: Option<u32>,
    closed: bool,
}

pub async fn run(pool: &MySqlPool, args: &SeedArgs) -> anyhow::Result<SeedReport> {
    anyhow::ensure!(args.activities > 0, "--activities must be at least 1");
    anyhow::ensure!(args.users > 0, "--users must be at least 1");
    anyhow::ensure!(
        args.zipf.is_finite() && args.zipf >= 0.0,
        "--zipf must be a non-negative number"
    );
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(args.seed);
    if args.reset {
        reset(pool).await?;
    }

    let plans = plan_activities(&mut rng, args.activities);
    let first_id = insert_activities(pool, &plans).await?;
    let n = plans.len();

    // Reservations: each user picks distinct activities by popularity; full or closed ones are
    // skipped, as the API would refuse them.
    let zipf = Zipf::new(n as f64, args.zipf).context("invalid Zipf parameters")?;
    let mut counts = vec![0u32; n];
    let mut rows: Vec<(u64, u64)> = Vec::new();
    let mut picked = HashSet::new();
    let max_per_user = (2 * args.reservations_per_user).min(n as u32);
    for user_id in 1..=args.users {
        let wanted = rng.random_range(0..=max_per_user);
        picked.clear();
        let mut attempts = 0;
        while (picked.len() as u32) < wanted && attempts < 4 * wanted {
            attempts += 1;
            let rank = zipf.sample(&mut rng) as usize - 1;
            let plan = &plans[rank];
            if plan.closed || plan.capacity.is_some_and(|c| counts[rank] >= c) {
                continue;
            }
            if picked.insert(rank) {
                counts[rank] += 1;
                rows.push((first_id + rank as u64, user_id));
            }
        }
    }
    insert_reservations(pool, &rows).await?;
    sqlx::query(
        "UPDATE activities a \
         JOIN (SELECT activity_id, COUNT(*) AS c FROM reservations WHERE state = 'active' \
               GROUP BY activity_id) r ON r.activity_id = a.id \
         SET a.reserved_count = r.c, a.version = a.version + 1 \
         WHERE a.id BETWEEN ? AND ?",
    )
    .bind(first_id)
    .bind(first_id + n as u64 - 1)
    .execute(pool)
    .await
    .context("updating reserved counts failed")?;

    let mut hottest: Vec<HotActivity> = counts
        .iter()
        .enumerate()
        .map(|(rank, &reservations)| HotActivity {
            id: first_id + rank as u64,
            reservations,
        })
        .collect();
    hottest.sort_by(|a, b| b.reservations.cmp(&a.reservations).then(a.id.cmp(&b.id)));
    hottest.truncate(5);
    Ok(SeedReport {
        activities: IdRange {
            count: n as u64,
            first_id,
            last_id: first_id + n as u64 - 1,
        },
        users: IdRange {
            count: args.users,
            first_id: 1,
            last_id: args.users,
        },
        reservations: rows.len() as u64,
        hottest,
        zipf_exponent: args.zipf,
        elapsed_ms: started.elapsed().as_millis(),
    })
}

async fn reset(pool: &MySqlPool) -> anyhow::Result<()> {
    // TRUNCATE resets AUTO_INCREMENT, so seeded ids start at 1; foreign key checks are off for
    // this one connection only.
    let mut conn = pool.acquire().await?;
    for statement in [
        "SET FOREIGN_KEY_CHECKS = 0",
        "TRUNCATE TABLE reservations",
        "TRUNCATE TABLE activities",
        "SET FOREIGN_KEY_CHECKS = 1",
    ] {
        sqlx::query(statement)
            .execute(&mut *conn)
            .await
            .with_context(|| format!("reset failed at {statement:?}"))?;
    }
    // A fresh lab starts in the environment's cache mode: a runtime flip stored by
    // `PUT /admin/cache` (which would win over CACHE_MODE at the service's next start) goes too.
    if let Some((mode, at)) = crate::cache::mode::clear(pool)
        .await
        .context("reset failed clearing the stored cache mode flip")?
    {
        tracing::info!(
            cache_mode = %mode,
            flipped_at = %at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "cleared the runtime flip to cache mode {mode}: the service's next start is in \
             CACHE_MODE's mode"
        );
    }
    Ok(())
}

fn plan_activities(rng: &mut StdRng, count: u32) -> Vec<PlannedActivity> {
    const KINDS: [&str; 6] = [
        "Concert",
        "Workshop",
        "Meetup",
        "Match",
        "Screening",
        "Talk",
    ];
    let now = Utc::now();
    (1..=count)
        .map(|i| PlannedActivity {
            title: format!("{} #{i}", KINDS[rng.random_range(0..KINDS.len())]),
            starts_at: now + Days::minutes(rng.random_range(60..=90 * 24 * 60)),
            // A third unlimited; the rest between 50 and 5,000 seats.
            capacity: (!rng.random_bool(1.0 / 3.0)).then(|| rng.random_range(50..=5_000)),
            closed: rng.random_bool(0.02),
        })
        .collect()
}

/// Inserts in one multi-row statement per batch, in order, and returns the first id. InnoDB
/// gives a multi-row INSERT consecutive ids and reports the first (`innodb_autoinc_lock_mode`
/// 1 or 2 with no concurrent inserts into the table).
async fn insert_activities(pool: &MySqlPool, plans: &[PlannedActivity]) -> anyhow::Result<u64> {
    let mut first = None;
    let mut expected_next = None;
    for batch in plans.chunks(ACTIVITY_BATCH) {
        let mut query: QueryBuilder<MySql> =
            QueryBuilder::new("INSERT INTO activities (title, starts_at, capacity, status) ");
        query.push_values(batch, |mut row, plan| {
            row.push_bind(&plan.title)
                .push_bind(plan.starts_at)
                .push_bind(plan.capacity)
                .push_bind(if plan.closed { "closed" } else { "open" });
        });
        let batch_first = query
            .build()
            .execute(pool)
            .await
            .context("inserting activities failed")?
            .last_insert_id();
        anyhow::ensure!(
            expected_next.is_none_or(|next| next == batch_first),
            "activity ids are not consecutive (another writer?); seed into an idle database"
        );
        expected_next = Some(batch_first + batch.len() as u64);
        first.get_or_insert(batch_first);
    }
    first.context("no activities inserted")
}

async fn insert_reservations(pool: &MySqlPool, rows: &[(u64, u64)]) -> anyhow::Result<()> {
    futures::stream::iter(rows.chunks(RESERVATION_BATCH))
        .map(|batch| async move {
            let mut query: QueryBuilder<MySql> =
                QueryBuilder::new("INSERT INTO reservations (activity_id, user_id, state) ");
            query.push_values(batch, |mut row, &(activity_id, user_id)| {
                row.push_bind(activity_id)
                    .push_bind(user_id)
                    .push_bind("active");
            });
            query.build().execute(pool).await.map(drop)
        })
        .buffer_unordered(PARALLEL_BATCHES)
        .try_collect::<()>()
        .await
        .context("inserting reservations failed")
}
