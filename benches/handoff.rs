//! Criterion benches of the hand-off: one group per operation, one line per variant, baselines in the same
//! run. `cargo bench --bench handoff` (filter with e.g. `-- round_trip`); `--features native` adds the native
//! backend's lines and corosensei's bare switch as their baseline.

#[path = "support/workloads.rs"]
mod workloads;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use workloads::Variant;

/// Chain depth for the nesting group, and a pool bound that holds the whole chain.
const DEPTH: u32 = 100;
const CHAIN_POOL: usize = 128;

fn round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("round_trip");
    // Order: the coroutine thread and the baselines' partner thread each spin in one line and park two lines
    // later, so that the parked lines compared with each other have the same history. (Where the scheduler
    // puts a thread that spun a moment ago differs from where it puts a cool one, and a parked round trip
    // costs ~6 us on one vCPU but ~80 us across two on the development VM; see `workloads::on_partner`.)
    g.bench_function("thread/spin", |b| {
        b.iter_custom(|n| workloads::round_trip(Variant::SPIN, n))
    });
    g.bench_function("baseline/spin_then_park", |b| {
        b.iter_custom(|n| workloads::ping_pong_spin_park(workloads::initial_spin(), n))
    });
    g.bench_function("thread/park", |b| {
        b.iter_custom(|n| workloads::round_trip(Variant::PARK, n))
    });
    g.bench_function("baseline/parking_lot", |b| {
        b.iter_custom(workloads::ping_pong_parking_lot)
    });
    g.bench_function("baseline/std_mutex_condvar", |b| {
        b.iter_custom(workloads::ping_pong_std)
    });
    g.bench_function("baseline/crossbeam_bounded0", |b| {
        b.iter_custom(workloads::ping_pong_crossbeam)
    });
    g.bench_function("baseline/function_call", |b| {
        b.iter_custom(workloads::function_call)
    });
    // The parked round trip and its baseline with the two threads pinned: each line measures one placement,
    // whatever the scheduler would have chosen (Linux; a placement needing more CPUs than allowed is left out).
    #[cfg(target_os = "linux")]
    for (name, placement) in [
        ("one_cpu", workloads::Placement::OneCpu),
        ("two_cpus", workloads::Placement::TwoCpus),
    ] {
        if workloads::Pinned::cpu_for(placement, 1).is_none() {
            continue;
        }
        g.bench_function(format!("{name}/thread/park"), |b| {
            b.iter_custom(|n| workloads::round_trip_pinned(placement, n).expect("CPUs"))
        });
        g.bench_function(format!("{name}/baseline/parking_lot"), |b| {
            b.iter_custom(|n| workloads::ping_pong_parking_lot_pinned(placement, n).expect("CPUs"))
        });
    }
    #[cfg(cothread_native)]
    {
        g.bench_function("native", |b| b.iter_custom(workloads::native::round_trip));
        g.bench_function("baseline/corosensei", |b| {
            b.iter_custom(workloads::native::raw_round_trip)
        });
    }
    g.finish();
}

fn lifecycle(c: &mut Criterion) {
    let mut g = c.benchmark_group("lifecycle");
    g.bench_function("thread/pooled/spin", |b| {
        b.iter_custom(|n| workloads::lifecycle(Variant::SPIN, n))
    });
    g.bench_function("thread/pooled/park", |b| {
        b.iter_custom(|n| workloads::lifecycle(Variant::PARK, n))
    });
    g.bench_function("thread/unpooled", |b| {
        b.iter_custom(|n| workloads::lifecycle(Variant::UNPOOLED, n))
    });
    g.bench_function("baseline/thread_spawn_join", |b| {
        b.iter_custom(workloads::spawn_join)
    });
    #[cfg(cothread_native)]
    {
        g.bench_function("native/pooled", |b| {
            b.iter_custom(workloads::native::lifecycle)
        });
        g.bench_function("native/unpooled", |b| {
            b.iter_custom(workloads::native::lifecycle_unpooled)
        });
        g.bench_function("baseline/corosensei_reused_stack", |b| {
            b.iter_custom(workloads::native::raw_lifecycle)
        });
    }
    g.finish();
}

fn nesting(c: &mut Criterion) {
    let mut g = c.benchmark_group("nesting");
    let spin = Variant {
        max_idle: CHAIN_POOL,
        ..Variant::SPIN
    };
    let park = Variant {
        max_idle: CHAIN_POOL,
        ..Variant::PARK
    };
    g.bench_function("thread/spin", |b| {
        b.iter_custom(|n| workloads::nesting(spin, DEPTH, n))
    });
    g.bench_function("thread/park", |b| {
        b.iter_custom(|n| workloads::nesting(park, DEPTH, n))
    });
    #[cfg(cothread_native)]
    g.bench_function("native", |b| {
        b.iter_custom(|n| workloads::native::nesting(DEPTH, n))
    });
    g.finish();
}

fn round_robin(c: &mut Criterion) {
    let mut g = c.benchmark_group("round_robin_100");
    g.bench_function("thread/spin", |b| {
        b.iter_custom(|n| workloads::round_robin(Variant::SPIN, 100, n))
    });
    g.bench_function("thread/park", |b| {
        b.iter_custom(|n| workloads::round_robin(Variant::PARK, 100, n))
    });
    #[cfg(cothread_native)]
    g.bench_function("native", |b| {
        b.iter_custom(|n| workloads::native::round_robin(100, n))
    });
    g.finish();
}

/// The run loop's task switch (a task calling `yield_to_loop`), beside the bare enter + yield of the same
/// backend and tokio's `yield_now().await` on its current-thread runtime.
fn loop_switch(c: &mut Criterion) {
    let mut g = c.benchmark_group("loop_switch");
    g.bench_function("thread/spin", |b| {
        b.iter_custom(|n| workloads::loop_switch(Variant::SPIN, n))
    });
    g.bench_function("baseline/thread_enter_yield/spin", |b| {
        b.iter_custom(|n| workloads::round_trip(Variant::SPIN, n))
    });
    #[cfg(cothread_native)]
    {
        g.bench_function("native", |b| b.iter_custom(workloads::native::loop_switch));
        g.bench_function("baseline/native_enter_yield", |b| {
            b.iter_custom(workloads::native::round_trip)
        });
    }
    g.bench_function("baseline/tokio_yield_now", |b| {
        b.iter_custom(workloads::tokio_yield)
    });
    g.finish();
}

/// Generators: a round trip carrying a `u64` each way, and a lifecycle; each beside its baseline (the
/// QEMU-style round trip on the thread backend, corosensei on the native one).
fn generator(c: &mut Criterion) {
    let mut g = c.benchmark_group("generator");
    g.bench_function("round_trip/thread/spin", |b| {
        b.iter_custom(|n| workloads::generator_round_trip(Variant::SPIN, n))
    });
    g.bench_function("round_trip/baseline/thread_qemu_style/spin", |b| {
        b.iter_custom(|n| workloads::round_trip(Variant::SPIN, n))
    });
    #[cfg(cothread_native)]
    {
        g.bench_function("round_trip/native", |b| {
            b.iter_custom(workloads::native::generator_round_trip)
        });
        g.bench_function("round_trip/baseline/corosensei", |b| {
            b.iter_custom(workloads::native::raw_generator_round_trip)
        });
        g.bench_function("lifecycle/native/pooled", |b| {
            b.iter_custom(workloads::native::generator_lifecycle)
        });
        g.bench_function("lifecycle/baseline/corosensei_reused_stack", |b| {
            b.iter_custom(workloads::native::raw_lifecycle)
        });
    }
    g.finish();
}

/// The sticky-park case: the round trip of a long-lived thread-backed coroutine in the first `STICKY_TRIPS`
/// round trips after a parking_lot batch, beside the raw spin ping-pong's (its partner kept on another CPU)
/// (`workloads::sticky`: `n` round trips are the first ones of `n / STICKY_TRIPS` phases). `examples/perf.rs --
/// sticky` prints how many round trips each phase took to come back within 2x.
fn sticky(c: &mut Criterion) {
    const STICKY_TRIPS: usize = 100;
    /// The time of the first `n` round trips taken phase after phase, `STICKY_TRIPS` from each.
    fn first_trips(n: u64, side: fn(&workloads::StickyPhase) -> &[f64]) -> Duration {
        let phases = workloads::sticky((n as usize).div_ceil(STICKY_TRIPS), 200, STICKY_TRIPS);
        let ns: f64 = phases.iter().flat_map(side).take(n as usize).sum();
        Duration::from_nanos(ns as u64)
    }
    let mut g = c.benchmark_group("sticky");
    g.bench_function("thread/spin_after_parking", |b| {
        b.iter_custom(|n| first_trips(n, |p| &p.cothread))
    });
    g.bench_function("baseline/raw_spin_after_parking", |b| {
        b.iter_custom(|n| first_trips(n, |p| &p.raw_spin))
    });
    g.finish();
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
    targets = round_trip, lifecycle, nesting, round_robin, loop_switch, generator, sticky
}
criterion_main!(benches);
