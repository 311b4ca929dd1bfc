#!/usr/bin/env python3
"""Webhook delivery benchmark driver (run by bench/deliver.sh, which provides the database and the binary).

1. An api-only inkloop process (no job runs there) takes N POST /articles with an integration pointing at the
   receiver; their generation jobs are then cancelled in SQL, so the articles wait, `queued`, to be completed
   from outside (no LLM involved).
2. A full process (api, worker) starts; N POST /internal/article-complete are sent as fast as 8 client threads
   can, each queueing a delivery.
3. When the receiver holds N requests: deliveries per second (N over first completion to last arrival), and
   per article the latency from completed_at (database) to arrival at the receiver: median, p99, max.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SECRET = "bench-internal-secret"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method, url, body=None, headers=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


def psql(db_url, sql):
    exe = "/usr/lib/postgresql/15/bin/psql" if os.access("/usr/lib/postgresql/15/bin/psql", os.X_OK) else "psql"
    out = subprocess.run([exe, "-X", "-q", "-t", "-A", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-d", db_url, "-c", sql],
                         check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


class Proc:
    def __init__(self, argv, env=None, log=None):
        self.log = open(log, "ab") if log else subprocess.DEVNULL
        self.p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if not log
                                  else self.log, stderr=subprocess.STDOUT if log else subprocess.DEVNULL)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                return self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                return self.p.wait()
        return self.p.returncode


def start_server(binary, env, workdir, name):
    port = free_port()
    e = {"PATH": os.environ.get("PATH", ""), "HOST": "127.0.0.1", "PORT": str(port)}
    e.update(env)
    srv = Proc([binary, "serve"], env=e, log=os.path.join(workdir, name + ".log"))
    base = "http://127.0.0.1:%d" % port
    for _ in range(200):
        try:
            call("GET", base + "/health", timeout=2)
            return srv, base
        except OSError:
            if srv.p.poll() is not None:
                break
            time.sleep(0.1)
    sys.exit("inkloop (%s) did not start; see %s/%s.log" % (name, workdir, name))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db-url", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--receiver", choices=("fast", "stub"), default="fast")
    args = ap.parse_args()
    n = args.n

    if args.receiver == "fast":
        recv = Proc([sys.executable, os.path.join(ROOT, "bench", "receiver.py")])
        port = int(recv.p.stdout.readline().split()[1])
        hook = "http://127.0.0.1:%d/hook" % port

        def received():
            return call("GET", "http://127.0.0.1:%d/_received" % port, timeout=60)
    else:
        recv = Proc([sys.executable, os.path.join(ROOT, "test", "stubs", "stub.py"), "--port", "0"])
        stub_base = recv.p.stdout.readline().decode().split()[2].rstrip("/")
        hook = stub_base + "/hooks/bench"
        call("POST", hook + "/config", {"keep": 10000})  # creates the sink, so /received answers before any POST

        def received():
            recs = call("GET", stub_base + "/hooks/bench/received", timeout=60)
            return [[json.loads(__import__("base64").b64decode(r["body_base64"]))["article_id"], r["received_at"]]
                    for r in recs]

    common = {"DATABASE_URL": args.db_url, "INKLOOP_DEV": "1", "JWT_SECRET": "bench-jwt-secret-0123456789abcdef",
              "INTERNAL_SECRET": SECRET, "SIGNUP_CREDITS": str(2 * n + 10), "ALLOW_PRIVATE_URLS": "1",
              "LOG_LEVEL": "warn", "DB_POOL_SIZE": "8"}
    servers = []
    try:
        api, base = start_server(args.bin, dict(common, INKLOOP_ROLES="api"), args.workdir, "api")
        servers.append(api)
        r = call("POST", base + "/auth/signup", {"email": "b@example.com", "username": "bench",
                                                 "password": "correct horse battery"})
        auth = {"Authorization": "Bearer " + r["access_token"]}
        integ = call("POST", base + "/integrations", {"name": "bench", "webhook_url": hook,
                                                      "webhook_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
                     headers=auth)["id"]
        t = time.time()
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda i: call("POST", base + "/articles",
                                               {"query": "Benchmark article %d" % i,
                                                "webhook_integration_id": integ}, headers=auth)["id"], range(2 * n)))
        print("created %d articles in %.1f s (api-only process)" % (2 * n, time.time() - t), flush=True)
        psql(args.db_url, "UPDATE jobs SET state = 'cancelled', finished_at = now()"
                          " WHERE kind = 'generate_article' AND state = 'queued'")
        backlog, burst = ids[:n], ids[n:]
        content = "# Benchmark article\n\n" + "Some words about the benchmark, café and 🚀. " * 150

        def complete_all(base, which):
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda aid: call("POST", base + "/internal/article-complete",
                                               {"article_id": aid, "tokens_used": 100, "status": "completed",
                                                "content": content}, headers={"X-Internal-Secret": SECRET}), which))

        # Backlog: completed while no worker runs, then drained by a worker that starts afterwards.
        complete_all(base, backlog)
        api.stop()
        servers.remove(api)
        srv, base = start_server(args.bin, common, args.workdir, "server")
        servers.append(srv)

        def wait_for(count):
            deadline = time.time() + 600
            recs = received()
            while len(recs) < count and time.time() < deadline:
                time.sleep(0.5)
                recs = received()
            return recs
        recs = wait_for(n)
        drain = sorted(at for _, at in recs)
        # Burst: completed on the running process as fast as 8 client threads can send them.
        t0 = time.time()
        complete_all(base, burst)
        t1 = time.time()
        wait_for(2 * n)
        time.sleep(1)
        recs = received()
        completed = {row[0]: float(row[1]) for row in
                     psql(args.db_url, "SELECT id, extract(epoch FROM completed_at) FROM articles")}
        arrival = {}
        for aid, at in recs:
            arrival.setdefault(aid, at)
        lat = sorted((arrival[a] - completed[a]) * 1000 for a in burst if a in arrival)
        first = min(completed[a] for a in burst)
        last = max(arrival[a] for a in burst if a in arrival)
        status = psql(args.db_url, "SELECT status, count(*) FROM articles GROUP BY status ORDER BY 1")

        def pct(p):
            return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))]

        body_len = len(json.dumps(content))
        print("receiver: %s; %d requests, %d distinct articles; article statuses %s"
              % ("bench/receiver.py (asyncio, no verification)" if args.receiver == "fast"
                 else "test/stubs/stub.py sink (threads, verifies)", len(recs), len(arrival),
                 ", ".join("%s %s" % tuple(s) for s in status)))
        print("bodies ~%d B; burst completions sent at %.0f/s (8 client threads)" % (body_len, n / (t1 - t0)))
        print("%-52s %10.0f" % ("backlog of %d drained, deliveries/s (first to last)" % n,
                                (len(drain) - 1) / (drain[-1] - drain[0])))
        print("%-52s %10.0f" % ("burst of %d, deliveries/s (first completion to last)" % n,
                                len(lat) / (last - first)))
        print("%-52s %7.1f ms" % ("burst: completion to delivery, median", statistics.median(lat)))
        print("%-52s %7.1f ms" % ("burst: completion to delivery, p99", pct(99)))
        print("%-52s %7.1f ms" % ("burst: completion to delivery, max", lat[-1]))
        n = 2 * n
        if len(recs) != n or len(arrival) != n:
            print("WARNING: expected exactly %d deliveries" % n)
            return 1
        return 0
    finally:
        for s in servers:
            s.stop()
        recv.stop()


if __name__ == "__main__":
    sys.exit(main())
