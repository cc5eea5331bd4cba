#!/usr/bin/env bash
#
# Browser test of the coordinator's status page and the job's HTML history: installs
# what is missing (Debian's chromium, the npm packages), builds `mr` and the jobcount
# app, drives headless Chromium against a running job, then opens its --report-html
# page offline. Exits non-zero on failure. Screenshots go to target/status-page.png,
# target/timeline.png (what docs/timeline.png is a copy of) and target/report.png.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd ../.. && pwd)

CHROMIUM=${CHROMIUM:-$(command -v chromium || true)}
if [ -z "$CHROMIUM" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "run.sh: chromium is not installed; install Debian's chromium package (as root)" >&2
    exit 1
  fi
  echo "run.sh: installing chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  CHROMIUM=$(command -v chromium)
fi
export CHROMIUM

if [ ! -f node_modules/playwright-core/package.json ]; then
  npm ci --no-audit --no-fund
fi

(cd "$ROOT" && cargo build --release --quiet -p mrrun -p jobcount)
export MR_TARGET="$ROOT/target/release"

node --test status-page.test.mjs
