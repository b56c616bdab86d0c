//! An open-model HTTP load generator that answers one question: did the
//! service keep its availability SLO against its request quota?
//!
//! # Implementation details
//!
//! * **Open model.** [`schedule::RatePolicy`] fixes every request's intended
//!   send time in advance (constant rate or linear ramps). One scheduler task
//!   ([`schedule::dispatch`]) hands requests to a bounded queue at those times
//!   and never waits for earlier answers.
//! * **Coordinated omission.** Latency is *response complete − intended send
//!   time*. A request waiting for a busy connection is waiting on the server,
//!   so that wait counts. Each request's deadline is intended time + quota;
//!   past it the client gives up (class `timeout`) and drops the connection.
//! * **Generator faults are not server faults.** The scheduler measures its own
//!   lag: requests dispatched later than `--lag-threshold` are counted as
//!   `late` (still sent, still measured from the intended time); requests it
//!   could only dispatch after their whole quota had passed are `dropped`, not
//!   sent and left out of availability, and the verdict becomes inconclusive.
//! * **One collector.** Workers (one per connection, see [`client`]) send every
//!   outcome over a bounded channel to [`collect`], which alone owns the
//!   HdrHistograms (1 µs..60 s, 3 significant figures) and the per-second
//!   windows keyed by absolute unix second of the intended time; 10 s windows,
//!   flip halves and run totals are sums of those, which is also how
//!   [`merge`] combines generators.
//! * **Printers apart from measurement.** [`report`] turns a finished
//!   [`summary::Summary`] into summary.json, windows.csv, histograms.json and a
//!   self-contained report.html.

pub mod cli;
pub mod client;
pub mod collect;
pub mod error;
pub mod flip;
pub mod http1;
pub mod merge;
pub mod model;
pub mod progress;
pub mod recording;
pub mod report;
pub mod run;
pub mod schedule;
pub mod summary;
pub mod trace;
pub mod util;
pub mod verdict;
pub mod verify;
pub mod workload;

pub use error::{Error, Result};

/// The SLO was met (and the generator kept up).
pub const EXIT_OK: u8 = 0;
/// The SLO was missed.
pub const EXIT_SLO_MISSED: u8 = 1;
/// Bad arguments or a failed setup (target unresolvable, unwritable output, ...).
pub const EXIT_USAGE: u8 = 2;
/// The SLO looked met but the generator fell behind and dropped requests, so
/// the measurement cannot be trusted.
pub const EXIT_INCONCLUSIVE: u8 = 3;
/// `--verify` found a violation: an acknowledged write lost, changed without an answer,
/// duplicated, or Redis disagreeing with MySQL after the repair wait.
pub const EXIT_VERIFY_FAILED: u8 = 4;
