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
//!   suspended one on another thread hands it to its own thread, which unwinds it (see "Rules").
//!   [`Coroutine`] stays `Send` (it can be created on one thread and started on another): its stack never runs
//!   anywhere but its own thread, so nothing on it is ever touched by two threads.
//! - **Stack overflow** hits the guard page and aborts the process with "has overflowed its stack".
//! - **Pool**: finished coroutines' stacks are kept under the same rules ([`pool::set_max_idle`] at rest, a
//!   burst's for the idle timeout; plus each thread's most recent one), counted by `pool::native_stats()`.
//! - **Where it is unavailable** ([`Backend::is_available`]): on targets corosensei does not support (the feature
//!   is still safe to turn on there: corosensei is not even built), under Miri (the switch is inline assembly)
//!   and under `--cfg loom`, the default stays [`Backend::Thread`] and `Backend::Native` coroutines fail to spawn
//!   with `ErrorKind::Unsupported`. The README's target table lists the targets.
//!
//! # Rules
//! - Entering a coroutine that is running or in the current caller chain panics with "coroutine re-entered
//!   recursively"; [`yield_now`] outside a coroutine panics with "yield_now() called outside a coroutine";
//!   entering a finished coroutine panics with "entered a coroutine that has finished".
//! - A panic inside a coroutine reaches whoever entered it, with the original payload; the coroutine has then
//!   finished.
//! - Dropping a suspended coroutine unwinds its stack from the pending [`yield_now`] (a private payload that
//!   the coroutine's first frame catches), so the destructors there run, and its thread (or stack) goes back to
//!   the pool. If another thread enters it through a handle meanwhile, whichever claims it first unwinds it,
//!   once (the handle's enter then returns as if it had finished); the drop does not panic.
//!   A body that catches that unwind and yields again gets a panic ("a coroutine being dropped caught its
//!   forced unwind and yielded again"), which reaches the dropper. Under `panic = "abort"` nothing can unwind:
//!   dropping a suspended coroutine then leaks it (its thread stays parked, or its stack suspended, and its
//!   destructors never run); one running on another thread (entered through a handle) is leaked at its next
//!   yield, which returns control to its enterer as if it had finished.
//! - **Waiting while being dropped.** A coroutine that is being dropped is never entered again, so a
//!   destructor on its unwinding stack cannot wait: [`yield_now`] returns at once; a channel's `send` or `recv`
//!   that would wait returns its error instead (a send gives its message back), and so does a socket operation
//!   of `cothread::net` (an `io::Error`); a sleep returns at once; a wait that cannot fail (a contended
//!   [`CoMutex`] or [`CoRwLock`], [`CoQueue::wait`], [`runloop::offload`], a pending [`runloop::block_on`])
//!   withdraws from its queue and *abandons* the coroutine: control goes back to the dropper, and the rest of the stack stays
//!   suspended for good (its remaining destructors never run, its thread or native stack is leaked).
//! - **Native coroutines dropped on another thread** (orphans) are handed to their own (home) thread, which
//!   unwinds them (their destructors run there, their stacks go back to the pool) when it next creates a
//!   coroutine (also through [`RunLoop::spawn`]) or runs a [`RunLoop`], and at the latest when it exits. A home thread that does
//!   neither keeps them, suspended. A panic raised during such an unwind is reported on stderr and dropped.
//! - **A loop dropped without unwinding its tasks** there and then (a native loop dropped on another thread,
//!   or any loop under `panic = "abort"`): the drop first withdraws every wait its tasks are in, so a lock is
//!   never handed to one of them and a message never goes into one's slot (it goes to a live receiver, or stays
//!   queued); what such a task holds (a lock guard, a receiver) stays on its stack until that is unwound (or,
//!   under `panic = "abort"`, for good).
//! - **Suspended during its own panic.** A destructor that runs while the body panics may yield. Dropping the
//!   coroutine there lets that unwind finish: the yield returns, each destructor runs once, and the body's
//!   payload then reaches the dropper as a panic (if the dropper is itself unwinding, it is reported on stderr
//!   and dropped).
//! - A [`Coroutine`] can be created on one thread and entered from another; it never runs in two at once.

#![warn(missing_docs)]

mod backend;
pub mod channel;
mod co_queue;
mod control;
mod coroutine;
mod generator;
mod limits;
mod lock;
#[cfg(all(any(unix, windows), not(loom)))]
pub mod net;
pub mod pool;
pub mod runloop;
mod settings;
mod sync;
mod wait;

pub use backend::Backend;
pub use backend::thread::waiter::{DEFAULT_SPIN_LIMIT, set_spin_limit, spin_limit};
pub use co_queue::CoQueue;
pub use coroutine::{Builder, Coroutine, CoroutineRef, Resume, current, in_coroutine, yield_now};
pub use generator::{Generator, GeneratorResult, ScopedGenerator, Yielder};
pub use lock::{CoMutex, CoMutexGuard, CoRwLock, CoRwLockReadGuard, CoRwLockWriteGuard, Relock};
pub use runloop::RunLoop;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
