#!/usr/bin/env bash
# Manages a private PostgreSQL 15 cluster for inkloop (the embedded one of scripts/run.sh and the throwaway
# ones of the tests). Never touches the system cluster the Debian package may have created.
#
#   scripts/pg.sh start DATADIR PORT [--fast]   initdb if needed, start, create database "inkloop",
#                                               print the DATABASE_URL on stdout
#   scripts/pg.sh stop DATADIR                  fast shutdown (no-op when not running)
#   scripts/pg.sh status DATADIR                exit 0 and print the URL when running, 3 when not
#   scripts/pg.sh destroy DATADIR               stop, then delete the cluster's files
#
# --fast turns off fsync, synchronous_commit and full_page_writes: for throwaway test clusters only.
# As root, the cluster runs as the `postgres` user (initdb refuses root). When that user cannot reach DATADIR
# (say the checkout is under /root, mode 700), the data goes to /tmp/inkloop-pg-<hash of DATADIR> instead.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PROG="scripts/pg.sh"

die() {
	echo "$PROG: $*" >&2
	exit 1
}
say() { echo "$PROG: $*" >&2; }

usage() {
	cat >&2 <<'EOF'
usage: scripts/pg.sh start DATADIR PORT [--fast]
       scripts/pg.sh stop DATADIR
       scripts/pg.sh status DATADIR
       scripts/pg.sh destroy DATADIR
EOF
	exit 2
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# Runs a command as the cluster's owner: `postgres` when we are root, ourselves otherwise. The working
# directory is / so that a cwd postgres cannot enter (e.g. /root) causes no warnings.
as_owner() {
	if is_root; then
		(cd / && runuser -u postgres -- "$@")
	else
		(cd / && "$@")
	fi
}

abspath() {
	case "$1" in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s/%s\n' "$(pwd -P)" "$1" ;;
	esac
}

fallback_dir() {
	local h
	h=$(printf '%s' "$1" | sha256sum | cut -c1-12)
	printf '/tmp/inkloop-pg-%s\n' "$h"
}

# The directory that actually holds (or will hold) the cluster for the DATADIR the caller named.
resolve_existing() {
	local d=$1 fb
	fb=$(fallback_dir "$d")
	if [ ! -f "$d/PG_VERSION" ] && [ -f "$fb/PG_VERSION" ]; then
		printf '%s\n' "$fb"
	else
		printf '%s\n' "$d"
	fi
}

# True when the cluster's owner can enter and write the directory (every parent must be traversable).
can_use() {
	# shellcheck disable=SC2016 # $1 is expanded by the inner shell.
	as_owner sh -c 'cd "$1" && test -w .' sh "$1" 2>/dev/null
}

# Creates DATADIR for the cluster's owner and checks that owner can use it; falls back to /tmp if not.
prepare_datadir() {
	local d=$1 fb
	if [ -f "$d/PG_VERSION" ]; then
		printf '%s\n' "$d"
		return
	fi
	fb=$(fallback_dir "$d")
	if [ -f "$fb/PG_VERSION" ]; then
		say "using $fb for $d (postgres cannot reach $d)"
		printf '%s\n' "$fb"
		return
	fi
	mkdir -p "$d" || die "cannot create $d"
	if is_root; then
		getent passwd postgres >/dev/null || die "user 'postgres' does not exist; run deps/install.sh"
		chown postgres:postgres "$d"
	fi
	chmod 700 "$d"
	if can_use "$d"; then
		printf '%s\n' "$d"
		return
	fi
	is_root || die "$d is not usable by $(id -un)"
	say "user postgres cannot traverse or write $d; keeping the cluster in $fb instead"
	mkdir -p "$fb"
	chown postgres:postgres "$fb"
	chmod 700 "$fb"
	can_use "$fb" || die "user postgres cannot use $fb either"
	printf '%s\n' "$fb"
}

# Where the server puts its unix socket: inside the data directory (private to this cluster) when the path is
# short enough for sockaddr_un (107 bytes including ".s.PGSQL.NNNNN"), /tmp otherwise.
socket_dir() {
	if [ "${#1}" -le 80 ]; then printf '%s\n' "$1"; else printf '/tmp\n'; fi
}

running_port() {
	# Line 4 of postmaster.pid is the port.
	sed -n 4p "$1/postmaster.pid" 2>/dev/null || true
}

is_running() {
	as_owner "$PG_BIN/pg_ctl" -D "$1" status >/dev/null 2>&1
}

url_for() { printf 'postgresql://postgres@127.0.0.1:%s/inkloop\n' "$1"; }

write_conf() {
	local d=$1 port=$2 fast=$3 sock
	sock=$(socket_dir "$d")
	{
		echo "# Written by scripts/pg.sh at every start; edits are lost."
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $port"
		echo "unix_socket_directories = '$sock'"
		echo "max_connections = 200"
		echo "log_line_prefix = '%m [%p] '"
		echo "log_min_messages = warning"
		if [ "$fast" = 1 ]; then
			echo "fsync = off"
			echo "synchronous_commit = off"
			echo "full_page_writes = off"
		fi
	} >"$d/inkloop.conf.tmp"
	mv "$d/inkloop.conf.tmp" "$d/inkloop.conf"
	if is_root; then chown postgres:postgres "$d/inkloop.conf"; fi
	if ! grep -q "^include_if_exists = 'inkloop.conf'" "$d/postgresql.conf"; then
		echo "include_if_exists = 'inkloop.conf'" >>"$d/postgresql.conf"
	fi
}

psql_at() {
	local port=$1
	shift
	"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"
}

cmd_start() {
	local datadir="" port="" fast=0 arg d rp
	for arg in "$@"; do
		case "$arg" in
		--fast) fast=1 ;;
		-*) usage ;;
		*)
			if [ -z "$datadir" ]; then
				datadir=$arg
			elif [ -z "$port" ]; then
				port=$arg
			else
				usage
			fi
			;;
		esac
	done
	if [ -z "$datadir" ] || [ -z "$port" ]; then usage; fi
	case "$port" in
	'' | *[!0-9]*) die "PORT must be a number (got \"$port\")" ;;
	esac
	if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then die "PORT must be 1..65535 (got $port)"; fi
	[ -x "$PG_BIN/initdb" ] || die "$PG_BIN/initdb not found; run deps/install.sh"

	datadir=$(abspath "$datadir")
	d=$(prepare_datadir "$datadir")

	if [ ! -f "$d/PG_VERSION" ]; then
		say "initdb $d"
		local nosync=()
		if [ "$fast" = 1 ]; then nosync=(--no-sync); fi
		if ! as_owner "$PG_BIN/initdb" -D "$d" -A trust -U postgres --encoding=UTF8 --locale=C \
			"${nosync[@]}" >"${TMPDIR:-/tmp}/inkloop-initdb.$$.log" 2>&1; then
			cat "${TMPDIR:-/tmp}/inkloop-initdb.$$.log" >&2
			rm -f "${TMPDIR:-/tmp}/inkloop-initdb.$$.log"
			die "initdb failed for $d"
		fi
		rm -f "${TMPDIR:-/tmp}/inkloop-initdb.$$.log"
	fi

	if is_running "$d"; then
		rp=$(running_port "$d")
		if [ "$rp" != "$port" ]; then
			die "the cluster in $d is already running on port $rp, not $port; stop it first: scripts/pg.sh stop $datadir"
		fi
		say "already running on 127.0.0.1:$port ($d)"
	else
		write_conf "$d" "$port" "$fast"
		say "starting PostgreSQL on 127.0.0.1:$port ($d)"
		if ! as_owner "$PG_BIN/pg_ctl" -D "$d" -l "$d/server.log" -w -t 60 -s start >/dev/null; then
			echo "---- last lines of $d/server.log ----" >&2
			tail -n 30 "$d/server.log" >&2 || true
			die "PostgreSQL did not start (is port $port already in use?)"
		fi
	fi

	if [ "$(psql_at "$port" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'inkloop'")" != 1 ]; then
		psql_at "$port" -d postgres -c 'CREATE DATABASE inkloop' >/dev/null ||
			die "could not create database inkloop on port $port"
	fi
	url_for "$port"
}

cmd_stop() {
	[ "$#" -eq 1 ] || usage
	local d
	d=$(resolve_existing "$(abspath "$1")")
	if [ ! -f "$d/PG_VERSION" ]; then
		say "no cluster in $1"
		return 0
	fi
	if ! is_running "$d"; then
		say "not running ($d)"
		return 0
	fi
	as_owner "$PG_BIN/pg_ctl" -D "$d" -m fast -w -t 60 -s stop >/dev/null || die "pg_ctl stop failed for $d"
	say "stopped ($d)"
}

cmd_destroy() {
	[ "$#" -eq 1 ] || usage
	local d fb
	d=$(abspath "$1")
	fb=$(fallback_dir "$d")
	cmd_stop "$d"
	rm -rf "$d"
	if [ -d "$fb" ]; then rm -rf "$fb"; fi
}

cmd_status() {
	[ "$#" -eq 1 ] || usage
	local d
	d=$(resolve_existing "$(abspath "$1")")
	if [ -f "$d/PG_VERSION" ] && is_running "$d"; then
		url_for "$(running_port "$d")"
		return 0
	fi
	say "not running ($d)"
	return 3
}

[ "$#" -ge 1 ] || usage
sub=$1
shift
case "$sub" in
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
status) cmd_status "$@" ;;
destroy) cmd_destroy "$@" ;;
-h | --help | help) usage ;;
*) usage ;;
esac
