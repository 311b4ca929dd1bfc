#!/usr/bin/env bash
# inkloop beside the seed stack (the FastAPI service it replaces, ../shared/anchors/fastapi), measured in one run
# on one PostgreSQL 15 with the same data set and the same wrk scripts, in alternating rounds, plus pgbench
# running the seed stack's SQL. Prints the table of issue 11. See bench/README.md for the method.
#
#   bench/compare.sh [-d SECONDS] [-r ROUNDS] [-c CONNECTIONS]     (defaults: 15 s, 2 rounds, 64 connections)
#
# Environment: INKLOOP_ANCHOR_FASTAPI (default ../shared/anchors/fastapi, relative to the repository),
# NUSERS (100), NARTICLES (1000), WORDS (1500, seed.py's content length; the Markdown comes out at ~1,600),
# SEED_WORKERS (2, uvicorn workers), INKLOOP_POOL (4, inkloop's DB_POOL_SIZE). Python is /usr/bin/python3,
# where the Debian packages are.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=15
rounds=2
conns=64
usage() { echo "usage: bench/compare.sh [-d SECONDS] [-r ROUNDS] [-c CONNECTIONS]" >&2; exit 2; }
while getopts "d:r:c:" opt; do
  case $opt in
    d) secs=$OPTARG ;;
    r) rounds=$OPTARG ;;
    c) conns=$OPTARG ;;
    *) usage ;;
  esac
done
for v in "$secs" "$rounds" "$conns"; do
  case $v in '' | *[!0-9]* | 0) usage ;; esac
done
anchor_src=${INKLOOP_ANCHOR_FASTAPI:-../shared/anchors/fastapi}
nusers=${NUSERS:-100}
narticles=${NARTICLES:-1000}
words=${WORDS:-1500}
seed_workers=${SEED_WORKERS:-2}
inkloop_pool=${INKLOOP_POOL:-4}
# The Debian packages live in the system interpreter (a pyenv or venv python3 earlier on PATH would not see them).
py=/usr/bin/python3
for f in app.py schema.sql seed.py common.lua get.lua post.lua pgbench_get.sql pgbench_post.sql; do
  [ -f "$anchor_src/$f" ] || { echo "bench/compare.sh: $anchor_src/$f not found (set INKLOOP_ANCHOR_FASTAPI)" >&2; exit 1; }
done

deps/install.sh --bench
if [ ! -d build-bench ]; then
  meson setup build-bench --buildtype=release -Db_ndebug=true >/dev/null
fi
ninja -C build-bench inkloop >/dev/null

pg_bin=/usr/lib/postgresql/15/bin
work=$(mktemp -d /tmp/inkloop-compare.XXXXXX)
chmod 755 "$work" # the cluster's owner (postgres, when run as root) keeps its data in here
# A port nothing listens on now (the kernel picks it; a clash with a later listener is unlikely, and fails loudly).
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pg_port=$(free_port)
ink_port=$(free_port)
seed_port=$(free_port)
while [ "$ink_port" = "$pg_port" ]; do ink_port=$(free_port); done
while [ "$seed_port" = "$pg_port" ] || [ "$seed_port" = "$ink_port" ]; do seed_port=$(free_port); done
ink_pid=""
seed_pid=""
stop_pid() { # pid [group]: SIGTERM, wait up to 10 s, then SIGKILL; "group" signals the process group it leads
  local pid=$1 target=$1
  [ -n "$pid" ] || return 0
  [ "${2:-}" = group ] && target=-$pid
  kill -TERM -- "$target" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "$target" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$seed_pid" group
  stop_pid "$ink_pid"
  scripts/pg.sh destroy "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() {
  echo "bench/compare.sh: $*" >&2
  exit 1
}

# ---- one PostgreSQL 15, default settings (fsync and synchronous_commit on), two databases ----
# scripts/pg.sh creates database inkloop; the seed stack gets database anchor on the same cluster.
ink_url=$(scripts/pg.sh start "$work/pg" "$pg_port" | tail -n 1)
anchor_url="postgresql://postgres@127.0.0.1:$pg_port/anchor"
psql_() { "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql_ -d "$ink_url" -c "CREATE DATABASE anchor"

# ---- the seed stack's data set (its own schema.sql and seed.py) ----
# A private copy of the anchor: seed.py writes keys.txt and ids.txt next to itself, and wrk reads pairs.txt from
# its working directory. Both stacks are driven from this one directory, with the same scripts and pairs.
cp -r "$anchor_src" "$work/anchor"
chmod -R u+w "$work/anchor"
anchor=$work/anchor
psql_ -d "$anchor_url" -c "SET client_min_messages = warning" -f "$anchor/schema.sql"
(cd "$anchor" && "$py" seed.py --users "$nusers" --articles "$narticles" --words "$words" --dsn "$anchor_url") >/dev/null
awk 'NR == FNR { k[FNR - 1] = $0; n = FNR; next } { print $0, k[(FNR - 1) % n] }' \
  "$anchor/keys.txt" "$anchor/ids.txt" >"$anchor/pairs.txt"

# ---- inkloop: its own migrations, then the same rows copied over with SQL ----
DATABASE_URL=$ink_url INKLOOP_DEV=1 LOG_LEVEL=warn build-bench/inkloop migrate >"$work/migrate.log" 2>&1 ||
  { cat "$work/migrate.log" >&2; die "inkloop migrate failed"; }
copy_rows() { # SELECT on the anchor -> COPY target (columns) on inkloop
  psql_ -d "$anchor_url" -c "COPY ($1) TO STDOUT" | psql_ -d "$ink_url" -c "COPY $2 FROM STDIN"
}
copy_rows "SELECT id, email, username, hashed_password, credits, plan, created_at FROM users" \
  "users (id, email, username, password_hash, credits, plan, created_at)"
# inkloop stores the key's SHA-256 as bytea and a 12-character prefix; the plaintext key of user u is
# 'sk_' || md5('anchor-key:' || u) (seed.py), and the anchor's username is 'user' || u.
copy_rows "SELECT k.id, k.user_id, k.name, left('sk_' || md5('anchor-key:' || substr(u.username, 5)), 12),
                  decode(k.key_hash, 'hex'), k.created_at
             FROM api_keys k JOIN users u ON u.id = k.user_id" \
  "api_keys (id, user_id, name, prefix, key_hash, created_at)"
# Articles go in as queued and are completed through POST /internal/article-complete below, so inkloop renders
# content_html and word_count itself, as it does for every article it completes.
copy_rows "SELECT id, user_id, topic, raw_query, category, target_length, source_count, timezone, tokens_used,
                  created_at, updated_at FROM articles" \
  "articles (id, user_id, topic, raw_query, category, target_length, source_count, timezone, tokens_used,
             created_at, updated_at)"

# ---- both servers, started once; only one is under load at a time ----
internal_secret=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
# INKLOOP_ROLES=api: no job runner or scheduler, so nothing works on the articles POST /articles creates.
DATABASE_URL=$ink_url PORT=$ink_port HOST=127.0.0.1 INKLOOP_DEV=1 LOG_LEVEL=warn DB_POOL_SIZE=$inkloop_pool \
  INKLOOP_ROLES=api CREDITS_PER_ARTICLE=1 INTERNAL_SECRET=$internal_secret \
  build-bench/inkloop serve 2>"$work/inkloop.log" &
ink_pid=$!
# uvicorn forks its workers: setsid makes it a process group leader, so cleanup can stop the whole group.
(cd "$anchor" && ANCHOR_DSN=$anchor_url exec setsid "$py" -m uvicorn app:app --host 127.0.0.1 --port "$seed_port" \
  --workers "$seed_workers" --loop uvloop --http httptools --log-level warning --no-access-log) \
  2>"$work/seed.log" &
seed_pid=$!
wait_up() { # name url pid log
  for _ in $(seq 1 200); do
    curl -fsS --max-time 2 "$2/health" >/dev/null 2>&1 && return 0
    kill -0 "$3" 2>/dev/null || { cat "$4" >&2; die "$1 exited during start-up"; }
    sleep 0.1
  done
  cat "$4" >&2
  die "$1 did not answer $2/health within 20 s"
}
ink=http://127.0.0.1:$ink_port
seed=http://127.0.0.1:$seed_port
wait_up inkloop "$ink" "$ink_pid" "$work/inkloop.log"
wait_up "the seed stack" "$seed" "$seed_pid" "$work/seed.log"

# Content from the anchor's rows, sent to inkloop on one keep-alive connection.
"$py" - "$anchor_url" "$ink_port" "$internal_secret" <<'PY'
import asyncio, http.client, json, sys
import asyncpg

async def rows(dsn):
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch("SELECT id::text, tokens_used, content FROM articles ORDER BY id")
    finally:
        await conn.close()

dsn, port, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
for r in asyncio.run(rows(dsn)):
    body = json.dumps({"article_id": r["id"], "tokens_used": r["tokens_used"], "status": "completed",
                       "content": r["content"]})
    c.request("POST", "/internal/article-complete", body,
              {"Content-Type": "application/json", "X-Internal-Secret": secret})
    resp = c.getresponse()
    answer = resp.read()
    if resp.status != 200:
        sys.exit(f"completing {r['id']} on inkloop: HTTP {resp.status}: {answer[:300]!r}")
c.close()
PY
n_done=$(psql_ -d "$ink_url" -Atc "SELECT count(*) FROM articles WHERE status = 'completed' AND content_html IS NOT NULL")
[ "$n_done" = "$narticles" ] || die "inkloop has $n_done completed articles, expected $narticles"

# Both stacks answer the first pair with the same article (same id, same content).
read -r id0 key0 <"$anchor/pairs.txt"
a=$(curl -fsS --max-time 10 -H "X-API-Key: $key0" "$ink/articles/$id0" | jq -r '[.id, .content] | @json')
b=$(curl -fsS --max-time 10 -H "X-API-Key: $key0" "$seed/articles/$id0" | jq -r '[.id, .content] | @json')
[ "$a" = "$b" ] || die "the two stacks answer GET /articles/$id0 differently"

# The state every measured run starts from: the seeded rows only (what POST runs added is deleted), full
# balances, vacuumed and analyzed, checkpointed.
cutoff=$(psql_ -d "$ink_url" -Atc "SELECT now()")
reset_dbs() {
  psql_ -d "$anchor_url" -c "DELETE FROM jobs" -c "DELETE FROM credit_transactions" \
    -c "DELETE FROM articles WHERE created_at >= '$cutoff'" -c "UPDATE users SET credits = 1000000000" \
    -c "VACUUM ANALYZE"
  psql_ -d "$ink_url" -c "DELETE FROM articles WHERE created_at >= '$cutoff'" -c "DELETE FROM jobs" \
    -c "DELETE FROM credit_transactions" -c "DELETE FROM idempotency_keys" \
    -c "UPDATE users SET credits = 1000000000" -c "VACUUM ANALYZE"
  psql_ -d "$ink_url" -c "CHECKPOINT"
}
reset_dbs

# ---- the runs ----
results=$work/results
: >"$results"
wrk_run() { # stack url route lua round: one wrk run; appends "stack route round RESULT-fields" to $results
  local out r
  # --timeout 10s: wrk leaves requests slower than its timeout (2 s by default) out of the latency figures, which
  # would flatter a stack's p99 on a loaded machine; a request that still times out is counted and printed.
  out=$(cd "$anchor" && timeout -k 5 $((secs + 60)) wrk -t1 -c"$conns" -d"${secs}s" --timeout 10s -s "$4" "$2") ||
    die "wrk against $1 failed"
  r=$(awk '/^RESULT/ { $1 = ""; print }' <<<"$out")
  [ -n "$r" ] || { echo "$out" >&2; die "wrk against $1 printed no RESULT line"; }
  # RESULT: req/s p50 p90 p99 p99.9 non2xx socket-errors bytes/response
  read -r rps p50 p90 p99 p999 non2xx errs bytes <<<"$r"
  # wrk's own line "Socket errors: connect C, read R, write W, timeout T" (absent when all are 0).
  local timeouts broken
  timeouts=$(sed -n 's/.*Socket errors:.*timeout \([0-9]*\).*/\1/p' <<<"$out")
  timeouts=${timeouts:-0}
  broken=$((errs - timeouts))
  if [ "$non2xx" != 0 ] || [ "$broken" != 0 ]; then
    echo "$out" >&2
    tail -n 20 "$work/inkloop.log" "$work/seed.log" >&2
    die "$1 $3: $non2xx non-2xx answers, $broken connect/read/write errors"
  fi
  printf '%s %s %s %s %s %s %s %s %s %s\n' "$1" "$3" "$5" "$rps" "$p50" "$p90" "$p99" "$p999" "$bytes" \
    "$timeouts" >>"$results"
  printf '  round %s %-8s %-5s %8s req/s  p50 %7s  p90 %7s  p99 %7s  p99.9 %7s ms  %6s B  %s timeouts\n' \
    "$5" "$1" "$3" "$rps" "$p50" "$p90" "$p99" "$p999" "$bytes" "$timeouts"
}
# Warm-up, untimed: every pool connection opened, statements prepared, the articles in shared buffers.
(cd "$anchor" && timeout -k 5 60 wrk -t1 -c"$conns" -d2s -s get.lua "$ink" >/dev/null) || die "warm-up of inkloop failed"
(cd "$anchor" && timeout -k 5 60 wrk -t1 -c"$conns" -d2s -s get.lua "$seed" >/dev/null) || die "warm-up of the seed stack failed"

load=$(cut -d' ' -f1-3 /proc/loadavg)
printf '\nbench/compare.sh: wrk -t1 -c%s -d%ss, %s round(s), %s cores, load %s before the runs\n' \
  "$conns" "$secs" "$rounds" "$(nproc)" "$load"
for round in $(seq 1 "$rounds"); do
  for stack in inkloop seed; do
    if [ "$stack" = inkloop ]; then url=$ink; else url=$seed; fi
    reset_dbs
    wrk_run "$stack" "$url" GET get.lua "$round"
    reset_dbs
    wrk_run "$stack" "$url" POST post.lua "$round"
  done
done

# pgbench with the seed stack's SQL (its pgbench_*.sql, -M prepared, as its bench.sh runs them) on the anchor
# database: the rate PostgreSQL itself allows for those round trips on this machine.
pgbench_tps() { # sql file -> transactions/s; fails on any error
  local out
  out=$(cd "$anchor" && timeout -k 5 $((secs + 60)) "$pg_bin/pgbench" -n -M prepared -c"$conns" -j1 -T"$secs" \
    -D nusers="$nusers" -D narticles="$narticles" -f "$1" "$anchor_url" 2>&1) || { echo "$out" >&2; die "pgbench $1 failed"; }
  if grep -qi "error\|aborted" <<<"$out"; then
    echo "$out" >&2
    die "pgbench $1 reported errors"
  fi
  sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1 | awk '{ printf "%.0f", $1 }'
}
reset_dbs
pg_get=$(pgbench_tps pgbench_get.sql)
reset_dbs
pg_post=$(pgbench_tps pgbench_post.sql)

# ---- the table: req/s is the mean over the rounds, p99 the worst round's ----
summary() { # stack route -> "req/s p99 bytes timeouts"
  awk -v s="$1" -v r="$2" '$1 == s && $2 == r { n++; rps += $4; if ($7 > p99) p99 = $7; b = $9; t += $10 }
    END { printf "%.0f %.1f %s %d", rps / n, p99, b, t }' "$results"
}
fmt_int() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; } # 12345 -> 12,345
row() { # label route pgbench
  local i s
  read -r i_rps i_p99 i_b i_t <<<"$(summary inkloop "$2")"
  read -r s_rps s_p99 s_b s_t <<<"$(summary seed "$2")"
  i="$(fmt_int "$i_rps") req/s (p99 $i_p99 ms)"
  s="$(fmt_int "$s_rps") req/s (p99 $s_p99 ms)"
  ratio=$(awk -v a="$i_rps" -v b="$s_rps" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }')
  printf '| %s | %s | %s | %s | %s tps |\n' "$1" "$i" "$s" "$ratio" "$(fmt_int "$3")"
  bytes_note+="$1: inkloop $i_b B, seed stack $s_b B per response; requests over 10 s: inkloop $i_t, seed stack $s_t. "
}
bytes_note=""
echo
echo "| route | inkloop | seed stack (FastAPI, uvicorn $seed_workers workers, uvloop, asyncpg) | ratio | pgbench with the seed stack's SQL |"
echo "|---|---|---|---|---|"
row "GET /articles/{id} with X-API-Key" GET "$pg_get"
row "POST /articles" POST "$pg_post"
echo
echo "$bytes_note"
echo "Data set: $nusers users, $narticles completed articles (seed.py --words $words), fresh in both databases before every run."
echo "req/s: mean of $rounds round(s); p99: the worst round. pgbench: -M prepared -c$conns -j1 -T$secs, one run each."
printf '%s (commit %s), DB_POOL_SIZE=%s; %s; %s; PostgreSQL %s; %s cores; %s\n' \
  "$(build-bench/inkloop version 2>/dev/null | head -1)" "$(git rev-parse --short HEAD)" "$inkloop_pool" \
  "$("$py" -c 'import fastapi, pydantic, uvicorn, asyncpg, uvloop; print("fastapi", fastapi.__version__,
    "pydantic", pydantic.VERSION, "uvicorn", uvicorn.__version__, "asyncpg", asyncpg.__version__, "uvloop",
    uvloop.__version__)')" "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)" \
  "$("$pg_bin/postgres" --version | awk '{ print $3 }')" "$(nproc)" "$(date -u '+%Y-%m-%d %H:%M UTC')"
