//! The native backend's pools: stacks (reuse, the bound, pooling off, each thread's hot stack, clean reuse) and the
//! reuse of finished coroutines' control blocks.
//!
//! The counters are process-wide, so these tests run one at a time (a lock) in a binary of their own, and
//! each does its work on a fresh thread that it joins: a thread's hot stack is unmapped when the thread exits,
//! so after the join the counters hold only what the test left in the shared pool.
// Miri cannot run the native backend's stack switch (inline assembly), so under Miri this file is empty.
#![cfg(all(cothread_native, not(miri)))]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

mod common;

use common::drop_flag;
use cothread::{Backend, Builder, Coroutine, Resume, current, pool, yield_now};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Empties the shared pool (whatever earlier tests left there) and sets the bound.
fn fresh_pool(max_idle: usize) {
    pool::set_max_idle(0);
    pool::set_max_idle(max_idle);
}

/// Runs `f` on a new thread and waits until that thread (its thread-locals included) is gone.
fn on_fresh_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().unwrap())
}

fn native() -> Builder {
    Builder::new().backend(Backend::Native)
}

fn lifecycle() {
    let mut co = native().spawn(|| 3).unwrap();
    assert_eq!(co.enter(), Resume::Returned(3));
}

#[test]
fn sequential_lifecycles_reuse_one_stack() {
    let _s = serial();
    fresh_pool(pool::DEFAULT_MAX_IDLE);
    on_fresh_thread(|| {
        lifecycle(); // this thread now has a hot stack
        let before = pool::native_stats();
        for _ in 0..1000 {
            lifecycle();
        }
        let after = pool::native_stats();
        assert_eq!(after.created, before.created, "{before:?} -> {after:?}");
        assert_eq!(after.reused - before.reused, 1000);
        assert_eq!(after.idle, before.idle);
    });
}

#[test]
fn a_threads_hot_stack_goes_when_the_thread_exits() {
    let _s = serial();
    fresh_pool(pool::DEFAULT_MAX_IDLE);
    let before = pool::native_stats();
    let during = on_fresh_thread(|| {
        lifecycle();
        pool::native_stats()
    });
    let after = pool::native_stats();
    assert_eq!(
        during.idle,
        before.idle + 1,
        "the thread keeps its last stack"
    );
    assert_eq!(after.idle, before.idle, "and unmaps it when it exits");
    assert_eq!(after.exited - during.exited, 1);
}

/// A burst's stacks stay idle for the next burst (the surplus beyond `max_idle`); setting the bound gives the
/// surplus back at once. The idle timeout's part is in tests/pool_burst.rs.
#[test]
fn the_bound_is_max_idle_plus_each_threads_hot_stack() {
    let _s = serial();
    fresh_pool(4);
    on_fresh_thread(|| {
        let mut cos: Vec<Coroutine> = (0..20)
            .map(|_| native().spawn(yield_now).unwrap())
            .collect();
        for co in &mut cos {
            assert_eq!(co.enter(), Resume::Yielded);
        }
        for co in &mut cos {
            assert_eq!(co.enter(), Resume::Returned(()));
        }
        assert_eq!(
            pool::native_stats().idle,
            0,
            "a finished coroutine keeps its stack until it is dropped"
        );
        drop(cos);
        assert_eq!(
            pool::native_stats().idle,
            20,
            "four kept, fifteen surplus, one hot"
        );
        pool::set_max_idle(10);
        assert_eq!(
            pool::native_stats().idle,
            10 + 1,
            "raising the bound keeps what fits for good and unmaps the rest at once"
        );
        pool::set_max_idle(4);
        assert_eq!(
            pool::native_stats().idle,
            4 + 1,
            "setting the bound unmaps the surplus at once: four shared, one hot"
        );
    });
    assert_eq!(pool::native_stats().idle, 4);
    let before = pool::native_stats();
    pool::set_max_idle(1);
    let after = pool::native_stats();
    assert_eq!(
        after.idle, 1,
        "lowering the bound unmaps the ones kept beyond it at once"
    );
    assert_eq!(after.exited - before.exited, 3);
    pool::set_max_idle(pool::DEFAULT_MAX_IDLE);
}

/// However large a burst, the shared pool keeps at most `BURST_CAP` of its stacks (`max_idle` being smaller).
#[test]
fn a_burst_beyond_the_cap_keeps_the_cap() {
    let _s = serial();
    fresh_pool(4);
    on_fresh_thread(|| {
        let n = pool::BURST_CAP + 20;
        let before = pool::native_stats();
        let mut cos: Vec<Coroutine> = (0..n)
            .map(|_| native().stack_size(16 << 10).spawn(yield_now).unwrap())
            .collect();
        for co in &mut cos {
            assert_eq!(co.enter(), Resume::Yielded);
        }
        for co in &mut cos {
            assert_eq!(co.enter(), Resume::Returned(()));
        }
        drop(cos);
        let after = pool::native_stats();
        assert_eq!(after.idle, pool::BURST_CAP + 1, "the cap shared, one hot");
        assert_eq!(after.exited - before.exited, 19);
    });
    pool::set_max_idle(pool::DEFAULT_MAX_IDLE);
}

#[test]
fn max_idle_zero_turns_pooling_off() {
    let _s = serial();
    fresh_pool(pool::DEFAULT_MAX_IDLE);
    on_fresh_thread(|| {
        lifecycle(); // a hot stack, and one more in the shared pool at least
        lifecycle();
        pool::set_max_idle(0);
        let before = pool::native_stats();
        assert_eq!(
            before.idle, 0,
            "switching pooling off unmaps the shared pool and our hot stack"
        );
        for _ in 0..5 {
            lifecycle();
            let mut co = native()
                .spawn(|| {
                    yield_now();
                    current().is_some()
                })
                .unwrap();
            assert_eq!(co.enter(), Resume::Yielded);
            assert_eq!(co.enter(), Resume::Returned(true));
        }
        let after = pool::native_stats();
        assert_eq!(after.reused, before.reused);
        assert_eq!(after.created - before.created, 10);
        assert_eq!(after.exited - before.exited, 10);
        assert_eq!(after.idle, 0);
    });
    pool::set_max_idle(pool::DEFAULT_MAX_IDLE);
}

/// A coroutine that cannot take the spare whole (a named one keeps its own name in its control block) still
/// takes its stack: the spare's control block is freed and its stack reused.
#[test]
fn a_named_coroutine_takes_the_spares_stack() {
    let _s = serial();
    fresh_pool(pool::DEFAULT_MAX_IDLE);
    on_fresh_thread(|| {
        lifecycle(); // this thread's spare now holds the stack
        let before = pool::native_stats();
        let mut named = native().name("named").spawn(|| current().unwrap()).unwrap();
        let me = named.enter().into_returned().unwrap();
        assert_eq!(me.name(), Some("named"));
        let after = pool::native_stats();
        assert_eq!(after.created, before.created, "{before:?} -> {after:?}");
        assert_eq!(after.reused - before.reused, 1);
        assert_eq!(
            after.idle,
            before.idle - 1,
            "the stack is in use until the coroutine is dropped"
        );
        drop(named);
        assert_eq!(pool::native_stats().idle, before.idle);
    });
}

#[test]
fn stack_sizes_are_pooled_apart() {
    let _s = serial();
    fresh_pool(pool::DEFAULT_MAX_IDLE);
    on_fresh_thread(|| {
        let sized = |size: usize| {
            let mut co = native().stack_size(size).spawn(|| 1).unwrap();
            assert_eq!(co.enter(), Resume::Returned(1));
        };
        sized(3 << 20);
        let before = pool::native_stats();
        sized(5 << 20); // no idle stack of that size
        let mid = pool::native_stats();
        assert_eq!(mid.created - before.created, 1);
        sized(3 << 20); // the first one's, from the shared pool (the hot stack is the 5 MiB one)
        sized(5 << 20);
        let after = pool::native_stats();
        assert_eq!(after.created, mid.created);
        assert_eq!(after.reused - mid.reused, 2);
    });
}

#[test]
fn a_stack_comes_back_clean_after_a_panic_or_a_drop() {
    let _s = serial();
    fresh_pool(1);
    on_fresh_thread(|| {
        let mut p = native().spawn(|| -> () { panic!("boom") }).unwrap();
        assert!(catch_unwind(AssertUnwindSafe(|| p.enter())).is_err());
        let mut d = native().spawn(yield_now).unwrap();
        assert_eq!(d.enter(), Resume::Yielded);
        drop(d);
        let before = pool::native_stats();
        // The next coroutine reuses a stack, and sees nothing of the old ones: it is current, not cancelled
        // (it can yield and be resumed), and its own value comes back.
        let mut next = native()
            .spawn(|| {
                let me = current().unwrap();
                yield_now();
                me
            })
            .unwrap();
        let h = next.handle();
        assert_eq!(next.enter(), Resume::Yielded);
        assert_eq!(next.enter().into_returned(), Some(h));
        assert_eq!(pool::native_stats().reused - before.reused, 1);
    });
    pool::set_max_idle(pool::DEFAULT_MAX_IDLE);
}

#[test]
fn a_chain_of_200_nested_coroutines_gives_its_stacks_back() {
    let _s = serial();
    fresh_pool(pool::DEFAULT_MAX_IDLE);
    fn chain(depth: usize) -> usize {
        if depth == 1 {
            return 1;
        }
        let mut child = native().spawn(move || chain(depth - 1)).unwrap();
        1 + child.enter().into_returned().unwrap()
    }
    on_fresh_thread(|| {
        assert_eq!(chain(200), 200);
        let stats = pool::native_stats();
        // 199 coroutines below the caller.
        assert_eq!(stats.idle, 199, "the whole chain, for the next one");
        let before = stats;
        assert_eq!(chain(200), 200);
        let after = pool::native_stats();
        assert_eq!(after.created, before.created, "no new stack");
        assert_eq!(after.reused - before.reused, 199);
        assert_eq!(after.idle, 199);
    });
}

/// A finished coroutine that its owner drops with nothing else referring to it is reused whole (its control
/// block) by the next one created on the thread. Nothing of the old one shows through, whichever way it ended:
/// each gets its own id and a fresh phase, and whatever the old one held is dropped when its owner drops it.
#[test]
fn a_reused_coroutine_starts_clean() {
    let _s = serial();
    on_fresh_thread(|| {
        let mut ids = std::collections::HashSet::new();
        for i in 0..200u32 {
            let co_id = |co: &Coroutine<u32>| co.handle().id();
            match i % 5 {
                0 => {
                    let mut co = native().spawn(move || i).unwrap();
                    assert!(!co.is_finished() && !co.handle().is_entered());
                    assert!(ids.insert(co_id(&co)));
                    assert_eq!(co.enter(), Resume::Returned(i));
                }
                1 => {
                    let mut co = native().spawn(|| -> u32 { panic!("boom") }).unwrap();
                    assert!(ids.insert(co_id(&co)));
                    assert!(catch_unwind(AssertUnwindSafe(|| co.enter())).is_err());
                    assert!(co.is_finished());
                }
                2 => {
                    let (held, dropped) = drop_flag();
                    let mut co = native()
                        .spawn(move || {
                            let _held = held;
                            yield_now();
                            0
                        })
                        .unwrap();
                    assert!(ids.insert(co_id(&co)));
                    assert_eq!(co.enter(), Resume::Yielded);
                    drop(co);
                    assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
                }
                3 => {
                    let (held, dropped) = drop_flag();
                    let co = native()
                        .spawn(move || {
                            drop(held);
                            0
                        })
                        .unwrap();
                    assert!(ids.insert(co_id(&co)));
                    drop(co);
                    assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
                }
                _ => {
                    // Finished by a handle: the value waits for the owner, who drops it untaken.
                    let (value, dropped) = drop_flag();
                    let co = native().spawn(move || value).unwrap();
                    assert!(ids.insert(co.handle().id()));
                    assert_eq!(co.handle().enter(), Resume::Returned(()));
                    assert!(!dropped.load(std::sync::atomic::Ordering::SeqCst));
                    drop(co);
                    assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
                }
            }
        }
        assert_eq!(ids.len(), 200);
    });
}

/// A coroutine that something still refers to is not reused: the handle keeps naming the finished one. Its
/// stack is, though: the handle keeps the control block only.
#[test]
fn a_coroutine_with_a_handle_left_is_not_reused() {
    let _s = serial();
    on_fresh_thread(|| {
        let mut old = native().spawn(|| 1).unwrap();
        let handle = old.handle();
        assert_eq!(old.enter(), Resume::Returned(1));
        let before = pool::native_stats();
        drop(old);
        let between = pool::native_stats();
        assert_eq!(
            between.idle,
            before.idle + 1,
            "the stack is back when the owner drops it"
        );
        let mut new = native().spawn(|| current().unwrap()).unwrap();
        assert_eq!(pool::native_stats().created, before.created, "and reused");
        let me = new.enter().into_returned().unwrap();
        assert_ne!(me, handle);
        assert_ne!(me.id(), handle.id());
        assert!(handle.is_finished());
        assert!(me.is_finished());
    });
}
