#!/bin/sh
# Runs once, when the Postgres volume is initialized: creates the runtime role with its password
# (relay-server migrate creates roles without one, to be set out of band). migrate then grants it
# SELECT and INSERT only.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v app_password="$RELAY_PG_APP_PASSWORD" <<'SQL'
CREATE ROLE relay_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'app_password';
SQL
