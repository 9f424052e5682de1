//! The slice of `crossbeam-channel` the pool uses, built on loom's primitives so loom can see it.
//!
//! Time does not exist in a loom model: `recv_timeout` times out only when [`expire_timeouts`] is called, which
//! a model does from a thread of its own to make "the idle timeout fired" an event that loom interleaves with
//! everything else.
//!
//! Each channel has its own lock and condition variable, so that operations on different channels do not
//! conflict (every conflict multiplies the schedules loom explores). [`expire_timeouts`] reaches the waiting
//! receivers through a registry of every channel of the execution. Messages are stored type-erased so that
//! one registry holds channels of any message type.

use std::any::Any;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::time::Duration;

use super::atomic::{AtomicU64, Ordering};
use super::{Arc, Condvar, Mutex};

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

super::global! {
    /// Bumped by [`expire_timeouts`]; a `recv_timeout` that began before a bump times out if it has no message.
    static EPOCH: AtomicU64 = AtomicU64::new(0);
}

super::global! {
    /// Every channel created in this execution (loom builds globals anew for each execution).
    static CHANNELS: Mutex<Vec<Arc<Chan>>> = Mutex::new(Vec::new());
}

/// Makes every `recv_timeout` now waiting, and every one that began before this call, return `Timeout` if
/// its channel has no message.
pub(crate) fn expire_timeouts() {
    EPOCH.fetch_add(1, Ordering::SeqCst);
    let channels: Vec<Arc<Chan>> = CHANNELS.lock().clone();
    for chan in channels {
        // A receiver checks the epoch while holding its channel's lock, so taking the lock here orders this
        // notify after that check: either it saw the new epoch or it is already waiting.
        let _state = chan.state.lock();
        chan.ready.notify_all();
    }
}

struct State {
    queue: VecDeque<Box<dyn Any + Send>>,
    senders: usize,
    receiver_alive: bool,
}

struct Chan {
    state: Mutex<State>,
    ready: Condvar,
}

pub(crate) struct Sender<T>(Arc<Chan>, PhantomData<fn(T) -> T>);
pub(crate) struct Receiver<T>(Arc<Chan>, PhantomData<fn(T) -> T>);

/// A channel; capacity is not enforced (the pool never holds more than one message per channel).
pub(crate) fn bounded<T>(_cap: usize) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            senders: 1,
            receiver_alive: true,
        }),
        ready: Condvar::new(),
    });
    CHANNELS.lock().push(chan.clone());
    (
        Sender(chan.clone(), PhantomData),
        Receiver(chan, PhantomData),
    )
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.state.lock().senders += 1;
        Sender(self.0.clone(), PhantomData)
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut st = self.0.state.lock();
        st.senders -= 1;
        if st.senders == 0 {
            self.0.ready.notify_all();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.0.state.lock().receiver_alive = false;
    }
}

impl<T: Send + 'static> Sender<T> {
    pub(crate) fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut st = self.0.state.lock();
        if !st.receiver_alive {
            return Err(SendError(value));
        }
        st.queue.push_back(Box::new(value));
        self.0.ready.notify_one();
        Ok(())
    }
}

impl<T: Send + 'static> Receiver<T> {
    pub(crate) fn recv(&self) -> Result<T, RecvError> {
        self.wait(None).map_err(|_| RecvError)
    }

    pub(crate) fn recv_timeout(&self, _timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.wait(Some(EPOCH.load(Ordering::SeqCst)))
    }

    fn wait(&self, epoch: Option<u64>) -> Result<T, RecvTimeoutError> {
        let mut st = self.0.state.lock();
        loop {
            if let Some(v) = st.queue.pop_front() {
                let v = v
                    .downcast::<T>()
                    .expect("a channel carries messages of one type");
                return Ok(*v);
            }
            if st.senders == 0 {
                return Err(RecvTimeoutError::Disconnected);
            }
            if let Some(e) = epoch
                && EPOCH.load(Ordering::SeqCst) != e
            {
                return Err(RecvTimeoutError::Timeout);
            }
            self.0.ready.wait(&mut st);
        }
    }
}
