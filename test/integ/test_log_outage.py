"""Logs survive an outage (issue 9 point 4): a 20 s PostgreSQL outage under load writes under 1 MB of log.

Every request fails during the outage (its authentication query cannot run); without a rate limit each one
wrote a warning (about 100 MB in the field). The load is wrk when it is installed (deps/install.sh --bench), or
else a bounded Python keep-alive client; the figures are printed as diagnostics either way.
"""
import http.client
import os
import re
import shutil
import subprocess
import threading
import time

from authutil import server_env, signup
from harness import Postgres, Server, run, tap, wait_until

OUTAGE_S = 20
LIMIT_BYTES = 1024 * 1024


def log_size(srv):
    try:
        return os.path.getsize(srv.logpath)
    except OSError:
        return 0


class PyLoad:
    """Keep-alive clients in threads, each sending requests until stopped; counts answers by status."""

    def __init__(self, port, targets, conns=16):
        self.port = port
        self.targets = targets
        self.conns = conns
        self.stop_flag = threading.Event()
        self.counts = {}
        self.lock = threading.Lock()
        self.threads = []

    def _run(self, i):
        path, headers = self.targets[i % len(self.targets)]
        conn = None
        local = {}
        while not self.stop_flag.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", path, headers=headers)
                r = conn.getresponse()
                r.read()
                local[r.status] = local.get(r.status, 0) + 1
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                local["error"] = local.get("error", 0) + 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.01)
        if conn is not None:
            conn.close()
        with self.lock:
            for k, v in local.items():
                self.counts[k] = self.counts.get(k, 0) + v

    def start(self, duration_s):
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(self.conns)]
        for t in self.threads:
            t.start()
        return self

    def finish(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(30)
        return sum(v for k, v in self.counts.items() if k != "error"), dict(self.counts)


class WrkLoad:
    """One wrk per target, for duration_s."""

    def __init__(self, port, targets, conns=16):
        self.port = port
        self.targets = targets
        self.conns = conns
        self.procs = []

    def start(self, duration_s):
        for path, headers in self.targets:
            args = ["wrk", "-t", "1", "-c", str(self.conns // len(self.targets)), "-d", "%ds" % duration_s,
                    "--timeout", "5s"]
            for k, v in headers.items():
                args += ["-H", "%s: %s" % (k, v)]
            args.append("http://127.0.0.1:%d%s" % (self.port, path))
            self.procs.append(subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                               stderr=subprocess.STDOUT, text=True))
        return self

    def finish(self):
        total, outs = 0, []
        for p in self.procs:
            out, _ = p.communicate(timeout=60)
            outs.append(out)
            m = re.search(r"(\d+) requests in", out)
            total += int(m.group(1)) if m else 0
        return total, "\n".join(outs)


def main():
    pg = Postgres.private()
    url = pg.start()
    # LOG_LEVEL=info is the production default (the harness's debug level also logs every connection step).
    srv = Server(url, env=server_env(LOG_LEVEL="info")).start()
    acct = signup(srv)
    r = acct.post("/api-keys", {"name": "load"})
    key = (r.json or {}).get("key", "")
    tap.is_(r.status, 201, "an API key for the load")
    targets = [("/credits", {"X-API-Key": key}), ("/articles", acct.auth)]
    tap.is_([srv.request("GET", p, headers=h).status for p, h in targets], [200, 200],
            "both load targets answer 200 with the database up")

    use_wrk = shutil.which("wrk") is not None and not os.environ.get("INKLOOP_TEST_PY_LOAD")
    load = (WrkLoad if use_wrk else PyLoad)(srv.port, targets)
    tap.diag("load: %s" % ("wrk" if use_wrk else "Python keep-alive client (wrk not installed)"))
    load.start(OUTAGE_S + 8)
    time.sleep(2)
    before = log_size(srv)
    t0 = time.monotonic()
    pg.stop()
    tap.diag("PostgreSQL stopped (%.1f s)" % (time.monotonic() - t0))
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - t0)))
    pg.start()
    outage = time.monotonic() - t0
    back = wait_until(lambda: srv.request("GET", "/health", timeout=5).status == 200, 20, 0.3)
    after = log_size(srv)
    total, detail = load.finish()
    grown = after - before
    tap.diag("outage %.1f s, %d requests under load in total; log grew %d bytes (%.2f MB)" %
             (outage, total, grown, grown / 1048576.0))
    tap.ok(back, "/health is 200 again after PostgreSQL restarts")
    tap.ok(total >= 5000, "the load was real: %d requests" % total, detail)
    tap.ok(grown < LIMIT_BYTES, "a %d s outage under load wrote %d bytes of log (< 1 MB)" % (OUTAGE_S, grown))
    text = srv.log()
    tap.like(text, r"database unavailable", "the outage is in the log")
    tap.like(text, r"\d+ more lines like \"database unavailable: %s\" suppressed in the last \d+ s",
             "repeated warnings end in a summary line with the count suppressed")
    tap.ok(srv.alive, "the server survived")
    tap.is_([srv.request("GET", p, headers=h).status for p, h in targets], [200, 200],
            "both targets answer 200 after the outage")
    code, _ = srv.stop()
    tap.is_(code, 0, "SIGTERM exits 0")


run(main)
