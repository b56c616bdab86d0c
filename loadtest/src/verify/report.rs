//! The verify section of the report: [`VerifyReport`] (summary.json), how it folds into the
//! verdict ([`apply`]) and the console text ([`text`]).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::verdict::Verdict;
use crate::{EXIT_INCONCLUSIVE, EXIT_OK, EXIT_VERIFY_FAILED};

use super::check::{Finding, Severity};
use super::record::{Unknown, WriteOutcome, WriteRecord};

/// Examples kept in the report, per severity.
const EXAMPLES: usize = 20;

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
    pub(super) fn counts(records: &[WriteRecord]) -> Self {
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
    pub(super) fn set_findings(&mut self, findings: Vec<Finding>) {
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
