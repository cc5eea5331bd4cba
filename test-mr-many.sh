#!/usr/bin/env bash
# Runs test-mr.sh N times in a row and stops at the first failure.
#   ./test-mr-many.sh 10
set -u
if [ $# -ne 1 ] || ! [ "$1" -gt 0 ] 2>/dev/null; then
  echo "usage: $0 N   (run test-mr.sh N times, stop at the first failure)" >&2
  exit 2
fi
cd "$(dirname "$0")" || exit 1
for i in $(seq 1 "$1"); do
  echo "*** run $i of $1"
  if ! ./test-mr.sh > "test-mr-run.log" 2>&1; then
    tail -n 30 test-mr-run.log
    echo "*** FAILED on run $i (full output in test-mr-run.log, process logs in mr-tmp/logs/)"
    exit 1
  fi
  grep -E '^(---|\*\*\*) ' test-mr-run.log | grep -E 'FAIL|PASSED' | tail -n 1
done
echo "*** PASSED ALL $1 RUNS"
