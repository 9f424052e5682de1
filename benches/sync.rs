//! Criterion benches of the coroutine synchronisation primitives on a `RunLoop`, one line per backend this
//! build has, with OS-thread baselines in the same run. `cargo bench --bench sync` (filter with e.g.
//! `-- co_mutex`).
//!
//! - `co_mutex_uncontended`: lock + unlock of a `CoMutex` nobody else wants, timed inside one task.
//! - `channel/<capacity>`: one message sent by one task and received by another on the same loop (the time
//!   of the whole run divided by the number of messages). With capacity 0 every message is a rendezvous, two
//!   switches through the loop; with capacity 64 the switches are shared by up to 64 messages.

use std::time::{Duration, Instant};

use cothread::{Backend, Builder, CoMutex, RunLoop, channel};
use criterion::{Criterion, criterion_group, criterion_main};

/// Makes the `Builder` for one backend.
type MakeBuilder = fn() -> Builder;

/// The backends this build can run, by name: the native one only with `--features native`.
fn backends() -> Vec<(&'static str, MakeBuilder)> {
    vec![
        ("thread", || Builder::new().backend(Backend::Thread)),
        #[cfg(cothread_native)]
        ("native", || Builder::new().backend(Backend::Native)),
    ]
}

fn co_mutex_uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("co_mutex_uncontended");
    for (name, builder) in backends() {
        g.bench_function(name, |b| {
            b.iter_custom(|n| {
                let mut rl = RunLoop::new();
                let timed = rl
                    .spawn_with(builder(), move || {
                        let m = CoMutex::new(0u64);
                        let start = Instant::now();
                        for _ in 0..n {
                            *m.lock() += 1;
                        }
                        let elapsed = start.elapsed();
                        assert_eq!(m.into_inner(), n);
                        elapsed
                    })
                    .expect("spawn");
                rl.run();
                timed.take().expect("finished")
            })
        });
    }
    g.bench_function("baseline/std_mutex", |b| {
        b.iter_custom(|n| {
            let m = std::sync::Mutex::new(0u64);
            let start = Instant::now();
            for _ in 0..n {
                *m.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            }
            let elapsed = start.elapsed();
            assert_eq!(*m.lock().unwrap_or_else(|e| e.into_inner()), n);
            elapsed
        })
    });
    g.finish();
}

/// Sends `n` messages from one task to another on one loop; returns the time of the run.
fn send_recv(builder: MakeBuilder, capacity: usize, n: u64) -> Duration {
    let mut rl = RunLoop::new();
    let (tx, rx) = channel::bounded::<u64>(capacity);
    rl.spawn_with(builder(), move || {
        for i in 0..n {
            tx.send(i).expect("receiver alive");
        }
    })
    .expect("spawn");
    let sum = rl
        .spawn_with(builder(), move || rx.iter().sum::<u64>())
        .expect("spawn");
    let start = Instant::now();
    rl.run();
    let elapsed = start.elapsed();
    assert_eq!(sum.take(), Some(n * n.saturating_sub(1) / 2));
    elapsed
}

/// The same between two OS threads with crossbeam-channel.
fn send_recv_threads(capacity: usize, n: u64) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(capacity);
    let start = Instant::now();
    let sender = std::thread::spawn(move || {
        for i in 0..n {
            tx.send(i).expect("receiver alive");
        }
    });
    let sum: u64 = rx.iter().sum();
    sender.join().expect("sender");
    let elapsed = start.elapsed();
    assert_eq!(sum, n * n.saturating_sub(1) / 2);
    elapsed
}

fn channel(c: &mut Criterion) {
    for capacity in [0, 64] {
        let mut g = c.benchmark_group(format!("channel/{capacity}"));
        for (name, builder) in backends() {
            g.bench_function(name, |b| b.iter_custom(|n| send_recv(builder, capacity, n)));
        }
        g.bench_function("baseline/os_threads_crossbeam", |b| {
            b.iter_custom(|n| send_recv_threads(capacity, n))
        });
        g.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = co_mutex_uncontended, channel
}
criterion_main!(benches);
