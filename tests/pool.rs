//! The pool of coroutine threads: reuse, bounds, shrinking, settings buckets, clean reuse after faults.
//!
//! These tests read and change the process-wide pool, so they run one at a time (a lock) and in a test binary
//! of their own. They check the thread backend's pool; with the `native` feature the default backend keeps
//! stacks instead, and these tests select the thread backend explicitly through `thread_builder()`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cothread::{Builder, Coroutine, Resume, current, pool, yield_now};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A builder for the thread backend, whatever the default backend is.
fn thread_builder() -> Builder {
    Builder::new().backend(cothread::Backend::Thread)
}

fn lifecycle() {
    let mut co = thread_builder().spawn(|| 3).unwrap();
    assert_eq!(co.enter(), Resume::Returned(3));
}

/// The process's thread count, from `/proc/self/status` (Linux only; `None` elsewhere and under Miri).
fn threads_now() -> Option<usize> {
    // Linux only by `cfg`, not by the file being there: under Wine a Windows program can read a
    // `/proc/self/status` too, but not its own (it says 1 thread while 300 coroutines hold a thread each).
    if cfg!(miri) || cfg!(not(target_os = "linux")) {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// Waits (bounded) until `done()`; returns whether it became true. Not a timing claim: threads exit
/// asynchronously, and this only gives them time to.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    done()
}

/// Test-harness threads and the like, on top of the idle pool.
const SLACK: usize = 8;

#[test]
fn sequential_lifecycles_reuse_one_thread() {
    let _s = serial();
    pool::set_max_idle(pool::DEFAULT_MAX_IDLE);
    lifecycle(); // warm: at least one idle thread
    let before = pool::stats();
    let n = if cfg!(miri) { 30 } else { 10_000 };
    for _ in 0..n {
        lifecycle();
    }
    let after = pool::stats();
    // A finished coroutine's thread rejoins the pool before the enterer gets control back, so every
    // sequential lifecycle finds it idle.
    assert_eq!(after.created - before.created, 0, "{before:?} -> {after:?}");
    assert_eq!(after.reused - before.reused, n);
    if let Some(t) = threads_now() {
        assert!(t <= pool::max_idle() + SLACK, "{t} threads");
    }
}

#[test]
fn a_burst_shrinks_back_to_max_idle() {
    let _s = serial();
    let max = 16;
    pool::set_max_idle(max);
    // The burst's threads stay idle for the next burst (tests/pool_burst.rs), until this timeout.
    let old = pool::idle_timeout();
    pool::set_idle_timeout(Duration::from_millis(100));
    let n = if cfg!(miri) { 20 } else { 300 };
    let mut cos: Vec<Coroutine> = (0..n)
        .map(|_| thread_builder().spawn(yield_now).unwrap())
        .collect();
    for co in &mut cos {
        assert_eq!(co.enter(), Resume::Yielded);
    }
    if let Some(t) = threads_now() {
        assert!(t >= n, "{n} suspended coroutines hold {n} threads, saw {t}");
    }
    for co in &mut cos {
        assert_eq!(co.enter(), Resume::Returned(()));
    }
    assert!(pool::stats().idle <= n);
    assert!(
        eventually(|| pool::stats().idle <= max),
        "surplus threads did not go: {:?}",
        pool::stats()
    );
    if threads_now().is_some() {
        assert!(
            eventually(|| threads_now().unwrap() <= max + SLACK),
            "surplus threads did not exit: {:?} threads",
            threads_now()
        );
    }
    pool::set_idle_timeout(old);
    pool::set_max_idle(pool::DEFAULT_MAX_IDLE);
}

#[test]
fn idle_threads_exit_after_the_timeout() {
    let _s = serial();
    pool::set_max_idle(pool::DEFAULT_MAX_IDLE);
    let old = pool::idle_timeout();
    pool::set_idle_timeout(Duration::from_millis(20));
    // Idle threads started their wait with the old timeout; these get the new one.
    let mut cos: Vec<Coroutine> = (0..4)
        .map(|_| thread_builder().spawn(yield_now).unwrap())
        .collect();
    for co in &mut cos {
        assert_eq!(co.enter(), Resume::Yielded);
    }
    for co in &mut cos {
        assert_eq!(co.enter(), Resume::Returned(()));
    }
    let exited = pool::stats().exited;
    // Threads that went idle before the change may still wait out the old timeout (5 s by default);
    // `eventually` allows for that.
    // A thread leaves the idle list before it counts itself exited: wait for both.
    assert!(
        eventually(|| pool::stats().idle == 0 && pool::stats().exited >= exited + 4),
        "idle threads remained: {:?}",
        pool::stats()
    );
    pool::set_idle_timeout(old);
    // The pool still works after shrinking to nothing.
    lifecycle();
}

#[test]
fn max_idle_zero_turns_pooling_off() {
    let _s = serial();
    pool::set_max_idle(0);
    assert_eq!(pool::stats().idle, 0);
    let before = pool::stats();
    for _ in 0..5 {
        lifecycle();
        let mut co = thread_builder()
            .spawn(|| {
                yield_now();
                current().is_some()
            })
            .unwrap();
        assert_eq!(co.enter(), Resume::Yielded);
        assert_eq!(co.enter(), Resume::Returned(true));
    }
    let after = pool::stats();
    assert_eq!(after.reused, before.reused);
    assert_eq!(after.created - before.created, 10);
    assert_eq!(after.idle, 0);
    pool::set_max_idle(pool::DEFAULT_MAX_IDLE);
}

#[test]
fn stack_size_and_name_get_threads_of_their_own() {
    let _s = serial();
    pool::set_max_idle(pool::DEFAULT_MAX_IDLE);
    lifecycle();
    let named = || {
        thread_builder()
            .name("pool-test-named")
            .stack_size(512 * 1024)
            .spawn(|| std::thread::current().name().map(str::to_owned))
            .unwrap()
    };
    let before = pool::stats();
    let mut a = named();
    assert_eq!(
        a.enter().into_returned().unwrap().as_deref(),
        Some("pool-test-named")
    );
    let mid = pool::stats();
    assert_eq!(
        mid.created - before.created,
        1,
        "no idle thread has these settings"
    );
    let mut b = named();
    assert_eq!(
        b.enter().into_returned().unwrap().as_deref(),
        Some("pool-test-named"),
        "a reused thread keeps its name"
    );
    let after = pool::stats();
    assert_eq!(
        after.created, mid.created,
        "the second one reuses the first's thread"
    );
    // An unnamed default coroutine does not get the named thread.
    let mut c = thread_builder()
        .spawn(|| std::thread::current().name().map(str::to_owned))
        .unwrap();
    assert_eq!(c.enter().into_returned().unwrap(), None);
}

#[test]
fn created_on_one_thread_finished_on_another_returns_to_the_pool() {
    let _s = serial();
    pool::set_max_idle(pool::DEFAULT_MAX_IDLE);
    let created_before = pool::stats().created;
    let mut co = thread_builder()
        .spawn(|| {
            let ran_on = std::thread::current().id();
            yield_now();
            ran_on
        })
        .unwrap();
    assert_eq!(co.enter(), Resume::Yielded);
    let h = co.handle();
    let r = std::thread::spawn(move || co.enter()).join().unwrap();
    let Resume::Returned(ran_on) = r else {
        panic!("the second enter did not finish the coroutine: {r:?}");
    };
    assert!(h.is_finished());
    // The pool hands out the thread that went idle last: the one that just finished. (Counting idle threads
    // instead failed under Wine, where others idle since earlier tests timed out meanwhile.)
    let mut next = thread_builder()
        .spawn(|| std::thread::current().id())
        .unwrap();
    assert_eq!(next.enter(), Resume::Returned(ran_on));
    assert!(pool::stats().created <= created_before + 1);
}

#[test]
fn a_thread_comes_back_clean_after_a_panic_or_a_drop() {
    let _s = serial();
    pool::set_max_idle(1);
    // Panicked.
    let mut p = thread_builder().spawn(|| -> () { panic!("boom") }).unwrap();
    assert!(catch_unwind(AssertUnwindSafe(|| p.enter())).is_err());
    // Dropped while suspended.
    let mut d = thread_builder().spawn(yield_now).unwrap();
    assert_eq!(d.enter(), Resume::Yielded);
    drop(d);
    let before = pool::stats();
    // The next coroutine reuses that thread, and sees nothing of the old ones: it is current, not
    // cancelled (it can yield and be resumed), and its own value comes back.
    let mut next = thread_builder()
        .spawn(|| {
            let me = current().unwrap();
            yield_now();
            me
        })
        .unwrap();
    let h = next.handle();
    assert_eq!(next.enter(), Resume::Yielded);
    assert_eq!(next.enter().into_returned(), Some(h));
    assert_eq!(pool::stats().reused - before.reused, 1);
    pool::set_max_idle(pool::DEFAULT_MAX_IDLE);
}

#[test]
fn thread_locals_set_by_user_code_carry_over_on_a_reused_thread() {
    // Documented behaviour of the thread backend: the pool does not reset user thread-locals.
    thread_local! {
        static LEFT_BEHIND: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    let _s = serial();
    pool::set_max_idle(pool::DEFAULT_MAX_IDLE);
    lifecycle();
    let mut first = thread_builder()
        .spawn(|| LEFT_BEHIND.with(|c| c.set(5)))
        .unwrap();
    assert_eq!(first.enter(), Resume::Returned(()));
    let mut second = thread_builder()
        .spawn(|| LEFT_BEHIND.with(|c| c.get()))
        .unwrap();
    assert_eq!(second.enter(), Resume::Returned(5));
}
