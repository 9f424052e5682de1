#!/usr/bin/env bash
# The echo example's self-check (a server with one task per connection serving four clients of its own) on
# both backends: the example must keep building and working, not only the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
timeout 120 cargo run --quiet --example echo -- --demo
timeout 120 cargo run --quiet --features native --example echo -- --demo
