#!/usr/bin/env bash
# Runs every test of the workspace: formatting, lints, unit/integration/property tests, the
# independent chain-vector check. Tests that need a real service (Postgres, S3 emulator, ...)
# skip with a printed reason when it is absent, unless RELAY_REQUIRE_SERVICES=1 (as .ci/run sets).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Every provider feature (relay-server's selfhosted, aws, ...) on, in every step: the steps share
# one resolved feature set, so each dependency is built once and reused by clippy, doc and test.
# The default build (local only) is kept free of cloud SDKs by crates/relay-runtime/tests/architecture.rs.
ALL=(--workspace --all-features --locked)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy "${ALL[@]}" --all-targets -- -D warnings

step "chain test vectors, independent Python implementation"
python3 docs/spec/verify_vectors.py

step "doc tests"
cargo test "${ALL[@]}" --doc

step "rustdoc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps "${ALL[@]}"

step "integrator examples (relay-domain embedded with its in-memory adapters)"
cargo run -p relay-domain --example append_and_verify --all-features --locked

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run "${ALL[@]}" --no-fail-fast
else
  echo "(cargo-nextest not installed; using cargo test)"
  cargo test "${ALL[@]}" --no-fail-fast
fi
