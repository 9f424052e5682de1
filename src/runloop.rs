//! The run loop: a [`RunLoop`] owns coroutines spawned onto it and enters the runnable ones, in FIFO order
//! (QEMU's `AioContext` with `aio_co_schedule` / `aio_co_wake`), plus [`sleep`] (`qemu_co_sleep_ns`), [`wake`]
//! and [`yield_to_loop`].
//!
//! ```
//! use cothread::channel;
//! use cothread::RunLoop;
//!
//! let mut rl = RunLoop::new();
//! let (tx, rx) = channel::bounded(1);
//! let sum = rl.spawn(move || rx.iter().sum::<u32>());
//! rl.spawn(move || {
//!     for i in 1..=10 {
//!         tx.send(i).unwrap(); // waits (yields to the loop) while the channel is full
//!     }
//! });
//! rl.run();
//! assert_eq!(sum.take(), Some(55));
//! ```
//!
//! # An event loop
//!
//! | QEMU | cothread |
//! | --- | --- |
//! | `aio_poll` waiting in `ppoll`, `aio_notify` | the idle wait in mio's poll; a wake-up from another thread through mio's `Waker` |
//! | `aio_set_fd_handler` + `qio_channel_yield` | [`net`](crate::net)'s sockets: a would-block operation yields until the poll reports the socket ready |
//! | `aio_co_enter(ctx, co)` | [`spawn`] from a task onto its own loop; [`Handle::spawn`] from any thread |
//! | `thread_pool_submit_co` | [`offload`]: blocking work on worker threads while the task yields |
//! | `qemu_co_sleep_ns_wakeable` + `qemu_co_sleep_wake` | [`sleep`] + [`end_sleep`] |
//! | (none) | [`block_on`]: poll a `Future` in a task; `recv_timeout` / `send_timeout` on the channels |
//!
//! When nothing is runnable the loop sleeps in mio's poll until a socket is ready, a [`sleep`] is due or
//! another thread wakes it; while tasks stay runnable it still polls without sleeping every 32 entries, so
//! tasks that wait for sockets are not starved. Where mio does not run (targets other than unix and windows,
//! and `--cfg loom`), the loop sleeps on a condition variable and there is no I/O.
//!
//! # How waiting and waking work
//!
//! A coroutine spawned on a loop (a *task*) that has to wait — a contended [`CoMutex`](crate::CoMutex), a
//! [`CoQueue::wait`](crate::CoQueue::wait), a full or empty [channel](crate::channel), [`sleep`] — records
//! itself in the primitive's wait queue and yields back to the loop, which entered it. Whoever satisfies the
//! wait (unlocks, notifies, sends) takes it out of the queue, hands it what it waited for (the lock itself, the
//! message), and *schedules* it on its loop; the loop enters it again. So the loop is the only one that enters
//! its tasks, wherever the wake-up comes from:
//!
//! - a wake-up made by the task that the loop is running goes into a list that the loop enters right after
//!   that task yields or finishes, in FIFO order, before anything else runnable (QEMU's `co_queue_wakeup`).
//!   So a chain of hand-offs runs without detours; to keep a ring of tasks that wake each other from starving
//!   the others, at most [`MAX_WAKE_CHAIN`] tasks in a row are entered this way;
//! - any other wake-up (from outside coroutines, from another loop's task, from another OS thread) puts the
//!   task at the tail of its loop's run queue at once and wakes the loop's thread if it sleeps
//!   (`aio_co_wake` across contexts). Wake-ups from outside coroutines are not entered on the waker's stack.
//!
//! Everything the two sides share goes through the crate's `Mutex` and atomics: on the thread backend a task
//! runs on a thread of its own, and wake-ups can come from any thread.
//!
//! A task that calls plain [`yield_now`](crate::yield_now) is suspended until something wakes it (an explicit
//! [`wake`], or a primitive it waits on); [`yield_to_loop`] instead lets the other runnable tasks run and comes
//! back. Being entered does not prove that the awaited thing happened (anybody may [`wake`] a task): the
//! primitives check, and wait again if not.
//!
//! # Coroutines not spawned on a loop
//!
//! A coroutine that the caller enters itself ([`Coroutine::enter`](crate::Coroutine::enter)) can use the
//! primitives as long as it does not have to wait: an uncontended lock, a `try_*`, a `send` with room, a
//! notify. If it would have to wait, it panics, naming the operation: nothing would enter it again when it is
//! woken (its enterer does not know about the wait queue, and entering it from the waker's thread would race
//! with the enterer). Spawn it on a loop instead. The same holds for a coroutine entered by a task (nested):
//! it is not a task itself.
//!
//! Outside coroutines, channel operations, sockets and [`block_on`] that must wait park the calling OS thread
//! (so a plain thread can feed a loop); locking a `CoMutex` or `CoRwLock`, `CoQueue::wait` and [`sleep`] panic;
//! [`offload`] just calls its closure.
//!
//! # When `run` gives up
//!
//! [`RunLoop::run`] returns when every task has finished. When no task is runnable and no [`sleep`] is pending,
//! only something outside the loop can still wake a task: another thread or another loop. The loop cannot see
//! who holds a sender or a lock, so it relies on being told: while a [`KeepAlive`] exists, a task waits for a
//! socket, an [`offload`]ed closure runs or a [`block_on`] future is pending, it sleeps until woken; without one, it panics with "deadlocked", naming how many tasks wait. [`RunLoop::run_until_stalled`]
//! returns at that point instead, with the number of tasks that still wait.

use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::hash::BuildHasherDefault;
use std::io;
use std::panic::{self, AssertUnwindSafe};

use crate::coroutine::{Builder, Coroutine, CoroutineRef};
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::{Arc, Mutex};

#[cfg(not(loom))]
mod bridge;
mod idle;
#[cfg(all(any(unix, windows), not(loom)))]
pub(crate) mod readiness;
mod task;
mod timer;

#[cfg(not(loom))]
pub use bridge::{MAX_OFFLOAD_WORKERS, block_on, offload};
use idle::{Idle, Poller};
use task::{IdHasher, Task, find, register, unregister};
pub use task::{MAX_WAKE_CHAIN, wake, yield_to_loop};
pub(crate) use task::{current_task, waiter};
use timer::{Timer, fire_due_timers};
pub use timer::{end_sleep, sleep, sleep_until};

/// The part of a loop that wakers on any thread reach.
struct Shared {
    state: Mutex<State>,
    /// Where the loop's thread sleeps when nothing is runnable (mio's poll, or a condition variable).
    idle: Idle,
}

impl Shared {
    /// Wakes the loop's thread if it sleeps; the caller holds the state lock.
    fn wake_loop(&self, st: &mut State) {
        if st.parked {
            st.parked = false;
            self.idle.wake();
        }
    }
}

#[derive(Default)]
struct State {
    /// Tasks to enter, in order.
    runnable: VecDeque<Arc<Task>>,
    /// Tasks woken by the running task: entered right after it, before `runnable`.
    front: Vec<Arc<Task>>,
    /// The id of the task the loop is entering, 0 when none.
    running: u64,
    /// How many tasks in a row were entered as wake-ups of the task before, up to the running one.
    chain: u32,
    /// Pending sleeps, earliest first.
    timers: BinaryHeap<Timer>,
    /// Tie-breaker that keeps equal deadlines in FIFO order.
    timer_seq: u64,
    /// The loop's thread sleeps (or is about to) and nobody has woken it yet.
    parked: bool,
    /// Tasks spawned by [`spawn`] or a [`Handle`], for the loop to adopt (their records are in `runnable`).
    incoming: Vec<Coroutine<()>>,
    /// The loop was dropped: what is spawned now is dropped at once.
    closed: bool,
    /// Live [`KeepAlive`]s.
    keep_alive: usize,
}

/// A loop that runs coroutines: it owns the coroutines spawned onto it and enters the runnable ones in FIFO
/// order until they have all finished (QEMU's `AioContext` and `aio_poll`). See the [module
/// documentation](self) for how waiting and waking work.
///
/// Tasks on the native backend stay on the thread that first entered them: run a loop that has native tasks
/// on one thread only (entering one elsewhere panics). Tasks of both backends can share a loop.
///
/// A panic inside a task comes out of [`run`](RunLoop::run) (or
/// [`run_until_stalled`](RunLoop::run_until_stalled)) with its payload; the task has then finished, and the
/// loop can be run again. Dropping the loop drops the tasks that have not finished, which unwinds their stacks
/// (see [`Coroutine`]): a task waiting on a lock or a channel leaves its queue.
pub struct RunLoop {
    shared: Arc<Shared>,
    /// The tasks that have not finished, by id.
    coroutines: HashMap<u64, Coroutine<()>, BuildHasherDefault<IdHasher>>,
    /// The loop thread's side of the idle wait.
    poller: Poller,
    /// Tasks entered since the loop last polled for I/O (see [`POLL_INTERVAL`]).
    entered_since_poll: u32,
}

/// While tasks are runnable, the loop still polls for I/O (without sleeping) after this many entries, so that
/// tasks waiting for sockets are not starved by busy ones (QEMU's `aio_poll` polls on every iteration; tokio
/// every 61 ticks).
const POLL_INTERVAL: u32 = 32;

/// A handle to a [`RunLoop`] that any thread can hold: spawns tasks onto the loop and wakes it (QEMU's
/// `aio_co_enter` on another thread's `AioContext`). Made by [`RunLoop::handle`]; `Clone + Send + Sync`.
///
/// A handle does not keep [`RunLoop::run`] from returning when all tasks have finished: hold a [`KeepAlive`]
/// for that. Tasks spawned after the loop was dropped are dropped at once, unstarted.
///
/// ```
/// use cothread::{channel, RunLoop};
///
/// let mut rl = RunLoop::new();
/// let (tx, rx) = channel::bounded(1);
/// let got = rl.spawn(move || rx.recv().unwrap());
/// let handle = rl.handle();
/// let keep = rl.keep_alive(); // until the other thread has spawned
/// let spawner = std::thread::spawn(move || {
///     handle.spawn(move || tx.send(6 * 7).unwrap());
///     drop(keep);
/// });
/// rl.run();
/// spawner.join().unwrap();
/// assert_eq!(got.take(), Some(42));
/// ```
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl Handle {
    /// Spawns a coroutine running `f` onto the loop, at the tail of its run queue, and wakes the loop.
    ///
    /// # Panics
    /// Where [`Builder::spawn`] would return `Err` (the operating system refuses a thread); see
    /// [`spawn_with`](Handle::spawn_with).
    pub fn spawn<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        spawned_or_panic(self.spawn_with(Builder::new(), f))
    }

    /// Spawns a coroutine made by `builder` onto the loop and wakes the loop.
    pub fn spawn_with<F, R>(&self, builder: Builder, f: F) -> io::Result<JoinHandle<R>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        spawn_onto(&self.shared, builder, f)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

/// Spawns a coroutine running `f` onto the loop of the calling task, at the tail of its run queue (QEMU's
/// `aio_co_enter(qemu_get_current_aio_context(), co)`); runs nothing now.
///
/// # Panics
/// If the caller is not a coroutine spawned on a [`RunLoop`]; where [`Builder::spawn`] would return `Err`.
///
/// ```
/// use cothread::{runloop, RunLoop};
///
/// let mut rl = RunLoop::new();
/// let outer = rl.spawn(|| {
///     let inner = runloop::spawn(|| 2);
///     runloop::yield_to_loop(); // the inner task runs
///     inner.take().unwrap() + 1
/// });
/// rl.run();
/// assert_eq!(outer.take(), Some(3));
/// ```
pub fn spawn<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let Some(task) = current_task() else {
        panic!("cothread: runloop::spawn() called outside a coroutine spawned on a RunLoop");
    };
    spawned_or_panic(spawn_onto(&task.home, Builder::new(), f))
}

fn spawned_or_panic<R>(spawned: io::Result<JoinHandle<R>>) -> JoinHandle<R> {
    match spawned {
        Ok(handle) => handle,
        Err(e) => panic!("cothread: failed to create a coroutine: {e}"),
    }
}

/// A coroutine running `f`, registered as a task of `home`; the caller puts it in the run queue.
fn new_task<F, R>(
    home: &Arc<Shared>,
    builder: Builder,
    f: F,
) -> io::Result<(Coroutine<()>, Arc<Task>, JoinHandle<R>)>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let result = Arc::new(Mutex::new(None));
    let slot = result.clone();
    let co = builder.spawn(move || {
        let value = f();
        *slot.lock() = Some(value);
    })?;
    let handle = co.handle();
    let id = handle.id();
    let task = Arc::new(Task {
        co: handle.clone(),
        id,
        home: home.clone(),
        scheduled: AtomicBool::new(true),
        via_front: AtomicBool::new(false),
        waiting: Mutex::new(None),
    });
    register(&task);
    Ok((co, task, JoinHandle { co: handle, result }))
}

/// Spawns onto a loop that may be running elsewhere: the loop adopts the coroutine from `incoming`.
fn spawn_onto<F, R>(home: &Arc<Shared>, builder: Builder, f: F) -> io::Result<JoinHandle<R>>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let (co, task, handle) = new_task(home, builder, f)?;
    let mut st = home.state.lock();
    if st.closed {
        drop(st);
        unregister(task.id);
        drop(co);
        return Ok(handle);
    }
    st.incoming.push(co);
    st.runnable.push_back(task);
    home.wake_loop(&mut st);
    Ok(handle)
}

/// A handle to a task spawned on a [`RunLoop`]: whether it has finished, and its value.
pub struct JoinHandle<R> {
    co: CoroutineRef,
    result: Arc<Mutex<Option<R>>>,
}

impl<R> JoinHandle<R> {
    /// Whether the task has finished.
    pub fn is_finished(&self) -> bool {
        self.co.is_finished()
    }

    /// The value the task returned, once: `None` before it has finished, and after the value was taken.
    pub fn take(&self) -> Option<R> {
        self.result.lock().take()
    }

    /// The task's coroutine, e.g. for [`wake`].
    pub fn coroutine(&self) -> &CoroutineRef {
        &self.co
    }
}

impl<R> fmt::Debug for JoinHandle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("coroutine", &self.co)
            .finish_non_exhaustive()
    }
}

/// Tells a [`RunLoop`] that something outside it (another thread, another loop) may still wake its tasks:
/// while one exists, [`RunLoop::run`] sleeps when no task is runnable instead of reporting a deadlock. Made by
/// [`RunLoop::keep_alive`]; `Send`, so it can go to the thread that will do the waking. Cloning makes another.
///
/// Drop it only after the last thing that may wake the loop's tasks, and remember that dropping a channel's
/// last [`Sender`](crate::channel::Sender) wakes its receivers too (with the disconnection).
///
/// ```
/// use cothread::{channel, RunLoop};
///
/// let mut rl = RunLoop::new();
/// let (tx, rx) = channel::unbounded();
/// let got = rl.spawn(move || rx.recv().unwrap());
/// let keep = rl.keep_alive();
/// let feeder = std::thread::spawn(move || {
///     tx.send(7).unwrap();
///     drop(tx);
///     drop(keep); // nothing more will come from here
/// });
/// rl.run();
/// feeder.join().unwrap();
/// assert_eq!(got.take(), Some(7));
/// ```
pub struct KeepAlive {
    shared: Arc<Shared>,
}

impl KeepAlive {
    fn new(shared: &Arc<Shared>) -> KeepAlive {
        shared.state.lock().keep_alive += 1;
        KeepAlive {
            shared: shared.clone(),
        }
    }
}

impl Clone for KeepAlive {
    fn clone(&self) -> KeepAlive {
        KeepAlive::new(&self.shared)
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock();
        st.keep_alive -= 1;
        self.shared.wake_loop(&mut st);
    }
}

impl fmt::Debug for KeepAlive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeepAlive").finish_non_exhaustive()
    }
}

/// What [`RunLoop::next`] does when nothing is runnable and no sleep is pending.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WhenStalled {
    Return,
    WaitOrPanic,
}

impl Default for RunLoop {
    fn default() -> RunLoop {
        RunLoop::new()
    }
}

impl RunLoop {
    /// An empty loop.
    ///
    /// # Panics
    /// If the operating system refuses the loop's poll (out of file descriptors); see
    /// [`try_new`](RunLoop::try_new).
    pub fn new() -> RunLoop {
        match RunLoop::try_new() {
            Ok(rl) => rl,
            Err(e) => panic!("cothread: failed to create a RunLoop's poll: {e}"),
        }
    }

    /// An empty loop, or the error of creating its poll (mio's `Poll` and `Waker`).
    pub fn try_new() -> io::Result<RunLoop> {
        let (idle, poller) = Idle::new()?;
        Ok(RunLoop {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                idle,
            }),
            coroutines: HashMap::default(),
            poller,
            entered_since_poll: 0,
        })
    }

    /// A [`Handle`] that spawns onto this loop from any thread.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
        }
    }

    /// Spawns a coroutine running `f` onto the loop, runnable at the tail of the run queue; runs nothing now.
    ///
    /// # Panics
    /// Where [`Builder::spawn`] would return `Err` (the operating system refuses a thread).
    pub fn spawn<F, R>(&mut self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        match self.spawn_with(Builder::new(), f) {
            Ok(handle) => handle,
            Err(e) => panic!("cothread: failed to create a coroutine: {e}"),
        }
    }

    /// Spawns a coroutine made by `builder` (name, stack size, backend) onto the loop.
    pub fn spawn_with<F, R>(&mut self, builder: Builder, f: F) -> io::Result<JoinHandle<R>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (co, task, handle) = new_task(&self.shared, builder, f)?;
        self.coroutines.insert(task.id, co);
        self.shared.state.lock().runnable.push_back(task);
        Ok(handle)
    }

    /// The number of tasks that have not finished.
    pub fn len(&self) -> usize {
        // Tasks spawned from other threads or by tasks count before the loop has adopted them.
        self.coroutines.len() + self.shared.state.lock().incoming.len()
    }

    /// Whether every task has finished.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A [`KeepAlive`] for this loop.
    pub fn keep_alive(&self) -> KeepAlive {
        KeepAlive::new(&self.shared)
    }

    /// Runs tasks until every one has finished, sleeping while the only thing left to wait for is a
    /// [`sleep`] or (while a [`KeepAlive`] exists) a wake-up from outside the loop.
    ///
    /// # Panics
    /// - "deadlocked" when tasks remain but none is runnable, no sleep is pending and no [`KeepAlive`] exists:
    ///   nothing can wake them. The message says how many wait.
    /// - with a task's own panic payload, if a task panics.
    pub fn run(&mut self) {
        self.drive(WhenStalled::WaitOrPanic);
    }

    /// Runs tasks until none is runnable and no [`sleep`] is pending (sleeping for those), and returns how many
    /// tasks have not finished: those wait for a wake-up from outside the loop. 0 means all have finished.
    ///
    /// # Panics
    /// With a task's own panic payload, if a task panics.
    pub fn run_until_stalled(&mut self) -> usize {
        self.drive(WhenStalled::Return);
        self.coroutines.len()
    }

    fn drive(&mut self, when_stalled: WhenStalled) {
        // Native tasks of a loop dropped elsewhere that ran here are unwound here (see the crate's "Rules").
        crate::backend::unwind_orphans();
        while let Some(task) = self.next(when_stalled) {
            let Some(co) = self.coroutines.get_mut(&task.id) else {
                continue;
            };
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| co.enter()));
            let finished = co.is_finished();
            {
                let mut st = self.shared.state.lock();
                st.running = 0;
                let woken = std::mem::take(&mut st.front);
                for t in woken.into_iter().rev() {
                    st.runnable.push_front(t);
                }
            }
            if finished {
                self.coroutines.remove(&task.id);
                unregister(task.id);
            }
            if let Err(payload) = outcome {
                panic::resume_unwind(payload);
            }
        }
    }

    /// The next task to enter (marked running), or `None` when the loop should return.
    fn next(&mut self, when_stalled: WhenStalled) -> Option<Arc<Task>> {
        if self.entered_since_poll >= POLL_INTERVAL {
            self.entered_since_poll = 0;
            self.poller.poll_now(&self.shared);
        }
        let mut st = self.shared.state.lock();
        loop {
            for co in std::mem::take(&mut st.incoming) {
                self.coroutines.insert(co.handle().id(), co);
            }
            let next_deadline = fire_due_timers(&mut st);
            while let Some(task) = st.runnable.pop_front() {
                task.scheduled.store(false, Ordering::Relaxed);
                let chained = task.via_front.swap(false, Ordering::Relaxed);
                if self.coroutines.contains_key(&task.id) {
                    st.chain = if chained { st.chain + 1 } else { 0 };
                    st.running = task.id;
                    self.entered_since_poll += 1;
                    return Some(task);
                }
            }
            if self.coroutines.is_empty() {
                return None;
            }
            if next_deadline.is_some()
                || (when_stalled == WhenStalled::WaitOrPanic
                    && (st.keep_alive > 0 || self.shared.idle.io_waiting()))
            {
                st.parked = true;
                self.poller.sleep(&self.shared, &mut st, next_deadline);
                st.parked = false;
                continue;
            }
            // Stalled: sockets that became ready since the last poll may still make tasks runnable.
            if self.poller.poll_unlocked(&self.shared, &mut st) {
                continue;
            }
            if when_stalled == WhenStalled::Return {
                return None;
            }
            drop(st);
            panic!("{}", self.deadlock_message());
        }
    }

    fn deadlock_message(&self) -> String {
        const SHOWN: usize = 8;
        let mut ids: Vec<u64> = self.coroutines.keys().copied().collect();
        ids.sort_unstable();
        let names: Vec<String> = ids
            .iter()
            .take(SHOWN)
            .map(|id| match self.coroutines[id].handle().name() {
                Some(name) => format!("{id} ({name})"),
                None => id.to_string(),
            })
            .collect();
        let more = if ids.len() > SHOWN { ", ..." } else { "" };
        let n = ids.len();
        let what = if n == 1 {
            "coroutine waits"
        } else {
            "coroutines wait"
        };
        format!(
            "cothread: RunLoop::run() deadlocked: {n} {what} for a wake-up that nothing can send (none is \
             runnable, no sleep is pending, no KeepAlive exists); ids: {}{more}",
            names.join(", ")
        )
    }
}

impl Drop for RunLoop {
    fn drop(&mut self) {
        {
            let mut st = self.shared.state.lock();
            st.closed = true;
            for co in std::mem::take(&mut st.incoming) {
                self.coroutines.insert(co.handle().id(), co);
            }
        }
        // Drop the unfinished tasks in the order they were spawned; each unwinds from where it waits, which
        // may hand locks or messages to other tasks of this loop (scheduling them here, harmlessly).
        let mut ids: Vec<u64> = self.coroutines.keys().copied().collect();
        ids.sort_unstable();
        // First withdraw every wait of the tasks, so that no lock or message goes to a task that is dropped
        // without being unwound (a native task on another thread, or under `panic = "abort"`); those that are
        // unwound take their (withdrawn) nodes out of the queues themselves.
        for id in &ids {
            let task = find(*id);
            if let Some(state) = task.and_then(|task| task.waiting.lock().take()) {
                crate::wait::withdraw(&state);
            }
        }
        for id in ids {
            let co = self.coroutines.remove(&id);
            drop(co);
            unregister(id);
        }
        // Break the cycles task -> loop -> queues -> task.
        let mut st = self.shared.state.lock();
        let runnable = std::mem::take(&mut st.runnable);
        let front = std::mem::take(&mut st.front);
        let timers = std::mem::take(&mut st.timers);
        drop(st);
        drop((runnable, front, timers));
    }
}

impl fmt::Debug for RunLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunLoop")
            .field("tasks", &self.coroutines.len())
            .finish_non_exhaustive()
    }
}
