//! The service's side of the in-process cache (the `leaklab-cache` crate is the cache itself):
//! the slot holding the cache in use, its instrumented reads and writes, the sweep, the mode a
//! runtime flip stores in MySQL, and pre-ageing at startup.

pub mod lookup;
pub mod mode;
pub mod preage;
mod slot;
mod sweeper;

pub use slot::{ActivityCache, CacheSlot};
pub use sweeper::{SweepPacing, run_sweeper};
