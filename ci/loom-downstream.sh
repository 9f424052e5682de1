#!/usr/bin/env bash
# The README's "Checking your own code with loom": the downstream example crate (loom-tests/downstream/, a path
# dependency on cothread) runs its plain `loom::model`s under `--cfg loom`, with cothread's `native` feature on
# (native is then unavailable and loom checks the thread backend), and must pass; built with its planted bug
# (the `planted-bug` feature: a `Relaxed` publication) the model that races a reader must fail, for that reason.
set -euo pipefail
cd "$(dirname "$0")/../loom-tests/downstream"
SECONDS=0

# loom hangs silently (instead of failing) if anything blocks outside its shim: bound every run.
TIMEOUT=${TIMEOUT:-300}
export RUSTFLAGS="--cfg loom"
run=(cargo test --release --features native --test model)

cargo fmt -- --check

"${run[@]}" --no-run --quiet
timeout "$TIMEOUT" "${run[@]}" -- --test-threads=1
echo "--- downstream models passed (${SECONDS} s so far)"

# loom reports the bug and then aborts the process (a double panic): assert the failure and its reason.
"${run[@]}" --features planted-bug --no-run --quiet
mkdir -p target
log=target/planted-bug.log
set +e
timeout "$TIMEOUT" "${run[@]}" --features planted-bug -- --exact publish_races_a_reader >"$log" 2>&1
rc=$?
set -e
if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then
  echo "NOT CAUGHT: the planted bug $([ "$rc" -eq 0 ] && echo passed || echo hung)"
  exit 1
fi
grep -q "Causality violation" "$log" || { echo "WRONG FAILURE:"; tail -n 20 "$log"; exit 1; }
echo "--- caught: $(grep -m1 'Causality violation' "$log")"
echo "ci/loom-downstream.sh: passed in ${SECONDS} s"
