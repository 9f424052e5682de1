//! The pools of idle coroutine threads (and native stacks): their settings and counters. Each backend keeps its
//! own pool (the thread backend's is `backend/thread/pool.rs`); this module asks each for its counts and
//! trimming.
//!
//! When a coroutine of the thread backend finishes, its OS thread does not exit: it puts itself back in this
//! pool and waits (on a channel of its own) for the next coroutine. Creating a coroutine takes the most
//! recently idled thread whose [`Builder`](crate::Builder) settings (name, stack size) match; only when none
//! matches does it spawn a thread. So a create-enter-finish lifecycle costs a couple of hand-offs instead of a
//! `thread::spawn` and a join.
//!
//! The pool follows demand and shrinks back by itself (QEMU's `qemu_coroutine_inc_pool_size` idea, made
//! automatic):
//! - every thread that finishes waits idle for the next coroutine, so after a burst of `n` coroutines at once
//!   (or a chain `n` deep) the next burst of up to `n` spawns no thread. At most [`BURST_CAP`] threads wait
//!   idle (or [`max_idle`] if that is larger); a thread that finishes while that many wait exits;
//! - a thread idle for longer than [`idle_timeout`] (default [`DEFAULT_IDLE_TIMEOUT`]) exits, so once the
//!   burst is over the pool shrinks back by itself, below [`max_idle`] (default [`DEFAULT_MAX_IDLE`], QEMU's
//!   pool size; the bound kept at rest) and in the end to none. [`set_max_idle`] tells the idle threads beyond
//!   the new bound to exit at once.
//!
//! The native backend's stacks follow the same rule (see `native_stats`). Idle threads and stacks keep their
//! mappings, so they count against the per-process mapping limit: a spawn beyond it is still refused with an
//! `Err`. They give way there: a refused native spawn unmaps the idle stacks and tries once more; a refused
//! thread spawn tells the idle threads to exit, so that a later spawn goes through.
//!
//! Setting `max_idle` to 0 switches pooling off: every coroutine then gets a fresh thread, which exits when the
//! coroutine finishes. The environment variable `COTHREAD_MAX_IDLE`, read once when the pool is first used,
//! sets the initial bound. Under `--cfg loom` the initial bound is 0 (see the README's "Checking your own code
//! with loom").
//!
//! Nothing of the crate's own state (current coroutine, cancellation) carries over from one coroutine to the next
//! on the same thread. Thread-locals that *user code* set do carry over: a coroutine that sets a
//! `thread_local!` may leave it set for the next coroutine that happens to get the same thread.
//!
//! ```
//! use cothread::{pool, Backend, Builder};
//!
//! pool::set_max_idle(8);
//! let mut co = Builder::new().backend(Backend::Thread).spawn(|| 1 + 1)?;
//! assert_eq!(co.enter().into_returned(), Some(2));
//! let stats = pool::stats();
//! assert!(stats.created >= 1);
//! assert!(stats.idle <= 8);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::time::Duration;

use crate::backend::{self, Backend};

pub use crate::backend::PoolStats;

/// Default bound on idle threads: 64, the size of QEMU's first coroutine pool.
pub const DEFAULT_MAX_IDLE: usize = crate::settings::DEFAULT_MAX_IDLE;

/// Default time an idle thread waits for work before it exits (and a native stack beyond [`max_idle`] stays
/// idle before it is unmapped).
pub const DEFAULT_IDLE_TIMEOUT: Duration = crate::settings::DEFAULT_IDLE_TIMEOUT;

/// The most threads (or native stacks) a pool keeps idle after a burst, whatever its size, unless [`max_idle`]
/// is larger: 4,096. Those beyond [`max_idle`] go after [`idle_timeout`].
pub const BURST_CAP: usize = crate::settings::BURST_CAP;

/// Sets the bound kept at rest. Setting it tells the idle threads beyond it (oldest first) to exit, and unmaps
/// the idle native stacks beyond it, a burst's included. 0 turns pooling off. Like QEMU's
/// `qemu_coroutine_inc_pool_size`, this can change at any time.
pub fn set_max_idle(max: usize) {
    crate::settings::store_max_idle(max);
    backend::trim_pools(max);
}

/// The bound on idle threads.
pub fn max_idle() -> usize {
    crate::settings::max_idle()
}

/// Sets how long an idle thread waits for a new coroutine before it exits, and how long a native stack beyond
/// [`max_idle`] stays idle before it is unmapped. Threads already waiting keep the timeout they started with;
/// idle stacks get the new one.
pub fn set_idle_timeout(timeout: Duration) {
    crate::settings::store_idle_timeout(timeout);
}

/// How long an idle thread waits for a new coroutine before it exits (and a native stack beyond [`max_idle`]
/// stays idle).
pub fn idle_timeout() -> Duration {
    crate::settings::idle_timeout()
}

/// The pool's counters.
pub fn stats() -> PoolStats {
    backend::pool_stats(Backend::Thread)
}

/// The counters of the native backend's stack pool, in the same shape: `created` counts stacks mapped,
/// `reused` coroutines that got an idle stack, `idle` stacks idle now, `exited` stacks unmapped.
///
/// Each thread keeps the last stack it got back (for its next coroutine; unmapped when the thread exits), and
/// the shared pool the others: [`max_idle`] of them for good, and beyond those, up to [`BURST_CAP`] stacks that
/// came back within [`idle_timeout`], so a repeated burst or deep chain maps no new stack. A stack beyond
/// [`max_idle`] that stays unused for the idle timeout is unmapped lazily (no thread watches the clock): when
/// a stack next comes back to the shared pool (a coroutine created while another runs on the same thread, or
/// finished elsewhere, is dropped), or at once by [`set_max_idle`].
/// All zero where [`Backend::Native`] is not compiled in (see [`Backend::is_available`]).
#[cfg(feature = "native")]
pub fn native_stats() -> PoolStats {
    backend::pool_stats(Backend::Native)
}

/// Under loom: make every idle thread's timeout fire now (time does not pass in a model).
#[cfg(loom)]
pub fn expire_idle_timeouts() {
    crate::sync::channel::expire_timeouts();
}

/// Under loom: switch pooling off (which tells every idle thread to exit) and wait until every pool thread
/// of this execution has exited. Under loom pooling is off unless a model turns it on with [`set_max_idle`];
/// such a model calls this last, because loom requires every thread to have finished when the model's closure
/// returns (an idle pool thread never does). A thread that never comes back idle makes loom report a deadlock.
#[cfg(loom)]
pub fn exit_all_and_join() {
    set_max_idle(0);
    crate::sync::thread::join_spawned();
}
