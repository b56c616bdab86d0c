//! Hardening tests: request-head limits, the separate admin listener, and property tests of
//! path, query and body parsing through the real router. Same setup as `tests/api`: the real app
//! against a fresh MySQL database per test and its own Redis key prefix.

mod admin_listener;
mod app;
mod limits;
mod parsing;
#[path = "../common/serve_args.rs"]
mod serve_args;
