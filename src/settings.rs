//! Settings read from the environment once, on first use (`COTHREAD_SPIN_LIMIT`, `COTHREAD_MAX_IDLE`,
//! `COTHREAD_MAX_MAPS`), and the pools' bound and idle timeout that every backend reads.

/// The environment variable `name` as a whole number from 0 to `max`, or `default` if it is not set. Any
/// other value gets one warning on stderr that names the variable and the value used instead: `max` for a
/// larger number, `default` for anything else.
pub(crate) fn env_number(name: &str, default: u64, max: u64) -> u64 {
    let Some(raw) = std::env::var_os(name) else {
        return default;
    };
    let raw = raw.to_string_lossy();
    match raw.trim().parse::<u64>() {
        Ok(n) if n <= max => n,
        Ok(_) => {
            eprintln!("cothread: {name}={raw:?} is more than {max}; using {max}");
            max
        }
        Err(_) => {
            eprintln!(
                "cothread: {name}={raw:?} is not a whole number from 0 to {max}; using {default}"
            );
            default
        }
    }
}

use std::time::Duration;

use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Default bound on idle threads (and on the native backend's idle stacks): 64, the size of QEMU's first
/// coroutine pool.
pub(crate) const DEFAULT_MAX_IDLE: usize = 64;
/// The largest `COTHREAD_MAX_IDLE` taken; a larger one is cut to this, with a warning.
const MAX_ENV_MAX_IDLE: u64 = 10_000;

crate::sync::global! {
    /// The bound every backend's pool keeps (`cothread::pool::set_max_idle`). `COTHREAD_MAX_IDLE` overrides
    /// the default, so a whole test suite can run with pooling off. Under loom pooling starts off: loom
    /// requires every thread of an execution to have finished when the model returns, and an idle pool thread
    /// never would. A model that wants pooling sets it.
    static MAX_IDLE: AtomicUsize = AtomicUsize::new(env_number(
        "COTHREAD_MAX_IDLE",
        if cfg!(loom) { 0 } else { DEFAULT_MAX_IDLE as u64 },
        MAX_ENV_MAX_IDLE,
    ) as usize);
}

/// The pools' bound on idle threads or stacks.
#[inline]
pub(crate) fn max_idle() -> usize {
    MAX_IDLE.load(Ordering::Relaxed)
}

/// Sets the pools' bound; the caller then tells each pool to trim itself.
pub(crate) fn store_max_idle(max: usize) {
    MAX_IDLE.store(max, Ordering::Relaxed);
}

/// The most threads (or stacks) a pool keeps idle after a burst, whatever the burst's size, unless `max_idle` is
/// larger. Up to this many follow recent demand; those beyond `max_idle` go after the idle timeout.
pub(crate) const BURST_CAP: usize = 4096;

/// How many idle threads (or stacks) a pool may hold now: what came back from use within the idle timeout, up
/// to [`BURST_CAP`] (or `max_idle` if larger); none with pooling off.
#[inline]
pub(crate) fn burst_bound(max_idle: usize) -> usize {
    if max_idle == 0 {
        0
    } else {
        max_idle.max(BURST_CAP)
    }
}

/// Default time an idle thread waits for work before it exits, and a native stack beyond `max_idle` stays idle
/// before it is unmapped.
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

crate::sync::global! {
    /// The pools' idle timeout (`cothread::pool::set_idle_timeout`), in nanoseconds.
    static IDLE_TIMEOUT_NS: AtomicU64 = AtomicU64::new(DEFAULT_IDLE_TIMEOUT.as_nanos() as u64);
}

/// The pools' idle timeout.
#[inline]
pub(crate) fn idle_timeout() -> Duration {
    Duration::from_nanos(IDLE_TIMEOUT_NS.load(Ordering::Relaxed))
}

/// Sets the pools' idle timeout (a longer one than `u64::MAX` nanoseconds is cut to that).
pub(crate) fn store_idle_timeout(timeout: Duration) {
    let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    IDLE_TIMEOUT_NS.store(nanos, Ordering::Relaxed);
}
