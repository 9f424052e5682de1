// A small program written against corosensei's API (`Coroutine`, `Yielder`, `CoroutineResult`). It is
// `include!`d twice by tests/corosensei_compat.rs: once after `use corosensei::...`, once after the `use` of
// cothread's renamed types, and both runs must log the same thing.

/// Runs a few generators and logs what they did.
pub fn run() -> Vec<String> {
    let mut log = Vec::new();

    // Values both ways, until the body returns.
    let mut co = Coroutine::new(|yielder: &Yielder<u32, String>, first: u32| {
        let mut n = first;
        for i in 0..3 {
            n = yielder.suspend(format!("step {i}: {n}"));
        }
        n * 2
    });
    log.push(format!("started {} done {}", co.started(), co.done()));
    let mut input = 1;
    loop {
        match co.resume(input) {
            CoroutineResult::Yield(s) => {
                log.push(s);
                input += 10;
            }
            CoroutineResult::Return(r) => {
                log.push(format!("returned {r}"));
                break;
            }
        }
    }
    log.push(format!("started {} done {}", co.started(), co.done()));

    // `as_yield` / `as_return`.
    let mut fib = Coroutine::new(|yielder: &Yielder<(), u64>, ()| {
        let (mut a, mut b) = (0u64, 1u64);
        for _ in 0..10 {
            yielder.suspend(a);
            (a, b) = (b, a + b);
        }
        "fib done"
    });
    let mut values = Vec::new();
    while let Some(v) = fib.resume(()).as_yield() {
        values.push(v);
    }
    log.push(format!("fib {values:?}"));

    // A panic in the body comes out of `resume` with its payload.
    let mut bad = Coroutine::new(|yielder: &Yielder<i32, i32>, x: i32| {
        let y = yielder.suspend(x);
        if y < 0 {
            panic!("negative input {y}");
        }
        y
    });
    log.push(format!("{:?}", bad.resume(5).as_yield()));
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| bad.resume(-3))).unwrap_err();
    log.push(format!("panic: {:?} done {}", err.downcast_ref::<String>(), bad.done()));

    // Dropping a suspended generator unwinds it: its destructors run.
    struct Noisy(std::sync::Arc<std::sync::Mutex<Vec<String>>>);
    impl Drop for Noisy {
        fn drop(&mut self) {
            self.0.lock().unwrap().push("noisy dropped".to_owned());
        }
    }
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let noisy = Noisy(events.clone());
    let mut suspended = Coroutine::new(move |yielder: &Yielder<(), ()>, ()| {
        let _noisy = noisy;
        yielder.suspend(());
        unreachable!("dropped while suspended");
    });
    let _ = suspended.resume(());
    events.lock().unwrap().push("dropping".to_owned());
    drop(suspended);
    log.extend(events.lock().unwrap().drain(..));

    log
}
