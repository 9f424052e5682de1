//! Code written against corosensei's `Coroutine`, `Yielder` and `CoroutineResult` moves to cothread with a `use`
//! of renamed types (README, "Switching from corosensei"): the same program, compiled against both crates,
//! logs the same thing. corosensei is a dependency with the `native` feature only.
#![cfg(all(cothread_native, not(miri)))]

mod with_corosensei {
    use corosensei::{Coroutine, CoroutineResult, Yielder};
    include!("support/corosensei_style.rs");
}

mod with_cothread {
    use cothread::{Generator as Coroutine, GeneratorResult as CoroutineResult, Yielder};
    include!("support/corosensei_style.rs");
}

#[test]
fn a_corosensei_program_runs_the_same_on_cothread() {
    let expected = with_corosensei::run();
    assert_eq!(
        expected.len(),
        11,
        "the program ran to its end: {expected:#?}"
    );
    assert_eq!(with_cothread::run(), expected);
}

#[test]
fn it_runs_the_same_on_the_thread_backend() {
    // `Generator::new` uses the default backend (native here); the thread backend, through a builder, must
    // agree too. The program's first generator, rebuilt by hand on `Backend::Thread`.
    use cothread::{Backend, Builder, GeneratorResult, Yielder};
    let mut g = Builder::new()
        .backend(Backend::Thread)
        .generator(|yielder: &Yielder<u32, String>, first: u32| {
            let mut n = first;
            for i in 0..3 {
                n = yielder.suspend(format!("step {i}: {n}"));
            }
            n * 2
        })
        .unwrap();
    let mut log = Vec::new();
    let mut input = 1;
    while let GeneratorResult::Yield(s) = g.resume(input) {
        log.push(s);
        input += 10;
    }
    assert_eq!(log, &with_corosensei::run()[1..4]);
}
