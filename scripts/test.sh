#!/usr/bin/env bash
# Runs every test of the workspace: formatting, lints, unit/integration/property tests, the
# independent chain-vector check. Tests that need a real service (Postgres, S3 emulator, ...)
# skip with a printed reason when it is absent, unless RELAY_REQUIRE_SERVICES=1 (as .ci/run sets).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "chain test vectors, independent Python implementation"
python3 docs/spec/verify_vectors.py

step "doc tests"
cargo test --workspace --locked --doc

step "rustdoc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --locked

step "integrator examples (relay-domain embedded with its in-memory adapters)"
cargo run -p relay-domain --example append_and_verify --locked

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  echo "(cargo-nextest not installed; using cargo test)"
  cargo test --workspace --locked --no-fail-fast
fi
