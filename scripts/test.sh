#!/usr/bin/env bash
# Runs every test of the workspace: formatting, lints, unit/integration/property tests, the
# independent chain-vector check. Tests that need a real service (Postgres, S3 emulator, ...)
# skip with a printed reason when it is absent, unless RELAY_REQUIRE_SERVICES=1 (as .ci/run sets).
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step's name and duration, printed as a table when the run ends (pass or fail), so a new
# user sees where the time goes.
PHASES=()
phase_name=""
phase_start=$SECONDS
run_start=$SECONDS
close_phase() {
  if [ -n "$phase_name" ]; then
    PHASES+=("$(printf '%6ss  %s' "$((SECONDS - phase_start))" "$phase_name")")
  fi
}
step() {
  close_phase
  phase_name="$*"
  phase_start=$SECONDS
  printf '\n==> %s\n' "$*"
}
print_phases() {
  local status=$?
  close_phase
  phase_name=""
  printf '\n==> time per phase (scripts/test.sh, exit %s)\n' "$status"
  printf '%s\n' "${PHASES[@]}"
  printf '%6ss  total\n' "$((SECONDS - run_start))"
}
trap print_phases EXIT

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
# Built with the workspace's feature set, so nothing is compiled twice for this step.
cargo build "${ALL[@]}" --examples
"${CARGO_TARGET_DIR:-target}/debug/examples/append_and_verify"

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run "${ALL[@]}" --no-fail-fast
else
  echo "(cargo-nextest not installed; using cargo test)"
  cargo test "${ALL[@]}" --no-fail-fast
fi
