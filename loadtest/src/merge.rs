//! `loadtest merge`: several generators' outputs into one report. Histograms
//! are added per unix second, so windows line up by absolute time whatever
//! each generator's start.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::recording::Recording;
use crate::report::{HISTOGRAMS_FILE, SUMMARY_FILE, json};
use crate::summary::{self, Parts, Summary};

pub struct Merged {
    pub summary: Summary,
    pub recording: Recording,
}

/// Merge the run directories `dirs`; `slo` overrides the runs' SLO.
pub fn merge(dirs: &[PathBuf], slo: Option<f64>) -> Result<Merged> {
    if dirs.is_empty() {
        return Err(Error::Usage(
            "merge needs at least one run directory".into(),
        ));
    }
    let mut rec = Recording::default();
    let mut parts: Option<Parts> = None;
    let mut keep_slowest = 0;
    for dir in dirs {
        let s = json::read_summary(&dir.join(SUMMARY_FILE))?;
        rec.merge(&json::read_recording(&dir.join(HISTOGRAMS_FILE))?)?;
        keep_slowest = keep_slowest.max(s.traces.slowest.len());
        match &mut parts {
            None => {
                parts = Some(Parts {
                    runs: s.runs,
                    quota_ms: s.quota_ms,
                    slo: slo.unwrap_or(s.slo),
                    jaeger_url: s.traces.jaeger_url,
                    slowest: s.traces.slowest,
                    failed: s.traces.failed,
                    flip: s.flip,
                })
            }
            Some(p) => {
                if (p.quota_ms - s.quota_ms).abs() > 1e-9 {
                    // "Good" means "within the quota": different quotas cannot be added.
                    return Err(Error::Merge(format!(
                        "{}: quota {} ms differs from {} ms",
                        dir.display(),
                        s.quota_ms,
                        p.quota_ms
                    )));
                }
                p.runs.extend(s.runs);
                p.slowest.extend(s.traces.slowest);
                p.failed.extend(s.traces.failed);
                if p.flip.is_none() {
                    p.flip = s.flip;
                }
            }
        }
    }
    let mut p = parts.expect("at least one directory");
    p.slowest
        .sort_by(|a, b| b.latency_ms.total_cmp(&a.latency_ms));
    p.slowest.truncate(keep_slowest);
    p.failed.sort_by_key(|r| r.at_unix_us);
    // Links are rebuilt from the (possibly different) jaeger url of the first run.
    for r in p.slowest.iter_mut().chain(p.failed.iter_mut()) {
        r.url = None;
    }
    let summary = summary::build(&rec, p)?;
    Ok(Merged {
        summary,
        recording: rec,
    })
}
