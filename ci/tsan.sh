#!/usr/bin/env bash
# ThreadSanitizer: the unit and integration tests with std rebuilt under -Zsanitizer=thread, so that every
# lock and atomic in std, parking_lot and the crate is instrumented. Any report fails the run. (Doctests are
# not run here: they would be built without the sanitizer.)
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component add --toolchain nightly rust-src
export RUSTFLAGS="-Zsanitizer=thread"
# Stop at the first report (exit status 66) instead of printing it and going on.
export TSAN_OPTIONS="halt_on_error=1"
# An explicit --target keeps RUSTFLAGS off build scripts and proc macros, and -Zbuild-std needs it; the
# separate target dir keeps these instrumented builds from invalidating the normal ones.
#
# Skipped, both covered by the ordinary test run:
# - the tests of tests/idle_cpu.rs measure the process's CPU time over a second of waiting, and TSan's
#   own background thread (and its slowdown of every spin round) spends more than their 50 ms budget: a
#   performance property, not a race;
# - tests/stack_overflow.rs checks the message of Rust's stack-overflow handler, but under TSan the
#   sanitizer's own SIGSEGV handler reports the overflow ("ThreadSanitizer: stack-overflow") and aborts
#   first.
# The native backend (--features native) is not run here: TSan would need fiber annotations for its stack
# switches.
cargo +nightly test -Zbuild-std --target x86_64-unknown-linux-gnu --target-dir target/tsan --tests -- \
  --skip suspended_coroutines_cost_no_cpu \
  --skip an_enterer_does_not_spin_while_its_coroutine_runs_long \
  --skip a_loop_waiting_for_a_socket_sleeps_in_its_poll \
  --skip thread_backend_overflow_is_reported \
  --skip native_backend_overflow_is_reported
