//! How a loop's thread sleeps when nothing is runnable, and how others wake it.
//!
//! Where mio supports the target (unix, windows) the loop sleeps in mio's `Poll`: until a registered socket
//! is ready, the next timer is due, or another thread wakes it through mio's `Waker` (QEMU's `aio_poll` with
//! its `ppoll` and `aio_notify`). Elsewhere, and under `--cfg loom` (where nothing may block outside loom's
//! shim), it sleeps on a condition variable and there is no I/O.
//!
//! Both sides of the protocol go through the loop's state lock: the loop's thread sets `parked` under it
//! before it sleeps, and a waker that finds `parked` set clears it and wakes the loop, once (see
//! [`Idle::wake`]). mio's `Waker` stays signalled until the next poll, so a wake-up that comes after the lock
//! is released and before the poll begins is not lost.

use std::io;
use std::time::Instant;

#[cfg(not(all(any(unix, windows), not(loom))))]
pub(crate) use condvar::{Idle, Poller};
#[cfg(all(any(unix, windows), not(loom)))]
pub(crate) use poll::{Idle, Poller};

#[cfg(not(all(any(unix, windows), not(loom))))]
mod condvar {
    use super::*;
    use crate::runloop::{Shared, State};
    use crate::sync::{Condvar, MutexGuard};

    /// The part of the idle wait that wakers reach.
    pub(crate) struct Idle {
        cvar: Condvar,
    }

    /// The part of the idle wait that only the loop's thread uses.
    pub(crate) struct Poller;

    impl Idle {
        pub(crate) fn new() -> io::Result<(Idle, Poller)> {
            Ok((
                Idle {
                    cvar: Condvar::new(),
                },
                Poller,
            ))
        }

        /// Wakes the loop's thread; the caller holds the state lock and saw `parked`.
        pub(crate) fn wake(&self) {
            self.cvar.notify_one();
        }

        /// No task waits for I/O without I/O.
        pub(crate) fn io_waiting(&self) -> bool {
            false
        }
    }

    impl Poller {
        /// Sleeps until woken or `deadline`; `st` is released meanwhile.
        pub(crate) fn sleep(
            &mut self,
            shared: &Shared,
            st: &mut MutexGuard<'_, State>,
            deadline: Option<Instant>,
        ) {
            match deadline {
                #[cfg(not(loom))]
                Some(deadline) => {
                    shared.idle.cvar.wait_until(st, deadline);
                }
                // loom has no timed wait: a model wakes the loop explicitly.
                _ => shared.idle.cvar.wait(st),
            }
        }

        /// Nothing to poll without I/O.
        pub(crate) fn poll_now(&mut self, _shared: &Shared) -> bool {
            false
        }

        /// Nothing to poll without I/O.
        pub(crate) fn poll_unlocked(
            &mut self,
            _shared: &Shared,
            _st: &mut MutexGuard<'_, State>,
        ) -> bool {
            false
        }
    }
}

#[cfg(all(any(unix, windows), not(loom)))]
mod poll {
    use super::*;
    use crate::runloop::readiness::Sources;
    use crate::runloop::{Shared, State};
    use crate::sync::Arc;
    use crate::sync::MutexGuard;
    use crate::wait::Waiter;

    /// The token of the loop's own `Waker`; sources get tokens from 1 up.
    const WAKER: mio::Token = mio::Token(0);

    /// How many events one poll takes at most (more stay queued for the next poll).
    const EVENTS: usize = 256;

    /// The part of the idle wait that wakers and sockets reach.
    pub(crate) struct Idle {
        waker: mio::Waker,
        /// Where sockets register for readiness.
        pub(crate) registry: mio::Registry,
        /// The sockets registered with this loop, by token.
        pub(crate) sources: Sources,
    }

    /// The part of the idle wait that only the loop's thread uses.
    pub(crate) struct Poller {
        poll: mio::Poll,
        events: mio::Events,
        /// The waiters an event woke, kept between polls so that waking allocates nothing.
        woken: Vec<Arc<Waiter>>,
    }

    impl Idle {
        pub(crate) fn new() -> io::Result<(Idle, Poller)> {
            let poll = mio::Poll::new()?;
            let waker = mio::Waker::new(poll.registry(), WAKER)?;
            let registry = poll.registry().try_clone()?;
            let idle = Idle {
                waker,
                registry,
                sources: Sources::default(),
            };
            let poller = Poller {
                poll,
                events: mio::Events::with_capacity(EVENTS),
                woken: Vec::new(),
            };
            Ok((idle, poller))
        }

        /// Whether a task waits for a socket's readiness.
        pub(crate) fn io_waiting(&self) -> bool {
            self.sources.any_waiting()
        }

        /// Wakes the loop's thread; the caller holds the state lock and saw `parked`.
        pub(crate) fn wake(&self) {
            // A failed wake-up (the poll's file descriptor is gone) leaves nothing to wake.
            let _ = self.waker.wake();
        }
    }

    impl Poller {
        /// Sleeps in the poll until a source is ready, something wakes the loop or `deadline` passes; `st` is
        /// released meanwhile. Ready sources' waiters are scheduled before this returns.
        pub(crate) fn sleep(
            &mut self,
            shared: &Shared,
            st: &mut MutexGuard<'_, State>,
            deadline: Option<Instant>,
        ) {
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let polled = MutexGuard::unlocked(st, || self.wait(timeout));
            // Awake: the wake-ups that the events make (and any other from now on) need not write to the
            // waker, which would cost a system call each and a needless return of the next poll.
            st.parked = false;
            if polled {
                MutexGuard::unlocked(st, || self.dispatch(shared));
            }
        }

        /// Takes the events that are ready now, without sleeping, and schedules their waiters. Returns
        /// whether there were any. Cheap when no source is registered.
        pub(crate) fn poll_now(&mut self, shared: &Shared) -> bool {
            if shared.idle.sources.is_empty() {
                return false;
            }
            self.poll(shared, Some(std::time::Duration::ZERO))
        }

        /// [`poll_now`](Poller::poll_now) with `st` released meanwhile.
        pub(crate) fn poll_unlocked(
            &mut self,
            shared: &Shared,
            st: &mut MutexGuard<'_, State>,
        ) -> bool {
            if shared.idle.sources.is_empty() {
                return false;
            }
            MutexGuard::unlocked(st, || self.poll_now(shared))
        }

        fn poll(&mut self, shared: &Shared, timeout: Option<std::time::Duration>) -> bool {
            self.wait(timeout) && self.dispatch(shared)
        }

        /// Waits in the poll for events; returns whether it got any (false after an interruption).
        fn wait(&mut self, timeout: Option<std::time::Duration>) -> bool {
            if let Err(e) = self.poll.poll(&mut self.events, timeout) {
                // EINTR: the caller goes round again. Anything else would be a bug in the loop's use of
                // the poll (a bad file descriptor), not something a user can cause.
                assert!(
                    e.kind() == io::ErrorKind::Interrupted,
                    "cothread: the run loop's poll failed: {e}"
                );
                return false;
            }
            !self.events.is_empty()
        }

        /// Schedules the waiters of the sources the last [`wait`](Poller::wait) found ready. Returns whether
        /// there were any (the waker's event is not one).
        fn dispatch(&mut self, shared: &Shared) -> bool {
            let mut any = false;
            for event in &self.events {
                if event.token() == WAKER {
                    continue;
                }
                any = true;
                let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                let writable = event.is_writable() || event.is_write_closed() || event.is_error();
                let hung_up = event.is_read_closed() || event.is_error();
                shared.idle.sources.ready(
                    event.token(),
                    readable,
                    writable,
                    hung_up,
                    &mut self.woken,
                );
            }
            any
        }
    }
}
