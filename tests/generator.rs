//! Generators (`ScopedGenerator`, `Yielder`, `GeneratorResult`): every case runs on each backend the build can
//! run (`on_each_backend!`, tests/common).

mod common;

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{drop_flag, message};
use cothread::{
    Backend, Builder, Coroutine, Generator, GeneratorResult, Resume, ScopedGenerator, Yielder,
};

on_each_backend!(
    values_pass_both_ways,
    started_and_done_follow_the_body,
    a_generator_of_values_is_an_iterator,
    the_body_borrows_from_the_creator,
    a_scope_unwinds_its_suspended_generator,
    a_panic_reaches_resume_and_ends_the_generator,
    resuming_a_finished_generator_panics,
    dropping_a_suspended_generator_unwinds_it,
    dropping_an_unstarted_generator_drops_its_body,
    forgetting_a_suspended_generator_never_runs_it_again,
    coroutine_calls_work_inside_a_generator,
    a_handle_cannot_enter_a_generator,
    generators_and_coroutines_nest_both_ways,
    yield_now_inside_a_generator_panics_in_resume,
    the_builder_names_and_sizes_a_generator,
    a_generator_moves_to_another_thread,
);

fn builder(backend: Backend) -> Builder {
    Builder::new().backend(backend)
}

fn values_pass_both_ways(backend: Backend) {
    // A running total: each input is added, each yield reports the total so far.
    let mut g = builder(backend)
        .generator(|y: &Yielder<u64, u64>, first| {
            let mut total = first;
            for _ in 0..3 {
                total += y.suspend(total);
            }
            format!("total {total}")
        })
        .unwrap();
    assert_eq!(g.resume(1), GeneratorResult::Yield(1));
    assert_eq!(g.resume(10), GeneratorResult::Yield(11));
    assert_eq!(g.resume(100), GeneratorResult::Yield(111));
    assert_eq!(
        g.resume(1000),
        GeneratorResult::Return("total 1111".to_owned())
    );
}

fn started_and_done_follow_the_body(backend: Backend) {
    let mut g = builder(backend)
        .generator(|y: &Yielder<(), ()>, ()| y.suspend(()))
        .unwrap();
    assert!(!g.started() && !g.done());
    assert_eq!(g.resume(()), GeneratorResult::Yield(()));
    assert!(g.started() && !g.done());
    assert_eq!(g.resume(()), GeneratorResult::Return(()));
    assert!(g.started() && g.done());
}

fn a_generator_of_values_is_an_iterator(backend: Backend) {
    let squares = builder(backend)
        .generator(|y, ()| {
            for i in 1..=5u32 {
                y.suspend(i * i);
            }
        })
        .unwrap();
    assert_eq!(squares.collect::<Vec<_>>(), [1, 4, 9, 16, 25]);

    let mut empty = builder(backend)
        .generator(|_: &Yielder<(), u8>, ()| {})
        .unwrap();
    assert_eq!(empty.next(), None);
    assert!(empty.done());
    assert_eq!(empty.next(), None, "a done iterator stays done (no resume)");
}

fn the_body_borrows_from_the_creator(backend: Backend) {
    let words = vec!["a".to_owned(), "bb".to_owned(), "ccc".to_owned()];
    let mut lengths = Vec::new();
    // Borrows `words` shared and `lengths` mutably; yields borrowed `&str`s.
    let returned = builder(backend)
        .scoped_generator(
            |y: &Yielder<(), &str>, ()| {
                for w in &words {
                    lengths.push(w.len());
                    y.suspend(w.as_str());
                }
                lengths.len()
            },
            |g| {
                assert_eq!(g.resume(()), GeneratorResult::Yield("a"));
                assert_eq!(g.resume(()), GeneratorResult::Yield("bb"));
                assert_eq!(g.resume(()), GeneratorResult::Yield("ccc"));
                g.resume(())
            },
        )
        .unwrap();
    assert_eq!(returned, GeneratorResult::Return(3));
    assert_eq!(lengths, [1, 2, 3]);
}

fn a_scope_unwinds_its_suspended_generator(backend: Backend) {
    let mut log = Vec::new();
    {
        struct Logs<'a>(&'a mut Vec<&'static str>);
        impl Drop for Logs<'_> {
            fn drop(&mut self) {
                self.0.push("body unwound");
            }
        }
        let first = builder(backend)
            .scoped_generator(
                |y: &Yielder<(), u8>, ()| {
                    let logs = Logs(&mut log);
                    y.suspend(1);
                    logs.0.push("never: the scope ends while suspended");
                },
                |g| g.resume(()),
            )
            .unwrap();
        assert_eq!(first, GeneratorResult::Yield(1));
    }
    assert_eq!(log, ["body unwound"]);

    // Also when the scope's own body panics.
    let mut count = 0;
    let err = panic::catch_unwind(AssertUnwindSafe(|| {
        builder(backend)
            .scoped_generator(
                |y: &Yielder<(), ()>, ()| {
                    let bump = BumpOnDrop(&mut count);
                    y.suspend(());
                    drop(bump);
                },
                |g| {
                    let _ = g.resume(());
                    panic!("scope body panics");
                },
            )
            .unwrap()
    }))
    .unwrap_err();
    assert_eq!(message(err), "scope body panics");
    assert_eq!(count, 1);
}

struct BumpOnDrop<'a>(&'a mut u32);

impl Drop for BumpOnDrop<'_> {
    fn drop(&mut self) {
        *self.0 += 1;
    }
}

fn a_panic_reaches_resume_and_ends_the_generator(backend: Backend) {
    let (flag, dropped) = drop_flag();
    let mut g = builder(backend)
        .generator(move |y: &Yielder<u32, u32>, x| {
            let _flag = flag;
            let x = y.suspend(x);
            if x == 7 {
                panic!("body saw {x}");
            }
            x
        })
        .unwrap();
    assert_eq!(g.resume(1), GeneratorResult::Yield(1));
    let err = panic::catch_unwind(AssertUnwindSafe(|| g.resume(7))).unwrap_err();
    assert_eq!(message(err), "body saw 7");
    assert!(g.done());
    assert!(dropped.load(Ordering::SeqCst), "the panic unwound the body");
}

fn resuming_a_finished_generator_panics(backend: Backend) {
    let mut g = builder(backend)
        .generator(|_: &Yielder<(), ()>, ()| 5)
        .unwrap();
    assert_eq!(g.resume(()), GeneratorResult::Return(5));
    let err = panic::catch_unwind(AssertUnwindSafe(|| g.resume(()))).unwrap_err();
    assert_eq!(message(err), "resumed a generator that has finished");

    let mut g = builder(backend)
        .generator(|_: &Yielder<(), ()>, ()| -> () { panic!("boom") })
        .unwrap();
    assert!(panic::catch_unwind(AssertUnwindSafe(|| g.resume(()))).is_err());
    let err = panic::catch_unwind(AssertUnwindSafe(|| g.resume(()))).unwrap_err();
    assert_eq!(message(err), "resumed a generator that has finished");
}

fn dropping_a_suspended_generator_unwinds_it(backend: Backend) {
    let (flag, dropped) = drop_flag();
    let after = Arc::new(AtomicBool::new(false));
    let after2 = after.clone();
    let mut g = builder(backend)
        .generator(move |y: &Yielder<(), u8>, ()| {
            let _flag = flag;
            y.suspend(1);
            after2.store(true, Ordering::SeqCst);
        })
        .unwrap();
    assert_eq!(g.resume(()), GeneratorResult::Yield(1));
    assert!(!dropped.load(Ordering::SeqCst));
    drop(g);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the suspended stack was unwound"
    );
    assert!(!after.load(Ordering::SeqCst), "the body did not run on");
}

fn dropping_an_unstarted_generator_drops_its_body(backend: Backend) {
    let (flag, dropped) = drop_flag();
    let g = builder(backend)
        .generator(move |_: &Yielder<(), ()>, ()| drop(flag))
        .unwrap();
    assert!(!dropped.load(Ordering::SeqCst));
    drop(g);
    assert!(dropped.load(Ordering::SeqCst));
}

fn forgetting_a_suspended_generator_never_runs_it_again(backend: Backend) {
    // Only `'static` generators can be had by value, so only they can be leaked (see `ScopedGenerator`).
    let counter = Arc::new(AtomicUsize::new(0));
    let seen = counter.clone();
    let mut g = builder(backend)
        .generator(move |y: &Yielder<(), ()>, ()| {
            seen.fetch_add(1, Ordering::SeqCst);
            y.suspend(());
            seen.fetch_add(100, Ordering::SeqCst); // never runs: forgotten while suspended here
        })
        .unwrap();
    assert_eq!(g.resume(()), GeneratorResult::Yield(()));
    std::mem::forget(g);
    std::thread::sleep(std::time::Duration::from_millis(if cfg!(miri) {
        1
    } else {
        20
    }));
    assert_eq!(counter.load(Ordering::SeqCst), 1);
    assert_eq!(
        Arc::strong_count(&counter),
        2,
        "the leaked body still holds its clone"
    );
}

fn coroutine_calls_work_inside_a_generator(backend: Backend) {
    assert!(!cothread::in_coroutine());
    let mut g = builder(backend)
        .generator(|y: &Yielder<(), (bool, u64)>, ()| {
            let me = cothread::current().expect("a generator is a coroutine");
            y.suspend((cothread::in_coroutine(), me.id()));
            let again = cothread::current().unwrap();
            again == me
        })
        .unwrap();
    let GeneratorResult::Yield((inside, _id)) = g.resume(()) else {
        panic!("expected a yield");
    };
    assert!(inside);
    assert_eq!(g.resume(()), GeneratorResult::Return(true));
    assert!(!cothread::in_coroutine());
}

fn a_handle_cannot_enter_a_generator(backend: Backend) {
    let mut g = builder(backend)
        .generator(|y: &Yielder<(), cothread::CoroutineRef>, ()| {
            y.suspend(cothread::current().unwrap());
            "finished"
        })
        .unwrap();
    let GeneratorResult::Yield(handle) = g.resume(()) else {
        panic!("expected a yield");
    };
    assert!(!handle.is_entered() && !handle.is_finished());
    let message_of = |f: &dyn Fn()| message(panic::catch_unwind(AssertUnwindSafe(f)).unwrap_err());
    let expected = "entered a generator through a CoroutineRef (only its owner resumes it, with ScopedGenerator::resume)";
    assert_eq!(
        message_of(&|| {
            let _ = handle.enter();
        }),
        expected
    );
    assert_eq!(
        message_of(&|| {
            let _ = handle.enter_if_inactive();
        }),
        expected
    );
    // The generator itself is untouched.
    assert_eq!(g.resume(()), GeneratorResult::Return("finished"));
    assert!(handle.is_finished());
}

fn generators_and_coroutines_nest_both_ways(backend: Backend) {
    // A coroutine that drives a generator, and a generator whose body drives a coroutine and a generator.
    let mut co = builder(backend)
        .spawn(move || {
            let outer = cothread::current().unwrap();
            let mut g = Builder::new()
                .backend(backend)
                .generator(move |y: &Yielder<u32, u32>, x| {
                    let inner = cothread::current().unwrap();
                    assert_ne!(inner, outer);
                    let mut co = Builder::new()
                        .backend(backend)
                        .spawn(|| {
                            cothread::yield_now();
                            3
                        })
                        .unwrap();
                    assert_eq!(co.enter(), Resume::Yielded);
                    let x = y.suspend(x + 1);
                    assert_eq!(co.enter(), Resume::Returned(3));
                    let mut nested = Builder::new()
                        .backend(backend)
                        .generator(|y: &Yielder<u32, u32>, x| y.suspend(x * 10))
                        .unwrap();
                    let GeneratorResult::Yield(tens) = nested.resume(x) else {
                        panic!("expected a yield");
                    };
                    assert_eq!(nested.resume(0), GeneratorResult::Return(0));
                    assert_eq!(cothread::current().unwrap(), inner);
                    tens
                })
                .unwrap();
            assert_eq!(g.resume(1), GeneratorResult::Yield(2));
            cothread::yield_now();
            let r = g.resume(4);
            assert!(cothread::current().is_some());
            r
        })
        .unwrap();
    assert_eq!(co.enter(), Resume::Yielded);
    assert_eq!(co.enter(), Resume::Returned(GeneratorResult::Return(40)));
}

fn yield_now_inside_a_generator_panics_in_resume(backend: Backend) {
    let mut g = builder(backend)
        .generator(|y: &Yielder<(), u8>, ()| {
            cothread::yield_now();
            y.suspend(2);
        })
        .unwrap();
    let err = panic::catch_unwind(AssertUnwindSafe(|| g.resume(()))).unwrap_err();
    assert_eq!(
        message(err),
        "a generator yielded without a value (yield_now() inside a generator: use Yielder::suspend)"
    );
    // It stays suspended where it yielded, and goes on from there.
    assert_eq!(g.resume(()), GeneratorResult::Yield(2));
    assert_eq!(g.resume(()), GeneratorResult::Return(()));
}

fn the_builder_names_and_sizes_a_generator(backend: Backend) {
    let mut g = builder(backend)
        .name("gen-name")
        .stack_size(256 * 1024)
        .generator(|_: &Yielder<(), ()>, ()| {
            // Uses the stack a little, well within the size asked for.
            let buf = std::hint::black_box([7u8; 64 * 1024]);
            (
                cothread::current().unwrap().name().map(str::to_owned),
                buf[100],
            )
        })
        .unwrap();
    assert_eq!(
        g.resume(()),
        GeneratorResult::Return((Some("gen-name".to_owned()), 7))
    );

    let nul = builder(backend)
        .name("a\0b")
        .generator(|_: &Yielder<(), ()>, ()| {});
    assert_eq!(nul.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
}

fn a_generator_moves_to_another_thread(backend: Backend) {
    // Created here, first resumed on another thread (a native one then stays there).
    let count = Arc::new(AtomicUsize::new(0));
    let count2 = count.clone();
    let mut g: Generator<u32, u32, ()> = builder(backend)
        .generator(move |y: &Yielder<u32, u32>, mut x| {
            loop {
                count2.fetch_add(1, Ordering::SeqCst);
                x = y.suspend(x + 1);
            }
        })
        .unwrap();
    let g = std::thread::spawn(move || {
        assert_eq!(g.resume(1), GeneratorResult::Yield(2));
        g
    })
    .join()
    .unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let mut g = g;
    if backend == Backend::Thread {
        assert_eq!(g.resume(5), GeneratorResult::Yield(6));
        drop(g);
    } else {
        let err = panic::catch_unwind(AssertUnwindSafe(|| g.resume(5))).unwrap_err();
        assert!(
            message(err).starts_with(
                "entered a native coroutine on a thread other than the one it runs on"
            )
        );
        // Dropped here, on a thread other than its own: leaked, never run again.
        drop(g);
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}

/// `ScopedGenerator::new` uses the default backend; `Generator` is the `'static` case.
#[test]
fn new_uses_the_default_backend() {
    let mut g: Generator<i32, i32, i32> = ScopedGenerator::new(|y, x| y.suspend(x) * 2);
    assert_eq!(g.resume(3), GeneratorResult::Yield(3));
    assert_eq!(g.resume(4), GeneratorResult::Return(8));
    let mut co = Coroutine::new(|| 1);
    assert_eq!(co.enter(), Resume::Returned(1));
}

/// A native generator's lifecycle reuses the thread's spare: its stack (the pool counts a reuse per generator
/// after the first) and its control block (each generator still gets an id of its own, and a handle to a
/// finished one keeps naming it: its block is not reused while the handle lives).
#[cfg(all(cothread_native, not(miri)))]
#[test]
fn native_generators_reuse_the_threads_spare() {
    let run = || {
        let mut g = builder(Backend::Native)
            .generator(|y: &Yielder<(), cothread::CoroutineRef>, ()| {
                y.suspend(cothread::current().unwrap());
            })
            .unwrap();
        let GeneratorResult::Yield(me) = g.resume(()) else {
            panic!("expected a yield");
        };
        assert_eq!(g.resume(()), GeneratorResult::Return(()));
        me
    };
    drop(run()); // warms the spare
    let before = cothread::pool::native_stats();
    let mut ids = std::collections::HashSet::new();
    for _ in 0..10 {
        let me = run();
        assert!(me.is_finished(), "a handle sees its generator finished");
        assert!(ids.insert(me.id()), "every generator gets an id of its own");
    }
    let after = cothread::pool::native_stats();
    // Other tests of this binary only add to `reused`.
    assert!(
        after.reused >= before.reused + 10,
        "{before:?} -> {after:?}"
    );

    // A handle that outlives its generator keeps the block: the next generator gets another.
    let kept = run();
    let next = run();
    assert_ne!(kept, next);
    assert!(kept.is_finished() && next.is_finished());
}

/// `current()` inside a native generator is the generator even when the generator runs inside a coroutine, and
/// the coroutine is current again once the generator gives control back (also when its body panics).
#[cfg(all(cothread_native, not(miri)))]
#[test]
fn current_is_restored_after_a_native_generator() {
    let mut co = builder(Backend::Native)
        .spawn(|| {
            let outer = cothread::current().unwrap();
            let mut g = builder(Backend::Native)
                .generator(|y: &Yielder<(), bool>, ()| {
                    y.suspend(cothread::in_coroutine());
                    panic!("out of the body");
                })
                .unwrap();
            assert_eq!(g.resume(()), GeneratorResult::Yield(true));
            assert_eq!(cothread::current().unwrap(), outer);
            let err = panic::catch_unwind(AssertUnwindSafe(|| g.resume(()))).unwrap_err();
            assert_eq!(message(err), "out of the body");
            assert!(g.done());
            cothread::current().unwrap() == outer
        })
        .unwrap();
    assert_eq!(co.enter(), Resume::Returned(true));
    assert!(!cothread::in_coroutine());
}
