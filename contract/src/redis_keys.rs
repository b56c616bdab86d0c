//! The service's Redis key layout, under a per-deployment (or per-test) prefix.

/// Builds the keys the service writes under `prefix`.
///
/// ```
/// use leaklab_contract::RedisKeys;
///
/// let keys = RedisKeys::new("leaklab:");
/// assert_eq!(keys.counter(7), "leaklab:cnt:7");
/// assert_eq!(keys.reservation(7, 42), "leaklab:res:7:42");
/// assert_eq!(keys.summary(7), "leaklab:act:7");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RedisKeys<'a> {
    prefix: &'a str,
}

impl<'a> RedisKeys<'a> {
    pub fn new(prefix: &'a str) -> Self {
        Self { prefix }
    }

    pub fn prefix(&self) -> &'a str {
        self.prefix
    }

    /// Hash of an activity's reserved-seat counter (fields `x` value, `v` version).
    pub fn counter(&self, activity_id: impl std::fmt::Display) -> String {
        format!("{}cnt:{activity_id}", self.prefix)
    }

    /// Hash of one user's reservation state for an activity (fields `x` state, `v` version).
    pub fn reservation(
        &self,
        activity_id: impl std::fmt::Display,
        user_id: impl std::fmt::Display,
    ) -> String {
        format!("{}res:{activity_id}:{user_id}", self.prefix)
    }

    /// An activity's cached summary.
    pub fn summary(&self, activity_id: impl std::fmt::Display) -> String {
        format!("{}act:{activity_id}", self.prefix)
    }
}
