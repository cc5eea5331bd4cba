#!/usr/bin/env bash
# Builds mr (and bench/wcbase, the hand-written baseline mr-wcbase) in release mode and
# runs a benchmark.
#   bench/run.sh              word count: 1 GiB corpus in 32 files, 3 runs (bench/bench.py):
#                             mrsequential, coordinator + 2 workers, mr run --workers 2, each
#                             also as a ratio to the hand-written 2-thread wc (mr-wcbase)
#   bench/run.sh --gib 4      the 4 GiB word count
#   bench/run.sh --tcp        also over TCP on 127.0.0.1, with TLS and with plaintext
#   bench/run.sh --peers      also Polars and DuckDB word count with 2 threads, pip-installed
#                             into bench/.venv on first use (skipped, saying why, without it)
#   bench/run.sh --sort       the sort: 1 GiB of gensort records against GNU sort (bench/sort.py)
#   bench/run.sh --sort --gib 4 --tcp   the 4 GiB sort, also over TCP with TLS and plaintext
#   bench/run.sh --straggler  1 GiB word count with a third worker held to 3% of a CPU by a
#                             cgroup, with and without backup tasks (bench/straggler.py)
#   bench/run.sh --straggler --sort   the same for the sort
#   bench/run.sh --tasks [--small] [--tiny-splits] [--hotkey]   10,000 one-KB files (the
#                             cost of a task), 640 MiB in 4 KiB splits (164,000 maps: the
#                             coordinator's CPU against the workers'), and one hot key
#                             holding every line (the streaming reduce's memory)
#                             (bench/tasks.py)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --quiet
if [ "${1:-}" = --straggler ]; then
  shift
  exec python3 bench/straggler.py "$@"
fi
if [ "${1:-}" = --tasks ]; then
  shift
  exec python3 bench/tasks.py "$@"
fi
if [ "${1:-}" = --sort ]; then
  shift
  exec python3 bench/sort.py "$@"
fi
exec python3 bench/bench.py "$@"
