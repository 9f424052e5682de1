#!/usr/bin/env bash
# panic = "abort": nothing can unwind, so dropping a suspended coroutine must leak it (its thread parked, or its
# native stack suspended, for good) rather than abort. ci/panic-abort/ is a release program built with
# `panic = "abort"` that drops 10,000 suspended coroutines on each backend and goes through a few other fault
# paths (unstarted and finished coroutines, a drop while a handle's enter runs the coroutine, a loop dropped
# while its tasks wait).
# An abort anywhere fails the step. Budget: about a minute on 2 cores (most of it the build).
set -euo pipefail
cd "$(dirname "$0")/panic-abort"
SECONDS=0
cargo build --release --quiet
out=$(timeout 120 ./target/release/cothread-panic-abort 10000)
echo "$out"
grep -q "panic-abort: all fault paths passed" <<<"$out"
echo "--- panic = \"abort\": passed in ${SECONDS} s"
