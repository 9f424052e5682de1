//! Settings read from the environment once, on first use (`COTHREAD_SPIN_LIMIT`, `COTHREAD_MAX_IDLE`,
//! `COTHREAD_MAX_MAPS`).

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
