//! Timers: [`sleep`], [`sleep_until`] and [`end_sleep`], the alarms of timed waits, and the loop's firing of
//! the timers that are due.

use std::time::{Duration, Instant};

use super::State;
use super::task::{Task, find, schedule, task_waiter};
use crate::coroutine::CoroutineRef;
use crate::sync::atomic::Ordering;
use crate::sync::{Arc, StdArc};
use crate::wait::{CLOSED, WAITING, WOKEN, Waiter};

impl State {
    /// Adds a timer: at `deadline` the loop sets `node` [`WOKEN`] (unless it no longer waits) and schedules
    /// `task`.
    pub(super) fn add_timer(&mut self, deadline: Instant, node: Arc<Waiter>, task: StdArc<Task>) {
        self.timer_seq += 1;
        let seq = self.timer_seq;
        self.timers.push(Timer {
            deadline,
            seq,
            node,
            task,
        });
    }
}

/// One pending [`sleep`] (or a timed wait's alarm).
pub(super) struct Timer {
    deadline: Instant,
    seq: u64,
    node: Arc<Waiter>,
    task: StdArc<Task>,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Timer) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}

impl Eq for Timer {}

impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Timer) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timer {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest deadline first.
    fn cmp(&self, other: &Timer) -> std::cmp::Ordering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

/// Suspends the calling task for at least `duration` (QEMU's `qemu_co_sleep_ns`); its loop enters it again
/// once the time has passed. See [`sleep_until`].
///
/// # Panics
/// If the caller is not a coroutine spawned on a [`RunLoop`](super::RunLoop) (outside coroutines, use
/// `std::thread::sleep`).
///
/// ```
/// use std::time::{Duration, Instant};
/// use cothread::{runloop, RunLoop};
///
/// let mut rl = RunLoop::new();
/// let start = Instant::now();
/// let slept = rl.spawn(move || {
///     runloop::sleep(Duration::from_millis(5));
///     start.elapsed()
/// });
/// rl.run();
/// assert!(slept.take().unwrap() >= Duration::from_millis(5));
/// ```
pub fn sleep(duration: Duration) {
    // A deadline beyond what `Instant` can hold never comes: the task then waits for an explicit wake.
    sleep_deadline("sleep()", Instant::now().checked_add(duration));
}

/// Suspends the calling task until `deadline` has passed; its loop enters it again then. Pending sleeps end
/// in deadline order, those with equal deadlines in the order they began. A deadline in the past still yields
/// to the loop once: the loop looks at its sleeps when its run queue empties and after every 32 tasks it
/// enters, so the task comes back behind the tasks already runnable.
///
/// # Panics
/// If the caller is not a coroutine spawned on a [`RunLoop`](super::RunLoop).
pub fn sleep_until(deadline: Instant) {
    sleep_deadline("sleep_until()", Some(deadline));
}

/// Ends the pending [`sleep`] of the task `co` now (QEMU's `qemu_co_sleep_wake`): its loop enters it as if
/// the time had passed. Returns whether `co` was sleeping (a sleep with a deadline too far to represent
/// cannot be ended). A task in a timed channel wait (`recv_timeout`, `send_timeout`) counts as sleeping: that
/// wait then times out at once.
///
/// ```
/// use std::time::{Duration, Instant};
/// use cothread::{runloop, RunLoop};
///
/// let mut rl = RunLoop::new();
/// let start = Instant::now();
/// let sleeper = rl.spawn(move || {
///     runloop::sleep(Duration::from_secs(3600));
///     start.elapsed()
/// });
/// let co = sleeper.coroutine().clone();
/// rl.spawn(move || assert!(runloop::end_sleep(&co)));
/// rl.run();
/// assert!(sleeper.take().unwrap() < Duration::from_secs(3600));
/// ```
pub fn end_sleep(co: &CoroutineRef) -> bool {
    let id = co.id();
    let Some(task) = find(id) else {
        return false;
    };
    {
        let st = task.home.state.lock();
        let sleeping = st
            .timers
            .iter()
            .find(|t| t.task.id == id && t.node.state() == WAITING);
        match sleeping {
            // The timer stays in the heap: the loop drops it when it comes up, its node no longer waiting.
            Some(timer) if timer.node.set(WOKEN) => {}
            _ => return false,
        }
    }
    schedule(&task);
    true
}

fn sleep_deadline(op: &str, deadline: Option<Instant>) {
    let (task, node) = task_waiter::<()>(op, None);
    if let Some(deadline) = deadline {
        task.home
            .state
            .lock()
            .add_timer(deadline, node.clone(), task.clone());
    }
    // Dropped while asleep: the loop skips a timer whose node no longer waits; nothing to pass on.
    node.block_under(
        &task.home.state,
        |_| {
            let _ = node.set(CLOSED);
            Vec::<Arc<Waiter>>::new()
        },
        |_| Vec::new(),
    );
}

/// Fires the timers that are due (their tasks go to the tail of the run queue); returns the earliest deadline
/// still pending.
pub(super) fn fire_due_timers(st: &mut State) -> Option<Instant> {
    st.timers.peek()?;
    let now = Instant::now();
    while let Some(timer) = st.timers.peek() {
        if timer.node.state() != WAITING {
            st.timers.pop();
            continue;
        }
        if timer.deadline > now {
            return Some(timer.deadline);
        }
        if let Some(timer) = st.timers.pop()
            && timer.node.set(WOKEN)
            && !timer.task.in_shared_queue.load(Ordering::Relaxed)
        {
            timer.task.in_shared_queue.store(true, Ordering::Relaxed);
            st.runnable.push_back(timer.task);
        }
    }
    None
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::collections::BinaryHeap;

    use super::*;
    use crate::RunLoop;

    #[test]
    fn timers_pop_earliest_first_and_equal_deadlines_in_order() {
        let mut rl = RunLoop::new();
        let h = rl.spawn(|| ());
        let task = find(h.coroutine().id()).expect("a task of the loop");
        let now = Instant::now();
        let mut heap = BinaryHeap::new();
        for (seq, ms) in [(1, 30), (2, 10), (3, 20), (4, 10)] {
            heap.push(Timer {
                deadline: now + Duration::from_millis(ms),
                seq,
                node: Waiter::for_thread(None),
                task: task.clone(),
            });
        }
        let order: Vec<u64> = std::iter::from_fn(|| heap.pop().map(|t| t.seq)).collect();
        assert_eq!(order, [2, 4, 3, 1]);
        rl.run();
    }
}
