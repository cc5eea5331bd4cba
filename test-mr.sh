#!/usr/bin/env bash
#
# The 6.824 MapReduce test harness, run against mr's binaries: the same seven tests
# with the same checks (wc, indexer, map parallelism, reduce parallelism, job count,
# early exit, crash). Builds everything in release mode, runs in a fresh mr-tmp/,
# puts every process's log in mr-tmp/logs/, and exits non-zero on any failure.
#
#   ./test-mr.sh          run all tests
#   ./test-mr.sh quiet    the same (kept for 6.824 compatibility; logs always go to files)

set -u
cd "$(dirname "$0")" || exit 1
ROOT=$PWD

echo '*** Building (cargo build --release --workspace)'
cargo build --release --workspace --quiet || { echo '*** build failed'; exit 1; }
BIN=$ROOT/target/release
COORD=$BIN/coordinator
WORKER=$BIN/worker
SEQ=$BIN/mrsequential
APPS=$BIN
INPUTS=("$ROOT"/data/pg*txt)

rm -rf mr-tmp
mkdir -p mr-tmp/logs || exit 1
cd mr-tmp || exit 1
TMP=$PWD
SOCK=mr-coordinator.sock

# Per-process time limits, as in 6.824.
TIMEOUT="timeout -k 2s 45s"
TIMEOUT2="timeout -k 2s 120s"

failed_any=0
n=0
# Runs a command with its stderr (the tracing log) in logs/.
logged() {
  n=$((n + 1))
  local name="" a
  for a in "$@"; do
    case "$a" in "$BIN"/*) name="${name:+$name-}$(basename -- "$a")" ;; esac
  done
  "$@" 2>"logs/$n-$BASHPID-$name.log"
}

# Kills any process of ours still running in this directory (used on exit).
strays() {
  local pid
  for pid in $(pgrep -f "^$BIN/" 2>/dev/null); do
    if [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$TMP" ]; then
      echo "$pid"
    fi
  done
}
cleanup() {
  local left
  left=$(strays)
  if [ -n "$left" ]; then
    kill -9 $left 2>/dev/null
  fi
}
trap cleanup EXIT

#########################################################
# first word-count

# generate the correct output
logged "$SEQ" "$APPS/libwc.so" "${INPUTS[@]}" || exit 1
sort mr-out-0 > mr-correct-wc.txt
rm -f mr-out*

echo '***' Starting wc test.

logged $TIMEOUT "$COORD" "${INPUTS[@]}" &
pid=$!

# give the coordinator time to create the socket.
sleep 1

# start multiple workers.
(logged $TIMEOUT "$WORKER" "$APPS/libwc.so") &
(logged $TIMEOUT "$WORKER" "$APPS/libwc.so") &
(logged $TIMEOUT "$WORKER" "$APPS/libwc.so") &

# wait for the coordinator to exit.
wait $pid

# since workers are required to exit when a job is completely finished,
# and not before, that means the job has finished.
sort mr-out* | grep . > mr-wc-all
if cmp mr-wc-all mr-correct-wc.txt
then
  echo '---' wc test: PASS
else
  echo '---' wc output is not the same as mr-correct-wc.txt
  echo '---' wc test: FAIL
  failed_any=1
fi

# wait for remaining workers and coordinator to exit.
wait

#########################################################
# now indexer
rm -f mr-*

# generate the correct output
logged "$SEQ" "$APPS/libindexer.so" "${INPUTS[@]}" || exit 1
sort mr-out-0 > mr-correct-indexer.txt
rm -f mr-out*

echo '***' Starting indexer test.

logged $TIMEOUT "$COORD" "${INPUTS[@]}" &
sleep 1

# start multiple workers
logged $TIMEOUT "$WORKER" "$APPS/libindexer.so" &
logged $TIMEOUT "$WORKER" "$APPS/libindexer.so"

sort mr-out* | grep . > mr-indexer-all
if cmp mr-indexer-all mr-correct-indexer.txt
then
  echo '---' indexer test: PASS
else
  echo '---' indexer output is not the same as mr-correct-indexer.txt
  echo '---' indexer test: FAIL
  failed_any=1
fi

wait

#########################################################
echo '***' Starting map parallelism test.

rm -f mr-*

logged $TIMEOUT "$COORD" "${INPUTS[@]}" &
sleep 1

logged $TIMEOUT "$WORKER" "$APPS/libmtiming.so" &
logged $TIMEOUT "$WORKER" "$APPS/libmtiming.so"

NT=$(cat mr-out* | grep -c '^times-')
if [ "$NT" != "2" ]
then
  echo '---' saw "$NT" workers rather than 2
  echo '---' map parallelism test: FAIL
  failed_any=1
fi

if cat mr-out* | grep '^parallel.* 2' > /dev/null
then
  echo '---' map parallelism test: PASS
else
  echo '---' map workers did not run in parallel
  echo '---' map parallelism test: FAIL
  failed_any=1
fi

wait

#########################################################
echo '***' Starting reduce parallelism test.

rm -f mr-*

logged $TIMEOUT "$COORD" "${INPUTS[@]}" &
sleep 1

logged $TIMEOUT "$WORKER" "$APPS/librtiming.so" &
logged $TIMEOUT "$WORKER" "$APPS/librtiming.so"

NT=$(cat mr-out* | grep -c '^[a-z] 2')
if [ "$NT" -lt "2" ]
then
  echo '---' too few parallel reduces.
  echo '---' reduce parallelism test: FAIL
  failed_any=1
else
  echo '---' reduce parallelism test: PASS
fi

wait

#########################################################
echo '***' Starting job count test.

rm -f mr-*

logged $TIMEOUT "$COORD" "${INPUTS[@]}" &
sleep 1

logged $TIMEOUT "$WORKER" "$APPS/libjobcount.so" &
logged $TIMEOUT "$WORKER" "$APPS/libjobcount.so"
logged $TIMEOUT "$WORKER" "$APPS/libjobcount.so" &
logged $TIMEOUT "$WORKER" "$APPS/libjobcount.so"

NT=$(cat mr-out* | awk '{print $2}')
if [ "$NT" -eq "8" ]
then
  echo '---' job count test: PASS
else
  echo '---' map jobs ran incorrect number of times "($NT != 8)"
  echo '---' job count test: FAIL
  failed_any=1
fi

wait

#########################################################
# test whether any worker or coordinator exits before the
# task has completed (i.e., all output files have been finalized)
rm -f mr-*

echo '***' Starting early exit test.

DF=anydone$$
rm -f $DF

(logged $TIMEOUT "$COORD" "${INPUTS[@]}"; touch $DF) &

# give the coordinator time to create the socket.
sleep 1

# start multiple workers.
(logged $TIMEOUT "$WORKER" "$APPS/libearly_exit.so"; touch $DF) &
(logged $TIMEOUT "$WORKER" "$APPS/libearly_exit.so"; touch $DF) &
(logged $TIMEOUT "$WORKER" "$APPS/libearly_exit.so"; touch $DF) &

# wait for any of the coord or workers to exit.
# `jobs` ensures that any completed old processes from other tests
# are not waited upon.
jobs &> /dev/null
# the -n causes wait to wait for just one child process,
# rather than waiting for all to finish.
wait -n

rm -f $DF

# a process has exited. this means that the output should be finalized
# otherwise, either a worker or the coordinator exited early
sort mr-out* | grep . > mr-wc-all-initial

# wait for remaining workers and coordinator to exit.
wait

# compare initial and final outputs
sort mr-out* | grep . > mr-wc-all-final
if cmp mr-wc-all-final mr-wc-all-initial
then
  echo '---' early exit test: PASS
else
  echo '---' output changed after first worker exited
  echo '---' early exit test: FAIL
  failed_any=1
fi
rm -f mr-*

#########################################################
echo '***' Starting crash test.

# generate the correct output
logged "$SEQ" "$APPS/libnocrash.so" "${INPUTS[@]}" || exit 1
sort mr-out-0 > mr-correct-crash.txt
rm -f mr-out*

rm -f mr-done
( (logged $TIMEOUT2 "$COORD" "${INPUTS[@]}"); touch mr-done ) &
sleep 1

# start multiple workers
logged $TIMEOUT2 "$WORKER" "$APPS/libcrash.so" &

( while [ -e $SOCK ] && [ ! -f mr-done ]
  do
    logged $TIMEOUT2 "$WORKER" "$APPS/libcrash.so"
    sleep 1
  done ) &

( while [ -e $SOCK ] && [ ! -f mr-done ]
  do
    logged $TIMEOUT2 "$WORKER" "$APPS/libcrash.so"
    sleep 1
  done ) &

while [ -e $SOCK ] && [ ! -f mr-done ]
do
  logged $TIMEOUT2 "$WORKER" "$APPS/libcrash.so"
  sleep 1
done

wait

sort mr-out* | grep . > mr-crash-all
if cmp mr-crash-all mr-correct-crash.txt > /dev/null
then
  echo '---' crash test: PASS
else
  echo '---' crash output is not the same as mr-correct-crash.txt
  echo '---' crash test: FAIL
  failed_any=1
fi

#########################################################
left=$(strays)
if [ -n "$left" ]; then
  echo '---' processes left behind: $left
  failed_any=1
fi

if [ $failed_any -eq 0 ]; then
    echo '***' PASSED ALL TESTS
else
    echo '***' FAILED SOME TESTS
    exit 1
fi
