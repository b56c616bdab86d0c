//! Runtime settings (`runtime_settings`): what a runtime flip stores so a restart keeps it.

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::MySqlPool;

use super::Stmt;

const RUNTIME_SETTING: Stmt = stmt!(
    SELECT runtime_settings,
    "SELECT value, updated_at FROM runtime_settings WHERE name = ?"
);
// The values are bound twice rather than read back with VALUES(), which MySQL 8.0.20+
// deprecates and whose replacement (`AS new`) MariaDB does not know.
const SAVE_RUNTIME_SETTING: Stmt = stmt!(
    INSERT runtime_settings,
    "INSERT INTO runtime_settings (name, value, updated_at) VALUES (?, ?, ?) \
     ON DUPLICATE KEY UPDATE value = ?, updated_at = ?"
);
const LOCK_RUNTIME_SETTING: Stmt = stmt!(
    SELECT runtime_settings,
    "SELECT value, updated_at FROM runtime_settings WHERE name = ? FOR UPDATE"
);
const DELETE_RUNTIME_SETTING: Stmt = stmt!(
    DELETE runtime_settings,
    "DELETE FROM runtime_settings WHERE name = ?"
);

/// A runtime setting (`runtime_settings`): its value and when it was chosen.
pub async fn runtime_setting(
    pool: &MySqlPool,
    name: &str,
) -> Result<Option<(String, DateTime<Utc>)>, sqlx::Error> {
    let row: Option<(String, NaiveDateTime)> = RUNTIME_SETTING
        .run(
            sqlx::query_as(RUNTIME_SETTING.text)
                .bind(name)
                .fetch_optional(pool),
        )
        .await?;
    Ok(row.map(|(value, at)| (value, at.and_utc())))
}

/// Creates or replaces a runtime setting, chosen at `at`.
pub async fn save_runtime_setting(
    pool: &MySqlPool,
    name: &str,
    value: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    // As DATETIME, for the reason given in `insert_activity`.
    let at = at.naive_utc();
    SAVE_RUNTIME_SETTING
        .run(
            sqlx::query(SAVE_RUNTIME_SETTING.text)
                .bind(name)
                .bind(value)
                .bind(at)
                .bind(value)
                .bind(at)
                .execute(pool),
        )
        .await
        .map(drop)
}

/// Deletes a runtime setting; the value it had, if any, and when it was chosen.
pub async fn delete_runtime_setting(
    pool: &MySqlPool,
    name: &str,
) -> Result<Option<(String, DateTime<Utc>)>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let row: Option<(String, NaiveDateTime)> = LOCK_RUNTIME_SETTING
        .run(
            sqlx::query_as(LOCK_RUNTIME_SETTING.text)
                .bind(name)
                .fetch_optional(&mut *tx),
        )
        .await?;
    DELETE_RUNTIME_SETTING
        .run(
            sqlx::query(DELETE_RUNTIME_SETTING.text)
                .bind(name)
                .execute(&mut *tx),
        )
        .await?;
    tx.commit().await?;
    Ok(row.map(|(value, at)| (value, at.and_utc())))
}
