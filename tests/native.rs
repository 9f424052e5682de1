//! What is particular to the native backend (`--features native`): it is the default, it runs on the thread
//! that enters it (thread-locals included), it stays on the thread that first entered it, it mixes with the
//! thread backend in one caller chain. Its stack pool: `tests/native_pool.rs`. The behaviour both backends
//! share is tested in the other test files, on each backend (`on_each_backend!`, tests/common).
//!
//! Miri cannot run the native backend (its stack switch is inline assembly), loom does not model it, and some
//! targets have none (`Backend::is_available`): there only the test that says so runs.
#![cfg(feature = "native")]

use cothread::{Backend, Builder};

fn native() -> Builder {
    Builder::new().backend(Backend::Native)
}

#[cfg(any(miri, not(cothread_native)))]
#[test]
fn where_native_is_unavailable_its_coroutines_fail_to_spawn() {
    assert!(!Backend::Native.is_available());
    assert_eq!(Backend::default(), Backend::Thread);
    let err = native().spawn(|| ()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
    // The thread backend still runs coroutines (where std has threads).
    if Backend::Thread.is_available() {
        let mut co = Builder::new().spawn(|| 5).unwrap();
        assert_eq!(co.enter().into_returned(), Some(5));
    }
}

#[cfg(all(cothread_native, not(miri)))]
mod common;

#[cfg(all(cothread_native, not(miri)))]
mod native_backend {
    use super::*;

    use std::cell::Cell;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::Arc;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use cothread::{Coroutine, CoroutineRef, Resume, current, yield_now};

    use super::common::{DropFlag, message};

    const OTHER_THREAD: &str = "entered a native coroutine on a thread other than the one it runs on (native coroutines stay on the thread that first entered them)";

    fn thread() -> Builder {
        Builder::new().backend(Backend::Thread)
    }

    #[test]
    fn native_is_the_default_and_runs_on_the_enterers_thread() {
        assert_eq!(Backend::default(), Backend::Native);
        let me = std::thread::current().id();
        let mut co = Coroutine::new(|| {
            let inside = std::thread::current().id();
            yield_now();
            (inside, std::thread::current().id())
        });
        assert_eq!(co.enter(), Resume::Yielded);
        assert_eq!(co.enter().into_returned(), Some((me, me)));
    }

    thread_local! {
        static MARK: Cell<u32> = const { Cell::new(0) };
    }

    /// The native backend's expectation for thread-locals (the thread backend's is in `tests/faults.rs`,
    /// `thread_locals_are_the_coroutines_own`): a coroutine sees and changes the enterer's.
    #[test]
    fn thread_locals_are_the_enterers() {
        MARK.with(|m| m.set(1));
        let mut co = native()
            .spawn(|| {
                let seen = MARK.with(|m| m.get());
                MARK.with(|m| m.set(99));
                yield_now();
                (seen, MARK.with(|m| m.get()))
            })
            .unwrap();
        assert_eq!(co.enter(), Resume::Yielded);
        assert_eq!(
            MARK.with(|m| m.get()),
            99,
            "the coroutine wrote the enterer's"
        );
        MARK.with(|m| m.set(7));
        assert_eq!(
            co.enter(),
            Resume::Returned((1, 7)),
            "the enterer's value is visible inside"
        );
        // The thread backend in the same build still has thread-locals of its own.
        let mut t = thread().spawn(|| MARK.with(|m| m.get())).unwrap();
        assert_eq!(t.enter(), Resume::Returned(0));
    }

    #[test]
    fn yield_from_deep_ordinary_calls_and_unwind_from_there() {
        fn down(n: u32, log: &Mutex<Vec<u32>>, _guard: &DropFlag) -> u32 {
            if n == 0 {
                yield_now();
                log.lock().unwrap().push(0);
                return 0;
            }
            let r = down(n - 1, log, _guard);
            log.lock().unwrap().push(n);
            r + n
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        let dropped = Arc::new(AtomicBool::new(false));
        let (l, d) = (log.clone(), dropped.clone());
        let mut co = Coroutine::new(move || down(50, &l, &DropFlag(d)));
        assert_eq!(co.enter(), Resume::Yielded);
        assert_eq!(co.enter(), Resume::Returned((1..=50).sum()));
        assert_eq!(log.lock().unwrap().len(), 51);
        assert!(dropped.load(Ordering::SeqCst));

        // Dropped while suspended 50 calls deep: the unwind runs the destructor at the bottom.
        let dropped = Arc::new(AtomicBool::new(false));
        let (l, d) = (log.clone(), dropped.clone());
        let mut co = Coroutine::new(move || down(50, &l, &DropFlag(d)));
        assert_eq!(co.enter(), Resume::Yielded);
        drop(co);
        assert!(dropped.load(Ordering::SeqCst));
        assert_eq!(log.lock().unwrap().len(), 51, "nothing ran after the yield");
    }

    #[test]
    fn a_coroutine_can_be_started_on_another_thread_than_its_creator() {
        let co = native()
            .spawn(|| {
                let inside = std::thread::current().id();
                yield_now();
                inside
            })
            .unwrap();
        let (outside, inside) = std::thread::spawn(move || {
            let mut co = co;
            assert_eq!(co.enter(), Resume::Yielded);
            (
                std::thread::current().id(),
                co.enter().into_returned().unwrap(),
            )
        })
        .join()
        .unwrap();
        assert_eq!(inside, outside);
        assert_ne!(inside, std::thread::current().id());
    }

    #[test]
    fn a_handle_that_started_it_elsewhere_binds_it_there_for_good() {
        // Started through a handle on another thread, which then drops the handle: the owner is alone again,
        // but the coroutine stays bound to that thread.
        let mut co = native()
            .spawn(|| {
                yield_now();
                1
            })
            .unwrap();
        let h = co.handle();
        std::thread::spawn(move || assert_eq!(h.enter(), Resume::Yielded))
            .join()
            .unwrap();
        let err = catch_unwind(AssertUnwindSafe(|| co.enter())).unwrap_err();
        assert_eq!(message(err), OTHER_THREAD);
    }

    #[test]
    fn coroutine_stays_send_and_handles_send_sync() {
        fn assert_send<T: Send>() {}
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send::<Coroutine<String>>();
        assert_send_sync::<CoroutineRef>();
    }

    #[test]
    fn entering_from_another_thread_panics_and_switches_nothing() {
        let mut co = Coroutine::new(|| {
            yield_now();
            "home"
        });
        let h = co.handle();
        assert_eq!(co.enter(), Resume::Yielded);
        // Through a handle, from another thread: a clear panic there; the coroutine is untouched.
        let h2 = h.clone();
        let err = std::thread::spawn(move || h2.enter()).join().unwrap_err();
        assert_eq!(message(err), OTHER_THREAD);
        let h2 = h.clone();
        let err = std::thread::spawn(move || h2.enter_if_inactive())
            .join()
            .unwrap_err();
        assert_eq!(message(err), OTHER_THREAD);
        assert!(!h.is_entered());
        // The owner moved to another thread: the same panic; moving it back, it still works at home.
        let (co, err) = std::thread::spawn(move || {
            let err = catch_unwind(AssertUnwindSafe(|| co.enter())).unwrap_err();
            (co, message(err))
        })
        .join()
        .unwrap();
        assert_eq!(err, OTHER_THREAD);
        let mut co = co;
        assert_eq!(co.enter(), Resume::Returned("home"));
        // Once finished, another thread gets the finished-misuse panic, as on the thread backend.
        let h2 = h.clone();
        let err = std::thread::spawn(move || h2.enter()).join().unwrap_err();
        assert_eq!(message(err), "entered a coroutine that has finished");
        assert!(std::thread::spawn(move || h.is_finished()).join().unwrap());
    }

    #[test]
    fn while_running_it_reads_as_entered_from_another_thread() {
        let (tx, rx) = std::sync::mpsc::channel::<CoroutineRef>();
        let (back_tx, back_rx) = std::sync::mpsc::channel::<(bool, bool)>();
        let watcher = std::thread::spawn(move || {
            let h = rx.recv().unwrap();
            // Entering a running coroutine from elsewhere is refused as on the thread backend: not entered
            // (enter_if_inactive), "re-entered recursively" (enter).
            let inactive = h.enter_if_inactive();
            let reentered = catch_unwind(AssertUnwindSafe(|| h.enter()))
                .map_err(message)
                .unwrap_err()
                == "coroutine re-entered recursively";
            back_tx.send((inactive, reentered)).unwrap();
        });
        let mut co = Coroutine::new(move || {
            tx.send(current().unwrap()).unwrap();
            back_rx.recv().unwrap()
        });
        assert_eq!(co.enter().into_returned(), Some((false, true)));
        watcher.join().unwrap();
    }

    #[test]
    fn dropping_a_suspended_coroutine_on_another_thread_leaks_it_without_running_it() {
        let dropped = Arc::new(AtomicBool::new(false));
        let resumed = Arc::new(AtomicBool::new(false));
        let (d, r) = (dropped.clone(), resumed.clone());
        let mut co = Coroutine::new(move || {
            let _guard = DropFlag(d);
            yield_now();
            r.store(true, Ordering::SeqCst);
        });
        assert_eq!(co.enter(), Resume::Yielded);
        let h = co.handle();
        std::thread::spawn(move || drop(co)).join().unwrap();
        assert!(
            !dropped.load(Ordering::SeqCst),
            "its stack was not unwound elsewhere"
        );
        assert!(!resumed.load(Ordering::SeqCst));
        assert!(!h.is_finished());
        // Not cancelled either: at home, a handle can still finish it, and its destructors then run.
        assert_eq!(h.enter(), Resume::Returned(()));
        assert!(dropped.load(Ordering::SeqCst) && resumed.load(Ordering::SeqCst));
    }

    #[test]
    fn an_unstarted_coroutine_can_be_dropped_anywhere() {
        let dropped = Arc::new(AtomicBool::new(false));
        let guard = DropFlag(dropped.clone());
        let co = Coroutine::new(move || drop(guard));
        std::thread::spawn(move || drop(co)).join().unwrap();
        assert!(dropped.load(Ordering::SeqCst));
    }

    #[test]
    fn mixed_chains_native_and_thread() {
        // main -> native A -> thread T -> native B; B yields to T, T to A, A to main; then all finish.
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let mut a = native()
            .spawn(move || {
                let a_ref = current().unwrap();
                let a_in_t = a_ref.clone();
                let la = l.clone();
                let mut t = thread()
                    .spawn(move || {
                        let t_ref = current().unwrap();
                        let lt = la.clone();
                        let mut b = native()
                            .spawn(move || {
                                lt.lock().unwrap().push("b1");
                                yield_now();
                                lt.lock().unwrap().push("b2");
                                current().unwrap()
                            })
                            .unwrap();
                        let b_ref = b.handle();
                        assert_eq!(b.enter(), Resume::Yielded);
                        la.lock().unwrap().push("t1");
                        // T's thread runs B; A (a native coroutine of main's thread, in the chain) is refused.
                        let err = catch_unwind(AssertUnwindSafe(|| a_in_t.enter())).unwrap_err();
                        assert_eq!(message(err), "coroutine re-entered recursively");
                        yield_now();
                        assert_eq!(b.enter().into_returned(), Some(b_ref));
                        la.lock().unwrap().push("t2");
                        assert_eq!(current(), Some(t_ref));
                    })
                    .unwrap();
                assert_eq!(t.enter(), Resume::Yielded);
                l.lock().unwrap().push("a1");
                yield_now();
                assert_eq!(t.enter(), Resume::Returned(()));
                l.lock().unwrap().push("a2");
                assert_eq!(current(), Some(a_ref));
            })
            .unwrap();
        assert_eq!(a.enter(), Resume::Yielded);
        log.lock().unwrap().push("main");
        assert_eq!(a.enter(), Resume::Returned(()));
        assert_eq!(
            *log.lock().unwrap(),
            ["b1", "t1", "a1", "main", "b2", "t2", "a2"]
        );
    }

    #[test]
    fn a_native_coroutine_started_on_a_pool_thread_stays_there() {
        // A thread-backend coroutine starts a native one and hands it out: the native one belongs to the pool
        // thread, so main cannot enter it.
        let mut t = thread()
            .spawn(|| {
                let mut n = native()
                    .spawn(|| {
                        yield_now();
                        1
                    })
                    .unwrap();
                assert_eq!(n.enter(), Resume::Yielded);
                n
            })
            .unwrap();
        let mut n = t.enter().into_returned().unwrap();
        let err = catch_unwind(AssertUnwindSafe(|| n.enter())).unwrap_err();
        assert_eq!(message(err), OTHER_THREAD);
    }

    #[test]
    fn owner_dropped_from_inside_unwinds_at_the_next_yield() {
        let slot: Arc<Mutex<Option<Coroutine>>> = Arc::new(Mutex::new(None));
        let dropped = Arc::new(AtomicBool::new(false));
        let (s, d) = (slot.clone(), dropped.clone());
        let co = Coroutine::new(move || {
            let _guard = DropFlag(d);
            drop(s.lock().unwrap().take()); // our own owner: the coroutine is running, so it is only cancelled
            yield_now(); // unwinds from here
            unreachable!("a cancelled coroutine does not come back from yield_now");
        });
        let h = co.handle();
        *slot.lock().unwrap() = Some(co);
        assert_eq!(h.enter(), Resume::Returned(()));
        assert!(dropped.load(Ordering::SeqCst));
        assert!(h.is_finished());
    }

    #[test]
    fn backtraces_cross_the_switch() {
        #[inline(never)]
        fn enterer_frame_marker(co: &mut Coroutine<String>) -> String {
            co.enter().into_returned().unwrap()
        }
        let mut co = Coroutine::new(|| std::backtrace::Backtrace::force_capture().to_string());
        let trace = enterer_frame_marker(&mut co);
        // Symbol names need debug info; the test profile has it.
        assert!(
            trace.contains("enterer_frame_marker"),
            "the coroutine's backtrace reaches the enterer's frames:\n{trace}"
        );
    }

    #[test]
    fn spawn_errors_instead_of_aborting() {
        let err = native().stack_size(usize::MAX).spawn(|| ()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::OutOfMemory);
        #[cfg(target_pointer_width = "64")]
        assert!(
            native()
                .stack_size(common::REFUSED_STACK_SIZE)
                .spawn(|| ())
                .is_err()
        );
        let mut co = native().spawn(|| 1).unwrap();
        assert_eq!(co.enter(), Resume::Returned(1));
    }

    /// Recurses until about `bytes` of stack are in use (measured by addresses); returns the depth reached.
    fn use_stack(bytes: usize) -> usize {
        #[inline(never)]
        fn down(top: usize, bytes: usize) -> usize {
            let pad = std::hint::black_box([0u8; 512]);
            let here = pad.as_ptr() as usize;
            if top - here >= bytes {
                return 0;
            }
            1 + down(top, bytes) + pad[0] as usize
        }
        let top = 0u8;
        down(std::hint::black_box(&top) as *const u8 as usize, bytes)
    }

    #[test]
    fn stack_size_is_honoured() {
        // 1 MiB asked, about 900 KiB used: fits (the default is 2 MiB, see the overflow tests for too much).
        let mut co = native()
            .stack_size(1 << 20)
            .spawn(|| use_stack(900 << 10))
            .unwrap();
        assert!(co.enter().into_returned().is_some());
        let mut big = native()
            .stack_size(64 << 20)
            .spawn(|| use_stack(60 << 20))
            .unwrap();
        assert!(big.enter().into_returned().is_some());
    }
}
