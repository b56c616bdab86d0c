//! The memory limit the process runs under and whether a profile capture fits below it.
//!
//! In a container the limit is the cgroup's: past it the kernel's OOM killer ends the process,
//! and a profiler that takes the service down has cost more than it could show. So a capture is
//! admitted only when the resident set plus what a capture has been measured to add stays a
//! margin below the limit ([`admit`]).

use std::path::{Path, PathBuf};

pub const MIB: u64 = 1 << 20;

/// Room kept free below the limit during a capture: the service keeps allocating meanwhile
/// (requests, the cache), and the capture's cost is a measurement, not a bound.
pub const MARGIN: u64 = 64 * MIB;

/// cgroup v1 says "no limit" with the largest page-aligned `i64`; nothing this large is a real
/// limit.
const UNLIMITED: u64 = 1 << 62;

/// The tightest memory limit over the process's cgroup and its ancestors, in bytes; `None`
/// without a cgroup limit (or off Linux), where nothing is checked.
pub fn cgroup_limit() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    limit_files(&own)
        .iter()
        .filter_map(|file| std::fs::read_to_string(file).ok())
        .filter_map(|text| parse_limit(&text))
        .min()
}

/// Where the limits that apply to the process are, for `/proc/self/cgroup`'s content: its
/// cgroup and every ancestor, v2 (`0::/path`) and v1 (`N:memory:/path`). Inside a container
/// the hierarchy is usually mounted at the container's own cgroup, where the path the process
/// sees does not exist and the mount's root file holds the container's limit; the root files
/// are always among the candidates for that reason.
fn limit_files(proc_self_cgroup: &str) -> Vec<PathBuf> {
    const V2: (&str, &str) = ("/sys/fs/cgroup", "memory.max");
    const V1: (&str, &str) = ("/sys/fs/cgroup/memory", "memory.limit_in_bytes");
    let mut files = vec![Path::new(V2.0).join(V2.1), Path::new(V1.0).join(V1.1)];
    for line in proc_self_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (root, file) = if controllers.is_empty() {
            V2
        } else if controllers.split(',').any(|c| c == "memory") {
            V1
        } else {
            continue;
        };
        let mut dir = Path::new(path.trim_start_matches('/'));
        while let Some(parent) = dir.parent() {
            files.push(Path::new(root).join(dir).join(file));
            dir = parent;
        }
    }
    files
}

/// A limit file's content: bytes, or `max` (v2) / a huge number (v1) for none.
fn parse_limit(text: &str) -> Option<u64> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|&bytes| bytes < UNLIMITED)
}

/// Why a capture was refused: the figures it was judged on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Refusal {
    pub rss: u64,
    pub cost: u64,
    pub limit: u64,
    pub margin: u64,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} MiB resident plus the {} MiB a capture is expected to add would leave less than \
             {} MiB below the {} MiB memory limit",
            self.rss / MIB,
            self.cost / MIB,
            self.margin / MIB,
            self.limit / MIB
        )
    }
}

/// Whether a capture that may add `cost` bytes fits under `limit` with [`MARGIN`] to spare.
pub fn admit(rss: u64, cost: u64, limit: u64) -> Result<(), Refusal> {
    if rss.saturating_add(cost).saturating_add(MARGIN) <= limit {
        Ok(())
    } else {
        Err(Refusal {
            rss,
            cost,
            limit,
            margin: MARGIN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(files: &[PathBuf]) -> Vec<&str> {
        files.iter().map(|p| p.to_str().unwrap()).collect()
    }

    #[test]
    fn limits_are_read_as_bytes_and_unlimited_is_none() {
        assert_eq!(parse_limit("536870912\n"), Some(512 * MIB));
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None, "v1's no limit");
        assert_eq!(parse_limit(""), None);
    }

    #[test]
    fn v2_candidates_are_the_cgroup_and_its_ancestors() {
        let files = limit_files("0::/system.slice/leaklab.service\n");
        assert_eq!(
            paths(&files),
            [
                "/sys/fs/cgroup/memory.max",
                "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                "/sys/fs/cgroup/system.slice/leaklab.service/memory.max",
                "/sys/fs/cgroup/system.slice/memory.max",
            ]
        );
        // A container with its own cgroup namespace sees itself at the root.
        assert_eq!(limit_files("0::/\n").len(), 2);
    }

    #[test]
    fn v1_candidates_come_from_the_memory_controller_only() {
        let files = limit_files("5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n");
        assert_eq!(
            paths(&files)[2..],
            [
                "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
                "/sys/fs/cgroup/memory/docker/memory.limit_in_bytes",
            ]
        );
    }

    #[test]
    fn a_capture_is_admitted_only_with_the_margin_to_spare() {
        let limit = 512 * MIB;
        assert!(admit(40 * MIB, 250 * MIB, limit).is_ok());
        let refused = admit(400 * MIB, 100 * MIB, limit).unwrap_err();
        assert_eq!(refused.margin, MARGIN);
        assert!(
            refused.to_string().contains("512 MiB memory limit"),
            "{refused}"
        );
        assert!(
            admit(limit - MARGIN - 100 * MIB, 100 * MIB, limit).is_ok(),
            "exactly the margin left"
        );
        assert!(admit(limit - MARGIN - 100 * MIB + 1, 100 * MIB, limit).is_err());
        assert!(admit(u64::MAX, 1, limit).is_err(), "no overflow");
    }
}
