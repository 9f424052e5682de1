//! The pool of idle native stacks: QEMU's coroutine pool for the native backend.
//!
//! Making a stack is an `mmap` and an `mprotect` (several microseconds); reusing one costs a few nanoseconds.
//! Stacks are kept per usable size (a [`Builder::stack_size`](crate::Builder::stack_size) bucket).
//!
//! A finished coroutine keeps its stack until its owner drops it (as any Rust value keeps its memory until
//! then). When the owner drops it with nothing else referring to it, the control block and the stack stay
//! together as the thread's *spare* ([`keep_spare`]), and the next native coroutine created on the thread takes
//! both at once ([`take_spare`]): a sequential create-enter-finish-drop cycle keeps reusing one stack and never
//! takes it apart from its coroutine. A stack that comes back on its own (handles still refer to the finished
//! coroutine, its last reference went, or it never started) goes through [`put_back`].
//!
//! Two levels, as in QEMU (a per-thread pool in front of a global one):
//! - each thread keeps the last stack that came back to it, bare or in its spare (its *hot* stack), for the
//!   next coroutine it creates, with no lock and no atomic read-modify-write;
//! - the shared pool (a lock and two lists) takes the others: up to [`pool::max_idle`](crate::pool::max_idle)
//!   of them (the thread pool's bound) for good, and beyond those, a *surplus* that follows recent demand (QEMU's
//!   `qemu_coroutine_inc_pool_size`, made automatic): every stack that comes back is kept, up to
//!   [`settings::burst_bound`], so a repeated burst or deep chain maps no new stack, and a surplus stack
//!   unused for the idle timeout is unmapped. No thread watches the clock: the surplus is stamped when it comes
//!   back and the expired part (the oldest, at the front) is unmapped when a stack next comes back to the shared
//!   pool. A stack that comes back to a full pool is unmapped; setting the bound unmaps the surplus at once.
//!
//! So at rest at most `max_idle` stacks idle in the shared pool, plus one per thread that runs native coroutines;
//! `max_idle == 0` turns pooling off: every coroutine then gets a fresh stack, and a thread's hot stack is
//! unmapped at its next use of the pool (or when the thread exits). Counters: [`stats`], exposed as
//! [`pool::native_stats`](crate::pool::native_stats); they count hot stacks too.

use std::cell::Cell;
use std::io;
use std::time::Instant;

use corosensei::stack::DefaultStack;

use crate::backend::{Control, PoolStats};
use crate::settings;
use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// The default usable size of a native stack: 2 MiB, Rust's default for spawned threads (so code that fits on
/// the thread backend fits here), or `RUST_MIN_STACK` if set, as for threads.
pub(crate) const DEFAULT_STACK_SIZE: usize = 2 << 20;

/// The smallest stack handed out, as `PTHREAD_STACK_MIN` is for threads: smaller requests are rounded up.
const MIN_STACK_SIZE: usize = 16 << 10;

/// Bucket granularity: usable sizes are rounded up to a multiple of this (a page on most targets).
const BUCKET_ALIGN: usize = 4 << 10;

/// The largest stack asked of the operating system; larger requests fail with `OutOfMemory` up front.
const MAX_STACK_SIZE: usize = isize::MAX as usize / 4;

/// The shared pool and the counters of threads' hot stacks.
///
/// Invariants: `idle` holds at most `max_idle` stacks and is filled first; `idle` and `surplus` together hold at
/// most [`settings::burst_bound`]; `surplus` is in the order its stacks came back (their stamps never decrease).
struct StackPool {
    /// Idle stacks kept for good and their buckets, oldest first.
    idle: Vec<(usize, DefaultStack)>,
    /// Idle stacks beyond `max_idle`, oldest first: bucket, stack, and when it came back.
    surplus: Vec<(usize, DefaultStack, Instant)>,
    /// Coroutines that got a stack from `idle` or `surplus`.
    reused: u64,
    /// The counters of every thread that has used the pool and not exited.
    threads: Vec<Arc<ThreadCounters>>,
    /// Hot-stack reuses counted by threads that have exited.
    retired_reused: u64,
}

/// One thread's counters. Written only by that thread (a load and a store, no read-modify-write), read by
/// [`stats`].
#[derive(Default)]
struct ThreadCounters {
    reused: AtomicU64,
    hot: AtomicUsize,
}

impl ThreadCounters {
    fn bump_reused(&self) {
        let n = self.reused.load(Ordering::Relaxed);
        self.reused.store(n + 1, Ordering::Relaxed);
    }
}

static SHARED: Mutex<StackPool> = Mutex::new(StackPool {
    idle: Vec::new(),
    surplus: Vec::new(),
    reused: 0,
    threads: Vec::new(),
    retired_reused: 0,
});
/// Stacks mapped and unmapped (slow paths only).
static CREATED: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);

fn shared() -> MutexGuard<'static, StackPool> {
    SHARED.lock()
}

/// A thread's hot stack and its counters; the stack is unmapped when the thread exits. Only this thread
/// touches it, through `Cell`s (nothing is borrowed across a call).
///
/// Invariants: at most one of `stack` and `spare` holds something (the hot stack, bare or in a spare);
/// `hot_size` is its bucket, 0 when there is none (no bucket is 0); `counters.hot` says whether there is one.
/// A spare is a finished native coroutine's control block that nothing else refers to, renewed for reuse, and
/// holding its stack.
struct Local {
    hot_size: Cell<usize>,
    stack: Cell<Option<DefaultStack>>,
    spare: Cell<Option<Arc<Control>>>,
    counters: Arc<ThreadCounters>,
}

/// What a thread kept: a bare stack or a spare.
enum Hot {
    Stack(DefaultStack),
    Spare(Arc<Control>),
}

impl Hot {
    /// The stack, out of its spare if need be (the spare's control block is freed).
    fn into_stack(self) -> Option<DefaultStack> {
        match self {
            Hot::Stack(stack) => Some(stack),
            Hot::Spare(co) => super::spare_into_stack(co),
        }
    }
}

impl Local {
    fn new() -> Local {
        let counters = Arc::new(ThreadCounters::default());
        shared().threads.push(counters.clone());
        Local {
            hot_size: Cell::new(0),
            stack: Cell::new(None),
            spare: Cell::new(None),
            counters,
        }
    }

    /// Records that the slot now holds a hot stack of bucket `size`.
    #[inline]
    fn mark_held(&self, size: usize) {
        self.hot_size.set(size);
        self.counters.hot.store(1, Ordering::Relaxed);
    }

    /// Records that the slot is now empty; returns the bucket of what it held.
    #[inline]
    fn mark_empty(&self) -> usize {
        self.counters.hot.store(0, Ordering::Relaxed);
        self.hot_size.replace(0)
    }

    /// Takes the hot stack out, bare or in its spare, whatever its bucket.
    fn take_hot(&self) -> Option<(usize, Hot)> {
        let size = self.mark_empty();
        match self.spare.take() {
            Some(co) => Some((size, Hot::Spare(co))),
            None => self.stack.take().map(|stack| (size, Hot::Stack(stack))),
        }
    }

    /// Makes `hot` (of bucket `size`) the hot stack; returns what it displaces.
    fn put_hot(&self, size: usize, hot: Hot) -> Option<(usize, Hot)> {
        let displaced = self.take_hot();
        self.mark_held(size);
        match hot {
            Hot::Stack(stack) => self.stack.set(Some(stack)),
            Hot::Spare(co) => self.spare.set(Some(co)),
        }
        displaced
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        if let Some(stack) = self.take_hot().and_then(|(_, hot)| hot.into_stack()) {
            free(stack);
        }
        let mut shared = shared();
        shared.retired_reused += self.counters.reused.load(Ordering::Relaxed);
        shared.threads.retain(|c| !Arc::ptr_eq(c, &self.counters));
    }
}

std::thread_local! {
    static LOCAL: Local = Local::new();
}

fn free(stack: DefaultStack) {
    drop(stack);
    crate::limits::release(crate::limits::STACK_MAPS);
    FREED.fetch_add(1, Ordering::Relaxed);
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
#[inline]
pub(crate) fn bucket(requested: Option<usize>) -> io::Result<usize> {
    static DEFAULT: OnceLock<Option<usize>> = OnceLock::new();
    match requested {
        None => *DEFAULT.get_or_init(|| bucket_of(default_size())),
        Some(size) => bucket_of(size),
    }
    .ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            "cothread: native stack size too large",
        )
    })
}

fn bucket_of(size: usize) -> Option<usize> {
    size.max(MIN_STACK_SIZE)
        .checked_next_multiple_of(BUCKET_ALIGN)
        .filter(|&size| size <= MAX_STACK_SIZE)
}

/// An idle stack of this bucket (this thread's hot stack first, out of its spare if need be), or a new one
/// (with a guard page below it).
#[inline]
pub(crate) fn take(size: usize) -> io::Result<DefaultStack> {
    let hot = LOCAL
        .try_with(|local| {
            if local.hot_size.get() == size && settings::max_idle() > 0 {
                local.counters.bump_reused();
                local.take_hot().and_then(|(_, hot)| hot.into_stack())
            } else {
                None
            }
        })
        .ok()
        .flatten();
    match hot {
        Some(stack) => Ok(stack),
        None => take_cold(size),
    }
}

/// This thread's spare, if it has one whose stack is of this bucket (and pooling is on): a finished
/// coroutine's control block with its stack, for a new coroutine.
#[inline]
pub(crate) fn take_spare(size: usize) -> Option<Arc<Control>> {
    LOCAL
        .try_with(|local| {
            if local.hot_size.get() != size || settings::max_idle() == 0 {
                return None;
            }
            let co = local.spare.take()?;
            local.mark_empty();
            local.counters.bump_reused();
            Some(co)
        })
        .ok()
        .flatten()
}

/// Unmaps this thread's hot stack, if it has one (pooling is off).
fn free_hot() {
    if let Ok(Some((_, hot))) = LOCAL.try_with(Local::take_hot)
        && let Some(stack) = hot.into_stack()
    {
        free(stack);
    }
}

/// [`take`] without a hot stack of this bucket: from the shared pool, or a new one. With pooling off, this
/// thread's hot stack, kept from before, is unmapped.
#[cold]
fn take_cold(size: usize) -> io::Result<DefaultStack> {
    if settings::max_idle() == 0 {
        free_hot();
    }
    {
        let mut shared = shared();
        if let Some(i) = shared.idle.iter().rposition(|(s, _)| *s == size) {
            let (_, stack) = shared.idle.remove(i);
            shared.reused += 1;
            return Ok(stack);
        }
        if let Some(i) = shared.surplus.iter().rposition(|(s, ..)| *s == size) {
            let (_, stack, _) = shared.surplus.remove(i);
            shared.reused += 1;
            return Ok(stack);
        }
    }
    match map(size) {
        Ok(stack) => Ok(stack),
        // Idle stacks of other buckets hold mappings too: give them back and try once more.
        Err(e) if free_all_idle() > 0 => map(size).map_err(|_| e),
        Err(e) => Err(e),
    }
}

/// A new stack (with a guard page below it), if the process's mappings allow it.
fn map(size: usize) -> io::Result<DefaultStack> {
    crate::limits::reserve(crate::limits::STACK_MAPS)?;
    match DefaultStack::new(size) {
        Ok(stack) => {
            CREATED.fetch_add(1, Ordering::Relaxed);
            Ok(stack)
        }
        Err(e) => {
            crate::limits::release(crate::limits::STACK_MAPS);
            Err(e)
        }
    }
}

/// Unmaps every stack of the shared pool; returns how many.
fn free_all_idle() -> usize {
    let (idle, surplus) = {
        let mut shared = shared();
        (
            std::mem::take(&mut shared.idle),
            std::mem::take(&mut shared.surplus),
        )
    };
    let n = idle.len() + surplus.len();
    idle.into_iter().for_each(|(_, stack)| free(stack));
    surplus.into_iter().for_each(|(_, stack, _)| free(stack));
    n
}

/// A stack no coroutine runs on any more comes back on its own: it becomes this thread's hot stack, and the one
/// it displaces goes idle in the shared pool (unmapped if that is full). With pooling off, it is unmapped.
#[inline]
pub(crate) fn put_back(size: usize, stack: DefaultStack) {
    keep(size, Hot::Stack(stack));
}

/// The owner of a finished native coroutine that nothing else refers to dropped it: its control block, renewed,
/// becomes this thread's spare with its stack (the thread's hot stack), and the one it displaces goes idle in
/// the shared pool (unmapped if that is full). With pooling off, the stack is unmapped and the block freed.
#[inline]
pub(crate) fn keep_spare(size: usize, co: Arc<Control>) {
    let mut spare = Some(co);
    // The usual case first: the slot is empty (the last spare went to the coroutine now retiring).
    if settings::max_idle() > 0 {
        let _ = LOCAL.try_with(|local| {
            if local.hot_size.get() == 0 {
                local.mark_held(size);
                local.spare.set(spare.take());
            }
        });
    }
    if let Some(co) = spare {
        keep(size, Hot::Spare(co));
    }
}

fn keep(size: usize, hot: Hot) {
    let max = settings::max_idle();
    if max == 0 {
        return keep_unpooled(hot);
    }
    let mut item = Some(hot);
    // `item` stays put if the thread is exiting (its thread-locals are gone): then it goes to the shared pool.
    let displaced = LOCAL
        .try_with(|local| item.take().and_then(|hot| local.put_hot(size, hot)))
        .ok()
        .flatten();
    if let Some((size, hot)) = displaced.or(item.map(|hot| (size, hot))) {
        to_shared(size, hot, max);
    }
}

/// [`keep`] with pooling off: unmaps the stack, and this thread's hot stack if it kept one from before pooling
/// was switched off.
#[cold]
fn keep_unpooled(hot: Hot) {
    free_hot();
    if let Some(stack) = hot.into_stack() {
        free(stack);
    }
}

/// A stack goes idle in the shared pool (out of its spare): kept for good while fewer than `max` are, else in
/// the surplus, stamped; unmapped if the pool is full. The surplus unused for the idle timeout goes first.
#[cold]
fn to_shared(size: usize, hot: Hot, max: usize) {
    let Some(stack) = hot.into_stack() else {
        return;
    };
    let mut shared = shared();
    // The usual case, with no surplus to expire, reads no clock.
    if shared.idle.len() < max && shared.surplus.is_empty() {
        shared.idle.push((size, stack));
        return;
    }
    to_surplus(shared, size, stack, max);
}

/// [`to_shared`] for a pool beyond `max` (or with a surplus): the surplus unused for the idle timeout is
/// unmapped, and `stack` kept (for good if there is room, else in the surplus) or unmapped if the pool is full.
#[cold]
fn to_surplus(
    mut shared: MutexGuard<'static, StackPool>,
    size: usize,
    stack: DefaultStack,
    max: usize,
) {
    let now = Instant::now();
    // Stacks that came back at or before `cutoff` have been unused for the idle timeout.
    let cutoff = now.checked_sub(settings::idle_timeout());
    let is_expired = |since: &Instant| cutoff.is_some_and(|cutoff| *since <= cutoff);
    // Usually none: the oldest is checked alone first.
    let expired: Vec<_> = match shared.surplus.first() {
        Some((.., since)) if is_expired(since) => {
            let n = (shared.surplus.iter())
                .take_while(|(.., since)| is_expired(since))
                .count();
            shared.surplus.drain(..n).collect()
        }
        _ => Vec::new(),
    };
    let mut unkept = None;
    if shared.idle.len() < max {
        shared.idle.push((size, stack));
    } else if shared.idle.len() + shared.surplus.len() < settings::burst_bound(max) {
        shared.surplus.push((size, stack, now));
    } else {
        unkept = Some(stack);
    }
    drop(shared);
    // Unmapped outside the lock.
    if !expired.is_empty() {
        expired.into_iter().for_each(|(_, stack, _)| free(stack));
    }
    if let Some(stack) = unkept {
        free(stack);
    }
}

/// The bound is now `max`: the shared pool's stacks beyond it are unmapped, oldest first, the surplus's
/// included; the newest of the surplus that fit under a raised bound are kept for good.
pub(crate) fn trim(max: usize) {
    let (beyond, surplus): (Vec<_>, Vec<_>) = {
        let mut shared = shared();
        let n = shared.idle.len().saturating_sub(max);
        let beyond = shared.idle.drain(..n).collect();
        let mut surplus = std::mem::take(&mut shared.surplus);
        let room = max - shared.idle.len();
        let fit = surplus.len().saturating_sub(room);
        let fitting = surplus.drain(fit..).map(|(size, stack, _)| (size, stack));
        shared.idle.extend(fitting);
        (beyond, surplus)
    };
    beyond.into_iter().for_each(|(_, stack)| free(stack));
    surplus.into_iter().for_each(|(_, stack, _)| free(stack));
    // This thread's hot stack too, if pooling is now off; other threads drop theirs at their next use.
    if max == 0 {
        free_hot();
    }
}

/// The native stack pool's counters, in the thread pool's shape: `created` counts stacks mapped, `reused`
/// coroutines that got an idle stack, `idle` stacks idle now (threads' hot stacks included), `exited` stacks
/// unmapped.
pub(crate) fn stats() -> PoolStats {
    let shared = shared();
    let hot: usize = shared
        .threads
        .iter()
        .map(|c| c.hot.load(Ordering::Relaxed))
        .sum();
    let hot_reused: u64 = shared
        .threads
        .iter()
        .map(|c| c.reused.load(Ordering::Relaxed))
        .sum();
    PoolStats {
        created: CREATED.load(Ordering::Relaxed),
        reused: shared.reused + shared.retired_reused + hot_reused,
        idle: shared.idle.len() + shared.surplus.len() + hot,
        exited: FREED.load(Ordering::Relaxed),
    }
}
