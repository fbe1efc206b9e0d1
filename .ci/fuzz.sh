#!/usr/bin/env bash
# Short fuzzing run (issue 11, docs/reliability.md "Fuzzing"): installs cargo-fuzz if missing,
# builds every target in fuzz/ once (libFuzzer + AddressSanitizer, debug assertions on), runs each
# for FUZZ_SECONDS (default 20) from its committed seeds, and fails if any target finds a crash,
# a failed property (panic), a leak, a timeout or an out-of-memory input.
#
# Toolchain: nightly when installed; otherwise stable with RUSTC_BOOTSTRAP=1 (cargo fuzz passes
# -Z flags). FUZZ_TOOLCHAIN=stable|nightly forces one. FUZZ_TARGETS="a b" runs a subset.
# Crashing inputs are kept in fuzz/artifacts/<target>/ (git-ignored); reproduce one with
#   "$FUZZ_TARGET_DIR"/x86_64-unknown-linux-gnu/release/<target> fuzz/artifacts/<target>/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

tools=${GIMS_RELAY_TOOLS:-/var/tmp/gims-relay-tools}
export PATH="$tools/bin:$PATH"
seconds=${FUZZ_SECONDS:-20}
# The fuzz build (sanitizer flags) gets its own target dir, so it never invalidates the
# workspace's; warm runs reuse it.
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-/var/tmp/gims-relay-fuzz-target}
export FUZZ_TARGET_DIR=$CARGO_TARGET_DIR

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz 0.13.2 into $tools"
  cargo install --locked cargo-fuzz --version 0.13.2 --root "$tools"
fi

toolchain=${FUZZ_TOOLCHAIN:-}
if [ -z "$toolchain" ]; then
  if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then toolchain=nightly; else toolchain=stable; fi
fi
if [ "$toolchain" != nightly ]; then
  # Stable rustc accepts the -Z flags cargo fuzz passes (sanitizer, coverage) only with this.
  export RUSTC_BOOTSTRAP=1
fi
echo "==> cargo fuzz build (toolchain $toolchain, target dir $CARGO_TARGET_DIR)"
(cd fuzz && cargo "+$toolchain" fuzz build --debug-assertions)

bin_dir="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"
targets=${FUZZ_TARGETS:-$(cd fuzz && cargo "+$toolchain" fuzz list)}
work=$(mktemp -d "${TMPDIR:-/tmp}/relay-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tmp"

failed=()
for t in $targets; do
  mkdir -p "$work/corpus/$t" "fuzz/artifacts/$t"
  dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=("-dict=fuzz/dict/$t.dict")
  echo "==> fuzz $t for ${seconds}s (seeds: $(ls fuzz/seeds/$t | wc -l))"
  # New inputs go to the scratch corpus (first directory); the committed seeds stay as they are.
  if TMPDIR="$work/tmp" "$bin_dir/$t" "$work/corpus/$t" "fuzz/seeds/$t" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" "${dict[@]}" \
      >"$work/$t.log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$work/$t.log" | tr '\n' ' ' || true
    echo
  else
    echo "!! $t FAILED; the end of its log:"
    tail -40 "$work/$t.log"
    failed+=("$t")
  fi
done

echo "==> fuzz finished in $(( $(date +%s) - started )) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz targets with findings: ${failed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
