//! QEMU's `/perf/*` cases for cothread, each printed with its baseline measured in the same run and their ratio.
//!
//! Run: `cargo run --release --example perf` (add `--features native` for the native backend's rows). Each figure is
//! the median of three timed runs after calibrating the iteration count to ~150 ms a run, except the
//! "interleaved" rows: medians of alternating short runs (see `workloads::interleaved`), with their ratios in
//! the last lines. `-- park-vs-parking-lot` runs only the thread backend's pair (40 pairs of 1,000 round
//! trips); `--features native -- native-vs-corosensei` only the native backend's against raw corosensei (the
//! round trip and the pooled lifecycle, 400 pairs each); `-- generators` only the generators' rows against their
//! baselines (thread: the QEMU-style round trip; native: corosensei); `-- spin-vs-raw` only the spinning round
//! trip against the raw spin ping-pong (100 pairs of 2,000); `-- sticky` only the sticky-park case (40 phases,
//! each a parking_lot batch then 1,000 timed round trips, with per-phase lines: how many round trips the thread
//! backend took to come back within 2x the raw spin ping-pong at spinning speed, measured in the same run).
//!
//! Each row is a figure in nanoseconds per operation, the baseline row it is read against (measured in the
//! same process, a few seconds apart or, for the interleaved rows, in alternating runs milliseconds apart) and
//! their ratio; for interleaved rows the ratio is the median of the pairs' ratios. Baseline rows have no ratio.
//! A loaded host moves every figure, baselines included: compare ratios across runs, not the figures.
//! `docs/performance.md` says what each row measures.

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

/// The depth of the deep chains (`nesting` rows).
const DEPTH: u32 = 1000;

/// Interleaved comparison of the parked round trip with the parking_lot ping-pong: pairs, round trips a run.
const PAIRS: usize = 40;
const PAIR_ITERS: u64 = 1000;
/// Below this a parked round trip stayed on one vCPU of the development VM (about 6 us; across two, 80 us).
const ONE_CPU_NS: f64 = 20_000.0;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The rows printed at the end: each figure with the baseline it is read against.
#[derive(Default)]
struct Table {
    rows: Vec<Row>,
}

/// One figure, in ns per operation.
struct Row {
    case: &'static str,
    variant: &'static str,
    ns: f64,
    /// The row of its baseline (`None`: a baseline itself) and the ratio to it.
    against: Option<(usize, f64)>,
}

impl Table {
    /// Adds a baseline row and returns it, for the figures read against it.
    fn baseline(&mut self, case: &'static str, variant: &'static str, ns: f64) -> usize {
        self.push(Row {
            case,
            variant,
            ns,
            against: None,
        })
    }

    /// Adds a figure read against `baseline`, their ratio being the quotient of the two.
    fn figure(&mut self, case: &'static str, variant: &'static str, ns: f64, baseline: usize) {
        let ratio = ns / self.rows[baseline].ns;
        self.push(Row {
            case,
            variant,
            ns,
            against: Some((baseline, ratio)),
        });
    }

    /// Adds interleaved pairs (figure, baseline): the medians of each side, and the median of the pairs' ratios.
    fn pairs(
        &mut self,
        case: &'static str,
        variant: &'static str,
        baseline_variant: &'static str,
        pairs: &[(f64, f64)],
    ) {
        let baseline = self.baseline(
            case,
            baseline_variant,
            median(pairs.iter().map(|p| p.1).collect()),
        );
        self.push(Row {
            case,
            variant,
            ns: median(pairs.iter().map(|p| p.0).collect()),
            against: Some((baseline, median(pairs.iter().map(|p| p.0 / p.1).collect()))),
        });
    }

    fn push(&mut self, row: Row) -> usize {
        eprintln!("  {}", self.line(&row));
        self.rows.push(row);
        self.rows.len() - 1
    }

    /// A row as printed: case, variant, ns/op, then for a figure its ratio and the baseline's variant.
    fn line(&self, row: &Row) -> String {
        let mut line = format!("{:<14} {:<50} {:>11.1}", row.case, row.variant, row.ns);
        if let Some((baseline, ratio)) = row.against {
            let precision = if ratio < 0.1 { 4 } else { 2 };
            line += &format!("  {ratio:>9.precision$}x  {}", self.rows[baseline].variant);
        }
        line
    }

    fn print(&self) {
        println!(
            "{:<14} {:<50} {:>11}  {:>10}  baseline (same run)",
            "case", "variant", "ns/op", "ratio"
        );
        println!("{}", "-".repeat(120));
        for row in &self.rows {
            println!("{}", self.line(row));
        }
    }
}

/// The parked round trip against its baseline, in alternating short runs (see `workloads::interleaved`):
/// adds two rows and returns the summary line.
fn park_vs_parking_lot(table: &mut Table) -> String {
    let pairs = workloads::interleaved(
        PAIRS,
        PAIR_ITERS,
        |n| workloads::round_trip(Variant::PARK, n),
        workloads::ping_pong_parking_lot,
    );
    table.pairs(
        "yield",
        "thread, park (interleaved)",
        "baseline: parking_lot (interleaved)",
        &pairs,
    );
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
        "thread park / parking_lot over {PAIRS} interleaved pairs of {PAIR_ITERS} round trips: thread park no \
         slower in {faster}; both under {} us in {one_cpu} pairs, one under and one over in {mixed}",
        ONE_CPU_NS / 1000.0
    );
    eprintln!("  {summary}");
    summary
}

/// Interleaved comparison of the spinning round trip with the raw spin ping-pong: pairs, round trips a run.
const SPIN_PAIRS: usize = 100;
const SPIN_PAIR_ITERS: u64 = 2000;

/// The spinning round trip against the raw atomic spin ping-pong, in alternating short runs (see
/// `workloads::interleaved`): adds two rows and returns the summary line.
fn spin_vs_raw(table: &mut Table) -> String {
    let spin = workloads::initial_spin();
    let pairs = workloads::interleaved(
        SPIN_PAIRS,
        SPIN_PAIR_ITERS,
        |n| workloads::round_trip(Variant::SPIN, n),
        |n| workloads::ping_pong_spin_park(spin, n),
    );
    table.pairs(
        "yield",
        "thread, spin (interleaved)",
        "baseline: atomic spin-then-park (interleaved)",
        &pairs,
    );
    let within_2x = pairs.iter().filter(|p| p.0 <= 2.0 * p.1).count();
    let two_cpus: Vec<_> = pairs.iter().filter(|p| p.1 < SHARED_CPU_NS).collect();
    let two_cpus_within = two_cpus.iter().filter(|p| p.0 <= 2.0 * p.1).count();
    let two_cpus_ratio = if two_cpus.is_empty() {
        "-".to_string()
    } else {
        format!(
            "{:.2}x",
            median(two_cpus.iter().map(|p| p.0 / p.1).collect())
        )
    };
    let summary = format!(
        "thread spin / raw spin over {SPIN_PAIRS} interleaved pairs of {SPIN_PAIR_ITERS} round trips: within 2x \
         in {within_2x}; in the {} pairs whose raw spin ran on two CPUs (under {SHARED_CPU_NS} ns): within 2x in \
         {two_cpus_within}, median ratio {two_cpus_ratio}",
        two_cpus.len()
    );
    eprintln!("  {summary}");
    summary
}

/// The sticky-park case (`workloads::sticky`): phases, parking_lot round trips before each batch, timed round
/// trips a batch, the window whose median must be within 2x, and the round trips allowed to get there.
const STICKY_PHASES: usize = 40;
const STICKY_PARK_TRIPS: u64 = 200;
const STICKY_TRIPS: usize = 1000;
const STICKY_WINDOW: usize = 16;
const STICKY_WITHIN: usize = 100;
/// Above this the raw spin ping-pong's two threads shared one vCPU of the development VM (3-5 us a round trip
/// there, each wait ending in a `sched_yield`; 60-300 ns across two vCPUs): nothing spins fast in such a phase.
const SHARED_CPU_NS: f64 = 1000.0;

/// The first round trip from which `STICKY_WINDOW` round trips have a median within 2x `baseline`, if any.
fn recovered_at(trips: &[f64], baseline: f64) -> Option<usize> {
    (0..=trips.len().saturating_sub(STICKY_WINDOW))
        .find(|&k| median(trips[k..k + STICKY_WINDOW].to_vec()) <= 2.0 * baseline)
}

/// After each parking_lot batch, how many round trips the thread backend takes to come back within 2x the raw
/// spin ping-pong at spinning speed: the median, over the run's phases in which the raw spin ran on two CPUs,
/// of its second halves (the raw spin gets stuck on one CPU too, and is no baseline then; a run with no such
/// phase has none). The raw spin's own count beside it. Adds two rows (steady second halves, phase by phase)
/// and returns the summary line.
fn sticky(table: &mut Table) -> String {
    let phases = workloads::sticky(STICKY_PHASES, STICKY_PARK_TRIPS, STICKY_TRIPS);
    let half = STICKY_TRIPS / 2;
    let raw: Vec<f64> = phases
        .iter()
        .map(|p| median(p.raw_spin[half..].to_vec()))
        .collect();
    let two_cpus: Vec<f64> = raw.iter().copied().filter(|&r| r < SHARED_CPU_NS).collect();
    let baseline = median(if two_cpus.is_empty() {
        raw.clone()
    } else {
        two_cpus.clone()
    });
    let (mut recovered, mut raw_recovered) = (0, 0);
    // Also against each phase's own raw spin, where it ran on two CPUs: the host can change state within a run
    // (the raw spin at 70 ns in some phases and 140 ns in others), which moves the run's one bar for all.
    let (mut own_phases, mut own_recovered) = (0, 0);
    let mut pairs = Vec::new();
    eprintln!("  baseline (raw spin at spinning speed, this run): {baseline:.0} ns");
    eprintln!(
        "  phase  raw spin ns  cothread recovered at  raw spin recovered at  first 100 trips ns (cothread, raw)"
    );
    for (i, p) in phases.iter().enumerate() {
        pairs.push((median(p.cothread[half..].to_vec()), raw[i]));
        let at = recovered_at(&p.cothread, baseline);
        let raw_at = recovered_at(&p.raw_spin, baseline);
        recovered += usize::from(at.is_some_and(|k| k <= STICKY_WITHIN));
        if raw[i] < SHARED_CPU_NS {
            own_phases += 1;
            own_recovered +=
                usize::from(recovered_at(&p.cothread, raw[i]).is_some_and(|k| k <= STICKY_WITHIN));
        }
        raw_recovered += usize::from(raw_at.is_some_and(|k| k <= STICKY_WITHIN));
        let show = |at: Option<usize>| at.map_or("never".to_string(), |k| k.to_string());
        let first = |t: &[f64]| t[..STICKY_WITHIN].iter().sum::<f64>() / STICKY_WITHIN as f64;
        eprintln!(
            "  {i:>5}  {:>11.0}  {:>21}  {:>21}  {:>10.0} {:>10.0}",
            raw[i],
            show(at),
            show(raw_at),
            first(&p.cothread),
            first(&p.raw_spin)
        );
    }
    table.pairs(
        "sticky",
        "thread, spin, after parking (steady half)",
        "baseline: raw spin ping-pong, after parking",
        &pairs,
    );
    let summary = if two_cpus.is_empty() {
        format!(
            "sticky: the raw spin ran on one CPU in all {STICKY_PHASES} phases (at or above {SHARED_CPU_NS} ns): no \
             baseline at spinning speed in this run (the host is busy); run again"
        )
    } else {
        format!(
            "sticky: over {STICKY_PHASES} phases (each after {STICKY_PARK_TRIPS} parking_lot round trips), the \
             thread backend's round trip came back within 2x the raw spin ping-pong at spinning speed ({baseline:.0} \
             ns, the median of the {} phases whose raw spin ran on two CPUs, under {SHARED_CPU_NS} ns) within \
             {STICKY_WITHIN} round trips (median of {STICKY_WINDOW}) in {recovered} ({:.0} %); the raw spin itself \
             in {raw_recovered}; against each phase's own raw spin, in {own_recovered} of the {own_phases} phases \
             whose raw spin ran on two CPUs",
            two_cpus.len(),
            100.0 * recovered as f64 / STICKY_PHASES as f64
        )
    };
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
/// rows and returns the summary line.
#[cfg(cothread_native)]
fn native_vs_corosensei(table: &mut Table) -> String {
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
    table.pairs(
        "yield",
        "native (interleaved)",
        "baseline: corosensei (interleaved)",
        &trips,
    );
    table.pairs(
        "lifecycle",
        "native, pooled (interleaved)",
        "baseline: corosensei (interleaved)",
        &lives,
    );
    let within_2x = trips.iter().filter(|p| p.0 <= 2.0 * p.1).count();
    let under_60 = lives.iter().filter(|p| p.0 < 60.0).count();
    let summary = format!(
        "native / corosensei over {NATIVE_PAIRS} interleaved pairs: round trip ({NATIVE_ROUND_TRIPS} a run) within \
         2x in {within_2x} pairs; pooled lifecycle ({NATIVE_LIFECYCLES} a run) under 60 ns in {under_60} pairs"
    );
    eprintln!("  {summary}");
    summary
}

/// Interleaved run-loop switch comparisons: pairs, and switches a run (native; thread).
#[cfg(cothread_native)]
const LOOP_PAIRS: usize = 200;
#[cfg(cothread_native)]
const LOOP_SWITCHES: u64 = 10_000;
const THREAD_LOOP_PAIRS: usize = 40;
const THREAD_LOOP_SWITCHES: u64 = 2_000;

/// The run loop's task switch (a task calling `yield_to_loop`) against the bare enter + yield of the same
/// backend, and against tokio's `yield_now().await` in its current-thread runtime, each in alternating short
/// runs (see `workloads::interleaved`). Adds the rows and returns the summary line.
fn loop_switch(table: &mut Table) -> String {
    let thread = workloads::interleaved(
        THREAD_LOOP_PAIRS,
        THREAD_LOOP_SWITCHES,
        |n| workloads::loop_switch(Variant::SPIN, n),
        |n| workloads::round_trip(Variant::SPIN, n),
    );
    table.pairs(
        "loop-switch",
        "thread, spin (interleaved)",
        "baseline: thread, spin enter + yield",
        &thread,
    );
    let tokio = workloads::interleaved(
        THREAD_LOOP_PAIRS,
        THREAD_LOOP_SWITCHES,
        |n| workloads::loop_switch(Variant::SPIN, n),
        workloads::tokio_yield,
    );
    table.pairs(
        "loop-switch",
        "thread, spin (interleaved)",
        "baseline: tokio yield_now (interleaved)",
        &tokio,
    );
    #[cfg(cothread_native)]
    {
        use workloads::native;
        let bare = workloads::interleaved(
            LOOP_PAIRS,
            LOOP_SWITCHES,
            native::loop_switch,
            native::round_trip,
        );
        table.pairs(
            "loop-switch",
            "native (interleaved)",
            "baseline: native enter + yield (interleaved)",
            &bare,
        );
        let tokio = workloads::interleaved(
            LOOP_PAIRS,
            LOOP_SWITCHES,
            native::loop_switch,
            workloads::tokio_yield,
        );
        table.pairs(
            "loop-switch",
            "native (interleaved)",
            "baseline: tokio yield_now (interleaved)",
            &tokio,
        );
        let within_5x = bare.iter().filter(|p| p.0 <= 5.0 * p.1).count();
        let summary = format!(
            "native loop switch / bare native enter + yield over {LOOP_PAIRS} interleaved pairs of \
             {LOOP_SWITCHES}: within 5x in {within_5x} pairs"
        );
        eprintln!("  {summary}");
        summary
    }
    #[cfg(not(cothread_native))]
    String::from("(the native backend's loop switch: --features native)")
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
/// reused stack. Adds the rows.
fn generators(table: &mut Table) {
    let thread = workloads::interleaved(
        THREAD_GENERATOR_PAIRS,
        THREAD_GENERATOR_ROUND_TRIPS,
        |n| workloads::generator_round_trip(Variant::SPIN, n),
        |n| workloads::round_trip(Variant::SPIN, n),
    );
    table.pairs(
        "generator",
        "thread, spin (interleaved)",
        "baseline: thread QEMU-style yield",
        &thread,
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
        table.pairs(
            "generator",
            "native (interleaved)",
            "baseline: corosensei u64 both ways",
            &trips,
        );
        table.pairs(
            "gen-lifecycle",
            "native, pooled (interleaved)",
            "baseline: corosensei reused stack",
            &lives,
        );
    }
}

/// Interleaved runs of the echo benchmark: cothread's server against tokio's current-thread one.
#[cfg(any(unix, windows))]
fn echo_vs_tokio() -> String {
    const PAIRS: usize = 6;
    let run = Duration::from_millis(500);
    let pairs = echo::interleaved(PAIRS, run);
    for (c, t) in &pairs {
        let cpu = match (c.cpu_ns, t.cpu_ns) {
            (Some(c), Some(t)) => format!(
                "  server CPU ns/round trip: cothread {c:>6.0}  tokio {t:>6.0}  ratio {:.2}",
                c / t
            ),
            _ => String::new(),
        };
        eprintln!(
            "  echo round trips/s: cothread {:>10.0}  tokio {:>10.0}  ratio {:.2}{cpu}",
            c.rate,
            t.rate,
            c.rate / t.rate
        );
    }
    let backend = if cfg!(cothread_native) {
        "native"
    } else {
        "thread"
    };
    let c = median(pairs.iter().map(|p| p.0.rate).collect());
    let t = median(pairs.iter().map(|p| p.1.rate).collect());
    let ratio = median(pairs.iter().map(|p| p.0.rate / p.1.rate).collect());
    let mut summary = format!(
        "echo, {} connections x {}-byte messages, {PAIRS} interleaved pairs of {run:?} runs: cothread \
         ({backend} backend) {c:.0} round trips/s, tokio current-thread {t:.0}; median ratio \
         cothread/tokio {ratio:.2}",
        echo::CONNS,
        echo::MSG
    );
    let cpu: Option<Vec<(f64, f64)>> = pairs
        .iter()
        .map(|(c, t)| Some((c.cpu_ns?, t.cpu_ns?)))
        .collect();
    if let Some(cpu) = cpu {
        let c = median(cpu.iter().map(|p| p.0).collect());
        let t = median(cpu.iter().map(|p| p.1).collect());
        let ratio = median(cpu.iter().map(|p| p.0 / p.1).collect());
        summary += &format!(
            "; server thread CPU per round trip: cothread {c:.0} ns, tokio {t:.0} ns, median ratio \
             cothread/tokio {ratio:.2} (below 1: cothread uses less)"
        );
    }
    summary
}

/// The `nesting` rows: per level, a chain of [`DEPTH`] read against one of `SHORT` (the cost of depth itself:
/// more threads or stacks than the caches hold, and new ones wherever the pool does not hold the chain), each
/// figure in steady state (chains repeated after one that warms the pool). Returns the summary: the whole
/// chain's ratio and the threads spawned or stacks mapped per chain with the default pool.
fn chains(table: &mut Table) -> String {
    const SHORT: u32 = 100;
    // Chains counted for the threads or stacks they add.
    const ROUNDS: u32 = 20;
    let per_level = |v: Variant, depth: u32| {
        ns_per_op(|chains| workloads::nesting(v, depth, chains)) / f64::from(depth)
    };
    // The default pool (64 at rest) follows the chain's demand; one set to 1,024 holds it at rest too.
    let whole_chain = |v: Variant| Variant {
        max_idle: 1024,
        ..v
    };
    let whole = |deep: f64, short: f64| deep * f64::from(DEPTH) / (short * f64::from(SHORT));
    let short_ns = per_level(Variant::SPIN, SHORT);
    let short_spin = table.baseline(
        "nesting",
        "baseline: thread, spin, chain of 100 (per level)",
        short_ns,
    );
    let deep_ns = per_level(Variant::SPIN, DEPTH);
    table.figure(
        "nesting",
        "thread, spin, default pool (per level of 1000)",
        deep_ns,
        short_spin,
    );
    table.figure(
        "nesting",
        "thread, spin, pool 1024 (per level of 1000)",
        per_level(whole_chain(Variant::SPIN), DEPTH),
        short_spin,
    );
    let short_park = table.baseline(
        "nesting",
        "baseline: thread, park, chain of 100 (per level)",
        per_level(Variant::PARK, SHORT),
    );
    table.figure(
        "nesting",
        "thread, park, pool 1024 (per level of 1000)",
        per_level(whole_chain(Variant::PARK), DEPTH),
        short_park,
    );
    #[allow(unused_mut)] // only added to where the native backend runs
    let mut summary = format!(
        "steady chains of {DEPTH} against {SHORT}, default pool, whole chain: thread, spin {:.1}x \
         ({:.1} threads spawned a chain of {DEPTH}, {:.1} a chain of {SHORT})",
        whole(deep_ns, short_ns),
        workloads::nesting_new_threads(Variant::SPIN, DEPTH, ROUNDS),
        workloads::nesting_new_threads(Variant::SPIN, SHORT, ROUNDS),
    );
    #[cfg(cothread_native)]
    {
        use workloads::native;
        let per_level = |depth: u32| {
            ns_per_op(|chains| native::nesting_default_pool(depth, chains)) / f64::from(depth)
        };
        let short_ns = per_level(SHORT);
        let short = table.baseline(
            "nesting",
            "baseline: native, chain of 100 (per level)",
            short_ns,
        );
        let deep_ns = per_level(DEPTH);
        table.figure(
            "nesting",
            "native, default pool (per level of 1000)",
            deep_ns,
            short,
        );
        table.figure(
            "nesting",
            "native, pool 1001 (per level of 1000)",
            ns_per_op(|chains| native::nesting(DEPTH, chains)) / f64::from(DEPTH),
            short,
        );
        summary += &format!(
            "; native {:.1}x ({:.1} stacks mapped a chain of {DEPTH}, {:.1} a chain of {SHORT})",
            whole(deep_ns, short_ns),
            native::nesting_new_stacks(DEPTH, ROUNDS),
            native::nesting_new_stacks(SHORT, ROUNDS),
        );
    }
    summary
}

fn main() {
    workloads::initial_spin(); // record the starting spin limit before any variant changes it
    let mut table = Table::default();
    eprintln!("measuring (ns/op):");
    if std::env::args().nth(1).as_deref() == Some("park-vs-parking-lot") {
        // Only the interleaved comparison: `cargo run --release --example perf -- park-vs-parking-lot`.
        let summary = park_vs_parking_lot(&mut table);
        table.print();
        println!("{summary}");
        return;
    }
    if std::env::args().nth(1).as_deref() == Some("spin-vs-raw") {
        // Only the spinning round trip against the raw spin: `cargo run --release --example perf -- spin-vs-raw`.
        let summary = spin_vs_raw(&mut table);
        table.print();
        println!("{summary}");
        return;
    }
    if std::env::args().nth(1).as_deref() == Some("sticky") {
        // Only the sticky-park case: `cargo run --release --example perf -- sticky`.
        let summary = sticky(&mut table);
        table.print();
        println!("{summary}");
        return;
    }
    #[cfg(any(unix, windows))]
    if std::env::args().nth(1).as_deref() == Some("echo") {
        // `cargo run --release [--features native] --example perf -- echo`.
        println!("{}", echo_vs_tokio());
        return;
    }
    if std::env::args().nth(1).as_deref() == Some("loop-switch") {
        // `cargo run --release [--features native] --example perf -- loop-switch`.
        let summary = loop_switch(&mut table);
        table.print();
        println!("{summary}");
        return;
    }
    if std::env::args().nth(1).as_deref() == Some("chains") {
        // Only the deep chains: `cargo run --release [--features native] --example perf -- chains`.
        let summary = chains(&mut table);
        table.print();
        println!("{summary}");
        return;
    }
    if std::env::args().nth(1).as_deref() == Some("generators") {
        // Only the generators' comparisons: `cargo run --release [--features native] --example perf -- generators`.
        generators(&mut table);
        table.print();
        return;
    }
    #[cfg(cothread_native)]
    if std::env::args().nth(1).as_deref() == Some("native-vs-corosensei") {
        // `cargo run --release --features native --example perf -- native-vs-corosensei`.
        let summary = native_vs_corosensei(&mut table);
        table.print();
        println!("{summary}");
        return;
    }

    let call = table.baseline(
        "function-call",
        "baseline: noinline call",
        ns_per_op(workloads::function_call),
    );

    let spawn_join = table.baseline(
        "lifecycle",
        "baseline: thread::spawn + join",
        ns_per_op(workloads::spawn_join),
    );
    table.figure(
        "lifecycle",
        "thread, pooled, spin",
        ns_per_op(|n| workloads::lifecycle(Variant::SPIN, n)),
        spawn_join,
    );
    table.figure(
        "lifecycle",
        "thread, pooled, park",
        ns_per_op(|n| workloads::lifecycle(Variant::PARK, n)),
        spawn_join,
    );
    table.figure(
        "lifecycle",
        "thread, unpooled",
        ns_per_op(|n| workloads::lifecycle(Variant::UNPOOLED, n)),
        spawn_join,
    );

    let spin_park = table.baseline(
        "yield",
        "baseline: atomic spin-then-park",
        ns_per_op(|n| workloads::ping_pong_spin_park(workloads::initial_spin(), n)),
    );
    table.figure(
        "yield",
        "thread, spin",
        ns_per_op(|n| workloads::round_trip(Variant::SPIN, n)),
        spin_park,
    );
    let parking_lot = table.baseline(
        "yield",
        "baseline: parking_lot ping-pong",
        ns_per_op(workloads::ping_pong_parking_lot),
    );
    table.figure(
        "yield",
        "thread, park",
        ns_per_op(|n| workloads::round_trip(Variant::PARK, n)),
        parking_lot,
    );
    table.figure(
        "yield",
        "std Mutex+Condvar ping-pong",
        ns_per_op(workloads::ping_pong_std),
        parking_lot,
    );
    table.figure(
        "yield",
        "crossbeam bounded(0) ping-pong",
        ns_per_op(workloads::ping_pong_crossbeam),
        parking_lot,
    );

    let interleaved_summary = park_vs_parking_lot(&mut table);
    let spin_summary = spin_vs_raw(&mut table);
    let sticky_summary = sticky(&mut table);

    // A scheduler's enter is a round trip to one of many threads: read against the round trip's baselines.
    table.figure(
        "round-robin",
        "thread, spin (100 coroutines, per enter)",
        ns_per_op(|n| workloads::round_robin(Variant::SPIN, 100, n)),
        spin_park,
    );
    table.figure(
        "round-robin",
        "thread, park (100 coroutines, per enter)",
        ns_per_op(|n| workloads::round_robin(Variant::PARK, 100, n)),
        parking_lot,
    );

    let chains_summary = chains(&mut table);

    #[cfg(cothread_native)]
    {
        use workloads::native;
        let raw_lifecycle = table.baseline(
            "lifecycle",
            "baseline: raw corosensei",
            ns_per_op(native::raw_lifecycle),
        );
        table.figure(
            "lifecycle",
            "native, pooled stack",
            ns_per_op(native::lifecycle),
            raw_lifecycle,
        );
        table.figure(
            "lifecycle",
            "native, unpooled (fresh mmap)",
            ns_per_op(native::lifecycle_unpooled),
            raw_lifecycle,
        );
        let raw_round_trip = table.baseline(
            "yield",
            "baseline: raw corosensei",
            ns_per_op(native::raw_round_trip),
        );
        table.figure(
            "yield",
            "native",
            ns_per_op(native::round_trip),
            raw_round_trip,
        );
        table.figure(
            "round-robin",
            "native (100 coroutines, per enter)",
            ns_per_op(|n| native::round_robin(100, n)),
            raw_round_trip,
        );
    }
    #[cfg(cothread_native)]
    let native_summary = native_vs_corosensei(&mut table);
    #[cfg(not(cothread_native))]
    eprintln!("  (build with --features native for the native backend's rows)");

    generators(&mut table);
    let loop_summary = loop_switch(&mut table);

    // The same call again: if it moved, so did the host's load during the run.
    table.figure(
        "function-call",
        "noinline call, at the end of the run",
        ns_per_op(workloads::function_call),
        call,
    );

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "cothread perf ({cores} cores; spin limit {}; ns per operation, median of 3 or of the interleaved pairs)",
        workloads::initial_spin()
    );
    table.print();
    println!("{interleaved_summary}");
    println!("{chains_summary}");
    println!("{spin_summary}");
    println!("{sticky_summary}");
    #[cfg(cothread_native)]
    println!("{native_summary}");
    println!("{loop_summary}");
    let s = cothread::pool::stats();
    println!();
    println!(
        "pool: created {} reused {} idle {} exited {}",
        s.created, s.reused, s.idle, s.exited
    );
}
