//! `serve`'s arguments for tests, parsed as production parses them (clap, the environment as
//! fallback). Shared by the test binaries through `#[path]`.

use clap::Parser;
use reservation_service::config::{Cli, Command, ServeArgs};

/// The flags every test shares plus `extra`. Each setting a test relies on is given as a flag,
/// so the environment's `CACHE_MODE` and the like cannot leak in; `extra` must not repeat one of
/// them (clap refuses a flag given twice).
pub fn serve_args(admin_token: &str, extra: &[&str]) -> ServeArgs {
    use std::hash::{BuildHasher, RandomState};
    let unique = RandomState::new().hash_one(std::time::SystemTime::now());
    let profile_dir = std::env::temp_dir().join(format!("leaklab-profiles-{unique}"));
    let mut argv: Vec<String> = [
        "reservation-service",
        "serve",
        // Generous: tests run in parallel on a debug build on two shared cores; the tests about
        // the quota set their own.
        "--request-quota=5s",
        "--max-in-flight=256",
        "--concurrency-limit=adaptive",
        "--min-in-flight=16",
        "--limit-target-latency=20ms",
        "--max-body-bytes=16384",
        "--related-activities=3",
        "--cache-mode=fixed",
        "--cache-capacity=1000",
        "--cache-ttl=60s",
        "--cache-sweep-interval=200ms",
        "--cache-sweep-lookups=0",
        "--cache-preage-hits=0",
        "--anomaly-profiling=false",
    ]
    .map(String::from)
    .to_vec();
    argv.push(format!("--admin-token={admin_token}"));
    argv.push(format!("--profile-dir={}", profile_dir.display()));
    argv.extend(extra.iter().map(|s| s.to_string()));
    match Cli::try_parse_from(argv)
        .expect("the tests' serve flags parse")
        .command
    {
        Command::Serve(args) => *args,
        other => unreachable!("not serve: {other:?}"),
    }
}
