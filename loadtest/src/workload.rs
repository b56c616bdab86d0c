//! What each request asks for: a deterministic stream of operations shaped
//! like the service's seed data (Zipf-popular activities, uniform users).

use std::collections::VecDeque;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

use crate::model::{Op, OpKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Page reads only (the hot path).
    Page,
    /// Reservations only (PUT).
    Reserve,
    /// 90 % page reads, 7 % reservations, 3 % cancellations of recent reservations.
    Mix,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct WorkloadConfig {
    pub scenario: Scenario,
    pub activities: u32,
    pub users: u32,
    pub zipf_exponent: f64,
    pub seed: u64,
}

/// Cancellations pick from the last reservations made, so most of them hit a
/// real reservation (200) rather than a 404, as a user changing their mind would.
const RECENT_RESERVATIONS: usize = 1024;

pub struct Workload {
    cfg: WorkloadConfig,
    rng: StdRng,
    zipf: Zipf<f64>,
    recent: VecDeque<(u32, u32)>,
}

impl Workload {
    pub fn new(cfg: WorkloadConfig) -> Result<Self> {
        if cfg.activities == 0 || cfg.users == 0 {
            return Err(Error::Usage("--activities and --users must be >= 1".into()));
        }
        if !cfg.zipf_exponent.is_finite() || cfg.zipf_exponent < 0.0 {
            return Err(Error::Usage("--zipf must be a finite number >= 0".into()));
        }
        let zipf = Zipf::new(cfg.activities as f64, cfg.zipf_exponent)
            .map_err(|e| Error::Usage(format!("zipf distribution: {e}")))?;
        Ok(Workload {
            cfg,
            // StdRng is seedable and reproducible for a given rand version,
            // which is what "deterministic for a seed" needs.
            rng: StdRng::seed_from_u64(cfg.seed),
            zipf,
            recent: VecDeque::with_capacity(RECENT_RESERVATIONS),
        })
    }

    fn activity(&mut self) -> u32 {
        // Rank 1 is the most popular activity; ids equal ranks, so the hot
        // events are the low ids the seed creates first.
        (self.zipf.sample(&mut self.rng) as u32).clamp(1, self.cfg.activities)
    }

    fn user(&mut self) -> u32 {
        self.rng.random_range(1..=self.cfg.users)
    }

    pub fn next_op(&mut self) -> Op {
        let kind = match self.cfg.scenario {
            Scenario::Page => OpKind::Page,
            Scenario::Reserve => OpKind::Reserve,
            Scenario::Mix => match self.rng.random_range(0..100u32) {
                0..90 => OpKind::Page,
                90..97 => OpKind::Reserve,
                _ => OpKind::Cancel,
            },
        };
        match kind {
            OpKind::Cancel if !self.recent.is_empty() => {
                let i = self.rng.random_range(0..self.recent.len());
                let (activity, user) = self.recent.swap_remove_back(i).expect("index in range");
                Op {
                    kind,
                    activity,
                    user,
                }
            }
            _ => {
                let op = Op {
                    kind,
                    activity: self.activity(),
                    user: self.user(),
                };
                if kind == OpKind::Reserve {
                    if self.recent.len() == RECENT_RESERVATIONS {
                        self.recent.pop_front();
                    }
                    self.recent.push_back((op.activity, op.user));
                }
                op
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(scenario: Scenario, seed: u64) -> WorkloadConfig {
        WorkloadConfig {
            scenario,
            activities: 1000,
            users: 5000,
            zipf_exponent: 1.0,
            seed,
        }
    }

    #[test]
    fn same_seed_same_stream() {
        let mut a = Workload::new(cfg(Scenario::Mix, 7)).unwrap();
        let mut b = Workload::new(cfg(Scenario::Mix, 7)).unwrap();
        let mut c = Workload::new(cfg(Scenario::Mix, 8)).unwrap();
        let sa: Vec<Op> = (0..1000).map(|_| a.next_op()).collect();
        let sb: Vec<Op> = (0..1000).map(|_| b.next_op()).collect();
        let sc: Vec<Op> = (0..1000).map(|_| c.next_op()).collect();
        assert_eq!(sa, sb);
        assert_ne!(sa, sc);
    }

    #[test]
    fn ids_in_range_and_activity_popularity_is_skewed() {
        let mut w = Workload::new(cfg(Scenario::Mix, 1)).unwrap();
        let ops: Vec<Op> = (0..20_000).map(|_| w.next_op()).collect();
        assert!(
            ops.iter()
                .all(|o| (1..=1000).contains(&o.activity) && (1..=5000).contains(&o.user))
        );
        let hot = ops.iter().filter(|o| o.activity <= 10).count();
        // Zipf(1.0) over 1000 ranks puts ~39 % of the mass on the top 10.
        assert!(hot > 20_000 / 4, "hot={hot}");
        let pages = ops.iter().filter(|o| o.kind == OpKind::Page).count();
        assert!((17_000..19_000).contains(&pages), "pages={pages}");
    }
}
