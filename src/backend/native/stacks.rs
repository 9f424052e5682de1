//! The pool of idle native stacks: QEMU's coroutine pool for the native backend.
//!
//! Making a stack is an `mmap` and an `mprotect` (a few microseconds); taking one from here is a lock and a
//! `Vec::pop`. A stack whose coroutine finished comes back here before its enterer gets control back, so a
//! sequential create-enter-finish lifecycle keeps reusing one stack. Stacks are kept per usable size (a
//! [`Builder::stack_size`](crate::Builder::stack_size) bucket), most recently idled first.
//!
//! The bound is the thread pool's: at most [`pool::max_idle`](crate::pool::max_idle) stacks wait idle (0
//! turns pooling off); a stack that comes back to a full pool is unmapped, and so are the oldest surplus
//! stacks when the bound has been lowered. There is no idle timeout: an idle stack holds no thread and no CPU,
//! only the memory its last coroutine touched, which the bound caps. Counters: [`stats`], exposed as
//! [`pool::native_stats`](crate::pool::native_stats).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use corosensei::stack::DefaultStack;

use crate::pool::PoolStats;

/// The default usable size of a native stack: 2 MiB, Rust's default for spawned threads (so code that fits on
/// the thread backend fits here), or `RUST_MIN_STACK` if set, as for threads.
pub(crate) const DEFAULT_STACK_SIZE: usize = 2 << 20;

/// The smallest stack handed out, as `PTHREAD_STACK_MIN` is for threads: smaller requests are rounded up.
const MIN_STACK_SIZE: usize = 16 << 10;

/// Bucket granularity: usable sizes are rounded up to a multiple of this (a page on most targets).
const BUCKET_ALIGN: usize = 4 << 10;

/// The largest stack asked of the operating system; larger requests fail with `OutOfMemory` up front.
const MAX_STACK_SIZE: usize = isize::MAX as usize / 4;

struct Pool {
    /// Idle stacks and their buckets, oldest first.
    idle: Mutex<Vec<(usize, DefaultStack)>>,
    created: AtomicU64,
    reused: AtomicU64,
    freed: AtomicU64,
}

static POOL: Pool = Pool {
    idle: Mutex::new(Vec::new()),
    created: AtomicU64::new(0),
    reused: AtomicU64::new(0),
    freed: AtomicU64::new(0),
};

fn idle() -> MutexGuard<'static, Vec<(usize, DefaultStack)>> {
    // Nothing panics while holding the lock; a poisoned lock still holds a consistent list.
    POOL.idle.lock().unwrap_or_else(|e| e.into_inner())
}

fn default_size() -> usize {
    static DEFAULT: OnceLock<usize> = OnceLock::new();
    *DEFAULT.get_or_init(|| {
        std::env::var("RUST_MIN_STACK")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_STACK_SIZE)
    })
}

/// The bucket (usable size) for a requested stack size, or an error if no such stack can exist.
pub(crate) fn bucket(requested: Option<usize>) -> io::Result<usize> {
    requested
        .unwrap_or_else(default_size)
        .max(MIN_STACK_SIZE)
        .checked_next_multiple_of(BUCKET_ALIGN)
        .filter(|&size| size <= MAX_STACK_SIZE)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::OutOfMemory,
                "cothread: native stack size too large",
            )
        })
}

/// An idle stack of this bucket, or a new one (with a guard page below it).
pub(crate) fn take(size: usize) -> io::Result<DefaultStack> {
    {
        let mut idle = idle();
        if let Some(i) = idle.iter().rposition(|(s, _)| *s == size) {
            let (_, stack) = idle.remove(i);
            drop(idle);
            POOL.reused.fetch_add(1, Ordering::Relaxed);
            return Ok(stack);
        }
    }
    let stack = DefaultStack::new(size)?;
    POOL.created.fetch_add(1, Ordering::Relaxed);
    Ok(stack)
}

/// A stack no coroutine runs on any more comes back: idle, or unmapped if the pool is full.
pub(crate) fn give_back(size: usize, stack: DefaultStack) {
    let max = crate::pool::max_idle();
    let mut idle = idle();
    if idle.len() < max {
        idle.push((size, stack));
        return;
    }
    // Full, or over a bound that has been lowered since: unmap this one and the surplus, outside the lock.
    let n = idle.len() - max;
    let surplus: Vec<_> = idle.drain(..n).collect();
    drop(idle);
    POOL.freed
        .fetch_add(surplus.len() as u64 + 1, Ordering::Relaxed);
    drop(surplus);
    drop(stack);
}

/// Unmaps idle stacks beyond `max`, oldest first.
pub(crate) fn trim(max: usize) {
    let surplus: Vec<_> = {
        let mut idle = idle();
        let n = idle.len().saturating_sub(max);
        idle.drain(..n).collect()
    };
    POOL.freed
        .fetch_add(surplus.len() as u64, Ordering::Relaxed);
}

/// The native stack pool's counters, in the thread pool's shape: `created` counts stacks mapped, `reused`
/// coroutines that got an idle stack, `idle` stacks idle now, `exited` stacks unmapped.
pub(crate) fn stats() -> PoolStats {
    PoolStats {
        created: POOL.created.load(Ordering::Relaxed),
        reused: POOL.reused.load(Ordering::Relaxed),
        idle: idle().len(),
        exited: POOL.freed.load(Ordering::Relaxed),
    }
}
