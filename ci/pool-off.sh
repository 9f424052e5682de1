#!/usr/bin/env bash
# The whole test suite again with the coroutine pool switched off (every coroutine gets a fresh thread):
# pooling must be an optimisation only.
set -euo pipefail
cd "$(dirname "$0")/.."
COTHREAD_MAX_IDLE=0 cargo test --tests
