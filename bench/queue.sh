#!/usr/bin/env bash
# The job queue beside graphile-worker (../shared/anchors/graphile-worker), in one run on one PostgreSQL 15:
# N no-op jobs drained by one process (jobs/s), and add -> start latency (p50, p99) of jobs added one at a time
# to an idle worker. inkloop runs the bench-only kind bench_noop (INKLOOP_BENCH_NOOP=1, src/jobs/bench_noop.c);
# graphile-worker runs its anchor's bench.mjs. See bench/README.md for the method.
#
#   bench/queue.sh [-n JOBS] [-s SAMPLES] [-c GW_CONCURRENCY]      (defaults: 100000, 1000, 24)
#
# Environment: INKLOOP_ANCHOR_GW (default ../shared/anchors/graphile-worker, relative to the repository),
# NODE (node), WORKER_CONCURRENCY (64) and DB_POOL_SIZE (8) for inkloop, QUIET=1 to let bench.mjs wait for a
# quiet machine before each measurement (up to 120 s each).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

n=100000
samples=1000
gw_conc=24
usage() { echo "usage: bench/queue.sh [-n JOBS] [-s SAMPLES] [-c GW_CONCURRENCY]" >&2; exit 2; }
while getopts "n:s:c:" opt; do
  case $opt in
    n) n=$OPTARG ;;
    s) samples=$OPTARG ;;
    c) gw_conc=$OPTARG ;;
    *) usage ;;
  esac
done
for v in "$n" "$samples" "$gw_conc"; do
  case $v in '' | *[!0-9]* | 0) usage ;; esac
done
gw_src=${INKLOOP_ANCHOR_GW:-../shared/anchors/graphile-worker}
node=${NODE:-node}
ink_conc=${WORKER_CONCURRENCY:-64}
ink_pool=${DB_POOL_SIZE:-8}
py=/usr/bin/python3 # the Debian packages (asyncpg) live in the system interpreter
for f in bench.mjs package.json package-lock.json; do
  [ -f "$gw_src/$f" ] || { echo "bench/queue.sh: $gw_src/$f not found (set INKLOOP_ANCHOR_GW)" >&2; exit 1; }
done
die() {
  echo "bench/queue.sh: $*" >&2
  exit 1
}

deps/install.sh --bench
command -v "$node" >/dev/null || die "$node not found (deps/install.sh --bench installs nodejs)"
command -v npm >/dev/null || die "npm not found: install it with node (Debian: apt-get install npm)"
if [ ! -d build-bench ]; then
  meson setup build-bench --buildtype=release -Db_ndebug=true >/dev/null
fi
ninja -C build-bench inkloop >/dev/null

# graphile-worker from the npm registry, exactly as the anchor's package-lock.json pins it, in a copy of the
# anchor kept in build-bench (installed again only when the lock file changes).
gw=$root/build-bench/anchor-graphile-worker
if ! cmp -s "$gw_src/package-lock.json" "$gw/package-lock.json" 2>/dev/null || [ ! -d "$gw/node_modules/graphile-worker" ]; then
  rm -rf "$gw"
  mkdir -p "$gw"
  cp -r "$gw_src/." "$gw/"
  chmod -R u+w "$gw"
  rm -rf "$gw/node_modules"
  (cd "$gw" && timeout -k 5 600 npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>"$gw/npm.log") ||
    { cat "$gw/npm.log" >&2; rm -rf "$gw"; die "npm ci of graphile-worker failed"; }
else
  cp "$gw_src/bench.mjs" "$gw/bench.mjs" # the driver as the anchor has it now
fi
gw_version=$("$node" -p "require('$gw/node_modules/graphile-worker/package.json').version")

pg_bin=/usr/lib/postgresql/15/bin
work=$(mktemp -d /tmp/inkloop-queue.XXXXXX)
chmod 755 "$work" # the cluster's owner (postgres, when run as root) keeps its data in here
# A port nothing listens on now (the kernel picks it; a clash with a later listener is unlikely, and fails loudly).
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pg_port=$(free_port)
http_port=$(free_port)
while [ "$http_port" = "$pg_port" ]; do http_port=$(free_port); done
child=""
cleanup() {
  if [ -n "$child" ]; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  scripts/pg.sh destroy "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- one PostgreSQL 15, default settings (fsync and synchronous_commit on) ----
ink_url=$(scripts/pg.sh start "$work/pg" "$pg_port" | tail -n 1)
base_url=${ink_url%/inkloop}
gw_url=$base_url/gw
pgdata=$("$pg_bin/psql" -X -At -d "$ink_url" -c "SHOW data_directory")
psql_() { "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

# Every measurement starts from a fresh database: graphile-worker's from its own migration (the CLI's
# --schema-only, as the anchor's bench.sh does), inkloop's from its migrations plus JOBS_BENCH_NOOP_SCHEMA_SQL
# (src/jobs/bench_noop.h), which lets jobs.kind be bench_noop in this throwaway database only.
fresh_gw() {
  psql_ -d "$base_url/postgres" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS gw WITH (FORCE)" -c "CREATE DATABASE gw"
  (cd "$gw" && timeout -k 5 120 "$node" node_modules/graphile-worker/dist/cli.js -c "$gw_url" --schema-only \
    >"$work/gw-migrate.log" 2>&1) || { cat "$work/gw-migrate.log" >&2; die "graphile-worker --schema-only failed"; }
}
fresh_ink() {
  psql_ -d "$base_url/postgres" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS inkloop WITH (FORCE)" -c "CREATE DATABASE inkloop"
  DATABASE_URL=$ink_url INKLOOP_DEV=1 LOG_LEVEL=warn build-bench/inkloop migrate >"$work/migrate.log" 2>&1 ||
    { cat "$work/migrate.log" >&2; die "inkloop migrate failed"; }
  psql_ -d "$ink_url" -c "ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check, ADD CONSTRAINT jobs_kind_check
    CHECK (kind IN ('generate_article', 'deliver_webhook', 'bench_noop'))"
}
# One driver call in the background (so cleanup can stop it; each driver stops what it started when it gets
# SIGTERM), bounded by timeout. Called in this shell, never in $(...), so cleanup sees $child. Sets $res to
# the driver's RESULT line (tab-separated).
res=""
run_bg() { # name command...
  local name=$1 rc=0
  shift
  timeout -k 5 900 "$@" >"$work/$name.out" 2>"$work/$name.err" &
  child=$!
  wait "$child" || rc=$?
  child=""
  if [ "$rc" != 0 ]; then
    cat "$work/$name.err" >&2
    die "$name $* failed (status $rc)"
  fi
  res=$(grep '^RESULT' "$work/$name.out") || { cat "$work/$name.err" >&2; die "$name $* printed no RESULT"; }
}
gw_run() {
  run_bg bench.mjs env -C "$gw" GW_DSN="$gw_url" GW_PGDATA="$pgdata" \
    SKIP_QUIET="$([ "${QUIET:-0}" = 1 ] && echo 0 || echo 1)" "$node" bench.mjs "$@"
}
ink_run() {
  run_bg queue.py env QUEUE_DSN="$ink_url" INKLOOP_BIN="$root/build-bench/inkloop" QUEUE_WORKDIR="$work" QUEUE_PGDATA="$pgdata" \
    INKLOOP_ENV="DATABASE_URL=$ink_url HOST=127.0.0.1 PORT=$http_port INKLOOP_DEV=1 LOG_LEVEL=warn
      INKLOOP_ROLES=worker INKLOOP_BENCH_NOOP=1 WORKER_CONCURRENCY=$ink_conc DB_POOL_SIZE=$ink_pool" \
    "$py" bench/queue.py "$@"
}
field() { cut -f"$1" <<<"$2"; }

load=$(cut -d' ' -f1-3 /proc/loadavg)
printf '\nbench/queue.sh: %s no-op jobs, %s latency samples, %s cores, load %s before the runs\n' \
  "$n" "$samples" "$(nproc)" "$load"

# ---- drain: N jobs queued with no worker running (batches of 1000), table analyzed, then one process ----
fresh_gw
gw_run enqueue sql "$n" 1000
psql_ -d "$gw_url" -c "ANALYZE graphile_worker._private_jobs"
gw_run drain "$gw_conc" on "$n"
gw_drain=$res
# RESULT drain conc batching n secs jobs/s pg node other startup tail count left analyzed_before analyzed_during
echo "  graphile-worker drain: $(field 7 "$gw_drain") jobs/s ($(field 6 "$gw_drain") s; cpu pg $(field 8 "$gw_drain")," \
  "node $(field 9 "$gw_drain"), other $(field 10 "$gw_drain") cores)"

fresh_ink
ink_run enqueue "$n" 1000
psql_ -d "$ink_url" -c "ANALYZE jobs"
ink_run drain "$n"
ink_drain=$res
# RESULT drain n secs jobs/s inkloop-cores pg-cores
echo "  inkloop drain:         $(field 5 "$ink_drain") jobs/s ($(field 4 "$ink_drain") s; cpu pg $(field 7 "$ink_drain"), inkloop $(field 6 "$ink_drain") cores)"

# ---- latency: an idle worker, 100 warm-up jobs, then SAMPLES jobs added one at a time ----
fresh_gw
gw_run latency "$gw_conc" on "$samples"
gw_lat=$res
# RESULT latency conc batching samples min p50 p99 max avg add_p50 other
echo "  graphile-worker latency: p50 $(field 7 "$gw_lat") ms, p99 $(field 8 "$gw_lat") ms, max $(field 9 "$gw_lat") ms" \
  "(add_job call p50 $(field 11 "$gw_lat") ms)"
fresh_ink
ink_run latency "$samples"
ink_lat=$res
# RESULT latency samples min p50 p99 max avg insert_p50
echo "  inkloop latency:         p50 $(field 5 "$ink_lat") ms, p99 $(field 6 "$ink_lat") ms, max $(field 7 "$ink_lat") ms" \
  "(INSERT call p50 $(field 9 "$ink_lat") ms)"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
echo
echo "| measurement | inkloop | graphile-worker $gw_version (c=$gw_conc, batching on) | inkloop / graphile-worker |"
echo "|---|---|---|---|"
echo "| drain $n no-op jobs, one process (jobs/s) | $(field 5 "$ink_drain") | $(field 7 "$gw_drain") | $(ratio "$(field 5 "$ink_drain")" "$(field 7 "$gw_drain")") |"
echo "| add -> start latency p99, $samples samples (ms) | $(field 6 "$ink_lat") (p50 $(field 5 "$ink_lat")) | $(field 8 "$gw_lat") (p50 $(field 7 "$gw_lat")) | $(ratio "$(field 6 "$ink_lat")" "$(field 8 "$gw_lat")") |"
echo
printf '%s (commit %s): WORKER_CONCURRENCY=%s (runner concurrency %s with the delivery slots), DB_POOL_SIZE=%s;' \
  "$(build-bench/inkloop version 2>/dev/null | head -1)" "$(git rev-parse --short HEAD)" "$ink_conc" "$((ink_conc + 64))" "$ink_pool"
printf ' graphile-worker %s on node %s; PostgreSQL %s; %s cores; %s\n' "$gw_version" "$("$node" --version)" \
  "$("$pg_bin/postgres" --version | awk '{ print $3 }')" "$(nproc)" "$(date -u '+%Y-%m-%d %H:%M UTC')"
