//! User code built on cothread: a [`Tally`] that tasks on a run loop add to, and that publishes its total
//! once to other threads. Under `--cfg loom` it uses loom's atomics and cell, so that loom checks it together
//! with cothread's own hand-offs. With the `planted-bug` feature, the publication forgets its `Release`.
use std::sync::atomic::Ordering;

#[cfg(loom)]
use loom::{cell::UnsafeCell, sync::atomic::AtomicBool};
#[cfg(not(loom))]
use std::{cell::UnsafeCell, sync::atomic::AtomicBool};

use cothread::{CoMutex, runloop::yield_to_loop};

/// The ordering of the store that publishes the total; the planted bug makes it `Relaxed`.
const PUBLISH: Ordering = if cfg!(feature = "planted-bug") {
    Ordering::Relaxed
} else {
    Ordering::Release
};

/// A running total that tasks on a run loop add to (each addition yields to the loop with the lock held, as
/// real work that waits on I/O would), then published once for readers on any thread.
pub struct Tally {
    running: CoMutex<u64>,
    published: UnsafeCell<u64>,
    ready: AtomicBool,
}

// SAFETY: `published` is written once, before `ready` is set (Release), and read only after `ready` is seen set
// (Acquire).
unsafe impl Sync for Tally {}

impl Tally {
    /// A tally that starts at `start`.
    pub fn new(start: u64) -> Self {
        Tally {
            running: CoMutex::new(start),
            published: UnsafeCell::new(0),
            ready: AtomicBool::new(false),
        }
    }

    /// Adds `n`, from a task on a run loop: reads, yields to the loop, writes, all under the lock.
    pub fn add(&self, n: u64) {
        let mut total = self.running.lock();
        let before = *total;
        yield_to_loop();
        *total = before + n;
    }

    /// Publishes the running total. Called once, after the additions.
    pub fn publish(&self) {
        let total = *self.running.lock();
        write(&self.published, total);
        self.ready.store(true, PUBLISH);
    }

    /// The published total, once [`publish`](Tally::publish) has run.
    pub fn published(&self) -> Option<u64> {
        if self.ready.load(Ordering::Acquire) {
            Some(read(&self.published))
        } else {
            None
        }
    }
}

#[cfg(loom)]
fn write(cell: &UnsafeCell<u64>, value: u64) {
    // SAFETY: only `publish` writes, once, before `ready` is set; readers wait for `ready`.
    cell.with_mut(|p| unsafe { *p = value });
}
#[cfg(loom)]
fn read(cell: &UnsafeCell<u64>) -> u64 {
    // SAFETY: `ready` was seen set, so the one write happened before (unless the bug is planted: loom says so).
    cell.with(|p| unsafe { *p })
}
#[cfg(not(loom))]
fn write(cell: &UnsafeCell<u64>, value: u64) {
    // SAFETY: as above.
    unsafe { *cell.get() = value };
}
#[cfg(not(loom))]
fn read(cell: &UnsafeCell<u64>) -> u64 {
    // SAFETY: as above.
    unsafe { *cell.get() }
}
