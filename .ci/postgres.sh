#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the store tests and prints the one line
# `.ci/run` evaluates:
#
#   eval "$(bash .ci/postgres.sh)"     # → export TEST_DATABASE_URL=postgres://…
#
# The cluster lives in a fresh temp dir, listens on 127.0.0.1 only (plus a Unix socket in
# that dir), trusts local connections (it is a test server that dies with the machine) and
# holds one database, connectlumin_test. Each store test run creates its own schema in it,
# so reruns against the same cluster are clean. Stop it with the command printed on stderr.
#
# Everything but the export line goes to stderr so `eval` sees only that line.
# Env: PG_PORT (default 54329).
#      `bash .ci/postgres.sh stop` stops the cluster this script last started.
set -euo pipefail

port="${PG_PORT:-54329}"
log() { echo "postgres.sh: $*" >&2; }
state=/tmp/connectlumin-pg.current

# Debian puts initdb/pg_ctl under /usr/lib/postgresql/<major>/bin, not on PATH.
find_bin() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

bindir="$(find_bin || true)"
if [ -z "$bindir" ]; then
	log "installing postgresql (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq postgresql >&2
	bindir="$(find_bin)"
fi

# initdb refuses to run as root; CI runs as root, so run the cluster as postgres.
run_as=()
if [ "$(id -u)" = 0 ]; then
	if ! id postgres >/dev/null 2>&1; then
		log "no postgres user (the postgresql package creates it)"
		exit 1
	fi
	run_as=(runuser -u postgres --)
fi

if [ "${1:-}" = stop ]; then
	[ -f "$state" ] || exit 0
	read -r dir <"$state"
	"${run_as[@]}" "$bindir/pg_ctl" -D "$dir/data" stop -m fast >&2 || true
	rm -rf "$dir" "$state"
	exit 0
fi

dir="$(mktemp -d /tmp/connectlumin-pg.XXXXXX)"
echo "$dir" >"$state"
chmod 700 "$dir"
if [ "${#run_as[@]}" -gt 0 ]; then
	chown postgres: "$dir"
fi

"${run_as[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
	cat "$dir/initdb.log" >&2
	exit 1
}

# fsync=off: a throwaway test cluster; durability of PostgreSQL itself is not what we test.
"${run_as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
	-o "-k $dir -h 127.0.0.1 -p $port -c fsync=off -c full_page_writes=off" start >&2 || {
	cat "$dir/server.log" >&2
	exit 1
}

"${run_as[@]}" "$bindir/psql" -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
	-c "CREATE DATABASE connectlumin_test" >&2

log "cluster in $dir on 127.0.0.1:$port; stop with: ${run_as[*]} $bindir/pg_ctl -D $dir/data stop -m fast"
echo "export TEST_DATABASE_URL=postgres://postgres@127.0.0.1:$port/connectlumin_test?sslmode=disable"
