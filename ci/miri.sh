#!/usr/bin/env bash
# Miri: the whole test suite (unit, integration and doc tests) under Miri's checks for undefined behaviour
# and data races. Tests shrink their sizes under cfg(miri); the few that cannot run under Miri say why.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component add --toolchain nightly miri rust-src
cargo +nightly miri setup
# -Zmiri-strict-provenance: no integer-to-pointer casts anywhere (parking_lot 0.13 passes it).
# -Zmiri-ignore-leaks: pool threads are detached and wait idle for the next coroutine (up to the idle timeout,
#   5 s) when a test binary's main thread returns. Miri treats threads still alive at that point as an error
#   ("the main thread terminated without waiting for all remaining threads") unless leaks are ignored; the
#   crate has no public way to join its pool threads. Miri has one flag for both checks
#   (rust-lang/miri#1371), so this also turns off its memory-leak report.
export MIRIFLAGS="${MIRIFLAGS:-} -Zmiri-strict-provenance -Zmiri-ignore-leaks"
# cargo-miri builds into target/miri, apart from the normal build.
cargo +nightly miri test
