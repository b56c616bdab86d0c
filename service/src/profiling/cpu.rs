//! CPU profiles with pprof-rs: sampled at 99 Hz (higher rates lose samples silently), unwinding
//! kept out of libc, libgcc, pthread and the vDSO so the signal handler never deadlocks in them.

use std::time::{Duration, Instant};

use pprof::protos::Message;

use super::ProfileError;
use super::capture::{Capture, release_symbols};

const FREQUENCY_HZ: i32 = 99;
const BLOCKLIST: &[&str] = &["libc", "libgcc", "pthread", "vdso"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Protobuf that `go tool pprof` and speedscope read.
    Pprof,
    /// An SVG flame graph.
    Flamegraph,
}

/// Profiles the whole process for `duration`. pprof-rs allows one profiler per process, which
/// the capture slot guarantees.
pub async fn profile(
    capture: &Capture,
    duration: Duration,
    format: Format,
) -> Result<Vec<u8>, ProfileError> {
    // Building resolves a backtrace first (pprof's way of initialising its unwinder), which
    // parses the symbol tables: on a blocking thread.
    let guard = capture
        .blocking(|| {
            let started = Instant::now();
            let guard = pprof::ProfilerGuardBuilder::default()
                .frequency(FREQUENCY_HZ)
                .blocklist(BLOCKLIST)
                .build();
            let ms = started.elapsed().as_millis() as u64;
            tracing::debug!(ms, "CPU profiler started");
            guard
        })
        .await?
        .map_err(|e| ProfileError::Failed(e.to_string()))?;
    tokio::time::sleep(duration).await;
    capture
        .blocking(move || {
            let started = Instant::now();
            let body = report(&guard, format);
            let symbolized = started.elapsed().as_millis() as u64;
            // Stopping pprof allocates a fresh sample table (about 80 MiB) before freeing the
            // old one: the symbol tables go first, so the two peaks do not add up.
            release_symbols();
            drop(guard);
            let ms = started.elapsed().as_millis() as u64;
            tracing::debug!(symbolized, ms, "CPU profile reported");
            body
        })
        .await?
}

fn report(guard: &pprof::ProfilerGuard<'_>, format: Format) -> Result<Vec<u8>, ProfileError> {
    let report = guard
        .report()
        .build()
        .map_err(|e| ProfileError::Failed(e.to_string()))?;
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
