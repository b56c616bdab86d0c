//! Pass/fail against the SLO, and the dips (windows below it).

use serde::{Deserialize, Serialize};

use crate::recording::{Counts, WindowRow};
use crate::util;
use crate::{EXIT_INCONCLUSIVE, EXIT_OK, EXIT_SLO_MISSED};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    /// The numbers cannot be trusted (generator dropped requests, or nothing was measured).
    Inconclusive,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dip {
    pub start_unix: i64,
    pub at: String,
    pub offset_s: f64,
    pub width_s: u32,
    pub availability: f64,
    pub sent: u64,
    pub bad: u64,
    pub timeout: u64,
    pub server_error: u64,
    pub connection: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub outcome: Outcome,
    pub slo: f64,
    pub availability: Option<f64>,
    pub reasons: Vec<String>,
    pub dips_1s: Vec<Dip>,
    pub dips_10s: Vec<Dip>,
    pub exit_code: u8,
}

pub fn dips(rows: &[WindowRow], slo: f64) -> Vec<Dip> {
    rows.iter()
        .filter_map(|r| {
            let a = r.availability?;
            (a < slo).then(|| Dip {
                start_unix: r.start_unix,
                at: util::rfc3339(r.start_unix * 1_000_000),
                offset_s: r.offset_s,
                width_s: r.width_s,
                availability: a,
                sent: r.counts.sent,
                bad: r.bad,
                timeout: r.counts.timeout,
                server_error: r.counts.server_error,
                connection: r.counts.connection,
            })
        })
        .collect()
}

pub fn judge(slo: f64, totals: &Counts, rows_1s: &[WindowRow], rows_10s: &[WindowRow]) -> Verdict {
    let availability = totals.availability();
    let mut reasons = Vec::new();
    let outcome = match availability {
        None => {
            reasons.push("no request was measured".to_string());
            Outcome::Inconclusive
        }
        Some(a) if a < slo => {
            reasons.push(format!(
                "availability {a:.6} < SLO {slo} ({} bad of {})",
                totals.bad(),
                totals.sent
            ));
            Outcome::Fail
        }
        Some(a) => {
            reasons.push(format!("availability {a:.6} >= SLO {slo}"));
            Outcome::Pass
        }
    };
    let outcome = if totals.dropped > 0 {
        reasons.push(format!(
            "the generator fell behind by more than the quota and dropped {} requests",
            totals.dropped
        ));
        // A failure stays a failure: dropped requests only hide more bad ones.
        if outcome == Outcome::Pass {
            Outcome::Inconclusive
        } else {
            outcome
        }
    } else {
        outcome
    };
    let exit_code = match outcome {
        Outcome::Pass => EXIT_OK,
        Outcome::Fail => EXIT_SLO_MISSED,
        Outcome::Inconclusive => EXIT_INCONCLUSIVE,
    };
    Verdict {
        outcome,
        slo,
        availability,
        reasons,
        dips_1s: dips(rows_1s, slo),
        dips_10s: dips(rows_10s, slo),
        exit_code,
    }
}
