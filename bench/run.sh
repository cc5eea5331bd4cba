#!/usr/bin/env bash
# Builds mr in release mode and runs a benchmark.
#   bench/run.sh              word count: 1 GiB corpus in 32 files, 3 runs (bench/bench.py)
#   bench/run.sh --gib 4      the 4 GiB word count
#   bench/run.sh --sort       the sort: 1 GiB of gensort records against GNU sort (bench/sort.py)
#   bench/run.sh --sort --gib 4 --tcp   the 4 GiB sort, also over TCP with TLS and plaintext
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --quiet
if [ "${1:-}" = --sort ]; then
  shift
  exec python3 bench/sort.py "$@"
fi
exec python3 bench/bench.py "$@"
