#!/usr/bin/env bash
# Browser end-to-end tests of the review UI (R11.1) and the fleet page (issue 24): installs
# Debian's Chromium and the pinned playwright-core and axe-core (idempotent), builds relay-edge,
# relay-server and relay-verify, and drives the UI in headless Chromium (review.test.mjs,
# records.test.mjs, ui_forms.test.mjs, admin_forms.test.mjs, fleet.test.mjs, bulk_sign.test.mjs,
# then scale.test.mjs: 100,000 records stored by relay-bench ui-trail, first / last page and
# filtered searches timed). Saves docs/screenshots/record-detail-signed.png, access-review.png,
# review-list.png, verify-first-bad-record.png, file-history.png, print-report.png,
# change-request.png, fleet.png, bulk-sign.png.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  echo "==> installing chromium (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
if ! command -v sqlite3 >/dev/null 2>&1; then
  echo "==> installing sqlite3 (Debian package; ui_forms.test.mjs tampers with a stopped edge's store)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq sqlite3 >/dev/null
fi
if ! command -v node >/dev/null 2>&1; then
  echo "==> installing node and npm (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
fi

echo "==> npm ci (e2e/browser, playwright-core and axe-core pinned; no browser download)"
(cd e2e/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)

echo "==> cargo build -p relay-edge -p relay-server -p relay-verify -p relay-bench"
cargo build --locked -p relay-edge -p relay-server -p relay-verify -p relay-bench
target_dir=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)

echo "==> browser test (headless $(chromium --version 2>/dev/null | head -1))"
RELAY_EDGE_BIN="$target_dir/debug/relay-edge" RELAY_SERVER_BIN="$target_dir/debug/relay-server" RELAY_VERIFY_BIN="$target_dir/debug/relay-verify" RELAY_BENCH_BIN="$target_dir/debug/relay-bench" CHROMIUM=/usr/bin/chromium npm --prefix e2e/browser test
