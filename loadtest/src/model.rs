//! The data model shared by the request path, the collector and `--verify`: what a request
//! asks for ([`Op`]), how it is traced ([`TraceCtx`]), how it is scheduled ([`Job`]) and how it
//! ended ([`Class`], [`Outcome`]).
//!
//! It depends on nothing else in the crate: the layers above it (the workers in `client.rs`, the
//! HTTP/1.1 path in `http1.rs`, trace links in `trace.rs`, `--verify`'s `verify/record.rs`) use
//! it without depending on each other, and it names none of them, not even in a doc link, so
//! the dependencies point one way.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    Page,
    Reserve,
    Cancel,
}

impl OpKind {
    pub fn method(self) -> &'static str {
        match self {
            OpKind::Page => "GET",
            OpKind::Reserve => "PUT",
            OpKind::Cancel => "DELETE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    pub kind: OpKind,
    pub activity: u32,
    pub user: u32,
}

impl Op {
    /// Path and query relative to the target's base path.
    pub fn path(&self) -> String {
        let mut out = Vec::with_capacity(48);
        let _ = self.write_path(&mut out);
        String::from_utf8(out).expect("ASCII by construction")
    }

    /// Same as [`Op::path`], into a reused buffer (the per-request path).
    pub fn write_path(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        match self.kind {
            OpKind::Page => write!(
                out,
                "/v1/activities/{}/page?user_id={}",
                self.activity, self.user
            ),
            OpKind::Reserve | OpKind::Cancel => {
                write!(
                    out,
                    "/v1/activities/{}/reservations/{}",
                    self.activity, self.user
                )
            }
        }
    }
}

/// A trace id with its sampled flag. Ids come from an entropy-seeded RNG, not
/// from `--seed`: two runs with the same workload must not reuse trace ids in
/// the same Jaeger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceCtx {
    pub trace_id: u128,
    pub span_id: u64,
    pub sampled: bool,
}

impl TraceCtx {
    pub fn random<R: Rng>(rng: &mut R, sample: f64) -> Self {
        TraceCtx {
            // All-zero ids are invalid in W3C trace context.
            trace_id: rng.random::<u128>() | 1,
            span_id: rng.random::<u64>() | 1,
            sampled: sample >= 1.0 || rng.random::<f64>() < sample,
        }
    }

    pub fn traceparent(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.sampled as u8
        )
    }
}

/// How a request ended, per the incident's service level definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Any non-5xx answer (4xx included) complete within the quota.
    Good,
    /// No complete answer within the quota (including never getting a connection).
    Timeout,
    /// A 5xx answer within the quota.
    ServerError,
    /// Connect failure, reset, or malformed response.
    Connection,
    /// Never sent because the generator itself fell behind by more than the
    /// quota; excluded from availability and reported as a generator fault.
    Dropped,
}

#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Intended send time as an offset from the run start.
    pub intended: Duration,
    /// Response-complete (or give-up) time minus intended send time.
    pub latency: Duration,
    /// When a connection actually took the request; `None` if it never did.
    pub sent_at: Option<Duration>,
    pub class: Class,
    /// HTTP status, 0 when there was no answer.
    pub status: u16,
    /// The scheduler dispatched it later than `--lag-threshold`.
    pub late: bool,
    pub op: Op,
    pub trace: TraceCtx,
}

/// A scheduled request on its way to a worker.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    pub intended: Instant,
    pub op: Op,
    pub late: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_the_service_contract() {
        let op = Op {
            kind: OpKind::Page,
            activity: 3,
            user: 9,
        };
        assert_eq!(op.path(), "/v1/activities/3/page?user_id=9");
        let op = Op {
            kind: OpKind::Cancel,
            activity: 3,
            user: 9,
        };
        assert_eq!(op.path(), "/v1/activities/3/reservations/9");
        assert_eq!(op.kind.method(), "DELETE");
    }

    #[test]
    fn sampling_ratio_is_respected() {
        let mut rng = rand::rng();
        let n = (0..10_000)
            .filter(|_| TraceCtx::random(&mut rng, 0.1).sampled)
            .count();
        assert!((700..1300).contains(&n), "{n}");
        assert!((0..100).all(|_| !TraceCtx::random(&mut rng, 0.0).sampled));
    }
}
