//! `Backend::is_available` and `Backend::default()`: which backends this build can run, and what spawning an
//! unavailable one does. The rows of the README's target table that CI only compiles (wasm32-unknown-unknown)
//! have their expectations here too, checked by `ci/targets.sh` with `cargo check --tests`.

mod common;

use std::io::ErrorKind;

use cothread::{Backend, Builder};

/// Every backend that exists in this build.
fn backends() -> Vec<Backend> {
    #[allow(unused_mut)]
    let mut all = vec![Backend::Thread];
    #[cfg(feature = "native")]
    all.push(Backend::Native);
    all
}

#[test]
fn an_available_backend_runs_coroutines_and_an_unavailable_one_refuses_them() {
    for backend in backends() {
        let spawned = Builder::new().backend(backend).spawn(|| 40 + 2);
        if backend.is_available() {
            let mut co = spawned.unwrap_or_else(|e| panic!("{backend:?} is available but: {e}"));
            assert_eq!(co.enter().into_returned(), Some(42), "{backend:?}");
        } else {
            let err = spawned.expect_err("an unavailable backend spawned a coroutine");
            assert_eq!(err.kind(), ErrorKind::Unsupported, "{backend:?}: {err}");
        }
    }
}

/// `on_each_backend!` (tests/common) picks its backends by cfg: they must be exactly the available ones, or a
/// shared test would skip a backend or fail on one that cannot run.
#[test]
fn the_shared_tests_run_on_exactly_the_available_backends() {
    let available: Vec<Backend> = backends()
        .into_iter()
        .filter(|b| b.is_available())
        .collect();
    assert_eq!(common::backends(), available);
}

#[test]
fn the_default_is_the_fastest_available_backend() {
    let default = Backend::default();
    #[cfg(feature = "native")]
    if Backend::Native.is_available() {
        assert_eq!(default, Backend::Native);
        return;
    }
    assert_eq!(default, Backend::Thread);
}

/// Where std spawns threads, the thread backend is available.
#[cfg(not(target_family = "wasm"))]
#[test]
fn the_thread_backend_is_available_where_std_has_threads() {
    assert!(Backend::Thread.is_available());
}

/// wasm32-unknown-unknown has no threads: the default stays `Thread`, and spawning fails with `Unsupported`
/// (std's own `thread::spawn` error there), never a panic.
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
#[test]
fn wasm32_unknown_unknown_has_no_threads() {
    assert!(!Backend::Thread.is_available());
    assert_eq!(Backend::default(), Backend::Thread);
    let err = Builder::new().spawn(|| ()).expect_err("spawned a thread");
    assert_eq!(err.kind(), ErrorKind::Unsupported);
}

/// The native backend runs on x86_64 Linux with the feature, except under Miri (inline assembly).
#[cfg(all(feature = "native", target_arch = "x86_64", target_os = "linux"))]
#[test]
fn native_is_available_on_x86_64_linux_except_under_miri() {
    assert_eq!(Backend::Native.is_available(), !cfg!(miri));
}

/// On a target that corosensei does not support, `native` compiles and falls back to the thread backend.
#[cfg(all(
    feature = "native",
    any(
        target_arch = "s390x",
        target_arch = "powerpc64",
        target_family = "wasm"
    )
))]
#[test]
fn native_is_unavailable_where_corosensei_has_no_switch() {
    assert!(!Backend::Native.is_available());
    assert_eq!(Backend::default(), Backend::Thread);
}
