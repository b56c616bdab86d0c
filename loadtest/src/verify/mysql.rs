//! MySQL reads of the check: duplicate rows anywhere, and the rows and activities the run touched.

use std::collections::BTreeSet;

use sqlx::{MySql, MySqlPool, QueryBuilder};

use super::check::{ActivityRow, DbSnapshot, Pair, Row};
use super::record::ReservationState;
use super::{BATCH, Baseline, bounded};

pub(super) async fn global_duplicates(
    pool: &MySqlPool,
) -> std::result::Result<Vec<(u64, u64, u64)>, String> {
    let rows: Vec<(u64, u64, i64)> = bounded(
        "duplicate check",
        sqlx::query_as(
            "SELECT activity_id, user_id, COUNT(*) FROM reservations \
             GROUP BY activity_id, user_id HAVING COUNT(*) > 1 LIMIT 100",
        )
        .fetch_all(pool),
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|(a, u, n)| (a, u, n.max(0) as u64))
        .collect())
}

pub(super) async fn load_db(
    base: &Baseline,
    pairs: &BTreeSet<Pair>,
) -> std::result::Result<DbSnapshot, String> {
    let mut snap = DbSnapshot {
        rows: pairs.iter().map(|&p| (p, Vec::new())).collect(),
        ..DbSnapshot::default()
    };
    // By user (idx_reservations_user), then keep the touched pairs.
    let users: Vec<u32> = pairs
        .iter()
        .map(|&(_, u)| u)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for chunk in users.chunks(BATCH) {
        // Every value is bound; `chunks` never yields an empty list.
        let mut qb = QueryBuilder::<MySql>::new(
            "SELECT id, activity_id, user_id, state, version, CAST((id > ",
        );
        qb.push_bind(base.max_id)
            .push(" OR updated_at >= ")
            .push_bind(base.at)
            .push(") AS SIGNED) FROM reservations WHERE user_id IN (");
        let mut list = qb.separated(",");
        for &u in chunk {
            list.push_bind(u);
        }
        qb.push(")");
        let q = qb.build_query_as::<(u64, u64, u64, String, u64, i64)>();
        let rows = bounded("reading reservations", q.fetch_all(&base.pool)).await?;
        for (id, activity, user, state, version, changed) in rows {
            let (Ok(a), Ok(u)) = (u32::try_from(activity), u32::try_from(user)) else {
                continue;
            };
            if let Some(list) = snap.rows.get_mut(&(a, u)) {
                let state = ReservationState::parse(&state)
                    .ok_or_else(|| format!("reservation {id} has unknown state {state:?}"))?;
                list.push(Row {
                    id,
                    state,
                    version,
                    changed_in_run: changed != 0,
                });
            }
        }
    }
    let activities: Vec<u32> = pairs
        .iter()
        .map(|&(a, _)| a)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for chunk in activities.chunks(BATCH) {
        let mut qb = QueryBuilder::<MySql>::new(
            "SELECT a.id, a.capacity, a.reserved_count, a.version, \
             (SELECT COUNT(*) FROM reservations r WHERE r.activity_id = a.id AND r.state = 'active') \
             FROM activities a WHERE a.id IN (",
        );
        let mut list = qb.separated(",");
        for &a in chunk {
            list.push_bind(a);
        }
        qb.push(")");
        let q = qb.build_query_as::<(u64, Option<u32>, u32, u64, i64)>();
        let rows = bounded("reading activities", q.fetch_all(&base.pool)).await?;
        for (id, capacity, reserved_count, version, active) in rows {
            if let Ok(id) = u32::try_from(id) {
                snap.activities.insert(
                    id,
                    ActivityRow {
                        capacity,
                        reserved_count,
                        version,
                        active_rows: active.max(0) as u64,
                    },
                );
            }
        }
    }
    Ok(snap)
}
