//! I/O readiness for tasks (QEMU's `aio_set_fd_handler` with `qio_channel_yield`): a socket registers with
//! the loop of the task that uses it, and a task whose operation would block waits until the loop's poll
//! reports the socket ready.
//!
//! Sources are registered edge-triggered for both directions. Each keeps a [`Readiness`]: a flag per
//! direction, set by the loop when an event arrives, and the waiters of that direction. The protocol that
//! keeps an edge from being lost: a task waits only after an attempt made while the socket was registered
//! with its loop (at the first `WouldBlock` it registers and tries again); after that attempt failed with
//! `WouldBlock`, the waiter takes the readiness lock and, if the flag is set (an event came since), clears it
//! and tries again; else it queues itself and yields. The loop sets the flag and takes the waiters under the
//! same lock. A stream read that returned less than it asked for emptied the socket: the next read in a task
//! of the same loop counts it as that failed attempt and goes straight to the flag, sparing a system call
//! bound to fail (new data brings a new edge).

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::io;

use super::task::{IdHasher, Task};
use crate::runloop::{Shared, current_task};
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::{Arc, Mutex, StdArc};
use crate::wait::{DROPPED, Outside, WOKEN, Waiter};

/// One direction of a socket's readiness.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Direction {
    Read,
    Write,
}

/// A socket's readiness as the loop reported it, and the tasks that wait for it.
#[derive(Default)]
pub(crate) struct Readiness {
    state: Mutex<ReadyState>,
}

#[derive(Default)]
struct ReadyState {
    /// An event came for each direction since the last waiter cleared it.
    ready: [bool; 2],
    /// The peer closed its side or the socket failed: a read returns at once from now on (never cleared).
    hung_up: bool,
    /// Per direction, the node of the last wait, kept for the next wait of the same task (see
    /// [`Waiter::reuse`]): a socket's waits are one task's, one after another, as a rule.
    spare: [Option<Arc<Waiter>>; 2],
    waiters: [Vec<Arc<Waiter>>; 2],
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::Read => 0,
            Direction::Write => 1,
        }
    }
}

/// The sources registered with one loop, by token.
#[derive(Default)]
pub(crate) struct Sources {
    /// Tokens are handed out in sequence, like coroutine ids: the registry's cheap hash serves.
    map: Mutex<HashMap<usize, Arc<Readiness>, BuildHasherDefault<IdHasher>>>,
    /// The number of entries in `map`, read without its lock by the loop's non-blocking polls.
    len: AtomicUsize,
    /// The next token to hand out (0 is the loop's waker).
    next: AtomicUsize,
    /// Tasks waiting for a source's readiness: while there are any, the loop polls instead of reporting a
    /// deadlock. Changed only by a running task (before it yields), read by the loop when no task runs.
    waiting: AtomicUsize,
}

impl Sources {
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::Relaxed) == 0
    }

    /// Whether a task waits for a source's readiness.
    pub(crate) fn any_waiting(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
    }

    fn insert(&self, readiness: Arc<Readiness>) -> usize {
        let token = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.map.lock().insert(token, readiness);
        self.len.fetch_add(1, Ordering::Relaxed);
        token
    }

    fn remove(&self, token: usize) {
        if self.map.lock().remove(&token).is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The loop: an event came for `token`; wakes the waiters of the ready directions. `woken` is the loop's
    /// buffer (empty between calls, its capacity kept).
    pub(crate) fn ready(
        &self,
        token: mio::Token,
        readable: bool,
        writable: bool,
        hung_up: bool,
        woken: &mut Vec<Arc<Waiter>>,
    ) {
        let Some(readiness) = self.map.lock().get(&token.0).cloned() else {
            // Deregistered since the event was queued.
            return;
        };
        {
            let mut st = readiness.state.lock();
            st.hung_up |= hung_up;
            for (dir, ready) in [(Direction::Read, readable), (Direction::Write, writable)] {
                if ready {
                    st.ready[dir.index()] = true;
                    // Drained, not taken: the queue keeps its capacity for the next wait.
                    for node in st.waiters[dir.index()].drain(..) {
                        // A dead waiter (its loop was dropped without unwinding it) is skipped.
                        if node.set(WOKEN) {
                            woken.push(node);
                        }
                    }
                }
            }
        }
        crate::wait::wake_all(woken.drain(..));
    }
}

/// A mio socket plus where it is registered. Operations lock `io` only for the (non-blocking) system call;
/// registering needs `&mut` to the socket, hence the lock.
pub(crate) struct Source<S: mio::event::Source> {
    io: Mutex<Registered<S>>,
    readiness: Arc<Readiness>,
}

struct Registered<S> {
    io: S,
    /// The loop the socket is registered with, and its token there.
    with: Option<(Arc<Shared>, usize)>,
    /// Per direction: the last attempt, made while registered with `with`, emptied the socket (see the
    /// module docs).
    emptied: [bool; 2],
}

impl<S: mio::event::Source> Source<S> {
    pub(crate) fn new(io: S) -> Source<S> {
        Source {
            io: Mutex::new(Registered {
                io,
                with: None,
                emptied: [false; 2],
            }),
            readiness: Arc::default(),
        }
    }

    /// Runs `op` on the socket until it does not fail with `WouldBlock`: inside a loop task it yields until
    /// the loop reports the socket ready in `dir`; outside coroutines it blocks the thread.
    ///
    /// # Panics
    /// If it has to wait in a coroutine that was not spawned on a loop (`what` names the operation).
    pub(crate) fn run<T>(
        &self,
        what: &str,
        dir: Direction,
        op: impl FnMut(&S) -> io::Result<T>,
    ) -> io::Result<T> {
        self.run_noting_empty(what, dir, op, |_| false)
    }

    /// [`run`](Source::run), where `emptied` says of a result that the socket had no more to give (a
    /// stream read that returned less than it asked for): see the module docs.
    pub(crate) fn run_noting_empty<T>(
        &self,
        what: &str,
        dir: Direction,
        mut op: impl FnMut(&S) -> io::Result<T>,
        emptied: impl Fn(&T) -> bool,
    ) -> io::Result<T> {
        // Looked up at the first `WouldBlock`: an operation that succeeds at once needs no task.
        let mut task = None;
        // A read that ended short at the peer's FIN also emptied nothing: the FIN stays to be read, and its
        // edge has come. So not after a hang-up.
        let skip = {
            let reg = self.io.lock();
            if reg.emptied[dir.index()] && !self.readiness.state.lock().hung_up {
                current_task()
                    .filter(|t| matches!(&reg.with, Some((home, _)) if Arc::ptr_eq(&t.home, home)))
            } else {
                None
            }
        };
        if let Some(current) = skip {
            self.wait_in_task(what, dir, Some(&current))?;
            task = Some(Some(current));
        }
        loop {
            let result = {
                let mut reg = self.io.lock();
                let result = op(&reg.io);
                reg.emptied[dir.index()] =
                    reg.with.is_some() && matches!(&result, Ok(v) if emptied(v));
                if let (Err(e), None) = (&result, &task)
                    && e.kind() == io::ErrorKind::WouldBlock
                {
                    task = Some(current_task());
                    if let Some(Some(task)) = &task
                        && self.register(&mut reg, &task.home)?
                    {
                        // Newly registered with this loop: readiness from now on reaches it; try again.
                        continue;
                    }
                }
                result
            };
            match result {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
            if let Some(Some(task)) = &task {
                self.wait_in_task(what, dir, Some(task))?;
            } else if crate::coroutine::in_coroutine() {
                self.wait_in_task(what, dir, None)?;
            } else {
                self.wait_blocking(dir)?;
            }
        }
    }

    /// Registers the socket with `home` (moving it from another loop if need be). Returns whether it was
    /// not registered there before.
    fn register(&self, reg: &mut Registered<S>, home: &Arc<Shared>) -> io::Result<bool> {
        if let Some((loop_, _)) = &reg.with
            && Arc::ptr_eq(loop_, home)
        {
            return Ok(false);
        }
        self.deregister(reg);
        let token = home.idle.sources.insert(self.readiness.clone());
        let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
        if let Err(e) = home
            .idle
            .registry
            .register(&mut reg.io, mio::Token(token), interest)
        {
            home.idle.sources.remove(token);
            return Err(e);
        }
        reg.with = Some((home.clone(), token));
        Ok(true)
    }

    fn deregister(&self, reg: &mut Registered<S>) {
        reg.emptied = [false; 2];
        if let Some((loop_, token)) = reg.with.take() {
            // Fails only if the socket was never registered there: nothing to undo then.
            let _ = loop_.idle.registry.deregister(&mut reg.io);
            loop_.idle.sources.remove(token);
        }
    }

    /// A task waits for readiness in `dir` (`task`: the caller's, if already looked up); returns when it should
    /// try again, or an error if the task is being dropped (nothing would enter it again: see
    /// [`crate::wait::DROPPED`]).
    fn wait_in_task(
        &self,
        what: &str,
        dir: Direction,
        task: Option<&StdArc<Task>>,
    ) -> io::Result<()> {
        let task = match task {
            Some(task) => task.clone(),
            // Panics in a coroutine that is not a task, like every primitive that has to wait.
            None => match super::task::task_for_wait(what, Outside::Panic) {
                Some(task) => task,
                None => unreachable!("`Outside::Panic` leaves only tasks"),
            },
        };
        let node = {
            let mut st = self.readiness.state.lock();
            if std::mem::take(&mut st.ready[dir.index()]) {
                // An event came since the attempt: try again.
                return Ok(());
            }
            let node = match st.spare[dir.index()].take() {
                Some(mut node) if node.waiter_id() == task.id => {
                    if Waiter::reuse(&mut node, None) {
                        node
                    } else {
                        Waiter::for_task(task.clone(), None)
                    }
                }
                _ => Waiter::for_task(task.clone(), None),
            };
            st.waiters[dir.index()].push(node.clone());
            node
        };
        // The loop polls (instead of reporting a deadlock) while a task waits for a socket.
        let sources = &task.home.idle.sources;
        sources.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = OnDrop(|| {
            sources.waiting.fetch_sub(1, Ordering::Relaxed);
        });
        let state = node.block(|| {
            let mut st = self.readiness.state.lock();
            if node.is_queued() {
                let queue = &mut st.waiters[dir.index()];
                queue.retain(|n| !Arc::ptr_eq(n, &node));
            }
        });
        if state == DROPPED {
            return Err(io::Error::other(
                "cothread: a socket operation had to wait in a coroutine that is being dropped",
            ));
        }
        let mut st = self.readiness.state.lock();
        st.ready[dir.index()] = false;
        st.spare[dir.index()] = Some(node);
        Ok(())
    }

    /// A thread outside coroutines waits for readiness in `dir` on a poll of its own. The socket leaves its
    /// loop for that, and stays locked while the thread waits: other threads' operations on it wait too.
    fn wait_blocking(&self, dir: Direction) -> io::Result<()> {
        let mut poll = mio::Poll::new()?;
        let interest = match dir {
            Direction::Read => mio::Interest::READABLE,
            Direction::Write => mio::Interest::WRITABLE,
        };
        let mut reg = self.io.lock();
        self.deregister(&mut reg);
        poll.registry()
            .register(&mut reg.io, mio::Token(0), interest)?;
        let polled = wait_for_event(&mut poll);
        let deregistered = poll.registry().deregister(&mut reg.io);
        polled.and(deregistered)
    }

    /// Runs `f` on the socket (for calls that never block: addresses, options).
    pub(crate) fn with<T>(&self, f: impl FnOnce(&S) -> T) -> T {
        f(&self.io.lock().io)
    }
}

/// Runs its closure when dropped (also by an unwind).
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// Polls until one event comes.
fn wait_for_event(poll: &mut mio::Poll) -> io::Result<()> {
    let mut events = mio::Events::with_capacity(1);
    loop {
        match poll.poll(&mut events, None) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(()) if events.is_empty() => continue,
            other => return other,
        }
    }
}

impl<S: mio::event::Source> Drop for Source<S> {
    fn drop(&mut self) {
        let mut reg = self.io.lock();
        self.deregister(&mut reg);
    }
}
