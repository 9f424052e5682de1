//! A pipeline written as straight-line code: a producer, a few workers and a consumer, connected by
//! channels, with a `CoMutex` guarding shared statistics. Runs the same pipeline on a cothread `RunLoop`
//! (for each backend this build has) and on OS threads with crossbeam-channel, and prints the throughput.
//!
//! ```sh
//! cargo run --release --example pipeline              # 500,000 messages per run
//! cargo run --release --example pipeline -- 20000     # another count
//! cargo run --release --example pipeline --features native
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use cothread::{Backend, Builder, CoMutex, RunLoop, channel};

/// Workers between the producer and the consumer.
const WORKERS: usize = 4;
/// Capacity of both channels.
const CAPACITY: usize = 64;

/// What the workers count, under a lock.
#[derive(Default)]
struct Stats {
    processed: u64,
    per_worker: [u64; WORKERS],
}

/// The work done per message: a few rounds of a cheap mix, so that the channels dominate.
fn work(x: u64) -> u64 {
    let mut h = x ^ 0x9e37_79b9_7f4a_7c15;
    for _ in 0..8 {
        h = (h ^ (h >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    }
    h
}

/// The expected sum of `work(i)` over the messages.
fn expected(messages: u64) -> u64 {
    (0..messages).map(work).fold(0, u64::wrapping_add)
}

/// The pipeline on a run loop, its coroutines made by `builder`. Returns the consumer's sum and the time.
fn on_run_loop(builder: impl Fn() -> Builder, messages: u64) -> (u64, Duration, Stats) {
    let start = Instant::now();
    let mut rl = RunLoop::new();
    let (jobs_tx, jobs_rx) = channel::bounded::<u64>(CAPACITY);
    let (results_tx, results_rx) = channel::bounded::<u64>(CAPACITY);
    let stats = Arc::new(CoMutex::new(Stats::default()));

    rl.spawn_with(builder().name("producer"), move || {
        for i in 0..messages {
            jobs_tx.send(i).expect("workers are alive");
        }
    })
    .expect("spawn producer");

    for w in 0..WORKERS {
        let (jobs, results, stats) = (jobs_rx.clone(), results_tx.clone(), stats.clone());
        rl.spawn_with(builder().name(format!("worker-{w}")), move || {
            for job in &jobs {
                let out = work(job);
                {
                    let mut s = stats.lock();
                    s.processed += 1;
                    s.per_worker[w] += 1;
                }
                results.send(out).expect("the consumer is alive");
            }
        })
        .expect("spawn worker");
    }
    drop((jobs_rx, results_tx));

    let sum = rl
        .spawn_with(builder().name("consumer"), move || {
            results_rx.iter().fold(0u64, u64::wrapping_add)
        })
        .expect("spawn consumer");

    rl.run();
    let elapsed = start.elapsed();
    let stats = match Arc::try_unwrap(stats) {
        Ok(stats) => stats.into_inner(),
        Err(_) => unreachable!("every task has finished"),
    };
    (sum.take().expect("the consumer finished"), elapsed, stats)
}

/// The same pipeline on OS threads, with crossbeam-channel and a std mutex.
fn on_os_threads(messages: u64) -> (u64, Duration, Stats) {
    let start = Instant::now();
    let (jobs_tx, jobs_rx) = crossbeam_channel::bounded::<u64>(CAPACITY);
    let (results_tx, results_rx) = crossbeam_channel::bounded::<u64>(CAPACITY);
    let stats = Arc::new(std::sync::Mutex::new(Stats::default()));

    let producer = std::thread::spawn(move || {
        for i in 0..messages {
            jobs_tx.send(i).expect("workers are alive");
        }
    });
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (jobs, results, stats) = (jobs_rx.clone(), results_tx.clone(), stats.clone());
            std::thread::spawn(move || {
                for job in &jobs {
                    let out = work(job);
                    {
                        let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
                        s.processed += 1;
                        s.per_worker[w] += 1;
                    }
                    results.send(out).expect("the consumer is alive");
                }
            })
        })
        .collect();
    drop((jobs_rx, results_tx));
    let consumer = std::thread::spawn(move || results_rx.iter().fold(0u64, u64::wrapping_add));

    producer.join().expect("producer");
    for w in workers {
        w.join().expect("worker");
    }
    let sum = consumer.join().expect("consumer");
    let elapsed = start.elapsed();
    let stats = match Arc::try_unwrap(stats) {
        Ok(m) => m.into_inner().unwrap_or_else(|e| e.into_inner()),
        Err(_) => unreachable!("every thread has been joined"),
    };
    (sum, elapsed, stats)
}

fn report(name: &str, messages: u64, want: u64, (sum, elapsed, stats): (u64, Duration, Stats)) {
    assert_eq!(sum, want, "{name}: the consumer's sum");
    assert_eq!(stats.processed, messages, "{name}: messages processed");
    let rate = messages as f64 / elapsed.as_secs_f64();
    println!(
        "{name:<34} {rate:>12.0} {:>9.3} s   per worker {:?}",
        elapsed.as_secs_f64(),
        stats.per_worker
    );
}

fn main() {
    let messages: u64 = match std::env::args().nth(1) {
        Some(arg) => match arg.parse() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("usage: pipeline [MESSAGES]");
                std::process::exit(2);
            }
        },
        None => 500_000,
    };
    let want = expected(messages);
    println!(
        "pipeline: 1 producer -> {WORKERS} workers -> 1 consumer, channels of capacity {CAPACITY}, \
         {messages} messages, a CoMutex/Mutex per message"
    );
    println!("{:<34} {:>12} {:>11}", "", "messages/s", "time");

    report(
        "cothread RunLoop, thread backend",
        messages,
        want,
        on_run_loop(|| Builder::new().backend(Backend::Thread), messages),
    );
    #[cfg(cothread_native)]
    report(
        "cothread RunLoop, native backend",
        messages,
        want,
        on_run_loop(|| Builder::new().backend(Backend::Native), messages),
    );
    #[cfg(not(cothread_native))]
    println!(
        "{:<34} (build with --features native)",
        "cothread RunLoop, native backend"
    );
    report(
        "OS threads + crossbeam-channel",
        messages,
        want,
        on_os_threads(messages),
    );
}
