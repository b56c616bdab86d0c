//! Time source for expiry, so tests and the simulator can move time without sleeping.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where the LFU reads "now" (gcache has the same seam: `baseCache.clock`).
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Instant;
}

/// Wall-clock time (`Instant::now`).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to; shared through an `Arc`.
#[derive(Debug)]
pub struct ManualClock {
    base: Instant,
    offset_ns: AtomicU64,
}

impl ManualClock {
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
            offset_ns: AtomicU64::new(0),
        }
    }

    pub fn advance(&self, by: Duration) {
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // Saturate instead of wrapping so a huge advance cannot move time backwards.
        let _ = self
            .offset_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
                Some(cur.saturating_add(ns))
            });
    }

    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.offset_ns.load(Ordering::Relaxed))
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        // `elapsed` is at most u64::MAX ns (584 years), within Instant's range on the platforms
        // we run on; should it not be, fall back rather than panic.
        self.base.checked_add(self.elapsed()).unwrap_or(self.base)
    }
}
