//! Activities: created by `POST /v1/activities`, read by the page and its related list.

use sqlx::MySqlPool;

use super::Stmt;
use super::reservations::counter;
use crate::domain::{ActivityRecord, ActivitySummary, NewActivity};

const ACTIVITY_BY_ID: Stmt = stmt!(
    SELECT activities,
    "SELECT id, title, starts_at, capacity, status, created_at, updated_at \
     FROM activities WHERE id = ?"
);
const INSERT_ACTIVITY: Stmt = stmt!(
    INSERT activities,
    "INSERT INTO activities (title, starts_at, capacity, status) VALUES (?, ?, ?, ?)"
);
const RELATED_IDS: Stmt = stmt!(
    SELECT activities,
    "SELECT id FROM activities WHERE starts_at >= ? AND id <> ? ORDER BY starts_at, id LIMIT ?"
);

pub async fn insert_activity(
    pool: &MySqlPool,
    new: &NewActivity,
) -> Result<ActivityRecord, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let id = INSERT_ACTIVITY
        .run(
            sqlx::query(INSERT_ACTIVITY.text)
                .bind(&new.title)
                // As DATETIME: sqlx sends a DateTime<Utc> as a TIMESTAMP, which MariaDB turns
                // into NULL outside 1970..2038-01-19 (a 500 found by the property tests).
                .bind(new.starts_at.naive_utc())
                .bind(new.capacity)
                .bind(new.status.as_str())
                .execute(&mut *tx),
        )
        .await?
        .last_insert_id();
    let record = ACTIVITY_BY_ID
        .run(
            sqlx::query_as::<_, ActivityRecord>(ACTIVITY_BY_ID.text)
                .bind(id)
                .fetch_one(&mut *tx),
        )
        .await?;
    tx.commit().await?;
    Ok(record)
}

pub async fn activity(
    pool: &MySqlPool,
    id: u64,
) -> Result<Option<(ActivityRecord, u32)>, sqlx::Error> {
    let Some(record) = find(pool, id).await? else {
        return Ok(None);
    };
    let count = counter(pool, id).await?.map_or(0, |c| c.value);
    Ok(Some((record, count)))
}

/// The activity and the ids of the next activities by start time: what the page shows beside it.
pub async fn activity_summary(
    pool: &MySqlPool,
    id: u64,
    related: u32,
) -> Result<Option<ActivitySummary>, sqlx::Error> {
    let Some(activity) = find(pool, id).await? else {
        return Ok(None);
    };
    let related_ids: Vec<u64> = RELATED_IDS
        .run(
            sqlx::query_scalar(RELATED_IDS.text)
                .bind(activity.starts_at.naive_utc())
                .bind(id)
                .bind(related)
                .fetch_all(pool),
        )
        .await?;
    Ok(Some(ActivitySummary {
        activity,
        related_ids,
    }))
}

async fn find(pool: &MySqlPool, id: u64) -> Result<Option<ActivityRecord>, sqlx::Error> {
    ACTIVITY_BY_ID
        .run(
            sqlx::query_as::<_, ActivityRecord>(ACTIVITY_BY_ID.text)
                .bind(id)
                .fetch_optional(pool),
        )
        .await
}
