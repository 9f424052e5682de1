#!/usr/bin/env bash
# The native backend (`--features native`): the whole test suite with it as the default backend, then
# `cargo check --all-targets` for macOS (aarch64) and Windows (x86_64, GNU) with and without the feature, so that
# code for other platforms (corosensei's stacks, the Unix-only overflow handler, cfg'd tests) cannot silently
# stop building. Checking needs the targets' standard libraries (rustup) and, for one C file that criterion's
# `alloca` dependency compiles in its build script, a C compiler that can target them: clang (installed here if
# missing), freestanding (no macOS SDK or MinGW headers needed), with llvm-ar.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS=0

cargo test --features native

if ! command -v clang >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang >/dev/null
fi
ar_tool=$(command -v llvm-ar || command -v ar)

for target in aarch64-apple-darwin x86_64-pc-windows-gnu; do
    rustup target add "$target"
    var=${target//-/_}
    export "CC_$var=clang" "CFLAGS_$var=-ffreestanding" "AR_$var=$ar_tool"
    cargo check --all-targets --target "$target"
    cargo check --all-targets --target "$target" --features native
done

printf 'ci/native.sh: passed in %d s\n' "$SECONDS"
