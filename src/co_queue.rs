//! [`CoQueue`]: a condition variable for coroutines (QEMU's `CoQueue`).

use std::fmt;

use crate::coroutine::in_coroutine;
use crate::lock::Relock;
use crate::runloop;
use crate::sync::{Arc, Mutex};
use crate::wait::{self, Outside, WaitQueue, Waiter};

/// A queue of coroutines waiting for a condition (QEMU's `CoQueue`): [`wait`](CoQueue::wait) releases a lock,
/// suspends the coroutine until [`notify_one`](CoQueue::notify_one) or [`notify_all`](CoQueue::notify_all)
/// wakes it, and takes the lock back.
///
/// Waiters are woken in FIFO order. A notification made inside the task that the loop is running is entered
/// right after that task yields or finishes; one made anywhere else makes the waiter runnable at once (see
/// [the run loop](crate::runloop#how-waiting-and-waking-work)). As with any condition variable, re-check the
/// condition after waking: another coroutine may have changed it before the waiter got the lock back.
///
/// ```
/// use std::sync::Arc;
/// use cothread::{CoMutex, CoQueue, RunLoop};
///
/// let state = Arc::new((CoMutex::new(Vec::new()), CoQueue::new()));
/// let mut rl = RunLoop::new();
/// let s = state.clone();
/// let consumer = rl.spawn(move || {
///     let (items, nonempty) = &*s;
///     let mut items = items.lock();
///     while items.is_empty() {
///         nonempty.wait(&mut items); // unlocks while waiting
///     }
///     items.pop()
/// });
/// let s = state.clone();
/// rl.spawn(move || {
///     let (items, nonempty) = &*s;
///     items.lock().push("job");
///     nonempty.notify_one();
/// });
/// rl.run();
/// assert_eq!(consumer.take(), Some(Some("job")));
/// ```
#[derive(Default)]
pub struct CoQueue {
    waiters: Mutex<WaitQueue>,
}

impl CoQueue {
    /// An empty queue.
    pub fn new() -> CoQueue {
        CoQueue::default()
    }

    /// Releases the lock that `guard` holds, waits until notified, and takes the lock back (waiting for it if
    /// needed) before returning (`qemu_co_queue_wait`). The coroutine joins the queue before it releases the
    /// lock, so a notification sent after the release is not missed.
    ///
    /// # Panics
    /// Outside a coroutine, or in a coroutine not spawned on a [`RunLoop`](crate::RunLoop).
    pub fn wait<G: Relock>(&self, guard: &mut G) {
        let node = self.enqueue("CoQueue::wait()");
        guard.release();
        self.block(&node);
        guard.reacquire();
    }

    /// Waits until notified, holding no lock (`qemu_co_queue_wait(queue, NULL)`). Safe from lost wake-ups only
    /// where nothing can notify between the caller's check of its condition and this call, e.g. when all
    /// notifiers are tasks of the same loop (only one of which runs at a time).
    ///
    /// # Panics
    /// As [`wait`](CoQueue::wait).
    pub fn wait_unlocked(&self) {
        let node = self.enqueue("CoQueue::wait_unlocked()");
        self.block(&node);
    }

    /// Wakes the coroutine that has waited longest (`qemu_co_queue_next`). Returns whether there was one.
    pub fn notify_one(&self) -> bool {
        // Dead waiters (see `wait::DEAD`) are skipped.
        let node = self.waiters.lock().pop(wait::WOKEN);
        match node {
            Some(node) => {
                node.wake();
                true
            }
            None => false,
        }
    }

    /// Wakes every waiting coroutine, in the order they began waiting (`qemu_co_queue_restart_all`). Returns
    /// how many.
    pub fn notify_all(&self) -> usize {
        let all = self.waiters.lock().drain(wait::WOKEN);
        let n = all.len();
        wait::wake_all(all);
        n
    }

    /// Whether no coroutine waits (`qemu_co_queue_empty`; a snapshot).
    pub fn is_empty(&self) -> bool {
        self.waiters.lock().is_empty()
    }

    fn enqueue(&self, op: &str) -> Arc<Waiter> {
        if !in_coroutine() {
            panic!("cothread: {op} called outside a coroutine");
        }
        let node = runloop::waiter(op, Outside::Panic, None);
        self.waiters.lock().push((), node.clone());
        node
    }

    fn block(&self, node: &Arc<Waiter>) {
        let state = node.block_under(
            &self.waiters,
            |waiters| {
                waiters.remove(node);
                Vec::new()
            },
            // Notified but dropped before running: the notification goes to the next waiter.
            |waiters| waiters.pop(wait::WOKEN).into_iter().collect(),
        );
        // A caller re-checks its condition and waits again: returning would spin.
        if state == wait::DROPPED {
            crate::coroutine::abandon_current();
        }
    }
}

impl fmt::Debug for CoQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoQueue")
            .field("waiters", &self.waiters.lock().len())
            .finish()
    }
}
