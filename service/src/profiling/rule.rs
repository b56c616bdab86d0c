//! An anomaly rule as `--anomaly-*` flags give it: `MIN,DIFF%,ABS,COOLDOWN`.

use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rule {
    /// Below this the rule never fires (quiet processes are not anomalous).
    pub min: f64,
    /// Fires on a jump of this many percent above the recent average...
    pub diff_pct: f64,
    /// ...or at this absolute value, whatever the average.
    pub abs: f64,
    #[serde(serialize_with = "secs")]
    pub cooldown: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// `MIN,DIFF%,ABS,COOLDOWN`, e.g. `50,100,250,1m`.
impl FromStr for Rule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let [min, diff, abs, cooldown] = parts[..] else {
            return Err(format!("expected MIN,DIFF%,ABS,COOLDOWN, got {s:?}"));
        };
        let number = |v: &str, what: &str| {
            v.trim_end_matches('%')
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| format!("{what} must be a non-negative number, got {v:?}"))
        };
        Ok(Rule {
            min: number(min, "MIN")?,
            diff_pct: number(diff, "DIFF")?,
            abs: number(abs, "ABS")?,
            cooldown: humantime::parse_duration(cooldown)
                .map_err(|e| format!("COOLDOWN {cooldown:?}: {e}"))?,
        })
    }
}
