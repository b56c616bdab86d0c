//! The reservation domain: activities users reserve, and their reservations.
//! Input is parsed into these types at the edge, so the rest of the service never sees raw input.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Shared with the load generator, which checks it against what it sent.
pub use leaklab_contract::ReservationState;

pub const MAX_TITLE_CHARS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActivityStatus {
    Open,
    Closed,
}

impl ActivityStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

// Stored as VARCHAR with a CHECK constraint (portable across MySQL and MariaDB, unlike ENUM
// decoding), so rows decode through these conversions.
impl TryFrom<String> for ActivityStatus {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "open" => Ok(Self::Open),
            "closed" => Ok(Self::Closed),
            other => Err(format!("unknown activity status {other:?}")),
        }
    }
}

/// An activity as stored, without its live reserved count (which changes on every reservation and
/// so is never cached in-process).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct ActivityRecord {
    pub id: u64,
    pub title: String,
    pub starts_at: DateTime<Utc>,
    pub capacity: Option<u32>,
    #[sqlx(try_from = "String")]
    pub status: ActivityStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What the page endpoint needs of one activity: the record and the ids of its related
/// activities. This is the value held by the in-process cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivitySummary {
    pub activity: ActivityRecord,
    pub related_ids: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Activity {
    #[serde(flatten)]
    pub record: ActivityRecord,
    /// Active reservations right now.
    pub reserved_count: u32,
}

/// Body of `POST /v1/activities`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewActivityRequest {
    /// 1 to 200 characters, not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub title: String,
    /// RFC 3339 timestamp, years 1000 to 9999.
    #[schema(pattern = r"^[1-9][0-9]{3}-")]
    pub starts_at: DateTime<Utc>,
    /// Omit or null for unlimited.
    #[serde(default)]
    pub capacity: Option<u32>,
    #[serde(default)]
    pub status: Option<ActivityStatus>,
}

/// A validated new activity.
#[derive(Debug, Clone)]
pub struct NewActivity {
    pub title: String,
    pub starts_at: DateTime<Utc>,
    pub capacity: Option<u32>,
    pub status: ActivityStatus,
}

impl TryFrom<NewActivityRequest> for NewActivity {
    type Error = String;

    fn try_from(req: NewActivityRequest) -> Result<Self, String> {
        let title = req.title.trim().to_owned();
        if title.is_empty() {
            return Err("title must not be blank".into());
        }
        if title.chars().count() > MAX_TITLE_CHARS {
            return Err(format!(
                "title must be at most {MAX_TITLE_CHARS} characters"
            ));
        }
        if title.chars().any(char::is_control) {
            return Err("title must not contain control characters".into());
        }
        // DATETIME(6) holds years 1000..=9999.
        let year = chrono::Datelike::year(&req.starts_at);
        if !(1000..=9999).contains(&year) {
            return Err("starts_at must be between years 1000 and 9999".into());
        }
        Ok(Self {
            title,
            starts_at: req.starts_at,
            capacity: req.capacity,
            status: req.status.unwrap_or(ActivityStatus::Open),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Reservation {
    pub id: u64,
    pub activity_id: u64,
    pub user_id: u64,
    #[sqlx(try_from = "String")]
    pub state: ReservationState,
    /// Bumped on every state change.
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a user's view of an activity says about their reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UserReservation {
    Active,
    Cancelled,
    None,
}

impl From<Option<ReservationState>> for UserReservation {
    fn from(state: Option<ReservationState>) -> Self {
        match state {
            Some(ReservationState::Active) => Self::Active,
            Some(ReservationState::Cancelled) => Self::Cancelled,
            None => Self::None,
        }
    }
}
