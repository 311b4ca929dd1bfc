#!/usr/bin/env bash
# Webhook delivery benchmark: deliveries per second from one inkloop process to a local receiver, and the
# latency from an article's completion (completed_at) to its arrival at the receiver (median, p99), for N
# articles completed in a burst through POST /internal/article-complete. Own PostgreSQL, release build.
#
#   bench/deliver.sh [-n ARTICLES] [-r fast|stub]
#     -r fast: bench/receiver.py, a minimal asyncio receiver (default; not the bottleneck)
#     -r stub: the stub sink of test/stubs/stub.py (thread per connection, verifies signatures)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

n=2000
receiver=fast
while getopts "n:r:" opt; do
  case $opt in
    n) n=$OPTARG ;;
    r) receiver=$OPTARG ;;
    *) echo "usage: bench/deliver.sh [-n ARTICLES] [-r fast|stub]" >&2; exit 2 ;;
  esac
done

if [ ! -d build-bench ]; then
  meson setup build-bench --buildtype=release -Db_ndebug=true >/dev/null
fi
ninja -C build-bench inkloop >/dev/null

work=$(mktemp -d /tmp/inkloop-bench-deliver.XXXXXX)
chmod 755 "$work"
pg_port=$((20000 + RANDOM % 20000))
cleanup() {
  scripts/pg.sh stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

db_url=$(scripts/pg.sh start "$work/pg" "$pg_port" --fast | tail -n 1)
printf '\ninkloop webhook delivery bench (%s articles, receiver %s, %s cores)\n' "$n" "$receiver" "$(nproc)"
python3 bench/deliver.py --db-url "$db_url" --bin "$root/build-bench/inkloop" --workdir "$work" -n "$n" \
  --receiver "$receiver"
