#!/usr/bin/env bash
# The whole test suite (unit, integration and doc tests; debug builds) on two more targets, with and without the
# `native` feature, on this x86_64 Linux machine:
# - aarch64-unknown-linux-gnu under qemu-user: the native backend's aarch64 stack switch and overflow handler,
#   and the target's cfgs. (qemu-user runs the guest's atomics with the host's strong ordering: aarch64's weak
#   ordering is loom's job, not this one's.)
# - x86_64-pc-windows-gnu under Wine: the Windows code paths (corosensei's Windows stacks, Windows' stack
#   overflow, no `/proc`).
# Installs what it lacks with apt, the targets with rustup, and makes its own Wine prefix under target/wine (kept
# between runs, as the targets' build directories are). Prints each part's time.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS=0
last=0
took() {
    printf 'ci/cross.sh: %s: %d s\n' "$1" $((SECONDS - last))
    last=$SECONDS
}

# Debian (bookworm) packages: the cross linker and C compiler (criterion's `alloca` compiles C), the aarch64
# C library for the linker and for qemu (-L), qemu-user, Wine and MinGW.
missing=()
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
[[ -e /usr/aarch64-linux-gnu/lib/libc.so ]] || missing+=(libc6-dev-arm64-cross)
command -v wine >/dev/null || missing+=(wine wine64)
command -v x86_64-w64-mingw32-gcc >/dev/null || missing+=(gcc-mingw-w64-x86-64)
if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
rustup target add aarch64-unknown-linux-gnu x86_64-pc-windows-gnu
took "packages and targets"

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# No binfmt_misc in a container: cargo runs each test binary through qemu, and the tests that start a child
# process read this variable to do the same (tests/common/child.rs).
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
export WINEPREFIX="$PWD/target/wine"
export WINEDEBUG=-all

# The Wine prefix: created once (wineboot, then wait for the server to write the registry out), then given the
# stand-in for bcryptprimitives.dll that Rust's std needs and Wine 8 lacks (ci/bcryptprimitives.c says why).
if [[ ! -e "$WINEPREFIX/system.reg" ]]; then
    wineboot --init >/dev/null 2>&1
    wineserver -w
fi
dll=target/wine-bcryptprimitives/bcryptprimitives.dll
if [[ ! -e $dll || ci/bcryptprimitives.c -nt $dll ]]; then
    mkdir -p "$(dirname "$dll")"
    x86_64-w64-mingw32-gcc -O2 -Wall -Werror -shared -o "$dll" ci/bcryptprimitives.c -ladvapi32
fi
system32="$WINEPREFIX/drive_c/windows/system32"
cmp -s "$dll" "$system32/bcryptprimitives.dll" || cp "$dll" "$system32/bcryptprimitives.dll"
took "Wine prefix"
# One wineserver for the whole run: left alone it exits a few seconds after the last Wine process, and a test
# binary started just then fails with "wine client error: recvmsg: Connection reset by peer" (seen once in CI
# between tests/pool_burst.rs and tests/pool_limits.rs, not reproducible by hand).
wineserver -p || true
trap 'wineserver -k 2>/dev/null || true' EXIT

# A hang fails the step instead of stalling CI (the tests' own child processes time out after 2 minutes).
for target in aarch64-unknown-linux-gnu x86_64-pc-windows-gnu; do
    for features in "" native; do
        timeout 900 cargo test --target "$target" ${features:+--features "$features"}
        took "cargo test --target $target${features:+ --features $features}"
    done
done

printf 'ci/cross.sh: passed in %d s\n' "$SECONDS"
