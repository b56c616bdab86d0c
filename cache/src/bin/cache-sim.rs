//! Replays a key trace against one cache mode; see `leaklab_cache::sim` and the crate README.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use leaklab_cache::sim::{self, Args, alloc_counter::CountingAlloc};

/// Lets the report include the bytes the cache really holds, next to its own estimate.
#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn main() -> ExitCode {
    let args = Args::parse();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = sim::run(&args, &mut out).and_then(|_| out.flush().map_err(Into::into));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cache-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
