//! The report's four charts, drawn from the 1 s windows: availability against
//! the SLO, latency percentiles against the quota, bad requests by class, and
//! the request rate; dips shaded and the flip marked on each.

use super::svg::{self, Axis, Marks, NINES_CAP, Scale, Series};
use crate::recording::WindowRow;
use crate::summary::Summary;

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

pub(super) fn charts(s: &Summary, out: &mut String) {
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
