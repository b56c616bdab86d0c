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
mod mysql;
pub mod record;
mod redis;
mod report;

use std::collections::BTreeSet;
use std::time::Duration;

use sqlx::MySqlPool;
use sqlx::mysql::MySqlPoolOptions;

use crate::error::{Error, Result};
use check::{Pair, RedisCheck, Severity};
use record::WriteRecord;

pub use report::{RedisReport, UnknownCounts, VerifyOutcome, VerifyReport, apply, text};

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
        ::redis::Client::open(url.as_str())
            .map_err(|e| setup(format!("--verify-redis-url: {e}")))?;
    }
    Ok(Baseline {
        pool,
        max_id: max_id.unwrap_or(0),
        at,
    })
}

/// Check the run's `records` against MySQL (and Redis), waiting up to `cfg.wait` for agreement.
pub async fn verify(cfg: &VerifyConfig, base: &Baseline, records: &[WriteRecord]) -> VerifyReport {
    let mut report = VerifyReport::counts(records);
    let started = tokio::time::Instant::now();
    let deadline = started + cfg.wait;
    let pairs: BTreeSet<Pair> = records.iter().map(|r| (r.activity, r.user)).collect();
    let redis = match &cfg.redis_url {
        Some(url) => match redis::connect_redis(url).await {
            Ok(c) => Some(c),
            Err(e) => {
                report.error = Some(e);
                None
            }
        },
        None => None,
    };
    let duplicates = match mysql::global_duplicates(&base.pool).await {
        Ok(d) => d,
        Err(e) => {
            report.error = Some(e);
            report.outcome = VerifyOutcome::Error;
            return report;
        }
    };
    loop {
        report.attempts += 1;
        let db = match mysql::load_db(base, &pairs).await {
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
            match redis::load_redis(conn.clone(), &cfg.redis_prefix, &db).await {
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

#[cfg(test)]
mod tests {
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
}
