#!/usr/bin/env bash
# HTTP requests/s through inkloop (wrk) beside PostgreSQL's own rate for the same SQL (pgbench), at the same
# concurrency, on this machine. Prints a table; see bench/README.md for the method and recorded runs.
# The SQL pgbench runs always comes from `inkloop sql NAME` (the statements exactly as the server registers
# them), with the parameters the route sends substituted as literals: no copy of any query lives here.
#
#   bench/run.sh [-c CONNECTIONS] [-d SECONDS] [-v]      (-v: print the pgbench scripts before the runs)
set -euo pipefail
cd "$(dirname "$0")/.."

conns=64
secs=10
verbose=0
while getopts "c:d:v" opt; do
  case $opt in
    c) conns=$OPTARG ;;
    d) secs=$OPTARG ;;
    v) verbose=1 ;;
    *) echo "usage: bench/run.sh [-c CONNECTIONS] [-d SECONDS] [-v]" >&2; exit 2 ;;
  esac
done

deps/install.sh --bench
if [ ! -d build-bench ]; then
  meson setup build-bench --buildtype=release -Db_ndebug=true >/dev/null
fi
ninja -C build-bench inkloop >/dev/null

work=$(mktemp -d /tmp/inkloop-bench.XXXXXX)
chmod 755 "$work" # the cluster's owner (postgres, when run as root) keeps its data in here
pg_port=$((20000 + RANDOM % 20000))
http_port=$((40000 + RANDOM % 20000))
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  scripts/pg.sh destroy "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

db_url=$(scripts/pg.sh start "$work/pg" "$pg_port" --fast | tail -n 1)
pg_bin=/usr/lib/postgresql/15/bin
base="http://127.0.0.1:$http_port"
credits_per_article=1
# The server and wrk share the machine's cores with PostgreSQL; a pool of 4 matches what one process uses.
# INKLOOP_ROLES=api: no job runner or scheduler, so nothing picks up the articles POST /articles enqueues.
DATABASE_URL=$db_url PORT=$http_port HOST=127.0.0.1 INKLOOP_DEV=1 LOG_LEVEL=warn DB_POOL_SIZE=4 \
  INKLOOP_ROLES=api CREDITS_PER_ARTICLE=$credits_per_article \
  build-bench/inkloop serve 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$base/health" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$base/health" >/dev/null || { cat "$work/server.log" >&2; exit 1; }

# ---- fixtures: one user with an API key, credits for every request, one article to read ----
api() { # METHOD PATH JSON_BODY [curl args...] -> the response body; fails on a status >= 400
  local method=$1 path=$2 body=$3
  shift 3
  curl -fsS -X "$method" "$base$path" -H 'Content-Type: application/json' --data "$body" "$@"
}
signup=$(api POST /auth/signup '{"email": "bench@example.com", "username": "bench", "password": "bench-password-1"}')
token=$(jq -r .access_token <<<"$signup")
user_id=$(jq -r .user.id <<<"$signup")
api_key=$(api POST /api-keys '{"name": "bench"}' -H "Authorization: Bearer $token" | jq -r .key)
"$pg_bin/psql" -q -X -v ON_ERROR_STOP=1 -d "$db_url" -v uid="$user_id" >/dev/null \
  <<<"UPDATE users SET credits = 100000000 WHERE id = :'uid'"
query="The state of small-batch coffee roasting in 2026"
create_body=$(jq -cn --arg q "$query" '{query: $q, target_length: 600}')
article_id=$(api POST /articles "$create_body" -H "X-API-Key: $api_key" | jq -r .id)
curl -fsS -o /dev/null "$base/articles/$article_id" -H "X-API-Key: $api_key"

# ---- the pgbench scripts ----
lit() { # a value -> an SQL string literal
  printf "'%s'" "${1//\'/\'\'}"
}
# Reads registered statements (one a line, from `inkloop sql`) and writes each as a pgbench command, its $n
# parameters replaced by the SQL expressions given as arguments: the first line takes the first group of
# arguments, a lone "--" starts the next line's group. One regex pass over \$[0-9]+ replaces $10 as $10, never
# as $1 followed by "0"; a statement referring to an argument it was not given fails the script.
bind() {
  # shellcheck disable=SC2016 # the $n are the SQL's, for Python
  python3 -c '
import re, sys
groups, cur = [], []
for a in sys.argv[1:]:
    if a == "--":
        groups.append(cur)
        cur = []
    else:
        cur.append(a)
groups.append(cur)
lines = [l for l in sys.stdin.read().split("\n") if l != ""]
if len(lines) != len(groups):
    sys.exit("bind: %d statements, %d parameter groups" % (len(lines), len(groups)))
for sql, args in zip(lines, groups):
    used = set()
    def sub(m):
        i = int(m.group(1))
        if i > len(args):
            sys.exit("bind: $%d in a statement given %d parameters" % (i, len(args)))
        used.add(i)
        return args[i - 1]
    out = re.sub(r"\$([0-9]+)", sub, sql)
    if len(used) != len(args):
        sys.exit("bind: %d parameters given, %d used" % (len(args), len(used)))
    print(out + ";")
' "$@"
}

# GET /health: its one statement.
build-bench/inkloop sql health | bind >"$work/health.sql"

# GET /articles/{id} with X-API-Key: the key lookup (auth_key; the key's SHA-256 as bytea text, as the server
# sends it), then the article (article_get), two round trips as in the server. auth_key_touch runs at most
# once a minute per key, so it is left out.
key_hash=$(printf '%s' "$api_key" | sha256sum | cut -d' ' -f1)
build-bench/inkloop sql auth_key article_get |
  bind "$(lit "\\x$key_hash")" -- "$(lit "$article_id")" "$(lit "$user_id")" >"$work/get.sql"
# pgbench does not look at results: check once that the lookups find the key and the article (one row each).
rows=$("$pg_bin/psql" -X -At -v ON_ERROR_STOP=1 -d "$db_url" -f "$work/get.sql" | wc -l)
[ "$rows" = 2 ] || { echo "bench/run.sh: get.sql returned $rows rows, not 2" >&2; exit 1; }

# POST /articles: the create batch of src/http/articles.c create_run (no Idempotency-Key, no integration):
# article_insert, jobs_enqueue_many (kind generate_article), article_get in one pipeline with one sync, so one implicit
# transaction, as the server sends it. Each transaction needs a new article id: a per-client counter k (-D
# k=0) and :client_id make n, the id is 00000000-0000-4000-8000-<n as 12 digits>. The request's defaults
# (src/http/articles.c article_options_parse) fill the other parameters.
id_expr="('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid"
ids_expr="('{00000000-0000-4000-8000-' || lpad(:n::text, 12, '0') || '}')"
{
  printf '\\set k :k + 1\n\\set n :client_id * 1000000000 + :k\n\\startpipeline\n'
  build-bench/inkloop sql article_insert jobs_enqueue_many article_get |
    bind "$id_expr" "$(lit "$user_id")" "$(lit "$query")" "$(lit General)" "$(lit 600)" "$(lit 5)" NULL NULL \
      "$(lit UTC)" NULL "$(lit en)" "$(lit "$credits_per_article")" \
      -- "$(lit generate_article)" "$ids_expr" \
      -- "$id_expr" "$(lit "$user_id")"
  printf '\\endpipeline\n'
} >"$work/create.sql"

cat >"$work/create.lua" <<LUA
wrk.method = "POST"
wrk.body = [[$create_body]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA

if [ "$verbose" = 1 ]; then
  for f in health get create; do
    printf -- '--- pgbench script %s.sql\n' "$f" >&2
    cat "$work/$f.sql" >&2
  done
fi

# ---- runs ----
load=$(cut -d' ' -f1 /proc/loadavg)
wrk_run() { # ok|any path [wrk args...] -> requests/s; with ok, fails when a response was not 2xx/3xx
  local expect=$1 path=$2
  shift 2
  wrk -t2 -c"$conns" -d"${secs}s" --latency "$@" "$base$path" >"$work/wrk.out" 2>&1
  if [ "$expect" = ok ] && grep -q "Non-2xx" "$work/wrk.out"; then
    echo "bench/run.sh: $path: some responses were errors" >&2
    cat "$work/wrk.out" >&2
    tail -n 20 "$work/server.log" >&2
    exit 1
  fi
  awk '/Requests\/sec/ {print $2}' "$work/wrk.out"
}
wrk_p99() {
  awk '$1 == "99%" {print $2}' "$work/wrk.out"
}
# -M prepared: each statement is prepared once per connection, as the server's pool does. Failed
# transactions abort a pgbench client, so a script that breaks shows up as an error, not as a low figure.
pgbench_rps() { # sql file -> transactions/s
  "$pg_bin/pgbench" -n -M prepared -c "$conns" -j 2 -T "$secs" -D k=0 -f "$1" "$db_url" >"$work/pgbench.out" 2>&1 || {
    cat "$work/pgbench.out" >&2
    exit 1
  }
  if grep -qi "error\|aborted" "$work/pgbench.out"; then
    cat "$work/pgbench.out" >&2
    exit 1
  fi
  awk '/^tps/ {print int($3)}' "$work/pgbench.out"
}

health_rps=$(wrk_run ok /health); health_p99=$(wrk_p99)
notfound_rps=$(wrk_run any /no-such-route); notfound_p99=$(wrk_p99)
pg_health=$(pgbench_rps "$work/health.sql")
get_rps=$(wrk_run ok "/articles/$article_id" -H "X-API-Key: $api_key"); get_p99=$(wrk_p99)
pg_get=$(pgbench_rps "$work/get.sql")
create_rps=$(wrk_run ok /articles -s "$work/create.lua"); create_p99=$(wrk_p99)
pg_create=$(pgbench_rps "$work/create.sql")

printf '\ninkloop bench (%s connections, %ss each, %s cores, load %s before the runs)\n' "$conns" "$secs" "$(nproc)" "$load"
printf '%-34s %14s %10s %18s\n' "what" "inkloop req/s" "p99" "pgbench same SQL"
printf '%-34s %14s %10s %18s\n' "GET /health (one query)" "$health_rps" "$health_p99" "$pg_health"
printf '%-34s %14s %10s %18s\n' "GET /no-such-route (no query)" "$notfound_rps" "$notfound_p99" "-"
printf '%-34s %14s %10s %18s\n' "GET /articles/{id} (X-API-Key)" "$get_rps" "$get_p99" "$pg_get"
printf '%-34s %14s %10s %18s\n' "POST /articles (Bearer)" "$create_rps" "$create_p99" "$pg_create"
