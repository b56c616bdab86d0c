//! Printers: everything that turns a finished [`Summary`] (and its
//! [`Recording`]) into files or console text. Nothing here measures.

mod charts;
pub mod csv;
pub mod html;
pub mod json;
mod svg;
pub mod text;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::recording::Recording;
use crate::summary::Summary;

pub const SUMMARY_FILE: &str = "summary.json";
pub const WINDOWS_FILE: &str = "windows.csv";
pub const HISTOGRAMS_FILE: &str = "histograms.json";
pub const REPORT_FILE: &str = "report.html";

pub(crate) fn write_file(path: &Path, contents: &[u8]) -> Result<()> {
    std::fs::write(path, contents).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Write all four outputs into `dir` (created if missing); returns their paths.
pub fn write_all(dir: &Path, summary: &Summary, rec: &Recording) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let files = [
        (SUMMARY_FILE, json::summary_json(summary)?),
        (HISTOGRAMS_FILE, json::histograms_json(rec)?),
        (WINDOWS_FILE, csv::windows_csv(summary).into_bytes()),
        (REPORT_FILE, html::report_html(summary).into_bytes()),
    ];
    files
        .into_iter()
        .map(|(name, bytes)| {
            let p = dir.join(name);
            write_file(&p, &bytes).map(|_| p)
        })
        .collect()
}
