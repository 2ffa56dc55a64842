# PostgreSQL for the tests, sourced by .ci/run (and usable by hand: `. .ci/postgres.sh`).
#
# If SAKSHYA_TEST_POSTGRES_URL is set already, that server is used and nothing happens here.
# Otherwise: installs Debian's postgresql when no initdb is found (on PATH or in
# /usr/lib/postgresql/*/bin; through .ci/run's ensure_debian_packages when it is defined), initialises a throwaway cluster in a temporary directory (trust
# authentication, 127.0.0.1 only, its unix socket in that directory), starts it on a free port,
# stops and removes it when the shell exits, and exports
# SAKSHYA_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:<port>/postgres.
# As root the server runs as the `postgres` OS user (PostgreSQL refuses to run as root).

sakshya_pg_find_bin() {
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
    return 0
  fi
  local candidate
  for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$candidate/initdb" ] && [ -x "$candidate/pg_ctl" ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

sakshya_pg_start() {
  local bin dir port as_user
  if ! bin="$(sakshya_pg_find_bin)"; then
    if declare -F ensure_debian_packages >/dev/null; then
      # .ci/run's installer: keeps the package's own cluster from starting (policy-rc.d).
      ensure_debian_packages pg_ctlcluster postgresql
    else
      echo "ci: installing postgresql (no initdb found)" >&2
      local sudo=""
      [ "$(id -u)" -eq 0 ] || sudo="sudo"
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >&2
    fi
    bin="$(sakshya_pg_find_bin)" || { echo "ci: postgresql installed, but no initdb found" >&2; return 1; }
  fi

  dir="$(mktemp -d "${TMPDIR:-/tmp}/sakshya-pg-XXXXXX")"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$dir"
    as_user() { runuser -u postgres -- "$@"; }
  else
    as_user() { "$@"; }
  fi
  port="$(node -e "const s = require('node:net').createServer(); s.listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); })")"

  as_user "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  as_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >/dev/null \
    || { cat "$dir/server.log" >&2; return 1; }

  SAKSHYA_PG_CI_DIR="$dir"
  SAKSHYA_PG_CI_BIN="$bin"
  # Stopped at exit (immediate: the data is thrown away), then removed.
  trap 'if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$SAKSHYA_PG_CI_BIN/pg_ctl" -D "$SAKSHYA_PG_CI_DIR/data" -m immediate stop >/dev/null 2>&1; else "$SAKSHYA_PG_CI_BIN/pg_ctl" -D "$SAKSHYA_PG_CI_DIR/data" -m immediate stop >/dev/null 2>&1; fi; rm -rf "$SAKSHYA_PG_CI_DIR"' EXIT
  export SAKSHYA_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "ci: PostgreSQL $("$bin/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$port (SAKSHYA_TEST_POSTGRES_URL)" >&2
}

if [ -z "${SAKSHYA_TEST_POSTGRES_URL:-}" ]; then
  sakshya_pg_start
fi
