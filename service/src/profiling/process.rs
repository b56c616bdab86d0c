//! The process's own CPU time and resident memory, read from /proc (Linux). Elsewhere the
//! figures are absent and the rules that need them stay quiet.

use std::time::Duration;

/// CPU time (user + system) the process has used so far.
pub fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // The kernel reports clock ticks; USER_HZ is 100 on every Linux platform Rust targets.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Resident set size in bytes.
pub fn rss_bytes() -> Option<u64> {
    status_bytes("VmRSS:")
}

/// The highest resident set size since the process started or [`reset_peak_rss`].
pub fn peak_rss_bytes() -> Option<u64> {
    status_bytes("VmHWM:")
}

/// Sets the kernel's peak-RSS mark to the current RSS (Linux 4.0+), so that the peak of what
/// follows can be read with [`peak_rss_bytes`]: a profile's symbolization peaks and frees
/// within a second, between any two samples of the RSS. False where it cannot be reset.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
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
