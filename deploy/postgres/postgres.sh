#!/usr/bin/env bash
# Local PostgreSQL for an MLflow store in tests and development, from Debian's packages.
#
#   deploy/postgres/postgres.sh start   install if missing, init once, start on 127.0.0.1
#   deploy/postgres/postgres.sh stop    stop the server started here
#   deploy/postgres/postgres.sh url     print the SQLAlchemy URL of the database
#
# Environment: PG_PORT (55432), PG_DATA_DIR (.data/postgres-$PG_PORT), PG_DB (mlflow).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
port=${PG_PORT:-55432}
data=${PG_DATA_DIR:-$root/.data/postgres-$port}
db=${PG_DB:-mlflow}

log() { printf 'postgres: %s\n' "$*" >&2; }

bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && echo "$dir"
}

install() {
  bindir >/dev/null && return 0
  log "installing PostgreSQL from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
}

# PostgreSQL refuses to run as root: run its tools as the postgres user then.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  install
  local bin; bin=$(bindir)
  mkdir -p "$data"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$data" && chmod 700 "$data"
  if [ ! -f "$data/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
    log "initialised $data"
  fi
  if as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    log "already running on 127.0.0.1:$port"
  else
    as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k /tmp" start >/dev/null
    log "ready on 127.0.0.1:$port (data $data)"
  fi
  if ! psql -h 127.0.0.1 -p "$port" -U postgres -tAc "select 1 from pg_database where datname='$db'" | grep -q 1; then
    psql -h 127.0.0.1 -p "$port" -U postgres -qc "create database \"$db\"" >/dev/null
  fi
}

stop() {
  local bin; bin=$(bindir) || { log "not installed"; return 0; }
  if [ -f "$data/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    log "stopped"
  else
    log "not running"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) echo "postgresql://postgres@127.0.0.1:$port/$db" ;;
  *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
