//! W3C trace context for each request, and the trace ids the report links to.

use serde::{Deserialize, Serialize};

use crate::model::{Class, Outcome};
use crate::util;

/// Trace id carried by a `traceparent` (version-traceid-spanid-flags) or a bare
/// 32-hex-digit `x-trace-id`.
pub fn parse_trace_id(value: &[u8]) -> Option<u128> {
    let s = std::str::from_utf8(value).ok()?.trim();
    let hex = match s.split('-').collect::<Vec<_>>().as_slice() {
        [_, id, _, _] => *id,
        [id] => *id,
        _ => return None,
    };
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(hex, 16).ok().filter(|&id| id != 0)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TraceRecord {
    pub trace_id: String,
    pub sampled: bool,
    /// Intended send time (RFC 3339) and the same as unix microseconds.
    pub at: String,
    pub at_unix_us: i64,
    pub latency_ms: f64,
    pub class: Class,
    pub status: Option<u16>,
    pub method: String,
    pub path: String,
    /// `<jaeger-url>/trace/<id>`, set when the request was sent and sampled.
    #[serde(default)]
    pub url: Option<String>,
}

impl TraceRecord {
    pub fn from_outcome(o: &Outcome, start_unix_us: i64) -> Self {
        let at_unix_us = start_unix_us + util::duration_us(o.intended) as i64;
        TraceRecord {
            trace_id: format!("{:032x}", o.trace.trace_id),
            sampled: o.trace.sampled,
            at: util::rfc3339(at_unix_us),
            at_unix_us,
            latency_ms: o.latency.as_secs_f64() * 1e3,
            class: o.class,
            status: (o.status != 0).then_some(o.status),
            method: o.op.kind.method().to_string(),
            path: o.op.path(),
            url: None,
        }
    }
}

/// Keeps the slowest requests and the first failures of each class, in
/// bounded memory whatever the run length.
#[derive(Debug, Clone)]
pub struct TraceKeeper {
    keep_slowest: usize,
    keep_failed: usize,
    slowest: Vec<TraceRecord>,
    /// Below this latency a request cannot enter `slowest` any more; lets the
    /// collector reject almost every request with one comparison.
    threshold_ms: f64,
    failed: Vec<TraceRecord>,
    failed_seen: [usize; 3],
}

impl TraceKeeper {
    pub fn new(keep_slowest: usize, keep_failed: usize) -> Self {
        TraceKeeper {
            keep_slowest,
            keep_failed,
            slowest: Vec::new(),
            threshold_ms: f64::NEG_INFINITY,
            failed: Vec::new(),
            failed_seen: [0; 3],
        }
    }

    pub fn consider(&mut self, o: &Outcome, start_unix_us: i64) {
        if o.class == Class::Dropped {
            return;
        }
        let fail_slot = match o.class {
            Class::Timeout => Some(0),
            Class::ServerError => Some(1),
            Class::Connection => Some(2),
            _ => None,
        };
        if let Some(i) = fail_slot
            && self.failed_seen[i] < self.keep_failed
        {
            self.failed_seen[i] += 1;
            self.failed
                .push(TraceRecord::from_outcome(o, start_unix_us));
        }
        let ms = o.latency.as_secs_f64() * 1e3;
        if self.keep_slowest == 0 || o.class == Class::Connection || ms <= self.threshold_ms {
            return;
        }
        self.slowest
            .push(TraceRecord::from_outcome(o, start_unix_us));
        if self.slowest.len() >= 2 * self.keep_slowest {
            self.trim();
        }
    }

    fn trim(&mut self) {
        self.slowest
            .sort_by(|a, b| b.latency_ms.total_cmp(&a.latency_ms));
        self.slowest.truncate(self.keep_slowest);
        if self.slowest.len() == self.keep_slowest {
            self.threshold_ms = self
                .slowest
                .last()
                .map_or(f64::NEG_INFINITY, |r| r.latency_ms);
        }
    }

    pub fn finish(mut self) -> (Vec<TraceRecord>, Vec<TraceRecord>) {
        self.trim();
        self.failed.sort_by_key(|r| r.at_unix_us);
        (self.slowest, self.failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TraceCtx;

    #[test]
    fn traceparent_round_trips() {
        let t = TraceCtx {
            trace_id: 0xabc,
            span_id: 7,
            sampled: true,
        };
        let tp = t.traceparent();
        assert_eq!(
            tp,
            "00-00000000000000000000000000000abc-0000000000000007-01"
        );
        assert_eq!(parse_trace_id(tp.as_bytes()), Some(0xabc));
        assert_eq!(
            parse_trace_id(b"4bf92f3577b34da6a3ce929d0e0e4736"),
            Some(0x4bf92f3577b34da6a3ce929d0e0e4736)
        );
        assert_eq!(parse_trace_id(b"garbage"), None);
    }
}
