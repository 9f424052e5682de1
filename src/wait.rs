//! Wait nodes: how a coroutine on a [`RunLoop`](crate::RunLoop), or a thread outside coroutines, waits for a
//! synchronisation primitive and is woken by it.
//!
//! A waiter makes a [`Waiter`] for itself, puts it in the primitive's queue while holding the primitive's lock,
//! releases the lock and calls [`Waiter::block`]. A waker, holding the primitive's lock, takes the node out of
//! the queue, gives it what it waited for (the lock, a message, a notification) and calls [`Waiter::set`];
//! after releasing the primitive's lock it calls [`Waiter::wake`], which schedules the coroutine on its loop
//! (or unparks the thread). Every change of a node's state happens under the lock of the primitive whose queue
//! holds it, but one: a loop dropped without unwinding its tasks marks their waits [`DEAD`] (a compare-exchange
//! from [`WAITING`], which a waker's [`Waiter::set`] also is, so exactly one of them wins) and wakers skip them.
//! The waiter reads the state without that lock (an atomic), after it has been entered again.
//!
//! A coroutine can be entered while its node still says [`WAITING`] (somebody called
//! [`wake`](crate::runloop::wake) on it for another reason): [`Waiter::block`] then yields again. If the
//! coroutine is dropped while it waits (its loop was dropped), the forced unwind runs the primitive's cancel
//! closure, which takes the node out of the queue or, if it had already been given something, passes that on.

use std::fmt;

use crate::coroutine::{current_is_dropped, in_coroutine, yield_now};
use crate::runloop::{self, Task};
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::{Arc, Condvar, Mutex};

/// The node is in a queue, waiting.
pub(crate) const WAITING: u32 = 0;
/// The primitive gave the waiter what it asked for.
pub(crate) const WOKEN: u32 = 1;
/// The primitive gave up on the waiter (a channel disconnected).
pub(crate) const CLOSED: u32 = 2;
/// The waiting task was dropped without being unwound (its loop was dropped on another thread than a native
/// task's own, or under `panic = "abort"`): the node stays in its queue until a waker meets it, and wakers skip
/// it ([`Waiter::set`] fails), so that no lock or message goes to it. Set by [`withdraw`].
pub(crate) const DEAD: u32 = 4;
/// Returned by [`Waiter::block`], never stored: the waiting coroutine is being dropped, so nothing will enter it
/// again; the wait was withdrawn (its cancel closure ran). A primitive that can report a failure does (a
/// channel's send or receive); one that cannot (a lock, a queue) calls
/// [`abandon_current`](crate::coroutine::abandon_current). See the crate documentation, "Rules".
pub(crate) const DROPPED: u32 = 3;

/// One wait of one coroutine (or thread). `slot` carries a value between the two sides (channels).
pub(crate) struct Waiter<T = ()> {
    /// Shared with the waiting task while it waits (see [`withdraw`]).
    state: Arc<AtomicU32>,
    who: Who,
    pub(crate) slot: Mutex<Option<T>>,
}

/// Who waits.
enum Who {
    /// A coroutine spawned on a run loop: the loop enters it again.
    Task(Arc<Task>),
    /// A thread outside any coroutine: it parks.
    Thread(Parker),
}

/// Where a thread that waits outside coroutines parks.
struct Parker {
    lock: Mutex<()>,
    cvar: Condvar,
}

/// Whether a thread outside coroutines may wait (and park), or must be a coroutine on a run loop.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outside {
    /// Outside coroutines the calling thread parks (channels).
    Park,
    /// Outside coroutines waiting is a misuse (locks, queues, sleep).
    Panic,
}

impl<T> Waiter<T> {
    /// A node for the caller, holding `value`. `op` names the operation for panic messages.
    ///
    /// # Panics
    /// If the caller is a coroutine not spawned on a run loop (nothing would enter it again), or is outside
    /// coroutines and `outside` is [`Outside::Panic`].
    pub(crate) fn for_current(op: &str, outside: Outside, value: Option<T>) -> Arc<Waiter<T>> {
        let who = if in_coroutine() {
            match runloop::current_task() {
                Some(task) => Who::Task(task),
                None => panic!(
                    "cothread: {op} has to wait, in a coroutine that was not spawned on a RunLoop: \
                     nothing would enter it again when it is woken (spawn it with RunLoop::spawn)"
                ),
            }
        } else {
            match outside {
                Outside::Park => Who::Thread(Parker {
                    lock: Mutex::new(()),
                    cvar: Condvar::new(),
                }),
                Outside::Panic => panic!("cothread: {op} called outside a coroutine"),
            }
        };
        Arc::new(Waiter {
            state: Arc::new(AtomicU32::new(WAITING)),
            who,
            slot: Mutex::new(value),
        })
    }

    /// The task that waits, unless a thread does.
    pub(crate) fn task(&self) -> Option<&Arc<Task>> {
        match &self.who {
            Who::Task(task) => Some(task),
            Who::Thread(_) => None,
        }
    }

    /// The node's state: [`WAITING`], [`WOKEN`] or [`CLOSED`].
    pub(crate) fn state(&self) -> u32 {
        self.state.load(Ordering::Acquire)
    }

    /// Waker, holding the primitive's lock: records the outcome, unless the waiter is [`DEAD`] (then returns
    /// false, and the waker must give what it meant for this node to the next one). Call [`Waiter::wake`] after
    /// unlocking.
    #[must_use = "a dead waiter must be skipped"]
    pub(crate) fn set(&self, state: u32) -> bool {
        self.state
            .compare_exchange(WAITING, state, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Whether the node still waits for the primitive: [`WAITING`], or [`DEAD`] (withdrawn, but still in the
    /// queue). A cancel closure takes such a node out of the queue; any other was given something.
    pub(crate) fn is_queued(&self) -> bool {
        matches!(self.state(), WAITING | DEAD)
    }

    /// Waker, after releasing the primitive's lock: makes the waiter run again.
    pub(crate) fn wake(&self) {
        match &self.who {
            Who::Task(task) => runloop::schedule(task),
            Who::Thread(parker) => {
                // Taking the lock orders this notify after the waiter's check of the state.
                let _guard = parker.lock.lock();
                parker.cvar.notify_one();
            }
        }
    }

    /// Waits until the node is no longer [`WAITING`]; returns its state. If the coroutine is unwound
    /// meanwhile (dropped while suspended), runs `cancel` first, which must (under the primitive's lock) take
    /// the node out of the queue if it is still waiting, or hand on what it was given. If the coroutine is
    /// being dropped (a destructor on its unwinding stack waits), runs `cancel` and returns [`DROPPED`].
    pub(crate) fn block(&self, cancel: impl FnOnce()) -> u32 {
        match &self.who {
            Who::Task(task) => self.block_task(task, cancel, || false),
            Who::Thread(parker) => {
                let mut guard = parker.lock.lock();
                loop {
                    let state = self.state();
                    if state != WAITING {
                        return state;
                    }
                    parker.cvar.wait(&mut guard);
                }
            }
        }
    }
}

impl<T> Waiter<T> {
    /// A task's side of [`block`](Waiter::block): yields until the node is no longer [`WAITING`] or
    /// `given_up()` says to stop waiting (then returns [`WAITING`]).
    fn block_task(
        &self,
        task: &Arc<Task>,
        cancel: impl FnOnce(),
        given_up: impl Fn() -> bool,
    ) -> u32 {
        task.set_waiting(Some(self.state.clone()));
        let _clear = OnUnwind(Some(|| task.set_waiting(None)));
        let mut on_unwind = OnUnwind(Some(cancel));
        let mut state = self.state();
        while state == WAITING && !given_up() {
            if current_is_dropped() {
                // Nobody will enter us again: withdraw (or pass on what just arrived) and say so.
                drop(on_unwind);
                return DROPPED;
            }
            yield_now();
            state = self.state();
        }
        on_unwind.0 = None;
        state
    }

    /// [`block`](Waiter::block), but gives up at `deadline`: then returns [`WAITING`] if the node still
    /// waits, and the caller (under the primitive's lock) takes it out of the queue, or finds it was woken
    /// meanwhile; [`DROPPED`] as `block`.
    #[cfg(not(loom))]
    pub(crate) fn block_until(&self, deadline: std::time::Instant, cancel: impl FnOnce()) -> u32 {
        match &self.who {
            Who::Task(task) => {
                let alarm = runloop::alarm(task, deadline);
                let state = self.block_task(task, cancel, || alarm.state() != WAITING);
                runloop::disarm(task, &alarm);
                state
            }
            Who::Thread(parker) => {
                let mut guard = parker.lock.lock();
                loop {
                    let state = self.state();
                    if state != WAITING || parker.cvar.wait_until(&mut guard, deadline).timed_out()
                    {
                        return self.state();
                    }
                }
            }
        }
    }
}

impl<T> fmt::Debug for Waiter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiter")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// Runs its closure when dropped, unless disarmed: the cancel action of a wait cut short by an unwind.
struct OnUnwind<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnUnwind<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// Removes `node` from `queue` (by identity). Returns whether it was there.
pub(crate) fn remove<T>(
    queue: &mut std::collections::VecDeque<Arc<Waiter<T>>>,
    node: &Arc<Waiter<T>>,
) -> bool {
    match queue.iter().position(|n| Arc::ptr_eq(n, node)) {
        Some(i) => {
            queue.remove(i);
            true
        }
        None => false,
    }
}

/// Wakes every node in `nodes` (collected under a primitive's lock, woken after it was released).
pub(crate) fn wake_all<T>(nodes: impl IntoIterator<Item = Arc<Waiter<T>>>) {
    for node in nodes {
        node.wake();
    }
}

/// Marks the wait whose state is `state` [`DEAD`] if it still waits: its task was dropped without unwinding,
/// so wakers must skip it. (A node already given something keeps it: that is lost with the task's stack.)
pub(crate) fn withdraw(state: &AtomicU32) {
    let _ = state.compare_exchange(WAITING, DEAD, Ordering::AcqRel, Ordering::Acquire);
}
