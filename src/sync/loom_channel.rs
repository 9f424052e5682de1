//! The slice of `crossbeam-channel` the pool uses, built on loom's primitives so loom can see it.
//!
//! Time does not exist in a loom model: `recv_timeout` times out only when [`expire_timeouts`] is called, which
//! a model does from a thread of its own to make "the idle timeout fired" an event that loom interleaves with
//! everything else.

use std::collections::VecDeque;
use std::time::Duration;

use super::atomic::{AtomicU64, Ordering};
use super::{Arc, Condvar, Mutex};

pub(crate) use crossbeam_shapes::*;

mod crossbeam_shapes {
    /// The receiver is gone.
    #[derive(Debug)]
    pub(crate) struct SendError<T>(pub(crate) T);
    /// The sender is gone and the channel is empty.
    #[derive(Debug)]
    pub(crate) struct RecvError;
    /// Why `recv_timeout` returned without a message.
    #[derive(Debug, PartialEq, Eq)]
    pub(crate) enum RecvTimeoutError {
        Timeout,
        Disconnected,
    }
}

super::global! {
    /// Bumped by [`expire_timeouts`]; a `recv_timeout` that began before a bump may time out.
    static EPOCH: AtomicU64 = AtomicU64::new(0);
}

super::global! {
    /// Every channel's condition variable shares this lock-free registry of wake-ups via one condvar.
    static TICK: (Mutex<u64>, Condvar) = (Mutex::new(0), Condvar::new());
}

/// Make every `recv_timeout` now waiting (and every one that starts later in this execution with an
/// earlier epoch) return `Timeout` if it has no message.
pub(crate) fn expire_timeouts() {
    EPOCH.fetch_add(1, Ordering::SeqCst);
    let (lock, cvar) = &*TICK;
    let mut tick = lock.lock();
    *tick += 1;
    cvar.notify_all();
}

struct State<T> {
    queue: VecDeque<T>,
    senders: usize,
    receiver_alive: bool,
}

struct Chan<T> {
    state: Mutex<State<T>>,
}

pub(crate) struct Sender<T>(Arc<Chan<T>>);
pub(crate) struct Receiver<T>(Arc<Chan<T>>);

/// A channel; capacity is not enforced (the pool never holds more than one message per channel).
pub(crate) fn bounded<T>(_cap: usize) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            senders: 1,
            receiver_alive: true,
        }),
    });
    (Sender(chan.clone()), Receiver(chan))
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.state.lock().senders += 1;
        Sender(self.0.clone())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.state.lock().senders -= 1;
        wake_all();
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.0.state.lock().receiver_alive = false;
    }
}

fn wake_all() {
    let (lock, cvar) = &*TICK;
    let mut tick = lock.lock();
    *tick += 1;
    cvar.notify_all();
}

impl<T> Sender<T> {
    pub(crate) fn send(&self, value: T) -> Result<(), SendError<T>> {
        {
            let mut st = self.0.state.lock();
            if !st.receiver_alive {
                return Err(SendError(value));
            }
            st.queue.push_back(value);
        }
        wake_all();
        Ok(())
    }
}

impl<T> Receiver<T> {
    pub(crate) fn recv(&self) -> Result<T, RecvError> {
        self.wait(None).map_err(|_| RecvError)
    }

    pub(crate) fn recv_timeout(&self, _timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.wait(Some(EPOCH.load(Ordering::SeqCst)))
    }

    fn wait(&self, epoch: Option<u64>) -> Result<T, RecvTimeoutError> {
        let (lock, cvar) = &*TICK;
        let mut tick = lock.lock();
        loop {
            {
                let mut st = self.0.state.lock();
                if let Some(v) = st.queue.pop_front() {
                    return Ok(v);
                }
                if st.senders == 0 {
                    return Err(RecvTimeoutError::Disconnected);
                }
            }
            if let Some(e) = epoch
                && EPOCH.load(Ordering::SeqCst) != e
            {
                return Err(RecvTimeoutError::Timeout);
            }
            cvar.wait(&mut tick);
        }
    }
}
