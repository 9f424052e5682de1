#!/usr/bin/env bash
# The target matrix of the README's target table: `cargo check` of the library, and of the tests where the
# target's dev-dependencies build, for each target, without and with `native`. `native` must build everywhere:
# where corosensei has no stack switch (s390x, powerpc64le on stable, wasm) it is not even built, and the crate
# falls back to the thread backend (`cfg(cothread_native)`, build.rs). Runs alone too:
#   bash ci/targets.sh                 # the whole matrix
#   bash ci/targets.sh s390x-unknown-linux-gnu wasm32-unknown-unknown
# Needs the targets' standard libraries (rustup) and, for the one C file that criterion's `alloca`
# dev-dependency compiles in its build script, a C compiler for each target: clang (installed here if missing),
# freestanding (no SDK, NDK or MinGW headers needed), with llvm-ar.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS=0

# target | what to check: "tests" (library and tests) or "lib" (library only)
MATRIX=(
  "aarch64-apple-darwin|tests"
  "x86_64-apple-darwin|tests"
  "x86_64-pc-windows-gnu|tests"
  "aarch64-unknown-linux-gnu|tests"
  "i686-unknown-linux-gnu|tests"
  "armv7-unknown-linux-gnueabihf|tests"
  "riscv64gc-unknown-linux-gnu|tests"
  "powerpc64le-unknown-linux-gnu|tests"
  "s390x-unknown-linux-gnu|tests"
  "x86_64-unknown-freebsd|tests"
  "aarch64-linux-android|tests"
  "wasm32-wasip1-threads|tests"
  "wasm32-unknown-unknown|tests"
)
if [ "$#" -gt 0 ]; then
  wanted=" $* "
  picked=()
  for entry in "${MATRIX[@]}"; do
    [[ "$wanted" == *" ${entry%%|*} "* ]] && picked+=("$entry")
  done
  [ "${#picked[@]}" -eq "$#" ] || { echo "ci/targets.sh: unknown target in: $*"; exit 2; }
  MATRIX=("${picked[@]}")
fi

if ! command -v clang >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang >/dev/null
fi
ar_tool=$(command -v llvm-ar || command -v ar)

targets=()
for entry in "${MATRIX[@]}"; do targets+=("${entry%%|*}"); done
rustup target add "${targets[@]}"

for entry in "${MATRIX[@]}"; do
  IFS='|' read -r target what <<<"$entry"
  var=${target//-/_}
  export "CC_$var=clang" "CFLAGS_$var=-ffreestanding" "AR_$var=$ar_tool"
  scope=(--lib)
  [ "$what" = tests ] && scope=(--lib --tests)
  for features in "" "--features native"; do
    echo "--- $target: cargo check ${scope[*]} $features"
    # shellcheck disable=SC2086 # $features is empty or two words
    cargo check --quiet "${scope[@]}" --target "$target" $features
  done
done

printf 'ci/targets.sh: %d targets checked in %d s\n' "${#MATRIX[@]}" "$SECONDS"
