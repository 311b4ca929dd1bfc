#!/usr/bin/env bash
# Scheduler tick benchmark (issue 6): 100,000 campaigns of which 100 are due. Times POST /admin/scheduler/tick
# end to end (claim, one LLM call per due campaign against the stub at zero latency, one transaction per
# campaign) and shows EXPLAIN ANALYZE of the due-campaign query, which must read only the due rows of
# campaigns_due_idx. See bench/README.md.
#
#   bench/sched.sh [-n CAMPAIGNS] [-k DUE]
set -euo pipefail
cd "$(dirname "$0")/.."

total=100000
due=100
while getopts "n:k:" opt; do
  case $opt in
    n) total=$OPTARG ;;
    k) due=$OPTARG ;;
    *) echo "usage: bench/sched.sh [-n CAMPAIGNS] [-k DUE]" >&2; exit 2 ;;
  esac
done

if [ ! -d build-bench ]; then
  meson setup build-bench --buildtype=release -Db_ndebug=true >/dev/null
fi
ninja -C build-bench inkloop >/dev/null

work=$(mktemp -d /tmp/inkloop-bench-sched.XXXXXX)
pg_port=$((20000 + RANDOM % 20000))
http_port=$((40000 + RANDOM % 20000))
server_pid=""
stub_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  [ -n "$stub_pid" ] && kill -TERM "$stub_pid" 2>/dev/null && wait "$stub_pid" 2>/dev/null || true
  scripts/pg.sh stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

db_url=$(scripts/pg.sh start "$work/pg" "$pg_port" --fast | tail -n 1)
psql_() { psql -X -q -v ON_ERROR_STOP=1 -d "$db_url" "$@"; }

# The stub LLM answers at once (--latency-ms 0 is its default).
python3 test/stubs/stub.py --port 0 >"$work/stub.out" 2>/dev/null &
stub_pid=$!
for _ in $(seq 1 100); do grep -q "STUB READY" "$work/stub.out" 2>/dev/null && break; sleep 0.1; done
stub_url=$(awk '/STUB READY/ {print $3}' "$work/stub.out")

# An api-only process: no worker generating the created articles beside the tick, and the tick timer off
# (an hour), so the measured tick is the only one.
DATABASE_URL=$db_url PORT=$http_port HOST=127.0.0.1 INKLOOP_DEV=1 LOG_LEVEL=warn DB_POOL_SIZE=4 \
  INKLOOP_ROLES=api SCHEDULER_INTERVAL_S=3600 ADMIN_TOKEN=bench ALLOW_PRIVATE_URLS=1 \
  LLM_BASE_URL="$stub_url/v1" LLM_API_KEY=stub LLM_MODEL=stub \
  build-bench/inkloop serve 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$http_port/health" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$http_port/health" >/dev/null || { cat "$work/server.log" >&2; exit 1; }

# The tick's time: tomorrow 08:30 UTC. The due campaigns post at 09:00 that day (within GENERATION_LEAD_S);
# every other campaign starts a month later, its cursor on its first slot.
day=$(date -u -d tomorrow +%F)
at="${day}T08:30:00Z"
t0=$(date +%s.%N)
psql_ <<SQL
INSERT INTO users (id, email, username, password_hash, credits)
VALUES ('00000000-0000-0000-0000-00000000b001', 'bench@example.com', 'bench', 'x', 1000000);
INSERT INTO campaigns (user_id, name, topic, articles_per_day, posting_times, timezone, start_date, next_slot_at,
                       next_run_at)
SELECT '00000000-0000-0000-0000-00000000b001', 'bench ' || g, 'topic number ' || g, 1, '{09:00}', 'UTC', d, s, s
  FROM generate_series(1, $total) AS g,
       LATERAL (SELECT CASE WHEN g <= $due THEN date '$day' ELSE date '$day' + 30 END AS d) AS dd,
       LATERAL (SELECT (dd.d + time '09:00') AT TIME ZONE 'UTC' AS s) AS ss;
ANALYZE campaigns;
SQL
t1=$(date +%s.%N)

# The due query of the claim (src/sched/scheduler.c, statement sched_claim), as it runs, rolled back.
plan=$(psql_ -At <<SQL
BEGIN;
EXPLAIN (ANALYZE, COSTS OFF, TIMING ON)
SELECT c.id FROM campaigns c
 WHERE c.status = 'active' AND c.next_slot_at <= timestamptz '$at' + make_interval(secs => 3600)
   AND NOT EXISTS (SELECT 1 FROM campaign_sched_claims k WHERE k.campaign_id = c.id
                      AND (k.claimed_until > now() OR k.claimed_by = 'bench'))
 ORDER BY c.next_slot_at LIMIT 200
 FOR NO KEY UPDATE OF c SKIP LOCKED;
ROLLBACK;
SQL
)

tick() {
  curl -fsS -o "$work/tick.json" -w '%{time_total}' -X POST -H 'Authorization: Bearer bench' \
    -H 'Content-Type: application/json' -d "{\"at\": \"$at\"}" "http://127.0.0.1:$http_port/admin/scheduler/tick"
}
first=$(tick); first_body=$(cat "$work/tick.json")
second=$(tick); second_body=$(cat "$work/tick.json")
created=$(psql_ -At -c "SELECT count(*) FROM articles")

printf '\ninkloop scheduler bench (%s campaigns, %s due, %s cores)\n' "$total" "$due" "$(nproc)"
printf 'inserted the campaigns in %.1f s (one INSERT ... generate_series)\n' "$(echo "$t1 - $t0" | bc)"
printf '%-46s %10s  %s\n' "what" "seconds" "reply"
printf '%-46s %10s  %s\n' "tick with $due due (titles + commits)" "$first" "$first_body"
printf '%-46s %10s  %s\n' "tick again at the same time (nothing due)" "$second" "$second_body"
printf 'articles in the database: %s\n' "$created"
printf '\nEXPLAIN ANALYZE of the due query:\n%s\n' "$plan"
