//! Criterion benches of the pools under deep chains: a chain of 1,000 nested coroutines against a chain of 100,
//! repeated (steady state: the first chain of each measurement warms the pool), with the default pool, which
//! follows the chain's demand. `cargo bench --bench pool`; `--features native` adds the native backend's lines.
//! Read the 1,000 line against the 100 line of the same backend in the same run (goal: at most 25x).

#[path = "support/workloads.rs"]
mod workloads;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use workloads::Variant;

/// The chain depths compared: the baseline and the deep one.
const DEPTHS: [u32; 2] = [100, 1000];

fn steady_chains(c: &mut Criterion) {
    let mut g = c.benchmark_group("steady_chain");
    for depth in DEPTHS {
        g.bench_with_input(BenchmarkId::new("thread/spin", depth), &depth, |b, &d| {
            b.iter_custom(|n| workloads::nesting(Variant::SPIN, d, n))
        });
        #[cfg(cothread_native)]
        g.bench_with_input(BenchmarkId::new("native", depth), &depth, |b, &d| {
            b.iter_custom(|n| workloads::native::nesting_default_pool(d, n))
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = steady_chains
}
criterion_main!(benches);
