//! The pools follow demand: a burst of coroutines (or a deep chain) leaves its threads or stacks idle for the
//! next one, and what stays unused for the idle timeout goes, back to the bound kept at rest (`max_idle`).
//!
//! The pools and their settings are process-wide, so these cases run one at a time (a lock) in a binary of
//! their own.

use std::sync::Mutex;
use std::time::{Duration, Instant};

mod common;

use common::coroutine;
use cothread::{Backend, Coroutine, Resume, pool, yield_now};

on_each_backend!(
    #[cfg_attr(
        miri,
        ignore = "idle timeouts against Miri's slow clock; tests/pool.rs covers the thread pool's timeout"
    )]
    a_burst_is_kept_for_the_next_and_given_back_after_the_idle_timeout,
    a_repeated_deep_chain_takes_no_new_thread_or_stack,
);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The bound kept at rest in these tests.
const MAX_IDLE: usize = 8;

fn stats(backend: Backend) -> pool::PoolStats {
    match backend {
        #[cfg(cothread_native)]
        Backend::Native => pool::native_stats(),
        _ => pool::stats(),
    }
}

/// Idle stacks or threads beyond the pool's own: the native backend keeps this thread's last stack (its hot
/// stack) besides the shared pool.
fn beside_the_pool(backend: Backend) -> usize {
    usize::from(backend != Backend::Thread)
}

/// `n` coroutines alive at once (each suspended), then all finished and dropped.
fn burst(backend: Backend, n: usize) {
    let mut cos: Vec<Coroutine> = (0..n).map(|_| coroutine(backend, yield_now)).collect();
    for co in &mut cos {
        assert_eq!(co.enter(), Resume::Yielded);
    }
    for co in &mut cos {
        assert_eq!(co.enter(), Resume::Returned(()));
    }
}

/// A chain `depth` coroutines deep: each level creates and enters the next.
fn chain(backend: Backend, depth: usize) -> usize {
    if depth == 0 {
        return 0;
    }
    let mut child = coroutine(backend, move || chain(backend, depth - 1));
    1 + child.enter().into_returned().unwrap()
}

/// Empties the pools (whatever earlier cases left) and sets the bound and the idle timeout.
fn fresh_pools(timeout: Duration) {
    pool::set_max_idle(0);
    pool::set_max_idle(MAX_IDLE);
    pool::set_idle_timeout(timeout);
}

fn a_burst_is_kept_for_the_next_and_given_back_after_the_idle_timeout(backend: Backend) {
    let _s = serial();
    // Long enough that the first burst's threads are still idle when the second takes them, on a loaded
    // machine too (that takes milliseconds); short enough for the test. (Idle threads keep the timeout they
    // started waiting with.)
    fresh_pools(Duration::from_secs(2));
    let n = 300;
    let before = stats(backend);
    burst(backend, n);
    let first = stats(backend);
    assert!(
        first.created - before.created >= (n - MAX_IDLE - 1) as u64,
        "the first burst needs new ones: {before:?} -> {first:?}"
    );
    assert!(
        first.idle > MAX_IDLE + beside_the_pool(backend),
        "the burst's are kept beyond max_idle: {first:?}"
    );
    burst(backend, n);
    let second = stats(backend);
    // Native stacks expire only when a stack comes back, which the second burst's creation never does; a
    // thread could time out only if this thread stalled for seconds: allow a handful for that.
    assert!(
        second.created - first.created <= (n / 20) as u64,
        "the second burst takes the first's: {first:?} -> {second:?}"
    );
    assert!(second.reused - first.reused >= n as u64);

    // Unused for the idle timeout, they go. Threads exit by themselves; native stacks go lazily, when a stack
    // next comes back to the shared pool, which a nested coroutine does.
    let at_rest = MAX_IDLE + beside_the_pool(backend);
    let deadline = Instant::now() + Duration::from_secs(30);
    while stats(backend).idle > at_rest && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(chain(backend, 2), 2);
    }
    let after = stats(backend);
    assert!(
        after.idle <= at_rest,
        "back to the bound kept at rest ({at_rest}): {after:?}"
    );
    assert!(after.exited - second.exited >= (n - at_rest) as u64);
    pool::set_idle_timeout(pool::DEFAULT_IDLE_TIMEOUT);
    pool::set_max_idle(pool::DEFAULT_MAX_IDLE);
}

fn a_repeated_deep_chain_takes_no_new_thread_or_stack(backend: Backend) {
    let _s = serial();
    fresh_pools(pool::DEFAULT_IDLE_TIMEOUT);
    let depth = if cfg!(miri) { 20 } else { 300 };
    assert_eq!(chain(backend, depth), depth);
    let first = stats(backend);
    for _ in 0..3 {
        assert_eq!(chain(backend, depth), depth);
    }
    let after = stats(backend);
    assert_eq!(after.created, first.created, "{first:?} -> {after:?}");
    assert_eq!(after.reused - first.reused, 3 * depth as u64);
    pool::set_max_idle(pool::DEFAULT_MAX_IDLE);
}
