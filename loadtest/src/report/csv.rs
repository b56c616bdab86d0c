//! windows.csv: one row per 1 s window, then one per 10 s window (column
//! `width_s` tells them apart). Empty cells where a window had no request.

use std::fmt::Write;

use crate::recording::WindowRow;
use crate::summary::Summary;

pub const HEADER: &str = "width_s,start_unix,offset_s,sent,good,bad,timeout,server_error,connection,status_4xx,unsent,late,dropped,availability,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,status_503,status_504";

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or(String::new(), |v| format!("{v:.digits$}"))
}

pub fn row(r: &WindowRow) -> String {
    let c = &r.counts;
    let l = &r.latency;
    format!(
        "{},{},{:.3},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
        r.width_s,
        r.start_unix,
        r.offset_s,
        c.sent,
        c.good,
        r.bad,
        c.timeout,
        c.server_error,
        c.connection,
        c.status_4xx,
        c.unsent,
        c.late,
        c.dropped,
        opt(r.availability, 6),
        opt(l.p50_ms, 3),
        opt(l.p90_ms, 3),
        opt(l.p99_ms, 3),
        opt(l.p999_ms, 3),
        opt(l.max_ms, 3),
        c.status_503,
        c.status_504,
    )
}

pub fn windows_csv(s: &Summary) -> String {
    let mut out = String::with_capacity(64 * (s.windows_1s.len() + s.windows_10s.len() + 1));
    out.push_str(HEADER);
    out.push('\n');
    for r in s.windows_1s.iter().chain(&s.windows_10s) {
        let _ = writeln!(out, "{}", row(r));
    }
    out
}
