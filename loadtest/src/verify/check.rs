//! The checking logic of `--verify`, free of I/O: the run's writes against snapshots of MySQL and
//! Redis taken after the run.
//!
//! The service bumps a reservation's `version` on every state change and every answer carries the
//! reservation as it is after the call, so the acknowledgement with the highest version is the
//! last one MySQL applied, whatever order the answers arrived in. For each (activity, user) pair
//! the run wrote to:
//!
//! * acknowledged: the row must exist once, with the acknowledged id, and be exactly at the
//!   highest acknowledged version and its state. A row at a higher version was changed by a
//!   request nobody heard back from: uncertain if one of the pair's requests has an unknown
//!   outcome (timeout, cut connection, 5xx), a violation otherwise. A lower version, another id,
//!   another state or no row at all is an acknowledged write lost.
//! * never acknowledged: a row created or changed during the run is a lost acknowledgement
//!   (uncertain) if one of the pair's requests has an unknown outcome, else a violation.
//!
//! Per activity written to: `reserved_count` equals the active rows and stays within capacity.
//! Redis copies that exist must hold MySQL's value at MySQL's version (a missing copy is fine:
//! the next read repairs it).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::record::{ReservationState, WriteOutcome, WriteRecord};
use crate::util;

/// (activity, user)
pub type Pair = (u32, u32);

/// A `reservations` row of a pair the run wrote to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: u64,
    pub state: ReservationState,
    pub version: u64,
    /// Created (id above the pre-run maximum) or updated since the run started.
    pub changed_in_run: bool,
}

/// An `activities` row the run wrote to, with its count of active reservation rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRow {
    pub capacity: Option<u32>,
    pub reserved_count: u32,
    pub version: u64,
    pub active_rows: u64,
}

/// MySQL after the run, restricted to what the run touched.
#[derive(Debug, Clone, Default)]
pub struct DbSnapshot {
    /// Every pair the run wrote to; an empty list when it has no row.
    pub rows: HashMap<Pair, Vec<Row>>,
    /// Activities the run wrote to that exist.
    pub activities: HashMap<u32, ActivityRow>,
    /// (activity, user, rows) for any pair with more than one row, anywhere in the table.
    pub duplicates: Vec<(u64, u64, u64)>,
}

/// One Redis copy: its value (`x`) and the MySQL version it was read at (`v`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisCopy {
    pub value: String,
    pub version: u64,
}

/// The Redis copies that exist, for the activities and pairs in a [`DbSnapshot`].
#[derive(Debug, Clone, Default)]
pub struct RedisSnapshot {
    pub counters: HashMap<u32, RedisCopy>,
    pub users: HashMap<Pair, RedisCopy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Violation,
    Uncertain,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: String,
    pub severity: Severity,
    pub activity: u32,
    pub user: Option<u32>,
    pub detail: String,
}

impl Finding {
    fn new(
        kind: &str,
        severity: Severity,
        activity: u32,
        user: Option<u32>,
        detail: String,
    ) -> Self {
        Finding {
            kind: kind.to_string(),
            severity,
            activity,
            user,
            detail,
        }
    }
}

/// What [`check_mysql`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MysqlCheck {
    /// Acknowledged writes checked (2xx answers, including unreadable ones).
    pub checked: u64,
    /// ... found in MySQL as acknowledged.
    pub ok: u64,
    /// ... on a pair changed afterwards by a request of unknown outcome.
    pub uncertain_acks: u64,
    /// ... on a pair with a violation.
    pub violating_acks: u64,
    pub pairs: u64,
    pub activities: u64,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, Copy)]
struct Ack {
    id: u64,
    state: ReservationState,
    version: u64,
    at: i64,
}

fn describe(a: &Ack) -> String {
    format!(
        "id {} {} v{} (acknowledged {})",
        a.id,
        a.state.as_str(),
        a.version,
        util::rfc3339(a.at)
    )
}

fn describe_row(r: &Row) -> String {
    format!("id {} {} v{}", r.id, r.state.as_str(), r.version)
}

enum PairVerdict {
    Ok,
    Uncertain(&'static str, String),
    Violation(&'static str, String),
}

fn judge_acked(acks: &[Ack], row: Option<&Row>, unknown: bool) -> PairVerdict {
    let last = acks
        .iter()
        .max_by_key(|a| (a.version, a.at))
        .expect("at least one ack");
    let Some(row) = row else {
        return PairVerdict::Violation(
            "ack_missing",
            format!("acknowledged {}, no row in MySQL", describe(last)),
        );
    };
    if let Some(a) = acks.iter().find(|a| a.id != row.id) {
        return PairVerdict::Violation(
            "ack_id_mismatch",
            format!(
                "acknowledged {}, MySQL holds {}",
                describe(a),
                describe_row(row)
            ),
        );
    }
    if let Some(a) = acks
        .iter()
        .find(|a| a.version == last.version && a.state != last.state)
    {
        return PairVerdict::Violation(
            "ack_state_mismatch",
            format!(
                "two acknowledgements at one version: {} and {}",
                describe(a),
                describe(last)
            ),
        );
    }
    match row.version.cmp(&last.version) {
        std::cmp::Ordering::Less => PairVerdict::Violation(
            "ack_rolled_back",
            format!(
                "acknowledged {}, MySQL holds the older {}",
                describe(last),
                describe_row(row)
            ),
        ),
        std::cmp::Ordering::Equal if row.state != last.state => PairVerdict::Violation(
            "ack_state_mismatch",
            format!(
                "acknowledged {}, MySQL holds {}",
                describe(last),
                describe_row(row)
            ),
        ),
        std::cmp::Ordering::Equal => PairVerdict::Ok,
        std::cmp::Ordering::Greater if unknown => PairVerdict::Uncertain(
            "changed_by_unknown",
            format!(
                "last acknowledged {}, MySQL holds the newer {}: a request of unknown outcome applied",
                describe(last),
                describe_row(row)
            ),
        ),
        std::cmp::Ordering::Greater => PairVerdict::Violation(
            "unacknowledged_change",
            format!(
                "last acknowledged {}, MySQL holds the newer {} and every later request was answered",
                describe(last),
                describe_row(row)
            ),
        ),
    }
}

/// Check the run's writes against MySQL.
pub fn check_mysql(records: &[WriteRecord], db: &DbSnapshot) -> MysqlCheck {
    let mut by_pair: BTreeMap<Pair, Vec<&WriteRecord>> = BTreeMap::new();
    for r in records {
        by_pair.entry((r.activity, r.user)).or_default().push(r);
    }
    let mut out = MysqlCheck {
        pairs: by_pair.len() as u64,
        ..MysqlCheck::default()
    };
    for (&(activity, user), recs) in &by_pair {
        let acks: Vec<Ack> = recs
            .iter()
            .filter_map(|r| match r.outcome {
                WriteOutcome::Acked {
                    id, state, version, ..
                } => Some(Ack {
                    id,
                    state,
                    version,
                    at: r.done_unix_us,
                }),
                _ => None,
            })
            .collect();
        let bad_acks: Vec<&&WriteRecord> = recs
            .iter()
            .filter(|r| matches!(r.outcome, WriteOutcome::BadAck { .. }))
            .collect();
        let unknown = recs
            .iter()
            .any(|r| matches!(r.outcome, WriteOutcome::Unknown { .. }));
        let rows: &[Row] = db.rows.get(&(activity, user)).map_or(&[], Vec::as_slice);
        if rows.len() > 1 {
            out.findings.push(Finding::new(
                "duplicate_rows",
                Severity::Violation,
                activity,
                Some(user),
                format!(
                    "{} rows: {}",
                    rows.len(),
                    rows.iter().map(describe_row).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let row = rows.iter().max_by_key(|r| r.version);
        out.checked += (acks.len() + bad_acks.len()) as u64;
        out.violating_acks += bad_acks.len() as u64;
        for b in &bad_acks {
            out.findings.push(Finding::new(
                "bad_ack",
                Severity::Violation,
                activity,
                Some(user),
                format!(
                    "{:?} answered {} at {} without a readable reservation",
                    b.kind,
                    match b.outcome {
                        WriteOutcome::BadAck { status } => status,
                        _ => 0,
                    },
                    util::rfc3339(b.done_unix_us)
                ),
            ));
        }
        let verdict = if !acks.is_empty() {
            judge_acked(&acks, row, unknown)
        } else {
            match row {
                Some(r) if r.changed_in_run && bad_acks.is_empty() => {
                    let detail = format!(
                        "no acknowledgement, but MySQL holds {} written during the run ({} requests: {})",
                        describe_row(r),
                        recs.len(),
                        outcomes(recs)
                    );
                    if unknown {
                        PairVerdict::Uncertain("lost_ack", detail)
                    } else {
                        PairVerdict::Violation("unacknowledged_row", detail)
                    }
                }
                _ => PairVerdict::Ok,
            }
        };
        let n = acks.len() as u64;
        match verdict {
            PairVerdict::Ok => out.ok += n,
            PairVerdict::Uncertain(kind, detail) => {
                out.uncertain_acks += n;
                out.findings.push(Finding::new(
                    kind,
                    Severity::Uncertain,
                    activity,
                    Some(user),
                    detail,
                ));
            }
            PairVerdict::Violation(kind, detail) => {
                out.violating_acks += n;
                out.findings.push(Finding::new(
                    kind,
                    Severity::Violation,
                    activity,
                    Some(user),
                    detail,
                ));
            }
        }
    }
    let mut activities: Vec<_> = db.activities.iter().collect();
    activities.sort_by_key(|(id, _)| **id);
    out.activities = activities.len() as u64;
    for (&id, a) in activities {
        if u64::from(a.reserved_count) != a.active_rows {
            out.findings.push(Finding::new(
                "counter_mismatch",
                Severity::Violation,
                id,
                None,
                format!(
                    "reserved_count {} but {} active reservations",
                    a.reserved_count, a.active_rows
                ),
            ));
        }
        if let Some(cap) = a.capacity
            && a.active_rows > u64::from(cap)
        {
            out.findings.push(Finding::new(
                "over_capacity",
                Severity::Violation,
                id,
                None,
                format!("{} active reservations, capacity {cap}", a.active_rows),
            ));
        }
    }
    for &(activity, user, n) in &db.duplicates {
        if !by_pair.contains_key(&(activity as u32, user as u32)) {
            out.findings.push(Finding::new(
                "duplicate_rows",
                Severity::Violation,
                activity as u32,
                Some(user as u32),
                format!("{n} rows for one (activity, user)"),
            ));
        }
    }
    out
}

fn outcomes(recs: &[&WriteRecord]) -> String {
    recs.iter()
        .map(|r| match r.outcome {
            WriteOutcome::Acked { status, .. }
            | WriteOutcome::BadAck { status }
            | WriteOutcome::Rejected { status } => format!("{:?} {status}", r.kind),
            WriteOutcome::Unknown { reason, status } => {
                format!("{:?} {reason:?} {status}", r.kind)
            }
            WriteOutcome::NotSent => format!("{:?} not sent", r.kind),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What [`check_redis`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisCheck {
    /// Copies present and compared.
    pub compared: u64,
    /// Keys of touched activities and pairs with no copy (fine: repaired on the next read).
    pub absent: u64,
    pub findings: Vec<Finding>,
}

/// Compare the Redis copies with MySQL: counters of the activities and user states of the pairs
/// in `db`.
pub fn check_redis(db: &DbSnapshot, redis: &RedisSnapshot) -> RedisCheck {
    let mut out = RedisCheck::default();
    let mut activities: Vec<_> = db.activities.iter().collect();
    activities.sort_by_key(|(id, _)| **id);
    for (&id, a) in activities {
        match redis.counters.get(&id) {
            None => out.absent += 1,
            Some(c) => {
                out.compared += 1;
                if c.value != a.reserved_count.to_string() || c.version != a.version {
                    out.findings.push(Finding::new(
                        "redis_counter_disagrees",
                        Severity::Violation,
                        id,
                        None,
                        format!(
                            "Redis holds {} at v{}, MySQL {} at v{}",
                            c.value, c.version, a.reserved_count, a.version
                        ),
                    ));
                }
            }
        }
    }
    let mut pairs: Vec<_> = db.rows.iter().collect();
    pairs.sort_by_key(|(p, _)| **p);
    for (&(activity, user), rows) in pairs {
        let (state, version) = rows
            .iter()
            .max_by_key(|r| r.version)
            .map_or(("none", 0), |r| (r.state.as_str(), r.version));
        match redis.users.get(&(activity, user)) {
            None => out.absent += 1,
            Some(c) => {
                out.compared += 1;
                if c.value != state || c.version != version {
                    out.findings.push(Finding::new(
                        "redis_user_disagrees",
                        Severity::Violation,
                        activity,
                        Some(user),
                        format!(
                            "Redis holds {} at v{}, MySQL {state} at v{version}",
                            c.value, c.version
                        ),
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OpKind;
    use crate::verify::record::Unknown;

    fn rec(kind: OpKind, activity: u32, user: u32, t: i64, outcome: WriteOutcome) -> WriteRecord {
        WriteRecord {
            kind,
            activity,
            user,
            intended_unix_us: t,
            done_unix_us: t + 1000,
            outcome,
        }
    }

    fn acked(id: u64, state: ReservationState, version: u64) -> WriteOutcome {
        WriteOutcome::Acked {
            status: 200,
            id,
            state,
            version,
        }
    }

    const TIMEOUT: WriteOutcome = WriteOutcome::Unknown {
        reason: Unknown::Timeout,
        status: 0,
    };

    fn row(id: u64, state: ReservationState, version: u64, changed: bool) -> Row {
        Row {
            id,
            state,
            version,
            changed_in_run: changed,
        }
    }

    fn db(rows: &[(Pair, Vec<Row>)]) -> DbSnapshot {
        DbSnapshot {
            rows: rows.iter().cloned().collect(),
            ..DbSnapshot::default()
        }
    }

    fn kinds(c: &MysqlCheck) -> Vec<(&str, Severity)> {
        c.findings
            .iter()
            .map(|f| (f.kind.as_str(), f.severity))
            .collect()
    }

    #[test]
    fn the_last_acknowledged_state_wins_by_version_not_by_arrival() {
        // The cancel (v2) was answered before the reserve (v1): order of answers is not order
        // of application.
        let records = [
            rec(
                OpKind::Cancel,
                1,
                1,
                10,
                acked(5, ReservationState::Cancelled, 2),
            ),
            rec(
                OpKind::Reserve,
                1,
                1,
                20,
                acked(5, ReservationState::Active, 1),
            ),
        ];
        let c = check_mysql(
            &records,
            &db(&[((1, 1), vec![row(5, ReservationState::Cancelled, 2, true)])]),
        );
        assert_eq!((c.checked, c.ok), (2, 2));
        assert!(c.findings.is_empty(), "{:?}", c.findings);

        let c = check_mysql(
            &records,
            &db(&[((1, 1), vec![row(5, ReservationState::Active, 1, true)])]),
        );
        assert_eq!(kinds(&c), [("ack_rolled_back", Severity::Violation)]);
        assert_eq!(c.violating_acks, 2);
    }

    #[test]
    fn acknowledged_writes_must_exist_with_their_id_and_state() {
        let records = [rec(
            OpKind::Reserve,
            2,
            3,
            0,
            acked(9, ReservationState::Active, 1),
        )];
        let missing = check_mysql(&records, &db(&[((2, 3), vec![])]));
        assert_eq!(kinds(&missing), [("ack_missing", Severity::Violation)]);
        let other_id = check_mysql(
            &records,
            &db(&[((2, 3), vec![row(10, ReservationState::Active, 1, true)])]),
        );
        assert_eq!(kinds(&other_id), [("ack_id_mismatch", Severity::Violation)]);
        let other_state = check_mysql(
            &records,
            &db(&[((2, 3), vec![row(9, ReservationState::Cancelled, 1, true)])]),
        );
        assert_eq!(
            kinds(&other_state),
            [("ack_state_mismatch", Severity::Violation)]
        );
        let dup = check_mysql(
            &records,
            &db(&[(
                (2, 3),
                vec![
                    row(9, ReservationState::Active, 1, true),
                    row(11, ReservationState::Active, 1, true),
                ],
            )]),
        );
        assert!(kinds(&dup).contains(&("duplicate_rows", Severity::Violation)));
    }

    #[test]
    fn later_changes_are_uncertain_only_with_a_request_of_unknown_outcome() {
        let acked_reserve = rec(
            OpKind::Reserve,
            1,
            1,
            0,
            acked(5, ReservationState::Active, 1),
        );
        let snapshot = db(&[((1, 1), vec![row(5, ReservationState::Cancelled, 2, true)])]);
        let timed_out_cancel = rec(OpKind::Cancel, 1, 1, 10, TIMEOUT);
        let c = check_mysql(&[acked_reserve, timed_out_cancel], &snapshot);
        assert_eq!(kinds(&c), [("changed_by_unknown", Severity::Uncertain)]);
        assert_eq!((c.checked, c.ok, c.uncertain_acks), (1, 0, 1));

        let refused_cancel = rec(
            OpKind::Cancel,
            1,
            1,
            10,
            WriteOutcome::Rejected { status: 404 },
        );
        let c = check_mysql(&[acked_reserve, refused_cancel], &snapshot);
        assert_eq!(kinds(&c), [("unacknowledged_change", Severity::Violation)]);
    }

    #[test]
    fn rows_without_acknowledgement() {
        let snapshot = db(&[((4, 4), vec![row(7, ReservationState::Active, 1, true)])]);
        let lost = check_mysql(&[rec(OpKind::Reserve, 4, 4, 0, TIMEOUT)], &snapshot);
        assert_eq!(kinds(&lost), [("lost_ack", Severity::Uncertain)]);
        assert_eq!(lost.checked, 0);
        let server_error = WriteOutcome::Unknown {
            reason: Unknown::ServerError,
            status: 504,
        };
        let lost = check_mysql(&[rec(OpKind::Reserve, 4, 4, 0, server_error)], &snapshot);
        assert_eq!(kinds(&lost), [("lost_ack", Severity::Uncertain)]);
        for outcome in [
            WriteOutcome::Rejected { status: 409 },
            WriteOutcome::NotSent,
        ] {
            let c = check_mysql(&[rec(OpKind::Reserve, 4, 4, 0, outcome)], &snapshot);
            assert_eq!(kinds(&c), [("unacknowledged_row", Severity::Violation)]);
        }
        // A row from before the run that the run only failed to change is no finding.
        let old = db(&[((4, 4), vec![row(7, ReservationState::Active, 1, false)])]);
        let c = check_mysql(
            &[rec(
                OpKind::Reserve,
                4,
                4,
                0,
                WriteOutcome::Rejected { status: 409 },
            )],
            &old,
        );
        assert!(c.findings.is_empty());
        let c = check_mysql(
            &[rec(
                OpKind::Reserve,
                4,
                4,
                0,
                WriteOutcome::BadAck { status: 201 },
            )],
            &snapshot,
        );
        assert_eq!(kinds(&c), [("bad_ack", Severity::Violation)]);
        assert_eq!((c.checked, c.violating_acks), (1, 1));
    }

    #[test]
    fn counters_capacity_and_duplicates_elsewhere() {
        let mut snapshot = db(&[]);
        snapshot.activities.insert(
            1,
            ActivityRow {
                capacity: Some(2),
                reserved_count: 3,
                version: 9,
                active_rows: 3,
            },
        );
        snapshot.activities.insert(
            2,
            ActivityRow {
                capacity: None,
                reserved_count: 4,
                version: 9,
                active_rows: 5,
            },
        );
        snapshot.duplicates.push((8, 8, 2));
        let c = check_mysql(&[], &snapshot);
        assert_eq!(
            kinds(&c),
            [
                ("over_capacity", Severity::Violation),
                ("counter_mismatch", Severity::Violation),
                ("duplicate_rows", Severity::Violation)
            ]
        );
    }

    #[test]
    fn redis_copies_must_match_mysql_when_present() {
        let mut snapshot = db(&[
            ((1, 1), vec![row(5, ReservationState::Cancelled, 2, true)]),
            ((1, 2), vec![]),
            ((1, 3), vec![row(6, ReservationState::Active, 1, true)]),
        ]);
        snapshot.activities.insert(
            1,
            ActivityRow {
                capacity: None,
                reserved_count: 1,
                version: 12,
                active_rows: 1,
            },
        );
        let copy = |value: &str, version| RedisCopy {
            value: value.into(),
            version,
        };
        let mut redis = RedisSnapshot::default();
        redis.counters.insert(1, copy("1", 12));
        redis.users.insert((1, 1), copy("cancelled", 2));
        redis.users.insert((1, 2), copy("none", 0));
        let c = check_redis(&snapshot, &redis);
        assert_eq!((c.compared, c.absent), (3, 1));
        assert!(c.findings.is_empty(), "{:?}", c.findings);

        redis.counters.insert(1, copy("2", 11));
        redis.users.insert((1, 1), copy("active", 1));
        let c = check_redis(&snapshot, &redis);
        let kinds: Vec<_> = c.findings.iter().map(|f| f.kind.as_str()).collect();
        assert_eq!(kinds, ["redis_counter_disagrees", "redis_user_disagrees"]);
    }
}
