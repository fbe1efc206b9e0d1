#!/usr/bin/env bash
# The performance report of issues 11 and 23 in one command: builds the release benches, runs every hot
# path next to its baseline in the same run (relay-bench default run, pg, ingest, export, api,
# login-flood), and
# writes ONE table with the targets checked by code between the report markers of
# docs/performance.md.
#
#   scripts/bench.sh                  # the issue's sizes (1M-record export, 2 GB file, 10,000 files)
#   BENCH_QUICK=1 scripts/bench.sh    # small sizes, a few minutes, for development
#
# Environment: BENCH_DIR (where databases and files go; default /var/tmp, on disk, not tmpfs),
# BENCH_DOC (default docs/performance.md), RELAY_BENCH_PG_ADMIN_DSN (a role that may create
# databases and roles; default postgres://postgres@127.0.0.1:5432/postgres), CARGO_TARGET_DIR.
# Postgres is started with pg_ctlcluster if it is not answering. A step that fails is reported as
# not measured in the table, the others still run, and the script exits non-zero.
#
# Tools: `wrk` (API row) and `openssl` (baseline of the large-file hashing row) come from Debian.
# Run as root, the script installs what is missing (`apt-get install -y wrk openssl`); otherwise it
# says what to install, and a row it cannot measure is listed in the report as not measured, with
# the reason (the script then exits 1). BENCH_DOC is created when it does not exist yet; a path
# that cannot be written stops the script at once (exit 2), before anything is built or measured.
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH_DIR=${BENCH_DIR:-/var/tmp}
DOC=${BENCH_DOC:-docs/performance.md}
export RELAY_BENCH_PG_ADMIN_DSN=${RELAY_BENCH_PG_ADMIN_DSN:-postgres://postgres@127.0.0.1:5432/postgres}
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release

step() { printf '\n==> %s\n' "$*" >&2; }

# The report document: an existing file must be readable and writable; a missing one is created
# by `relay-bench report` in an existing, writable directory.
doc_dir=$(dirname -- "$DOC")
if [[ -e "$DOC" ]]; then
    if [[ ! -f "$DOC" || ! -r "$DOC" || ! -w "$DOC" ]]; then
        echo "bench.sh: BENCH_DOC=$DOC is not a readable and writable file" >&2
        exit 2
    fi
elif [[ ! -d "$doc_dir" || ! -w "$doc_dir" ]]; then
    echo "bench.sh: BENCH_DOC=$DOC cannot be created: $doc_dir is not a writable directory" >&2
    exit 2
fi

# require TOOL: installs the Debian package TOOL when it is missing and we are root; returns
# non-zero (with the reason in $why) when it stays missing.
why=""
require() {
    local tool=$1
    command -v "$tool" >/dev/null 2>&1 && return 0
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        step "installing $tool (Debian package)"
        if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1 &&
              DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null 2>&1; }; then
            command -v "$tool" >/dev/null 2>&1 && return 0
        fi
        why="\`$tool\` is not installed and \`apt-get install -y $tool\` failed"
    else
        why="\`$tool\` is not installed (not root, so not installed here: run \`sudo apt-get install -y $tool\`)"
    fi
    echo "bench.sh: $why" >&2
    return 1
}

command_line="scripts/bench.sh${*:+ $*}"
if [[ "${BENCH_QUICK:-0}" != 0 ]]; then
    command_line="BENCH_QUICK=1 $command_line"
    # Development sizes: the whole run takes a few minutes.
    DEFAULT_ARGS=(--records 200000 --stored-records 20000 --appends 500 --hash-mib 64
        --hash-file-mib 256 --burst-files 2000,10000)
    PG_RECORDS=5000
    INGEST_RECORDS=10000
    EXPORT_RECORDS=20000
    API_ARGS=(--records 10000 --seconds 5 --rate 200)
    FLOOD_ARGS=(--attackers 300 --seconds 3)
    sizes="QUICK run (development sizes, not the issue's): 200k records verified in memory, 20k from SQLite, 500 durable appends, 256 MiB hashed file, bursts of 2,000 and 10,000 files at the default 2 s settle window, Postgres 5k records per batch size, ingest 10k, export 20k records, API 10k records and 5 s per wrk run, login flood of 300 in flight for 3 s"
else
    # The issue's sizes (relay-bench's defaults).
    DEFAULT_ARGS=()
    PG_RECORDS=50000
    INGEST_RECORDS=100000
    EXPORT_RECORDS=1000000
    API_ARGS=(--records 100000 --seconds 30 --rate 200)
    FLOOD_ARGS=(--attackers 1000 --seconds 10)
    sizes="1M records verified in memory, 200k from SQLite, 2,000 durable appends (8 concurrent appenders), 512 MiB buffer and a 2 GiB file hashed, bursts of 10,000 and 100,000 files of 4 KiB at the default 2 s settle window, Postgres 50k records per batch size (5k in batches of 1), ingest 100k, export of 1M records (CSV and JSON), API 100k records and 30 s per wrk run, login flood of 1,000 bogus logins in flight for 10 s (from many addresses, then from one)"
fi

step "cargo build --release -p relay-bench -p relay-verify -p relay-edge"
cargo build --release -p relay-bench -p relay-verify -p relay-edge

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    step "starting Postgres"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 30); do
        pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && break
        sleep 1
    done
fi

# After the build: the load average the benches start under.
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)

work=$(mktemp -d "$BENCH_DIR/relay-bench-report.XXXXXX")
trap 'rm -rf "$work"' EXIT
missing=()
failed=0

# run NAME ARGS...: one relay-bench run appending its rows to $work/NAME.jsonl.
run() {
    local name=$1
    shift
    step "relay-bench $*"
    if ! "$BIN/relay-bench" --dir "$work" --json "$work/$name.jsonl" "$@"; then
        missing+=("relay-bench $* (failed, see the log of the run)")
        failed=1
        rm -f "$work/$name.jsonl"
    fi
}

if require openssl; then
    run 1-default "${DEFAULT_ARGS[@]}"
else
    # Every other row of the default run still runs; only the openssl baseline needs it.
    no_openssl=()
    skip_next=0
    for a in "${DEFAULT_ARGS[@]+"${DEFAULT_ARGS[@]}"}"; do
        if ((skip_next)); then skip_next=0; continue; fi
        if [[ $a == --hash-file-mib ]]; then skip_next=1; continue; fi
        no_openssl+=("$a")
    done
    run 1-default "${no_openssl[@]+"${no_openssl[@]}"}" --hash-file-mib 0
    missing+=("large-file hashing row: $why")
    failed=1
fi
run 2-pg pg --records "$PG_RECORDS"
run 3-ingest ingest --records "$INGEST_RECORDS"
run 4-export export --records "$EXPORT_RECORDS" --format both
if "$BIN/relay-bench" api --help >/dev/null 2>&1; then
    if require wrk; then
        run 5-api api "${API_ARGS[@]}"
    else
        missing+=("API rows: $why")
        failed=1
    fi
else
    echo "api: relay-bench has no \`api\` subcommand yet; the API row is not measured" >&2
    missing+=("API row: relay-bench has no \`api\` subcommand yet")
    failed=1
fi

run 6-login-flood login-flood "${FLOOD_ARGS[@]}" --sources both

step "relay-bench report --write $DOC"
missing_args=()
for m in "${missing[@]+"${missing[@]}"}"; do
    missing_args+=(--missing "$m")
done
shopt -s nullglob
"$BIN/relay-bench" report --from "$work"/*.jsonl --write "$DOC" \
    --command-line "$command_line" --started "$started" \
    --finished "$(date -u '+%Y-%m-%d %H:%M UTC')" --load-at-start "$load_at_start" \
    --sizes "$sizes" "${missing_args[@]+"${missing_args[@]}"}"
exit "$failed"
