//! The measurement itself, independent of how it is printed: per-second
//! windows (counts + an encoded HdrHistogram) keyed by absolute unix second,
//! plus run totals. A run's collector produces one; `merge` adds several.
//!
//! Only 1 s windows are stored. 10 s windows, before/after-flip halves and the
//! run totals' percentiles are all derived by adding 1 s histograms, so merged
//! and single runs go through the same arithmetic.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Class, Outcome};

/// 1 µs .. 60 s at 3 significant figures: fine enough to tell 249.9 ms from 250.1 ms.
pub const HIST_LOW_US: u64 = 1;
pub const HIST_HIGH_US: u64 = 60_000_000;
pub const HIST_SIGFIG: u8 = 3;

pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(HIST_LOW_US, HIST_HIGH_US, HIST_SIGFIG)
        .expect("static bounds are valid")
}

pub fn encode_hist(h: &Histogram<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    V2Serializer::new()
        .serialize(h, &mut out)
        .expect("serializing into a Vec cannot fail");
    out
}

pub fn decode_hist(bytes: &[u8]) -> Result<Histogram<u64>> {
    let mut h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| Error::Histogram(format!("{e:?}")))?;
    // Deserialized histograms keep the sender's bounds; widen so adds never fail.
    h.auto(true);
    Ok(h)
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Requests counted for availability: good + bad. Includes requests that
    /// timed out still waiting for a free connection (`unsent`).
    pub sent: u64,
    pub good: u64,
    pub timeout: u64,
    pub server_error: u64,
    pub connection: u64,
    /// 4xx answers (good by definition; counted to spot workload mistakes).
    pub status_4xx: u64,
    /// Of `server_error`: 503s (the service shed the request or a dependency was down) and 504s
    /// (the service's own quota cut it). What separates a service refusing work from one
    /// drowning in it.
    #[serde(default)]
    pub status_503: u64,
    #[serde(default)]
    pub status_504: u64,
    /// Timeouts that never got a connection before their deadline.
    pub unsent: u64,
    /// Dispatched later than the lag threshold by the generator.
    pub late: u64,
    /// Not sent at all: the generator fell behind by more than the quota.
    pub dropped: u64,
}

impl Counts {
    pub fn bad(&self) -> u64 {
        self.timeout + self.server_error + self.connection
    }

    /// good / (good + bad); `None` for an empty window (it can't be a dip).
    pub fn availability(&self) -> Option<f64> {
        (self.sent > 0).then(|| self.good as f64 / self.sent as f64)
    }

    pub fn record(&mut self, o: &Outcome) {
        self.late += o.late as u64;
        match o.class {
            Class::Dropped => {
                self.dropped += 1;
                return;
            }
            Class::Good => self.good += 1,
            Class::Timeout => self.timeout += 1,
            Class::ServerError => self.server_error += 1,
            Class::Connection => self.connection += 1,
        }
        self.sent += 1;
        self.status_4xx += (400..500).contains(&o.status) as u64;
        self.status_503 += (o.status == 503) as u64;
        self.status_504 += (o.status == 504) as u64;
        self.unsent += (o.class == Class::Timeout && o.sent_at.is_none()) as u64;
    }

    pub fn add(&mut self, o: &Counts) {
        self.sent += o.sent;
        self.good += o.good;
        self.timeout += o.timeout;
        self.server_error += o.server_error;
        self.connection += o.connection;
        self.status_4xx += o.status_4xx;
        self.status_503 += o.status_503;
        self.status_504 += o.status_504;
        self.unsent += o.unsent;
        self.late += o.late;
        self.dropped += o.dropped;
    }
}

/// Whether a request's latency goes into the histograms. Connection errors
/// have no response time worth mixing with real answers; timeouts do (their
/// give-up time, >= quota), so high percentiles show the quota being blown.
pub fn has_latency(class: Class) -> bool {
    matches!(class, Class::Good | Class::ServerError | Class::Timeout)
}

#[derive(Debug, Clone)]
pub struct Window {
    pub counts: Counts,
    /// V2-encoded histogram (compact: finished windows stay cheap in memory).
    pub hist: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct Recording {
    /// Keyed by unix second of the requests' intended send time.
    pub windows: BTreeMap<i64, Window>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub count: u64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub mean_ms: Option<f64>,
}

impl LatencyStats {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencyStats::default();
        }
        let ms = |us: u64| Some(us as f64 / 1e3);
        LatencyStats {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: Some(h.mean() / 1e3),
        }
    }
}

/// One row of windows.csv / summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowRow {
    pub start_unix: i64,
    pub width_s: u32,
    /// Start relative to the run start, for charts.
    pub offset_s: f64,
    #[serde(flatten)]
    pub counts: Counts,
    pub bad: u64,
    pub availability: Option<f64>,
    pub latency: LatencyStats,
}

impl WindowRow {
    fn new(
        start_unix: i64,
        width_s: u32,
        run_start_us: i64,
        counts: Counts,
        h: &Histogram<u64>,
    ) -> Self {
        WindowRow {
            start_unix,
            width_s,
            offset_s: (start_unix * 1_000_000 - run_start_us) as f64 / 1e6,
            counts,
            bad: counts.bad(),
            availability: counts.availability(),
            latency: LatencyStats::of(h),
        }
    }
}

impl Recording {
    pub fn totals(&self) -> Counts {
        let mut c = Counts::default();
        for w in self.windows.values() {
            c.add(&w.counts);
        }
        c
    }

    /// Run-wide histogram: the sum of every window.
    pub fn overall(&self) -> Result<Histogram<u64>> {
        self.sum(|_| true)
    }

    fn sum(&self, keep: impl Fn(i64) -> bool) -> Result<Histogram<u64>> {
        let mut h = new_hist();
        h.auto(true);
        for (&s, w) in &self.windows {
            if keep(s) {
                h.add(decode_hist(&w.hist)?)
                    .map_err(|e| Error::Histogram(format!("{e:?}")))?;
            }
        }
        Ok(h)
    }

    pub fn rows(&self, width_s: u32, run_start_us: i64) -> Result<Vec<WindowRow>> {
        let width = width_s as i64;
        let mut groups: BTreeMap<i64, (Counts, Histogram<u64>)> = BTreeMap::new();
        for (&s, w) in &self.windows {
            let (c, h) = groups
                .entry(s.div_euclid(width) * width)
                .or_insert_with(|| {
                    let mut h = new_hist();
                    h.auto(true);
                    (Counts::default(), h)
                });
            c.add(&w.counts);
            h.add(decode_hist(&w.hist)?)
                .map_err(|e| Error::Histogram(format!("{e:?}")))?;
        }
        Ok(groups
            .into_iter()
            .map(|(s, (c, h))| WindowRow::new(s, width_s, run_start_us, c, &h))
            .collect())
    }

    /// Counts and latency of the whole seconds strictly before and after
    /// `at_unix_us`; the second containing it belongs to neither half.
    pub fn halves(&self, at_unix_us: i64) -> Result<(Half, Half)> {
        let flip_s = at_unix_us.div_euclid(1_000_000);
        let exact = at_unix_us.rem_euclid(1_000_000) == 0;
        let before = |s: i64| s < flip_s;
        let after = |s: i64| if exact { s >= flip_s } else { s > flip_s };
        Ok((self.half(before)?, self.half(after)?))
    }

    fn half(&self, keep: impl Fn(i64) -> bool + Copy) -> Result<Half> {
        let mut counts = Counts::default();
        let mut seconds = 0;
        for (_, w) in self.windows.iter().filter(|(s, _)| keep(**s)) {
            counts.add(&w.counts);
            seconds += 1;
        }
        let h = self.sum(keep)?;
        Ok(Half {
            seconds,
            availability: counts.availability(),
            bad: counts.bad(),
            counts,
            latency: LatencyStats::of(&h),
        })
    }

    /// Add another recording (merge): windows line up by unix second.
    pub fn merge(&mut self, other: &Recording) -> Result<()> {
        for (&s, w) in &other.windows {
            match self.windows.get_mut(&s) {
                None => {
                    self.windows.insert(s, w.clone());
                }
                Some(mine) => {
                    mine.counts.add(&w.counts);
                    let mut h = decode_hist(&mine.hist)?;
                    h.add(decode_hist(&w.hist)?)
                        .map_err(|e| Error::Histogram(format!("{e:?}")))?;
                    mine.hist = encode_hist(&h);
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Half {
    pub seconds: u64,
    pub availability: Option<f64>,
    pub bad: u64,
    pub counts: Counts,
    pub latency: LatencyStats,
}
