#!/usr/bin/env bash
# loom: model-check the enter/yield hand-off and the wait protocol (loom-tests/, against the real code of src/
# through its sync shim), then show that the models have teeth: rebuilt with each bug planted in src/ (control.rs,
# backend/thread/waiter.rs, coroutine.rs, wait.rs, lock.rs, runloop/task.rs), the models listed for that bug must
# fail, for the expected reason.
#
# Budget: under 10 minutes on a 2-core machine (see loom-tests/README.md for measured times).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS=0

# loom hangs silently (instead of failing) if anything blocks outside the shim: bound every run.
SUITE_TIMEOUT=${SUITE_TIMEOUT:-420}
PLANTED_TIMEOUT=${PLANTED_TIMEOUT:-120}

cd loom-tests
export RUSTFLAGS="--cfg loom"

echo "--- loom models (stable, release, --cfg loom)"
cargo build --release --tests
timeout "$SUITE_TIMEOUT" cargo test --release -- --test-threads=1 --nocapture
echo "--- loom models passed (${SECONDS} s so far)"

# Each planted bug needs cothread rebuilt with `--cfg cothread_planted_bug="<bug>"`. Through RUSTFLAGS that
# would rebuild loom and all its dependencies for every bug (~50 s each here); nightly's per-package
# rustflags (-Zprofile-rustflags) rebuild only cothread and the tests (~6 s each). The same check by hand,
# on any toolchain:
#   RUSTFLAGS='--cfg loom --cfg cothread_planted_bug="<bug>"' cargo test --release --test handoff -- --exact <model>
# A model that catches a lost wake-up makes loom report a deadlock and then abort the process (a double
# panic, loom issue #291), so every run is a child process whose failure is asserted here.
# bug | models that must fail with it (`test/model` for a model outside tests/handoff.rs) | what the first
# failure must say (extended regex)
PLANTED=(
  "notify_without_lock|park_at_once nested_chain pool_reuse|deadlock"
  "state_after_notify|lifecycle_returns park_at_once|deadlock"
  "park_check_without_lock|park_at_once spin_then_park|deadlock"
  "claim_skips_wake|lifecycle_two_yields nested_chain|deadlock"
  "consume_with_store|lifecycle_two_yields spin_then_park|deadlock"
  "relaxed_yield|lifecycle_two_yields panic_reaches_enterer|Causality violation"
  "coroutine_wakes_on_idle|lifecycle_two_yields nested_chain|Causality violation|two threads of one caller chain run at once"
  "claim_drops_cancel|drop_suspended|co: resumed after the drop"
  "drop_loses_claim_race|drop_races_a_handle_enter|coroutine re-entered recursively"
  "register_after_unlock|wait/mutex_woken_from_another_thread|deadlock"
  "schedule_skips_loop_wake|wait/mutex_woken_from_another_thread wait/channel_woken_from_another_thread|deadlock"
  "cancel_forgets_given|wait/wait_cancelled_by_a_drop_after_a_racing_wake|never passed on"
)

failed=0
for entry in "${PLANTED[@]}"; do
  # `expect`, the last field, gets the rest of the entry: the regex may itself contain |.
  IFS='|' read -r bug models expect <<<"$entry"
  planted=(+nightly test --release --target-dir target/planted -Zprofile-rustflags
    --config "profile.release.package.cothread.rustflags=[\"--cfg\", 'cothread_planted_bug=\"$bug\"']")
  # The build must succeed: a planted bug that does not compile would "fail" every model for nothing.
  cargo "${planted[@]}" --tests --no-run --quiet
  for model in $models; do
    test=handoff
    if [[ $model == */* ]]; then test=${model%%/*} model=${model#*/}; fi
    log="target/planted-$bug-$model.log"
    set +e
    timeout "$PLANTED_TIMEOUT" cargo "${planted[@]}" --test "$test" --quiet -- --exact "$model" --test-threads=1 >"$log" 2>&1
    rc=$?
    set -e
    # The first panic's message: the line after the first "panicked at".
    reason=$(awk '/panicked at/ { if ((getline line) > 0) print line; exit }' "$log")
    if [ "$rc" -eq 0 ]; then
      echo "NOT CAUGHT: $bug passed $model"
      failed=1
    elif [ "$rc" -eq 124 ]; then
      echo "NOT CAUGHT: $bug made $model hang for ${PLANTED_TIMEOUT} s"
      failed=1
    elif ! grep -Eq "$expect" <<<"$reason"$'\n'"$(grep -A3 -m1 'panicked at' "$log")"; then
      echo "WRONG FAILURE: $bug in $model: ${reason:-exit status $rc, no panic}"
      tail -n 20 "$log"
      failed=1
    else
      echo "caught: $bug by $model: $(cut -c1-110 <<<"$reason")"
    fi
  done
done
[ "$failed" -eq 0 ] || { echo "some planted bugs were not caught"; exit 1; }
echo "--- loom: all models passed, all ${#PLANTED[@]} planted bugs caught in ${SECONDS} s"
