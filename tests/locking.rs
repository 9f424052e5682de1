//! CoMutex, CoRwLock and CoQueue: QEMU's `/locking/*` scenarios (tests/unit/test-coroutine.c) on a run loop,
//! contention, FIFO hand-off, writer fairness, and misuse.
//!
//! QEMU's tests enter coroutines by hand; here the loop is what enters tasks, so "the test enters c" becomes
//! `wake(c)` followed by `run_until_stalled()`: c runs, and so does every coroutine its wake-ups make
//! runnable, exactly as QEMU's `qemu_coroutine_enter` runs the wake-ups queued by c before returning.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cothread::runloop::{self, JoinHandle, yield_to_loop};
use cothread::{Backend, CoMutex, CoQueue, CoRwLock, RunLoop, channel, yield_now};

use common::{SpawnOn, coroutine, message};

on_each_backend!(
    contending_coroutines_get_exclusive_critical_sections,
    the_lock_goes_to_waiters_in_fifo_order_and_nobody_barges,
    waiting_in_a_coroutine_not_on_a_loop_panics_but_an_uncontended_lock_works,
    unlocking_from_a_coroutine_that_does_not_hold_the_lock_panics,
    co_queue_wait_releases_the_lock_and_notify_one_wakes_in_fifo_order,
    notify_all_wakes_every_waiter_in_order_right_after_the_notifier,
    notify_from_outside_coroutines_makes_the_waiter_runnable_at_once,
    co_queue_wait_works_with_a_write_lock,
    co_rwlock_upgrade,
    co_rwlock_downgrade,
    readers_share_and_a_writer_is_not_starved_by_a_stream_of_readers,
    dropping_a_loop_passes_on_what_its_unrun_tasks_were_handed,
    co_mutex,
    co_mutex_lockable,
);

/// QEMU's "enter c": wake it and run until everything it set in motion has stopped.
fn enter<R>(rl: &mut RunLoop, c: &JoinHandle<R>) {
    assert!(runloop::wake(c.coroutine()));
    rl.run_until_stalled();
}

/// The shared flags of QEMU's co-mutex test.
#[derive(Default)]
struct Flags {
    locked: AtomicBool,
    done: AtomicUsize,
}

/// QEMU's `do_test_co_mutex`: two coroutines run `body`, which takes a lock, marks it held, yields, and
/// releases it. `lock` takes the lock and returns something that releases it when dropped.
fn do_test_co_mutex<G: 'static>(backend: Backend, lock: impl Fn() -> G + Send + Sync + 'static) {
    let flags = Arc::new(Flags::default());
    let lock = Arc::new(lock);
    let mut rl = RunLoop::new();
    let mut spawn = || {
        let (flags, lock) = (flags.clone(), lock.clone());
        rl.spawn_on(backend, move || {
            let guard = lock();
            assert!(!flags.locked.load(Ordering::SeqCst));
            flags.locked.store(true, Ordering::SeqCst);
            yield_now();
            flags.locked.store(false, Ordering::SeqCst);
            drop(guard);
            flags.done.fetch_add(1, Ordering::SeqCst);
        })
    };
    let c1 = spawn();
    let c2 = spawn();
    // c1 takes the lock and yields; c2 queues for it.
    assert_eq!(rl.run_until_stalled(), 2);
    assert!(flags.locked.load(Ordering::SeqCst));
    // c1's unlock hands the lock to c2, which runs as soon as c1 has finished.
    enter(&mut rl, &c1);
    assert_eq!(flags.done.load(Ordering::SeqCst), 1);
    assert!(flags.locked.load(Ordering::SeqCst));
    enter(&mut rl, &c2);
    assert_eq!(flags.done.load(Ordering::SeqCst), 2);
    assert!(!flags.locked.load(Ordering::SeqCst));
    assert!(rl.is_empty());
}

fn co_mutex(backend: Backend) {
    // Leaked so that the guard, which borrows the mutex, can live in a 'static task.
    let m: &'static CoMutex<()> = Box::leak(Box::new(CoMutex::new(())));
    do_test_co_mutex(backend, move || m.lock());
}

/// QEMU's `/locking/co-mutex/lockable` runs the same scenario through the generic lock interface
/// (`QemuLockable`). Here the generic interface is [`cothread::Relock`]: any guard that a `CoQueue` can
/// release and retake. The scenario runs with a `CoMutex` guard and with both kinds of `CoRwLock` write
/// access, through one generic function.
fn co_mutex_lockable(backend: Backend) {
    fn through_relock<G: cothread::Relock>(g: G) -> G {
        g
    }
    let m: &'static CoMutex<u32> = Box::leak(Box::new(CoMutex::new(0)));
    do_test_co_mutex(backend, move || through_relock(m.lock()));
    let rw: &'static CoRwLock<u32> = Box::leak(Box::new(CoRwLock::new(0)));
    do_test_co_mutex(backend, move || through_relock(rw.write()));
    let rw2: &'static CoRwLock<u32> = Box::leak(Box::new(CoRwLock::new(0)));
    do_test_co_mutex(backend, move || {
        through_relock(CoRwLock::upgrade(rw2.read()))
    });
}

fn contending_coroutines_get_exclusive_critical_sections(backend: Backend) {
    let (tasks, rounds) = if cfg!(miri) { (3, 5) } else { (8, 200) };
    let counter = Arc::new(CoMutex::new(0u64));
    let inside = Arc::new(AtomicBool::new(false));
    let mut rl = RunLoop::new();
    for _ in 0..tasks {
        let (counter, inside) = (counter.clone(), inside.clone());
        rl.spawn_on(backend, move || {
            for i in 0..rounds {
                let mut n = counter.lock();
                assert!(
                    !inside.swap(true, Ordering::SeqCst),
                    "two coroutines in the critical section"
                );
                let seen = *n;
                if i % 2 == 0 {
                    yield_to_loop(); // the others run and queue for the lock
                }
                *n = seen + 1;
                inside.store(false, Ordering::SeqCst);
            }
        });
    }
    rl.run();
    assert_eq!(*counter.try_lock().unwrap(), tasks * rounds);
    assert!(!counter.is_locked());
}

fn the_lock_goes_to_waiters_in_fifo_order_and_nobody_barges(backend: Backend) {
    let order = Arc::new(Mutex::new(Vec::new()));
    let m = Arc::new(CoMutex::new(()));
    let mut rl = RunLoop::new();
    let holder = {
        let m = m.clone();
        rl.spawn_on(backend, move || {
            let _g = m.lock();
            yield_now(); // hold until woken
        })
    };
    for i in 0..4 {
        let (m, order) = (m.clone(), order.clone());
        rl.spawn_on(backend, move || {
            let _g = m.lock();
            order.lock().unwrap().push(i);
            yield_to_loop(); // hold it across a yield: the next waiter must wait for us
        });
    }
    assert_eq!(rl.run_until_stalled(), 5);
    assert!(m.is_locked());
    // A barging try_lock fails while the lock is handed from waiter to waiter.
    let m2 = m.clone();
    let barger = rl.spawn_on(backend, move || {
        let mut tries = 0;
        while m2.try_lock().is_none() {
            tries += 1;
            yield_to_loop();
        }
        tries
    });
    enter(&mut rl, &holder);
    rl.run();
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3]);
    assert!(barger.take().unwrap() > 0);
}

#[test]
fn try_lock_and_is_locked_work_outside_coroutines() {
    let m = CoMutex::new(5);
    assert!(!m.is_locked());
    let mut g = m.try_lock().unwrap();
    *g += 1;
    assert!(m.is_locked());
    assert!(m.try_lock().is_none());
    drop(g);
    assert!(!m.is_locked());
    assert_eq!(m.into_inner(), 6);
}

#[test]
fn locking_outside_a_coroutine_panics() {
    let m = CoMutex::new(());
    let err = catch_unwind(AssertUnwindSafe(|| drop(m.lock()))).unwrap_err();
    assert_eq!(
        message(err),
        "cothread: CoMutex::lock() called outside a coroutine"
    );
    let rw = CoRwLock::new(());
    let err = catch_unwind(AssertUnwindSafe(|| drop(rw.read()))).unwrap_err();
    assert_eq!(
        message(err),
        "cothread: CoRwLock::read() called outside a coroutine"
    );
    let q = CoQueue::new();
    let err = catch_unwind(AssertUnwindSafe(|| q.wait_unlocked())).unwrap_err();
    assert_eq!(
        message(err),
        "cothread: CoQueue::wait_unlocked() called outside a coroutine"
    );
}

fn waiting_in_a_coroutine_not_on_a_loop_panics_but_an_uncontended_lock_works(backend: Backend) {
    let m = Arc::new(CoMutex::new(1));
    let m1 = m.clone();
    let mut free = coroutine(backend, move || {
        *m1.lock() += 1; // uncontended: no wait, fine anywhere
        let _held = m1.try_lock();
        m1.try_lock().is_none()
    });
    assert_eq!(free.enter().into_returned(), Some(true));
    let _held = m.try_lock().unwrap();
    let m2 = m.clone();
    let mut free = coroutine(backend, move || {
        let err = catch_unwind(AssertUnwindSafe(|| drop(m2.lock()))).unwrap_err();
        message(err)
    });
    let msg = free.enter().into_returned().unwrap();
    assert!(
        msg.contains(
            "CoMutex::lock() has to wait, in a coroutine that was not spawned on a RunLoop"
        ),
        "{msg}"
    );
}

fn unlocking_from_a_coroutine_that_does_not_hold_the_lock_panics(backend: Backend) {
    let m: &'static CoMutex<u32> = Box::leak(Box::new(CoMutex::new(0)));
    let (tx, rx) = channel::bounded(1);
    let mut rl = RunLoop::new();
    rl.spawn_on(backend, move || {
        tx.send(m.lock()).unwrap();
    });
    rl.spawn_on(backend, move || {
        let guard = rx.recv().unwrap();
        drop(guard); // not ours
    });
    let err = catch_unwind(AssertUnwindSafe(|| rl.run())).unwrap_err();
    let msg = message(err);
    assert!(
        msg.starts_with("cothread: CoMutex unlocked by a coroutine that does not hold it"),
        "{msg}"
    );
}

fn co_queue_wait_releases_the_lock_and_notify_one_wakes_in_fifo_order(backend: Backend) {
    let state = Arc::new((CoMutex::new(Vec::<u32>::new()), CoQueue::new()));
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut rl = RunLoop::new();
    for id in 0..3 {
        let (state, order) = (state.clone(), order.clone());
        rl.spawn_on(backend, move || {
            let (items, nonempty) = &*state;
            let mut items = items.lock();
            while items.is_empty() {
                nonempty.wait(&mut items);
            }
            let item = items.pop().unwrap();
            order.lock().unwrap().push((id, item));
        });
    }
    assert_eq!(rl.run_until_stalled(), 3);
    assert!(!state.1.is_empty());
    assert!(!state.0.is_locked(), "waiters do not hold the lock");
    let s = state.clone();
    rl.spawn_on(backend, move || {
        let (items, nonempty) = &*s;
        for item in [10, 20, 30] {
            items.lock().push(item);
            assert!(nonempty.notify_one());
            yield_to_loop();
        }
        assert!(!nonempty.notify_one(), "nobody left");
    });
    rl.run();
    assert_eq!(*order.lock().unwrap(), [(0, 10), (1, 20), (2, 30)]);
    assert!(state.1.is_empty());
}

fn notify_all_wakes_every_waiter_in_order_right_after_the_notifier(backend: Backend) {
    let q = Arc::new(CoQueue::new());
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut rl = RunLoop::new();
    for id in 0..3 {
        let (q, log) = (q.clone(), log.clone());
        rl.spawn_on(backend, move || {
            q.wait_unlocked();
            log.lock().unwrap().push(format!("w{id}"));
        });
    }
    assert_eq!(rl.run_until_stalled(), 3);
    let (q2, l) = (q.clone(), log.clone());
    rl.spawn_on(backend, move || {
        assert_eq!(q2.notify_all(), 3);
        l.lock().unwrap().push("notifier continues".to_string());
        yield_to_loop();
        l.lock().unwrap().push("notifier again".to_string());
    });
    let l = log.clone();
    rl.spawn_on(backend, move || {
        l.lock().unwrap().push("bystander".to_string())
    });
    rl.run();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "notifier continues",
            "w0",
            "w1",
            "w2",
            "bystander",
            "notifier again"
        ]
    );
}

fn notify_from_outside_coroutines_makes_the_waiter_runnable_at_once(backend: Backend) {
    let q = Arc::new(CoQueue::new());
    let mut rl = RunLoop::new();
    let q2 = q.clone();
    let waiter = rl.spawn_on(backend, move || q2.wait_unlocked());
    assert_eq!(rl.run_until_stalled(), 1);
    assert!(q.notify_one());
    assert!(q.is_empty());
    assert_eq!(rl.run_until_stalled(), 0);
    assert!(waiter.is_finished());
}

fn co_queue_wait_works_with_a_write_lock(backend: Backend) {
    let state = Arc::new((CoRwLock::new(0u32), CoQueue::new()));
    let mut rl = RunLoop::new();
    let s = state.clone();
    let waiter = rl.spawn_on(backend, move || {
        let (value, changed) = &*s;
        let mut w = value.write();
        while *w == 0 {
            changed.wait(&mut w);
        }
        *w += 1;
        *w
    });
    let s = state.clone();
    rl.spawn_on(backend, move || {
        let (value, changed) = &*s;
        *value.write() = 41;
        changed.notify_one();
    });
    rl.run();
    assert_eq!(waiter.take(), Some(42));
}

/// QEMU's `/locking/co-rwlock/upgrade`: a sole reader that upgrades while a writer waits goes back to the
/// queue behind that writer.
fn co_rwlock_upgrade(backend: Backend) {
    let lock = Arc::new(CoRwLock::new(()));
    let (c1_done, c2_done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let mut rl = RunLoop::new();
    let (l, d) = (lock.clone(), c1_done.clone());
    let c1 = rl.spawn_on(backend, move || {
        let r = l.read();
        yield_now();
        let w = CoRwLock::upgrade(r);
        drop(w);
        d.store(true, Ordering::SeqCst);
    });
    assert_eq!(rl.run_until_stalled(), 1);
    let (l, d) = (lock.clone(), c2_done.clone());
    let c2 = rl.spawn_on(backend, move || {
        let w = l.write();
        yield_now();
        drop(w);
        d.store(true, Ordering::SeqCst);
    });
    assert_eq!(rl.run_until_stalled(), 2);
    // c1 upgrades: it must let the queued writer c2 go first, and sleep.
    enter(&mut rl, &c1);
    assert!(!c1_done.load(Ordering::SeqCst));
    assert!(!c2_done.load(Ordering::SeqCst));
    // c2 unlocks: c1 gets the write lock and finishes.
    enter(&mut rl, &c2);
    assert!(c1_done.load(Ordering::SeqCst));
    assert!(c2_done.load(Ordering::SeqCst));
    assert!(!lock.is_locked());
}

/// QEMU's `/locking/co-rwlock/downgrade`: with a reader holding the lock and a writer, a reader and a writer
/// queued, one unlock lets all of them through without a hang.
fn co_rwlock_downgrade(backend: Backend) {
    let lock = Arc::new(CoRwLock::new(()));
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut rl = RunLoop::new();
    let (l, g) = (lock.clone(), log.clone());
    let c1 = rl.spawn_on(backend, move || {
        let r = l.read();
        yield_now();
        drop(r);
        yield_now();
        g.lock().unwrap().push("c1");
    });
    let (l, g) = (lock.clone(), log.clone());
    rl.spawn_on(backend, move || {
        let w = l.write();
        let r = CoRwLock::downgrade(w);
        drop(r);
        g.lock().unwrap().push("c2");
    });
    let (l, g) = (lock.clone(), log.clone());
    rl.spawn_on(backend, move || {
        drop(l.read());
        g.lock().unwrap().push("c3");
    });
    let (l, g) = (lock.clone(), log.clone());
    rl.spawn_on(backend, move || {
        drop(l.write());
        g.lock().unwrap().push("c4");
    });
    assert_eq!(rl.run_until_stalled(), 4);
    enter(&mut rl, &c1);
    assert_eq!(*log.lock().unwrap(), ["c2", "c3", "c4"]);
    enter(&mut rl, &c1);
    assert_eq!(*log.lock().unwrap(), ["c2", "c3", "c4", "c1"]);
    assert!(rl.is_empty());
}

fn readers_share_and_a_writer_is_not_starved_by_a_stream_of_readers(backend: Backend) {
    let lock = Arc::new(CoRwLock::new(0u32));
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut rl = RunLoop::new();
    let readers = Arc::new(AtomicUsize::new(0));
    let max_readers = Arc::new(AtomicUsize::new(0));
    let rounds = if cfg!(miri) { 3 } else { 20 };
    // Two readers keep re-taking the read lock, each holding it across a yield, so that at every moment at
    // least one of them holds it.
    for id in 0..2 {
        let (lock, log, readers, max) = (
            lock.clone(),
            log.clone(),
            readers.clone(),
            max_readers.clone(),
        );
        rl.spawn_on(backend, move || {
            for _ in 0..rounds {
                let r = lock.read();
                let n = readers.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(n, Ordering::SeqCst);
                log.lock().unwrap().push(format!("r{id} sees {}", *r));
                yield_to_loop();
                readers.fetch_sub(1, Ordering::SeqCst);
                drop(r);
            }
        });
    }
    let (l, g) = (lock.clone(), log.clone());
    rl.spawn_on(backend, move || {
        yield_to_loop(); // arrive while readers hold the lock
        let mut w = l.write();
        *w = 1;
        g.lock().unwrap().push("writer".to_string());
    });
    rl.run();
    let log = log.lock().unwrap();
    let at = log.iter().position(|e| e == "writer").unwrap();
    assert!(
        at < 6,
        "the writer got in after at most a couple of read sections: {log:?}"
    );
    assert!(log[at + 1..].iter().all(|e| e.ends_with("sees 1")));
    assert_eq!(
        max_readers.load(Ordering::SeqCst),
        2,
        "readers share the lock"
    );
}

fn dropping_a_loop_passes_on_what_its_unrun_tasks_were_handed(backend: Backend) {
    let m = Arc::new(CoMutex::new(0));
    let q = Arc::new(CoQueue::new());
    let rw = Arc::new(CoRwLock::new(0));
    let outside = m.try_lock().unwrap();
    let outside_w = rw.try_write().unwrap();
    let mut rl = RunLoop::new();
    let q1 = q.clone();
    rl.spawn_on(backend, move || q1.wait_unlocked());
    let rw1 = rw.clone();
    rl.spawn_on(backend, move || drop(rw1.read()));
    for _ in 0..2 {
        let m = m.clone();
        rl.spawn_on(backend, move || *m.lock() += 1);
    }
    assert_eq!(rl.run_until_stalled(), 4);
    // Hand each waiter what it waited for, without running the loop.
    assert!(q.notify_one());
    drop(outside_w);
    drop(outside);
    assert!(rw.is_locked(), "the reader was admitted");
    assert!(m.is_locked(), "the first locker was handed the mutex");
    // Dropping the loop unwinds the tasks: each gives back what it was handed (the mutex goes to the second
    // locker, which gives it back in turn).
    drop(rl);
    assert!(q.is_empty());
    assert!(!rw.is_locked());
    assert!(!m.is_locked());
    assert_eq!(*m.try_lock().unwrap(), 0, "no task ran after the hand-off");
}
