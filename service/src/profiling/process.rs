//! The process's own CPU time and resident memory. CPU and RSS come from `metrics-process`
//! (which `/metrics` already uses, and which reads the kernel's clock-tick rate rather than
//! assume one); the peak-RSS mark and its reset, which it does not offer, from `procfs` on Linux.
//! Where a figure is absent, the rules that need it stay quiet.

use std::time::Duration;

/// CPU time (user + system) the process has used so far.
pub fn cpu_time() -> Option<Duration> {
    metrics_process::collector::collect()
        .cpu_seconds_total
        .map(Duration::from_secs_f64)
}

/// Resident set size in bytes.
pub fn rss_bytes() -> Option<u64> {
    metrics_process::collector::collect().resident_memory_bytes
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
