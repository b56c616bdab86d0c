//! Reservations and each activity's counter: reads, and the reserve and cancel transactions.

use sqlx::{MySqlPool, MySqlTransaction};

use super::Stmt;
use crate::domain::{ActivityStatus, Reservation, ReservationState, UserReservation};
use crate::store::Versioned;

const COUNTER: Stmt = stmt!(
    SELECT activities,
    "SELECT reserved_count, version FROM activities WHERE id = ?"
);
const USER_STATE: Stmt = stmt!(
    SELECT reservations,
    "SELECT state, version FROM reservations WHERE activity_id = ? AND user_id = ?"
);
const RESERVATION: Stmt = stmt!(
    SELECT reservations,
    "SELECT id, activity_id, user_id, state, version, created_at, updated_at \
     FROM reservations WHERE activity_id = ? AND user_id = ?"
);
const USER_RESERVATIONS: Stmt = stmt!(
    SELECT reservations,
    "SELECT id, activity_id, user_id, state, version, created_at, updated_at \
     FROM reservations WHERE user_id = ? AND id > ? ORDER BY id LIMIT ?"
);
const LOCK_ACTIVITY: Stmt = stmt!(
    SELECT activities,
    "SELECT capacity, status, reserved_count, version FROM activities WHERE id = ? FOR UPDATE"
);
const LOCK_RESERVATION: Stmt = stmt!(
    SELECT reservations,
    "SELECT id, activity_id, user_id, state, version, created_at, updated_at \
     FROM reservations WHERE activity_id = ? AND user_id = ? FOR UPDATE"
);
const RESERVATION_BY_ID: Stmt = stmt!(
    SELECT reservations,
    "SELECT id, activity_id, user_id, state, version, created_at, updated_at \
     FROM reservations WHERE id = ?"
);
const BUMP_COUNTER: Stmt = stmt!(
    UPDATE activities,
    "UPDATE activities SET reserved_count = reserved_count + ?, version = version + 1 WHERE id = ?"
);
const REACTIVATE: Stmt = stmt!(
    UPDATE reservations,
    "UPDATE reservations SET state = 'active', version = version + 1 WHERE id = ?"
);
const INSERT_RESERVATION: Stmt = stmt!(
    INSERT reservations,
    "INSERT INTO reservations (activity_id, user_id, state) VALUES (?, ?, 'active')"
);
const CANCEL: Stmt = stmt!(
    UPDATE reservations,
    "UPDATE reservations SET state = 'cancelled', version = version + 1 WHERE id = ?"
);

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("activity {0} does not exist")]
    ActivityNotFound(u64),
    #[error("activity {0} is full")]
    Full(u64),
    #[error("activity {0} is closed")]
    Closed(u64),
    #[error("user {user_id} holds no reservation for activity {activity_id}")]
    ReservationNotFound { activity_id: u64, user_id: u64 },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The result of a reserve or cancel: the reservation as it is now, whether this call changed
/// it, and the activity's counter after the change (for Redis).
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    pub reservation: Reservation,
    pub changed: bool,
    pub counter: Versioned<u32>,
}

pub async fn counter(pool: &MySqlPool, id: u64) -> Result<Option<Versioned<u32>>, sqlx::Error> {
    let row: Option<(u32, u64)> = COUNTER
        .run(sqlx::query_as(COUNTER.text).bind(id).fetch_optional(pool))
        .await?;
    Ok(row.map(|(value, version)| Versioned { value, version }))
}

/// The user's reservation state for one activity; "none" has version 0, older than any row.
pub async fn user_state(
    pool: &MySqlPool,
    activity_id: u64,
    user_id: u64,
) -> Result<Versioned<UserReservation>, sqlx::Error> {
    let row: Option<(String, u64)> = USER_STATE
        .run(
            sqlx::query_as(USER_STATE.text)
                .bind(activity_id)
                .bind(user_id)
                .fetch_optional(pool),
        )
        .await?;
    Ok(match row {
        Some((state, version)) => Versioned {
            value: ReservationState::parse(&state).into(),
            version,
        },
        None => Versioned {
            value: UserReservation::None,
            version: 0,
        },
    })
}

pub async fn reservation(
    pool: &MySqlPool,
    activity_id: u64,
    user_id: u64,
) -> Result<Option<Reservation>, sqlx::Error> {
    RESERVATION
        .run(
            sqlx::query_as::<_, Reservation>(RESERVATION.text)
                .bind(activity_id)
                .bind(user_id)
                .fetch_optional(pool),
        )
        .await
}

/// Keyset pagination by reservation id: stable under concurrent inserts, no OFFSET scans.
pub async fn user_reservations(
    pool: &MySqlPool,
    user_id: u64,
    after_id: u64,
    limit: u32,
) -> Result<Vec<Reservation>, sqlx::Error> {
    USER_RESERVATIONS
        .run(
            sqlx::query_as::<_, Reservation>(USER_RESERVATIONS.text)
                .bind(user_id)
                .bind(after_id)
                .bind(limit)
                .fetch_all(pool),
        )
        .await
}

struct LockedActivity {
    capacity: Option<u32>,
    status: ActivityStatus,
    counter: Versioned<u32>,
}

/// Locks the activity row. Every write takes this lock first, then the reservation row, so
/// writers of one activity are serialised (capacity holds) and never deadlock.
async fn lock_activity(
    tx: &mut MySqlTransaction<'_>,
    id: u64,
) -> Result<LockedActivity, WriteError> {
    let row: Option<(Option<u32>, String, u32, u64)> = LOCK_ACTIVITY
        .run(
            sqlx::query_as(LOCK_ACTIVITY.text)
                .bind(id)
                .fetch_optional(&mut **tx),
        )
        .await?;
    let (capacity, status, value, version) = row.ok_or(WriteError::ActivityNotFound(id))?;
    let status = ActivityStatus::try_from(status)
        .map_err(|e| WriteError::Db(sqlx::Error::Decode(e.into())))?;
    Ok(LockedActivity {
        capacity,
        status,
        counter: Versioned { value, version },
    })
}

async fn lock_reservation(
    tx: &mut MySqlTransaction<'_>,
    activity_id: u64,
    user_id: u64,
) -> Result<Option<Reservation>, sqlx::Error> {
    LOCK_RESERVATION
        .run(
            sqlx::query_as::<_, Reservation>(LOCK_RESERVATION.text)
                .bind(activity_id)
                .bind(user_id)
                .fetch_optional(&mut **tx),
        )
        .await
}

async fn reload_reservation(
    tx: &mut MySqlTransaction<'_>,
    id: u64,
) -> Result<Reservation, sqlx::Error> {
    RESERVATION_BY_ID
        .run(
            sqlx::query_as::<_, Reservation>(RESERVATION_BY_ID.text)
                .bind(id)
                .fetch_one(&mut **tx),
        )
        .await
}

async fn bump_counter(
    tx: &mut MySqlTransaction<'_>,
    activity_id: u64,
    counter: Versioned<u32>,
    delta: i32,
) -> Result<Versioned<u32>, sqlx::Error> {
    BUMP_COUNTER
        .run(
            sqlx::query(BUMP_COUNTER.text)
                .bind(delta)
                .bind(activity_id)
                .execute(&mut **tx),
        )
        .await?;
    Ok(Versioned {
        value: counter.value.saturating_add_signed(delta),
        version: counter.version + 1,
    })
}

/// Idempotent reserve: an active reservation is returned unchanged.
pub async fn reserve(
    pool: &MySqlPool,
    activity_id: u64,
    user_id: u64,
) -> Result<WriteOutcome, WriteError> {
    let mut tx = pool.begin().await?;
    let activity = lock_activity(&mut tx, activity_id).await?;
    let existing = lock_reservation(&mut tx, activity_id, user_id).await?;
    if let Some(reservation) = existing
        .as_ref()
        .filter(|r| r.state == ReservationState::Active)
    {
        let reservation = reservation.clone();
        tx.commit().await?;
        return Ok(WriteOutcome {
            reservation,
            changed: false,
            counter: activity.counter,
        });
    }
    if activity.status == ActivityStatus::Closed {
        return Err(WriteError::Closed(activity_id));
    }
    if activity
        .capacity
        .is_some_and(|capacity| activity.counter.value >= capacity)
    {
        return Err(WriteError::Full(activity_id));
    }
    let id = match existing {
        Some(cancelled) => {
            REACTIVATE
                .run(
                    sqlx::query(REACTIVATE.text)
                        .bind(cancelled.id)
                        .execute(&mut *tx),
                )
                .await?;
            cancelled.id
        }
        None => INSERT_RESERVATION
            .run(
                sqlx::query(INSERT_RESERVATION.text)
                    .bind(activity_id)
                    .bind(user_id)
                    .execute(&mut *tx),
            )
            .await?
            .last_insert_id(),
    };
    let counter = bump_counter(&mut tx, activity_id, activity.counter, 1).await?;
    let reservation = reload_reservation(&mut tx, id).await?;
    tx.commit().await?;
    Ok(WriteOutcome {
        reservation,
        changed: true,
        counter,
    })
}

/// Idempotent cancel: a cancelled reservation is returned unchanged.
pub async fn cancel(
    pool: &MySqlPool,
    activity_id: u64,
    user_id: u64,
) -> Result<WriteOutcome, WriteError> {
    let mut tx = pool.begin().await?;
    let activity = lock_activity(&mut tx, activity_id).await?;
    let reservation = lock_reservation(&mut tx, activity_id, user_id)
        .await?
        .ok_or(WriteError::ReservationNotFound {
            activity_id,
            user_id,
        })?;
    if reservation.state == ReservationState::Cancelled {
        tx.commit().await?;
        return Ok(WriteOutcome {
            reservation,
            changed: false,
            counter: activity.counter,
        });
    }
    CANCEL
        .run(
            sqlx::query(CANCEL.text)
                .bind(reservation.id)
                .execute(&mut *tx),
        )
        .await?;
    let counter = bump_counter(&mut tx, activity_id, activity.counter, -1).await?;
    let reservation = reload_reservation(&mut tx, reservation.id).await?;
    tx.commit().await?;
    Ok(WriteOutcome {
        reservation,
        changed: true,
        counter,
    })
}
