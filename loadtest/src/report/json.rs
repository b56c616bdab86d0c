//! summary.json and histograms.json: the machine-readable outputs, and the
//! inputs of `merge`.
//!
//! histograms.json keeps, per unix second, the window's counts and its
//! HdrHistogram in V2 encoding, base64: everything needed to recompute any
//! window, half or total after adding runs together.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::recording::{Counts, HIST_HIGH_US, HIST_LOW_US, HIST_SIGFIG, Recording, Window};
use crate::summary::Summary;

pub const HIST_ENCODING: &str = "hdrhistogram-v2+base64";

#[derive(Debug, Serialize, Deserialize)]
pub struct HistogramsFile {
    pub format: u32,
    pub encoding: String,
    pub unit: String,
    pub lowest: u64,
    pub highest: u64,
    pub significant_figures: u8,
    pub windows: Vec<HistWindow>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct HistWindow {
    pub start_unix: i64,
    pub counts: Counts,
    pub hist: String,
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(v).map_err(|source| Error::Json {
        path: "<memory>".into(),
        source,
    })?;
    out.push(b'\n');
    Ok(out)
}

pub fn summary_json(s: &Summary) -> Result<Vec<u8>> {
    to_json(s)
}

pub fn histograms_json(rec: &Recording) -> Result<Vec<u8>> {
    let file = HistogramsFile {
        format: crate::summary::FORMAT_VERSION,
        encoding: HIST_ENCODING.into(),
        unit: "microseconds".into(),
        lowest: HIST_LOW_US,
        highest: HIST_HIGH_US,
        significant_figures: HIST_SIGFIG,
        windows: rec
            .windows
            .iter()
            .map(|(&s, w)| HistWindow {
                start_unix: s,
                counts: w.counts,
                hist: STANDARD.encode(&w.hist),
            })
            .collect(),
    };
    to_json(&file)
}

fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

pub fn read_summary(path: &Path) -> Result<Summary> {
    read(path)
}

pub fn read_recording(path: &Path) -> Result<Recording> {
    let file: HistogramsFile = read(path)?;
    if file.encoding != HIST_ENCODING {
        return Err(Error::Histogram(format!(
            "{}: unknown encoding {:?}",
            path.display(),
            file.encoding
        )));
    }
    let mut windows = BTreeMap::new();
    for w in file.windows {
        let hist = STANDARD.decode(w.hist.as_bytes()).map_err(|e| {
            Error::Histogram(format!("{}: window {}: {e}", path.display(), w.start_unix))
        })?;
        // Decode once now so a corrupt file fails here, not halfway through a report.
        crate::recording::decode_hist(&hist)?;
        windows.insert(
            w.start_unix,
            Window {
                counts: w.counts,
                hist,
            },
        );
    }
    Ok(Recording { windows })
}
