#!/usr/bin/env bash
# The native backend (`--features native`): the whole test suite with it as the default backend. Other targets
# (macOS, Windows, and those where `native` falls back to the thread backend) are checked by ci/targets.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS=0

cargo test --features native

printf 'ci/native.sh: passed in %d s\n' "$SECONDS"
