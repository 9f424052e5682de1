//! The run loop: FIFO order, wake-ups (from the running task, from outside, from other threads), sleeps,
//! deadlock reports, panics, dropping a loop with suspended tasks.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cothread::runloop::{self, sleep, sleep_until, yield_to_loop};
use cothread::{Backend, Builder, RunLoop, channel, current, yield_now};

type Log = Arc<Mutex<Vec<String>>>;

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

fn push(log: &Log, what: impl Into<String>) {
    log.lock().unwrap().push(what.into());
}

fn entries(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

use common::{SpawnOn, coroutine, message};

on_each_backend!(
    tasks_run_in_spawn_order_and_values_come_back,
    yield_to_loop_round_robins,
    a_plain_yield_waits_for_a_wake,
    wake_of_a_coroutine_not_on_a_loop_is_refused,
    wake_ups_by_the_running_task_are_entered_right_after_it_in_fifo_order,
    wake_ups_from_outside_go_to_the_tail,
    sleeps_end_in_deadline_order_and_equal_deadlines_in_the_order_they_began,
    sleep_lasts_at_least_its_duration,
    run_until_stalled_waits_for_sleeps,
    a_deadlock_is_reported_with_the_number_of_stuck_coroutines,
    a_keep_alive_lets_another_thread_wake_tasks,
    wake_from_another_thread_reaches_a_sleeping_loop,
    dropping_the_last_keep_alive_turns_a_wait_into_a_deadlock_report,
    a_panicking_task_reaches_run_and_the_loop_goes_on,
    dropping_a_loop_drops_unstarted_bodies_unrun,
    dropping_a_loop_after_its_tasks_waited_runs_their_destructors,
    dropping_a_loop_with_a_pending_sleep_unwinds_the_sleeper,
    sleep_and_yield_to_loop_outside_a_loop_panic,
    current_inside_a_task_is_its_handle,
    tasks_waking_each_other_in_a_ring_do_not_starve_the_others,
    tasks_on_loops_on_two_threads_wake_each_other,
    tasks_spawn_tasks_onto_their_own_loop,
    handles_spawn_from_four_threads_at_once_and_wake_the_loop,
    offload_runs_on_another_thread_while_the_loop_runs_other_tasks,
    an_offloaded_panic_reaches_the_task,
    block_on_yields_until_another_thread_completes_the_future,
    block_on_pending_in_a_coroutine_not_on_a_loop_panics,
    end_sleep_cuts_a_sleep_short,
    recv_and_send_timeouts_in_tasks_and_threads,
    a_loop_run_inside_a_task_of_another_keeps_both_orders,
    tasks_spawn_with_a_builder_onto_their_own_loop,
);

/// A task of one loop runs a second loop to completion inside it: the inner loop's tasks switch through it
/// (and wake each other) in their order, and afterwards the outer loop's tasks go on in theirs; on the native
/// backend both loops run on one thread.
fn a_loop_run_inside_a_task_of_another_keeps_both_orders(backend: Backend) {
    let log = log();
    let mut outer = RunLoop::new();
    for name in ["a", "b"] {
        let log = log.clone();
        outer.spawn_on(backend, move || {
            push(&log, format!("{name}0"));
            if name == "a" {
                let mut inner = RunLoop::new();
                let (tx, rx) = cothread::channel::bounded(1);
                let l = log.clone();
                inner.spawn_on(backend, move || {
                    for i in 0..3 {
                        tx.send(i).unwrap();
                        push(&l, format!("sent{i}"));
                    }
                });
                let l = log.clone();
                inner.spawn_on(backend, move || {
                    for v in rx.iter() {
                        push(&l, format!("got{v}"));
                        yield_to_loop();
                    }
                });
                inner.run();
            }
            yield_to_loop();
            push(&log, format!("{name}1"));
        });
    }
    outer.run();
    let got = entries(&log);
    let inner: Vec<&str> = got[1..got.len() - 3].iter().map(String::as_str).collect();
    assert_eq!(got[0], "a0");
    assert_eq!(
        got[got.len() - 3..],
        ["b0", "a1", "b1"],
        "the outer loop's order survives the inner loop: {got:?}"
    );
    let received: Vec<&str> = inner
        .iter()
        .copied()
        .filter(|e| e.starts_with("got"))
        .collect();
    assert_eq!(received, ["got0", "got1", "got2"], "{got:?}");
    assert_eq!(inner.len(), 6, "{got:?}");
}

fn tasks_run_in_spawn_order_and_values_come_back(backend: Backend) {
    let log = log();
    let mut rl = RunLoop::new();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let log = log.clone();
            rl.spawn_on(backend, move || {
                push(&log, format!("t{i}"));
                i * 10
            })
        })
        .collect();
    assert_eq!(rl.len(), 4);
    assert!(log.lock().unwrap().is_empty(), "spawning runs nothing");
    rl.run();
    assert!(rl.is_empty());
    assert_eq!(entries(&log), ["t0", "t1", "t2", "t3"]);
    for (i, h) in handles.iter().enumerate() {
        assert!(h.is_finished());
        assert_eq!(h.take(), Some(i * 10));
        assert_eq!(h.take(), None, "the value is taken once");
    }
}

fn yield_to_loop_round_robins(backend: Backend) {
    let log = log();
    let mut rl = RunLoop::new();
    for name in ["a", "b", "c"] {
        let log = log.clone();
        rl.spawn_on(backend, move || {
            for i in 0..3 {
                push(&log, format!("{name}{i}"));
                yield_to_loop();
            }
        });
    }
    rl.run();
    assert_eq!(
        entries(&log),
        ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]
    );
}

fn a_plain_yield_waits_for_a_wake(backend: Backend) {
    let mut rl = RunLoop::new();
    let entered = Arc::new(AtomicUsize::new(0));
    let e = entered.clone();
    let task = rl.spawn_on(backend, move || {
        e.fetch_add(1, Ordering::SeqCst);
        yield_now();
        e.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(rl.run_until_stalled(), 1);
    assert_eq!(entered.load(Ordering::SeqCst), 1);
    assert_eq!(rl.run_until_stalled(), 1, "nobody woke it");
    assert!(runloop::wake(task.coroutine()));
    assert!(
        runloop::wake(task.coroutine()),
        "waking twice queues it once"
    );
    assert_eq!(rl.run_until_stalled(), 0);
    assert_eq!(entered.load(Ordering::SeqCst), 2);
    assert!(
        !runloop::wake(task.coroutine()),
        "a finished task is not woken"
    );
}

fn wake_of_a_coroutine_not_on_a_loop_is_refused(backend: Backend) {
    let co = coroutine(backend, move || ());
    assert!(!runloop::wake(&co.handle()));
}

fn wake_ups_by_the_running_task_are_entered_right_after_it_in_fifo_order(backend: Backend) {
    wake_ups_enter_in_order(backend, backend);
}

/// The same order when the waker and the woken run on different backends: a native task's wake-ups take the
/// loop's own queue, a thread-backed task's the shared one, and both enter the woken right after the waker.
#[cfg(all(cothread_native, not(miri)))]
#[test]
fn wake_ups_keep_their_order_across_backends() {
    for waker in [Backend::Thread, Backend::Native] {
        for woken in [Backend::Thread, Backend::Native] {
            wake_ups_enter_in_order(waker, woken);
        }
    }
}

/// QEMU's co_queue_wakeup: A (on `waker`'s backend) wakes C then B; they run right after A yields, before D,
/// which was runnable first (B, C, D on `woken`'s).
fn wake_ups_enter_in_order(waker: Backend, woken: Backend) {
    let log = log();
    let mut rl = RunLoop::new();
    let sleeper = |name: &'static str| {
        let log = log.clone();
        move || {
            yield_now();
            push(&log, name);
        }
    };
    let b = rl.spawn_on(woken, sleeper("b"));
    let c = rl.spawn_on(woken, sleeper("c"));
    assert_eq!(rl.run_until_stalled(), 2);
    let (lb, lc) = (b.coroutine().clone(), c.coroutine().clone());
    let l = log.clone();
    rl.spawn_on(waker, move || {
        runloop::wake(&lc);
        runloop::wake(&lb);
        push(&l, "a wakes");
        yield_to_loop();
        push(&l, "a again");
    });
    let l = log.clone();
    rl.spawn_on(woken, move || push(&l, "d"));
    rl.run();
    assert_eq!(
        entries(&log),
        ["a wakes", "c", "b", "d", "a again"],
        "waker {waker:?}, woken {woken:?}"
    );
}

fn wake_ups_from_outside_go_to_the_tail(backend: Backend) {
    let log = log();
    let mut rl = RunLoop::new();
    let l = log.clone();
    let waiting = rl.spawn_on(backend, move || {
        yield_now();
        push(&l, "woken");
    });
    assert_eq!(rl.run_until_stalled(), 1);
    let l = log.clone();
    rl.spawn_on(backend, move || push(&l, "spawned first"));
    assert!(runloop::wake(waiting.coroutine()));
    rl.run();
    assert_eq!(entries(&log), ["spawned first", "woken"]);
}

fn sleeps_end_in_deadline_order_and_equal_deadlines_in_the_order_they_began(backend: Backend) {
    // All five must have begun sleeping before the first deadline, for the order to be by deadline: start
    // the deadlines well after now (Miri's clock runs fast while it interprets, but jumps ahead when every
    // thread waits, so a long lead costs nothing there).
    let lead = Duration::from_millis(if cfg!(miri) { 20_000 } else { 200 });
    let log = log();
    let last_start = Arc::new(Mutex::new(Instant::now()));
    let mut rl = RunLoop::new();
    let base = Instant::now() + lead;
    for (name, ms) in [("30", 30), ("10", 10), ("20", 20), ("10b", 10), ("0", 0)] {
        let (log, last_start) = (log.clone(), last_start.clone());
        rl.spawn_on(backend, move || {
            let deadline = base + Duration::from_millis(ms);
            *last_start.lock().unwrap() = Instant::now();
            sleep_until(deadline);
            assert!(Instant::now() >= deadline, "woke after the deadline");
            push(&log, name);
        });
    }
    rl.run();
    let woke = entries(&log);
    assert_eq!(woke.len(), 5);
    // The order is promised only for sleeps pending together. On a machine too loaded to start five tasks
    // within the lead, a sleep could end before a later one began: then the order says nothing.
    if *last_start.lock().unwrap() < base {
        assert_eq!(woke, ["0", "10", "10b", "20", "30"]);
    } else {
        eprintln!("order not checked: the sleepers took longer than {lead:?} to start");
    }
}

fn sleep_lasts_at_least_its_duration(backend: Backend) {
    let mut rl = RunLoop::new();
    let slept = rl.spawn_on(backend, move || {
        let start = Instant::now();
        sleep(Duration::from_millis(15));
        start.elapsed()
    });
    rl.run();
    assert!(slept.take().unwrap() >= Duration::from_millis(15));
}

fn run_until_stalled_waits_for_sleeps(backend: Backend) {
    let mut rl = RunLoop::new();
    let done = rl.spawn_on(backend, move || sleep(Duration::from_millis(5)));
    assert_eq!(rl.run_until_stalled(), 0);
    assert!(done.is_finished());
}

fn a_deadlock_is_reported_with_the_number_of_stuck_coroutines(backend: Backend) {
    let mut rl = RunLoop::new();
    let (tx, rx) = channel::bounded::<u32>(0);
    let (tx2, rx2) = channel::bounded::<u32>(0);
    // Each waits for the other to send first.
    rl.spawn_on(backend, move || {
        let v = rx.recv().unwrap();
        tx2.send(v).unwrap();
    });
    rl.spawn_with(Builder::new().backend(backend).name("stuck-b"), move || {
        let v = rx2.recv().unwrap();
        tx.send(v).unwrap();
    })
    .unwrap();
    rl.spawn_on(backend, move || ()); // finishes: not counted
    let err = catch_unwind(AssertUnwindSafe(|| rl.run())).unwrap_err();
    let msg = message(err);
    assert!(msg.contains("deadlocked"), "{msg}");
    assert!(msg.contains("2 coroutines wait"), "{msg}");
    assert!(msg.contains("stuck-b"), "{msg}");
    assert_eq!(rl.len(), 2);
    drop(rl); // unwinds the two stuck tasks
}

fn a_keep_alive_lets_another_thread_wake_tasks(backend: Backend) {
    let mut rl = RunLoop::new();
    let (tx, rx) = channel::unbounded();
    let got = rl.spawn_on(backend, move || rx.iter().sum::<u64>());
    let keep = rl.keep_alive();
    let feeder = std::thread::spawn(move || {
        for i in 1..=100 {
            tx.send(i).unwrap();
        }
        // The disconnection wakes the receiver too: drop the sender before the KeepAlive.
        drop(tx);
        drop(keep);
    });
    rl.run();
    feeder.join().unwrap();
    assert_eq!(got.take(), Some(5050));
}

fn wake_from_another_thread_reaches_a_sleeping_loop(backend: Backend) {
    let mut rl = RunLoop::new();
    let ready = Arc::new(AtomicBool::new(false));
    let r = ready.clone();
    let task = rl.spawn_on(backend, move || {
        r.store(true, Ordering::SeqCst);
        while r.load(Ordering::SeqCst) {
            yield_now(); // until the other thread clears the flag and wakes us
        }
        "woken"
    });
    let co = task.coroutine().clone();
    let keep = rl.keep_alive();
    let waker = std::thread::spawn(move || {
        while !ready.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        ready.store(false, Ordering::SeqCst);
        assert!(runloop::wake(&co));
        drop(keep);
    });
    rl.run();
    waker.join().unwrap();
    assert_eq!(task.take(), Some("woken"));
}

fn dropping_the_last_keep_alive_turns_a_wait_into_a_deadlock_report(backend: Backend) {
    let mut rl = RunLoop::new();
    rl.spawn_on(backend, yield_now);
    let keep = rl.keep_alive();
    let keep2 = keep.clone();
    drop(keep);
    let t = std::thread::spawn(move || drop(keep2));
    let err = catch_unwind(AssertUnwindSafe(|| rl.run())).unwrap_err();
    t.join().unwrap();
    assert!(message(err).contains("1 coroutine waits"));
}

fn a_panicking_task_reaches_run_and_the_loop_goes_on(backend: Backend) {
    let log = log();
    let mut rl = RunLoop::new();
    rl.spawn_on(backend, move || -> () { panic!("task failed") });
    let l = log.clone();
    let after = rl.spawn_on(backend, move || push(&l, "after"));
    let err = catch_unwind(AssertUnwindSafe(|| rl.run())).unwrap_err();
    assert_eq!(message(err), "task failed");
    assert_eq!(rl.len(), 1);
    rl.run();
    assert!(after.is_finished());
    assert_eq!(entries(&log), ["after"]);
}

/// Counts drops.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn dropping_a_loop_drops_unstarted_bodies_unrun(backend: Backend) {
    let drops = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicBool::new(false));
    let mut rl = RunLoop::new();
    let (guard, r) = (DropCount(drops.clone()), ran.clone());
    rl.spawn_on(backend, move || {
        let _g = guard;
        r.store(true, Ordering::SeqCst);
    });
    drop(rl);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(!ran.load(Ordering::SeqCst));
}

fn dropping_a_loop_after_its_tasks_waited_runs_their_destructors(backend: Backend) {
    let drops = Arc::new(AtomicUsize::new(0));
    let mut rl = RunLoop::new();
    let (_tx, rx) = channel::bounded::<()>(0);
    let d = drops.clone();
    rl.spawn_on(backend, move || {
        let _g = DropCount(d);
        let _ = rx.recv();
    });
    let d = drops.clone();
    rl.spawn_on(backend, move || {
        let _g = DropCount(d);
        yield_now();
    });
    assert_eq!(rl.run_until_stalled(), 2);
    drop(rl);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

fn dropping_a_loop_with_a_pending_sleep_unwinds_the_sleeper(backend: Backend) {
    let drops = Arc::new(AtomicUsize::new(0));
    let mut rl = RunLoop::new();
    let d = drops.clone();
    let started = Arc::new(AtomicBool::new(false));
    let s = started.clone();
    rl.spawn_on(backend, move || {
        let _g = DropCount(d);
        s.store(true, Ordering::SeqCst);
        sleep(Duration::from_secs(3600));
    });
    // A second task ends the run: it panics once the sleeper has started, which stops `run`.
    rl.spawn_on(backend, move || -> () {
        yield_to_loop();
        panic!("stop");
    });
    let err = catch_unwind(AssertUnwindSafe(|| rl.run())).unwrap_err();
    assert_eq!(message(err), "stop");
    assert!(started.load(Ordering::SeqCst));
    drop(rl);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

fn sleep_and_yield_to_loop_outside_a_loop_panic(backend: Backend) {
    let err = catch_unwind(|| sleep(Duration::from_millis(1))).unwrap_err();
    assert_eq!(message(err), "cothread: sleep() called outside a coroutine");
    let err = catch_unwind(yield_to_loop).unwrap_err();
    assert!(message(err).contains("outside a coroutine spawned on a RunLoop"));
    let mut co = coroutine(backend, move || {
        let err = catch_unwind(|| sleep(Duration::from_millis(1))).unwrap_err();
        message(err)
    });
    let msg = co.enter().into_returned().unwrap();
    assert!(msg.contains("not spawned on a RunLoop"), "{msg}");
}

fn current_inside_a_task_is_its_handle(backend: Backend) {
    let mut rl = RunLoop::new();
    let t = rl.spawn_on(backend, move || current().unwrap());
    rl.run();
    let seen = t.take().unwrap();
    assert_eq!(&seen, t.coroutine());
}

fn tasks_waking_each_other_in_a_ring_do_not_starve_the_others(backend: Backend) {
    // A and B hand a token back and forth through rendezvous channels: every hand-off is a wake-up by the
    // running task. A bystander that became runnable meanwhile still gets its turn long before they finish.
    let rounds = if cfg!(miri) { 40 } else { 1000 };
    let log = log();
    let (to_b, from_a) = channel::bounded::<u32>(0);
    let (to_a, from_b) = channel::bounded::<u32>(0);
    let mut rl = RunLoop::new();
    let l = log.clone();
    rl.spawn_on(backend, move || {
        for i in 0..rounds {
            to_b.send(i).unwrap();
            from_b.recv().unwrap();
        }
        push(&l, "ring done");
    });
    rl.spawn_on(backend, move || {
        for v in from_a {
            to_a.send(v).unwrap();
        }
    });
    let l = log.clone();
    rl.spawn_on(backend, move || push(&l, "bystander"));
    rl.run();
    assert_eq!(entries(&log), ["bystander", "ring done"]);
}

fn tasks_on_loops_on_two_threads_wake_each_other(backend: Backend) {
    // Loop A (one thread) sends numbers and waits for each acknowledgement; loop B (another thread) receives
    // and acknowledges. Every wake-up crosses threads. Each loop holds a KeepAlive of the other while its
    // task may still wake the other's.
    let n = if cfg!(miri) { 30 } else { 2_000 };
    let (tx, rx) = channel::bounded::<u64>(2);
    let (ack_tx, ack_rx) = channel::bounded::<u64>(0);
    let (a_keep_tx, a_keep_rx) = std::sync::mpsc::channel();
    let (b_keep_tx, b_keep_rx) = std::sync::mpsc::channel();
    let a = std::thread::spawn(move || {
        let mut rl = RunLoop::new();
        a_keep_tx.send(rl.keep_alive()).unwrap();
        let keep_b = b_keep_rx.recv().unwrap();
        let acked = rl.spawn_on(backend, move || {
            let mut acked = 0;
            for i in 0..n {
                tx.send(i).unwrap();
                acked += ack_rx.recv().unwrap();
            }
            // Dropping the sender wakes B's receiver (disconnection): only then is B's KeepAlive done with.
            drop(tx);
            drop(keep_b);
            acked
        });
        rl.run();
        acked.take().unwrap()
    });
    let b = std::thread::spawn(move || {
        let mut rl = RunLoop::new();
        b_keep_tx.send(rl.keep_alive()).unwrap();
        let keep_a = a_keep_rx.recv().unwrap();
        let got = rl.spawn_on(backend, move || {
            let mut got = 0;
            for v in rx.iter() {
                got += 1;
                ack_tx.send(v).unwrap();
            }
            drop(ack_tx);
            drop(keep_a);
            got
        });
        rl.run();
        got.take().unwrap()
    });
    assert_eq!(a.join().unwrap(), (0..n).sum::<u64>());
    assert_eq!(b.join().unwrap(), n);
}

fn tasks_spawn_tasks_onto_their_own_loop(backend: Backend) {
    let log = log();
    let mut rl = RunLoop::new();
    let l = log.clone();
    let outer = rl.spawn_on(backend, move || {
        let children: Vec<_> = (0..3)
            .map(|i| {
                let l = l.clone();
                // On the default backend: `runloop::spawn` takes no builder.
                runloop::spawn(move || {
                    push(&l, format!("child{i}"));
                    i
                })
            })
            .collect();
        push(&l, "outer spawned");
        yield_to_loop(); // the children run, in spawn order
        children.iter().map(|c| c.take().unwrap()).sum::<i32>()
    });
    rl.run();
    assert_eq!(outer.take(), Some(3));
    assert_eq!(
        entries(&log),
        ["outer spawned", "child0", "child1", "child2"]
    );
    assert!(rl.is_empty());
}

#[test]
fn runloop_spawn_outside_a_task_panics() {
    let err = catch_unwind(|| runloop::spawn(|| ())).unwrap_err();
    assert!(
        message(err).contains("runloop::spawn() called outside a coroutine spawned on a RunLoop")
    );
    let err = catch_unwind(|| runloop::spawn_with(cothread::Builder::new(), || ())).unwrap_err();
    assert!(
        message(err)
            .contains("runloop::spawn_with() called outside a coroutine spawned on a RunLoop")
    );
}

/// A task spawns onto its loop with a builder: the child gets the name and the backend asked for (a native
/// child runs on the loop's thread, a thread-backed one on a thread of its own).
fn tasks_spawn_with_a_builder_onto_their_own_loop(backend: Backend) {
    let mut rl = RunLoop::new();
    let outer = rl.spawn_on(backend, move || {
        let child = runloop::spawn_with(
            cothread::Builder::new().backend(backend).name("child"),
            || {
                let name = cothread::current().unwrap().name().map(str::to_owned);
                (name, std::thread::current().id())
            },
        )
        .unwrap();
        yield_to_loop(); // the child runs
        child.take()
    });
    rl.run();
    let (name, child_thread) = outer.take().flatten().unwrap();
    assert_eq!(name.as_deref(), Some("child"));
    let on_loop_thread = child_thread == std::thread::current().id();
    assert_eq!(on_loop_thread, backend != Backend::Thread, "{backend:?}");
    assert!(rl.is_empty());
}

fn handles_spawn_from_four_threads_at_once_and_wake_the_loop(backend: Backend) {
    const THREADS: usize = 4;
    const EACH: usize = if cfg!(miri) { 3 } else { 50 };
    let mut rl = RunLoop::new();
    let handle = rl.handle();
    let (tx, rx) = channel::unbounded();
    let keep = rl.keep_alive();
    let spawners: Vec<_> = (0..THREADS)
        .map(|t| {
            let handle = handle.clone();
            let tx = tx.clone();
            let keep = keep.clone();
            std::thread::spawn(move || {
                let tasks: Vec<_> = (0..EACH)
                    .map(|i| {
                        let tx = tx.clone();
                        handle
                            .spawn_with(Builder::new().backend(backend), move || {
                                tx.send(t * 1000 + i).unwrap()
                            })
                            .unwrap()
                    })
                    .collect();
                drop(keep);
                tasks
            })
        })
        .collect();
    drop((tx, keep));
    // The loop sleeps (nothing runnable) until the threads' spawns wake it.
    let sum = rl.spawn_on(backend, move || rx.iter().count());
    rl.run();
    for s in spawners {
        for task in s.join().unwrap() {
            assert!(task.is_finished());
        }
    }
    assert_eq!(sum.take(), Some(THREADS * EACH));
}

#[test]
fn spawning_onto_a_dropped_loop_drops_the_task_unstarted() {
    let rl = RunLoop::new();
    let handle = rl.handle();
    drop(rl);
    let (flag, dropped) = common::drop_flag();
    let task = handle.spawn(move || drop(flag));
    assert!(dropped.load(Ordering::SeqCst), "the closure was dropped");
    assert_eq!(task.take(), None);
}

fn offload_runs_on_another_thread_while_the_loop_runs_other_tasks(backend: Backend) {
    let log = log();
    let mut rl = RunLoop::new();
    let (tx, rx) = channel::bounded::<()>(0);
    let l = log.clone();
    let offloaded = rl.spawn_on(backend, move || {
        let loop_thread = std::thread::current().id();
        let (worker, value) = runloop::offload(move || {
            // Blocks this worker until the other task, on the loop, has run.
            rx.recv().unwrap();
            (std::thread::current().id(), 7)
        });
        push(&l, "offload returned");
        (worker != loop_thread, value)
    });
    let l = log.clone();
    rl.spawn_on(backend, move || {
        push(&l, "other task ran");
        tx.send(()).unwrap();
    });
    rl.run();
    assert_eq!(offloaded.take(), Some((true, 7)));
    assert_eq!(entries(&log), ["other task ran", "offload returned"]);
    // Outside tasks it just calls the closure.
    assert_eq!(runloop::offload(|| 5), 5);
}

fn an_offloaded_panic_reaches_the_task(backend: Backend) {
    let mut rl = RunLoop::new();
    let task = rl.spawn_on(backend, move || {
        let caught = catch_unwind(|| runloop::offload(|| -> u32 { panic!("in the worker") }));
        message(caught.unwrap_err())
    });
    rl.run();
    assert_eq!(task.take().unwrap(), "in the worker");
}

/// A one-shot future completed by [`complete`](Oneshot::complete) from any thread.
#[derive(Clone, Default)]
struct Oneshot(Arc<Mutex<(Option<u32>, Option<std::task::Waker>)>>);

impl Oneshot {
    fn complete(&self, value: u32) {
        let waker = {
            let mut st = self.0.lock().unwrap();
            st.0 = Some(value);
            st.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl std::future::Future for Oneshot {
    type Output = u32;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<u32> {
        let mut st = self.0.lock().unwrap();
        match st.0.take() {
            Some(v) => std::task::Poll::Ready(v),
            None => {
                st.1 = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        }
    }
}

fn block_on_yields_until_another_thread_completes_the_future(backend: Backend) {
    let mut rl = RunLoop::new();
    let future = Oneshot::default();
    let f = future.clone();
    let ran_meanwhile = Arc::new(AtomicBool::new(false));
    let r = ran_meanwhile.clone();
    let waiting = rl.spawn_on(backend, move || runloop::block_on(f) + 1);
    let (started_tx, started_rx) = channel::bounded(0);
    rl.spawn_on(backend, move || {
        r.store(true, Ordering::SeqCst);
        started_tx.send(()).unwrap();
    });
    let completer = std::thread::spawn(move || {
        started_rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(10));
        future.complete(41);
    });
    rl.run();
    completer.join().unwrap();
    assert!(ran_meanwhile.load(Ordering::SeqCst));
    assert_eq!(waiting.take(), Some(42));
    // Outside coroutines it blocks the thread.
    let future = Oneshot::default();
    let f = future.clone();
    let t = std::thread::spawn(move || future.complete(9));
    assert_eq!(runloop::block_on(f), 9);
    t.join().unwrap();
}

fn block_on_pending_in_a_coroutine_not_on_a_loop_panics(backend: Backend) {
    let mut co = coroutine(backend, move || runloop::block_on(Oneshot::default()));
    let err = catch_unwind(AssertUnwindSafe(|| co.enter())).unwrap_err();
    assert!(message(err).contains("block_on() has to wait, in a coroutine that was not spawned"));
}

fn end_sleep_cuts_a_sleep_short(backend: Backend) {
    let mut rl = RunLoop::new();
    let start = Instant::now();
    let sleeper = rl.spawn_on(backend, move || {
        sleep(Duration::from_secs(600));
        start.elapsed()
    });
    let co = sleeper.coroutine().clone();
    let ender = rl.spawn_on(backend, move || {
        let before = runloop::end_sleep(&co);
        (before, runloop::end_sleep(&co))
    });
    rl.run();
    assert!(sleeper.take().unwrap() < Duration::from_secs(600));
    // The first call found the sleep; the second found none.
    assert_eq!(ender.take(), Some((true, false)));
}

fn recv_and_send_timeouts_in_tasks_and_threads(backend: Backend) {
    use cothread::channel::{RecvTimeoutError, SendTimeoutError};
    let mut rl = RunLoop::new();
    let (tx, rx) = channel::bounded::<u32>(1);
    let (tx2, rx2) = (tx.clone(), rx.clone());
    let task = rl.spawn_on(backend, move || {
        let start = Instant::now();
        let empty = rx2.recv_timeout(Duration::from_millis(20));
        let waited = start.elapsed();
        tx2.send(1).unwrap();
        let full = tx2.send_timeout(2, Duration::from_millis(5));
        let got = rx2.recv_timeout(Duration::from_secs(60));
        (empty, waited, full, got)
    });
    rl.run();
    let (empty, waited, full, got) = task.take().unwrap();
    assert_eq!(empty, Err(RecvTimeoutError::Timeout));
    assert!(waited >= Duration::from_millis(20));
    assert_eq!(full, Err(SendTimeoutError::Timeout(2)));
    assert_eq!(got, Ok(1));
    // A message that comes before the deadline is received; the loop does not wait for the deadline.
    let mut rl = RunLoop::new();
    let rx2 = rx.clone();
    let start = Instant::now();
    let got = rl.spawn_on(backend, move || rx2.recv_timeout(Duration::from_secs(600)));
    let tx2 = tx.clone();
    rl.spawn_on(backend, move || tx2.send(3).unwrap());
    rl.run();
    assert_eq!(got.take(), Some(Ok(3)));
    assert!(start.elapsed() < Duration::from_secs(60));
    // Outside coroutines, the thread waits.
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(5)),
        Err(RecvTimeoutError::Timeout)
    );
    drop(tx);
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(5)),
        Err(RecvTimeoutError::Disconnected)
    );
}
