//! Memory goes back to the system after a burst (issue 29): the allocator
//! is mimalloc (`src/main.rs`), which returns pages that stay free for its
//! purge delay, but only when the thread that freed them calls into it
//! again. An idle worker calls nothing, so each worker asks it once a
//! second ([`give_back`]); and the delay is made short ([`tune`]).
//!
//! Off the request path: one call a second a worker. In a process whose
//! allocator is not mimalloc (the library's tests and benchmarks), these
//! calls touch mimalloc's own, unused, state: harmless.

use std::time::Duration;

/// How often each worker asks the allocator to give back what is free.
pub const GIVE_BACK_EVERY: Duration = Duration::from_secs(1);

/// mimalloc's purge delay, in milliseconds (its default is 1,000, and ten
/// times that for whole arenas): short enough that an idle guard is back
/// near its resting size within a couple of seconds, long enough that a
/// page freed and reused under load is not given back and faulted in
/// again every request.
const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// mimalloc's `mi_option_purge_delay` (`mimalloc.h`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets the allocator's options; first thing in `main`, before any other
/// thread starts.
pub fn tune() {
    // SAFETY: sets an integer option; takes no pointers. mimalloc's options
    // are not synchronised, so this runs before any other thread exists
    // (first thing in `main`).
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
}

/// Runs on each worker thread for its life: gives the thread's free pages
/// back once a second.
pub async fn give_back() {
    let mut every = tokio::time::interval(GIVE_BACK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        // SAFETY: takes no pointers; mimalloc allows it from any thread at
        // any time (it collects the calling thread's heap).
        unsafe { libmimalloc_sys::mi_collect(false) };
    }
}

#[cfg(test)]
mod tests {
    /// Option 15 is the purge delay: before `tune`, it holds mimalloc's
    /// default for it (1,000 ms in mimalloc 3), and `tune` sets it.
    #[test]
    fn tune_sets_the_purge_delay() {
        // SAFETY: reads an integer option (this test's binary does not
        // allocate with mimalloc: nothing else reads or writes it).
        let before = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(before, 1000, "option 15 is not mimalloc's purge delay");
        super::tune();
        // SAFETY: as above.
        let after = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(after, super::PURGE_DELAY_MS);
    }
}
