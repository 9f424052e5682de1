//! loom models of the enter/yield hand-off, run against cothread's real code (its `sync` shim maps every
//! lock, condition variable, atomic, thread, thread-local and global to loom under `--cfg loom`).
//!
//! Each model states its preemption bound (`None`: exhaustive). Every model ends with
//! `pool::exit_all_and_join()`, which waits until every pool thread has exited: a thread that never comes
//! back idle (a lost wake-up, a coroutine that never finishes) makes loom report a deadlock.
//!
//! See `README.md` for the run times and for the planted bugs each model catches.
#![cfg(loom)]

mod common;

use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use common::{Chain, check};
use cothread::{Coroutine, Resume, pool, set_spin_limit, yield_now};

/// Enter a coroutine that yields twice, then returns: the values it hands over arrive in order, and each
/// side runs only while the other waits. With `spin`, the spin bound of both sides (0: park at once).
fn lifecycle(spin: Option<u32>) {
    if let Some(rounds) = spin {
        set_spin_limit(rounds);
    }
    let chain = Chain::new();
    let c = chain.clone();
    let mut co = Coroutine::new(move || {
        c.begin();
        c.log("co: start");
        c.put(1);
        c.away(yield_now);
        c.log("co: after yield 1");
        c.put(2);
        c.away(yield_now);
        c.log("co: after yield 2");
        c.end();
        3
    });
    chain.log("main: enter 1");
    assert_eq!(chain.away(|| co.enter()), Resume::Yielded);
    assert_eq!(chain.take(), Some(1));
    chain.log("main: enter 2");
    assert_eq!(chain.away(|| co.enter()), Resume::Yielded);
    assert_eq!(chain.take(), Some(2));
    chain.log("main: enter 3");
    assert_eq!(chain.away(|| co.enter()), Resume::Returned(3));
    assert_eq!(chain.take(), None);
    assert!(co.is_finished());
    assert_eq!(
        chain.events(),
        [
            "main: enter 1",
            "co: start",
            "main: enter 2",
            "co: after yield 1",
            "main: enter 3",
            "co: after yield 2",
        ]
    );
    drop(co);
    pool::exit_all_and_join();
}

/// Create, enter, return (QEMU's `/basic/lifecycle`), every schedule: the value comes back, the body ran
/// alone, and its thread went back to the pool.
#[test]
fn lifecycle_returns() {
    check("lifecycle_returns", None, || {
        let chain = Chain::new();
        let c = chain.clone();
        let mut co = Coroutine::new(move || {
            c.begin();
            c.put(5);
            c.end();
            6
        });
        assert_eq!(chain.away(|| co.enter()), Resume::Returned(6));
        assert_eq!(chain.take(), Some(5));
        drop(co);
        pool::exit_all_and_join();
    });
}

/// A coroutine entered, yielding twice, then returning (spin bound 1, the crate's default under loom).
#[test]
fn lifecycle_two_yields() {
    check("lifecycle_two_yields", Some(5), || lifecycle(None));
}

/// The same with spinning off: every wait parks at once, so every wake-up goes through the condition
/// variable.
#[test]
fn park_at_once() {
    check("park_at_once", Some(4), || lifecycle(Some(0)));
}

/// The same with a spin bound of 2: a waiter spins, may see the hand-off while spinning, or gives up and
/// parks while the waker races it.
#[test]
fn spin_then_park() {
    check("spin_then_park", Some(5), || lifecycle(Some(2)));
}

/// A chain main -> A -> B: B yields back to A, A yields back to main; entered again, B returns to A and A
/// returns to main. Three threads, one of which runs at a time.
#[test]
fn nested_chain() {
    check("nested_chain", Some(2), || {
        let chain = Chain::new();
        let ca = chain.clone();
        let mut a = Coroutine::new(move || {
            ca.begin();
            ca.log("A: start");
            let cb = ca.clone();
            let mut b = Coroutine::new(move || {
                cb.begin();
                cb.log("B: start");
                cb.put(10);
                cb.away(yield_now);
                cb.log("B: after yield");
                cb.end();
                11
            });
            assert_eq!(ca.away(|| b.enter()), Resume::Yielded);
            assert_eq!(ca.take(), Some(10));
            ca.put(20);
            ca.away(yield_now);
            ca.log("A: after yield");
            assert_eq!(ca.away(|| b.enter()), Resume::Returned(11));
            ca.log("A: B returned");
            drop(b);
            ca.end();
            21
        });
        chain.log("main: enter 1");
        assert_eq!(chain.away(|| a.enter()), Resume::Yielded);
        assert_eq!(chain.take(), Some(20));
        chain.log("main: enter 2");
        assert_eq!(chain.away(|| a.enter()), Resume::Returned(21));
        assert_eq!(
            chain.events(),
            [
                "main: enter 1",
                "A: start",
                "B: start",
                "main: enter 2",
                "A: after yield",
                "B: after yield",
                "A: B returned",
            ]
        );
        drop(a);
        pool::exit_all_and_join();
    });
}

/// Logs when dropped, as the running thread of the chain.
struct Guard(std::sync::Arc<Chain>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.begin();
        self.0.log("co: guard dropped");
        self.0.end();
    }
}

/// Dropping a suspended coroutine: the forced unwind runs the destructors on its stack, the body never
/// continues past its yield, the dropper waits for that, and the thread goes back to the pool.
#[test]
fn drop_suspended() {
    check("drop_suspended", Some(6), || {
        let chain = Chain::new();
        let c = chain.clone();
        let mut co = Coroutine::new(move || {
            let _guard = Guard(c.clone());
            c.begin();
            c.log("co: start");
            c.away(yield_now);
            // Not reached: the drop unwinds the coroutine from its yield.
            c.log("co: resumed after the drop");
            c.end();
        });
        chain.log("main: enter");
        assert_eq!(chain.away(|| co.enter()), Resume::Yielded);
        chain.log("main: drop");
        chain.away(|| drop(co));
        chain.log("main: dropped");
        assert_eq!(
            chain.events(),
            [
                "main: enter",
                "co: start",
                "main: drop",
                "co: guard dropped",
                "main: dropped",
            ]
        );
        pool::exit_all_and_join();
    });
}

/// A coroutine that was never entered is dropped: its body never runs, the values it captured are dropped,
/// and its reserved thread goes back to the pool.
#[test]
fn drop_unstarted() {
    check("drop_unstarted", None, || {
        let chain = Chain::new();
        let guard = Guard(chain.clone());
        let c = chain.clone();
        let co = Coroutine::new(move || {
            let _captured = &guard;
            c.log("co: ran");
        });
        chain.away(|| drop(co));
        assert_eq!(chain.events(), ["co: guard dropped"]);
        pool::exit_all_and_join();
    });
}

/// The payload of the model's planned panic; the panic hook stays quiet about it.
#[derive(Debug, PartialEq)]
struct Boom(u32);

/// Installs (once per process) a panic hook that does not print [`Boom`] panics, and prints every other
/// panic as before.
fn quiet_boom() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Boom>().is_none() {
                default(info);
            }
        }));
    });
}

/// A panic inside the coroutine reaches its enterer with the original payload, after a yield; the coroutine
/// has then finished and its thread is back in the pool.
#[test]
fn panic_reaches_enterer() {
    quiet_boom();
    check("panic_reaches_enterer", Some(6), || {
        let chain = Chain::new();
        let c = chain.clone();
        let mut co = Coroutine::new(move || {
            c.begin();
            c.log("co: start");
            c.away(yield_now);
            c.log("co: panics");
            c.end();
            panic::panic_any(Boom(7));
        });
        assert_eq!(chain.away(|| co.enter()), Resume::Yielded);
        chain.log("main: enter 2");
        chain.end();
        let result = panic::catch_unwind(AssertUnwindSafe(|| co.enter()));
        chain.begin();
        let payload = result.expect_err("the coroutine's panic reaches the enterer");
        assert_eq!(payload.downcast_ref::<Boom>(), Some(&Boom(7)));
        assert!(co.is_finished());
        assert_eq!(chain.events(), ["co: start", "main: enter 2", "co: panics"]);
        drop(co);
        pool::exit_all_and_join();
    });
}

/// A finished coroutine's thread takes the next coroutine: one thread, two coroutines, both run alone.
#[test]
fn pool_reuse() {
    check("pool_reuse", Some(6), || {
        let chain = Chain::new();
        for value in [1, 2] {
            let c = chain.clone();
            let mut co = Coroutine::new(move || {
                c.begin();
                c.put(value);
                c.end();
                value
            });
            assert_eq!(chain.away(|| co.enter()), Resume::Returned(value));
            assert_eq!(chain.take(), Some(value));
        }
        let stats = pool::stats();
        assert_eq!((stats.created, stats.reused), (1, 1));
        pool::exit_all_and_join();
        assert_eq!(pool::stats().exited, 1);
    });
}

/// An idle thread's timeout fires (from a thread of the model) while a new coroutine takes that thread.
/// Either the take wins (the timed-out thread finds itself taken and runs the coroutine) or the timeout
/// wins (the thread exits and the coroutine gets a new one); either way the coroutine runs once and no
/// thread is lost. Both outcomes must occur among the executions, or the model did not race them.
#[test]
fn pool_timeout_races_take() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static REUSED: AtomicUsize = AtomicUsize::new(0);
    static RESPAWNED: AtomicUsize = AtomicUsize::new(0);
    check("pool_timeout_races_take", Some(3), || {
        let chain = Chain::new();
        let c = chain.clone();
        let mut first = Coroutine::new(move || {
            c.begin();
            c.put(1);
            c.end();
        });
        assert_eq!(chain.away(|| first.enter()), Resume::Returned(()));
        assert_eq!(chain.take(), Some(1));
        drop(first);
        let timer = loom::thread::spawn(pool::expire_idle_timeouts);
        let c = chain.clone();
        let mut second = Coroutine::new(move || {
            c.begin();
            c.put(2);
            c.end();
        });
        assert_eq!(chain.away(|| second.enter()), Resume::Returned(()));
        assert_eq!(chain.take(), Some(2));
        drop(second);
        timer.join().unwrap();
        let stats = pool::stats();
        match (stats.created, stats.reused) {
            (1, 1) => REUSED.fetch_add(1, Ordering::Relaxed),
            (2, 0) => RESPAWNED.fetch_add(1, Ordering::Relaxed),
            other => panic!("(created, reused) = {other:?}"),
        };
        pool::exit_all_and_join();
        assert_eq!(pool::stats().exited, stats.created);
    });
    assert!(REUSED.load(Ordering::Relaxed) > 0, "the take never won");
    assert!(
        RESPAWNED.load(Ordering::Relaxed) > 0,
        "the timeout never won"
    );
}

/// The owner drops a suspended coroutine while another thread enters it through a handle (issue 13, item 1):
/// the drop never panics, whichever of them claims the coroutine first unwinds it (the owner's drop, or the
/// handle's enter at the coroutine's next yield), exactly once, and the body never runs past its yield after
/// the drop began. Both orders occur. Threads: the owner, the handle's enterer and the coroutine's.
#[test]
fn drop_races_a_handle_enter() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static HANDLE_UNWOUND: AtomicUsize = AtomicUsize::new(0);
    static OWNER_UNWOUND: AtomicUsize = AtomicUsize::new(0);
    // The handle's enter may find the coroutine finished: an expected panic, not printed.
    static QUIET: Once = Once::new();
    QUIET.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info.payload_as_str() != Some("entered a coroutine that has finished") {
                default(info);
            }
        }));
    });
    check("drop_races_a_handle_enter", Some(2), || {
        let drops = std::sync::Arc::new(AtomicUsize::new(0));
        let yields = std::sync::Arc::new(AtomicUsize::new(0));
        struct Count(std::sync::Arc<AtomicUsize>);
        impl Drop for Count {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let (guard, y) = (Count(drops.clone()), yields.clone());
        let mut co = Coroutine::new(move || {
            let _guard = guard;
            loop {
                y.fetch_add(1, Ordering::SeqCst);
                yield_now();
            }
        });
        assert_eq!(co.enter(), Resume::Yielded);
        let handle = co.handle();
        let enterer = loom::thread::spawn(move || {
            // One enter (it may come after the drop finished the coroutine: then it says so).
            match panic::catch_unwind(AssertUnwindSafe(|| handle.enter_if_inactive())) {
                Ok(_) => {}
                Err(e) => assert_eq!(
                    e.downcast_ref::<String>().map(String::as_str),
                    Some("entered a coroutine that has finished")
                ),
            }
            handle
        });
        drop(co);
        let handle = enterer.join().unwrap();
        assert!(handle.is_finished(), "the coroutine outlived its drop");
        assert_eq!(drops.load(Ordering::SeqCst), 1, "unwound exactly once");
        // At most one yield for the owner's enter and one for a handle's enter that came before the drop.
        assert!(yields.load(Ordering::SeqCst) <= 2);
        if yields.load(Ordering::SeqCst) == 2 {
            HANDLE_UNWOUND.fetch_add(1, Ordering::Relaxed);
        } else {
            OWNER_UNWOUND.fetch_add(1, Ordering::Relaxed);
        }
        pool::exit_all_and_join();
    });
    assert!(HANDLE_UNWOUND.load(Ordering::Relaxed) > 0);
    assert!(OWNER_UNWOUND.load(Ordering::Relaxed) > 0);
}
