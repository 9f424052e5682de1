//! Under `panic = "abort"` nothing can unwind, so dropping a suspended coroutine leaks it (its thread stays
//! parked, or its stack suspended, and its destructors never run) instead of aborting the process. This
//! program goes through that and a few other fault paths on both backends; `ci/panic-abort.sh` builds it with
//! `panic = "abort"` and checks that it gets to the end. Any abort fails the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use cothread::{Backend, Builder, CoMutex, Coroutine, Resume, RunLoop, channel, yield_now};

/// Small stacks: every leaked coroutine keeps its own (a thread, or a native stack) for good.
const STACK: usize = 64 << 10;

/// Counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn builder(backend: Backend) -> Builder {
    Builder::new().backend(backend).stack_size(STACK)
}

/// Create, enter (it yields), drop: `rounds` times. The suspended stacks are leaked, so their destructors never
/// run; the unstarted and finished ones along the way drop as usual.
fn drop_suspended(backend: Backend, rounds: usize) {
    let drops = Arc::new(AtomicUsize::new(0));
    for round in 0..rounds {
        // In the first rounds a suspended thread-backed coroutine spins long for its next enter, so it would
        // see any claim the drop made (what used to abort); later ones park soon, to keep the run cheap.
        cothread::set_spin_limit(if round < 300 {
            1 << 16
        } else {
            cothread::DEFAULT_SPIN_LIMIT
        });
        let guard = Counted(drops.clone());
        let mut co = builder(backend)
            .spawn(move || {
                let _guard = guard;
                loop {
                    yield_now();
                }
            })
            .expect("coroutine");
        assert_eq!(co.enter(), Resume::Yielded);
        drop(co);
    }
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "a leaked stack ran a destructor"
    );
}

/// Dropping a coroutine that never ran drops its body unrun; one that finished gives its value.
fn unstarted_and_finished(backend: Backend) {
    let drops = Arc::new(AtomicUsize::new(0));
    let guard = Counted(drops.clone());
    let co = builder(backend)
        .spawn(move || drop(guard))
        .expect("coroutine");
    drop(co);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the unrun body was not dropped"
    );
    let mut co = builder(backend)
        .spawn(|| {
            yield_now();
            7
        })
        .expect("coroutine");
    assert_eq!(co.enter(), Resume::Yielded);
    assert_eq!(co.enter(), Resume::Returned(7));
}

/// The owner drops a thread-backed coroutine while another thread runs it (entered through a handle): its
/// next yield gives control back to that enterer as if it had finished, and it is leaked; nothing aborts.
/// (Entering it again after that would panic, as for any finished coroutine, so the enterer stops there.)
fn drop_while_a_handle_runs_it(rounds: usize) {
    for _ in 0..rounds {
        let dropped = Arc::new(AtomicBool::new(false));
        let running = Arc::new(AtomicBool::new(false));
        let (d, r) = (dropped.clone(), running.clone());
        let co = builder(Backend::Thread)
            .spawn(move || {
                yield_now();
                r.store(true, Ordering::SeqCst);
                while !d.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                yield_now();
                unreachable!("a dropped coroutine went on past its yield");
            })
            .expect("coroutine");
        let handle = co.handle();
        let mut co = co;
        assert_eq!(co.enter(), Resume::Yielded);
        let enterer = std::thread::spawn(move || handle.enter());
        while !running.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        drop(co);
        dropped.store(true, Ordering::SeqCst);
        assert_eq!(enterer.join().expect("the enterer"), Resume::Returned(()));
    }
}

/// A loop is dropped while its tasks wait (on a channel, on a contended mutex): they are leaked, nothing
/// aborts, and their waits are withdrawn first: a mutex released later is not handed to a leaked task, and a
/// later message goes to a live receiver, not into a leaked one's slot.
fn loop_dropped_while_tasks_wait(backend: Backend) {
    let mutex = Arc::new(CoMutex::new(0));
    let (tx, rx) = channel::bounded::<u32>(1);
    let live = rx.clone();
    let other = Arc::new(CoMutex::new(0));
    let held = other.try_lock().expect("free");
    let (_keep, never) = channel::bounded::<()>(1);
    let mut rl = RunLoop::new();
    let m = mutex.clone();
    rl.spawn_with(builder(backend), move || {
        let _guard = m.lock();
        let _ = never.recv();
    })
    .expect("task");
    let m = mutex.clone();
    rl.spawn_with(builder(backend), move || *m.lock() += 1)
        .expect("task");
    rl.spawn_with(builder(backend), move || rx.recv().ok())
        .expect("task");
    let o = other.clone();
    rl.spawn_with(builder(backend), move || *o.lock() += 1)
        .expect("task");
    assert_eq!(rl.run_until_stalled(), 4);
    drop(rl);
    // The lock holder was leaked while holding the lock: under `panic = "abort"` its guard is never dropped,
    // so the mutex stays locked (as a leaked `MutexGuard` would keep a `std::sync::Mutex`).
    assert!(mutex.is_locked());
    drop(held);
    assert!(!other.is_locked(), "a mutex went to a leaked task");
    tx.send(5).expect("a receiver is alive");
    assert_eq!(
        live.try_recv().ok(),
        Some(5),
        "a message went to a leaked task"
    );
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(10_000, |n| n.parse().expect("rounds: a number"));
    for backend in [Backend::Thread, Backend::Native] {
        assert!(backend.is_available(), "{backend:?} must run here");
        let start = std::time::Instant::now();
        drop_suspended(backend, rounds);
        unstarted_and_finished(backend);
        loop_dropped_while_tasks_wait(backend);
        println!(
            "{backend:?}: {rounds} suspended coroutines dropped (leaked), other fault paths ok, {:.2} s",
            start.elapsed().as_secs_f64()
        );
    }
    drop_while_a_handle_runs_it(100);
    println!("Thread: 100 drops while a handle's enter runs the coroutine ok");
    let _ = Coroutine::<()>::new(|| ()); // an unstarted one dropped at exit
    println!("panic-abort: all fault paths passed");
}
