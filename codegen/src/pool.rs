//! The worker pool used to split kernels and library calls across threads.
//!
//! One process-wide rayon pool with `available_parallelism() - 1` workers (at least
//! one), created on first use: a split runs its first share on the calling thread
//! (`in_place_scope`) and hands the others to the pool, so `threads = 2` on two cores
//! uses both without spawning an OS thread per call (which cost tens of microseconds —
//! more than a small kernel's work). If the pool cannot be created, callers fall back
//! to scoped OS threads.

use std::sync::OnceLock;

static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();

/// The shared pool, or `None` if it could not be created.
pub(crate) fn pool() -> Option<&'static rayon::ThreadPool> {
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        rayon::ThreadPoolBuilder::new()
            .num_threads(cores.saturating_sub(1).max(1))
            .thread_name(|i| format!("onde-worker-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}
