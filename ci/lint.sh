#!/usr/bin/env bash
# Lints: clippy with warnings as errors, formatting, and documentation without warnings.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component add clippy rustfmt >/dev/null 2>&1 || true
cargo fmt --all -- --check
(cd loom-tests && cargo fmt -- --check)
cargo clippy --all-targets -- -D warnings
cargo clippy --all-targets --features native -- -D warnings
RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps
RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps --features native
