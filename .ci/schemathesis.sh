#!/usr/bin/env bash
# API robustness (issue 11, docs/reliability.md "API robustness"): runs schemathesis against the
# live /api/v1/openapi.json of a real relay-edge, once per role (admin, reviewer, operator,
# auditor) and once anonymously, and fails on any 5xx, any response that does not match the
# schema (body, status code, content type), or a trail that no longer verifies afterwards
# (`relay-edge verify` must exit 0: every refused call leaves the trail verifiable).
#
# Bounded: ST_MAX_EXAMPLES (default 25) cases per operation and phase, ST_TIMEOUT (default 240)
# seconds per role. schemathesis is pip-installed, pinned, into a venv under GIMS_RELAY_TOOLS.
# RELAY_EDGE_BIN=path skips the build and tests that binary. ST_LOG_DIR=dir keeps the logs and
# JUnit reports there (default: a temporary directory, removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

ST_VERSION=4.32.5
tools=${GIMS_RELAY_TOOLS:-/var/tmp/gims-relay-tools}
venv="$tools/schemathesis-venv"
max_examples=${ST_MAX_EXAMPLES:-25}
per_role_timeout=${ST_TIMEOUT:-240}
seed=${ST_SEED:-20261125}

if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$ST_VERSION"; then
  echo "==> installing schemathesis $ST_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==$ST_VERSION"
fi

if [ -n "${RELAY_EDGE_BIN:-}" ]; then
  bin=$RELAY_EDGE_BIN
else
  echo "==> cargo build -p relay-edge"
  cargo build --locked -p relay-edge
  target_dir=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)
  bin="$target_dir/debug/relay-edge"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/relay-schemathesis.XXXXXX")
logs=${ST_LOG_DIR:-$work/logs}
mkdir -p "$logs"
relay_pid=
cleanup() {
  if [ -n "$relay_pid" ] && kill -0 "$relay_pid" 2>/dev/null; then
    kill -TERM "$relay_pid" 2>/dev/null || true
    wait "$relay_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

data="$work/data"
watch="$work/instrument"
mkdir -p "$watch/2026/run1"
printf 'NMR FID data\n%.0s' $(seq 100) >"$watch/2026/run1/spectrum.fid"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"

echo "==> starting relay-edge on $base (data dir $data)"
RELAY_LOG=${RELAY_LOG:-warn} "$bin" run --data-dir "$data" --watch "$watch" --listen "127.0.0.1:$port" \
  --settle-ms 200 --device st-ws --trail nmr-st --project PRJ-ST >"$logs/relay.log" 2>&1 &
relay_pid=$!
for _ in $(seq 150); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  kill -0 "$relay_pid" 2>/dev/null || { cat "$logs/relay.log"; echo "relay-edge exited"; exit 1; }
  sleep 0.2
done
curl -fsS "$base/healthz" >/dev/null

# Accounts: the first admin registers itself, then creates a second admin (the one privileged
# account the bootstrap lets it create alone) and the operator and auditor; the reviewer signs,
# so ada proposes it as a four-eyes change and bea approves it (issue 18).
api() { curl -sS -H 'content-type: application/json' "$@"; }
password="schemathesis password 1"
temporary="temporary harbour violet 17"
token_of() {
  api -X POST "$base/api/v1/auth/login" -d "{\"username\":\"$1\",\"password\":\"$password\"}" |
    python3 -c 'import json, sys
answer = json.load(sys.stdin)
if "token" not in answer:
    sys.exit(f"login of {sys.argv[1]} refused: {answer}")
print(answer["token"])' "$1"
}
json_field() { python3 -c 'import json, sys
answer = json.load(sys.stdin)
value = answer
for key in sys.argv[1].split("."):
    value = value.get(key) if isinstance(value, dict) else None
if value is None:
    sys.exit(f"no {sys.argv[1]} in {answer}")
print(value)' "$1"; }
first_password_change() {
  # An administrator-set password is temporary: the owner replaces it before anything else.
  api -fX POST "$base/api/v1/auth/password" \
    -d "{\"username\":\"$1\",\"old_password\":\"$2\",\"new_password\":\"$password\"}" >/dev/null
}
api -fX POST "$base/api/v1/auth/register" \
  -d "{\"username\":\"ada\",\"full_name\":\"Ada Admin\",\"password\":\"$password\",\"role\":\"admin\"}" >/dev/null
admin_token=$(token_of ada)
for pair in bea:admin otto:operator aude:auditor; do
  api -fX POST "$base/api/v1/accounts" -H "authorization: Bearer $admin_token" \
    -d "{\"username\":\"${pair%%:*}\",\"full_name\":\"${pair%%:*} (${pair#*:})\",\"password\":\"$temporary\",\"role\":\"${pair#*:}\",\"reason\":\"schemathesis account\"}" >/dev/null
  first_password_change "${pair%%:*}" "$temporary"
done
change=$(api -fX POST "$base/api/v1/changes" -H "authorization: Bearer $admin_token" \
  -d '{"setting":"account_create","value":{"username":"rita","full_name":"rita (reviewer)","role":"reviewer"},"reason":"schemathesis account"}' |
  json_field id)
rita_temporary=$(api -fX POST "$base/api/v1/changes/$change/approve" -H "authorization: Bearer $(token_of bea)" \
  -d "{\"password\":\"$password\",\"reason\":\"schemathesis account\"}" | json_field applied.temporary_password)
first_password_change rita "$rita_temporary"
# Wait until the watched file is captured, so reads and signatures have a record to work on.
for _ in $(seq 100); do
  api "$base/api/v1/events?trail=nmr-st" -H "authorization: Bearer $admin_token" | grep -q '"chain_seq":1' && break
  sleep 0.2
done

checks=not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance
failed=()
# Every token is taken before any run: schemathesis reuses names it reads in responses, so the
# admin run disables accounts (and locks ada by failed logins); it therefore runs last.
declare -A tokens
for user in ada rita otto aude; do tokens[$user]=$(token_of "$user"); done
run_role() {
  local role=$1 user=$2
  local auth=()
  if [ -n "$user" ]; then
    auth=(-H "Authorization: Bearer ${tokens[$user]}")
  fi
  echo "==> schemathesis as $role (max $max_examples examples per operation, ${per_role_timeout}s at most)"
  # Logging out would end the role's session half-way; the anonymous run covers that endpoint.
  local exclude=()
  [ -n "$user" ] && exclude=(--exclude-path /api/v1/auth/logout)
  if timeout --kill-after=10 "$per_role_timeout" "$venv/bin/st" --no-color run "$base/api/v1/openapi.json" \
      "${auth[@]}" "${exclude[@]}" \
      --checks "$checks" --max-examples "$max_examples" --seed "$seed" --workers 1 \
      --phases examples,coverage,fuzzing --request-timeout 20 --generation-database none \
      --report junit --report-dir "$logs/report-$role" >"$logs/st-$role.log" 2>&1; then
    grep -E 'Tested:|generated,|^=+ .* in [0-9.]+s =+$' "$logs/st-$role.log" | sed 's/^ */   /'
  else
    echo "!! schemathesis as $role FAILED (exit $?):"
    tail -120 "$logs/st-$role.log"
    failed+=("$role")
  fi
}
run_role reviewer rita
run_role operator otto
run_role auditor aude
run_role anonymous ""
run_role admin ada

echo "==> stopping relay-edge and verifying every trail"
kill -TERM "$relay_pid"
wait "$relay_pid" || { echo "relay-edge exited with $?"; tail -50 "$logs/relay.log"; exit 1; }
relay_pid=
if ! RELAY_LOG=error "$bin" verify --data-dir "$data"; then
  echo "!! relay-edge verify failed after the schemathesis runs"
  failed+=(verify)
fi

echo "==> schemathesis finished in $(( $(date +%s) - started )) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "schemathesis failures: ${failed[*]}"
  exit 1
fi
