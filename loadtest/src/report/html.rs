//! report.html: one self-contained page (inline CSS and SVG, the window data
//! embedded as JSON) that opens offline.
//!
//! Built with maud's `html!`: every spliced value is escaped unless wrapped in `PreEscaped`
//! (the CSS, the SVG charts from [`charts`], the JSON data).

use maud::{DOCTYPE, Markup, PreEscaped, html};

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

/// `v` with `digits` decimals, or a dash.
fn f(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

/// A status code, or `none` when there was no answer.
fn status(s: Option<u16>, none: &str) -> String {
    s.map_or(none.into(), |s| s.to_string())
}

fn latency_cells(l: &LatencyStats) -> Markup {
    html! {
        @for v in [l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms] {
            td { (f(v, 2)) }
        }
    }
}

fn trace_table(title: &str, recs: &[TraceRecord]) -> Markup {
    html! {
        h2 { (title) " (" (recs.len()) ")" }
        @if recs.is_empty() {
            p { "none" }
        } @else {
            table {
                tr {
                    th.l { "trace" } th { "latency ms" } th.l { "class" } th { "status" }
                    th.l { "request" } th.l { "intended at" }
                }
                @for r in recs {
                    tr {
                        td.l {
                            @if let Some(u) = &r.url {
                                a href=(u) { code { (r.trace_id) } }
                            } @else {
                                code { (r.trace_id) } " (not sampled/sent)"
                            }
                        }
                        td { (format!("{:.2}", r.latency_ms)) }
                        td.l { (format!("{:?}", r.class)) }
                        td { (status(r.status, "–")) }
                        td.l { (r.method) " " (r.path) }
                        td.l { (r.at) }
                    }
                }
            }
        }
    }
}

pub fn report_html(s: &Summary) -> String {
    let v = &s.verdict;
    let class = match v.outcome {
        Outcome::Pass => "pass",
        Outcome::Fail => "fail",
        Outcome::Inconclusive => "inconclusive",
    };
    let targets: Vec<&str> = s.runs.iter().map(|r| r.target.as_str()).collect();
    let t = &s.totals;
    let g = &s.generator;
    let mut svg = String::with_capacity(64 * 1024 + 200 * s.windows_1s.len());
    charts(s, &mut svg);
    // The data behind the charts, for anyone who wants to re-plot offline.
    let data = serde_json::json!({ "windows_1s": s.windows_1s, "windows_10s": s.windows_10s });

    let page = html! {
        (DOCTYPE)
        html {
            head {
                meta charset="utf-8";
                title { "loadtest report " (s.started_at) }
                style { (PreEscaped(CSS)) }
            }
            body {
                h1 { "loadtest report" }
                p {
                    (s.runs.len()) " generator run(s) against " code { (targets.join(", ")) }
                    ", started " (s.started_at) ", " (format!("{:.1}", s.duration_s))
                    " s. Quota " (s.quota_ms) " ms, SLO " (s.slo) "."
                }
                p.badge.(class) {
                    (class.to_uppercase()) ": availability " (f(v.availability, 6))
                    " vs SLO " (v.slo)
                }
                ul { @for r in &v.reasons { li { (r) } } }

                h2 { "Totals" }
                table {
                    tr {
                        th { "sent" } th { "good" } th { "bad" } th { "timeout" } th { "5xx" }
                        th { "connection" } th { "4xx (good)" } th { "availability" }
                        th { "p50 ms" } th { "p90" } th { "p99" } th { "p99.9" } th { "max" }
                    }
                    tr {
                        td { (t.counts.sent) } td { (t.counts.good) } td { (t.bad) }
                        td { (t.counts.timeout) } td { (t.counts.server_error) }
                        td { (t.counts.connection) } td { (t.counts.status_4xx) }
                        td { (f(t.availability, 6)) } (latency_cells(&t.latency))
                    }
                }
                h2 { "Generator" }
                table {
                    tr {
                        th { "target rate/s" } th { "achieved rate/s" } th { "ratio" }
                        th { "late" } th { "dropped" } th { "queue full (timeouts)" }
                        th { "max lag ms" }
                    }
                    tr {
                        td { (format!("{:.1}", g.target_rate)) }
                        td { (format!("{:.1}", g.achieved_rate)) }
                        td { (format!("{:.4}", g.achieved_ratio)) }
                        td { (g.late) } td { (g.dropped) } td { (g.queue_full) }
                        td { (f(g.max_lag_ms, 2)) }
                    }
                }

                @if let Some(fl) = &s.flip {
                    h2 {
                        "Flip to " code { (fl.to) } " at " (format!("{:.1}", fl.offset_s))
                        " s (" (fl.at) ")"
                    }
                    p {
                        "PUT /admin/cache: " (status(fl.status, "no answer"))
                        @if let Some(e) = &fl.error { " — " (e) }
                    }
                    table {
                        tr {
                            th.l { "half" } th { "seconds" } th { "sent" } th { "bad" }
                            th { "timeout" } th { "5xx" } th { "connection" }
                            th { "availability" } th { "p50 ms" } th { "p90" } th { "p99" }
                            th { "p99.9" } th { "max" }
                        }
                        @for (name, h) in [("before", &fl.before), ("after", &fl.after)] {
                            @if let Some(h) = h {
                                tr {
                                    td.l { (name) } td { (h.seconds) } td { (h.counts.sent) }
                                    td { (h.bad) } td { (h.counts.timeout) }
                                    td { (h.counts.server_error) } td { (h.counts.connection) }
                                    td { (f(h.availability, 6)) } (latency_cells(&h.latency))
                                }
                            }
                        }
                    }
                    @if let Some(c) = &fl.cache_before {
                        p { "Cache before the flip: " code { (c.to_string()) } }
                    }
                }

                h2 { "Charts" }
                (PreEscaped(svg))

                h2 {
                    "Dips (1 s windows below the SLO: " (v.dips_1s.len()) "; 10 s: "
                    (v.dips_10s.len()) ")"
                }
                @if !v.dips_1s.is_empty() {
                    table {
                        tr {
                            th.l { "window start" } th { "offset s" } th { "availability" }
                            th { "sent" } th { "bad" } th { "timeout" } th { "5xx" }
                            th { "connection" }
                        }
                        @for d in v.dips_1s.iter().chain(&v.dips_10s).take(200) {
                            tr {
                                td.l { (d.at) " (" (d.width_s) " s)" }
                                td { (format!("{:.0}", d.offset_s)) }
                                td { (format!("{:.6}", d.availability)) }
                                td { (d.sent) } td { (d.bad) } td { (d.timeout) }
                                td { (d.server_error) } td { (d.connection) }
                            }
                        }
                    }
                }

                (trace_table("Slowest requests", &s.traces.slowest))
                (trace_table("Failed requests", &s.traces.failed))

                h2 { "Runs" }
                table {
                    tr {
                        th.l { "target" } th.l { "scenario" } th.l { "rate policy" }
                        th { "connections" } th { "seed" } th { "achieved/s" } th { "late" }
                        th { "dropped" }
                    }
                    @for r in &s.runs {
                        tr {
                            td.l { (r.target) } td.l { (format!("{:?}", r.scenario)) }
                            td.l { (r.policy) } td { (r.connections) } td { (r.seed) }
                            td { (format!("{:.1}", r.achieved_rate)) }
                            td { (r.scheduler.late) } td { (r.scheduler.dropped) }
                        }
                    }
                }

                // JSON inside <script> is not HTML-escaped; "</" is what could end the element.
                script type="application/json" id="loadtest-data" {
                    (PreEscaped(data.to_string().replace("</", "<\\/")))
                }
            }
        }
    };
    let mut out = page.into_string();
    out.push('\n');
    out
}
