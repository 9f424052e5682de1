//! QEMU's `/perf/*` cases for cothread, with plain-thread baselines, in nanoseconds per operation.
//!
//! Run: `cargo run --release --example perf` (add `--features native` for the native backend's rows). Each figure is
//! the median of three timed runs after calibrating the iteration count to ~150 ms a run.

#[path = "../benches/support/workloads.rs"]
mod workloads;

use std::time::Duration;

use workloads::Variant;

/// Median ns per operation of `run(iters)`.
fn ns_per_op(mut run: impl FnMut(u64) -> Duration) -> f64 {
    let mut iters = 16u64;
    loop {
        let t = run(iters);
        if t >= Duration::from_millis(150) || iters >= 1 << 32 {
            break;
        }
        let scale = if t.is_zero() {
            16.0
        } else {
            (0.16 / t.as_secs_f64()).clamp(1.5, 16.0)
        };
        iters = ((iters as f64) * scale) as u64;
    }
    let mut runs: Vec<f64> = (0..3)
        .map(|_| run(iters).as_nanos() as f64 / iters as f64)
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[1]
}

struct Row {
    case: &'static str,
    variant: &'static str,
    ns: f64,
}

fn main() {
    workloads::initial_spin(); // record the starting spin limit before any variant changes it
    let depth = 1000;
    let mut rows = Vec::new();
    let mut row = |case, variant, ns| {
        let r = Row { case, variant, ns };
        eprintln!("  {:<12} {:<34} {:>12.1}", r.case, r.variant, r.ns);
        rows.push(r);
    };
    eprintln!("measuring (ns/op):");

    row(
        "lifecycle",
        "thread, pooled, spin",
        ns_per_op(|n| workloads::lifecycle(Variant::SPIN, n)),
    );
    row(
        "lifecycle",
        "thread, pooled, park",
        ns_per_op(|n| workloads::lifecycle(Variant::PARK, n)),
    );
    row(
        "lifecycle",
        "thread, unpooled",
        ns_per_op(|n| workloads::lifecycle(Variant::UNPOOLED, n)),
    );
    row(
        "lifecycle",
        "baseline: thread::spawn + join",
        ns_per_op(workloads::spawn_join),
    );

    row(
        "yield",
        "thread, spin",
        ns_per_op(|n| workloads::round_trip(Variant::SPIN, n)),
    );
    row(
        "yield",
        "thread, park",
        ns_per_op(|n| workloads::round_trip(Variant::PARK, n)),
    );
    row(
        "yield",
        "baseline: atomic spin-then-park",
        ns_per_op(|n| workloads::ping_pong_spin_park(workloads::initial_spin(), n)),
    );
    row(
        "yield",
        "baseline: parking_lot ping-pong",
        ns_per_op(workloads::ping_pong_parking_lot),
    );
    row(
        "yield",
        "baseline: std Mutex+Condvar",
        ns_per_op(workloads::ping_pong_std),
    );
    row(
        "yield",
        "baseline: crossbeam bounded(0)",
        ns_per_op(workloads::ping_pong_crossbeam),
    );

    row(
        "round-robin",
        "thread, spin (100 coroutines, per enter)",
        ns_per_op(|n| workloads::round_robin(Variant::SPIN, 100, n)),
    );
    row(
        "round-robin",
        "thread, park (100 coroutines, per enter)",
        ns_per_op(|n| workloads::round_robin(Variant::PARK, 100, n)),
    );

    // ns per chain, divided by its depth.
    let per_level =
        |v: Variant| ns_per_op(|chains| workloads::nesting(v, depth, chains)) / f64::from(depth);
    // With the default pool (64 threads) most of a 1,000-deep chain spawns threads; with a pool that holds
    // the whole chain, each level costs two hand-offs.
    let whole_chain = |v: Variant| Variant {
        max_idle: 1024,
        ..v
    };
    row(
        "nesting",
        "thread, spin, pool 64 (per level)",
        per_level(Variant::SPIN),
    );
    row(
        "nesting",
        "thread, spin, pool 1024 (per level)",
        per_level(whole_chain(Variant::SPIN)),
    );
    row(
        "nesting",
        "thread, park, pool 1024 (per level)",
        per_level(whole_chain(Variant::PARK)),
    );

    #[cfg(feature = "native")]
    {
        use workloads::native;
        row(
            "lifecycle",
            "native, pooled stack",
            ns_per_op(native::lifecycle),
        );
        row(
            "lifecycle",
            "native, unpooled (fresh mmap)",
            ns_per_op(native::lifecycle_unpooled),
        );
        row(
            "lifecycle",
            "baseline: raw corosensei",
            ns_per_op(native::raw_lifecycle),
        );
        row("yield", "native", ns_per_op(native::round_trip));
        row(
            "yield",
            "baseline: raw corosensei",
            ns_per_op(native::raw_round_trip),
        );
        row(
            "round-robin",
            "native (100 coroutines, per enter)",
            ns_per_op(|n| native::round_robin(100, n)),
        );
        row(
            "nesting",
            "native (per level of 1000)",
            ns_per_op(|chains| native::nesting(depth, chains)) / f64::from(depth),
        );
    }
    #[cfg(not(feature = "native"))]
    eprintln!("  (build with --features native for the native backend's rows)");

    row(
        "function-call",
        "baseline: noinline call",
        ns_per_op(workloads::function_call),
    );

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "cothread perf ({cores} cores; spin limit {}; ns per operation, median of 3)",
        workloads::initial_spin()
    );
    println!("{:<14} {:<36} {:>12}", "case", "variant", "ns/op");
    println!("{}", "-".repeat(64));
    for r in &rows {
        println!("{:<14} {:<36} {:>12.1}", r.case, r.variant, r.ns);
    }
    let s = cothread::pool::stats();
    println!();
    println!(
        "pool: created {} reused {} idle {} exited {}",
        s.created, s.reused, s.idle, s.exited
    );
}
