//! Misuse and faults: clear panics naming the mistake, panics reaching the enterer, forced unwind on drop,
//! creation errors, cross-thread use and thread-locals.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use cothread::{Backend, Builder, Coroutine, Resume, current, in_coroutine, yield_now};

use common::{DropFlag, coroutine, drop_flag, message};

on_each_backend!(
    entering_itself_panics_recursively,
    entering_a_caller_in_the_chain_panics,
    entering_a_finished_coroutine_panics,
    a_panic_reaches_the_enterer_with_its_payload,
    a_nested_panic_reaches_the_immediate_caller_first,
    dropping_a_suspended_coroutine_runs_its_destructors,
    dropping_an_unstarted_coroutine_drops_its_closure,
    dropping_nested_suspended_coroutines_unwinds_both,
    catching_the_forced_unwind_and_yielding_again_fails_loudly,
    a_panic_raised_during_the_forced_unwind_reaches_the_dropper,
    a_suspended_coroutine_dropped_while_its_owner_unwinds_is_unwound_too,
    builder_reports_an_impossible_thread_as_err,
    #[cfg(all(not(miri), target_pointer_width = "64"))]
    builder_reports_os_refusal_as_err,
);

#[test]
fn yield_outside_a_coroutine_panics() {
    let err = catch_unwind(yield_now).unwrap_err();
    assert_eq!(message(err), "yield_now() called outside a coroutine");
}

fn entering_itself_panics_recursively(backend: Backend) {
    let mut co = coroutine(backend, move || {
        let me = current().unwrap();
        let err = catch_unwind(AssertUnwindSafe(|| me.enter())).unwrap_err();
        message(err)
    });
    assert_eq!(
        co.enter().into_returned().unwrap(),
        "coroutine re-entered recursively"
    );
}

fn entering_a_caller_in_the_chain_panics(backend: Backend) {
    // A enters B; B tries to enter A, which is waiting for B.
    let mut a = coroutine(backend, move || {
        let a_ref = current().unwrap();
        let mut b = coroutine(backend, move || {
            let err = catch_unwind(AssertUnwindSafe(|| a_ref.enter())).unwrap_err();
            message(err)
        });
        b.enter().into_returned().unwrap()
    });
    assert_eq!(
        a.enter().into_returned().unwrap(),
        "coroutine re-entered recursively"
    );
    // Nothing was corrupted: a finished normally.
    assert!(a.is_finished());
}

fn entering_a_finished_coroutine_panics(backend: Backend) {
    let mut co = coroutine(backend, move || 5);
    assert_eq!(co.enter(), Resume::Returned(5));
    let err = catch_unwind(AssertUnwindSafe(|| co.enter())).unwrap_err();
    assert_eq!(message(err), "entered a coroutine that has finished");
    let h = co.handle();
    let err = catch_unwind(AssertUnwindSafe(|| h.enter())).unwrap_err();
    assert_eq!(message(err), "entered a coroutine that has finished");
}

#[derive(Debug, PartialEq)]
struct MyPanic(u32);

fn a_panic_reaches_the_enterer_with_its_payload(backend: Backend) {
    let mut co = coroutine(backend, move || {
        yield_now();
        std::panic::panic_any(MyPanic(17));
    });
    assert_eq!(co.enter(), Resume::Yielded);
    let err = catch_unwind(AssertUnwindSafe(|| co.enter())).unwrap_err();
    assert_eq!(err.downcast_ref::<MyPanic>(), Some(&MyPanic(17)));
    assert!(co.is_finished());
    // The coroutine has finished: entering again is the finished-misuse panic.
    let err = catch_unwind(AssertUnwindSafe(|| co.enter())).unwrap_err();
    assert_eq!(message(err), "entered a coroutine that has finished");
}

fn a_nested_panic_reaches_the_immediate_caller_first(backend: Backend) {
    let mut outer = coroutine(backend, move || {
        let mut inner = coroutine(backend, move || -> () { panic!("inner failed") });
        let err = catch_unwind(AssertUnwindSafe(|| inner.enter())).unwrap_err();
        format!("caught: {}", message(err))
    });
    assert_eq!(
        outer.enter().into_returned().unwrap(),
        "caught: inner failed"
    );
}

fn dropping_a_suspended_coroutine_runs_its_destructors(backend: Backend) {
    let dropped = Arc::new(AtomicBool::new(false));
    let after_yield = Arc::new(AtomicBool::new(false));
    let (d, a) = (dropped.clone(), after_yield.clone());
    let mut co = coroutine(backend, move || {
        let _guard = DropFlag(d);
        yield_now();
        a.store(true, Ordering::SeqCst);
    });
    assert_eq!(co.enter(), Resume::Yielded);
    assert!(!dropped.load(Ordering::SeqCst));
    let h = co.handle();
    drop(co);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the stack's destructors ran"
    );
    assert!(
        !after_yield.load(Ordering::SeqCst),
        "the body did not continue"
    );
    assert!(h.is_finished());
}

fn dropping_an_unstarted_coroutine_drops_its_closure(backend: Backend) {
    let dropped = Arc::new(AtomicBool::new(false));
    let ran = Arc::new(AtomicBool::new(false));
    let (guard, r) = (DropFlag(dropped.clone()), ran.clone());
    let co = coroutine(backend, move || {
        let _g = guard;
        r.store(true, Ordering::SeqCst);
    });
    drop(co);
    assert!(dropped.load(Ordering::SeqCst));
    assert!(!ran.load(Ordering::SeqCst));
}

fn dropping_nested_suspended_coroutines_unwinds_both(backend: Backend) {
    let drops = Arc::new(AtomicUsize::new(0));
    struct Count(Arc<AtomicUsize>);
    impl Drop for Count {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let d = drops.clone();
    let mut outer = coroutine(backend, move || {
        let _a = Count(d.clone());
        let d2 = d.clone();
        let mut inner = coroutine(backend, move || {
            let _b = Count(d2);
            yield_now();
        });
        assert_eq!(inner.enter(), Resume::Yielded);
        yield_now(); // suspended with `inner` suspended on its stack
    });
    assert_eq!(outer.enter(), Resume::Yielded);
    drop(outer);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

fn catching_the_forced_unwind_and_yielding_again_fails_loudly(backend: Backend) {
    let mut co = coroutine(backend, move || {
        let _ = catch_unwind(yield_now);
        yield_now(); // not allowed: the coroutine is being dropped
    });
    assert_eq!(co.enter(), Resume::Yielded);
    let err = catch_unwind(AssertUnwindSafe(move || drop(co))).unwrap_err();
    assert_eq!(
        message(err),
        "a coroutine being dropped caught its forced unwind and yielded again"
    );
}

fn a_panic_raised_during_the_forced_unwind_reaches_the_dropper(backend: Backend) {
    let mut co = coroutine(backend, move || {
        let caught = catch_unwind(yield_now);
        assert!(caught.is_err(), "the drop unwinds the yield");
        assert!(in_coroutine(), "the unwind runs inside the coroutine");
        panic!("raised while being dropped");
    });
    assert_eq!(co.enter(), Resume::Yielded);
    let err = catch_unwind(AssertUnwindSafe(move || drop(co))).unwrap_err();
    assert_eq!(message(err), "raised while being dropped");
}

fn a_suspended_coroutine_dropped_while_its_owner_unwinds_is_unwound_too(backend: Backend) {
    let (guard, dropped) = drop_flag();
    let owner = catch_unwind(move || {
        let mut co = coroutine(backend, move || {
            let _guard = guard;
            yield_now();
        });
        assert_eq!(co.enter(), Resume::Yielded);
        panic!("the owner panics");
    });
    assert_eq!(message(owner.unwrap_err()), "the owner panics");
    assert!(
        dropped.load(Ordering::SeqCst),
        "the stack's destructors ran"
    );
}

fn builder_reports_an_impossible_thread_as_err(backend: Backend) {
    // A name with a NUL byte is refused before any thread is made.
    let err = Builder::new()
        .backend(backend)
        .name("bad\0name")
        .spawn(|| ())
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

// Miri does not model thread creation failure from the OS (it has no real stack limits). 64-bit only: see
// `REFUSED_STACK_SIZE`.
#[cfg(all(not(miri), target_pointer_width = "64"))]
fn builder_reports_os_refusal_as_err(backend: Backend) {
    // The OS refuses the stack; nothing aborts.
    let result = Builder::new()
        .backend(backend)
        .stack_size(common::REFUSED_STACK_SIZE)
        .spawn(|| ());
    assert!(result.is_err(), "a 1 EiB stack should be refused");
    // And the crate still works afterwards.
    let mut co = coroutine(backend, move || 1);
    assert_eq!(co.enter(), Resume::Returned(1));
}

/// Thread backend: a started coroutine can move between threads. A native one stays on the thread that first
/// entered it (entering it elsewhere panics): see `tests/native.rs`.
#[test]
fn thread_backend_created_on_one_thread_entered_on_another() {
    let backend = Backend::Thread;
    let mut co = coroutine(backend, move || {
        yield_now();
        "moved"
    });
    assert_eq!(co.enter(), Resume::Yielded);
    let t = std::thread::spawn(move || co.enter());
    assert_eq!(t.join().unwrap(), Resume::Returned("moved"));
}

#[test]
fn coroutine_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Coroutine<String>>();
}

#[test]
fn thread_backend_a_handle_enters_from_another_thread() {
    let backend = Backend::Thread;
    let mut co = coroutine(backend, move || {
        yield_now();
        9
    });
    let h = co.handle();
    assert_eq!(
        std::thread::spawn(move || h.enter()).join().unwrap(),
        Resume::Yielded
    );
    assert_eq!(co.enter(), Resume::Returned(9));
}

thread_local! {
    static MARK: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Thread backend: a coroutine sees its own thread's thread-locals, not the enterer's. A native coroutine sees
/// the enterer's: see `thread_locals_are_the_enterers` in `tests/native.rs`.
#[test]
fn thread_backend_thread_locals_are_the_coroutines_own() {
    let backend = Backend::Thread;
    MARK.with(|m| m.set(1));
    let mut co = coroutine(backend, move || {
        let seen = MARK.with(|m| m.get());
        MARK.with(|m| m.set(99));
        (seen, std::thread::current().id())
    });
    let (seen, tid) = co.enter().into_returned().unwrap();
    assert_eq!(seen, 0, "the enterer's value is not visible inside");
    assert_ne!(tid, std::thread::current().id());
    assert_eq!(
        MARK.with(|m| m.get()),
        1,
        "the coroutine's write stays on its thread"
    );
}
