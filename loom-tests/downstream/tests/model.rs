//! The loom model of [`Tally`]: plain `loom::model`, no cothread-specific call. Run with
//! `RUSTFLAGS="--cfg loom" cargo test --release`; add `--features planted-bug` to see loom catch the planted bug.
#![cfg(loom)]

use loom::sync::Arc;

use cothread::{Coroutine, Resume, RunLoop, yield_now};
use cothread_downstream_example::Tally;

/// A coroutine publishes while a reader on another thread races it; the suspended coroutine is then dropped.
#[test]
fn publish_races_a_reader() {
    let mut model = loom::model::Builder::new();
    // Bound the search: each hand-off between a coroutine and its enterer is several loom operations.
    model.preemption_bound = Some(2);
    model.check(|| {
        let tally = Arc::new(Tally::new(5));
        // A reader on another thread races the publication by a coroutine.
        let t = tally.clone();
        let reader = loom::thread::spawn(move || t.published());
        let t = tally.clone();
        let mut publisher = Coroutine::new(move || {
            t.publish();
            yield_now();
            unreachable!("dropped while suspended");
        });
        assert_eq!(publisher.enter(), Resume::Yielded);
        if let Some(total) = reader.join().unwrap() {
            assert_eq!(total, 5);
        }
        // Dropping the suspended coroutine unwinds it; its thread exits (no pool under loom).
        drop(publisher);
        assert_eq!(tally.published(), Some(5));
    });
}

/// A task on a run loop adds to the tally across a yield to the loop; the loop runs it to its end.
#[test]
fn tally_on_a_run_loop() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(2);
    model.check(|| {
        let tally = Arc::new(Tally::new(0));
        let mut rl = RunLoop::new();
        let t = tally.clone();
        let added = rl.spawn(move || {
            t.add(2);
            t.publish();
        });
        rl.run();
        assert!(added.is_finished());
        assert_eq!(tally.published(), Some(2));
    });
}

/// With cothread's `native` feature on (`--features native`), `--cfg loom` still builds, and loom checks the
/// thread backend: the native one is unavailable, and the default is the thread backend.
#[cfg(feature = "native")]
#[test]
fn native_is_unavailable_under_loom() {
    use cothread::{Backend, Builder};
    loom::model(|| {
        assert!(!Backend::Native.is_available());
        assert_eq!(Backend::default(), Backend::Thread);
        let err = Builder::new()
            .backend(Backend::Native)
            .spawn(|| ())
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
    });
}

/// Two tasks contend for the tally's lock across a yield to the loop: the second waits in the lock's queue
/// until the first unlocks, so no addition is lost; the second publishes the sum.
#[test]
fn two_tasks_contend() {
    let mut model = loom::model::Builder::new();
    // Bound 1: 5.6 s here; bound 2 took 180 s (see the README's "Checking your own code with loom").
    model.preemption_bound = Some(1);
    model.check(|| {
        let tally = Arc::new(Tally::new(0));
        let mut rl = RunLoop::new();
        let t = tally.clone();
        rl.spawn(move || t.add(1));
        let t = tally.clone();
        rl.spawn(move || {
            t.add(2);
            t.publish();
        });
        rl.run();
        assert_eq!(tally.published(), Some(3));
    });
}
