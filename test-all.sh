#!/usr/bin/env bash
# Builds everything and runs every test: lints, unit and integration tests
# (cargo test), the 6.824 suite (test-mr.sh), the cluster test in network namespaces
# (needs root), and the status page's browser test.
# This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n=== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo build --release"
cargo build --release --workspace --quiet

step "cargo test (unit and integration tests)"
cargo test --workspace --release

step "test-mr.sh (the 6.824 suite)"
./test-mr.sh

step "cluster in network namespaces (tests/cluster/run.sh)"
tests/cluster/run.sh

if [ -x tests/browser/run.sh ]; then
  step "status page in headless Chromium"
  tests/browser/run.sh
fi

step "all tests passed"
