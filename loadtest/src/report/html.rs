//! report.html: one self-contained page (inline CSS and SVG, the window data
//! embedded as JSON) that opens offline.

use std::fmt::Write;

use super::charts::charts;
use crate::recording::LatencyStats;
use crate::summary::Summary;
use crate::trace::TraceRecord;
use crate::verdict::Outcome;

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;max-width:1100px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}.pass{color:#080}.fail{color:#c00}.inconclusive{color:#b60}
.badge{font-weight:bold;font-size:20px}svg text{font:11px sans-serif;fill:#333}svg .t{font-size:13px;font-weight:bold}
svg .yt{text-anchor:end}svg .xt{text-anchor:middle}svg .ref{text-anchor:end;fill:#c00}svg .flip+text{fill:#06c;text-anchor:start}
code{font-size:12px}";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn f(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

fn latency_cells(l: &LatencyStats) -> String {
    [l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms]
        .iter()
        .map(|v| format!("<td>{}</td>", f(*v, 2)))
        .collect()
}

fn trace_table(title: &str, recs: &[TraceRecord], out: &mut String) {
    let _ = write!(out, "<h2>{title} ({})</h2>", recs.len());
    if recs.is_empty() {
        out.push_str("<p>none</p>");
        return;
    }
    out.push_str("<table><tr><th class=l>trace</th><th>latency ms</th><th class=l>class</th><th>status</th><th class=l>request</th><th class=l>intended at</th></tr>");
    for r in recs {
        let id = match &r.url {
            Some(u) => format!("<a href=\"{}\"><code>{}</code></a>", esc(u), r.trace_id),
            None => format!("<code>{}</code> (not sampled/sent)", r.trace_id),
        };
        let _ = write!(
            out,
            "<tr><td class=l>{id}</td><td>{:.2}</td><td class=l>{:?}</td><td>{}</td><td class=l>{} {}</td><td class=l>{}</td></tr>",
            r.latency_ms,
            r.class,
            r.status.map_or("–".into(), |s| s.to_string()),
            r.method,
            esc(&r.path),
            r.at
        );
    }
    out.push_str("</table>");
}

pub fn report_html(s: &Summary) -> String {
    let mut o = String::with_capacity(64 * 1024 + 200 * s.windows_1s.len());
    let v = &s.verdict;
    let class = match v.outcome {
        Outcome::Pass => "pass",
        Outcome::Fail => "fail",
        Outcome::Inconclusive => "inconclusive",
    };
    let _ = write!(
        o,
        "<!doctype html><html><head><meta charset=utf-8><title>loadtest report {}</title><style>{CSS}</style></head><body>",
        s.started_at
    );
    let targets: Vec<&str> = s.runs.iter().map(|r| r.target.as_str()).collect();
    let _ = write!(
        o,
        "<h1>loadtest report</h1><p>{} generator run(s) against <code>{}</code>, started {}, {:.1} s. Quota {} ms, SLO {}.</p>",
        s.runs.len(),
        esc(&targets.join(", ")),
        s.started_at,
        s.duration_s,
        s.quota_ms,
        s.slo
    );
    let _ = write!(
        o,
        "<p class=\"badge {class}\">{}: availability {} vs SLO {}</p><ul>",
        class.to_uppercase(),
        f(v.availability, 6),
        v.slo
    );
    for r in &v.reasons {
        let _ = write!(o, "<li>{}</li>", esc(r));
    }
    o.push_str("</ul>");

    let t = &s.totals;
    let _ = write!(
        o,
        "<h2>Totals</h2><table><tr><th>sent</th><th>good</th><th>bad</th><th>timeout</th><th>5xx</th><th>connection</th><th>4xx (good)</th><th>availability</th><th>p50 ms</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr><tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}</tr></table>",
        t.counts.sent,
        t.counts.good,
        t.bad,
        t.counts.timeout,
        t.counts.server_error,
        t.counts.connection,
        t.counts.status_4xx,
        f(t.availability, 6),
        latency_cells(&t.latency)
    );
    let g = &s.generator;
    let _ = write!(
        o,
        "<h2>Generator</h2><table><tr><th>target rate/s</th><th>achieved rate/s</th><th>ratio</th><th>late</th><th>dropped</th><th>queue full (timeouts)</th><th>max lag ms</th></tr><tr><td>{:.1}</td><td>{:.1}</td><td>{:.4}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        g.target_rate,
        g.achieved_rate,
        g.achieved_ratio,
        g.late,
        g.dropped,
        g.queue_full,
        f(g.max_lag_ms, 2)
    );

    if let Some(fl) = &s.flip {
        let _ = write!(
            o,
            "<h2>Flip to <code>{}</code> at {:.1} s ({})</h2><p>PUT /admin/cache: {}{}</p>",
            esc(&fl.to),
            fl.offset_s,
            fl.at,
            fl.status.map_or("no answer".into(), |s| s.to_string()),
            fl.error
                .as_deref()
                .map_or(String::new(), |e| format!(" — {}", esc(e)))
        );
        o.push_str("<table><tr><th class=l>half</th><th>seconds</th><th>sent</th><th>bad</th><th>timeout</th><th>5xx</th><th>connection</th><th>availability</th><th>p50 ms</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>");
        for (name, h) in [("before", &fl.before), ("after", &fl.after)] {
            if let Some(h) = h {
                let _ = write!(
                    o,
                    "<tr><td class=l>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}</tr>",
                    h.seconds,
                    h.counts.sent,
                    h.bad,
                    h.counts.timeout,
                    h.counts.server_error,
                    h.counts.connection,
                    f(h.availability, 6),
                    latency_cells(&h.latency)
                );
            }
        }
        o.push_str("</table>");
        if let Some(c) = &fl.cache_before {
            let _ = write!(
                o,
                "<p>Cache before the flip: <code>{}</code></p>",
                esc(&c.to_string())
            );
        }
    }

    o.push_str("<h2>Charts</h2>");
    charts(s, &mut o);

    let _ = write!(
        o,
        "<h2>Dips (1 s windows below the SLO: {}; 10 s: {})</h2>",
        v.dips_1s.len(),
        v.dips_10s.len()
    );
    if !v.dips_1s.is_empty() {
        o.push_str("<table><tr><th class=l>window start</th><th>offset s</th><th>availability</th><th>sent</th><th>bad</th><th>timeout</th><th>5xx</th><th>connection</th></tr>");
        for d in v.dips_1s.iter().chain(&v.dips_10s).take(200) {
            let _ = write!(
                o,
                "<tr><td class=l>{} ({} s)</td><td>{:.0}</td><td>{:.6}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                d.at,
                d.width_s,
                d.offset_s,
                d.availability,
                d.sent,
                d.bad,
                d.timeout,
                d.server_error,
                d.connection
            );
        }
        o.push_str("</table>");
    }

    trace_table("Slowest requests", &s.traces.slowest, &mut o);
    trace_table("Failed requests", &s.traces.failed, &mut o);

    o.push_str("<h2>Runs</h2><table><tr><th class=l>target</th><th class=l>scenario</th><th class=l>rate policy</th><th>connections</th><th>seed</th><th>achieved/s</th><th>late</th><th>dropped</th></tr>");
    for r in &s.runs {
        let _ = write!(
            o,
            "<tr><td class=l>{}</td><td class=l>{:?}</td><td class=l>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.target),
            r.scenario,
            esc(&r.policy),
            r.connections,
            r.seed,
            r.achieved_rate,
            r.scheduler.late,
            r.scheduler.dropped
        );
    }
    o.push_str("</table>");

    // The data behind the charts, for anyone who wants to re-plot offline.
    let data = serde_json::json!({ "windows_1s": s.windows_1s, "windows_10s": s.windows_10s });
    let _ = writeln!(
        o,
        "<script type=\"application/json\" id=\"loadtest-data\">{}</script></body></html>",
        data.to_string().replace("</", "<\\/")
    );
    o
}
