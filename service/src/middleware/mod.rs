//! The layers around the routes, outermost first (`routes::finish` and `routes::api_routes` add
//! them; the last `.layer()` call is the outermost):
//!
//! 1. [`metrics::track`] counts and times every request, and feeds the latency window;
//! 2. [`trace::trace_request`] decides sampling and makes the server span;
//! 3. [`head_limits::enforce`] answers an over-long URI or oversized headers (414/431);
//! 4. (tower-http) a panicking handler becomes a 500, and the body limit is set;
//! 5. on the API only: the quota (504), then [`admission::admit`], the concurrency limit (503).
//!
//! ARCHITECTURE.md ("A page request") follows a request through them.

pub mod admission;
pub mod head_limits;
pub mod metrics;
pub mod trace;
