//! Tasks and wake-ups: the record of a coroutine spawned on a loop (the wake handle its waits leave in the wait
//! queues, hung on the coroutine's control block so that the task finds itself without a lookup), the registry
//! that finds a handle's record, and how a wake-up makes a task runnable.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
#[cfg(not(loom))]
use std::time::Instant;

use super::{Shared, State};
use crate::coroutine::{Coroutine, CoroutineRef, in_coroutine, with_current_scheduler, yield_now};
use crate::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};
use crate::sync::cell::UnsafeCell;
use crate::sync::{Arc, Mutex, StdArc, StdWeak};
#[cfg(not(loom))]
use crate::wait::CLOSED;
use crate::wait::{Outside, Waiter, Wake};

/// A coroutine spawned on a loop, as the wait queues and the registry see it.
pub(crate) struct Task {
    /// The coroutine's id.
    pub(super) id: u64,
    /// This record itself (made with `StdArc::new_cyclic`), so that code holding `&Task` (a wait node's wake
    /// handle) can queue a counted one.
    pub(super) me: StdWeak<Task>,
    pub(super) home: Arc<Shared>,
    /// In the loop's own queue ([`Local`](super::Local)): touched only by the thread driving the loop, with
    /// plain loads and stores. Whoever sets it puts the task there; the loop clears it when it takes it out.
    pub(super) in_loop_queue: AtomicBool,
    /// In `State::runnable` or `State::front`: touched only under `home.state`'s lock. Cleared when the loop
    /// takes the task into its own queue (where it goes only if not there already).
    pub(super) in_shared_queue: AtomicBool,
    /// Scheduled as the wake-up of the running task (see [`MAX_WAKE_CHAIN`]); read and cleared by the loop.
    pub(super) via_front: AtomicBool,
    /// The state of the wait the task is in, if any (set by [`Waiter::block`]), for the loop's drop to
    /// withdraw it ([`crate::wait::withdraw`]): an `Arc` made a raw pointer, null when none. Whoever swaps a
    /// pointer out owns its count.
    pub(super) waiting: AtomicPtr<AtomicU32>,
    /// The task's coroutine, until it finishes or its loop goes, so that the loop enters the task it takes from
    /// its queue without a lookup. Only whoever may use the loop's own queue (see
    /// [`Shared::with_local`](super::Shared::with_local)) touches it, outside the task, or the spawner before the
    /// record is in a queue.
    coroutine: UnsafeCell<Option<Coroutine<()>>>,
}

// SAFETY: `coroutine` is the only field that is not `Sync`; one thread at a time touches it (see the field), and
// a `Coroutine<()>` may move between threads.
unsafe impl Sync for Task {}

impl Task {
    /// A record for coroutine `id` of the loop `home`, its coroutine not yet in place.
    pub(super) fn new(id: u64, home: Arc<Shared>) -> StdArc<Task> {
        StdArc::new_cyclic(|me| Task {
            id,
            me: me.clone(),
            home,
            in_loop_queue: AtomicBool::new(false),
            in_shared_queue: AtomicBool::new(false),
            via_front: AtomicBool::new(false),
            waiting: AtomicPtr::new(std::ptr::null_mut()),
            coroutine: UnsafeCell::new(None),
        })
    }

    /// Calls `f` with the task's coroutine (`None` once it has finished or been dropped).
    ///
    /// # Safety
    /// The caller is the thread driving the task's loop, outside coroutines, or holds `&mut RunLoop` while
    /// nothing drives it, or spawns the task and has not put it in a queue yet; `f` does not reach this task's
    /// coroutine again (entering it is fine: the task itself never touches it).
    #[inline]
    pub(super) unsafe fn with_coroutine<T>(
        &self,
        f: impl FnOnce(&mut Option<Coroutine<()>>) -> T,
    ) -> T {
        // SAFETY: the caller's contract: this thread is the only one that touches the slot now, and nothing else on
        // it holds the reference.
        self.coroutine.with_mut(|co| f(unsafe { &mut *co }))
    }

    /// One more count of this record (every task record lives in a `StdArc`: see `me`).
    pub(super) fn counted(&self) -> StdArc<Task> {
        match self.me.upgrade() {
            Some(task) => task,
            None => unreachable!("a task record is borrowed from a counted one"),
        }
    }

    /// Takes the record of the wait the task is in, if any.
    pub(super) fn take_waiting(&self) -> Option<Arc<AtomicU32>> {
        self.swap_waiting(None)
    }

    /// Records `state` as the wait the task is in, and returns the record it replaces.
    fn swap_waiting(&self, state: Option<Arc<AtomicU32>>) -> Option<Arc<AtomicU32>> {
        let new = state.map_or(std::ptr::null_mut(), |state| {
            Arc::into_raw(state).cast_mut()
        });
        let old = self.waiting.swap(new, Ordering::AcqRel);
        // SAFETY: a non-null pointer here came from `Arc::into_raw` above, and the swap made this caller its only
        // owner.
        (!old.is_null()).then(|| unsafe { Arc::from_raw(old.cast_const()) })
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        drop(self.take_waiting());
    }
}

/// How many tasks in a row the loop enters because the task before woke them (QEMU's `co_queue_wakeup`
/// order). Past that, wake-ups go to the tail until a task from the run queue has run, so that tasks waking
/// each other in a ring cannot starve the rest of the loop. (Tokio bounds its "LIFO slot" for the same
/// reason.)
pub const MAX_WAKE_CHAIN: u32 = 16;

/// A task is woken by scheduling it on its loop.
impl Wake for Task {
    fn wake(&self) {
        schedule(self);
    }

    fn id(&self) -> u64 {
        self.id
    }

    fn set_waiting(&self, state: Option<Arc<AtomicU32>>) {
        drop(self.swap_waiting(state));
    }

    #[cfg(not(loom))]
    fn alarm(&self, deadline: Instant) -> Arc<Waiter> {
        let task = self.counted();
        let node = Waiter::for_task(task.clone(), None);
        self.home
            .state
            .lock()
            .add_timer(deadline, node.clone(), task);
        node
    }

    #[cfg(not(loom))]
    fn disarm(&self, alarm: &Waiter) {
        let _st = self.home.state.lock();
        let _ = alarm.set(CLOSED);
    }
}

/// A wait node for the caller, holding `value`: woken through its task if the caller is a task, parking the
/// thread if it is outside coroutines and `outside` allows. `op` names the operation for panic messages.
///
/// # Panics
/// If the caller is a coroutine not spawned on a run loop (nothing would enter it again), or is outside
/// coroutines and `outside` is [`Outside::Panic`].
pub(crate) fn waiter<T>(op: &str, outside: Outside, value: Option<T>) -> Arc<Waiter<T>> {
    let task = task_for_wait(op, outside).map(|task| task as StdArc<dyn Wake>);
    Waiter::for_task_or_thread(task, value)
}

/// The caller's task, for a wait: `None` outside coroutines if `outside` allows; else panics as [`waiter`].
pub(super) fn task_for_wait(op: &str, outside: Outside) -> Option<StdArc<Task>> {
    if in_coroutine() {
        match current_task() {
            Some(task) => Some(task),
            None => panic!(
                "cothread: {op} has to wait, in a coroutine that was not spawned on a RunLoop: \
                 nothing would enter it again when it is woken (spawn it with RunLoop::spawn)"
            ),
        }
    } else {
        match outside {
            Outside::Park => None,
            Outside::Panic => panic!("cothread: {op} called outside a coroutine"),
        }
    }
}

/// A wait node for the calling task (see [`waiter`], with [`Outside::Panic`]), and the task.
pub(crate) fn task_waiter<T>(op: &str, value: Option<T>) -> (StdArc<Task>, Arc<Waiter<T>>) {
    let Some(task) = task_for_wait(op, Outside::Panic) else {
        unreachable!("`Outside::Panic` leaves only tasks");
    };
    let node = Waiter::for_task(task.clone(), value);
    (task, node)
}

/// Every live task of every loop, by coroutine id, so that [`wake`] and [`end_sleep`](super::end_sleep), given
/// a handle on any thread, can find its record (a task finds its own on its control block). Sharded to keep
/// unrelated loops apart.
struct Registry {
    shards: [Mutex<TaskMap>; SHARDS],
}

const SHARDS: usize = 16;

/// Tasks by coroutine id. Ids are distinct integers handed out in sequence: a multiplicative hash spreads
/// them well enough, at a fraction of SipHash's cost.
pub(super) type TaskMap = HashMap<u64, StdArc<Task>, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_usize(&mut self, id: usize) {
        self.write_u64(id as u64);
    }
}

impl Registry {
    fn shard(&self, id: u64) -> &Mutex<TaskMap> {
        // `id % SHARDS` is below SHARDS, so the cast cannot truncate.
        &self.shards[(id % SHARDS as u64) as usize]
    }
}

crate::sync::global! {
    static REGISTRY: Registry = Registry {
        shards: std::array::from_fn(|_| Mutex::new(TaskMap::default())),
    };
}

/// The task record of coroutine `id`, if it is a live task of a loop.
pub(super) fn find(id: u64) -> Option<StdArc<Task>> {
    REGISTRY.shard(id).lock().get(&id).cloned()
}

/// Records a new task, so that [`find`] (and so [`wake`]) sees it.
pub(super) fn register(task: &StdArc<Task>) {
    REGISTRY.shard(task.id).lock().insert(task.id, task.clone());
}

/// Forgets the task of coroutine `id` (finished, or its loop dropped).
fn unregister(id: u64) {
    REGISTRY.shard(id).lock().remove(&id);
}

/// Calls `f` with the task record of the coroutine the caller runs in, if that coroutine was spawned on a loop
/// (read from its control block).
#[inline]
fn with_current_task<T>(f: impl FnOnce(Option<&StdArc<Task>>) -> T) -> T {
    with_current_scheduler(|record| f(record.and_then(|record| record.downcast_ref())))
}

/// The task record of the coroutine the caller runs in, if that coroutine was spawned on a loop.
pub(crate) fn current_task() -> Option<StdArc<Task>> {
    with_current_task(|task| task.cloned())
}

/// Drops a task's coroutine (unwinding it if suspended) and forgets the task: its registry entry, and the record
/// hung on its control block once it has finished (one that did not finish here, unwound later on its own
/// thread or left suspended for good, keeps its record until the control block goes).
///
/// # Safety
/// As for [`Task::with_coroutine`].
pub(super) unsafe fn forget(task: &Task) {
    // SAFETY: the caller's contract; the coroutine is out of its slot before it unwinds (which may wake tasks).
    if let Some(co) = unsafe { task.with_coroutine(Option::take) } {
        let co_ref = co.handle();
        drop(co);
        drop(co_ref.detach_scheduler());
    }
    unregister(task.id);
}

/// Makes `task` runnable on its loop: right after the running task if the caller is that task (QEMU's
/// `co_queue_wakeup`), else at the tail of the run queue, waking the loop's thread if it sleeps. Does nothing
/// if the task is already scheduled.
pub(crate) fn schedule(task: &Task) {
    let home = &task.home;
    let waker = with_current_task(|waker| waker.map(|waker| waker.id));
    let by_running = matches!(waker, Some(id) if home.running.load(Ordering::Relaxed) == id);
    let chained = by_running && home.chain.load(Ordering::Relaxed) < MAX_WAKE_CHAIN;
    if home.is_driven_by_caller(waker) {
        if task.in_loop_queue.load(Ordering::Relaxed) {
            return;
        }
        task.in_loop_queue.store(true, Ordering::Relaxed);
        // SAFETY: the caller is the loop's thread, as the loop or the native task it runs; pushing wakes
        // nothing.
        unsafe {
            home.with_local(|local| {
                if chained {
                    task.via_front.store(true, Ordering::Relaxed);
                    local.front.push(task.counted());
                } else {
                    local.runnable.push_back(task.counted());
                }
            });
        }
        return;
    }
    queue_shared(task, &mut home.state.lock(), chained);
}

/// Puts `task` in its loop's shared queue unless it is there already or the loop has gone: ahead of what the
/// loop takes in if `front` (a wake-up by the running task, when that is thread-backed), else at the tail,
/// waking the loop's thread. `st` is that loop's state, locked.
pub(super) fn queue_shared(task: &Task, st: &mut State, front: bool) {
    if st.closed || task.in_shared_queue.load(Ordering::Relaxed) {
        return;
    }
    task.in_shared_queue.store(true, Ordering::Relaxed);
    task.home.notified.store(true, Ordering::Release);
    if front {
        task.via_front.store(true, Ordering::Relaxed);
        st.front.push(task.counted());
    } else {
        st.runnable.push_back(task.counted());
        // Planted bug (loom-tests/README.md): a wake-up from elsewhere leaves a sleeping loop asleep.
        #[cfg(not(cothread_planted_bug = "schedule_skips_loop_wake"))]
        task.home.wake_loop(st);
    }
}

/// Makes the coroutine `co` runnable on the loop it was spawned on (QEMU's `aio_co_wake`). Returns `false`
/// (and does nothing) if `co` is not a task of a loop, or has finished.
///
/// Called from the task that the loop is running, `co` is entered right after that task yields or finishes
/// (within [`MAX_WAKE_CHAIN`]);
/// from anywhere else, `co` goes to the tail of its loop's run queue and the loop's thread is woken if it
/// sleeps. Waking a task that is already runnable does nothing; waking one that waits on a primitive enters it
/// once, and the primitive makes it wait again.
///
/// ```
/// use cothread::{runloop, yield_now, RunLoop};
///
/// let mut rl = RunLoop::new();
/// let task = rl.spawn(|| {
///     yield_now(); // suspended until woken
///     "woken"
/// });
/// assert_eq!(rl.run_until_stalled(), 1);
/// assert!(runloop::wake(task.coroutine()));
/// rl.run();
/// assert_eq!(task.take(), Some("woken"));
/// ```
pub fn wake(co: &CoroutineRef) -> bool {
    let id = co.id();
    let task = find(id);
    match task {
        Some(task) => {
            schedule(&task);
            true
        }
        None => false,
    }
}

/// Puts the calling task at the tail of its loop's run queue and yields, so that the other runnable tasks run
/// first (`aio_co_schedule(ctx, self)` then `qemu_coroutine_yield()`).
///
/// # Panics
/// If the caller is not a coroutine spawned on a [`RunLoop`](super::RunLoop).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use cothread::{runloop, RunLoop};
///
/// let log = Arc::new(Mutex::new(Vec::new()));
/// let mut rl = RunLoop::new();
/// for name in ["a", "b"] {
///     let log = log.clone();
///     rl.spawn(move || {
///         for i in 0..2 {
///             log.lock().unwrap().push(format!("{name}{i}"));
///             runloop::yield_to_loop();
///         }
///     });
/// }
/// rl.run();
/// assert_eq!(*log.lock().unwrap(), ["a0", "b0", "a1", "b1"]);
/// ```
// Inlined whole, like the switch in it (see `coroutine::yield_from`); the rare paths are calls.
#[inline(always)]
pub fn yield_to_loop() {
    with_current_task(|task| {
        let Some(task) = task else {
            not_a_task();
        };
        let home = &task.home;
        if home.is_driven_by_caller(Some(task.id)) {
            if !task.in_loop_queue.load(Ordering::Relaxed) {
                task.in_loop_queue.store(true, Ordering::Relaxed);
                // SAFETY: the caller is the native task the loop runs, on the loop's thread.
                unsafe { home.with_local(|local| local.requeue_running = true) };
            }
        } else {
            requeue_through_shared(task);
        }
    });
    yield_now();
}

/// [`yield_to_loop`]'s misuse.
#[cold]
#[inline(never)]
fn not_a_task() -> ! {
    panic!("cothread: yield_to_loop() called outside a coroutine spawned on a RunLoop");
}

/// [`yield_to_loop`] from a task that may not use its loop's own queue (a thread-backed task, or one whose loop
/// another thread drives): to the tail of the shared queue, waking the loop.
#[inline(never)]
fn requeue_through_shared(task: &Task) {
    queue_shared(task, &mut task.home.state.lock(), false);
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}
