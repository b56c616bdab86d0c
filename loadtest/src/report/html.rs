//! report.html: one self-contained page (inline CSS and SVG, the window data
//! embedded as JSON) that opens offline.

use std::fmt::Write;

use super::svg::{self, Axis, Marks, NINES_CAP, Scale, Series};
use crate::recording::{LatencyStats, WindowRow};
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

fn ms_ticks(lo: f64, hi: f64) -> Vec<(f64, String)> {
    let mut t = Vec::new();
    let mut v = lo;
    while v <= hi * 1.0001 {
        t.push((
            v,
            if v < 1.0 {
                format!("{v}ms")
            } else {
                format!("{v:.0}ms")
            },
        ));
        v *= 10.0;
    }
    t
}

fn charts(s: &Summary, out: &mut String) {
    let rows: &[WindowRow] = &s.windows_1s;
    let xmax = rows
        .last()
        .map_or(1.0, |r| r.offset_s + 1.0)
        .max(s.duration_s);
    let xmin = rows.first().map_or(0.0, |r| r.offset_s).min(0.0);
    let marks = || Marks {
        bands: s
            .verdict
            .dips_1s
            .iter()
            .map(|d| (d.offset_s, d.offset_s + d.width_s as f64))
            .collect(),
        vlines: s
            .flip
            .iter()
            .map(|fl| (fl.offset_s, format!("flip → {}", fl.to)))
            .collect(),
        hlines: Vec::new(),
    };
    // Lines put each 1 s window's value at its middle; bars span the window.
    let series = |get: &dyn Fn(&WindowRow) -> Option<f64>| -> Vec<(f64, Option<f64>)> {
        rows.iter().map(|r| (r.offset_s + 0.5, get(r))).collect()
    };

    let mut m = marks();
    m.hlines.push((s.slo, format!("SLO {}", s.slo)));
    let nines = [
        (0.0, "0"),
        (0.9, "0.9"),
        (0.99, "0.99"),
        (0.999, "0.999"),
        (0.9999, "0.9999"),
        (1.0, "1"),
    ];
    let avail = svg::line_chart(
        "chart-availability",
        &Axis {
            title: "Availability per 1 s window (nines scale; red: below SLO)".into(),
            x_range: (xmin, xmax),
            y_range: (0.0, 1.0 - 10f64.powf(-NINES_CAP)),
            scale: Scale::Nines,
            y_ticks: nines.iter().map(|(v, l)| (*v, l.to_string())).collect(),
            y_label: "availability".into(),
        },
        &[Series {
            name: "availability",
            color: "#2a7",
            points: series(&|r| r.availability),
        }],
        &m,
    );

    let lo = rows
        .iter()
        .filter_map(|r| r.latency.p50_ms)
        .fold(f64::INFINITY, f64::min)
        .min(s.quota_ms);
    let hi = rows
        .iter()
        .filter_map(|r| r.latency.max_ms)
        .fold(s.quota_ms, f64::max);
    let lo = if lo.is_finite() {
        10f64.powf(lo.max(0.001).log10().floor())
    } else {
        0.1
    };
    let hi = 10f64.powf(hi.log10().ceil());
    let mut m = marks();
    m.hlines
        .push((s.quota_ms, format!("quota {} ms", s.quota_ms)));
    let lat = svg::line_chart(
        "chart-latency",
        &Axis {
            title: "Latency from intended send time, per 1 s window".into(),
            x_range: (xmin, xmax),
            y_range: (lo, hi),
            scale: Scale::Log10,
            y_ticks: ms_ticks(lo, hi),
            y_label: "ms (log)".into(),
        },
        &[
            Series {
                name: "p50",
                color: "#2a7",
                points: series(&|r| r.latency.p50_ms),
            },
            Series {
                name: "p90",
                color: "#27a",
                points: series(&|r| r.latency.p90_ms),
            },
            Series {
                name: "p99",
                color: "#a72",
                points: series(&|r| r.latency.p99_ms),
            },
            Series {
                name: "p99.9",
                color: "#a27",
                points: series(&|r| r.latency.p999_ms),
            },
            Series {
                name: "max",
                color: "#888",
                points: series(&|r| r.latency.max_ms),
            },
        ],
        &m,
    );

    let peak = rows
        .iter()
        .map(|r| (r.bad + r.counts.dropped) as f64)
        .fold(1.0, f64::max);
    let xs: Vec<f64> = rows.iter().map(|r| r.offset_s).collect();
    let count = |get: &dyn Fn(&WindowRow) -> u64| -> Vec<(f64, Option<f64>)> {
        rows.iter()
            .map(|r| (r.offset_s, Some(get(r) as f64)))
            .collect()
    };
    let bad = svg::stacked_bars(
        "chart-bad",
        &Axis {
            title: "Bad requests per 1 s window, by class".into(),
            x_range: (xmin, xmax),
            y_range: (0.0, peak * 1.1),
            scale: Scale::Linear,
            y_ticks: (0..=4)
                .map(|i| {
                    (
                        peak * i as f64 / 4.0,
                        format!("{:.0}", peak * i as f64 / 4.0),
                    )
                })
                .collect(),
            y_label: "requests".into(),
        },
        &xs,
        1.0,
        &[
            Series {
                name: "timeout",
                color: "#e80",
                points: count(&|r| r.counts.timeout),
            },
            Series {
                name: "5xx",
                color: "#c22",
                points: count(&|r| r.counts.server_error),
            },
            Series {
                name: "connection",
                color: "#737",
                points: count(&|r| r.counts.connection),
            },
            Series {
                name: "dropped (generator)",
                color: "#999",
                points: count(&|r| r.counts.dropped),
            },
        ],
        &marks(),
    );
    let peak_rate = rows
        .iter()
        .map(|r| (r.counts.sent + r.counts.dropped) as f64)
        .fold(s.generator.target_rate, f64::max)
        .max(1.0);
    let rate = svg::line_chart(
        "chart-rate",
        &Axis {
            title: "Requests per 1 s window (by intended send time)".into(),
            x_range: (xmin, xmax),
            y_range: (0.0, peak_rate * 1.1),
            scale: Scale::Linear,
            y_ticks: (0..=4)
                .map(|i| {
                    (
                        peak_rate * i as f64 / 4.0,
                        format!("{:.0}", peak_rate * i as f64 / 4.0),
                    )
                })
                .collect(),
            y_label: "requests/s".into(),
        },
        &[
            Series {
                name: "sent",
                color: "#27a",
                points: series(&|r| Some(r.counts.sent as f64)),
            },
            Series {
                name: "good",
                color: "#2a7",
                points: series(&|r| Some(r.counts.good as f64)),
            },
        ],
        &marks(),
    );
    for c in [avail, lat, bad, rate] {
        out.push_str(&c);
        out.push('\n');
    }
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
