#!/usr/bin/env bash
# Generation pipeline benchmark against the stub peers (test/stubs/stub.py), on a release build:
#  1. throughput: articles per second end to end (create -> completed) with the stubs at zero latency;
#  2. capacity: how many articles one process holds in flight when every provider call takes 2 s, and the
#     process's RSS meanwhile.
# Prints a table; see bench/README.md.
#
#   bench/pipeline.sh [-n ARTICLES] [-m IN_FLIGHT_ARTICLES] [-s SAMPLE_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

n=200
m=500
sample_s=20
while getopts "n:m:s:" opt; do
  case $opt in
    n) n=$OPTARG ;;
    m) m=$OPTARG ;;
    s) sample_s=$OPTARG ;;
    *) echo "usage: bench/pipeline.sh [-n ARTICLES] [-m IN_FLIGHT_ARTICLES] [-s SAMPLE_SECONDS]" >&2; exit 2 ;;
  esac
done

deps/install.sh
if [ ! -d build-bench ]; then
  meson setup build-bench --buildtype=release -Db_ndebug=true >/dev/null
fi
ninja -C build-bench inkloop >/dev/null

work=$(mktemp -d /tmp/inkloop-bench.XXXXXX)
chmod 755 "$work" # the cluster may run as the postgres user
pg_port=$((20000 + RANDOM % 20000))
server_pid=""
stub_pid=""
stop_code=""
stop_server() { # sets stop_code to the server's exit status on SIGTERM
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    stop_code=0
    wait "$server_pid" 2>/dev/null || stop_code=$?
    server_pid=""
  fi
}
cleanup() {
  stop_server
  if [ -n "$stub_pid" ]; then
    kill -TERM "$stub_pid" 2>/dev/null || true
    wait "$stub_pid" 2>/dev/null || true
  fi
  scripts/pg.sh stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

db_url=$(scripts/pg.sh start "$work/pg" "$pg_port" --fast | tail -n 1)

# The stub: its READY line names its URL.
mkfifo "$work/stub.out"
python3 test/stubs/stub.py --port 0 >"$work/stub.out" 2>"$work/stub.err" &
stub_pid=$!
read -r ready _ stub_url <"$work/stub.out"
[ "$ready" = "STUB" ] || { echo "stub did not start" >&2; cat "$work/stub.err" >&2; exit 1; }

admin_token="bench-$RANDOM$RANDOM"
start_server() { # port concurrency
  DATABASE_URL=$db_url PORT=$1 HOST=127.0.0.1 INKLOOP_DEV=1 LOG_LEVEL=warn JWT_SECRET=bench-jwt-secret-0123456789abcdef \
    ADMIN_TOKEN=$admin_token WORKER_CONCURRENCY=$2 DB_POOL_SIZE=8 \
    LLM_BASE_URL=$stub_url/v1 LLM_API_KEY=stub LLM_MODEL=stub SEARCH_PROVIDER=searxng SEARCH_URL=$stub_url \
    ALLOW_PRIVATE_URLS=1 build-bench/inkloop serve 2>>"$work/server.log" &
  server_pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$work/server.log" >&2
  exit 1
}

# The driver: creates articles over HTTP and watches them (Python 3, standard library only).
cat >"$work/drive.py" <<'PY'
import json, os, subprocess, sys, threading, time, http.client

mode, port, count, stub, admin = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
pid = int(os.environ["SERVER_PID"])

def req(method, path, body=None, token=None, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    c.request(method, path, json.dumps(body) if body is not None else None, h)
    r = c.getresponse()
    data = r.read()
    if conn is None:
        c.close()
    return r.status, (json.loads(data) if data else None)

def stub_control(**kw):
    import urllib.request
    urllib.request.urlopen(urllib.request.Request(stub + "/_control", json.dumps(kw).encode(), method="POST",
                                                  headers={"Content-Type": "application/json"}), timeout=10).read()

def rss_kib():
    return int(subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True, text=True).stdout.strip())

name = "bench%d%s" % (time.time_ns() % 10**9, mode)
st, body = req("POST", "/auth/signup", {"email": name + "@example.com", "username": name, "password": "bench password"})
assert st == 200, (st, body)
token, uid = body["access_token"], body["user"]["id"]
st, body = req("POST", "/admin/credits", {"user_id": uid, "amount": count, "description": "bench"}, admin)
assert st == 200, (st, body)

def create_all(ids):
    """Creates `count` articles from 4 threads, each with a keep-alive connection."""
    lock = threading.Lock()
    todo = list(range(count))
    def worker():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if not todo:
                    break
                i = todo.pop()
            st, b = req("POST", "/articles", {"query": "Benchmark topic %d: urban beekeeping" % i,
                                              "source_count": 3, "target_length": 800}, token, c)
            assert st == 201, (st, b)
            with lock:
                ids.append(b["id"])
        c.close()
    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()

def stats():
    st, b = req("GET", "/articles/stats", token=token)
    return b

if mode == "throughput":
    stub_control(latency_ms=0)
    ids = []
    t0 = time.monotonic()
    create_all(ids)
    t_created = time.monotonic() - t0
    while True:
        s = stats()
        if s["completed"] + s["failed"] >= count:
            break
        time.sleep(0.05)
    t_all = time.monotonic() - t0
    print(json.dumps({"articles": count, "created_s": round(t_created, 2), "total_s": round(t_all, 2),
                      "per_s": round(count / t_all, 1), "failed": s["failed"], "rss_kib": rss_kib()}))
else:
    secs = float(sys.argv[6])
    stub_control(latency_ms=2000)
    rss0 = rss_kib()
    ids = []
    t0 = time.monotonic()
    create_all(ids)
    peak, peak_rss, samples = 0, 0, []
    while time.monotonic() - t0 < secs:
        s = stats()
        inflight = s["in_progress"]
        r = rss_kib()
        samples.append((round(time.monotonic() - t0, 1), inflight, r))
        peak = max(peak, inflight)
        peak_rss = max(peak_rss, r)
        time.sleep(0.5)
    s = stats()
    print(json.dumps({"articles": count, "peak_in_flight": peak, "rss_idle_kib": rss0, "rss_peak_kib": peak_rss,
                      "completed": s["completed"], "failed": s["failed"], "seconds": secs,
                      "samples": samples[:: max(1, len(samples) // 8)]}))
PY

port1=$((40000 + RANDOM % 10000))
start_server "$port1" 64
SERVER_PID=$server_pid python3 "$work/drive.py" throughput "$port1" "$n" "$stub_url" "$admin_token" >"$work/t.json"
stop_server

port2=$((50000 + RANDOM % 10000))
start_server "$port2" "$m"
SERVER_PID=$server_pid python3 "$work/drive.py" inflight "$port2" "$m" "$stub_url" "$admin_token" "$sample_s" \
  >"$work/c.json"
# SIGTERM with hundreds of articles in flight: they are handed back to the queue and the process exits 0.
t_stop=$(date +%s.%N)
stop_server
t_stop=$(python3 -c "import time; print('%.2f' % (time.time() - $t_stop))")

python3 - "$work/t.json" "$work/c.json" "$(nproc)" "$stop_code" "$t_stop" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
c = json.load(open(sys.argv[2]))
stop_code, t_stop = sys.argv[4], sys.argv[5]
print()
print("inkloop pipeline bench (stub peers, release build, %s cores)" % sys.argv[3])
print("%-58s %12s" % ("what", "value"))
print("%-58s %12s" % ("articles end to end, stubs at 0 ms (%d articles)" % t["articles"], "%.1f/s" % t["per_s"]))
print("%-58s %12s" % ("  first create to last completed", "%.2f s" % t["total_s"]))
print("%-58s %12s" % ("  failed", t["failed"]))
print("%-58s %12s" % ("articles in flight at 2 s per provider call (%d created)" % c["articles"], c["peak_in_flight"]))
print("%-58s %12s" % ("  RSS before / at peak", "%.1f / %.1f MiB" % (c["rss_idle_kib"] / 1024, c["rss_peak_kib"] / 1024)))
if c["peak_in_flight"]:
    print("%-58s %12s" % ("  RSS per article in flight",
                          "%.1f KiB" % ((c["rss_peak_kib"] - c["rss_idle_kib"]) / c["peak_in_flight"])))
print("%-58s %12s" % ("  completed / failed after %.0f s" % c["seconds"], "%d / %d" % (c["completed"], c["failed"])))
print("%-58s %12s" % ("  SIGTERM with those in flight: exit status, seconds", "%s, %s s" % (stop_code, t_stop)))
print("  samples (s, in flight, RSS KiB): %s" % " ".join("(%s, %s, %s)" % tuple(x) for x in c["samples"]))
PY
