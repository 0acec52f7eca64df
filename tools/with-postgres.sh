#!/usr/bin/env bash
# Run a command beside a throwaway PostgreSQL cluster, then stop and delete the cluster.
#
# The cluster lives in a temporary folder and listens on a Unix socket in that folder only
# (listen_addresses = '', so no TCP port, not even loopback). It requires a password
# (scram-sha-256), a random one made for this run: the command sees a password-free URL in
# SSCBENCH_TEST_POSTGRES (postgresql+psycopg://, database "sscbench") and finds the password the
# way libpq does, in the password file PGPASSFILE (mode 0600, in a folder of its own). Tests that
# need the password itself read SSCBENCH_TEST_POSTGRES_PASSWORD, and SSCBENCH_TEST_PG_BIN names
# the server's binaries (pg_dump). initdb refuses to run
# as root, so as root the cluster runs as the `postgres` user. Where the server binaries are
# missing they are installed with apt-get (root only). Where no server can be started the
# command runs without it (the tests that need it skip, saying why), except under CI=true,
# where that is an error.
set -uo pipefail
CMD=("$@")

fail() {
    echo "with-postgres: $1" >&2
    if [ "${CI:-}" = "true" ]; then exit 1; fi
    echo "with-postgres: running without PostgreSQL; tests that need it will skip" >&2
    "${CMD[@]}"
    exit $?
}

find_bin() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
    done
    command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
    return 1
}

BIN=$(find_bin)
if [ -z "$BIN" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "with-postgres: installing PostgreSQL with apt-get" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) >&2
    BIN=$(find_bin)
fi
[ -n "$BIN" ] || fail "no PostgreSQL server binaries (initdb) found"

RUN=()
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    RUN=(runuser -u postgres --)
fi

DIR=$(mktemp -d /tmp/sscbench-pg.XXXXXX)
SECRETS=$(mktemp -d /tmp/sscbench-pgpass.XXXXXX)  # 0700, this user's only
chmod 755 "$DIR"
[ "$(id -u)" = 0 ] && chown postgres "$DIR"
cleanup() {
    "${RUN[@]}" "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1
    rm -rf "$DIR" "$SECRETS"
}
trap cleanup EXIT

# A random password of letters and digits, with a few characters that a URL must percent-encode.
PASSWORD="$(head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 20)@:%/"
( umask 077; printf '%s\n' "$PASSWORD" > "$DIR/pwfile" )
[ "$(id -u)" = 0 ] && chown postgres "$DIR/pwfile"
( umask 077; printf '*:*:*:postgres:%s\n' "$(printf '%s' "$PASSWORD" | sed 's/[\\:]/\\&/g')" > "$SECRETS/pgpass" )
export PGPASSFILE="$SECRETS/pgpass"
unset PGPASSWORD

if ! "${RUN[@]}" "$BIN/initdb" -D "$DIR/data" -U postgres --auth=scram-sha-256 --pwfile="$DIR/pwfile" -E UTF8 \
        --no-sync >"$DIR/initdb.log" 2>&1; then
    cat "$DIR/initdb.log" >&2
    fail "initdb failed"
fi
rm -f "$DIR/pwfile"
if ! "${RUN[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
        -o "-c listen_addresses='' -k $DIR -c fsync=off -c max_connections=200" start >/dev/null; then
    cat "$DIR/server.log" >&2
    fail "the server did not start"
fi
if ! "$BIN/createdb" -h "$DIR" -U postgres sscbench; then
    fail "createdb failed"
fi

export SSCBENCH_TEST_POSTGRES="postgresql+psycopg://postgres@/sscbench?host=$DIR"
export SSCBENCH_TEST_POSTGRES_PASSWORD="$PASSWORD"
export SSCBENCH_TEST_PG_BIN="$BIN"
echo "with-postgres: PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on the socket in $DIR" >&2
"$@"
