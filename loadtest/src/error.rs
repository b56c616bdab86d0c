//! Typed errors of the load generator library.
//!
//! Every error here is a usage or setup problem (bad flags, unreachable target,
//! unwritable output directory, unreadable run for `merge`); a missed SLO is not
//! an error but a verdict, so it never travels through this type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid argument: {0}")]
    Usage(String),
    #[error("target {target}: {reason}")]
    Target { target: String, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("histogram data: {0}")]
    Histogram(String),
    #[error("cannot merge: {0}")]
    Merge(String),
}

impl Error {
    /// Exit status for every library error: usage and setup failures share 2 so
    /// that CI can tell "the service missed its SLO" (1) from "the test never ran".
    pub fn exit_code(&self) -> u8 {
        crate::EXIT_USAGE
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
