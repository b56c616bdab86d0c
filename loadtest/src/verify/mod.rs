//! `run --verify`: no acknowledged write lost or duplicated.
//!
//! During the run, [`record::Recorder`] keeps every reserve and cancel and what came of it
//! (acknowledged with the reservation the service returned, rejected, or of unknown outcome).
//! Before the run, [`prepare`] connects to MySQL and notes the highest reservation id and the
//! database's clock, so rows the run created or changed can be told from the seed's. After the
//! run, [`verify`] reads MySQL (and Redis, if given) directly and [`check`] compares; it repeats
//! for up to `wait` until nothing disagrees, so that the service's Redis repair loop (every
//! 500 ms once Redis answers) and requests the service was still finishing have settled. What
//! still disagrees at the deadline is a violation.

pub mod check;
pub mod record;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;
use sqlx::mysql::MySqlPoolOptions;

use crate::error::{Error, Result};
use crate::verdict::Verdict;
use crate::{EXIT_INCONCLUSIVE, EXIT_OK, EXIT_VERIFY_FAILED};
use check::{
    ActivityRow, DbSnapshot, Finding, Pair, RedisCheck, RedisCopy, RedisSnapshot, Row, Severity,
};
use record::{State, Unknown, WriteOutcome, WriteRecord};

/// Where to check, and how long to wait for agreement.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    pub database_url: String,
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    /// Upper bound on waiting for MySQL and Redis to agree after the run.
    pub wait: Duration,
}

/// MySQL before the run.
#[derive(Debug, Clone)]
pub struct Baseline {
    pool: MySqlPool,
    max_id: u64,
    at: chrono::NaiveDateTime,
}

/// Bound on every query and Redis round trip of the check.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two checks while waiting for agreement.
const RETRY_EVERY: Duration = Duration::from_millis(500);
/// Ids per `IN (...)` list.
const BATCH: usize = 500;
/// Examples kept in the report, per severity.
const EXAMPLES: usize = 20;

fn setup(msg: String) -> Error {
    Error::Usage(msg)
}

async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    fut: impl Future<Output = std::result::Result<T, E>>,
) -> std::result::Result<T, String> {
    match tokio::time::timeout(IO_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {IO_TIMEOUT:?}")),
    }
}

/// Connect to MySQL and take the baseline; a failure is a setup error (the run does not start).
pub async fn prepare(cfg: &VerifyConfig) -> Result<Baseline> {
    let pool = MySqlPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(IO_TIMEOUT)
        .connect_lazy(&cfg.database_url)
        .map_err(|e| setup(format!("--verify-database-url: {e}")))?;
    let (max_id, at): (Option<u64>, chrono::NaiveDateTime) = bounded(
        "--verify-database-url",
        sqlx::query_as(
            "SELECT (SELECT MAX(id) FROM reservations), CAST(CURRENT_TIMESTAMP(6) AS DATETIME(6))",
        )
        .fetch_one(&pool),
    )
    .await
    .map_err(setup)?;
    if let Some(url) = &cfg.redis_url {
        redis::Client::open(url.as_str()).map_err(|e| setup(format!("--verify-redis-url: {e}")))?;
    }
    Ok(Baseline {
        pool,
        max_id: max_id.unwrap_or(0),
        at,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyOutcome {
    /// Every acknowledged write found as acknowledged, nothing unexplained, Redis agrees.
    Pass,
    Violations,
    /// The check could not be completed (MySQL or Redis unreachable after the run).
    Error,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownCounts {
    pub timeout: u64,
    pub connection: u64,
    pub server_error: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisReport {
    pub prefix: String,
    /// Copies present and compared with MySQL.
    pub compared: u64,
    /// Touched keys with no copy (repaired on the next read; not a finding).
    pub absent: u64,
    /// Disagreements left at the end of the wait.
    pub disagreements: u64,
}

/// The verify section of summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub outcome: VerifyOutcome,
    /// Reserve and cancel requests of the run.
    pub writes: u64,
    /// ... answered 2xx.
    pub acknowledged: u64,
    /// ... answered 4xx or 503 `overloaded`: not applied.
    pub rejected: u64,
    /// ... of unknown outcome (may or may not have been applied).
    pub unknown: UnknownCounts,
    /// ... never handed to a connection.
    pub not_sent: u64,
    /// Acknowledged writes checked against MySQL.
    pub checked: u64,
    /// ... found exactly as acknowledged.
    pub ok: u64,
    /// ... whose row a request of unknown outcome changed afterwards.
    pub uncertain_acks: u64,
    /// ... lost, rolled back, replaced or unreadable.
    pub violating_acks: u64,
    /// Uncertain findings (lost acknowledgements, changes by requests of unknown outcome).
    pub uncertain: u64,
    /// Violations (MySQL and Redis).
    pub violations: u64,
    /// (activity, user) pairs written to, and activities written to.
    pub pairs: u64,
    pub activities: u64,
    pub redis: Option<RedisReport>,
    /// Checks made until agreement or the deadline, and the time that took.
    pub attempts: u32,
    pub waited_s: f64,
    /// Findings by kind.
    pub by_kind: BTreeMap<String, u64>,
    /// The first findings of each severity.
    pub examples: Vec<Finding>,
    pub error: Option<String>,
}

impl VerifyReport {
    fn counts(records: &[WriteRecord]) -> Self {
        let mut r = VerifyReport {
            outcome: VerifyOutcome::Pass,
            writes: records.len() as u64,
            acknowledged: 0,
            rejected: 0,
            unknown: UnknownCounts::default(),
            not_sent: 0,
            checked: 0,
            ok: 0,
            uncertain_acks: 0,
            violating_acks: 0,
            uncertain: 0,
            violations: 0,
            pairs: 0,
            activities: 0,
            redis: None,
            attempts: 0,
            waited_s: 0.0,
            by_kind: BTreeMap::new(),
            examples: Vec::new(),
            error: None,
        };
        for rec in records {
            match rec.outcome {
                WriteOutcome::Acked { .. } | WriteOutcome::BadAck { .. } => r.acknowledged += 1,
                WriteOutcome::Rejected { .. } => r.rejected += 1,
                WriteOutcome::NotSent => r.not_sent += 1,
                WriteOutcome::Unknown { reason, .. } => match reason {
                    Unknown::Timeout => r.unknown.timeout += 1,
                    Unknown::Connection => r.unknown.connection += 1,
                    Unknown::ServerError => r.unknown.server_error += 1,
                },
            }
        }
        r
    }

    /// Fold one round of findings in (the last round is the one reported).
    fn set_findings(&mut self, findings: Vec<Finding>) {
        self.by_kind.clear();
        for f in &findings {
            *self.by_kind.entry(f.kind.clone()).or_default() += 1;
        }
        self.violations = findings
            .iter()
            .filter(|f| f.severity == Severity::Violation)
            .count() as u64;
        self.uncertain = findings.len() as u64 - self.violations;
        let (mut v, mut u): (Vec<_>, Vec<_>) = findings
            .into_iter()
            .partition(|f| f.severity == Severity::Violation);
        v.truncate(EXAMPLES);
        u.truncate(EXAMPLES);
        v.extend(u);
        self.examples = v;
        self.outcome = if self.violations > 0 {
            VerifyOutcome::Violations
        } else {
            VerifyOutcome::Pass
        };
    }
}

/// Check the run's `records` against MySQL (and Redis), waiting up to `cfg.wait` for agreement.
pub async fn verify(cfg: &VerifyConfig, base: &Baseline, records: &[WriteRecord]) -> VerifyReport {
    let mut report = VerifyReport::counts(records);
    let started = tokio::time::Instant::now();
    let deadline = started + cfg.wait;
    let pairs: BTreeSet<Pair> = records.iter().map(|r| (r.activity, r.user)).collect();
    let redis = match &cfg.redis_url {
        Some(url) => match connect_redis(url).await {
            Ok(c) => Some(c),
            Err(e) => {
                report.error = Some(e);
                None
            }
        },
        None => None,
    };
    let duplicates = match global_duplicates(&base.pool).await {
        Ok(d) => d,
        Err(e) => {
            report.error = Some(e);
            report.outcome = VerifyOutcome::Error;
            return report;
        }
    };
    loop {
        report.attempts += 1;
        let db = match load_db(base, &pairs).await {
            Ok(mut db) => {
                db.duplicates = duplicates.clone();
                db
            }
            Err(e) => {
                report.error = Some(e);
                break;
            }
        };
        let m = check::check_mysql(records, &db);
        report.checked = m.checked;
        report.ok = m.ok;
        report.uncertain_acks = m.uncertain_acks;
        report.violating_acks = m.violating_acks;
        report.pairs = m.pairs;
        report.activities = m.activities;
        let mut findings = m.findings;
        if let Some(conn) = &redis {
            match load_redis(conn.clone(), &cfg.redis_prefix, &db).await {
                Ok(snapshot) => {
                    let RedisCheck {
                        compared,
                        absent,
                        findings: rf,
                    } = check::check_redis(&db, &snapshot);
                    report.redis = Some(RedisReport {
                        prefix: cfg.redis_prefix.clone(),
                        compared,
                        absent,
                        disagreements: rf.len() as u64,
                    });
                    findings.extend(rf);
                    report.error = None;
                }
                Err(e) => report.error = Some(e),
            }
        }
        let clean = !findings.iter().any(|f| f.severity == Severity::Violation);
        report.set_findings(findings);
        if (clean && report.error.is_none()) || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
    report.waited_s = started.elapsed().as_secs_f64();
    if report.error.is_some() && report.outcome == VerifyOutcome::Pass {
        report.outcome = VerifyOutcome::Error;
    }
    report
}

async fn global_duplicates(pool: &MySqlPool) -> std::result::Result<Vec<(u64, u64, u64)>, String> {
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

fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 2);
    for i in 0..n {
        s.push_str(if i == 0 { "?" } else { ",?" });
    }
    s
}

async fn load_db(
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
        // Only `?` placeholders are formatted in; every value is bound.
        let sql = format!(
            "SELECT id, activity_id, user_id, state, version, \
             CAST((id > ? OR updated_at >= ?) AS SIGNED) \
             FROM reservations WHERE user_id IN ({})",
            placeholders(chunk.len())
        );
        let mut q =
            sqlx::query_as::<_, (u64, u64, u64, String, u64, i64)>(sqlx::AssertSqlSafe(sql))
                .bind(base.max_id)
                .bind(base.at);
        for u in chunk {
            q = q.bind(u);
        }
        let rows = bounded("reading reservations", q.fetch_all(&base.pool)).await?;
        for (id, activity, user, state, version, changed) in rows {
            let (Ok(a), Ok(u)) = (u32::try_from(activity), u32::try_from(user)) else {
                continue;
            };
            if let Some(list) = snap.rows.get_mut(&(a, u)) {
                let state = State::parse(&state)
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
        let sql = format!(
            "SELECT a.id, a.capacity, a.reserved_count, a.version, \
             (SELECT COUNT(*) FROM reservations r WHERE r.activity_id = a.id AND r.state = 'active') \
             FROM activities a WHERE a.id IN ({})",
            placeholders(chunk.len())
        );
        let mut q =
            sqlx::query_as::<_, (u64, Option<u32>, u32, u64, i64)>(sqlx::AssertSqlSafe(sql));
        for a in chunk {
            q = q.bind(a);
        }
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

async fn connect_redis(
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
async fn load_redis(
    mut conn: redis::aio::MultiplexedConnection,
    prefix: &str,
    db: &DbSnapshot,
) -> std::result::Result<RedisSnapshot, String> {
    enum Key {
        Counter(u32),
        User(Pair),
    }
    let mut keys: Vec<(Key, String)> = Vec::new();
    for &a in db.activities.keys() {
        keys.push((Key::Counter(a), format!("{prefix}cnt:{a}")));
    }
    for &(a, u) in db.rows.keys() {
        keys.push((Key::User((a, u)), format!("{prefix}res:{a}:{u}")));
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

/// Fold the verify result into the run's verdict: violations give [`EXIT_VERIFY_FAILED`]
/// whatever the SLO says; a check that could not complete makes a pass inconclusive.
pub fn apply(verdict: &mut Verdict, report: &VerifyReport) {
    match report.outcome {
        VerifyOutcome::Pass => verdict.reasons.push(format!(
            "verify: {} acknowledged writes checked, {} ok, {} uncertain, no violation",
            report.checked, report.ok, report.uncertain
        )),
        VerifyOutcome::Violations => {
            verdict.reasons.push(format!(
                "verify: {} violations ({})",
                report.violations,
                kinds_of(report, Severity::Violation)
            ));
            verdict.exit_code = EXIT_VERIFY_FAILED;
        }
        VerifyOutcome::Error => {
            verdict.reasons.push(format!(
                "verify could not complete: {}",
                report.error.as_deref().unwrap_or("unknown error")
            ));
            if verdict.exit_code == EXIT_OK {
                verdict.exit_code = EXIT_INCONCLUSIVE;
            }
        }
    }
}

fn kinds_of(report: &VerifyReport, severity: Severity) -> String {
    let set: HashSet<&str> = report
        .examples
        .iter()
        .filter(|f| f.severity == severity)
        .map(|f| f.kind.as_str())
        .collect();
    let mut kinds: Vec<String> = report
        .by_kind
        .iter()
        .filter(|(k, _)| set.contains(k.as_str()))
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    kinds.sort();
    kinds.join(", ")
}

/// The console section.
pub fn text(r: &VerifyReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "verify: {:?} — writes {} (acknowledged {}, rejected {}, unknown {} [timeout {}, connection {}, 5xx {}], not sent {})",
        r.outcome,
        r.writes,
        r.acknowledged,
        r.rejected,
        r.unknown.timeout + r.unknown.connection + r.unknown.server_error,
        r.unknown.timeout,
        r.unknown.connection,
        r.unknown.server_error,
        r.not_sent
    );
    let _ = writeln!(
        o,
        "  checked {} acknowledged writes: ok {}, uncertain {}, violating {}; findings: {} violations, {} uncertain ({} pairs, {} activities, {} checks in {:.1} s)",
        r.checked,
        r.ok,
        r.uncertain_acks,
        r.violating_acks,
        r.violations,
        r.uncertain,
        r.pairs,
        r.activities,
        r.attempts,
        r.waited_s
    );
    match &r.redis {
        Some(x) => {
            let _ = writeln!(
                o,
                "  redis ({}): {} copies compared, {} absent, {} disagree",
                x.prefix, x.compared, x.absent, x.disagreements
            );
        }
        None => {
            let _ = writeln!(o, "  redis: not checked");
        }
    }
    if !r.by_kind.is_empty() {
        let kinds: Vec<String> = r.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(o, "  by kind: {}", kinds.join(", "));
    }
    for f in r.examples.iter().take(10) {
        let who = match f.user {
            Some(u) => format!("activity {} user {u}", f.activity),
            None => format!("activity {}", f.activity),
        };
        let _ = writeln!(o, "  {:?} {}: {who}: {}", f.severity, f.kind, f.detail);
    }
    if let Some(e) = &r.error {
        let _ = writeln!(o, "  error: {e}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Outcome;

    fn verdict() -> Verdict {
        Verdict {
            outcome: Outcome::Pass,
            slo: 0.999,
            availability: Some(1.0),
            reasons: vec![],
            dips_1s: vec![],
            dips_10s: vec![],
            exit_code: EXIT_OK,
        }
    }

    fn finding(kind: &str, severity: Severity) -> Finding {
        Finding {
            kind: kind.into(),
            severity,
            activity: 1,
            user: Some(2),
            detail: "d".into(),
        }
    }

    #[test]
    fn violations_set_their_own_exit_code() {
        let mut r = VerifyReport::counts(&[]);
        r.set_findings(vec![
            finding("lost_ack", Severity::Uncertain),
            finding("ack_missing", Severity::Violation),
            finding("ack_missing", Severity::Violation),
        ]);
        assert_eq!((r.violations, r.uncertain), (2, 1));
        assert_eq!(r.outcome, VerifyOutcome::Violations);
        assert_eq!(r.examples[0].severity, Severity::Violation);
        let mut v = verdict();
        apply(&mut v, &r);
        assert_eq!(v.exit_code, EXIT_VERIFY_FAILED);
        assert!(v.reasons[0].contains("ack_missing 2"), "{:?}", v.reasons);
        assert!(text(&r).contains("ack_missing"));

        let mut ok = VerifyReport::counts(&[]);
        ok.set_findings(vec![finding("lost_ack", Severity::Uncertain)]);
        let mut v = verdict();
        apply(&mut v, &ok);
        assert_eq!(
            v.exit_code, EXIT_OK,
            "uncertain findings are not violations"
        );

        ok.outcome = VerifyOutcome::Error;
        let mut v = verdict();
        apply(&mut v, &ok);
        assert_eq!(v.exit_code, EXIT_INCONCLUSIVE);
    }

    #[test]
    fn verify_is_refused_for_the_page_scenario_and_needs_a_database() {
        use crate::cli::{Cli, Command};
        let config = |args: &[&str]| {
            let argv = [
                "loadtest",
                "run",
                "--target",
                "http://127.0.0.1:1",
                "--rate",
                "1",
            ]
            .iter()
            .chain(
                [
                    "--duration",
                    "1s",
                    "--verify-database-url",
                    "mysql://x@h/db",
                ]
                .iter(),
            )
            .chain(args);
            match <Cli as clap::Parser>::try_parse_from(argv).unwrap().command {
                Command::Run(a) => a.to_config(),
                Command::Merge(_) => unreachable!(),
            }
        };
        let err = config(&["--verify"]).unwrap_err().to_string();
        assert!(err.contains("--scenario reserve or mix"), "{err}");
        let cfg = config(&["--verify", "--scenario", "mix"]).unwrap();
        assert_eq!(cfg.verify.unwrap().database_url, "mysql://x@h/db");
        assert!(config(&["--scenario", "page"]).unwrap().verify.is_none());
    }

    #[test]
    fn distinct_exit_codes() {
        let codes = [
            crate::EXIT_OK,
            crate::EXIT_SLO_MISSED,
            crate::EXIT_USAGE,
            crate::EXIT_INCONCLUSIVE,
            EXIT_VERIFY_FAILED,
        ];
        let set: HashSet<u8> = codes.iter().copied().collect();
        assert_eq!(set.len(), codes.len());
    }
}
