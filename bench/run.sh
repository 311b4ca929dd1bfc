#!/usr/bin/env bash
# Foundation benchmark: HTTP requests/s through inkloop (wrk) beside PostgreSQL's own rate for the same SQL
# (pgbench), at the same concurrency, on this machine. Prints a table; see bench/README.md for recorded runs.
#
#   bench/run.sh [-c CONNECTIONS] [-d SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

conns=64
secs=10
while getopts "c:d:" opt; do
  case $opt in
    c) conns=$OPTARG ;;
    d) secs=$OPTARG ;;
    *) echo "usage: bench/run.sh [-c CONNECTIONS] [-d SECONDS]" >&2; exit 2 ;;
  esac
done

deps/install.sh --bench
if [ ! -d build-bench ]; then
  meson setup build-bench --buildtype=release -Db_ndebug=true >/dev/null
fi
ninja -C build-bench inkloop >/dev/null

work=$(mktemp -d /tmp/inkloop-bench.XXXXXX)
pg_port=$((20000 + RANDOM % 20000))
http_port=$((40000 + RANDOM % 20000))
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  scripts/pg.sh stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

db_url=$(scripts/pg.sh start "$work/pg" "$pg_port" --fast | tail -n 1)
# The server and wrk share the machine's cores with PostgreSQL; a pool of 4 matches what one process uses.
DATABASE_URL=$db_url PORT=$http_port HOST=127.0.0.1 INKLOOP_DEV=1 LOG_LEVEL=warn DB_POOL_SIZE=4 \
  build-bench/inkloop serve 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$http_port/health" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$http_port/health" >/dev/null || { cat "$work/server.log" >&2; exit 1; }

wrk_rps() { # path -> requests/s
  wrk -t2 -c"$conns" -d"${secs}s" --latency "http://127.0.0.1:$http_port$1" >"$work/wrk.out" 2>&1
  awk '/Requests\/sec/ {print $2}' "$work/wrk.out"
}
wrk_p99() {
  awk '$1 == "99%" {print $2}' "$work/wrk.out"
}

# The SQL GET /health runs (src/http/health.c), run by pgbench as a prepared statement.
cat >"$work/health.sql" <<'SQL'
SELECT count(*) FILTER (WHERE state = 'queued' AND run_at <= now()) AS queued, count(*) FILTER (WHERE state = 'running') AS in_progress, count(*) FILTER (WHERE state = 'queued' AND run_at > now()) AS delayed FROM jobs WHERE state IN ('queued', 'running');
SQL
pg_bin=/usr/lib/postgresql/15/bin
pgbench_rps() { # sql file -> transactions/s
  "$pg_bin/pgbench" -n -M prepared -c "$conns" -j 2 -T "$secs" -f "$1" "$db_url" 2>/dev/null |
    awk '/^tps/ {print int($3)}'
}

health_rps=$(wrk_rps /health); health_p99=$(wrk_p99)
notfound_rps=$(wrk_rps /no-such-route); notfound_p99=$(wrk_p99)
pg_rps=$(pgbench_rps "$work/health.sql")

printf '\ninkloop bench (%s connections, %ss each, %s cores)\n' "$conns" "$secs" "$(nproc)"
printf '%-34s %14s %10s %18s\n' "what" "inkloop req/s" "p99" "pgbench same SQL"
printf '%-34s %14s %10s %18s\n' "GET /health (one query)" "$health_rps" "$health_p99" "$pg_rps"
printf '%-34s %14s %10s %18s\n' "GET /no-such-route (no query)" "$notfound_rps" "$notfound_p99" "-"
