//! The leaklab reservation service: a monolith on MySQL and Redis whose hot read goes through an
//! in-process LFU cache — the gcache port under study, selected with `--cache-mode`.

pub mod cache;
pub mod config;
pub mod domain;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod middleware;
pub mod page;
pub mod profiling;
pub mod repair;
pub mod routes;
pub mod seed;
pub mod server;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
