#!/usr/bin/env bash
# Builds mr in release mode and runs a benchmark.
#   bench/run.sh              word count: 1 GiB corpus in 32 files, 3 runs (bench/bench.py)
#   bench/run.sh --gib 4      the 4 GiB word count
#   bench/run.sh --sort       the sort: 1 GiB of gensort records against GNU sort (bench/sort.py)
#   bench/run.sh --sort --gib 4 --tcp   the 4 GiB sort, also over TCP with TLS and plaintext
#   bench/run.sh --straggler  1 GiB word count with a third worker held to 3% of a CPU by a
#                             cgroup, with and without backup tasks (bench/straggler.py)
#   bench/run.sh --straggler --sort   the same for the sort
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --quiet
if [ "${1:-}" = --straggler ]; then
  shift
  exec python3 bench/straggler.py "$@"
fi
if [ "${1:-}" = --sort ]; then
  shift
  exec python3 bench/sort.py "$@"
fi
exec python3 bench/bench.py "$@"
