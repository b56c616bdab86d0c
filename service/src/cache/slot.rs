//! The in-process activity cache in use, swappable at runtime (`PUT /admin/cache`).

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use leaklab_cache::{Cache, Config, Mode};

use crate::domain::ActivitySummary;

pub type ActivityCache = dyn Cache<u64, Arc<ActivitySummary>>;

pub struct CacheSlot {
    /// Read by every request, written only by a flip: `ArcSwap` makes the read a few atomic
    /// operations that never wait for a writer. (The cache is a `dyn` value, so the slot holds
    /// an `Arc` of the `Arc` requests take.)
    current: ArcSwap<Arc<ActivityCache>>,
    config: Mutex<Config>,
}

impl CacheSlot {
    pub fn new(config: Config) -> Self {
        Self {
            current: ArcSwap::from_pointee(leaklab_cache::build(&config)),
            config: Mutex::new(config),
        }
    }

    /// The cache to use for one request; a swap does not disturb requests holding the old one.
    pub fn get(&self) -> Arc<ActivityCache> {
        Arc::clone(&self.current.load())
    }

    /// Installs a new, empty cache of `mode`. The old one is dropped on a blocking thread:
    /// freeing millions of leaked nodes takes long enough to stall a request worker.
    pub fn swap(&self, mode: Mode) -> Arc<ActivityCache> {
        // Held across the swap, so that two flips at once install their caches in the order
        // they recorded their modes.
        let mut config = self.config.lock().expect("cache slot poisoned");
        config.mode = mode;
        let fresh = leaklab_cache::build(&config);
        let old = self.current.swap(Arc::new(Arc::clone(&fresh)));
        drop(config);
        tokio::task::spawn_blocking(move || drop(old));
        tracing::info!(%mode, "cache swapped");
        fresh
    }
}
