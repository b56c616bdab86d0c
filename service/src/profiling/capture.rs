//! One profile capture at a time, admitted only with memory to spare, and its cost measured.
//!
//! Measured on the development machine (release build, `fixed` service at 28 MiB under load):
//! symbolizing parses the binary's DWARF tables (the `backtrace` crate, behind pprof and
//! jemalloc_pprof), about 185 MiB at the peak with the mapped debug sections, and the crate
//! would keep them for the next profile; pprof's table of samples is about 80 MiB, allocated by
//! the first CPU profile and kept by pprof for the life of the process. A first capture peaked
//! at 290 MiB above its start, later ones at about 200 MiB, and after each the RSS is back to
//! the start plus the sample table. So the symbol cache and the pages freed with it are given
//! back when a capture ends, and each capture's peak is measured (the kernel's peak-RSS mark,
//! reset when it starts): the largest so far is what the next one is judged on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use metrics::{counter, gauge};
use serde::Serialize;
use tokio::sync::{Mutex, MutexGuard};

use super::memory::{self, MIB};
use super::{ProfileError, process};

pub const SKIPPED: &str = "leaklab_anomaly_captures_skipped_total";
pub const COST: &str = "leaklab_profile_capture_cost_bytes";

/// What a capture is assumed to cost before one has been measured: a first capture (heap and
/// CPU profile) measured 290 MiB on the development machine; a binary with more debug info
/// costs more.
const UNMEASURED_COST: u64 = 320 * MIB;

static SLOT: Mutex<()> = Mutex::const_new(());
/// Whether [`SLOT`] is held, readable without contending for it.
static TAKEN: AtomicBool = AtomicBool::new(false);
/// The largest peak growth of the resident set over a capture so far; 0 before the first.
static MEASURED_COST: AtomicU64 = AtomicU64::new(0);

/// Whether a profile is being taken now, here or on demand.
pub fn in_progress() -> bool {
    TAKEN.load(Ordering::Relaxed)
}

/// What the next capture is expected to add to the resident set at its peak.
pub fn cost_estimate() -> u64 {
    match MEASURED_COST.load(Ordering::Relaxed) {
        0 => UNMEASURED_COST,
        measured => measured,
    }
}

pub fn describe() {
    metrics::describe_counter!(
        SKIPPED,
        "Anomaly captures not taken: reason=memory (too close to the cgroup memory limit), \
         busy (another profile was being taken)"
    );
    metrics::describe_gauge!(
        COST,
        metrics::Unit::Bytes,
        "Resident memory a profile capture is expected to add at its peak (the largest measured)"
    );
    for reason in ["memory", "busy"] {
        counter!(SKIPPED, "reason" => reason).increment(0);
    }
    gauge!(COST).set(cost_estimate() as f64);
}

/// The right to take profiles: one holder at a time. Symbolized profiles need it
/// ([`super::cpu::profile`], [`super::heap::profile`]).
pub struct Capture {
    /// Shared with work handed to blocking threads, so the slot stays taken until that work ends
    /// even when the capture's caller is gone.
    slot: Arc<Slot>,
    rss_before: Option<u64>,
    peak_measured: bool,
    started: Instant,
    finished: bool,
}

struct Slot {
    _guard: MutexGuard<'static, ()>,
}

impl Slot {
    fn new(guard: MutexGuard<'static, ()>) -> Self {
        TAKEN.store(true, Ordering::Relaxed);
        Self { _guard: guard }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        TAKEN.store(false, Ordering::Relaxed);
    }
}

/// What one capture cost, for its `trigger.json`.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureCost {
    pub seconds: f64,
    pub rss_before_mib: Option<f64>,
    /// The highest RSS during the capture (None where the peak mark cannot be reset).
    pub peak_rss_mib: Option<f64>,
    pub rss_after_mib: Option<f64>,
    pub limit_mib: Option<f64>,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

impl Capture {
    /// Refuses while another capture runs, and when RSS plus [`cost_estimate`] would come within
    /// [`memory::MARGIN`] of the cgroup's memory limit.
    pub fn begin() -> Result<Self, ProfileError> {
        Self::admit(SLOT.try_lock().map_err(|_| ProfileError::Busy)?)
    }

    /// As [`Capture::begin`], but waits for a capture under way to end.
    pub async fn wait() -> Result<Self, ProfileError> {
        Self::admit(SLOT.lock().await)
    }

    fn admit(slot: MutexGuard<'static, ()>) -> Result<Self, ProfileError> {
        let rss_before = process::rss_bytes();
        if let (Some(rss), Some(limit)) = (rss_before, memory::cgroup_limit()) {
            memory::admit(rss, cost_estimate(), limit).map_err(ProfileError::NoHeadroom)?;
        }
        Ok(Self {
            slot: Arc::new(Slot::new(slot)),
            rss_before,
            peak_measured: process::reset_peak_rss(),
            started: Instant::now(),
            finished: false,
        })
    }

    /// Runs `work` on a blocking thread: symbolizing takes a core for up to a second, which the
    /// runtime's workers (two on the lab machine) cannot give.
    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ProfileError> {
        let slot = self.slot.clone();
        tokio::task::spawn_blocking(move || {
            let result = work();
            drop(slot);
            result
        })
        .await
        .map_err(|e| ProfileError::Failed(format!("profiling task: {e}")))
    }

    /// Gives back what the capture used and measures what it cost.
    pub async fn finish(mut self) -> CaptureCost {
        // Freeing the cache's many small allocations takes milliseconds; not on a worker.
        let _ = self.blocking(release_memory).await;
        self.finished = true;
        let peak = self.peak_measured.then(process::peak_rss_bytes).flatten();
        if let (Some(before), Some(peak)) = (self.rss_before, peak) {
            MEASURED_COST.fetch_max(peak.saturating_sub(before), Ordering::Relaxed);
            gauge!(COST).set(cost_estimate() as f64);
        }
        CaptureCost {
            seconds: self.started.elapsed().as_secs_f64(),
            rss_before_mib: self.rss_before.map(mib),
            peak_rss_mib: peak.map(mib),
            rss_after_mib: process::rss_bytes().map(mib),
            limit_mib: memory::cgroup_limit().map(mib),
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if !self.finished {
            // Abandoned (the client went away, a write failed): the cache must not outlive it.
            release_memory();
        }
    }
}

/// Drops the DWARF tables the symbolizer parsed; the next profile parses them again (0.14 to
/// 0.28 s for the release build on the development machine, about 2 s for a debug build).
pub(super) fn release_symbols() {
    backtrace::clear_symbol_cache();
}

fn release_memory() {
    let started = Instant::now();
    release_symbols();
    purge_allocator();
    let ms = started.elapsed().as_millis() as u64;
    tracing::debug!(ms, "profiling memory released");
}

/// Hands the pages jemalloc holds free back to the OS now. Otherwise they stay resident until
/// their arena's decay runs, and decay runs on allocations in that same arena: the blocking
/// thread that symbolized may not allocate again for minutes (measured: RSS still 299 MiB 15 s
/// after a capture, against 120 MiB with the pages returned).
fn purge_allocator() {
    // `arena.<MALLCTL_ARENAS_ALL>.purge`, 4096 meaning every arena.
    const PURGE_ALL: &[u8] = b"arena.4096.purge\0";
    // SAFETY: the name is NUL-terminated, and this mallctl reads and writes nothing, so every
    // pointer is null and the length 0, as jemalloc requires of it.
    let status = unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    if status != 0 {
        tracing::debug!(status, "jemalloc purge refused");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_capture_at_a_time_and_its_cost_is_measured() {
        let first = Capture::begin().expect("no cgroup limit this tight in tests");
        assert!(matches!(Capture::begin(), Err(ProfileError::Busy)));
        let held = first.blocking(|| 7).await.unwrap();
        assert_eq!(held, 7);
        let cost = first.finish().await;
        if cfg!(target_os = "linux") {
            assert!(cost.peak_rss_mib.unwrap() >= cost.rss_before_mib.unwrap() - 1.0);
        }
        let second = Capture::begin().expect("the slot is free again");
        drop(second);
        assert!(
            Capture::begin().is_ok(),
            "an abandoned capture frees the slot"
        );
    }
}
