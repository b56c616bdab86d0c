//! The end-of-run console summary (stdout).

use std::fmt::Write;

use crate::summary::Summary;

fn f(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// How many dips and trace links the console lists; the files have them all.
const SHOW: usize = 10;

pub fn summary_text(s: &Summary) -> String {
    let mut o = String::new();
    let v = &s.verdict;
    let t = &s.totals;
    let l = &t.latency;
    let _ = writeln!(
        o,
        "verdict: {:?} (availability {} vs SLO {}, quota {} ms)",
        v.outcome,
        f(v.availability, 6),
        v.slo,
        s.quota_ms
    );
    for r in &v.reasons {
        let _ = writeln!(o, "  - {r}");
    }
    let _ = writeln!(
        o,
        "requests: sent {} good {} bad {} (timeout {}, 5xx {} [503 {}, 504 {}], connection {}), 4xx {}",
        t.counts.sent,
        t.counts.good,
        t.bad,
        t.counts.timeout,
        t.counts.server_error,
        t.counts.status_503,
        t.counts.status_504,
        t.counts.connection,
        t.counts.status_4xx
    );
    let _ = writeln!(
        o,
        "latency ms (from intended send time): p50 {} p90 {} p99 {} p99.9 {} max {}",
        f(l.p50_ms, 2),
        f(l.p90_ms, 2),
        f(l.p99_ms, 2),
        f(l.p999_ms, 2),
        f(l.max_ms, 2)
    );
    let g = &s.generator;
    let _ = writeln!(
        o,
        "generator: target {:.1}/s achieved {:.1}/s ({:.2} %), late {} dropped {} queue-full {} max lag {} ms",
        g.target_rate,
        g.achieved_rate,
        g.achieved_ratio * 100.0,
        g.late,
        g.dropped,
        g.queue_full,
        f(g.max_lag_ms, 2)
    );
    let _ = writeln!(
        o,
        "dips: {} of 1 s windows, {} of 10 s windows",
        v.dips_1s.len(),
        v.dips_10s.len()
    );
    for d in v.dips_1s.iter().take(SHOW) {
        let _ = writeln!(
            o,
            "  {} ({:+.1}s) availability {:.4} bad {}/{}",
            d.at, d.offset_s, d.availability, d.bad, d.sent
        );
    }
    if v.dips_1s.len() > SHOW {
        let _ = writeln!(o, "  ... {} more in summary.json", v.dips_1s.len() - SHOW);
    }
    if let Some(fl) = &s.flip {
        let _ = writeln!(
            o,
            "flip to {:?} at +{:.1}s: {}",
            fl.to,
            fl.offset_s,
            fl.error
                .clone()
                .unwrap_or_else(|| format!("ok ({})", fl.status.unwrap_or(0)))
        );
        for (name, h) in [("before", &fl.before), ("after", &fl.after)] {
            if let Some(h) = h {
                let _ = writeln!(
                    o,
                    "  {name:<6} availability {} bad {} p99 {} ms",
                    f(h.availability, 6),
                    h.bad,
                    f(h.latency.p99_ms, 2)
                );
            }
        }
    }
    if let Some(v) = &s.verify {
        o.push_str(&crate::verify::text(v));
    }
    for (name, list) in [("slowest", &s.traces.slowest), ("failed", &s.traces.failed)] {
        for r in list.iter().filter(|r| r.url.is_some()).take(SHOW.min(5)) {
            let _ = writeln!(
                o,
                "trace ({name}): {:.1} ms {:?} {} {}",
                r.latency_ms,
                r.class,
                r.path,
                r.url.as_deref().unwrap_or_default()
            );
        }
    }
    o
}
