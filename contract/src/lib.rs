//! The contract between the reservation service and the load generator.
//!
//! The load generator does more than time requests: it tells a shed request (`overloaded`) from
//! one whose write may have landed, and with `--verify` it reads the service's Redis copies back
//! to check that nothing was lost or duplicated. Both sides take the names they must agree on
//! from here, so that a renamed error code or key is a compile error, not a silent miss.

pub mod error;
pub mod redis_keys;
pub mod reservation;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use redis_keys::RedisKeys;
pub use reservation::{ReservationAck, ReservationState};
