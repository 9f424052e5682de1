//! Wait nodes: how a coroutine on a [`RunLoop`](crate::RunLoop), or a thread outside coroutines, waits for a
//! synchronisation primitive and is woken by it.
//!
//! A waiter makes a [`Waiter`] for itself, puts it in the primitive's queue while holding the primitive's lock,
//! releases the lock and calls [`Waiter::block`]. A waker, holding the primitive's lock, takes the node out of
//! the queue, gives it what it waited for (the lock, a message, a notification) and calls [`Waiter::set`];
//! after releasing the primitive's lock it calls [`Waiter::wake`], which schedules the coroutine on its loop
//! (or unparks the thread). Every change of a node's state happens under the lock of the primitive whose queue
//! holds it; the waiter reads the state without that lock (an atomic), after it has been entered again.
//!
//! A coroutine can be entered while its node still says [`WAITING`] (somebody called
//! [`wake`](crate::runloop::wake) on it for another reason): [`Waiter::block`] then yields again. If the
//! coroutine is dropped while it waits (its loop was dropped), the forced unwind runs the primitive's cancel
//! closure, which takes the node out of the queue or, if it had already been given something, passes that on.

use std::fmt;

use crate::coroutine::{in_coroutine, yield_now};
use crate::runloop::{self, Task};
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::{Arc, Condvar, Mutex};

/// The node is in a queue, waiting.
pub(crate) const WAITING: u32 = 0;
/// The primitive gave the waiter what it asked for.
pub(crate) const WOKEN: u32 = 1;
/// The primitive gave up on the waiter (a channel disconnected).
pub(crate) const CLOSED: u32 = 2;

/// One wait of one coroutine (or thread). `slot` carries a value between the two sides (channels).
pub(crate) struct Waiter<T = ()> {
    state: AtomicU32,
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
            state: AtomicU32::new(WAITING),
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

    /// Waker, holding the primitive's lock: records the outcome. Call [`Waiter::wake`] after unlocking.
    pub(crate) fn set(&self, state: u32) {
        self.state.store(state, Ordering::Release);
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
    /// the node out of the queue if it is still waiting, or hand on what it was given.
    pub(crate) fn block(&self, cancel: impl FnOnce()) -> u32 {
        match &self.who {
            Who::Task(_) => {
                let mut on_unwind = OnUnwind(Some(cancel));
                let mut state = self.state();
                while state == WAITING {
                    yield_now();
                    state = self.state();
                }
                on_unwind.0 = None;
                state
            }
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
    /// [`block`](Waiter::block), but gives up at `deadline`: then returns [`WAITING`] if the node still
    /// waits, and the caller (under the primitive's lock) takes it out of the queue, or finds it was woken
    /// meanwhile.
    #[cfg(not(loom))]
    pub(crate) fn block_until(&self, deadline: std::time::Instant, cancel: impl FnOnce()) -> u32 {
        match &self.who {
            Who::Task(task) => {
                let alarm = runloop::alarm(task, deadline);
                let mut on_unwind = OnUnwind(Some(cancel));
                let mut state = self.state();
                while state == WAITING && alarm.state() == WAITING {
                    yield_now();
                    state = self.state();
                }
                on_unwind.0 = None;
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
