//! Coroutine locks: [`CoMutex`] (QEMU's `CoMutex`) and [`CoRwLock`] (`CoRwlock`). Taking a lock that is held
//! makes the coroutine wait (yield to its [`RunLoop`](crate::RunLoop)) instead of blocking the thread; a lock
//! that is released goes straight to the first waiter, in FIFO order.
//!
//! The protected value lives in the lock and moves into the guard while the lock is held (a `Box` for the
//! mutex, an `Arc` shared by the readers of the read-write lock), so guards need no `unsafe` and can be held
//! across yields.

use std::fmt;
use std::ops::{Deref, DerefMut};

use crate::coroutine::{current_id, in_coroutine};
use crate::runloop;
use crate::sync::{Arc, Mutex};
use crate::wait::{self, Outside, WaitQueue, Waiter, Woken};

/// Guards that [`CoQueue::wait`](crate::CoQueue::wait) can release while it waits and take back afterwards
/// (the role of QEMU's `QemuLockable` in `qemu_co_queue_wait`): [`CoMutexGuard`], [`CoRwLockReadGuard`] and
/// [`CoRwLockWriteGuard`]. Sealed.
pub trait Relock: private::Sealed {}

pub(crate) mod private {
    /// The crate-internal half of [`Relock`](super::Relock).
    pub trait Sealed {
        /// Releases the lock (handing it to the next waiter), keeping the guard.
        fn release(&mut self);
        /// Takes the lock back (waiting if needed) after [`Sealed::release`].
        fn reacquire(&mut self);
    }
}

/// The id of the caller's coroutine, 0 outside coroutines.
fn me() -> u64 {
    current_id().unwrap_or(0)
}

/// A mutual-exclusion lock for coroutines (QEMU's `CoMutex`): [`lock`](CoMutex::lock) waits by yielding to the
/// run loop, not by blocking the thread, so the other coroutines of the loop run meanwhile.
///
/// - **FIFO hand-off**: unlocking gives the lock directly to the coroutine that has waited longest; a
///   coroutine arriving meanwhile cannot barge in, so no waiter starves.
/// - **Ownership**: the coroutine that locked must be the one that unlocks (drops the guard); anything else
///   panics ("unlocked by a coroutine that does not hold it"), as QEMU asserts.
/// - [`lock`](CoMutex::lock) must be called inside a coroutine, and if it has to wait, inside one spawned on
///   a [`RunLoop`](crate::RunLoop) (see [the rules](crate::runloop#coroutines-not-spawned-on-a-loop));
///   [`try_lock`](CoMutex::try_lock) works anywhere.
///
/// ```
/// use std::sync::Arc;
/// use cothread::{runloop, CoMutex, RunLoop};
///
/// let counter = Arc::new(CoMutex::new(0));
/// let mut rl = RunLoop::new();
/// for _ in 0..3 {
///     let counter = counter.clone();
///     rl.spawn(move || {
///         for _ in 0..10 {
///             let mut n = counter.lock();
///             let seen = *n;
///             runloop::yield_to_loop(); // others run, but cannot enter the critical section
///             *n = seen + 1;
///         }
///     });
/// }
/// rl.run();
/// assert_eq!(*counter.try_lock().unwrap(), 30);
/// ```
pub struct CoMutex<T> {
    state: Mutex<MutexState<T>>,
}

struct MutexState<T> {
    locked: bool,
    /// The id of the holding coroutine (0: a thread outside coroutines, via `try_lock`). Meaningful while
    /// `locked`.
    holder: u64,
    waiters: WaitQueue,
    /// The value, while no guard has it: always when unlocked, and while handed to a waiter that has not run.
    value: Option<Box<T>>,
}

/// Holds a [`CoMutex`] locked, and its value; dropping it unlocks.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct CoMutexGuard<'a, T> {
    lock: &'a CoMutex<T>,
    /// `Some` while locked; `None` only inside `CoQueue::wait` (released).
    data: Option<Box<T>>,
}

impl<T> CoMutex<T> {
    /// An unlocked mutex holding `value`.
    pub fn new(value: T) -> CoMutex<T> {
        CoMutex {
            state: Mutex::new(MutexState {
                locked: false,
                holder: 0,
                waiters: WaitQueue::default(),
                value: Some(Box::new(value)),
            }),
        }
    }

    /// Locks the mutex, waiting (yielding to the run loop) while another coroutine holds it
    /// (`qemu_co_mutex_lock`). Waiters get the lock in the order they asked.
    ///
    /// # Panics
    /// Outside a coroutine; and if it has to wait in a coroutine not spawned on a
    /// [`RunLoop`](crate::RunLoop).
    pub fn lock(&self) -> CoMutexGuard<'_, T> {
        if !in_coroutine() {
            panic!("cothread: CoMutex::lock() called outside a coroutine");
        }
        CoMutexGuard {
            lock: self,
            data: Some(self.acquire()),
        }
    }

    /// Locks the mutex if nobody holds it (and nobody waits for it); never waits. Works outside coroutines
    /// too.
    pub fn try_lock(&self) -> Option<CoMutexGuard<'_, T>> {
        let me = me();
        let mut st = self.state.lock();
        if st.locked {
            return None;
        }
        st.locked = true;
        st.holder = me;
        let value = Self::take_value(&mut st);
        Some(CoMutexGuard {
            lock: self,
            data: Some(value),
        })
    }

    /// Whether a coroutine holds the mutex (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.state.lock().locked
    }

    /// The value, taking the mutex apart.
    ///
    /// # Panics
    /// If a guard of this mutex was leaked (`std::mem::forget`) while locked: the value went with it.
    pub fn into_inner(self) -> T {
        match self.state.lock().value.take() {
            Some(value) => *value,
            None => panic!("cothread: CoMutex::into_inner: a guard was leaked with the value"),
        }
    }

    /// Takes the lock for the caller, waiting if needed; returns the value.
    fn acquire(&self) -> Box<T> {
        let me = me();
        let node = {
            let mut st = self.state.lock();
            if !st.locked {
                st.locked = true;
                st.holder = me;
                return Self::take_value(&mut st);
            }
            let node = runloop::waiter("CoMutex::lock()", Outside::Panic, None);
            // Planted bug (loom-tests/README.md): the waiter lets go of the lock between its check and its
            // registration, so a release in between finds nobody to hand the lock to.
            #[cfg(cothread_planted_bug = "register_after_unlock")]
            let mut st = {
                drop(st);
                self.state.lock()
            };
            st.waiters.push((), node.clone());
            node
        };
        // Woken means handed the lock: `holder` is already us.
        let state = node.block_under(
            &self.state,
            |st| {
                st.waiters.remove(&node);
                Vec::new()
            },
            // Handed the lock but dropped before running: pass it on.
            |st| Self::hand_on(st).into_iter().collect(),
        );
        if state == wait::DROPPED {
            crate::coroutine::abandon_current();
        }
        Self::take_value(&mut self.state.lock())
    }

    /// Puts the value back and releases the lock held by the caller.
    fn release(&self, value: Box<T>) {
        let me = me();
        let next = {
            let mut st = self.state.lock();
            st.value = Some(value);
            if st.holder != me && !std::thread::panicking() {
                let holder = st.holder;
                drop(st);
                panic!(
                    "cothread: CoMutex unlocked by a coroutine that does not hold it (held by {}, unlocked by {})",
                    describe(holder),
                    describe(me)
                );
            }
            Self::hand_on(&mut st)
        };
        if let Some(next) = next {
            next.wake();
        }
    }

    /// Unlocks, or gives the lock to the first waiter; returns the waiter to wake.
    fn hand_on(st: &mut MutexState<T>) -> Option<Arc<Waiter>> {
        // Dead waiters (see `wait::DEAD`) are skipped.
        match st.waiters.pop(wait::WOKEN) {
            Some(next) => {
                st.holder = next.waiter_id();
                Some(next)
            }
            None => {
                st.locked = false;
                None
            }
        }
    }

    fn take_value(st: &mut MutexState<T>) -> Box<T> {
        match st.value.take() {
            Some(value) => value,
            // Only the holder takes the value, and every guard puts it back as it unlocks.
            None => unreachable!("a locked CoMutex found its value missing"),
        }
    }
}

fn describe(id: u64) -> String {
    if id == 0 {
        "code outside coroutines".to_string()
    } else {
        format!("coroutine {id}")
    }
}

impl<T: Default> Default for CoMutex<T> {
    fn default() -> CoMutex<T> {
        CoMutex::new(T::default())
    }
}

impl<T> fmt::Debug for CoMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.lock();
        f.debug_struct("CoMutex")
            .field("locked", &st.locked)
            .field("waiters", &st.waiters.len())
            .finish_non_exhaustive()
    }
}

impl<T> Deref for CoMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.data
            .as_deref()
            .expect("a CoMutexGuard holds the value while locked")
    }
}

impl<T> DerefMut for CoMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.data
            .as_deref_mut()
            .expect("a CoMutexGuard holds the value while locked")
    }
}

impl<T> Drop for CoMutexGuard<'_, T> {
    fn drop(&mut self) {
        if let Some(value) = self.data.take() {
            self.lock.release(value);
        }
    }
}

impl<T> private::Sealed for CoMutexGuard<'_, T> {
    fn release(&mut self) {
        if let Some(value) = self.data.take() {
            self.lock.release(value);
        }
    }

    fn reacquire(&mut self) {
        if self.data.is_none() {
            self.data = Some(self.lock.acquire());
        }
    }
}

impl<T> Relock for CoMutexGuard<'_, T> {}

impl<T: fmt::Debug> fmt::Debug for CoMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CoMutexGuard").field(&self.data).finish()
    }
}

/// A read-write lock for coroutines (QEMU's `CoRwlock`): many readers or one writer; waiting yields to the
/// run loop.
///
/// Waiters are served in FIFO order: a reader that arrives while a writer waits queues behind it, so a stream
/// of readers cannot starve a writer; when the lock becomes free, the waiters at the head of the queue are
/// admitted (all the readers up to the first writer, or that writer).
///
/// [`upgrade`](CoRwLock::upgrade) and [`downgrade`](CoRwLock::downgrade) convert guards. As in QEMU, an
/// upgrade by a reader that is not alone, or while others wait, releases its read lock and queues for the
/// write lock like any writer: the value may change in between.
///
/// [`read`](CoRwLock::read) and [`write`](CoRwLock::write) follow the same rules as
/// [`CoMutex::lock`] (inside a coroutine; waiting only on a run loop). There is no ownership check.
///
/// ```
/// use std::sync::Arc;
/// use cothread::{CoRwLock, RunLoop};
///
/// let config = Arc::new(CoRwLock::new(String::from("v1")));
/// let mut rl = RunLoop::new();
/// let c = config.clone();
/// let reader = rl.spawn(move || c.read().clone());
/// let c = config.clone();
/// rl.spawn(move || {
///     let r = c.read();
///     let mut w = CoRwLock::upgrade(r);
///     w.push_str("+patch");
///     let r = CoRwLock::downgrade(w);
///     assert_eq!(*r, "v1+patch");
/// });
/// rl.run();
/// assert_eq!(reader.take().unwrap(), "v1");
/// assert_eq!(*config.try_read().unwrap(), "v1+patch");
/// ```
pub struct CoRwLock<T> {
    state: Mutex<RwState>,
    /// The value, shared with the readers' guards; taken out by the writer.
    data: Mutex<Option<Arc<T>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Read,
    Write,
}

struct RwState {
    readers: usize,
    writer: bool,
    queue: WaitQueue<(), Want>,
}

impl RwState {
    /// Admits the waiters at the head of the queue that can go now; returns them, to wake.
    fn admit(&mut self) -> Woken<()> {
        let mut woken = Vec::new();
        // Dead waiters (see `wait::DEAD`) are skipped; a writer is admitted alone, and stops the admission.
        while !self.writer {
            let readers = self.readers;
            let Some((want, node)) = self
                .queue
                .pop_if(wait::WOKEN, |want| want == Want::Read || readers == 0)
            else {
                break;
            };
            match want {
                Want::Read => self.readers += 1,
                Want::Write => self.writer = true,
            }
            woken.push(node);
        }
        woken
    }

    /// Gives up what a waiter of kind `want` was granted.
    fn release(&mut self, want: Want) {
        match want {
            Want::Read => self.readers -= 1,
            Want::Write => self.writer = false,
        }
    }
}

/// Holds a [`CoRwLock`] for reading; dropping it unlocks.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct CoRwLockReadGuard<'a, T> {
    lock: &'a CoRwLock<T>,
    /// `Some` while read-locked.
    data: Option<Arc<T>>,
}

/// Holds a [`CoRwLock`] for writing; dropping it unlocks.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct CoRwLockWriteGuard<'a, T> {
    lock: &'a CoRwLock<T>,
    /// `Some` while write-locked; the only reference to the value then.
    data: Option<Arc<T>>,
}

impl<T> CoRwLock<T> {
    /// An unlocked lock holding `value`.
    pub fn new(value: T) -> CoRwLock<T> {
        CoRwLock {
            state: Mutex::new(RwState {
                readers: 0,
                writer: false,
                queue: WaitQueue::default(),
            }),
            data: Mutex::new(Some(Arc::new(value))),
        }
    }

    /// Locks for reading (`qemu_co_rwlock_rdlock`), waiting while a writer holds the lock or any coroutine
    /// waits for it.
    ///
    /// # Panics
    /// Outside a coroutine; and if it has to wait in a coroutine not spawned on a
    /// [`RunLoop`](crate::RunLoop).
    pub fn read(&self) -> CoRwLockReadGuard<'_, T> {
        if !in_coroutine() {
            panic!("cothread: CoRwLock::read() called outside a coroutine");
        }
        self.acquire(Want::Read, "CoRwLock::read()");
        self.read_guard()
    }

    /// Locks for writing (`qemu_co_rwlock_wrlock`), waiting while anybody holds the lock or waits for it.
    ///
    /// # Panics
    /// As [`read`](CoRwLock::read).
    pub fn write(&self) -> CoRwLockWriteGuard<'_, T> {
        if !in_coroutine() {
            panic!("cothread: CoRwLock::write() called outside a coroutine");
        }
        self.acquire(Want::Write, "CoRwLock::write()");
        self.write_guard()
    }

    /// Locks for reading if that needs no wait. Works outside coroutines too.
    pub fn try_read(&self) -> Option<CoRwLockReadGuard<'_, T>> {
        {
            let mut st = self.state.lock();
            if st.writer || !st.queue.is_empty() {
                return None;
            }
            st.readers += 1;
        }
        Some(self.read_guard())
    }

    /// Locks for writing if that needs no wait. Works outside coroutines too.
    pub fn try_write(&self) -> Option<CoRwLockWriteGuard<'_, T>> {
        {
            let mut st = self.state.lock();
            if st.writer || st.readers > 0 || !st.queue.is_empty() {
                return None;
            }
            st.writer = true;
        }
        Some(self.write_guard())
    }

    /// Turns a read lock into the write lock (`qemu_co_rwlock_upgrade`). If the caller is the only reader and
    /// nobody waits, at once; otherwise it releases its read lock and waits for the write lock behind the
    /// coroutines already waiting, so the value may have changed when this returns.
    ///
    /// # Panics
    /// If it has to wait outside a coroutine spawned on a [`RunLoop`](crate::RunLoop).
    pub fn upgrade(mut guard: CoRwLockReadGuard<'_, T>) -> CoRwLockWriteGuard<'_, T> {
        let lock = guard.lock;
        let (node, woken) = {
            let mut st = lock.state.lock();
            if st.readers == 1 && st.queue.is_empty() {
                st.readers = 0;
                st.writer = true;
                (None, Vec::new())
            } else {
                let node = runloop::waiter("CoRwLock::upgrade()", Outside::Panic, None);
                // Our clone of the value goes before any writer can be admitted.
                guard.data = None;
                st.readers -= 1;
                st.queue.push(Want::Write, node.clone());
                (Some(node), st.admit())
            }
        };
        // The read lock is accounted for above: the guard must not release it again.
        guard.data = None;
        drop(guard);
        wait::wake_all(woken);
        if let Some(node) = node {
            lock.wait_granted(&node, Want::Write);
        }
        lock.write_guard()
    }

    /// Turns the write lock into a read lock (`qemu_co_rwlock_downgrade`) without letting a writer in between;
    /// readers waiting at the head of the queue are admitted with it.
    pub fn downgrade(mut guard: CoRwLockWriteGuard<'_, T>) -> CoRwLockReadGuard<'_, T> {
        let lock = guard.lock;
        let data = guard.data.take();
        if let Some(value) = &data {
            *lock.data.lock() = Some(value.clone());
        }
        drop(guard);
        let woken = {
            let mut st = lock.state.lock();
            st.writer = false;
            st.readers += 1;
            st.admit()
        };
        wait::wake_all(woken);
        CoRwLockReadGuard { lock, data }
    }

    /// Whether the lock is held, for reading or writing (a snapshot).
    pub fn is_locked(&self) -> bool {
        let st = self.state.lock();
        st.writer || st.readers > 0
    }

    /// The value, taking the lock apart.
    ///
    /// # Panics
    /// If a guard of this lock was leaked (`std::mem::forget`).
    pub fn into_inner(self) -> T {
        match self.data.lock().take().map(Arc::try_unwrap) {
            Some(Ok(value)) => value,
            _ => panic!("cothread: CoRwLock::into_inner: a guard was leaked with the value"),
        }
    }

    fn acquire(&self, want: Want, op: &str) {
        let node = {
            let mut st = self.state.lock();
            let free = match want {
                Want::Read => !st.writer && st.queue.is_empty(),
                Want::Write => !st.writer && st.readers == 0 && st.queue.is_empty(),
            };
            if free {
                match want {
                    Want::Read => st.readers += 1,
                    Want::Write => st.writer = true,
                }
                return;
            }
            let node = runloop::waiter(op, Outside::Panic, None);
            st.queue.push(want, node.clone());
            node
        };
        self.wait_granted(&node, want);
    }

    /// Waits until `node` (queued for `want`) is admitted.
    fn wait_granted(&self, node: &Arc<Waiter>, want: Want) {
        let state = node.block_under(
            &self.state,
            // Leaving the queue (or the lock) may let the next waiters in.
            |st| {
                st.queue.remove(node);
                st.admit()
            },
            |st| {
                st.release(want);
                st.admit()
            },
        );
        if state == wait::DROPPED {
            crate::coroutine::abandon_current();
        }
    }

    fn unlock(&self, want: Want) {
        let woken = {
            let mut st = self.state.lock();
            st.release(want);
            st.admit()
        };
        wait::wake_all(woken);
    }

    fn read_guard(&self) -> CoRwLockReadGuard<'_, T> {
        let data = self.data.lock().clone();
        debug_assert!(data.is_some(), "a read-locked CoRwLock has its value");
        CoRwLockReadGuard { lock: self, data }
    }

    fn write_guard(&self) -> CoRwLockWriteGuard<'_, T> {
        let data = self.data.lock().take();
        debug_assert!(data.is_some(), "a write-locked CoRwLock has its value");
        CoRwLockWriteGuard { lock: self, data }
    }
}

impl<T: Default> Default for CoRwLock<T> {
    fn default() -> CoRwLock<T> {
        CoRwLock::new(T::default())
    }
}

impl<T> fmt::Debug for CoRwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.lock();
        f.debug_struct("CoRwLock")
            .field("readers", &st.readers)
            .field("writer", &st.writer)
            .field("waiters", &st.queue.len())
            .finish_non_exhaustive()
    }
}

impl<T> Deref for CoRwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.data
            .as_deref()
            .expect("a CoRwLockReadGuard holds the value while locked")
    }
}

impl<T> Drop for CoRwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        // Release our reference to the value before a writer can be admitted.
        if self.data.take().is_some() {
            self.lock.unlock(Want::Read);
        }
    }
}

impl<T> Deref for CoRwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.data
            .as_deref()
            .expect("a CoRwLockWriteGuard holds the value while locked")
    }
}

impl<T> DerefMut for CoRwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // The writer is admitted only when no reader holds a reference, and readers take one only once admitted.
        self.data
            .as_mut()
            .and_then(Arc::get_mut)
            .expect("a CoRwLockWriteGuard holds the only reference to the value")
    }
}

impl<T> Drop for CoRwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        if let Some(value) = self.data.take() {
            *self.lock.data.lock() = Some(value);
            self.lock.unlock(Want::Write);
        }
    }
}

impl<T> private::Sealed for CoRwLockReadGuard<'_, T> {
    fn release(&mut self) {
        if self.data.take().is_some() {
            self.lock.unlock(Want::Read);
        }
    }

    fn reacquire(&mut self) {
        if self.data.is_none() {
            self.lock
                .acquire(Want::Read, "CoQueue::wait() retaking a read lock");
            self.data = self.lock.read_guard().data.take();
        }
    }
}

impl<T> private::Sealed for CoRwLockWriteGuard<'_, T> {
    fn release(&mut self) {
        if let Some(value) = self.data.take() {
            *self.lock.data.lock() = Some(value);
            self.lock.unlock(Want::Write);
        }
    }

    fn reacquire(&mut self) {
        if self.data.is_none() {
            self.lock
                .acquire(Want::Write, "CoQueue::wait() retaking a write lock");
            self.data = self.lock.write_guard().data.take();
        }
    }
}

impl<T> Relock for CoRwLockReadGuard<'_, T> {}
impl<T> Relock for CoRwLockWriteGuard<'_, T> {}

impl<T: fmt::Debug> fmt::Debug for CoRwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CoRwLockReadGuard")
            .field(&self.data)
            .finish()
    }
}

impl<T: fmt::Debug> fmt::Debug for CoRwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CoRwLockWriteGuard")
            .field(&self.data)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn node() -> Arc<Waiter> {
        Waiter::for_thread(None)
    }

    #[test]
    fn admit_lets_in_the_readers_at_the_head_up_to_the_first_writer() {
        let mut st = RwState {
            readers: 0,
            writer: false,
            queue: WaitQueue::default(),
        };
        let nodes: Vec<_> = (0..4).map(|_| node()).collect();
        for (want, n) in [Want::Read, Want::Read, Want::Write, Want::Read]
            .into_iter()
            .zip(&nodes)
        {
            st.queue.push(want, n.clone());
        }
        let woken = st.admit();
        assert_eq!(woken.len(), 2);
        assert_eq!((st.readers, st.writer, st.queue.len()), (2, false, 2));
        assert!(nodes[..2].iter().all(|n| n.state() == wait::WOKEN));
        assert_eq!(nodes[2].state(), wait::WAITING);
        st.release(Want::Read);
        assert!(st.admit().is_empty(), "a reader still holds the lock");
        st.release(Want::Read);
        let woken = st.admit();
        assert_eq!(woken.len(), 1, "the writer alone");
        assert!(Arc::ptr_eq(&woken[0], &nodes[2]));
        assert_eq!((st.readers, st.writer), (0, true));
        assert!(st.admit().is_empty(), "nothing passes a writer");
        st.release(Want::Write);
        assert_eq!(st.admit().len(), 1);
        assert_eq!((st.readers, st.writer, st.queue.len()), (1, false, 0));
    }

    #[test]
    fn hand_on_gives_the_mutex_to_the_first_waiter_or_unlocks() {
        let mut st = MutexState::<()> {
            locked: true,
            holder: 7,
            waiters: WaitQueue::default(),
            value: None,
        };
        let (a, b) = (node(), node());
        st.waiters.push((), a.clone());
        st.waiters.push((), b.clone());
        let next = CoMutex::<()>::hand_on(&mut st).unwrap();
        assert!(Arc::ptr_eq(&next, &a));
        assert!(st.locked, "handed over, not released");
        assert_eq!(a.state(), wait::WOKEN);
        assert_eq!(b.state(), wait::WAITING);
        assert!(Arc::ptr_eq(&CoMutex::<()>::hand_on(&mut st).unwrap(), &b));
        assert!(CoMutex::<()>::hand_on(&mut st).is_none());
        assert!(!st.locked);
    }
}
