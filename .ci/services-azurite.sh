#!/usr/bin/env bash
# Starts Azurite's blob service for relay-azure's tests (called by .ci/services.sh; also fine to run
# by hand). Idempotent: a running Azurite is left alone, an installed one is not reinstalled.
#
# Azurite is installed with npm into a cache outside the clone, so a fresh clone (CI) reuses it and
# the work tree never gets a node_modules. It listens on 127.0.0.1:10000 (the emulator's default
# blob port) and keeps its data in a temporary directory. The tests find it through
# RELAY_TEST_AZURE_BLOB_ENDPOINT (default http://127.0.0.1:10000/devstoreaccount1).
set -euo pipefail

AZURITE_VERSION=${AZURITE_VERSION:-3}
TOOLS=${RELAY_TOOLS_DIR:-/var/tmp/gims-relay-tools}
PREFIX="$TOOLS/azurite"
BIN="$PREFIX/node_modules/.bin/azurite-blob"
PORT=10000

have_port() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Azurite answers an anonymous request with an HTTP status (400/403/404): any status means it is up.
answers() { [ "$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/devstoreaccount1?comp=list" 2>/dev/null)" != "000" ]; }

if ! have_port "$PORT"; then
  if [ ! -x "$BIN" ]; then
    if ! command -v npm >/dev/null 2>&1; then
      echo "npm is missing: install Node.js (apt-get install nodejs npm) to run Azurite" >&2
      exit 1
    fi
    echo "installing azurite@$AZURITE_VERSION into $PREFIX"
    mkdir -p "$PREFIX"
    npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION"
  fi
  location=$(mktemp -d "${TMPDIR:-/tmp}/relay-azurite.XXXXXX")
  echo "starting azurite-blob on 127.0.0.1:$PORT (data in $location)"
  # --skipApiVersionCheck: the SDK may speak a newer x-ms-version than this Azurite knows.
  # --loose: ignore headers Azurite does not implement instead of failing the request.
  nohup "$BIN" --blobHost 127.0.0.1 --blobPort "$PORT" --location "$location" \
    --skipApiVersionCheck --loose --silent \
    >"${TMPDIR:-/tmp}/relay-azurite.log" 2>&1 &
  for _ in $(seq 1 60); do have_port "$PORT" && break; sleep 0.5; done
fi
for _ in $(seq 1 30); do answers && break; sleep 1; done
if answers; then
  echo "Azurite blob service up on 127.0.0.1:$PORT"
else
  echo "Azurite on 127.0.0.1:$PORT does not answer (log: ${TMPDIR:-/tmp}/relay-azurite.log)" >&2
  exit 1
fi
