//! Where data lives: MySQL is the source of truth; Redis holds copies for the hot path.

pub mod mysql;
pub mod redis;

/// A value and the MySQL row version it was read at. Redis copies keep the version so that a
/// delayed or repeated write can never replace a newer value with an older one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}
