//! Wait nodes and the one wait queue: how a coroutine on a [`RunLoop`](crate::RunLoop), or a thread outside
//! coroutines, waits for a synchronisation primitive and is woken by it. Every primitive that makes its caller
//! wait (`CoQueue`, `CoMutex`, `CoRwLock`, both channel directions, `sleep`) follows the one protocol here.
//!
//! The protocol. A waiter gets a [`Waiter`] for itself (from the run loop, which knows the calling task:
//! `runloop::waiter`), puts it in the primitive's [`WaitQueue`] while holding the primitive's lock, releases
//! the lock and calls [`Waiter::block_under`]. A waker, holding the primitive's lock, pops the node out of the
//! queue and marks it woken ([`WaitQueue::pop_if`], [`WaitQueue::give`], [`WaitQueue::take_given`],
//! [`WaitQueue::drain`]), handing it what it waited for (the lock, a message, a notification); after releasing
//! the lock it calls [`Waiter::wake`] (or [`wake_all`]), which schedules the coroutine on its loop (or unparks
//! the thread). The cancel rule: a waiter unwound while it waits (its coroutine dropped) takes, under the
//! primitive's lock, its node out of the queue if it is still there, or else passes on what it was given.
//!
//! Every change of a node's state happens under the lock of the primitive whose queue holds it, but one: a
//! loop dropped without unwinding its tasks marks their waits [`DEAD`] (a compare-exchange from [`WAITING`],
//! which a waker's [`Waiter::set`] also is, so exactly one of them wins) and wakers skip them. The waiter reads
//! the state without that lock (an atomic), after it has been entered again.
//!
//! A coroutine can be entered while its node still says [`WAITING`] (somebody called
//! `runloop::wake` on it for another reason): [`Waiter::block`] then yields again.
//!
//! Who is woken is behind [`Wake`], which the run loop's tasks implement: this module does not know the loop.

use std::collections::VecDeque;
use std::fmt;
#[cfg(not(loom))]
use std::time::Instant;

use crate::coroutine::{current_is_dropped, yield_now};
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::{Arc, Condvar, Mutex, StdArc};

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

/// A wake handle: what a waiting coroutine leaves in its node so that a waker can make it run again. The run
/// loop's task records implement it; a node holds its waiter's record as a `StdArc<dyn Wake>`, so a wait
/// allocates nothing for it.
pub(crate) trait Wake: Send + Sync {
    /// Makes the coroutine runnable again (schedules it on its loop).
    fn wake(&self);
    /// The id of the waiting coroutine.
    fn id(&self) -> u64;
    /// Records the state of the wait the coroutine is in (`None`: it no longer waits), for [`withdraw`].
    fn set_waiting(&self, state: Option<Arc<AtomicU32>>);
    /// An alarm at `deadline`: when it passes, the returned node is set [`WOKEN`] and the coroutine woken.
    #[cfg(not(loom))]
    fn alarm(&self, deadline: Instant) -> Arc<Waiter>;
    /// Cancels an [`alarm`](Wake::alarm) that has not gone off.
    #[cfg(not(loom))]
    fn disarm(&self, alarm: &Waiter);
}

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
    Task(StdArc<dyn Wake>),
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
    /// A node for a task, woken through `task`, holding `value`.
    pub(crate) fn for_task(task: StdArc<dyn Wake>, value: Option<T>) -> Arc<Waiter<T>> {
        Waiter::new(Who::Task(task), value)
    }

    /// A node for a thread outside coroutines, which parks while it waits, holding `value`.
    pub(crate) fn for_thread(value: Option<T>) -> Arc<Waiter<T>> {
        let parker = Parker {
            lock: Mutex::new(()),
            cvar: Condvar::new(),
        };
        Waiter::new(Who::Thread(parker), value)
    }

    /// [`for_task`](Waiter::for_task) if `task` is given, else [`for_thread`](Waiter::for_thread).
    pub(crate) fn for_task_or_thread(
        task: Option<StdArc<dyn Wake>>,
        value: Option<T>,
    ) -> Arc<Waiter<T>> {
        match task {
            Some(task) => Waiter::for_task(task, value),
            None => Waiter::for_thread(value),
        }
    }

    fn new(who: Who, value: Option<T>) -> Arc<Waiter<T>> {
        Arc::new(Waiter {
            state: Arc::new(AtomicU32::new(WAITING)),
            who,
            slot: Mutex::new(value),
        })
    }

    /// Readies a node whose wait has ended for another wait of the same waiter, holding `value`, if nobody
    /// else holds it any more (no queue, no waker, no task's record of its state): spares the allocations of a
    /// new node. Returns false, changing nothing, if someone does.
    #[cfg(all(any(unix, windows), not(loom)))]
    pub(crate) fn reuse(node: &mut Arc<Waiter<T>>, value: Option<T>) -> bool {
        let Some(waiter) = Arc::get_mut(node) else {
            return false;
        };
        let Some(state) = Arc::get_mut(&mut waiter.state) else {
            return false;
        };
        *state.get_mut() = WAITING;
        *waiter.slot.lock() = value;
        true
    }

    /// The id of the waiting coroutine; 0 for a thread outside coroutines.
    pub(crate) fn waiter_id(&self) -> u64 {
        match &self.who {
            Who::Task(task) => task.id(),
            Who::Thread(_) => 0,
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
            Who::Task(task) => task.wake(),
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
    /// Primitives with a queue use [`block_under`](Waiter::block_under), which is this with the cancel rule.
    pub(crate) fn block(&self, cancel: impl FnOnce()) -> u32 {
        match &self.who {
            Who::Task(task) => self.block_task(&**task, cancel, || false),
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

    /// [`block`](Waiter::block) with the cancel rule of a primitive whose state `S` is behind `lock`: if the
    /// wait is cut short, then under `lock`, `withdraw` takes the node out of its queue if it is still there,
    /// or else `pass_on` hands what the node was given to the next waiter; either returns the nodes to wake,
    /// which are woken after unlocking.
    pub(crate) fn block_under<S, U>(
        &self,
        lock: &Mutex<S>,
        withdraw: impl FnOnce(&mut S) -> Woken<U>,
        pass_on: impl FnOnce(&mut S) -> Woken<U>,
    ) -> u32 {
        self.block(|| self.cancel_under(lock, withdraw, pass_on))
    }

    /// [`block_until`](Waiter::block_until) with the cancel rule of [`block_under`](Waiter::block_under).
    #[cfg(not(loom))]
    pub(crate) fn block_under_until<S, U>(
        &self,
        deadline: Instant,
        lock: &Mutex<S>,
        withdraw: impl FnOnce(&mut S) -> Woken<U>,
        pass_on: impl FnOnce(&mut S) -> Woken<U>,
    ) -> u32 {
        self.block_until(deadline, || self.cancel_under(lock, withdraw, pass_on))
    }

    /// The cancel rule: see [`block_under`](Waiter::block_under).
    fn cancel_under<S, U>(
        &self,
        lock: &Mutex<S>,
        withdraw: impl FnOnce(&mut S) -> Woken<U>,
        pass_on: impl FnOnce(&mut S) -> Woken<U>,
    ) {
        let woken = {
            let mut st = lock.lock();
            #[cfg(not(cothread_planted_bug = "cancel_forgets_given"))]
            let queued = self.is_queued();
            // Planted bug (loom-tests/README.md): a cancelled waiter assumes it was never given anything.
            #[cfg(cothread_planted_bug = "cancel_forgets_given")]
            let queued = self.is_queued() || true;
            if queued {
                withdraw(&mut st)
            } else {
                pass_on(&mut st)
            }
        };
        wake_all(woken);
    }
}

impl<T> Waiter<T> {
    /// A task's side of [`block`](Waiter::block): yields until the node is no longer [`WAITING`] or
    /// `given_up()` says to stop waiting (then returns [`WAITING`]).
    fn block_task(
        &self,
        task: &dyn Wake,
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
    pub(crate) fn block_until(&self, deadline: Instant, cancel: impl FnOnce()) -> u32 {
        match &self.who {
            Who::Task(task) => {
                let alarm = task.alarm(deadline);
                let state = self.block_task(&**task, cancel, || alarm.state() != WAITING);
                task.disarm(&alarm);
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

/// Nodes a waker took out of a queue under the primitive's lock, to wake after releasing it.
pub(crate) type Woken<T> = Vec<Arc<Waiter<T>>>;

/// The queue of nodes waiting for one primitive, in the order they began waiting, each with a tag `K` saying
/// what it waits for (a read-write lock's reader or writer; `()` elsewhere). It lives in the primitive's
/// state, so every method runs under the primitive's lock. Invariant: every node in it is [`WAITING`] or
/// [`DEAD`]; a waker that takes a node out marks it (or skips it, if dead) in the same step.
pub(crate) struct WaitQueue<T = (), K = ()> {
    nodes: VecDeque<(K, Arc<Waiter<T>>)>,
}

impl<T, K> Default for WaitQueue<T, K> {
    fn default() -> Self {
        WaitQueue {
            nodes: VecDeque::new(),
        }
    }
}

impl<T, K: Copy> WaitQueue<T, K> {
    /// Registers `node`, waiting for `tag`, at the tail.
    pub(crate) fn push(&mut self, tag: K, node: Arc<Waiter<T>>) {
        self.nodes.push_back((tag, node));
    }

    /// Takes `node` out (by identity), if it is there. Returns whether it was.
    pub(crate) fn remove(&mut self, node: &Waiter<T>) -> bool {
        match self
            .nodes
            .iter()
            .position(|(_, n)| std::ptr::eq(&**n, node))
        {
            Some(i) => {
                self.nodes.remove(i);
                true
            }
            None => false,
        }
    }

    /// Pops the first live node if `admit` accepts its tag, marking it `state`; dead nodes at the head are
    /// dropped on the way. `None` if the queue is empty or `admit` refuses the head.
    pub(crate) fn pop_if(
        &mut self,
        state: u32,
        admit: impl Fn(K) -> bool,
    ) -> Option<(K, Arc<Waiter<T>>)> {
        while let Some((tag, node)) = self.nodes.front() {
            if !admit(*tag) {
                return None;
            }
            let live = node.set(state);
            let head = self.nodes.pop_front();
            if live {
                return head;
            }
        }
        None
    }

    /// Pops the first live node, marking it `state`.
    pub(crate) fn pop(&mut self, state: u32) -> Option<Arc<Waiter<T>>> {
        self.pop_if(state, |_| true).map(|(_, node)| node)
    }

    /// Empties the queue, marking every live node `state`; returns them (dead ones are dropped).
    pub(crate) fn drain(&mut self, state: u32) -> Woken<T> {
        self.nodes
            .drain(..)
            .filter_map(|(_, node)| node.set(state).then_some(node))
            .collect()
    }

    /// Gives `value` to the first live node, marking it [`WOKEN`]; gives the value back if none waits. The
    /// node's slot is locked across the marking and the filling, so a woken node never finds its slot empty.
    pub(crate) fn give(&mut self, value: T) -> Result<Arc<Waiter<T>>, T> {
        while let Some((_, node)) = self.nodes.pop_front() {
            let mut slot = node.slot.lock();
            if node.set(WOKEN) {
                *slot = Some(value);
                drop(slot);
                return Ok(node);
            }
        }
        Err(value)
    }

    /// Takes the value out of the first live node's slot, marking it [`WOKEN`] (the slot locked across both);
    /// `None` if no live node waits.
    pub(crate) fn take_given(&mut self) -> Option<(Option<T>, Arc<Waiter<T>>)> {
        while let Some((_, node)) = self.nodes.pop_front() {
            let mut slot = node.slot.lock();
            if node.set(WOKEN) {
                let value = slot.take();
                drop(slot);
                return Some((value, node));
            }
        }
        None
    }

    /// How many nodes wait (dead ones included).
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// Wakes every node in `nodes` (taken out under a primitive's lock, woken after it was released).
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
