#!/usr/bin/env bash
# Builds mr in release mode and runs the word-count benchmark (see bench/bench.py).
#   bench/run.sh              1 GiB corpus in 32 files, 3 runs
#   bench/run.sh --gib 4      the 4 GiB run
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --quiet
exec python3 bench/bench.py "$@"
