//! Heap profiles from jemalloc's sampling profiler (`prof:true`, one sample per 512 KiB
//! allocated), as gzipped pprof protobuf or an SVG flame graph of live allocations by site.

use super::ProfileError;
use super::capture::Capture;
use super::cpu::Format;

/// The symbol tables the dump parses stay until the capture ends, for its CPU profile.
pub async fn profile(capture: &Capture, format: Format) -> Result<Vec<u8>, ProfileError> {
    let ctl = jemalloc_pprof::PROF_CTL
        .as_ref()
        .ok_or(ProfileError::HeapUnavailable(
            "the process does not run jemalloc with malloc_conf prof:true",
        ))?;
    let mut ctl = ctl.clone().lock_owned().await;
    if !ctl.activated() {
        return Err(ProfileError::HeapUnavailable(
            "jemalloc profiling is not active",
        ));
    }
    let dumped = capture
        .blocking(move || match format {
            Format::Pprof => ctl.dump_pprof(),
            Format::Flamegraph => ctl.dump_flamegraph(),
        })
        .await?;
    dumped.map_err(|e| ProfileError::Failed(format!("{e:#}")))
}
