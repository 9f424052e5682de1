//! Stackful coroutines with the semantics of QEMU's (`qemu_coroutine_create`, `_enter`, `_yield`, `_self`,
//! `qemu_in_coroutine`, nested callers, a pool of reusable coroutines), that run wherever `std::thread` does.
//!
//! ```
//! use cothread::{yield_now, Coroutine, Resume};
//!
//! let mut co = Coroutine::new(|| {
//!     let mut total = 0;
//!     for i in 1..=3 {
//!         total += i;
//!         yield_now(); // back to whoever entered us
//!     }
//!     total
//! });
//! while let Resume::Yielded = co.enter() {}
//! assert!(co.is_finished());
//! ```
//!
//! | QEMU | cothread |
//! | --- | --- |
//! | `qemu_coroutine_create(f, opaque)` | [`Coroutine::new`], [`Builder::spawn`] |
//! | `qemu_coroutine_enter(co)` | [`Coroutine::enter`], [`CoroutineRef::enter`] |
//! | `qemu_coroutine_enter_if_inactive(co)` | [`CoroutineRef::enter_if_inactive`] |
//! | `qemu_coroutine_yield()` | [`yield_now`] |
//! | `qemu_coroutine_self()` | [`current`] |
//! | `qemu_in_coroutine()` | [`in_coroutine`] |
//! | `qemu_coroutine_entered(co)` | [`CoroutineRef::is_entered`] |
//! | the coroutine pool | [`pool`] |
//!
//! # The thread backend
//!
//! By default each coroutine runs on an OS thread of its own, taken from a [`pool`] of idle threads, and
//! control passes between a coroutine and its enterer by a hand-off (the "baton"), as in QEMU's
//! `coroutine-gthread.c`. Only one thread of a caller chain runs at a time, so code inside a coroutine behaves
//! as if it ran on the enterer's stack, with these differences from stack switching:
//!
//! - **Thread-locals**: inside a coroutine, `thread_local!` values are the coroutine thread's own, not the
//!   enterer's. A pooled thread keeps the thread-locals that user code set for the next coroutine it runs.
//! - **Cost**: an enter/yield round trip is a hand-off between two threads (see the README for figures), not a
//!   few nanoseconds; waiting threads spin briefly before they park ([`set_spin_limit`]).
//! - **Stack size**: [`Builder::stack_size`] sizes the coroutine's thread.
//! - **`std::thread::current()`** inside a coroutine is the coroutine's thread (named after
//!   [`Builder::name`]).
//!
//! # The native backend
//!
//! With the `native` feature, coroutines run by default on `Backend::Native`: each on a stack of its own
//! (pooled, with a guard page) switched to on the thread that enters it, as in QEMU's `coroutine-ucontext.c`;
//! an enter/yield round trip then costs nanoseconds. [`Builder::backend`] still picks [`Backend::Thread`] for
//! any coroutine. What differs from the thread backend:
//!
//! - **Thread-locals**, `std::thread::current()` and `std::thread::panicking()` inside a native coroutine are
//!   those of the thread that runs it.
//! - **One thread**: a native coroutine runs only on the thread that first entered it. Entering it from another
//!   thread panics ("entered a native coroutine on a thread other than the one it runs on"); dropping a
//!   suspended one on another thread leaks it (its stack's destructors never run) instead of unwinding it there.
//!   [`Coroutine`] stays `Send` (it can be created on one thread and started on another): its stack never runs
//!   anywhere but its own thread, so nothing on it is ever touched by two threads.
//! - **Stack overflow** hits the guard page and aborts the process with "has overflowed its stack".
//! - **Pool**: finished coroutines' stacks are kept under the same bound ([`pool::set_max_idle`]; plus each
//!   thread's most recent one), counted by `pool::native_stats()`.
//! - Miri cannot run it (the switch is inline assembly): under Miri the default stays [`Backend::Thread`] and
//!   `Backend::Native` coroutines fail to spawn with `ErrorKind::Unsupported`.
//!
//! # Rules
//! - Entering a coroutine that is running or in the current caller chain panics with "coroutine re-entered
//!   recursively"; [`yield_now`] outside a coroutine panics with "yield_now() called outside a coroutine";
//!   entering a finished coroutine panics with "entered a coroutine that has finished".
//! - A panic inside a coroutine reaches whoever entered it, with the original payload; the coroutine has then
//!   finished.
//! - Dropping a suspended coroutine unwinds its stack from the pending [`yield_now`] (a private payload that
//!   the coroutine's first frame catches; on the native backend, corosensei's forced unwind), so the destructors
//!   there run, and its thread (or stack) goes back to the pool.
//!   A body that catches that unwind and yields again gets a panic ("a coroutine being dropped caught its
//!   forced unwind and yielded again"), which reaches the dropper. Under `panic = "abort"` nothing can unwind:
//!   dropping a suspended coroutine then leaks it (its thread stays parked, its destructors never run).
//! - A [`Coroutine`] can be created on one thread and entered from another; it never runs in two at once.

#![warn(missing_docs)]

mod backend;
mod baton;
pub mod channel;
mod co_queue;
mod coroutine;
mod generator;
mod lock;
pub mod pool;
pub mod runloop;
mod sync;
mod wait;

pub use backend::Backend;
pub use baton::{DEFAULT_SPIN_LIMIT, set_spin_limit, spin_limit};
pub use co_queue::CoQueue;
pub use coroutine::{Builder, Coroutine, CoroutineRef, Resume, current, in_coroutine, yield_now};
pub use generator::{Generator, GeneratorResult, ScopedGenerator, Yielder};
pub use lock::{CoMutex, CoMutexGuard, CoRwLock, CoRwLockReadGuard, CoRwLockWriteGuard, Relock};
pub use runloop::RunLoop;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
