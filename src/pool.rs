//! The pool of idle coroutine threads, and its settings and counters.
//!
//! When a coroutine of the thread backend finishes, its OS thread does not exit: it puts itself back in this
//! pool and waits (on a channel of its own) for the next coroutine. Creating a coroutine takes the most
//! recently idled thread whose [`Builder`](crate::Builder) settings (name, stack size) match; only when none
//! matches does it spawn a thread. So a create-enter-finish lifecycle costs a couple of hand-offs instead of a
//! `thread::spawn` and a join.
//!
//! The pool is bounded and shrinks by itself:
//! - at most [`max_idle`] threads wait idle (default [`DEFAULT_MAX_IDLE`], QEMU's pool size); a thread that
//!   finishes while the pool is full exits;
//! - a thread idle for longer than [`idle_timeout`] (default [`DEFAULT_IDLE_TIMEOUT`]) exits.
//!
//! Setting `max_idle` to 0 switches pooling off: every coroutine then gets a fresh thread, which exits when the
//! coroutine finishes. The environment variable `COTHREAD_MAX_IDLE`, read once when the pool is first used,
//! sets the initial bound. Under `--cfg loom` the initial bound is 0 (see the README's "Checking your own code
//! with loom").
//!
//! Nothing of the crate's own state (current coroutine, cancellation) carries over from one coroutine to the next
//! on the same thread. Thread-locals that *user code* set do carry over: a coroutine that sets a
//! `thread_local!` may leave it set for the next coroutine that happens to get the same thread.
//!
//! ```
//! use cothread::{pool, Backend, Builder};
//!
//! pool::set_max_idle(8);
//! let mut co = Builder::new().backend(Backend::Thread).spawn(|| 1 + 1)?;
//! assert_eq!(co.enter().into_returned(), Some(2));
//! let stats = pool::stats();
//! assert!(stats.created >= 1);
//! assert!(stats.idle <= 8);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::time::Duration;

use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::sync::channel::{self, Receiver, RecvTimeoutError, Sender};
use crate::sync::{Mutex, thread};

/// Default bound on idle threads: 64, the size of QEMU's first coroutine pool.
pub const DEFAULT_MAX_IDLE: usize = 64;
/// The largest `COTHREAD_MAX_IDLE` taken; a larger one is cut to this, with a warning.
const MAX_ENV_MAX_IDLE: u64 = 10_000;

/// Default time an idle thread waits for work before it exits.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// A snapshot of the pool's counters, since the process started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Threads spawned for coroutines.
    pub created: u64,
    /// Coroutines that got an idle thread instead of a new one.
    pub reused: u64,
    /// Threads waiting idle right now.
    pub idle: usize,
    /// Threads that have exited (pool full, idle timeout, or [`set_max_idle`] shrinking the pool).
    pub exited: u64,
}

/// Sets the bound on idle threads. Shrinking the bound tells the surplus idle threads (oldest first) to exit.
/// 0 turns pooling off. Like QEMU's `qemu_coroutine_inc_pool_size`, this can change at any time.
pub fn set_max_idle(max: usize) {
    global().set_max_idle(max);
    #[cfg(cothread_native)]
    crate::backend::native::stacks::trim(max);
}

/// The bound on idle threads.
pub fn max_idle() -> usize {
    global().max_idle.load(Ordering::Relaxed)
}

/// Sets how long an idle thread waits for a new coroutine before it exits. Threads already waiting keep the
/// timeout they started with.
pub fn set_idle_timeout(timeout: Duration) {
    let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    global().idle_timeout_ns.store(nanos, Ordering::Relaxed);
}

/// How long an idle thread waits for a new coroutine before it exits.
pub fn idle_timeout() -> Duration {
    Duration::from_nanos(global().idle_timeout_ns.load(Ordering::Relaxed))
}

/// The pool's counters.
pub fn stats() -> PoolStats {
    global().stats()
}

/// The counters of the native backend's stack pool, in the same shape: `created` counts stacks mapped,
/// `reused` coroutines that got an idle stack, `idle` stacks idle now, `exited` stacks unmapped. At most
/// [`max_idle`] stacks idle in the shared pool, plus the last one each thread got back (kept for its next
/// coroutine, unmapped when the thread exits); idle stacks have no timeout (they hold no thread, only memory).
/// All zero where [`Backend::Native`](crate::Backend::Native) is not compiled in (see
/// [`Backend::is_available`](crate::Backend::is_available)).
#[cfg(feature = "native")]
pub fn native_stats() -> PoolStats {
    #[cfg(cothread_native)]
    return crate::backend::native::stacks::stats();
    #[cfg(not(cothread_native))]
    return PoolStats::default();
}

/// Under loom: make every idle thread's timeout fire now (time does not pass in a model).
#[cfg(loom)]
pub fn expire_idle_timeouts() {
    channel::expire_timeouts();
}

/// Under loom: switch pooling off (which tells every idle thread to exit) and wait until every pool thread
/// of this execution has exited. Under loom pooling is off unless a model turns it on with [`set_max_idle`];
/// such a model calls this last, because loom requires every thread to have finished when the model's closure
/// returns (an idle pool thread never does). A thread that never comes back idle makes loom report a deadlock.
#[cfg(loom)]
pub fn exit_all_and_join() {
    set_max_idle(0);
    crate::sync::thread::join_spawned();
}

/// The settings a thread was spawned with; a coroutine reuses only a thread with equal settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Spec {
    pub(crate) name: Option<String>,
    pub(crate) stack_size: Option<usize>,
}

/// Work for a pool thread: [`Task::run`] runs the coroutine to its end; then the thread goes back to the pool,
/// and only then calls [`Task::hand_back`], which returns control to the enterer. That order lets the
/// enterer's next coroutine find this thread idle.
pub(crate) trait Task: Send {
    fn run(&mut self);
    fn hand_back(self: Box<Self>);
}

enum Message {
    Run(Box<dyn Task>),
    Exit,
}

/// A pool thread reserved for one coroutine: until [`Worker::start`] it waits on its channel, untimed.
/// A reservation that is not started must be given back with [`Worker::release`], or the thread waits forever.
pub(crate) struct Worker {
    id: u64,
    spec: Spec,
    tx: Sender<Message>,
}

impl Worker {
    /// Hands the coroutine to the thread.
    pub(crate) fn start(self, task: Box<dyn Task>) {
        // A reserved thread waits on its channel until it gets a message, so the receiver is alive.
        let sent = self.tx.send(Message::Run(task));
        assert!(
            sent.is_ok(),
            "cothread: a reserved pool thread has vanished"
        );
    }

    /// Gives an unstarted reservation back: the thread goes idle again, or exits if the pool is full.
    pub(crate) fn release(self) {
        global().rejoin(self);
    }
}

/// The pool. Invariant: every `Worker` in `idle` belongs to a thread blocked in (or about to enter)
/// `recv_timeout` on its channel with no message queued; a thread whose entry has been removed from `idle` gets
/// exactly one message (`Run` or `Exit`).
pub(crate) struct Pool {
    idle: Mutex<Vec<Worker>>,
    max_idle: AtomicUsize,
    idle_timeout_ns: AtomicU64,
    next_id: AtomicU64,
    created: AtomicU64,
    reused: AtomicU64,
    exited: AtomicU64,
}

crate::sync::global! {
    static POOL: Pool = Pool::new();
}

pub(crate) fn global() -> &'static Pool {
    &POOL
}

impl Pool {
    fn new() -> Pool {
        // `COTHREAD_MAX_IDLE` overrides the default bound, so a whole test suite can run with pooling off.
        // Under loom pooling starts off: loom requires every thread of an execution to have finished when the
        // model returns, and an idle pool thread never would. A model that wants pooling sets it.
        let default = if cfg!(loom) { 0 } else { DEFAULT_MAX_IDLE };
        let max_idle =
            crate::settings::env_number("COTHREAD_MAX_IDLE", default as u64, MAX_ENV_MAX_IDLE)
                as usize;
        Pool {
            idle: Mutex::new(Vec::new()),
            max_idle: AtomicUsize::new(max_idle),
            idle_timeout_ns: AtomicU64::new(DEFAULT_IDLE_TIMEOUT.as_nanos() as u64),
            next_id: AtomicU64::new(0),
            created: AtomicU64::new(0),
            reused: AtomicU64::new(0),
            exited: AtomicU64::new(0),
        }
    }

    /// An idle thread with these settings, or a new one.
    pub(crate) fn take(&'static self, spec: &Spec) -> io::Result<Worker> {
        {
            let mut idle = self.idle.lock();
            if let Some(i) = idle.iter().rposition(|w| w.spec == *spec) {
                let worker = idle.remove(i);
                drop(idle);
                self.reused.fetch_add(1, Ordering::Relaxed);
                return Ok(worker);
            }
        }
        self.spawn(spec)
    }

    fn spawn(&'static self, spec: &Spec) -> io::Result<Worker> {
        crate::limits::reserve(crate::limits::THREAD_MAPS)?;
        let (tx, rx) = channel::bounded(1);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut builder = thread::Builder::new();
        if let Some(name) = &spec.name {
            builder = builder.name(name.clone());
        }
        if let Some(size) = spec.stack_size {
            builder = builder.stack_size(size);
        }
        let own = Worker {
            id,
            spec: spec.clone(),
            tx: tx.clone(),
        };
        // The thread's JoinHandle is dropped: pool threads are detached and account for themselves in
        // `exited`.
        match builder.spawn(move || self.thread_main(own, rx)) {
            Ok(_) => {
                self.created.fetch_add(1, Ordering::Relaxed);
                Ok(Worker {
                    id,
                    spec: spec.clone(),
                    tx,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The body of a pool thread. `me` is a copy of its own entry, to put back in `idle`.
    fn thread_main(&'static self, me: Worker, rx: Receiver<Message>) {
        // Reserved by the coroutine that spawned it.
        let mut reserved = true;
        loop {
            let msg = if reserved {
                rx.recv().ok()
            } else {
                match rx.recv_timeout(Duration::from_nanos(
                    self.idle_timeout_ns.load(Ordering::Relaxed),
                )) {
                    Ok(msg) => Some(msg),
                    Err(RecvTimeoutError::Timeout) => {
                        if self.remove_idle(me.id) {
                            None
                        } else {
                            // Taken while the timeout fired: a message is on its way.
                            reserved = true;
                            continue;
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => None,
                }
            };
            let Some(Message::Run(mut task)) = msg else {
                break;
            };
            task.run();
            let back = self.push_idle(Worker {
                id: me.id,
                spec: me.spec.clone(),
                tx: me.tx.clone(),
            });
            task.hand_back();
            match back {
                Ok(()) => reserved = false,
                Err(_unpooled) => break,
            }
        }
        self.exited.fetch_add(1, Ordering::Relaxed);
        crate::limits::release(crate::limits::THREAD_EXIT_MAPS);
    }

    /// Puts a thread's entry in `idle` unless the pool is full.
    fn push_idle(&self, worker: Worker) -> Result<(), Worker> {
        let mut idle = self.idle.lock();
        if idle.len() < self.max_idle.load(Ordering::Relaxed) {
            idle.push(worker);
            Ok(())
        } else {
            Err(worker)
        }
    }

    /// An unstarted reservation comes back: idle again, or told to exit.
    fn rejoin(&self, worker: Worker) {
        if let Err(worker) = self.push_idle(worker) {
            worker.exit();
        }
    }

    /// Removes a timed-out thread's entry; false if somebody took it first.
    fn remove_idle(&self, id: u64) -> bool {
        let mut idle = self.idle.lock();
        match idle.iter().position(|w| w.id == id) {
            Some(i) => {
                idle.remove(i);
                true
            }
            None => false,
        }
    }

    fn set_max_idle(&self, max: usize) {
        self.max_idle.store(max, Ordering::Relaxed);
        let surplus: Vec<Worker> = {
            let mut idle = self.idle.lock();
            let n = idle.len().saturating_sub(max);
            idle.drain(..n).collect()
        };
        for worker in surplus {
            worker.exit();
        }
    }

    fn stats(&self) -> PoolStats {
        PoolStats {
            created: self.created.load(Ordering::Relaxed),
            reused: self.reused.load(Ordering::Relaxed),
            idle: self.idle.lock().len(),
            exited: self.exited.load(Ordering::Relaxed),
        }
    }
}

impl Worker {
    /// Tells a thread no longer in `idle` to exit.
    fn exit(self) {
        // If the thread already exited on its own, there is nobody to tell.
        let _ = self.tx.send(Message::Exit);
    }
}
