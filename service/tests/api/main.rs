//! API tests: the real app on 127.0.0.1:0, a fresh MySQL database per test (`#[sqlx::test]`)
//! and a Redis key prefix per test, so they run in parallel. `TEST_LOG=1` shows the app's logs.

mod activities;
mod admin;
mod bad_input;
mod cache_flip;
mod faults;
mod helpers;
mod observability;
mod page;
mod reproduction;
mod reservations;
#[path = "../common/serve_args.rs"]
mod serve_args;
mod shutdown;
mod traces;
mod verify;

// The service's binary runs on jemalloc with heap profiling on; so does this test binary, so that
// the heap-profile routes and the anomaly profiler are tested as they run in production.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[allow(non_upper_case_globals)]
#[unsafe(export_name = "malloc_conf")]
pub static malloc_conf: &[u8] = b"prof:true,prof_active:true,lg_prof_sample:19\0";
