//! Models written as a downstream crate would write them: a plain `loom::model`, no cothread-specific call
//! (under loom the pool starts off, so no pool thread outlives its execution). The downstream example crate,
//! `downstream/`, has more.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};

use cothread::{Backend, Builder, Coroutine, Resume, yield_now};

/// Under loom the thread backend runs and is the default (`native`, if on, is unavailable: see
/// `downstream/tests/model.rs`).
#[test]
fn the_thread_backend_is_the_default() {
    loom::model(|| {
        assert!(Backend::Thread.is_available());
        assert_eq!(Backend::default(), Backend::Thread);
        let mut co = Builder::new().spawn(|| 1).unwrap();
        assert_eq!(co.enter(), Resume::Returned(1));
    });
}

/// Dropping a suspended coroutine while another loom thread, sharing an atomic with it, still runs.
///
/// This failed with a `PoisonError` from loom's own `Mutex::lock`, although no thread panicked while holding a
/// lock: loom runs all its threads on one OS thread, so while the coroutine's thread was preempted in the
/// middle of its forced unwind, std's panic count (`std::thread::panicking()`) read non-zero in every other loom
/// thread too; the dropper, which had taken a baton lock before, released it inside `Condvar::wait` "while
/// panicking", and the `std::sync::Mutex` inside loom's `Mutex` poisoned. The shim now releases such a lock only
/// once the unwind is over (`src/sync/mod.rs`).
#[test]
fn drop_suspended_beside_another_thread() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(2);
    model.check(|| {
        let a = Arc::new(AtomicUsize::new(0));
        let b = a.clone();
        let mut co = Coroutine::new(move || {
            b.store(1, Ordering::Release);
            yield_now();
        });
        let w = loom::thread::spawn(move || a.load(Ordering::Acquire));
        assert_eq!(co.enter(), Resume::Yielded);
        drop(co);
        w.join().unwrap();
    });
}
