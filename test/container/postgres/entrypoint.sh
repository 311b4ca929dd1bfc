#!/bin/sh
# Entry point of the postgres:15 stand-in: initializes PGDATA on first start the way the official image does
# (superuser POSTGRES_USER with POSTGRES_PASSWORD, database POSTGRES_DB, scram-sha-256 from any address),
# then runs the server in the foreground (exec, so it is PID 1 and gets the stop signal).
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}

if [ "${1:-postgres}" != postgres ]; then
	exec "$@"
fi
shift || true

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ]; then
		echo "postgres stand-in: POSTGRES_PASSWORD is required to initialize the database" >&2
		exit 1
	fi
	pwfile=$(mktemp)
	printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
	initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
		--encoding=UTF8 --locale=C.UTF-8 >/dev/null
	rm -f "$pwfile"
	printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
	# Create the database on a private socket only, before any client can connect.
	pg_ctl -D "$PGDATA" -w -s -o "-c listen_addresses='' -c unix_socket_directories=/tmp" start
	if [ "$db" != postgres ]; then
		psql -h /tmp -U "$user" -d postgres -v ON_ERROR_STOP=1 -q -c "CREATE DATABASE \"$db\""
	fi
	pg_ctl -D "$PGDATA" -w -s -m fast stop
	echo "postgres stand-in: initialized $PGDATA (user $user, database $db)" >&2
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
