//! What the load generator reads of a reservation the service returns, to check it against what
//! it sent.

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

/// The part of a reserve or cancel answer (the service's `Reservation`) that the load generator's
/// `--verify` checks: which row, in which state, at which version. The service's response has
/// more fields; a reader of these three ignores them, and a service test deserializes its own
/// answer into this type, so renaming one of them breaks that test, not a run's verification.
///
/// ```
/// use leaklab_contract::{ReservationAck, ReservationState};
///
/// let ack: ReservationAck = serde_json::from_str(
///     r#"{"id":7,"activity_id":1,"user_id":2,"state":"active","version":3}"#,
/// )
/// .unwrap();
/// assert_eq!((ack.id, ack.state, ack.version), (7, ReservationState::Active, 3));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationAck {
    pub id: u64,
    pub state: ReservationState,
    /// Bumped on every state change.
    pub version: u64,
}
