#!/usr/bin/env bash
# The native backend (`--features native`): the whole test suite with it compiled in, so that every shared test
# runs on both backends (`on_each_backend!`, tests/common) and the native-only tests run. Other targets
# (macOS, Windows, and those where `native` falls back to the thread backend) are checked by ci/targets.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS=0

cargo test --features native

printf 'ci/native.sh: passed in %d s\n' "$SECONDS"
