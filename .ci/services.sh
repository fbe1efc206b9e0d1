#!/usr/bin/env bash
# Starts every service the test suite needs. Idempotent: a running service is left alone.
set -euo pipefail

have_port() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A person's account (uid in UID_MIN..UID_MAX, a login shell) for the attribution tests, which
# write files under its uid while relay-edge runs as a system account
# (bins/relay-edge/tests/attribution.rs; the test also creates it when missing and root).
if ! getent passwd relay-analyst-test >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "creating the test account relay-analyst-test"
    useradd --no-create-home --shell /bin/sh --user-group relay-analyst-test || getent passwd relay-analyst-test >/dev/null
  else
    echo "not root: the test account relay-analyst-test cannot be created (attribution tests need root)" >&2
  fi
fi

# PostgreSQL (the machine image has it; start it if it is down).
if ! have_port 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  for _ in $(seq 1 30); do have_port 5432 && break; sleep 1; done
fi
have_port 5432 && echo "PostgreSQL up on 127.0.0.1:5432"

# S3-compatible server with Object Lock for the self-hosted and AWS adapters' tests (moto also
# serves Secrets Manager on the same port for the AWS adapter's secret provider). MinIO is not
# installable here; moto's server speaks the same S3 API (Object Lock in COMPLIANCE mode,
# versioning, conditional puts), and the tests use nothing specific to it, so they also run
# against MinIO or AWS S3 (RELAY_TEST_S3_ENDPOINT, RELAY_TEST_S3_ACCESS_KEY / _SECRET).
if ! have_port 5000; then
  if ! command -v moto_server >/dev/null 2>&1; then
    echo "installing moto[server] (S3 emulator)"
    pip install --quiet 'moto[server]'
  fi
  echo "starting moto S3 server on 127.0.0.1:5000"
  nohup moto_server -H 127.0.0.1 -p 5000 >"${TMPDIR:-/tmp}/relay-moto.log" 2>&1 &
  for _ in $(seq 1 30); do have_port 5000 && break; sleep 1; done
fi
# Answering on the port is not enough: wait until it answers HTTP (any status: MinIO answers an
# anonymous request with 403).
s3_answers() { [ "$(curl -sS -o /dev/null -w '%{http_code}' http://127.0.0.1:5000/ 2>/dev/null)" != "000" ]; }
for _ in $(seq 1 30); do s3_answers && break; sleep 1; done
if s3_answers; then
  echo "S3 (moto) up on 127.0.0.1:5000"
else
  echo "S3 emulator on 127.0.0.1:5000 does not answer" >&2
  exit 1
fi

# Azurite (Blob Storage emulator) for relay-azure, and the Cloud Storage emulator for relay-gcp.
bash "$(dirname "$0")/services-azurite.sh"
bash "$(dirname "$0")/services-gcs.sh"
