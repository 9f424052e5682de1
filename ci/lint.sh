#!/usr/bin/env bash
# Lints: clippy with warnings as errors, formatting, and documentation without warnings.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component add clippy rustfmt >/dev/null 2>&1 || true
cargo fmt --all -- --check
(cd loom-tests 2>/dev/null && cargo fmt -- --check) || [ ! -d loom-tests ]
cargo clippy --all-targets -- -D warnings
RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps
