//! The process's own CPU time and resident memory, and the kernel's peak-RSS mark, read from
//! /proc through `procfs` (Linux; which also knows the clock-tick rate rather than assume one).
//! Not through `metrics-process`, which `/metrics` uses: each of its collections also counts the
//! open file descriptors and reads the limits, work the anomaly profiler's every tick would
//! repeat for nothing. Elsewhere the figures are absent and the rules that need them stay quiet.

use std::time::Duration;

/// CPU time (user + system) the process has used so far.
#[cfg(target_os = "linux")]
pub fn cpu_time() -> Option<Duration> {
    let stat = procfs::process::Process::myself().ok()?.stat().ok()?;
    let ticks = procfs::ticks_per_second() as f64;
    Some(Duration::from_secs_f64(
        (stat.utime + stat.stime) as f64 / ticks,
    ))
}

/// Resident set size in bytes.
#[cfg(target_os = "linux")]
pub fn rss_bytes() -> Option<u64> {
    use procfs::WithCurrentSystemInfo;
    let stat = procfs::process::Process::myself().ok()?.stat().ok()?;
    Some(stat.rss_bytes().get())
}

/// The highest resident set size since the process started or [`reset_peak_rss`].
#[cfg(target_os = "linux")]
pub fn peak_rss_bytes() -> Option<u64> {
    let status = procfs::process::Process::myself().ok()?.status().ok()?;
    status.vmhwm.map(|kib| kib * 1024)
}

/// Sets the kernel's peak-RSS mark to the current RSS (Linux 4.0+), so that the peak of what
/// follows can be read with [`peak_rss_bytes`]: a profile's symbolization peaks and frees
/// within a second, between any two samples of the RSS. False where it cannot be reset.
#[cfg(target_os = "linux")]
pub fn reset_peak_rss() -> bool {
    use procfs::process::{ClearRefs, Process};
    Process::myself().is_ok_and(|me| me.clear_refs(ClearRefs::PeakRSS).is_ok())
}

#[cfg(not(target_os = "linux"))]
pub fn cpu_time() -> Option<Duration> {
    None
}

#[cfg(not(target_os = "linux"))]
pub fn rss_bytes() -> Option<u64> {
    None
}

#[cfg(not(target_os = "linux"))]
pub fn peak_rss_bytes() -> Option<u64> {
    None
}

#[cfg(not(target_os = "linux"))]
pub fn reset_peak_rss() -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_its_own_figures_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(super::rss_bytes().unwrap() > 0);
            assert!(super::cpu_time().is_some());
            assert!(super::reset_peak_rss());
            assert!(super::peak_rss_bytes().unwrap() > 0);
        }
    }
}
