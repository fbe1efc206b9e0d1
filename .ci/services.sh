#!/usr/bin/env bash
# Starts every service the test suite needs. Idempotent: a running service is left alone.
set -euo pipefail

have_port() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# PostgreSQL (the machine image has it; start it if it is down).
if ! have_port 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  for _ in $(seq 1 30); do have_port 5432 && break; sleep 1; done
fi
have_port 5432 && echo "PostgreSQL up on 127.0.0.1:5432"
