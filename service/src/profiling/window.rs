//! Latencies of the requests served since the anomaly profiler last looked, and the trace ids of
//! the slowest of them — what a profile dump needs to point at the requests that suffered.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

const SLOWEST_KEPT: usize = 10;

pub struct LatencyWindow {
    inner: Mutex<Window>,
}

struct Window {
    histogram: Histogram<u64>,
    /// (latency µs, trace id), the slowest first; short, so a linear insert is fine.
    slowest: Vec<(u64, String)>,
}

/// What one window saw.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WindowSummary {
    pub requests: u64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub slowest_trace_ids: Vec<String>,
}

impl Default for LatencyWindow {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Window::new()),
        }
    }
}

impl Window {
    fn new() -> Self {
        Self {
            histogram: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            slowest: Vec::with_capacity(SLOWEST_KEPT + 1),
        }
    }
}

impl LatencyWindow {
    /// `trace_id` is asked only for a request slow enough to be kept: reading it from a header
    /// on every request would cost more than the rest of the record.
    pub fn record<'a>(&self, latency: Duration, trace_id: impl FnOnce() -> Option<&'a str>) {
        let micros = (latency.as_micros() as u64).clamp(1, 60_000_000);
        let mut w = self.inner.lock().expect("latency window poisoned");
        w.histogram.saturating_record(micros);
        if w.slowest.len() < SLOWEST_KEPT || w.slowest.last().is_some_and(|(l, _)| *l < micros) {
            let Some(trace_id) = trace_id() else { return };
            let at = w.slowest.partition_point(|(l, _)| *l >= micros);
            w.slowest.insert(at, (micros, trace_id.to_owned()));
            w.slowest.truncate(SLOWEST_KEPT);
        }
    }

    /// Returns what was seen since the last call and starts a new window.
    pub fn take(&self) -> WindowSummary {
        let w = std::mem::replace(
            &mut *self.inner.lock().expect("latency window poisoned"),
            Window::new(),
        );
        WindowSummary {
            requests: w.histogram.len(),
            p99_ms: w.histogram.value_at_quantile(0.99) as f64 / 1000.0,
            max_ms: w.histogram.max() as f64 / 1000.0,
            slowest_trace_ids: w.slowest.into_iter().map(|(_, id)| id).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_slowest_trace_ids_in_order() {
        let w = LatencyWindow::default();
        for ms in 1..=30u64 {
            let id = format!("t{ms}");
            w.record(Duration::from_millis(ms), || Some(&id));
        }
        let s = w.take();
        assert_eq!(s.requests, 30);
        assert_eq!(s.slowest_trace_ids.len(), SLOWEST_KEPT);
        assert_eq!(s.slowest_trace_ids[0], "t30");
        assert_eq!(s.slowest_trace_ids[9], "t21");
        assert!((s.max_ms - 30.0).abs() < 0.1);
        assert_eq!(w.take().requests, 0, "a new window starts empty");

        // A request without a trace id is counted, and keeps no place among the slowest.
        w.record(Duration::from_millis(5), || None);
        w.record(Duration::from_millis(2), || Some("t2"));
        let s = w.take();
        assert_eq!(s.requests, 2);
        assert_eq!(s.slowest_trace_ids, ["t2"]);
    }
}
