#!/usr/bin/env bash
# Targeted repro of a leak mr-chaos's wc runs are too small to hit reliably: a worker
# whose revoked reduce starts only after the coordinator's end-of-job temp sweep exits
# mid-reduce (main.rs waits 100 ms for the task thread) and leaves a .mr-tmp-* file.
#
#   1. worker A (--task-delay 0.5) runs the job alone and gets reduce-0;
#   2. A is frozen (SIGSTOP) in its delay; worker B joins, A is declared lost, B does
#      reduce-0, the job ends, the coordinator sweeps temp files and exits;
#   3. A is resumed: its reduce starts at once (the delay elapsed while frozen), its
#      heartbeat fails, it exits ~100 ms later, mid-reduce.
# Needs a reduce longer than 100 ms: indexer, R=1, 200 MiB in 50 splits. Takes ~1 min.
# Usage: chaos/scripts/late-temp-file.sh   (after cargo build --release --workspace)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=$ROOT/target/release
DIR=$(mktemp -d /tmp/mr-late-temp-XXXXXX)
python3 "$ROOT/../shared/tools/make-corpus" --out "$DIR/corpus" --total-mb 200 --files 8 --seed 3 >/dev/null 2>&1
mkdir "$DIR/run" && cd "$DIR/run"
RUST_LOG=info "$B/coordinator" --addr unix:c.sock --reduce 1 --task-timeout 30 \
  --worker-timeout 1 --split-size 4MiB --no-journal "$DIR"/corpus/*.txt 2>coordinator.log &
C=$!
sleep 0.3
RUST_LOG=info "$B/worker" --coordinator unix:c.sock --coordinator-timeout 3 --task-delay 0.5 \
  "$B/libindexer.so" 2>a.log &
A=$!
for _ in $(seq 6000); do grep -q "running.*task=reduce-0" a.log && break; sleep 0.01; done
kill -STOP $A
RUST_LOG=info "$B/worker" --coordinator unix:c.sock --coordinator-timeout 3 "$B/libindexer.so" 2>b.log &
W=$!
wait $C
sleep 3.5
kill -CONT $A
wait $A $W || true
if ls -A | grep -q '^\.mr-tmp-'; then
  echo "FAIL: temp file left after every process exited: $(ls -A | grep '^\.mr-tmp-') (in $DIR/run)"
  exit 1
fi
echo "PASS: no temp file left"
grep -h "task finished.*reduce" b.log; rm -rf "$DIR"
