//! What `--verify` records during the run: every reserve and cancel, and what the service said
//! about it (or that nobody knows what happened to it).

use std::sync::Mutex;
use std::time::Duration;

use leaklab_contract::{ErrorBody, ErrorCode, ReservationAck};
use serde::{Deserialize, Serialize};

use crate::model::{Class, Op, OpKind};

/// A reservation's state as the service reports it.
pub use leaklab_contract::ReservationState;

/// Why a write's outcome is unknown: the service may or may not have applied it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unknown {
    /// No complete answer within the quota after the request was handed to a connection.
    Timeout,
    /// The connection failed after the request was handed to it.
    Connection,
    /// A 5xx other than `overloaded`: a quota cut (504) or a failed commit (503) can land after
    /// MySQL committed, as the service documents.
    ServerError,
}

/// How one write ended, as far as the client can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum WriteOutcome {
    /// A 2xx carrying the reservation as the service left it.
    Acked {
        status: u16,
        id: u64,
        state: ReservationState,
        version: u64,
    },
    /// A 2xx whose body is not a reservation: acknowledged, but not checkable.
    BadAck { status: u16 },
    /// Definitely not applied: a 4xx, or 503 `overloaded` (shed before the handler ran).
    Rejected { status: u16 },
    /// Sent, but no one knows whether it was applied.
    Unknown { reason: Unknown, status: u16 },
    /// Never reached a connection (queued past its deadline).
    NotSent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteRecord {
    pub kind: OpKind,
    pub activity: u32,
    pub user: u32,
    /// Intended send time, unix µs.
    pub intended_unix_us: i64,
    /// When the answer (or the give-up) came, unix µs.
    pub done_unix_us: i64,
    #[serde(flatten)]
    pub outcome: WriteOutcome,
}

/// Classify one write from the worker's view of it.
pub fn classify(class: Class, status: u16, sent: bool, body: &[u8]) -> WriteOutcome {
    if !sent {
        return WriteOutcome::NotSent;
    }
    match class {
        Class::Good if (200..300).contains(&status) => {
            match serde_json::from_slice::<ReservationAck>(body) {
                Ok(ReservationAck { id, state, version }) => WriteOutcome::Acked {
                    status,
                    id,
                    state,
                    version,
                },
                Err(_) => WriteOutcome::BadAck { status },
            }
        }
        Class::Good => WriteOutcome::Rejected { status },
        Class::ServerError => {
            let shed = serde_json::from_slice::<ErrorBody>(body)
                .is_ok_and(|e| e.error.code == ErrorCode::Overloaded);
            if shed {
                WriteOutcome::Rejected { status }
            } else {
                WriteOutcome::Unknown {
                    reason: Unknown::ServerError,
                    status,
                }
            }
        }
        Class::Timeout => WriteOutcome::Unknown {
            reason: Unknown::Timeout,
            status,
        },
        Class::Connection => WriteOutcome::Unknown {
            reason: Unknown::Connection,
            status,
        },
        Class::Dropped => WriteOutcome::NotSent,
    }
}

/// Shared by the workers; holds every write of the run.
#[derive(Debug)]
pub struct Recorder {
    start_unix_us: i64,
    records: Mutex<Vec<WriteRecord>>,
}

impl Recorder {
    /// `start_unix_us` is the unix time of the run's offset 0.
    pub fn new(start_unix_us: i64) -> Self {
        Recorder {
            start_unix_us,
            records: Mutex::new(Vec::new()),
        }
    }

    /// Record a write (see [`classify`]); pages are ignored.
    pub fn record(&self, op: Op, intended: Duration, done: Duration, outcome: WriteOutcome) {
        if op.kind == OpKind::Page {
            return;
        }
        let rec = WriteRecord {
            kind: op.kind,
            activity: op.activity,
            user: op.user,
            intended_unix_us: self.start_unix_us + intended.as_micros() as i64,
            done_unix_us: self.start_unix_us + done.as_micros() as i64,
            outcome,
        };
        self.records.lock().expect("recorder poisoned").push(rec);
    }

    pub fn take(&self) -> Vec<WriteRecord> {
        std::mem::take(&mut *self.records.lock().expect("recorder poisoned"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_carry_the_reservation() {
        let body = br#"{"id":7,"activity_id":1,"user_id":2,"state":"active","version":3,"created_at":"x","updated_at":"y"}"#;
        assert_eq!(
            classify(Class::Good, 201, true, body),
            WriteOutcome::Acked {
                status: 201,
                id: 7,
                state: ReservationState::Active,
                version: 3
            }
        );
        assert_eq!(
            classify(Class::Good, 200, true, b"not json"),
            WriteOutcome::BadAck { status: 200 }
        );
    }

    #[test]
    fn failures_split_into_rejected_unknown_and_not_sent() {
        let err = |code: &str| format!(r#"{{"error":{{"code":"{code}","message":"m"}}}}"#);
        assert_eq!(
            classify(Class::Good, 409, true, err("activity_full").as_bytes()),
            WriteOutcome::Rejected { status: 409 }
        );
        assert_eq!(
            classify(Class::ServerError, 503, true, err("overloaded").as_bytes()),
            WriteOutcome::Rejected { status: 503 }
        );
        assert_eq!(
            classify(
                Class::ServerError,
                503,
                true,
                err("dependency_unavailable").as_bytes()
            ),
            WriteOutcome::Unknown {
                reason: Unknown::ServerError,
                status: 503
            }
        );
        assert_eq!(
            classify(Class::Timeout, 0, true, b""),
            WriteOutcome::Unknown {
                reason: Unknown::Timeout,
                status: 0
            }
        );
        assert_eq!(
            classify(Class::Timeout, 0, false, b""),
            WriteOutcome::NotSent
        );
    }

    #[test]
    fn recorder_keeps_writes_only() {
        let r = Recorder::new(1_000_000);
        let op = |kind| Op {
            kind,
            activity: 1,
            user: 2,
        };
        let d = Duration::from_millis;
        let rejected = WriteOutcome::Rejected { status: 404 };
        r.record(op(OpKind::Page), d(1), d(2), rejected);
        r.record(op(OpKind::Cancel), d(1), d(2), rejected);
        let recs = r.take();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].intended_unix_us, 1_001_000);
        assert_eq!(recs[0].done_unix_us, 1_002_000);
        assert!(r.take().is_empty());
    }
}
