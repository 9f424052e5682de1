//! Settings read from the environment once, on first use (`COTHREAD_SPIN_LIMIT`, `COTHREAD_MAX_IDLE`,
//! `COTHREAD_MAX_MAPS`), and the pools' bound that every backend reads.

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

use crate::sync::atomic::{AtomicUsize, Ordering};

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
