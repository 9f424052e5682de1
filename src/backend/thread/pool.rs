//! The thread backend's pool of idle coroutine threads (the public side is [`crate::pool`]).
//!
//! When a coroutine of the thread backend finishes, its OS thread does not exit: it puts itself back in this
//! pool and waits (on a channel of its own) for the next coroutine. Creating a coroutine takes the most
//! recently idled thread whose settings (name, stack size) match; only when none matches does it spawn a
//! thread. Every thread that finishes goes idle, up to [`settings::burst_bound`] of them (so a burst's threads
//! are there for the next burst); a thread idle for longer than the idle timeout exits, so once a burst is
//! over, the pool shrinks by itself. A thread that finishes while the pool holds that many exits.

use std::io;

use crate::backend::{PoolStats, Spec};
use crate::settings;
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::channel::{self, Receiver, RecvTimeoutError, Sender};
use crate::sync::{Mutex, thread};

/// Work for a pool thread: [`Job::run`] runs the coroutine to its end; then the thread goes back to the pool,
/// and only then calls [`Job::finish`], which returns control to the enterer. That order lets the enterer's
/// next coroutine find this thread idle.
pub(crate) trait Job: Send {
    /// Runs the coroutine's body to its end.
    fn run(&mut self);
    /// Marks the coroutine finished, which gives control back to its enterer.
    fn finish(self: Box<Self>);
}

enum Message {
    Run(Box<dyn Job>),
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
    pub(crate) fn start(self, job: Box<dyn Job>) {
        // A reserved thread waits on its channel until it gets a message, so the receiver is alive.
        let sent = self.tx.send(Message::Run(job));
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
        Pool {
            idle: Mutex::new(Vec::new()),
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
        if let Err(e) = crate::limits::reserve(crate::limits::THREAD_MAPS) {
            // No idle thread has these settings (`take` looked), and the idle ones hold mappings: tell them to
            // exit, so that their mappings come back for a later spawn.
            self.trim(0);
            return Err(e);
        }
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
                match rx.recv_timeout(settings::idle_timeout()) {
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
            let Some(Message::Run(mut job)) = msg else {
                break;
            };
            job.run();
            let back = self.push_idle(Worker {
                id: me.id,
                spec: me.spec.clone(),
                tx: me.tx.clone(),
            });
            job.finish();
            match back {
                Ok(()) => reserved = false,
                Err(_unpooled) => break,
            }
        }
        self.exited.fetch_add(1, Ordering::Relaxed);
        crate::limits::release(crate::limits::THREAD_EXIT_MAPS);
    }

    /// Puts a thread's entry in `idle` unless the pool is full: it holds the burst bound (`max_idle` or more).
    fn push_idle(&self, worker: Worker) -> Result<(), Worker> {
        let mut idle = self.idle.lock();
        if idle.len() < settings::burst_bound(settings::max_idle()) {
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

    /// Tells the surplus idle threads (oldest first) to exit, down to `max`.
    pub(crate) fn trim(&self, max: usize) {
        let surplus: Vec<Worker> = {
            let mut idle = self.idle.lock();
            let n = idle.len().saturating_sub(max);
            idle.drain(..n).collect()
        };
        for worker in surplus {
            worker.exit();
        }
    }

    pub(crate) fn stats(&self) -> PoolStats {
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
