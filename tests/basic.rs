//! QEMU's `/basic/*` cases (tests/unit/test-coroutine.c), on each backend the build can run (`on_each_backend!`).

mod common;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use cothread::{Backend, Coroutine, CoroutineRef, Resume, current, in_coroutine, yield_now};

use common::coroutine;

on_each_backend!(
    basic_lifecycle,
    basic_yield,
    basic_nesting_128,
    nesting_1000_deep,
    nested_yield_goes_to_the_immediate_caller,
    basic_order,
    basic_self,
    basic_in_coroutine,
    basic_entered,
    basic_no_dangling_access,
    many_suspended_at_once,
    values_between_yields,
    handle_enters_and_owner_gets_the_value,
    enter_if_inactive,
    handles_compare_and_hash,
    builder_names_the_coroutine,
    builder_stack_size_runs_deep_recursion,
);

/// Depth for the deep nesting case: 1,000 (QEMU's /perf/nesting depth), less under Miri.
const DEEP: usize = if cfg!(miri) { 8 } else { 1000 };

fn basic_lifecycle(backend: Backend) {
    // Create, enter, the body returns, its value reaches the enterer; twice in a row.
    for round in 0..2 {
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        let mut co = coroutine(backend, move || {
            d.fetch_add(1, Ordering::SeqCst);
            round * 10 + 7
        });
        assert_eq!(done.load(Ordering::SeqCst), 0, "creating runs nothing");
        assert!(!co.is_finished());
        assert_eq!(co.enter(), Resume::Returned(round * 10 + 7));
        assert_eq!(done.load(Ordering::SeqCst), 1);
        assert!(co.is_finished());
    }
}

fn basic_yield(backend: Backend) {
    let mut co = coroutine(backend, move || {
        for _ in 0..5 {
            yield_now();
        }
    });
    let mut enters = 0;
    loop {
        enters += 1;
        match co.enter() {
            Resume::Yielded => assert!(!co.is_finished()),
            Resume::Returned(()) => break,
        }
    }
    assert_eq!(enters, 6);
}

#[derive(Default)]
struct NestCount {
    enters: AtomicUsize,
    returns: AtomicUsize,
}

fn nest(backend: Backend, counts: Arc<NestCount>, depth: usize, max: usize) {
    counts.enters.fetch_add(1, Ordering::SeqCst);
    if depth < max {
        let c = counts.clone();
        let mut child = coroutine(backend, move || nest(backend, c, depth + 1, max));
        assert_eq!(child.enter(), Resume::Returned(()));
    }
    counts.returns.fetch_add(1, Ordering::SeqCst);
}

fn basic_nesting_128(backend: Backend) {
    let max = if cfg!(miri) { 16 } else { 128 };
    let counts = Arc::new(NestCount::default());
    let c = counts.clone();
    let mut root = coroutine(backend, move || nest(backend, c, 1, max));
    assert_eq!(root.enter(), Resume::Returned(()));
    assert_eq!(counts.enters.load(Ordering::SeqCst), max);
    assert_eq!(counts.returns.load(Ordering::SeqCst), max);
}

fn nesting_1000_deep(backend: Backend) {
    let counts = Arc::new(NestCount::default());
    let c = counts.clone();
    let mut root = coroutine(backend, move || nest(backend, c, 1, DEEP));
    assert_eq!(root.enter(), Resume::Returned(()));
    assert_eq!(counts.enters.load(Ordering::SeqCst), DEEP);
    assert_eq!(counts.returns.load(Ordering::SeqCst), DEEP);
}

fn nested_yield_goes_to_the_immediate_caller(backend: Backend) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let mut outer = coroutine(backend, move || {
        let li = l.clone();
        let mut inner = coroutine(backend, move || {
            li.lock().unwrap().push("inner 1");
            yield_now();
            li.lock().unwrap().push("inner 2");
        });
        l.lock().unwrap().push("outer 1");
        assert_eq!(inner.enter(), Resume::Yielded);
        l.lock().unwrap().push("outer 2");
        yield_now();
        l.lock().unwrap().push("outer 3");
        assert_eq!(inner.enter(), Resume::Returned(()));
        l.lock().unwrap().push("outer 4");
    });
    assert_eq!(outer.enter(), Resume::Yielded);
    log.lock().unwrap().push("main");
    assert_eq!(outer.enter(), Resume::Returned(()));
    assert_eq!(
        *log.lock().unwrap(),
        [
            "outer 1", "inner 1", "outer 2", "main", "outer 3", "inner 2", "outer 4"
        ]
    );
}

fn basic_order(backend: Backend) {
    // QEMU /basic/order: enter runs the body to its first yield, the caller continues, the next enter resumes
    // right after the yield. Records (who, step).
    let records = Arc::new(Mutex::new(Vec::new()));
    let r = records.clone();
    let mut co = coroutine(backend, move || {
        r.lock().unwrap().push((2, 1));
        yield_now();
        r.lock().unwrap().push((2, 2));
    });
    records.lock().unwrap().push((1, 1));
    assert_eq!(co.enter(), Resume::Yielded);
    records.lock().unwrap().push((1, 2));
    assert_eq!(co.enter(), Resume::Returned(()));
    records.lock().unwrap().push((1, 3));
    assert_eq!(
        *records.lock().unwrap(),
        [(1, 1), (2, 1), (1, 2), (2, 2), (1, 3)]
    );
}

fn basic_self(backend: Backend) {
    assert!(current().is_none());
    let mut co = coroutine(backend, move || current().expect("inside a coroutine"));
    let handle = co.handle();
    let seen = co.enter().into_returned().unwrap();
    assert_eq!(seen, handle);
    let other = coroutine(backend, move || ());
    assert_ne!(seen, other.handle());
}

fn basic_in_coroutine(backend: Backend) {
    assert!(!in_coroutine());
    let mut co = coroutine(backend, move || {
        let outer = in_coroutine();
        let mut inner = coroutine(backend, in_coroutine);
        let nested = inner.enter().into_returned().unwrap();
        (outer, nested, in_coroutine())
    });
    assert_eq!(co.enter().into_returned(), Some((true, true, true)));
    assert!(!in_coroutine());
}

fn basic_entered(backend: Backend) {
    // A coroutine that has entered a child is entered; once it yields it is not.
    let mut outer = coroutine(backend, move || {
        let me = current().unwrap();
        assert!(me.is_entered());
        let m = me.clone();
        let mut inner = coroutine(backend, move || {
            assert!(m.is_entered(), "the caller of a running child is entered");
            assert!(current().unwrap().is_entered());
        });
        assert_eq!(inner.enter(), Resume::Returned(()));
        yield_now();
    });
    let h = outer.handle();
    assert!(!h.is_entered());
    assert_eq!(outer.enter(), Resume::Yielded);
    assert!(!h.is_entered(), "a yielded coroutine is not entered");
    assert_eq!(outer.enter(), Resume::Returned(()));
    assert!(!h.is_entered());
    assert!(h.is_finished());
}

fn basic_no_dangling_access(backend: Backend) {
    // c1 finishes; its resources go back for reuse. c2 (likely on c1's old thread or stack) must not see
    // c1's caller or value: it reports itself as current, and its result is its own.
    let mut c1 = coroutine(backend, move || current().unwrap());
    let h1 = c1.handle();
    assert_eq!(c1.enter().into_returned().unwrap(), h1);
    drop(c1);
    let mut c2 = coroutine(backend, move || {
        let me = current().unwrap();
        yield_now();
        me
    });
    let h2 = c2.handle();
    assert_eq!(c2.enter(), Resume::Yielded);
    assert!(!in_coroutine());
    let seen = c2.enter().into_returned().unwrap();
    assert_eq!(seen, h2);
    assert_ne!(seen, h1);
    assert!(h1.is_finished());
}

fn many_suspended_at_once(backend: Backend) {
    let n = if cfg!(miri) { 10 } else { 1000 };
    let mut cos: Vec<Coroutine<usize>> = (0..n)
        .map(|i| {
            coroutine(backend, move || {
                yield_now();
                i
            })
        })
        .collect();
    for co in &mut cos {
        assert_eq!(co.enter(), Resume::Yielded);
    }
    for (i, co) in cos.iter_mut().enumerate() {
        assert_eq!(co.enter(), Resume::Returned(i));
    }
}

fn values_between_yields(backend: Backend) {
    // Shared state mutated on either side of a yield is seen by the other side.
    let cell = Arc::new(Mutex::new(0));
    let c = cell.clone();
    let mut co = coroutine(backend, move || {
        for _ in 0..10 {
            *c.lock().unwrap() += 1;
            yield_now();
        }
    });
    for expected in 1..=10 {
        assert_eq!(co.enter(), Resume::Yielded);
        assert_eq!(*cell.lock().unwrap(), expected);
    }
    assert_eq!(co.enter(), Resume::Returned(()));
}

fn handle_enters_and_owner_gets_the_value(backend: Backend) {
    let mut co = coroutine(backend, move || {
        yield_now();
        42
    });
    let h: CoroutineRef = co.handle();
    assert_eq!(h.enter(), Resume::Yielded);
    assert_eq!(h.enter(), Resume::Returned(()));
    assert!(co.is_finished());
    assert_eq!(co.enter(), Resume::Returned(42));
}

fn enter_if_inactive(backend: Backend) {
    let mut co = coroutine(backend, move || {
        let me = current().unwrap();
        assert!(
            !me.enter_if_inactive(),
            "a running coroutine is not entered again"
        );
        yield_now();
        7
    });
    let h = co.handle();
    assert!(h.enter_if_inactive());
    assert!(h.enter_if_inactive());
    assert_eq!(co.enter(), Resume::Returned(7));
}

fn handles_compare_and_hash(backend: Backend) {
    use std::collections::HashSet;
    let a = coroutine(backend, move || ());
    let b = coroutine(backend, move || ());
    let set: HashSet<CoroutineRef> = [a.handle(), a.handle(), b.handle()].into_iter().collect();
    assert_eq!(set.len(), 2);
    assert_eq!(a.handle(), a.handle());
    assert_ne!(a.handle().id(), b.handle().id());
}

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn handle_is_send_and_sync() {
    assert_send_sync::<CoroutineRef>();
}

fn builder_names_the_coroutine(backend: Backend) {
    let mut co = cothread::Builder::new()
        .backend(backend)
        .name("named-co")
        .spawn(|| current().unwrap().name().map(str::to_owned))
        .unwrap();
    assert_eq!(co.handle().name(), Some("named-co"));
    assert_eq!(
        co.enter().into_returned(),
        Some(Some("named-co".to_owned()))
    );
}

fn builder_stack_size_runs_deep_recursion(backend: Backend) {
    fn depth(n: u64) -> u64 {
        let pad = [n; 64];
        if n == 0 {
            0
        } else {
            std::hint::black_box(pad)[0] + depth(n - 1) - n + 1
        }
    }
    let levels = if cfg!(miri) { 10 } else { 20_000 };
    let mut co = cothread::Builder::new()
        .backend(backend)
        .stack_size(64 << 20)
        .spawn(move || depth(levels))
        .unwrap();
    assert_eq!(co.enter(), Resume::Returned(levels));
}
