//! Faults around dropping a coroutine (issue 13): a drop racing a handle's enter on another thread, waits in
//! destructors that run while a coroutine is dropped, a coroutine suspended inside a destructor during its own
//! panic, and settings from the environment. Cases that used to abort the process run this test binary again
//! as a child process (selected by an environment variable) and check that it exited cleanly.
//!
//! The shared cases run on each backend the build can run (`on_each_backend!`, tests/common; a child runs its
//! case on the backend named by `BACKEND`); the drop race is the thread backend's only, the orphans the
//! native backend's.

#[cfg(not(miri))]
#[path = "common/child.rs"]
mod child;
mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cothread::channel::{self, SendError};
use cothread::{Backend, Builder, CoMutex, Resume, RunLoop, yield_now};

use common::{SpawnOn, coroutine, message};

on_each_backend!(
    #[cfg(not(miri))]
    a_yield_in_a_destructor_during_the_drop_returns_at_once,
    #[cfg(not(miri))]
    a_full_channel_send_in_a_destructor_during_the_drop_fails,
    #[cfg(not(miri))]
    a_contended_lock_in_a_destructor_during_the_drop_abandons_the_task,
    #[cfg(not(miri))]
    dropping_a_coroutine_suspended_in_its_own_panic_finishes_that_unwind,
    a_loop_dropped_on_another_thread_withdraws_its_tasks_waits,
);

/// Set in a child: which case it runs.
const CHILD: &str = "COTHREAD_DROP_FAULTS_CHILD";
/// Set in a child: the backend it runs its case on (`Backend`'s `Debug` name).
const BACKEND: &str = "COTHREAD_DROP_FAULTS_BACKEND";

/// Runs `case` on `backend` in a child process (this binary, test `child`) and returns its stderr; asserts a
/// clean exit.
#[cfg(not(miri))]
fn run_child(case: &str, backend: Backend, env: &[(&str, &str)]) -> String {
    let mut cmd = child::self_command(&["--exact", "child", "--nocapture", "--test-threads=1"]);
    cmd.env(CHILD, case)
        .env(BACKEND, format!("{backend:?}"))
        .envs(env.iter().copied());
    let out = child::run(cmd, None);
    assert!(
        out.status.is_some_and(|s| s.success()),
        "case {case} on {backend:?}: the child failed or hung ({:?}); stderr:\n{}",
        out.status,
        out.stderr
    );
    out.stderr
}

/// The child's part: does nothing unless `CHILD` is set.
#[test]
fn child() {
    let Ok(case) = std::env::var(CHILD) else {
        return;
    };
    let backend = match std::env::var(BACKEND).as_deref() {
        Ok("Thread") => Backend::Thread,
        #[cfg(cothread_native)]
        Ok("Native") => Backend::Native,
        other => panic!("no backend {other:?} in this build"),
    };
    match case.as_str() {
        "yield_in_unwind" => yield_in_a_destructor_during_the_drop(backend),
        "send_in_unwind" => full_channel_send_in_a_destructor_during_the_loop_drop(backend),
        "lock_in_unwind" => contended_lock_in_a_destructor_during_the_loop_drop(backend),
        "suspended_in_own_panic" => suspended_in_a_destructor_during_its_own_panic(backend),
        #[cfg(cothread_native)]
        "orphans" => orphans_go_back_to_their_home_thread(),
        "settings" => {
            // Reading them is what warns (once each).
            let _ = cothread::spin_limit();
            let _ = cothread::pool::max_idle();
            println!(
                "spin_limit={} max_idle={}",
                cothread::spin_limit(),
                cothread::pool::max_idle()
            );
        }
        other => panic!("unknown case {other}"),
    }
}

/// Counts the drops of its values.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Yields in its destructor, then counts that the destructor went on.
struct YieldOnDrop(Arc<AtomicUsize>);

impl Drop for YieldOnDrop {
    fn drop(&mut self) {
        yield_now();
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Issue 13, item 1: the owner drops a coroutine while another thread keeps entering it through a handle.
/// The drop never panics, the coroutine is unwound exactly once (by whichever enter comes next), and the body's
/// captures are all dropped.
#[test]
fn thread_backend_dropping_while_a_handle_enters_from_another_thread() {
    let rounds = if cfg!(miri) { 3 } else { 200 };
    for round in 0..rounds {
        let yields = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let guard = Counted(drops.clone());
        let count = yields.clone();
        let co = Builder::new()
            .backend(Backend::Thread)
            .spawn(move || {
                let _guard = guard;
                loop {
                    count.fetch_add(1, Ordering::SeqCst);
                    yield_now();
                }
            })
            .expect("coroutine");
        let handle = co.handle();
        let enterer = std::thread::spawn(move || {
            let mut enters = 0u32;
            while !handle.is_finished() {
                // The drop may finish it between the check and the enter.
                match catch_unwind(AssertUnwindSafe(|| handle.enter_if_inactive())) {
                    Ok(entered) => enters += u32::from(entered),
                    Err(e) => assert_eq!(message(e), "entered a coroutine that has finished"),
                }
            }
            enters
        });
        // Let the enterer get going (a few enters, more in later rounds), then drop while it enters.
        while yields.load(Ordering::SeqCst) < 1 + round % 8 {
            std::thread::yield_now();
        }
        drop(co);
        enterer.join().expect("the enterer");
        assert_eq!(drops.load(Ordering::SeqCst), 1, "unwound exactly once");
        assert_eq!(Arc::strong_count(&drops), 1, "the body's captures leaked");
    }
}

/// Issue 13, item 2: a destructor on the stack of a coroutine being dropped calls `yield_now`, which returns at
/// once (it cannot suspend: nobody would enter it again); the unwind goes on.
fn yield_in_a_destructor_during_the_drop(backend: Backend) {
    let done = Arc::new(AtomicUsize::new(0));
    let d = YieldOnDrop(done.clone());
    let mut co = coroutine(backend, move || {
        let _d = d;
        loop {
            yield_now();
        }
    });
    assert_eq!(co.enter(), Resume::Yielded);
    drop(co);
    assert_eq!(done.load(Ordering::SeqCst), 1);
}

#[cfg(not(miri))]
fn a_yield_in_a_destructor_during_the_drop_returns_at_once(backend: Backend) {
    run_child("yield_in_unwind", backend, &[]);
}

/// Issue 13, item 2: a loop is dropped while a task holds a value whose `Drop` sends into a full channel: the
/// send fails (the message comes back in the error) instead of waiting, and nothing aborts.
fn full_channel_send_in_a_destructor_during_the_loop_drop(backend: Backend) {
    struct FlushOnDrop(channel::Sender<u32>, Arc<AtomicUsize>);
    impl Drop for FlushOnDrop {
        fn drop(&mut self) {
            match self.0.send(7) {
                Err(SendError(7)) => self.1.fetch_add(1, Ordering::SeqCst),
                other => panic!("the send should fail with its message, got {other:?}"),
            };
        }
    }
    let (tx, rx) = channel::bounded(1);
    tx.try_send(1).expect("room for one");
    let failed = Arc::new(AtomicUsize::new(0));
    let mut rl = RunLoop::new();
    let flush = FlushOnDrop(tx, failed.clone());
    let (_keep, never) = channel::bounded::<()>(1);
    rl.spawn_on(backend, move || {
        let _flush = flush;
        let _ = never.recv(); // never: the sender stays alive
    });
    assert_eq!(rl.run_until_stalled(), 1);
    drop(rl);
    assert_eq!(failed.load(Ordering::SeqCst), 1);
    // The full channel still holds its one message, and nothing else arrived.
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1]);
}

#[cfg(not(miri))]
fn a_full_channel_send_in_a_destructor_during_the_drop_fails(backend: Backend) {
    run_child("send_in_unwind", backend, &[]);
}

/// Issue 13, item 2: a destructor waits for a contended `CoMutex` while its loop is dropped. The waiting task is
/// abandoned (its stack stays suspended for good), its wait withdrawn: the mutex is free afterwards.
fn contended_lock_in_a_destructor_during_the_loop_drop(backend: Backend) {
    struct LockOnDrop(Arc<CoMutex<u32>>, Arc<AtomicUsize>);
    impl Drop for LockOnDrop {
        fn drop(&mut self) {
            self.1.fetch_add(1, Ordering::SeqCst);
            *self.0.lock() += 1;
            unreachable!("the lock cannot be granted while the loop is dropped");
        }
    }
    let mutex = Arc::new(CoMutex::new(0));
    let tried = Arc::new(AtomicUsize::new(0));
    let (_tx, rx) = channel::bounded::<()>(1);
    let (_keep, never) = channel::bounded::<()>(1);
    let mut rl = RunLoop::new();
    let m = mutex.clone();
    // Spawned first, so dropped first (the loop drops its tasks in no promised order: either way the mutex
    // ends up free).
    let waiter = LockOnDrop(mutex.clone(), tried.clone());
    rl.spawn_on(backend, move || {
        let _w = waiter;
        let _ = never.recv();
    });
    rl.spawn_on(backend, move || {
        let _guard = m.lock();
        let _ = rx.recv(); // never: the sender stays alive
    });
    assert_eq!(rl.run_until_stalled(), 2);
    assert!(mutex.is_locked());
    drop(rl);
    assert_eq!(tried.load(Ordering::SeqCst), 1);
    assert!(!mutex.is_locked(), "a dead waiter keeps the mutex");
    assert!(mutex.try_lock().is_some());
}

#[cfg(not(miri))]
fn a_contended_lock_in_a_destructor_during_the_drop_abandons_the_task(backend: Backend) {
    run_child("lock_in_unwind", backend, &[]);
}

/// Issue 13, item 3: the body panics, a destructor yields during that unwind, and the coroutine is dropped
/// there: the unwind already under way finishes (the destructor returns from its yield and runs once), and
/// the original payload reaches the dropper.
fn suspended_in_a_destructor_during_its_own_panic(backend: Backend) {
    let done = Arc::new(AtomicUsize::new(0));
    let d = YieldOnDrop(done.clone());
    let mut co = coroutine(backend, move || {
        let _d = d;
        panic!("the body's own panic");
    });
    assert_eq!(co.enter(), Resume::Yielded);
    assert_eq!(done.load(Ordering::SeqCst), 0);
    let err = catch_unwind(AssertUnwindSafe(move || drop(co))).unwrap_err();
    assert_eq!(message(err), "the body's own panic");
    assert_eq!(done.load(Ordering::SeqCst), 1);
}

#[cfg(not(miri))]
fn dropping_a_coroutine_suspended_in_its_own_panic_finishes_that_unwind(backend: Backend) {
    run_child("suspended_in_own_panic", backend, &[]);
}

/// Under Miri (no child processes) the cases run in the test process itself.
#[test]
#[cfg(miri)]
fn drop_faults_in_process() {
    yield_in_a_destructor_during_the_drop(Backend::Thread);
    suspended_in_a_destructor_during_its_own_panic(Backend::Thread);
}

/// Issue 13, item 7: unusable values of `COTHREAD_SPIN_LIMIT` and `COTHREAD_MAX_IDLE` are reported once on
/// stderr, naming the variable and the value used.
#[test]
#[cfg(not(miri))]
fn unusable_settings_in_the_environment_are_reported() {
    for (value, spin, idle) in [
        ("abc", cothread::DEFAULT_SPIN_LIMIT.to_string(), None),
        ("-5", cothread::DEFAULT_SPIN_LIMIT.to_string(), None),
        ("99999999999", "1000000".to_owned(), Some("10000")),
    ] {
        let stderr = run_child(
            "settings",
            Backend::Thread,
            &[("COTHREAD_SPIN_LIMIT", value), ("COTHREAD_MAX_IDLE", value)],
        );
        let spin_line = format!("COTHREAD_SPIN_LIMIT={value:?}");
        let idle_line = format!("COTHREAD_MAX_IDLE={value:?}");
        assert_eq!(stderr.matches(&spin_line).count(), 1, "stderr:\n{stderr}");
        assert_eq!(stderr.matches(&idle_line).count(), 1, "stderr:\n{stderr}");
        assert!(
            stderr.contains(&format!("using {spin}")),
            "stderr:\n{stderr}"
        );
        if let Some(idle) = idle {
            assert!(
                stderr.contains(&format!("using {idle}")),
                "stderr:\n{stderr}"
            );
        }
    }
    // A good value passes silently.
    let stderr = run_child(
        "settings",
        Backend::Thread,
        &[("COTHREAD_SPIN_LIMIT", "64"), ("COTHREAD_MAX_IDLE", "4")],
    );
    assert!(!stderr.contains("COTHREAD_"), "stderr:\n{stderr}");
}

/// Issue 13, item 5: a loop whose tasks wait (for a contended `CoMutex`, in `recv`) is dropped on another
/// thread. On the native backend its tasks cannot be unwound there, so the drop withdraws their waits: the mutex
/// is not handed to a dead waiter, and a later message goes to a live receiver, not into a dead one's slot. On
/// the thread backend the tasks are unwound on the dropping thread, with the same outcome.
fn a_loop_dropped_on_another_thread_withdraws_its_tasks_waits(backend: Backend) {
    let mutex = Arc::new(CoMutex::new(0));
    let guard = mutex.try_lock().expect("free");
    let (tx, rx) = channel::bounded::<u32>(4);
    let live = rx.clone();
    let mut rl = RunLoop::new();
    let m = mutex.clone();
    rl.spawn_on(backend, move || *m.lock() += 1);
    rl.spawn_on(backend, move || rx.recv().ok());
    assert_eq!(rl.run_until_stalled(), 2);
    std::thread::spawn(move || drop(rl))
        .join()
        .expect("dropping thread");
    drop(guard);
    assert!(!mutex.is_locked(), "the mutex went to a dropped task");
    assert_eq!(*mutex.try_lock().expect("free"), 0);
    tx.send(5).expect("a receiver is alive");
    assert_eq!(live.try_recv(), Ok(5), "the message went to a dropped task");
}

/// Stacks in use by native coroutines: made, minus unmapped, minus idle in the pool.
#[cfg(cothread_native)]
fn live_native_stacks() -> u64 {
    let stats = cothread::pool::native_stats();
    stats.created - stats.exited - stats.idle as u64
}

/// Issue 13, item 6: suspended native coroutines dropped on another thread are unwound by their home thread,
/// at its next creation of a native coroutine, or when it exits: their destructors run there and their stacks
/// go back to the pool.
#[cfg(cothread_native)]
fn orphans_go_back_to_their_home_thread() {
    use std::sync::mpsc;
    const N: usize = 50;
    let before = live_native_stacks();
    // How the home thread gets back to cothread: it creates a coroutine (of either backend), runs a loop, or
    // exits.
    for how in ["create", "run_loop", "exit"] {
        let drops = Arc::new(AtomicUsize::new(0));
        let (to_dropper, suspended) = mpsc::channel::<cothread::Coroutine>();
        let (dropped_tx, dropped) = mpsc::channel::<()>();
        let d = drops.clone();
        let home = std::thread::spawn(move || {
            let home = std::thread::current().id();
            for _ in 0..N {
                let guard = Counted(d.clone());
                let mut co = Builder::new()
                    .backend(Backend::Native)
                    .spawn(move || {
                        let _guard = guard;
                        loop {
                            yield_now();
                            // Destructors of an orphan run on its home thread.
                            assert_eq!(std::thread::current().id(), home);
                        }
                    })
                    .expect("native coroutine");
                assert_eq!(co.enter(), Resume::Yielded);
                to_dropper.send(co).expect("send");
            }
            drop(to_dropper);
            dropped.recv().expect("dropped");
            // Nothing unwinds them before the home thread calls cothread again.
            assert_eq!(d.load(Ordering::SeqCst), 0);
            match how {
                "create" => {
                    let mut co = Builder::new()
                        .backend(Backend::Thread)
                        .spawn(|| ())
                        .expect("coroutine");
                    assert_eq!(d.load(Ordering::SeqCst), N);
                    assert_eq!(co.enter(), Resume::Returned(()));
                }
                "run_loop" => {
                    cothread::RunLoop::new().run();
                    assert_eq!(d.load(Ordering::SeqCst), N);
                }
                _ => {}
            }
        });
        let orphans: Vec<cothread::Coroutine> = suspended.iter().collect();
        assert_eq!(orphans.len(), N);
        drop(orphans);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "unwound on the wrong thread"
        );
        assert!(live_native_stacks() >= before + N as u64);
        dropped_tx.send(()).expect("signal");
        home.join().expect("home thread");
        assert_eq!(drops.load(Ordering::SeqCst), N, "{how}");
        assert!(
            live_native_stacks() <= before,
            "stacks still in use: {} (before: {before}), {how}",
            live_native_stacks()
        );
    }
}

#[test]
#[cfg(all(cothread_native, not(miri)))]
fn orphaned_native_coroutines_are_unwound_by_their_home_thread() {
    run_child("orphans", Backend::Native, &[]);
}
