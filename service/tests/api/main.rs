//! API tests: the real app on 127.0.0.1:0, a fresh MySQL database per test (`#[sqlx::test]`)
//! and a Redis key prefix per test, so they run in parallel. `TEST_LOG=1` shows the app's logs.

mod activities;
mod admin;
mod bad_input;
mod faults;
mod helpers;
mod page;
mod reservations;
mod traces;
