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
//! | `aio_co_enter(ctx, co)` | [`spawn`] and [`spawn_with`] from a task onto its own loop; [`Handle::spawn`] from any thread |
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
//!   task at the tail of its loop's run queue (before the loop enters its next task) and wakes the loop's
//!   thread if it sleeps (`aio_co_wake` across contexts). Wake-ups from outside coroutines are not entered on
//!   the waker's stack.
//!
//! Wake-ups can come from any thread, and on the thread backend a task runs on a thread of its own: what they
//! reach goes through the crate's `Mutex` and atomics. The exception is the loop's own run queue, which only
//! the thread driving the loop touches: the loop between entries, and the native task it runs (on that thread)
//! when that task wakes a task of the same loop or calls [`yield_to_loop`]. So a native task's switch through
//! the loop takes no lock and no atomic read-modify-write, and no lookup: the task finds its record on its
//! control block (QEMU's `co->ctx`), and the loop finds the task's coroutine in that record. Other wake-ups go
//! to a shared queue under the lock, which the loop takes in before it enters the next task.
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

use std::cell::Cell;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};

use crate::control::{Payload, SchedulerRecord};
use crate::coroutine::{Builder, CoroutineRef, Resume, in_coroutine};
use crate::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use crate::sync::cell::UnsafeCell;
use crate::sync::{Arc, Mutex, StdArc};

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
use task::forget;
pub use task::{MAX_WAKE_CHAIN, wake, yield_to_loop};
use task::{Task, TaskMap, queue_shared, register};
pub(crate) use task::{current_task, waiter};
use timer::{Timer, fire_due_timers};
pub use timer::{end_sleep, sleep, sleep_until};

/// The part of a loop that wakers on any thread reach.
struct Shared {
    state: Mutex<State>,
    /// `state` holds runnable tasks the loop has not taken into its own queue yet. Set under the state lock by
    /// whoever puts them there; cleared under it by the loop when it takes them.
    notified: AtomicBool,
    /// The id of the task the loop is entering, 0 when none. Written only by the loop's thread.
    running: AtomicU64,
    /// How many tasks in a row were entered as wake-ups of the task before, up to the running one. Written
    /// only by the loop's thread.
    chain: AtomicU32,
    /// The loop's own run queue: see [`Local`].
    local: UnsafeCell<Local>,
    /// Where the loop's thread sleeps when nothing is runnable (mio's poll, or a condition variable).
    idle: Idle,
}

/// The run queue that only the thread driving the loop touches, without a lock: the loop itself, between the
/// tasks it enters, and the native task it enters (which runs on that thread, with the loop's frames below it
/// on the stack). Thread-backed tasks run on threads of their own, so their wake-ups go through `State`. Only
/// reached through [`Shared::with_local`].
#[derive(Default)]
struct Local {
    /// Tasks to enter, in order.
    runnable: VecDeque<StdArc<Task>>,
    /// Tasks woken by the running task: entered right after it, before `runnable`.
    front: Vec<StdArc<Task>>,
    /// The running task asked to go to the tail of `runnable` once it has yielded ([`yield_to_loop`]).
    requeue_running: bool,
}

// SAFETY: `local` is the only field that is not `Sync`; it is touched only by the thread that drives the loop
// (which holds `&mut RunLoop`) or by the `RunLoop`'s owner through `&mut RunLoop` while nothing drives it, never
// by two threads at once (see `with_local`). The tasks it holds are `Send + Sync`.
unsafe impl Sync for Shared {}

crate::sync::thread_local! {
    /// The loop this thread is driving (in `run` or `run_until_stalled`), null when none.
    static DRIVING: Cell<*const Shared> = const { Cell::new(std::ptr::null()) };
}

/// Marks the calling thread as driving `shared` until dropped (loops may be driven inside a task of another).
struct Driving(*const Shared);

impl Driving {
    fn start(shared: &Shared) -> Driving {
        Driving(DRIVING.with(|d| d.replace(shared)))
    }
}

impl Drop for Driving {
    fn drop(&mut self) {
        DRIVING.with(|d| d.set(self.0));
    }
}

impl Shared {
    fn new(idle: Idle) -> Shared {
        Shared {
            state: Mutex::new(State::default()),
            notified: AtomicBool::new(false),
            running: AtomicU64::new(0),
            chain: AtomicU32::new(0),
            local: UnsafeCell::new(Local::default()),
            idle,
        }
    }

    /// Wakes the loop's thread if it sleeps; the caller holds the state lock.
    fn wake_loop(&self, st: &mut State) {
        if st.parked {
            st.parked = false;
            self.idle.wake();
        }
    }

    /// Whether the caller may use the loop's own queue ([`with_local`](Shared::with_local)): it runs on the
    /// thread that drives this loop, and is either the loop itself (`task` is `None`, outside coroutines) or
    /// the task the loop is entering (`task` is its id).
    #[inline]
    fn is_driven_by_caller(&self, task: Option<u64>) -> bool {
        DRIVING.with(|d| std::ptr::eq(d.get(), self))
            && match task {
                None => !in_coroutine(),
                Some(id) => self.running.load(Ordering::Relaxed) == id,
            }
    }

    /// Calls `f` with the loop's own queue.
    ///
    /// # Safety
    /// The caller holds `&mut RunLoop` while nothing drives the loop, or [`is_driven_by_caller`] said yes;
    /// `f` does not reach the queue again (it wakes nothing and enters nothing).
    ///
    /// [`is_driven_by_caller`]: Shared::is_driven_by_caller
    #[inline]
    unsafe fn with_local<T>(&self, f: impl FnOnce(&mut Local) -> T) -> T {
        // SAFETY: the caller's contract: the only thread that touches the queue now is this one, and nothing
        // else on it holds the reference.
        self.local.with_mut(|local| f(unsafe { &mut *local }))
    }
}

#[derive(Default)]
struct State {
    /// Tasks made runnable by others than the loop and its native tasks, for the loop to take (at the tail of
    /// its queue).
    runnable: VecDeque<StdArc<Task>>,
    /// Tasks woken by the running task when it is thread-backed: the loop takes them to the head of its queue.
    front: Vec<StdArc<Task>>,
    /// Pending sleeps, earliest first.
    timers: BinaryHeap<Timer>,
    /// Tie-breaker that keeps equal deadlines in FIFO order.
    timer_seq: u64,
    /// The loop's thread sleeps (or is about to) and nobody has woken it yet.
    parked: bool,
    /// Tasks spawned by [`spawn`] or a [`Handle`], for the loop to adopt (they are in `runnable` too).
    incoming: Vec<StdArc<Task>>,
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
/// (see [`Coroutine`](crate::Coroutine)): a task waiting on a lock or a channel leaves its queue.
pub struct RunLoop {
    shared: Arc<Shared>,
    /// The tasks that have not finished, by id.
    tasks: TaskMap,
    /// The loop thread's side of the idle wait.
    poller: Poller,
    /// Tasks entered since the loop last polled for I/O (see [`POLL_INTERVAL`]).
    entered_since_poll: u32,
}

/// While tasks are runnable, the loop still polls for I/O (without sleeping) and fires due sleeps after this
/// many entries, so that tasks waiting for sockets or timers are not starved by busy ones (QEMU's `aio_poll`
/// polls on every iteration; tokio every 61 ticks).
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
    spawned_or_panic(spawn_from_task("runloop::spawn()", Builder::new(), f))
}

/// Spawns a coroutine made by `builder` (name, stack size, backend) onto the loop of the calling task, at the
/// tail of its run queue; runs nothing now. Returns the error of making the coroutine (the operating system
/// refuses a thread or a stack).
///
/// # Panics
/// If the caller is not a coroutine spawned on a [`RunLoop`].
///
/// ```
/// use cothread::{runloop, Builder, RunLoop};
///
/// let mut rl = RunLoop::new();
/// let outer = rl.spawn(|| {
///     let inner = runloop::spawn_with(Builder::new().name("inner"), || {
///         cothread::current().unwrap().name().map(str::to_owned)
///     })?;
///     runloop::yield_to_loop(); // the inner task runs
///     Ok::<_, std::io::Error>(inner.take().flatten())
/// });
/// rl.run();
/// assert_eq!(outer.take().unwrap().unwrap().as_deref(), Some("inner"));
/// ```
pub fn spawn_with<F, R>(builder: Builder, f: F) -> io::Result<JoinHandle<R>>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    spawn_from_task("runloop::spawn_with()", builder, f)
}

/// [`spawn_with`] for `op`, named in the panic.
fn spawn_from_task<F, R>(op: &str, builder: Builder, f: F) -> io::Result<JoinHandle<R>>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let Some(task) = current_task() else {
        panic!("cothread: {op} called outside a coroutine spawned on a RunLoop");
    };
    spawn_onto(&task.home, builder, f)
}

fn spawned_or_panic<R>(spawned: io::Result<JoinHandle<R>>) -> JoinHandle<R> {
    match spawned {
        Ok(handle) => handle,
        Err(e) => panic!("cothread: failed to create a coroutine: {e}"),
    }
}

/// A task of `home` running `f`, registered; the caller puts it in the run queue.
fn new_task<F, R>(
    home: &Arc<Shared>,
    builder: Builder,
    f: F,
) -> io::Result<(StdArc<Task>, JoinHandle<R>)>
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
    let task = Task::new(co.handle().id(), home.clone());
    // SAFETY: the coroutine has not run, and nobody else has a handle to it yet.
    unsafe { co.attach_scheduler(SchedulerRecord::new(task.clone())) };
    let handle = JoinHandle {
        co: co.handle(),
        result,
    };
    // SAFETY: the task is in no queue yet.
    unsafe { task.with_coroutine(|slot| *slot = Some(co)) };
    register(&task);
    Ok((task, handle))
}

/// Spawns onto a loop that may be running elsewhere: the loop adopts the task from `incoming`.
fn spawn_onto<F, R>(home: &Arc<Shared>, builder: Builder, f: F) -> io::Result<JoinHandle<R>>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let (task, handle) = new_task(home, builder, f)?;
    let mut st = home.state.lock();
    if st.closed {
        drop(st);
        // SAFETY: the task is in no queue.
        unsafe { forget(&task) };
        return Ok(handle);
    }
    st.incoming.push(task.clone());
    queue_shared(&task, &mut st, false);
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

/// Adopts the tasks spawned from elsewhere and takes the tasks others made runnable into the loop's own queue:
/// wake-ups by a thread-backed running task to its head, the rest to its tail. The caller drives the loop,
/// outside coroutines.
fn take_notified(shared: &Shared, tasks: &mut TaskMap, st: &mut State) {
    for task in st.incoming.drain(..) {
        tasks.insert(task.id, task);
    }
    shared.notified.store(false, Ordering::Relaxed);
    // SAFETY: this thread drives the loop, outside coroutines; nothing here wakes or enters.
    unsafe {
        shared.with_local(|local| {
            for t in st.front.drain(..).rev() {
                if take_into_loop_queue(&t) {
                    local.runnable.push_front(t);
                }
            }
            for t in st.runnable.drain(..) {
                if take_into_loop_queue(&t) {
                    local.runnable.push_back(t);
                }
            }
        });
    }
}

/// Moves `task`'s mark from the shared queue to the loop's own; returns `false` if it is there already.
fn take_into_loop_queue(task: &Task) -> bool {
    task.in_shared_queue.store(false, Ordering::Relaxed);
    if task.in_loop_queue.load(Ordering::Relaxed) {
        return false;
    }
    task.in_loop_queue.store(true, Ordering::Relaxed);
    true
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
            shared: Arc::new(Shared::new(idle)),
            tasks: TaskMap::default(),
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
        let (task, handle) = new_task(&self.shared, builder, f)?;
        self.tasks.insert(task.id, task.clone());
        task.in_loop_queue.store(true, Ordering::Relaxed);
        // SAFETY: `&mut self`, and nothing drives the loop (that would hold `&mut self` too).
        unsafe {
            self.shared
                .with_local(|local| local.runnable.push_back(task))
        };
        Ok(handle)
    }

    /// The number of tasks that have not finished.
    pub fn len(&self) -> usize {
        // Tasks spawned from other threads or by tasks count before the loop has adopted them.
        self.tasks.len() + self.shared.state.lock().incoming.len()
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
        self.tasks.len()
    }

    fn drive(&mut self, when_stalled: WhenStalled) {
        // Native tasks of a loop dropped elsewhere that ran here are unwound here (see the crate's "Rules").
        crate::backend::unwind_orphans();
        let _driving = Driving::start(&self.shared);
        while let Some(task) = self.next(when_stalled) {
            task.in_loop_queue.store(false, Ordering::Relaxed);
            let chained = task.via_front.load(Ordering::Relaxed);
            if chained {
                task.via_front.store(false, Ordering::Relaxed);
            }
            let Some((outcome, finished)) = self.enter(&task, chained) else {
                continue;
            };
            if finished {
                self.tasks.remove(&task.id);
                // SAFETY: this thread drives the loop, outside coroutines.
                unsafe { forget(&task) };
            }
            // SAFETY: this thread drives the loop, outside coroutines; nothing here wakes or enters.
            let requeue = unsafe {
                self.shared.with_local(|local| {
                    if !local.front.is_empty() {
                        for t in local.front.drain(..).rev() {
                            local.runnable.push_front(t);
                        }
                    }
                    std::mem::take(&mut local.requeue_running) && !finished
                })
            };
            if requeue {
                // Behind what others made runnable meanwhile (tasks it spawned, say).
                if self.shared.notified.load(Ordering::Acquire) {
                    let mut st = self.shared.state.lock();
                    take_notified(&self.shared, &mut self.tasks, &mut st);
                }
                // SAFETY: as above.
                unsafe {
                    self.shared
                        .with_local(|local| local.runnable.push_back(task))
                };
            }
            if let Err(payload) = outcome {
                panic::resume_unwind(payload);
            }
        }
    }

    /// Enters `task` as the running task, unless its coroutine has gone: what the enter returned, and whether
    /// the task has finished. `chained`: it was scheduled as a wake-up by the task before.
    #[inline]
    fn enter(&mut self, task: &Task, chained: bool) -> Option<(Result<Resume<()>, Payload>, bool)> {
        let shared = &self.shared;
        // SAFETY: this thread drives the loop, outside coroutines; the task itself never touches its slot.
        unsafe {
            task.with_coroutine(|co| {
                let co = co.as_mut()?;
                let chain = if chained {
                    shared.chain.load(Ordering::Relaxed) + 1
                } else {
                    0
                };
                shared.chain.store(chain, Ordering::Relaxed);
                shared.running.store(task.id, Ordering::Relaxed);
                self.entered_since_poll += 1;
                let outcome = panic::catch_unwind(AssertUnwindSafe(|| co.enter()));
                shared.running.store(0, Ordering::Relaxed);
                let finished = !matches!(outcome, Ok(Resume::Yielded)) && co.is_finished();
                Some((outcome, finished))
            })
        }
    }

    /// The next task to enter, or `None` when the loop should return.
    fn next(&mut self, when_stalled: WhenStalled) -> Option<StdArc<Task>> {
        if self.entered_since_poll < POLL_INTERVAL && !self.shared.notified.load(Ordering::Acquire)
        {
            // SAFETY: this thread drives the loop, outside coroutines.
            let task = unsafe { self.shared.with_local(|local| local.runnable.pop_front()) };
            if task.is_some() {
                return task;
            }
        }
        self.refill(when_stalled)
    }

    /// [`next`](RunLoop::next) when the loop's own queue is empty, others made tasks runnable, or it is time
    /// to poll: takes in what others made runnable and the due sleeps, and sleeps while nothing is runnable.
    fn refill(&mut self, when_stalled: WhenStalled) -> Option<StdArc<Task>> {
        if self.entered_since_poll >= POLL_INTERVAL {
            self.entered_since_poll = 0;
            self.poller.poll_now(&self.shared);
        }
        let shared = &self.shared;
        let mut st = shared.state.lock();
        loop {
            let next_deadline = fire_due_timers(&mut st);
            take_notified(shared, &mut self.tasks, &mut st);
            // SAFETY: this thread drives the loop, outside coroutines.
            let task = unsafe { self.shared.with_local(|local| local.runnable.pop_front()) };
            if task.is_some() {
                return task;
            }
            if self.tasks.is_empty() {
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
        let mut ids: Vec<u64> = self.tasks.keys().copied().collect();
        ids.sort_unstable();
        let names: Vec<String> = ids
            .iter()
            .take(SHOWN)
            .map(|id| {
                // SAFETY: called by the thread driving the loop, outside coroutines, before it panics.
                let name = unsafe {
                    self.tasks[id].with_coroutine(|co| {
                        co.as_ref()
                            .and_then(|co| co.handle().name().map(String::from))
                    })
                };
                match name {
                    Some(name) => format!("{id} ({name})"),
                    None => id.to_string(),
                }
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
            for task in st.incoming.drain(..) {
                self.tasks.insert(task.id, task);
            }
        }
        // Drop the unfinished tasks in the order they were spawned; each unwinds from where it waits, which
        // may hand locks or messages to other tasks of this loop (scheduling them here, harmlessly).
        let mut ids: Vec<u64> = self.tasks.keys().copied().collect();
        ids.sort_unstable();
        // First withdraw every wait of the tasks, so that no lock or message goes to a task that is dropped
        // without being unwound (a native task on another thread, or under `panic = "abort"`); those that are
        // unwound take their (withdrawn) nodes out of the queues themselves.
        for task in self.tasks.values() {
            if let Some(state) = task.take_waiting() {
                crate::wait::withdraw(&state);
            }
        }
        for id in ids {
            if let Some(task) = self.tasks.remove(&id) {
                // SAFETY: `&mut self`: nothing drives the loop.
                unsafe { forget(&task) };
            }
        }
        // Break the cycles task -> loop -> queues -> task.
        let mut st = self.shared.state.lock();
        let runnable = std::mem::take(&mut st.runnable);
        let front = std::mem::take(&mut st.front);
        let timers = std::mem::take(&mut st.timers);
        drop(st);
        // SAFETY: `&mut self`: nothing drives the loop.
        let local = unsafe { self.shared.with_local(std::mem::take) };
        drop((runnable, front, timers, local));
    }
}

impl fmt::Debug for RunLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunLoop")
            .field("tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}
