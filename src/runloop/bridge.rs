//! Bridges from a task to the world outside its loop: [`offload`] runs blocking work on worker threads while
//! the task yields (QEMU's `thread_pool_submit_co`), and [`block_on`] polls a `Future` while the task yields
//! between polls (the bridge to the async ecosystem).

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::pin;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use super::task::{Task, schedule};
use crate::coroutine::{in_coroutine, yield_now};
use crate::runloop::{KeepAlive, current_task};
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::channel::{self, Receiver, RecvTimeoutError, Sender};
use crate::sync::{Arc, Condvar, Mutex, StdArc, thread};
use crate::wait::{DROPPED, Outside, WOKEN, Waiter};

/// At most this many worker threads run [`offload`]ed closures at once; more closures queue.
pub const MAX_OFFLOAD_WORKERS: usize = 16;

/// An idle worker exits after this long without work.
const WORKER_IDLE: Duration = Duration::from_secs(5);

type Job = Box<dyn FnOnce() + Send>;

/// The offload workers: a shared job queue and the number of threads that serve it.
struct Workers {
    tx: Sender<Job>,
    rx: Receiver<Job>,
    /// Workers alive, and those of them waiting for a job. A worker exits only under this lock and only with
    /// the queue empty; a submitter queues and decides to add a worker under it, so no job is left queued
    /// with no worker to run it.
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    alive: usize,
    idle: usize,
}

crate::sync::global! {
    static WORKERS: Workers = {
        let (tx, rx) = channel::unbounded();
        Workers { tx, rx, counts: Mutex::new(Counts::default()) }
    };
}

impl Workers {
    /// Queues `job`; adds a worker if every one is busy and the bound allows. Gives the job back if there is
    /// no worker and none can be started.
    fn submit(&'static self, job: Job) -> Result<(), Job> {
        let mut counts = self.counts.lock();
        if counts.idle == 0 && counts.alive < MAX_OFFLOAD_WORKERS {
            let spawned = crate::limits::reserve(crate::limits::THREAD_MAPS).and_then(|()| {
                thread::Builder::new()
                    .name("cothread-offload".to_string())
                    .spawn(move || self.work())
            });
            match spawned {
                Ok(_) => counts.alive += 1,
                Err(_) if counts.alive == 0 => return Err(job),
                // The busy workers will get to it.
                Err(_) => {}
            }
        } else if counts.idle > 0 {
            // That worker is taken: the next submitter must not count on it.
            counts.idle -= 1;
        }
        // The receiver lives in `self`, so the queue never disconnects.
        let _ = self.tx.send(job);
        Ok(())
    }

    /// A worker's loop: runs jobs until none comes for [`WORKER_IDLE`].
    fn work(&self) {
        loop {
            match self.rx.recv_timeout(WORKER_IDLE) {
                Ok(job) => job(),
                Err(RecvTimeoutError::Timeout) => {
                    let mut counts = self.counts.lock();
                    if self.rx.is_empty() {
                        counts.alive -= 1;
                        counts.idle = counts.idle.saturating_sub(1);
                        return;
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
            self.counts.lock().idle += 1;
        }
    }
}

/// Runs the blocking closure `f` on one of at most [`MAX_OFFLOAD_WORKERS`] worker threads and, inside a task,
/// yields to the loop until it returns (QEMU's `thread_pool_submit_co`); its value, or its panic, comes back
/// to the caller. Outside tasks (and if no worker thread can be started at all) it calls `f` right there.
///
/// If the task is dropped while it waits, `f` still runs to its end; its value is dropped.
///
/// ```
/// use cothread::{runloop, RunLoop};
///
/// let mut rl = RunLoop::new();
/// let sum = rl.spawn(|| runloop::offload(|| (1..=100u64).sum::<u64>()));
/// rl.run();
/// assert_eq!(sum.take(), Some(5050));
/// ```
pub fn offload<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let Some(task) = current_task() else {
        return f();
    };
    let node: Arc<Waiter<std::thread::Result<T>>> = Waiter::for_task(task.clone(), None);
    let done = node.clone();
    let job: Job = Box::new(move || {
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        *done.slot.lock() = Some(result);
        // A dead waiter (its loop was dropped without unwinding it) is not woken.
        if done.set(WOKEN) {
            done.wake();
        }
    });
    // While the worker runs, the loop sleeps instead of reporting a deadlock.
    let _keep = KeepAlive::new(&task.home);
    if let Err(job) = WORKERS.submit(job) {
        job();
    }
    // Dropped while waiting: nothing to withdraw (the worker finishes and drops the result). Being dropped
    // already, there is no value to return: the task is abandoned (see `crate::wait::DROPPED`).
    if node.block(|| {}) == DROPPED {
        crate::coroutine::abandon_current();
    }
    match node.slot.lock().take() {
        Some(Ok(value)) => value,
        Some(Err(payload)) => panic::resume_unwind(payload),
        None => unreachable!("an offloaded closure woke its task without a result"),
    }
}

/// Wakes a task that waits in [`block_on`].
struct TaskWaker {
    task: StdArc<Task>,
    woken: AtomicBool,
}

impl Wake for TaskWaker {
    fn wake(self: StdArc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &StdArc<Self>) {
        self.woken.store(true, Ordering::Release);
        schedule(&self.task);
    }
}

/// Wakes a thread that waits in [`block_on`] outside coroutines.
#[derive(Default)]
struct ThreadWaker {
    woken: Mutex<bool>,
    cvar: Condvar,
}

impl Wake for ThreadWaker {
    fn wake(self: StdArc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &StdArc<Self>) {
        *self.woken.lock() = true;
        self.cvar.notify_one();
    }
}

/// Polls `future` to completion. Inside a task, yields to the loop while it is pending; its `Waker` (usable
/// from any thread) schedules the task again. Outside coroutines, blocks the thread between polls.
///
/// The future runs on the caller's stack: it can borrow from it. It needs no async runtime of its own, so
/// futures that need one (tokio's sockets, timers) do not work here; channels, `oneshot`s and hand-written
/// futures do.
///
/// # Panics
/// If the future is pending in a coroutine that was not spawned on a [`RunLoop`](crate::RunLoop).
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::task::{Context, Poll};
/// use cothread::{runloop, RunLoop};
///
/// /// Pending once, then ready.
/// struct Twice(bool);
/// impl Future for Twice {
///     type Output = &'static str;
///     fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<&'static str> {
///         if self.0 { return Poll::Ready("done") }
///         self.0 = true;
///         cx.waker().wake_by_ref();
///         Poll::Pending
///     }
/// }
///
/// let mut rl = RunLoop::new();
/// let task = rl.spawn(|| runloop::block_on(Twice(false)));
/// rl.run();
/// assert_eq!(task.take(), Some("done"));
/// assert_eq!(runloop::block_on(Twice(false)), "done"); // outside coroutines
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    if !in_coroutine() {
        let waker = StdArc::new(ThreadWaker::default());
        let std_waker = Waker::from(waker.clone());
        let mut cx = Context::from_waker(&std_waker);
        loop {
            if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
                return value;
            }
            let mut woken = waker.woken.lock();
            while !*woken {
                waker.cvar.wait(&mut woken);
            }
            *woken = false;
        }
    }
    let Some(task) = current_task() else {
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        // Panics, naming the mistake, like every primitive that has to wait.
        super::waiter::<()>("block_on()", Outside::Panic, None);
        unreachable!("a coroutine that is not a task waited");
    };
    let waker = StdArc::new(TaskWaker {
        task: task.clone(),
        woken: AtomicBool::new(false),
    });
    let std_waker = Waker::from(waker.clone());
    let mut cx = Context::from_waker(&std_waker);
    // While the future is pending, only its waker can make progress: the loop waits for it.
    let mut keep = None;
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        if !waker.woken.swap(false, Ordering::AcqRel) {
            if crate::coroutine::current_is_dropped() {
                // Nothing will enter the task again and there is no output to return: abandon it (see
                // `crate::wait::DROPPED`).
                crate::coroutine::abandon_current();
            }
            keep.get_or_insert_with(|| KeepAlive::new(&task.home));
            yield_now();
            waker.woken.store(false, Ordering::Release);
        }
    }
}
