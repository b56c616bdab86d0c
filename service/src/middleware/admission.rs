//! Admission: how many API requests are served at once, and what happens to the rest (503).
//!
//! A fixed limit has to be chosen between two failures. Set high (512), it absorbs short stalls,
//! but under a sustained overload the admitted requests share the CPU with each other and with
//! the refusals, each one takes longer than the quota, and all of the work is wasted. Set low
//! (64), admitted requests stay fast under overload, but a short stall (a profile being
//! symbolized) fills it and requests that would have made the quota are refused.
//!
//! The adaptive limit starts at the ceiling and shrinks only on a standing queue: when even the
//! fastest request that finished in a 100-ms window took longer than the target latency while
//! the limit was at least half used (by a factor of target over that latency, between 0.5 and
//! 0.8). A stall slows some requests, not all of them, so the fastest stays fast and nothing is
//! refused; an overload slows every admitted request, and the limit shrinks until the fastest is
//! back under the target. After any other window it grows back by a tenth.
//!
//! The mechanics are written here rather than taken from `tower-acc` (whose `Algorithm` trait
//! [`StandingQueueLimit`] would fit): axum copies a route layer into every route, and a
//! `tower-acc` layer makes one limit per copy, where the API needs one limit for all its routes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::AppError;
use crate::state::LimitPolicy;

/// The API's one concurrency limit, shared by its routes.
pub struct Admission {
    places: Arc<Semaphore>,
    /// `None` for a fixed limit.
    sizing: Option<Mutex<Sizing>>,
}

struct Sizing {
    policy: StandingQueueLimit,
    /// Places the semaphore holds, taken or not.
    places: usize,
}

impl Admission {
    pub fn new(max_in_flight: usize, policy: LimitPolicy) -> Arc<Self> {
        let max = max_in_flight.max(1);
        let sizing = match policy {
            LimitPolicy::Fixed => {
                crate::metrics::concurrency_limit(max);
                None
            }
            LimitPolicy::Adaptive { min, target } => Some(Mutex::new(Sizing {
                policy: StandingQueueLimit::new(min, max, target),
                places: max,
            })),
        };
        Arc::new(Self {
            places: Arc::new(Semaphore::new(max)),
            sizing,
        })
    }

    /// The request's place, or `None` when all are taken.
    fn try_admit(&self) -> Option<OwnedSemaphorePermit> {
        self.places.clone().try_acquire_owned().ok()
    }

    /// A request left after `rtt`, answered or dropped: the policy sees it, and the semaphore
    /// follows the new limit.
    fn finished(&self, rtt: Duration, answered: bool) {
        self.finished_at(Instant::now(), rtt, answered);
    }

    fn finished_at(&self, now: Instant, rtt: Duration, answered: bool) {
        let Some(sizing) = &self.sizing else { return };
        let mut sizing = sizing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let in_flight = sizing
            .places
            .saturating_sub(self.places.available_permits());
        sizing.policy.record(now, rtt, in_flight, answered);
        let limit = sizing.policy.limit();
        if limit > sizing.places {
            self.places.add_permits(limit - sizing.places);
            sizing.places = limit;
        } else if limit < sizing.places {
            // Only free places can go; the rest go as later requests finish.
            sizing.places -= self.places.forget_permits(sizing.places - limit);
        }
    }
}

/// Middleware: serves the request if a place is free, else answers 503 `overloaded` at once. A
/// request cut by the quota leaves when its future is dropped, and is measured then.
pub async fn admit(
    State(admission): State<Arc<Admission>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(place) = admission.try_admit() else {
        return AppError::Overloaded.into_response();
    };
    if admission.sizing.is_none() {
        // A fixed limit needs no timing: the place goes back when this future ends.
        let _place = place;
        return next.run(request).await;
    }
    let mut leaving = Leaving {
        admission,
        place: Some(place),
        admitted: Instant::now(),
        answered: false,
    };
    let response = next.run(request).await;
    leaving.answered = true;
    response
}

/// Gives the place back and reports the request's time, however the request ends.
struct Leaving {
    admission: Arc<Admission>,
    place: Option<OwnedSemaphorePermit>,
    admitted: Instant,
    /// False when the request was dropped: cut by the quota, or its client went away.
    answered: bool,
}

impl Drop for Leaving {
    fn drop(&mut self) {
        drop(self.place.take());
        self.admission
            .finished(self.admitted.elapsed(), self.answered);
    }
}

/// How long a window of finished requests is before the limit is reconsidered: longer than the
/// latency it aims for, so that a change of the limit shows in the next window.
const WINDOW: Duration = Duration::from_millis(100);
/// The limit after a window with a standing queue, as a share of the one before: target over
/// the fastest request's latency, so that a queue far past the target (the first moments of an
/// overload, from the ceiling) is cut in a few windows, kept between these bounds.
const BACKOFF: (f64, f64) = (0.5, 0.8);
/// The limit after any other window, as a multiple of the one before.
const GROWTH: f64 = 1.1;

/// The adaptive policy (module docs).
#[derive(Debug, Clone)]
pub struct StandingQueueLimit {
    limit: f64,
    min: usize,
    max: usize,
    target: Duration,
    window: Window,
}

#[derive(Debug, Clone)]
struct Window {
    start: Option<Instant>,
    fastest: Duration,
    busiest: usize,
}

impl Window {
    fn new() -> Self {
        Self {
            start: None,
            fastest: Duration::MAX,
            busiest: 0,
        }
    }
}

impl StandingQueueLimit {
    /// Starts at `max`; never below `min` (nor below 1, nor above `max`).
    pub fn new(min: usize, max: usize, target: Duration) -> Self {
        let max = max.max(1);
        let limit = Self {
            limit: max as f64,
            min: min.clamp(1, max),
            max,
            target,
            window: Window::new(),
        };
        limit.publish();
        limit
    }

    /// One request left: `rtt` from admission to the end, `in_flight` the others still being
    /// served. A request dropped before its answer (cut by the quota, or its client gave up) says
    /// how busy the service was but not how fast: under overload clients give up on requests
    /// that waited before admission, often just after they were admitted.
    pub fn record(&mut self, now: Instant, rtt: Duration, in_flight: usize, answered: bool) {
        if self
            .window
            .start
            .is_some_and(|start| now.duration_since(start) >= WINDOW)
        {
            self.close_window();
        }
        let window = &mut self.window;
        window.start.get_or_insert(now);
        if answered {
            window.fastest = window.fastest.min(rtt);
        }
        window.busiest = window.busiest.max(in_flight + 1);
    }

    fn close_window(&mut self) {
        let window = std::mem::replace(&mut self.window, Window::new());
        let before = self.limit;
        // Slow but far from the limit is not a queue at the limit (a slow dependency, say), and
        // refusing would not speed it up: that grows the limit back too.
        let crowded = window.busiest as f64 * 2.0 >= self.limit;
        if window.fastest > self.target && crowded {
            let ratio = self.target.as_secs_f64() / window.fastest.as_secs_f64();
            let backoff = ratio.clamp(BACKOFF.0, BACKOFF.1);
            self.limit = (self.limit * backoff).max(self.min as f64);
        } else {
            self.limit = (self.limit * GROWTH).min(self.max as f64);
        }
        if self.limit as usize != before as usize {
            self.publish();
        }
    }

    pub fn limit(&self) -> usize {
        self.limit as usize
    }

    fn publish(&self) {
        crate::metrics::concurrency_limit(self.limit as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: Duration = Duration::from_millis(20);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Feeds `windows` windows, each of `per_window` requests with latencies from `rtt` and
    /// `in_flight` others in flight; returns the limit after each window.
    fn feed(
        limit: &mut StandingQueueLimit,
        clock: &mut Instant,
        windows: usize,
        rtts: &[Duration],
        in_flight: usize,
    ) -> Vec<usize> {
        let mut limits = Vec::new();
        for _ in 0..windows {
            for (i, rtt) in rtts.iter().enumerate() {
                let at = *clock + WINDOW * i as u32 / rtts.len() as u32;
                limit.record(at, *rtt, in_flight, true);
            }
            *clock += WINDOW;
            limits.push(limit.limit());
        }
        limits
    }

    #[test]
    fn a_standing_queue_shrinks_the_limit_down_to_the_floor() {
        let mut limit = StandingQueueLimit::new(16, 512, TARGET);
        let mut clock = Instant::now();
        let limits = feed(
            &mut limit,
            &mut clock,
            30,
            &[ms(120), ms(180), ms(240)],
            600,
        );
        assert!(
            limits.windows(2).all(|w| w[1] <= w[0]),
            "only shrinks: {limits:?}"
        );
        assert!(limits[3] < 512, "shrinks within a few windows: {limits:?}");
        assert_eq!(
            *limits.last().unwrap(),
            16,
            "stops at the floor: {limits:?}"
        );
    }

    #[test]
    fn the_further_past_the_target_the_faster_it_shrinks() {
        let shrink_once = |rtt| {
            let mut limit = StandingQueueLimit::new(16, 500, TARGET);
            let mut clock = Instant::now();
            feed(&mut limit, &mut clock, 2, &[rtt], 600);
            limit.limit()
        };
        assert_eq!(shrink_once(ms(22)), 400, "just past the target: by a fifth");
        assert_eq!(shrink_once(ms(30)), 333, "20/30 of it");
        assert_eq!(shrink_once(ms(200)), 250, "far past it: by half, no more");
    }

    #[test]
    fn a_stall_that_slows_some_requests_refuses_nothing() {
        let mut limit = StandingQueueLimit::new(16, 512, TARGET);
        let mut clock = Instant::now();
        // Most of the window's requests are past the quota, but some still get through fast.
        let limits = feed(
            &mut limit,
            &mut clock,
            10,
            &[ms(300), ms(240), ms(3), ms(200)],
            500,
        );
        assert!(limits.iter().all(|&l| l == 512), "{limits:?}");
    }

    #[test]
    fn slow_requests_far_from_the_limit_do_not_shrink_it() {
        let mut limit = StandingQueueLimit::new(16, 512, TARGET);
        let mut clock = Instant::now();
        // A slow dependency at low traffic: refusing would not make it faster.
        let limits = feed(&mut limit, &mut clock, 10, &[ms(400), ms(450)], 20);
        assert!(limits.iter().all(|&l| l == 512), "{limits:?}");
    }

    #[test]
    fn the_limit_grows_back_to_the_ceiling_once_the_queue_is_gone() {
        let mut limit = StandingQueueLimit::new(16, 512, TARGET);
        let mut clock = Instant::now();
        feed(&mut limit, &mut clock, 30, &[ms(150)], 600);
        assert_eq!(limit.limit(), 16);
        let limits = feed(&mut limit, &mut clock, 60, &[ms(2), ms(10)], 10);
        assert!(
            limits.windows(2).all(|w| w[1] >= w[0]),
            "only grows: {limits:?}"
        );
        assert_eq!(*limits.last().unwrap(), 512, "{limits:?}");

        // Also when the requests stay slow, once few are in flight.
        feed(&mut limit, &mut clock, 30, &[ms(150)], 600);
        let limits = feed(&mut limit, &mut clock, 60, &[ms(150)], 3);
        assert_eq!(*limits.last().unwrap(), 512, "{limits:?}");
    }

    #[test]
    fn under_overload_it_settles_where_the_fastest_request_meets_the_target() {
        // A saturated CPU shared by the admitted requests: each takes about limit / capacity.
        let capacity_per_ms = 3.0; // 3,000 requests/s
        let mut limit = StandingQueueLimit::new(16, 512, TARGET);
        let mut clock = Instant::now();
        let mut seen = Vec::new();
        for _ in 0..200 {
            let l = limit.limit();
            let latency = Duration::from_secs_f64(l as f64 / capacity_per_ms / 1000.0);
            seen.extend(feed(&mut limit, &mut clock, 1, &[latency, latency * 2], l));
        }
        let settled = &seen[100..];
        let (lo, hi) = (
            *settled.iter().min().unwrap(),
            *settled.iter().max().unwrap(),
        );
        // 20 ms at 3 requests/ms is 60 in flight.
        assert!(lo >= 40 && hi <= 80, "settled between {lo} and {hi}");
    }

    #[test]
    fn requests_dropped_before_their_answer_do_not_count_as_fast() {
        let mut limit = StandingQueueLimit::new(16, 512, TARGET);
        let mut clock = Instant::now();
        for _ in 0..10 {
            limit.record(clock, ms(120), 600, true);
            // Admitted a moment ago, dropped as its client gave up.
            limit.record(clock + ms(10), ms(1), 600, false);
            limit.record(clock + ms(20), ms(200), 600, true);
            clock += WINDOW;
        }
        assert!(limit.limit() < 100, "{}", limit.limit());
        // Nothing answered at all in a busy window: slower than any target.
        let mut limit = StandingQueueLimit::new(16, 512, TARGET);
        limit.record(clock, ms(250), 600, false);
        limit.record(clock + WINDOW, ms(250), 600, false);
        assert_eq!(limit.limit(), 256);
    }

    #[test]
    fn the_places_follow_the_limit_even_while_they_are_taken() {
        let admission = Admission::new(
            100,
            LimitPolicy::Adaptive {
                min: 10,
                target: TARGET,
            },
        );
        let mut held: Vec<_> = (0..100).map(|_| admission.try_admit().unwrap()).collect();
        assert!(admission.try_admit().is_none(), "all 100 places are taken");
        let mut clock = Instant::now();
        // Slow requests (twice the target) leave one by one while the rest stay: the limit halves
        // to 50, then 25.
        for _ in 0..3 {
            drop(held.pop());
            admission.finished_at(clock, ms(40), true);
            clock += WINDOW;
        }
        let limit = admission
            .sizing
            .as_ref()
            .unwrap()
            .lock()
            .unwrap()
            .policy
            .limit();
        assert_eq!(limit, 25);
        assert!(
            admission.try_admit().is_none(),
            "the freed places were withdrawn"
        );
        // The others leave within the same window: the limit stays, the places shrink to it.
        let last_window = clock - WINDOW;
        for place in held.drain(..) {
            drop(place);
            admission.finished_at(last_window, ms(1), true);
        }
        assert_eq!(admission.places.available_permits(), 25);
    }

    #[test]
    fn a_fixed_limit_refuses_past_its_places_and_takes_them_back() {
        let admission = Admission::new(2, LimitPolicy::Fixed);
        let a = admission.try_admit().unwrap();
        let _b = admission.try_admit().unwrap();
        assert!(admission.try_admit().is_none());
        drop(a);
        assert!(admission.try_admit().is_some());
    }

    #[test]
    fn the_floor_and_ceiling_are_kept_consistent() {
        let limit = StandingQueueLimit::new(64, 8, TARGET);
        assert_eq!((limit.min, limit.max, limit.limit()), (8, 8, 8));
        let limit = StandingQueueLimit::new(0, 0, TARGET);
        assert_eq!((limit.min, limit.max), (1, 1));
    }
}
