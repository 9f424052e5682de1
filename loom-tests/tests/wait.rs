//! loom models of the wait protocol (`src/wait.rs`) on a real `RunLoop`: a task that waits on a `CoMutex` or a
//! channel is woken from another OS thread, and a wait cancelled by the loop's drop races the wake-up that hands
//! it the lock. Threads: the model's (which runs the loop), the task's (thread backend) and the other thread.
//!
//! See `README.md` for the run times and for the planted bugs each model catches.
#![cfg(loom)]

#[allow(dead_code)]
mod common;

use common::check;
use cothread::{CoMutex, RunLoop, channel, pool};

/// A mutex for one execution of a model. Leaked (a few bytes per execution) so that a guard taken on the
/// model's thread can move to another thread.
fn leaked_mutex() -> &'static CoMutex<u32> {
    Box::leak(Box::new(CoMutex::new(0)))
}

/// A task waits for a `CoMutex` that another OS thread holds; that thread's unlock hands the lock to the task
/// and wakes the loop. The task gets the lock exactly once, after the other thread's update, and nothing is
/// left waiting (a lost wake-up leaves the loop asleep: loom reports a deadlock).
#[test]
fn mutex_woken_from_another_thread() {
    check("mutex_woken_from_another_thread", Some(2), || {
        let m = leaked_mutex();
        let mut guard = m.try_lock().expect("nobody holds a new mutex");
        let mut rl = RunLoop::new();
        let task = rl.spawn(move || {
            let mut n = m.lock();
            *n += 1;
            *n
        });
        let keep = rl.keep_alive();
        let holder = loom::thread::spawn(move || {
            *guard += 10;
            drop(guard);
        });
        rl.run();
        drop(keep);
        holder.join().unwrap();
        assert_eq!(
            task.take(),
            Some(11),
            "the task ran before the holder's update"
        );
        assert!(!m.is_locked(), "the lock was not released");
        drop(rl);
        pool::exit_all_and_join();
    });
}

/// A task waits in `recv` on an empty channel; another OS thread sends, which gives the message to the waiting
/// task and wakes its loop, then drops its sender. The task gets the message, then the disconnection.
#[test]
fn channel_woken_from_another_thread() {
    check("channel_woken_from_another_thread", Some(2), || {
        let (tx, rx) = channel::bounded::<u32>(0);
        let mut rl = RunLoop::new();
        let task = rl.spawn(move || (rx.recv(), rx.recv()));
        let keep = rl.keep_alive();
        let sender = loom::thread::spawn(move || {
            tx.send(7).expect("the receiver is alive");
        });
        rl.run();
        drop(keep);
        sender.join().unwrap();
        assert_eq!(
            task.take(),
            Some((Ok(7), Err(channel::RecvError))),
            "the message, then the disconnection"
        );
        drop(rl);
        pool::exit_all_and_join();
    });
}

/// A task waits for a `CoMutex` that another OS thread holds and unlocks while the loop runs the task: the
/// unlock finds the task still running, queued (and hands it the lock) or not yet there. The loop stops
/// (`run_until_stalled`) and is dropped, which unwinds the task from its wait: the cancel rule withdraws a node
/// still queued, or passes on a lock it was handed. Whichever way, the lock ends up free. Both the task taking
/// the lock itself and a lock handed to a task then dropped occur.
///
/// The drop does not overlap the unlock here: under loom all threads share one panic count, so the shim's
/// mutex lets a guard go only once no unwind is under way (`src/sync/mod.rs`), and an unlock holding the
/// mutex's lock while the dropped task's unwind waits for that lock would spin for ever.
#[test]
fn wait_cancelled_by_a_drop_after_a_racing_wake() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static TOOK_IT: AtomicUsize = AtomicUsize::new(0);
    static HANDED_TO_A_DROPPED_TASK: AtomicUsize = AtomicUsize::new(0);
    check(
        "wait_cancelled_by_a_drop_after_a_racing_wake",
        Some(2),
        || {
            let m = leaked_mutex();
            let guard = m.try_lock().expect("nobody holds a new mutex");
            let mut rl = RunLoop::new();
            let task = rl.spawn(move || *m.lock() += 1);
            let holder = loom::thread::spawn(move || drop(guard));
            let waiting = rl.run_until_stalled();
            holder.join().unwrap();
            if waiting == 0 {
                assert_eq!(task.take(), Some(()));
                TOOK_IT.fetch_add(1, Ordering::Relaxed);
            } else if m.is_locked() {
                // Nobody but the task can hold the lock now: the unlock handed it to the task, which has not run.
                HANDED_TO_A_DROPPED_TASK.fetch_add(1, Ordering::Relaxed);
            }
            drop(rl);
            assert!(
                !m.is_locked(),
                "the lock went to the dropped task and was never passed on"
            );
            let taken_by_the_task = if waiting == 0 { 1 } else { 0 };
            assert_eq!(*m.try_lock().expect("unlocked"), taken_by_the_task);
            pool::exit_all_and_join();
        },
    );
    assert!(
        TOOK_IT.load(Ordering::Relaxed) > 0,
        "the task never took the lock"
    );
    assert!(
        HANDED_TO_A_DROPPED_TASK.load(Ordering::Relaxed) > 0,
        "the lock was never handed to a task then dropped"
    );
}
