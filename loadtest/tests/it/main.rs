//! All integration tests in one binary: servers on 127.0.0.1:0, short runs.

mod connections;
mod exit_codes;
mod flip;
mod helpers;
mod report;
mod stall;
mod steady;
mod synthetic;
