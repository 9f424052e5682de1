//! What every model shares: the invariant checker ([`Chain`]) and the runner ([`check`]).

use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};
use std::time::Instant;

use std::sync::Arc;

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicUsize, Ordering};

/// Runs `model` under loom with the given preemption bound (`None`: exhaustive) and prints how many
/// executions it took and how long (visible with `--nocapture`; `ci/loom.sh` shows it).
///
/// `LOOM_MAX_PREEMPTIONS`, if set, overrides the bound (for a deeper run by hand, e.g. 100 for "none").
pub fn check<F>(name: &str, preemption_bound: Option<usize>, model: F)
where
    F: Fn() + Sync + Send + 'static,
{
    static EXECUTIONS: StdAtomicUsize = StdAtomicUsize::new(0);
    let start = Instant::now();
    let before = EXECUTIONS.load(StdOrdering::Relaxed);
    let mut builder = loom::model::Builder::new();
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        builder.preemption_bound = preemption_bound;
    }
    let preemption_bound = builder.preemption_bound;
    builder.check(move || {
        EXECUTIONS.fetch_add(1, StdOrdering::Relaxed);
        // These models check the pool too: they turn it on (under loom it starts off) and end with
        // `pool::exit_all_and_join()`.
        cothread::pool::set_max_idle(cothread::pool::DEFAULT_MAX_IDLE);
        model();
    });
    // Models run one at a time (`--test-threads=1` in ci/loom.sh), so the difference is this model's.
    let runs = EXECUTIONS.load(StdOrdering::Relaxed) - before;
    eprintln!(
        "loom model {name}: preemption bound {}, {runs} executions, {:.2} s",
        preemption_bound.map_or("none (exhaustive)".to_owned(), |b| b.to_string()),
        start.elapsed().as_secs_f64()
    );
}

/// The invariant checker of one caller chain, shared by the model's threads.
///
/// - `running` counts the threads of the chain that run right now. A thread calls [`Chain::begin`] when it
///   gets control (assert: nobody else runs) and [`Chain::end`] before it gives control away. The counter
///   is `Relaxed`, so it checks mutual exclusion without itself ordering anything.
/// - `log` and `slot` are plain cells that only the running thread touches. loom's `UnsafeCell` reports
///   any two accesses that are not ordered by happens-before, so every hand-off must order the previous
///   runner's writes before the next runner's reads: the hand-off itself is what makes these cells safe.
/// - `log` records the events (labels) in the order the runners made them; the model compares it with the only
///   order the semantics allow, so each hand-off shows up exactly once.
/// - `slot` carries a value across one hand-off: [`Chain::put`] requires it empty, [`Chain::take`]
///   requires it full, so a value passed is seen once, in order, and never lost or duplicated.
pub struct Chain {
    running: AtomicUsize,
    log: UnsafeCell<Vec<&'static str>>,
    slot: UnsafeCell<Option<u32>>,
}

// SAFETY: `log` and `slot` are accessed only by the one thread of the chain that runs (between its `begin`
// and `end`), and the coroutine hand-off orders those runs one after another. That claim is exactly what the
// models check: loom's `UnsafeCell` tracks every access and fails the model on two accesses that are not
// ordered by happens-before, instead of letting them race (and loom runs its threads one at a time on one OS
// thread anyway).
unsafe impl Sync for Chain {}

impl Chain {
    /// A chain whose current thread (the model's main thread) runs.
    ///
    /// Shared through a std `Arc`, not loom's: loom makes every reference-count change of its `Arc` a
    /// scheduling point, and the checker's own reference counts are not what the models verify.
    pub fn new() -> Arc<Chain> {
        Arc::new(Chain {
            running: AtomicUsize::new(1),
            log: UnsafeCell::new(Vec::new()),
            slot: UnsafeCell::new(None),
        })
    }

    /// This thread got control: nobody else of the chain may run.
    pub fn begin(&self) {
        let before = self.running.fetch_add(1, Ordering::Relaxed);
        assert_eq!(before, 0, "two threads of one caller chain run at once");
    }

    /// This thread gives control away.
    pub fn end(&self) {
        let before = self.running.fetch_sub(1, Ordering::Relaxed);
        assert_eq!(before, 1, "gave away control it did not have");
    }

    /// Records an event (only the running thread may).
    pub fn log(&self, event: &'static str) {
        self.log.with_mut(|log| {
            // SAFETY: only the running thread calls this; see the `Sync` impl.
            unsafe { (*log).push(event) }
        });
    }

    /// Leaves a value for whoever runs next (only the running thread may). The slot must be empty.
    pub fn put(&self, value: u32) {
        self.slot.with_mut(|slot| {
            // SAFETY: only the running thread calls this; see the `Sync` impl.
            let slot = unsafe { &mut *slot };
            assert_eq!(*slot, None, "a value handed over before was never taken");
            *slot = Some(value);
        });
    }

    /// Takes the value the previous runner left (only the running thread may).
    pub fn take(&self) -> Option<u32> {
        // SAFETY: only the running thread calls this; see the `Sync` impl.
        self.slot.with_mut(|slot| unsafe { (*slot).take() })
    }

    /// The events so far (only the running thread may read them).
    pub fn events(&self) -> Vec<&'static str> {
        // SAFETY: only the running thread calls this; see the `Sync` impl.
        self.log.with(|log| unsafe { (*log).clone() })
    }

    /// `f` gives control away and gets it back (an enter, a yield, a drop that resumes the coroutine).
    pub fn away<R>(&self, f: impl FnOnce() -> R) -> R {
        self.end();
        let r = f();
        self.begin();
        r
    }
}
