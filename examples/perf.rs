//! QEMU's `/perf/*` cases for cothread, with plain-thread baselines, in nanoseconds per operation.
//!
//! Run: `cargo run --release --example perf` (add `--features native` for the native backend's rows). Each figure is
//! the median of three timed runs after calibrating the iteration count to ~150 ms a run, except the
//! "interleaved" rows: medians of alternating short runs (see `workloads::interleaved`), with their ratios in
//! the last lines. `-- park-vs-parking-lot` runs only the thread backend's pair (40 pairs of 1,000 round
//! trips); `--features native -- native-vs-corosensei` only the native backend's against raw corosensei (the
//! round trip and the pooled lifecycle, 400 pairs each); `-- generators` only the generators' rows against their
//! baselines (thread: the QEMU-style round trip; native: corosensei).

#[path = "../benches/support/workloads.rs"]
mod workloads;

#[cfg(any(unix, windows))]
#[path = "../benches/support/echo.rs"]
mod echo;

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
    median(
        (0..3)
            .map(|_| run(iters).as_nanos() as f64 / iters as f64)
            .collect(),
    )
}

/// Interleaved comparison of the parked round trip with the parking_lot ping-pong: pairs, round trips a run.
const PAIRS: usize = 40;
const PAIR_ITERS: u64 = 1000;
/// Below this a parked round trip stayed on one vCPU of the development VM (about 6 us; across two, 80 us).
const ONE_CPU_NS: f64 = 20_000.0;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The parked round trip against its baseline, in alternating short runs (see `workloads::interleaved`):
/// adds two rows and returns the summary line.
fn park_vs_parking_lot(row: &mut impl FnMut(&'static str, &'static str, f64)) -> String {
    let pairs = workloads::interleaved(
        PAIRS,
        PAIR_ITERS,
        |n| workloads::round_trip(Variant::PARK, n),
        workloads::ping_pong_parking_lot,
    );
    let park: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let lot: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    row("yield", "thread, park (interleaved)", median(park));
    row("yield", "baseline: parking_lot (interleaved)", median(lot));
    let ratio = median(pairs.iter().map(|p| p.0 / p.1).collect());
    let faster = pairs.iter().filter(|p| p.0 <= p.1).count();
    let one_cpu = pairs
        .iter()
        .filter(|p| p.0 < ONE_CPU_NS && p.1 < ONE_CPU_NS)
        .count();
    let mixed = pairs
        .iter()
        .filter(|p| (p.0 < ONE_CPU_NS) != (p.1 < ONE_CPU_NS))
        .count();
    let summary = format!(
        "thread park / parking_lot over {PAIRS} interleaved pairs of {PAIR_ITERS} round trips: median ratio \
         {ratio:.2}, thread park no slower in {faster}; both under {} us in {one_cpu} pairs, one under and \
         one over in {mixed}",
        ONE_CPU_NS / 1000.0
    );
    eprintln!("  {summary}");
    summary
}

/// Interleaved comparison of the native backend with raw corosensei: pairs, and operations a run.
#[cfg(cothread_native)]
const NATIVE_PAIRS: usize = 400;
#[cfg(cothread_native)]
const NATIVE_ROUND_TRIPS: u64 = 10_000;
#[cfg(cothread_native)]
const NATIVE_LIFECYCLES: u64 = 2_000;

/// The native round trip and pooled lifecycle against raw corosensei's, in alternating short runs (see
/// `workloads::interleaved`), so that a change in the host's load hits both sides of a pair alike: adds four
/// rows and returns the summary lines.
#[cfg(cothread_native)]
fn native_vs_corosensei(row: &mut impl FnMut(&'static str, &'static str, f64)) -> String {
    use workloads::native;
    let trips = workloads::interleaved(
        NATIVE_PAIRS,
        NATIVE_ROUND_TRIPS,
        native::round_trip,
        native::raw_round_trip,
    );
    let lives = workloads::interleaved(
        NATIVE_PAIRS,
        NATIVE_LIFECYCLES,
        native::lifecycle,
        native::raw_lifecycle,
    );
    let firsts = |pairs: &[(f64, f64)]| median(pairs.iter().map(|p| p.0).collect());
    let seconds = |pairs: &[(f64, f64)]| median(pairs.iter().map(|p| p.1).collect());
    row("yield", "native (interleaved)", firsts(&trips));
    row(
        "yield",
        "baseline: corosensei (interleaved)",
        seconds(&trips),
    );
    row("lifecycle", "native, pooled (interleaved)", firsts(&lives));
    row(
        "lifecycle",
        "baseline: corosensei (interleaved)",
        seconds(&lives),
    );
    let ratio = median(trips.iter().map(|p| p.0 / p.1).collect());
    let within_2x = trips.iter().filter(|p| p.0 <= 2.0 * p.1).count();
    let under_60 = lives.iter().filter(|p| p.0 < 60.0).count();
    let summary = format!(
        "native / corosensei over {NATIVE_PAIRS} interleaved pairs: round trip ({NATIVE_ROUND_TRIPS} a run) median \
         ratio {ratio:.2}, within 2x in {within_2x} pairs; pooled lifecycle ({NATIVE_LIFECYCLES} a run) median \
         {:.1} ns against {:.1} ns, under 60 ns in {under_60} pairs",
        firsts(&lives),
        seconds(&lives)
    );
    eprintln!("  {summary}");
    summary
}

/// Interleaved generator comparisons: pairs, and operations a run (native; thread).
#[cfg(cothread_native)]
const GENERATOR_PAIRS: usize = 200;
#[cfg(cothread_native)]
const GENERATOR_ROUND_TRIPS: u64 = 10_000;
#[cfg(cothread_native)]
const GENERATOR_LIFECYCLES: u64 = 2_000;
const THREAD_GENERATOR_PAIRS: usize = 40;
const THREAD_GENERATOR_ROUND_TRIPS: u64 = 2_000;

/// Generators against their baselines, in alternating short runs (see `workloads::interleaved`): the thread
/// backend's round trip (a `u64` each way) against its QEMU-style round trip, and with `native` the native
/// round trip against corosensei's (a `u64` each way too) and the pooled lifecycle against corosensei's on a
/// reused stack. Adds the rows and returns the summary line.
fn generators(row: &mut impl FnMut(&'static str, &'static str, f64)) -> String {
    let firsts = |pairs: &[(f64, f64)]| median(pairs.iter().map(|p| p.0).collect());
    let seconds = |pairs: &[(f64, f64)]| median(pairs.iter().map(|p| p.1).collect());
    let ratio = |pairs: &[(f64, f64)]| median(pairs.iter().map(|p| p.0 / p.1).collect());
    let thread = workloads::interleaved(
        THREAD_GENERATOR_PAIRS,
        THREAD_GENERATOR_ROUND_TRIPS,
        |n| workloads::generator_round_trip(Variant::SPIN, n),
        |n| workloads::round_trip(Variant::SPIN, n),
    );
    row("generator", "thread, spin (interleaved)", firsts(&thread));
    row(
        "generator",
        "baseline: thread QEMU-style yield",
        seconds(&thread),
    );
    #[allow(unused_mut)]
    let mut summary = format!(
        "generator / baseline, median of interleaved pairs: thread round trip / QEMU-style {:.2}",
        ratio(&thread)
    );
    #[cfg(cothread_native)]
    {
        use workloads::native;
        let trips = workloads::interleaved(
            GENERATOR_PAIRS,
            GENERATOR_ROUND_TRIPS,
            native::generator_round_trip,
            native::raw_generator_round_trip,
        );
        let lives = workloads::interleaved(
            GENERATOR_PAIRS,
            GENERATOR_LIFECYCLES,
            native::generator_lifecycle,
            native::raw_lifecycle,
        );
        row("generator", "native (interleaved)", firsts(&trips));
        row(
            "generator",
            "baseline: corosensei u64 both ways",
            seconds(&trips),
        );
        row(
            "gen-lifecycle",
            "native, pooled (interleaved)",
            firsts(&lives),
        );
        row(
            "gen-lifecycle",
            "baseline: corosensei reused stack",
            seconds(&lives),
        );
        summary += &format!(
            "; native round trip / corosensei {:.2}; native lifecycle / corosensei {:.2}",
            ratio(&trips),
            ratio(&lives)
        );
    }
    eprintln!("  {summary}");
    summary
}

struct Row {
    case: &'static str,
    variant: &'static str,
    ns: f64,
}

/// Interleaved runs of the echo benchmark: cothread's server against tokio's current-thread one.
#[cfg(any(unix, windows))]
fn echo_vs_tokio() -> String {
    const PAIRS: usize = 6;
    let run = Duration::from_millis(500);
    let pairs = echo::interleaved(PAIRS, run);
    for (c, t) in &pairs {
        eprintln!(
            "  echo round trips/s: cothread {c:>10.0}  tokio {t:>10.0}  ratio {:.2}",
            c / t
        );
    }
    let backend = if cfg!(cothread_native) {
        "native"
    } else {
        "thread"
    };
    let c = median(pairs.iter().map(|p| p.0).collect());
    let t = median(pairs.iter().map(|p| p.1).collect());
    let ratio = median(pairs.iter().map(|p| p.0 / p.1).collect());
    format!(
        "echo, {} connections x {}-byte messages, {PAIRS} interleaved pairs of {run:?} runs: cothread \
         ({backend} backend) {c:.0} round trips/s, tokio current-thread {t:.0}; median ratio \
         cothread/tokio {ratio:.2}",
        echo::CONNS,
        echo::MSG
    )
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
    if std::env::args().nth(1).as_deref() == Some("park-vs-parking-lot") {
        // Only the interleaved comparison: `cargo run --release --example perf -- park-vs-parking-lot`.
        println!("{}", park_vs_parking_lot(&mut row));
        return;
    }
    #[cfg(any(unix, windows))]
    if std::env::args().nth(1).as_deref() == Some("echo") {
        // `cargo run --release [--features native] --example perf -- echo`.
        println!("{}", echo_vs_tokio());
        return;
    }
    if std::env::args().nth(1).as_deref() == Some("generators") {
        // Only the generators' comparisons: `cargo run --release [--features native] --example perf -- generators`.
        println!("{}", generators(&mut row));
        return;
    }
    #[cfg(cothread_native)]
    if std::env::args().nth(1).as_deref() == Some("native-vs-corosensei") {
        // `cargo run --release --features native --example perf -- native-vs-corosensei`.
        println!("{}", native_vs_corosensei(&mut row));
        return;
    }

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

    let interleaved_summary = park_vs_parking_lot(&mut row);

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

    #[cfg(cothread_native)]
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
    #[cfg(cothread_native)]
    let native_summary = native_vs_corosensei(&mut row);
    #[cfg(not(cothread_native))]
    eprintln!("  (build with --features native for the native backend's rows)");

    let generator_summary = generators(&mut row);

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
    println!("{interleaved_summary}");
    #[cfg(cothread_native)]
    println!("{native_summary}");
    println!("{generator_summary}");
    let s = cothread::pool::stats();
    println!();
    println!(
        "pool: created {} reused {} idle {} exited {}",
        s.created, s.reused, s.idle, s.exited
    );
}
