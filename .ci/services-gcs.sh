#!/usr/bin/env bash
# Starts the Cloud Storage emulator the GCP adapter's tests need (relay-gcp). Idempotent: an
# emulator already answering on the port is left alone. Called from .ci/services.sh.
#
# gcp-storage-emulator (PyPI) speaks the JSON API the adapter uses (upload, download, list,
# bucket metadata). It stores a bucket's retention period but neither enforces nor locks it, so
# the tests prove the notary refuses such a bucket; locked retention is a real-GCS property
# (docs/ARCHITECTURE.md, section GCP). Tests find it through RELAY_TEST_GCS_ENDPOINT (default
# http://127.0.0.1:9023).
set -euo pipefail

host=127.0.0.1
port=${RELAY_GCS_EMULATOR_PORT:-9023}
url="http://$host:$port"

# Any HTTP answer counts (the emulator answers its root with 200 or 404 depending on release).
gcs_answers() { [ "$(curl -sS -o /dev/null -w '%{http_code}' "$url/storage/v1/b" 2>/dev/null)" != "000" ]; }

if gcs_answers; then
  echo "GCS emulator already up on $url"
  exit 0
fi

if ! command -v gcp-storage-emulator >/dev/null 2>&1; then
  echo "installing gcp-storage-emulator (Cloud Storage emulator)"
  pip install --quiet gcp-storage-emulator
  # pyenv shims appear only after a rehash.
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi

echo "starting gcp-storage-emulator on $url (in memory)"
log="${TMPDIR:-/tmp}/relay-gcs-emulator.log"
nohup gcp-storage-emulator start --host "$host" --port "$port" --in-memory >"$log" 2>&1 &

for _ in $(seq 1 30); do gcs_answers && break; sleep 1; done
if gcs_answers; then
  echo "GCS emulator up on $url"
else
  echo "GCS emulator on $url does not answer; log: $log" >&2
  tail -n 20 "$log" >&2 || true
  exit 1
fi
