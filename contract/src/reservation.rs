//! The wire form of a reservation's state, which the load generator checks against what it sent.

use serde::{Deserialize, Serialize};

/// A reservation's state: `"active"` or `"cancelled"` on the wire, in MySQL and in Redis.
///
/// ```
/// use leaklab_contract::ReservationState;
///
/// assert_eq!(ReservationState::parse("cancelled"), Some(ReservationState::Cancelled));
/// assert_eq!(serde_json::to_string(&ReservationState::Active).unwrap(), r#""active""#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ReservationState {
    Active,
    Cancelled,
}

impl ReservationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

// MySQL stores the state as a VARCHAR with a CHECK constraint; the service's rows decode through
// this (`#[sqlx(try_from = "String")]`).
impl TryFrom<String> for ReservationState {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| format!("unknown reservation state {s:?}"))
    }
}
