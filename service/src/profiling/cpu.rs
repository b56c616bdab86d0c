//! CPU profiles with pprof-rs: sampled at 99 Hz (higher rates lose samples silently), unwinding
//! kept out of libc, libgcc, pthread and the vDSO so the signal handler never deadlocks in them.

use std::time::Duration;

use pprof::protos::Message;

use super::ProfileError;

const FREQUENCY_HZ: i32 = 99;
const BLOCKLIST: &[&str] = &["libc", "libgcc", "pthread", "vdso"];

/// pprof-rs allows one profiler per process.
static RUNNING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Protobuf that `go tool pprof` and speedscope read.
    Pprof,
    /// An SVG flame graph.
    Flamegraph,
}

/// Profiles the whole process for `duration`.
pub async fn profile(duration: Duration, format: Format) -> Result<Vec<u8>, ProfileError> {
    let _running = RUNNING.try_lock().map_err(|_| ProfileError::Busy)?;
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY_HZ)
        .blocklist(BLOCKLIST)
        .build()
        .map_err(|e| ProfileError::Failed(e.to_string()))?;
    tokio::time::sleep(duration).await;
    let report = guard
        .report()
        .build()
        .map_err(|e| ProfileError::Failed(e.to_string()))?;
    drop(guard);
    let mut body = Vec::new();
    match format {
        Format::Pprof => report
            .pprof()
            .map_err(|e| ProfileError::Failed(e.to_string()))?
            .encode(&mut body)
            .map_err(|e| ProfileError::Failed(e.to_string()))?,
        Format::Flamegraph => report
            .flamegraph(&mut body)
            .map_err(|e| ProfileError::Failed(e.to_string()))?,
    }
    Ok(body)
}
