//! Channels between coroutines: multi-producer, multi-consumer queues whose [`send`](Sender::send) and
//! [`recv`](Receiver::recv) wait by yielding to the [`RunLoop`](crate::RunLoop) when the channel is full or
//! empty. The API and the errors have the shape of `crossbeam-channel`'s.
//!
//! - [`bounded(n)`](bounded) holds at most `n` messages; `bounded(0)` is a rendezvous: a send completes only
//!   when a receiver takes the message.
//! - [`unbounded()`](unbounded) never makes a sender wait.
//! - Messages are delivered in the order they were sent; waiting senders and receivers are served in the
//!   order they began waiting. Nothing sent is lost or delivered twice.
//! - When every [`Sender`] has been dropped, receivers get the messages still queued, then [`RecvError`].
//!   When every [`Receiver`] has been dropped, sending fails and gives the message back in [`SendError`];
//!   messages still queued are dropped.
//!
//! Waiting happens in a coroutine spawned on a run loop (see [the rules](crate::runloop#coroutines-not-spawned-on-a-loop));
//! outside coroutines, `send` and `recv` block the calling thread instead, so a plain thread can feed a loop
//! or drain it (give the loop a [`KeepAlive`](crate::runloop::KeepAlive) meanwhile). On the loop's own thread,
//! between runs, that blocks for good if only the loop's tasks could answer (as with any channel used from a
//! single thread); use `try_send` / `try_recv` there. A coroutine not spawned on a loop that would have to
//! wait panics.
//!
//! ```
//! use cothread::{channel, RunLoop};
//!
//! let mut rl = RunLoop::new();
//! let (tx, rx) = channel::bounded(0); // rendezvous
//! rl.spawn(move || {
//!     for word in ["ping", "pong"] {
//!         tx.send(word).unwrap();
//!     }
//! });
//! let got = rl.spawn(move || rx.iter().collect::<Vec<_>>());
//! rl.run();
//! assert_eq!(got.take().unwrap(), ["ping", "pong"]);
//! ```

use std::collections::VecDeque;
use std::error::Error;
use std::fmt;
#[cfg(not(loom))]
use std::time::{Duration, Instant};

use crate::runloop;
use crate::sync::{Arc, Mutex};
#[cfg(not(loom))]
use crate::wait::WAITING;
use crate::wait::{CLOSED, Outside, WaitQueue, Waiter, Woken};

/// A channel holding at most `cap` messages; `cap == 0` makes every send wait for a receiver (rendezvous).
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    new(Some(cap))
}

/// A channel of unlimited capacity: sending never waits.
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    new(None)
}

fn new<T>(cap: Option<usize>) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        cap,
        state: Mutex::new(State {
            buf: VecDeque::new(),
            senders: 1,
            receivers: 1,
            recv_waiters: WaitQueue::default(),
            send_waiters: WaitQueue::default(),
        }),
    });
    (Sender { chan: chan.clone() }, Receiver { chan })
}

struct Chan<T> {
    /// `None`: unbounded.
    cap: Option<usize>,
    state: Mutex<State<T>>,
}

/// Invariants: `recv_waiters` is non-empty only while `buf` is empty and no sender waits; a node in
/// `send_waiters` holds its message in its slot; a node in either queue is `WAITING`.
struct State<T> {
    buf: VecDeque<T>,
    senders: usize,
    receivers: usize,
    recv_waiters: WaitQueue<T>,
    send_waiters: WaitQueue<T>,
}

/// What [`State::offer`] did with a message.
enum Offer<T> {
    /// Delivered or queued; wake this receiver, if any.
    Done(Option<Arc<Waiter<T>>>),
    Full(T),
    Disconnected(T),
}

impl<T> State<T> {
    /// Delivers `value` to a waiting receiver, or queues it if there is room.
    fn offer(&mut self, cap: Option<usize>, value: T) -> Offer<T> {
        if self.receivers == 0 {
            return Offer::Disconnected(value);
        }
        // A dead receiver (withdrawn, see `wait::DEAD`) is skipped.
        let value = match self.recv_waiters.give(value) {
            Ok(receiver) => return Offer::Done(Some(receiver)),
            Err(value) => value,
        };
        if cap.is_none_or(|cap| self.buf.len() < cap) {
            self.buf.push_back(value);
            return Offer::Done(None);
        }
        Offer::Full(value)
    }

    /// Takes the next message: from the buffer (refilling it from the first waiting sender), or straight from
    /// a waiting sender (rendezvous). Also returns the sender to wake, if any.
    fn take(&mut self) -> Option<(T, Option<Arc<Waiter<T>>>)> {
        if let Some(value) = self.buf.pop_front() {
            // The first live sender refills the buffer (a dead one's message is dropped with its node).
            let Some((next, sender)) = self.send_waiters.take_given() else {
                return Some((value, None));
            };
            if let Some(next) = next {
                self.buf.push_back(next);
            }
            return Some((value, Some(sender)));
        }
        // A waiting sender always holds its message.
        let (value, sender) = self.send_waiters.take_given()?;
        value.map(|value| (value, Some(sender)))
    }

    /// Gives a message back to the channel, first in line: to the next waiting receiver, or the buffer's
    /// front. Returns the receiver to wake.
    fn give_back(&mut self, value: T) -> Option<Arc<Waiter<T>>> {
        match self.recv_waiters.give(value) {
            Ok(receiver) => Some(receiver),
            Err(value) => {
                self.buf.push_front(value);
                None
            }
        }
    }
}

/// The sending side of a channel. Clone it for more senders; the channel disconnects for receivers when the
/// last one is dropped.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving side of a channel. Clone it for more receivers (each message goes to one of them); the
/// channel disconnects for senders when the last one is dropped.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends `value`, waiting (yielding to the run loop) while the channel is full; for `bounded(0)`, until a
    /// receiver takes it. Fails, giving the value back, if every receiver has been dropped (also while
    /// waiting).
    ///
    /// Outside coroutines, blocks the calling thread instead of yielding.
    ///
    /// # Panics
    /// If it has to wait in a coroutine not spawned on a [`RunLoop`](crate::RunLoop).
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        let node = match self.offer_or_queue(value, "Sender::send()") {
            Ok(None) => return Ok(()),
            Ok(Some(node)) => node,
            Err(value) => return Err(SendError(value)),
        };
        // Dropped while waiting: the message is dropped with the node, never delivered.
        node.block_under(
            &self.chan.state,
            |st| {
                st.send_waiters.remove(&node);
                Woken::<T>::new()
            },
            |_| Woken::new(),
        );
        // A receiver took the message, or the channel disconnected and the message is still ours.
        match node.slot.lock().take() {
            None => Ok(()),
            Some(value) => Err(SendError(value)),
        }
    }

    /// A send's first step: delivered (`Ok(None)`), queued to wait with the value in its node
    /// (`Ok(Some(node))`), or the value back if every receiver has been dropped. `op` names the operation.
    fn offer_or_queue(&self, value: T, op: &str) -> Result<Option<Arc<Waiter<T>>>, T> {
        let mut st = self.chan.state.lock();
        match st.offer(self.chan.cap, value) {
            Offer::Done(receiver) => {
                drop(st);
                if let Some(receiver) = receiver {
                    receiver.wake();
                }
                Ok(None)
            }
            Offer::Disconnected(value) => Err(value),
            Offer::Full(value) => {
                let node = runloop::waiter(op, Outside::Park, Some(value));
                st.send_waiters.push((), node.clone());
                Ok(Some(node))
            }
        }
    }

    /// Takes a waiting sender's node out of the queue if it is still there; returns whether it was.
    #[cfg(not(loom))]
    fn withdraw(&self, node: &Arc<Waiter<T>>) -> bool {
        let mut st = self.chan.state.lock();
        node.is_queued() && st.send_waiters.remove(node)
    }

    /// [`send`](Sender::send), waiting at most `timeout`: gives the value back in
    /// [`SendTimeoutError::Timeout`] if no room came by then.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cothread::channel::{self, SendTimeoutError};
    ///
    /// let (tx, _rx) = channel::bounded(1);
    /// tx.send(1).unwrap();
    /// assert_eq!(tx.send_timeout(2, Duration::from_millis(1)), Err(SendTimeoutError::Timeout(2)));
    /// ```
    #[cfg(not(loom))]
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        let node = match self.offer_or_queue(value, "Sender::send_timeout()") {
            Ok(None) => return Ok(()),
            Ok(Some(node)) => node,
            Err(value) => return Err(SendTimeoutError::Disconnected(value)),
        };
        let state = node.block_under_until(
            deadline_after(timeout),
            &self.chan.state,
            |st| {
                st.send_waiters.remove(&node);
                Woken::<T>::new()
            },
            |_| Woken::new(),
        );
        // Timed out, unless a receiver took the message (or the channel disconnected) just then.
        let timed_out = state == WAITING && self.withdraw(&node);
        match node.slot.lock().take() {
            None => Ok(()),
            Some(value) if timed_out => Err(SendTimeoutError::Timeout(value)),
            Some(value) => Err(SendTimeoutError::Disconnected(value)),
        }
    }

    /// Sends `value` if that needs no wait: there is room, or (for `bounded(0)`) a receiver waits.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut st = self.chan.state.lock();
        match st.offer(self.chan.cap, value) {
            Offer::Done(receiver) => {
                drop(st);
                if let Some(receiver) = receiver {
                    receiver.wake();
                }
                Ok(())
            }
            Offer::Full(value) => Err(TrySendError::Full(value)),
            Offer::Disconnected(value) => Err(TrySendError::Disconnected(value)),
        }
    }

    /// The number of messages queued (a snapshot).
    pub fn len(&self) -> usize {
        self.chan.state.lock().buf.len()
    }

    /// Whether no message is queued (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity: `Some(n)` for `bounded(n)`, `None` for `unbounded()`.
    pub fn capacity(&self) -> Option<usize> {
        self.chan.cap
    }
}

impl<T> Receiver<T> {
    /// Receives the next message, waiting (yielding to the run loop) while the channel is empty. Fails once
    /// the channel is empty and every sender has been dropped.
    ///
    /// Outside coroutines, blocks the calling thread instead of yielding.
    ///
    /// # Panics
    /// If it has to wait in a coroutine not spawned on a [`RunLoop`](crate::RunLoop).
    pub fn recv(&self) -> Result<T, RecvError> {
        let node = match self.take_or_queue("Receiver::recv()") {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(node)) => node,
            Err(()) => return Err(RecvError),
        };
        self.block(&node);
        match node.slot.lock().take() {
            Some(value) => Ok(value),
            None => Err(RecvError),
        }
    }

    /// A receive's first step: a message (`Ok(Ok(value))`), queued to wait (`Ok(Err(node))`), or `Err(())` if
    /// the channel is empty and every sender has been dropped. `op` names the operation.
    fn take_or_queue(&self, op: &str) -> Result<Result<T, Arc<Waiter<T>>>, ()> {
        let mut st = self.chan.state.lock();
        if let Some((value, sender)) = st.take() {
            drop(st);
            if let Some(sender) = sender {
                sender.wake();
            }
            return Ok(Ok(value));
        }
        if st.senders == 0 {
            return Err(());
        }
        let node = runloop::waiter(op, Outside::Park, None);
        st.recv_waiters.push((), node.clone());
        Ok(Err(node))
    }

    /// [`recv`](Receiver::recv), waiting at most `timeout` (in a task, the loop enters it again then).
    ///
    /// ```
    /// use std::time::Duration;
    /// use cothread::channel::{self, RecvTimeoutError};
    /// use cothread::RunLoop;
    ///
    /// let mut rl = RunLoop::new();
    /// let (tx, rx) = channel::bounded::<u32>(1);
    /// let got = rl.spawn(move || rx.recv_timeout(Duration::from_millis(5)));
    /// rl.run();
    /// assert_eq!(got.take(), Some(Err(RecvTimeoutError::Timeout)));
    /// drop(tx);
    /// ```
    #[cfg(not(loom))]
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        let node = match self.take_or_queue("Receiver::recv_timeout()") {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(node)) => node,
            Err(()) => return Err(RecvTimeoutError::Disconnected),
        };
        let state = node.block_under_until(
            deadline_after(timeout),
            &self.chan.state,
            |st| {
                st.recv_waiters.remove(&node);
                Woken::new()
            },
            |st| Self::hand_on_given(st, &node),
        );
        if state == WAITING {
            let mut st = self.chan.state.lock();
            if node.is_queued() {
                st.recv_waiters.remove(&node);
                return Err(RecvTimeoutError::Timeout);
            }
        }
        match node.slot.lock().take() {
            Some(value) => Ok(value),
            None => Err(RecvTimeoutError::Disconnected),
        }
    }

    /// Waits until `node` is given a message or the channel disconnects; if unwound meanwhile, takes the node
    /// out of the queue, or hands on the message it was given.
    fn block(&self, node: &Arc<Waiter<T>>) {
        node.block_under(
            &self.chan.state,
            |st| {
                st.recv_waiters.remove(node);
                Woken::new()
            },
            |st| Self::hand_on_given(st, node),
        );
    }

    /// A waiting receiver that was handed a message but dropped before running: the message goes to the next
    /// in line. Returns the receiver to wake.
    fn hand_on_given(st: &mut State<T>, node: &Waiter<T>) -> Woken<T> {
        let value = node.slot.lock().take();
        value
            .and_then(|value| st.give_back(value))
            .into_iter()
            .collect()
    }

    /// Receives a message if one is ready (queued, or offered by a waiting sender).
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut st = self.chan.state.lock();
        match st.take() {
            Some((value, sender)) => {
                drop(st);
                if let Some(sender) = sender {
                    sender.wake();
                }
                Ok(value)
            }
            None if st.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// A blocking iterator: [`recv`](Receiver::recv) until the channel disconnects.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// An iterator over the messages ready now ([`try_recv`](Receiver::try_recv) until it fails).
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    /// The number of messages queued (a snapshot).
    pub fn len(&self) -> usize {
        self.chan.state.lock().buf.len()
    }

    /// Whether no message is queued (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity: `Some(n)` for `bounded(n)`, `None` for `unbounded()`.
    pub fn capacity(&self) -> Option<usize> {
        self.chan.cap
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.chan.state.lock().senders += 1;
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Receiver<T> {
        self.chan.state.lock().receivers += 1;
        Receiver {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let closed = {
            let mut st = self.chan.state.lock();
            st.senders -= 1;
            if st.senders > 0 {
                return;
            }
            st.recv_waiters.drain(CLOSED)
        };
        crate::wait::wake_all(closed);
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let (closed, dropped): (Vec<_>, VecDeque<T>) = {
            let mut st = self.chan.state.lock();
            st.receivers -= 1;
            if st.receivers > 0 {
                return;
            }
            (st.send_waiters.drain(CLOSED), std::mem::take(&mut st.buf))
        };
        // The messages' destructors run outside the channel's lock.
        drop(dropped);
        crate::wait::wake_all(closed);
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("capacity", &self.chan.cap)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("capacity", &self.chan.cap)
            .finish_non_exhaustive()
    }
}

/// Blocking iterator over a [`Receiver`]'s messages, from [`Receiver::iter`].
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

/// Non-blocking iterator over the messages ready now, from [`Receiver::try_iter`].
#[derive(Debug)]
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

/// Owning blocking iterator over a [`Receiver`]'s messages.
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}

/// [`Sender::send`] failed because every receiver has been dropped; holds the message.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> SendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError { .. }")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a disconnected channel")
    }
}

impl<T> Error for SendError<T> {}

/// [`Sender::try_send`] failed; holds the message.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The channel is full (for `bounded(0)`: no receiver waits).
    Full(T),
    /// Every receiver has been dropped.
    Disconnected(T),
}

impl<T> TrySendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Disconnected(v) => v,
        }
    }

    /// Whether the send failed because the channel was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }

    /// Whether the send failed because every receiver has been dropped.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TrySendError::Disconnected(_))
    }
}

/// Why [`Sender::send_timeout`] failed; holds the message.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum SendTimeoutError<T> {
    /// No room came before the time-out.
    Timeout(T),
    /// Every receiver has been dropped.
    Disconnected(T),
}

impl<T> SendTimeoutError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendTimeoutError::Timeout(v) | SendTimeoutError::Disconnected(v) => v,
        }
    }
}

impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("Timeout(..)"),
            SendTimeoutError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("timed out waiting on a full channel"),
            SendTimeoutError::Disconnected(_) => f.write_str("sending on a disconnected channel"),
        }
    }
}

impl<T> Error for SendTimeoutError<T> {}

/// Why [`Receiver::recv_timeout`] failed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum RecvTimeoutError {
    /// No message came before the time-out.
    Timeout,
    /// The channel is empty and every sender has been dropped.
    Disconnected,
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("timed out waiting on an empty channel"),
            RecvTimeoutError::Disconnected => {
                f.write_str("receiving on an empty, disconnected channel")
            }
        }
    }
}

impl Error for RecvTimeoutError {}

/// `now + timeout`, or a deadline far enough to be never for a timeout too long to represent.
#[cfg(not(loom))]
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(err: SendError<T>) -> TrySendError<T> {
        TrySendError::Disconnected(err.0)
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("sending on a full channel"),
            TrySendError::Disconnected(_) => f.write_str("sending on a disconnected channel"),
        }
    }
}

impl<T> Error for TrySendError<T> {}

/// [`Receiver::recv`] failed because the channel is empty and every sender has been dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvError;

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("receiving on an empty and disconnected channel")
    }
}

impl Error for RecvError {}

/// [`Receiver::try_recv`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// No message is ready.
    Empty,
    /// The channel is empty and every sender has been dropped.
    Disconnected,
}

impl TryRecvError {
    /// Whether no message was ready.
    pub fn is_empty(&self) -> bool {
        *self == TryRecvError::Empty
    }

    /// Whether the channel is empty and disconnected.
    pub fn is_disconnected(&self) -> bool {
        *self == TryRecvError::Disconnected
    }
}

impl From<RecvError> for TryRecvError {
    fn from(_: RecvError) -> TryRecvError {
        TryRecvError::Disconnected
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty channel"),
            TryRecvError::Disconnected => {
                f.write_str("receiving on an empty and disconnected channel")
            }
        }
    }
}

impl Error for TryRecvError {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::wait::WOKEN;

    fn state<T>() -> State<T> {
        State {
            buf: VecDeque::new(),
            senders: 1,
            receivers: 1,
            recv_waiters: WaitQueue::default(),
            send_waiters: WaitQueue::default(),
        }
    }

    #[test]
    fn a_rendezvous_takes_the_message_from_the_waiting_sender() {
        let mut st = state();
        let sender = Waiter::for_thread(Some(5));
        st.send_waiters.push((), sender.clone());
        let (value, woken) = st.take().unwrap();
        assert_eq!(value, 5);
        assert!(Arc::ptr_eq(&woken.unwrap(), &sender));
        assert_eq!(sender.state(), WOKEN);
        assert!(sender.slot.lock().is_none(), "the message left the sender");
        assert!(st.take().is_none());
    }

    #[test]
    fn taking_from_a_full_buffer_moves_a_waiting_senders_message_in_behind() {
        let mut st = state();
        st.buf.extend([1, 2]);
        let sender = Waiter::for_thread(Some(3));
        st.send_waiters.push((), sender.clone());
        assert_eq!(st.take().unwrap().0, 1);
        assert_eq!(st.buf, [2, 3]);
        assert_eq!(sender.state(), WOKEN);
    }

    #[test]
    fn offer_prefers_a_waiting_receiver_and_respects_capacity() {
        let mut st = state();
        let receiver = Waiter::for_thread(None);
        st.recv_waiters.push((), receiver.clone());
        assert!(matches!(st.offer(Some(0), 9), Offer::Done(Some(_))));
        assert_eq!(*receiver.slot.lock(), Some(9));
        assert!(matches!(st.offer(Some(0), 10), Offer::Full(10)));
        assert!(matches!(st.offer(Some(1), 10), Offer::Done(None)));
        assert!(matches!(st.offer(Some(1), 11), Offer::Full(11)));
        assert!(matches!(st.offer(None, 11), Offer::Done(None)));
        st.receivers = 0;
        assert!(matches!(st.offer(None, 12), Offer::Disconnected(12)));
    }

    #[test]
    fn a_message_given_back_goes_first_in_line() {
        let mut st = state();
        st.buf.push_back(2);
        assert!(st.give_back(1).is_none());
        assert_eq!(st.buf, [1, 2]);
    }
}
