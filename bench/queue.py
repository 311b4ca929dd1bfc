"""inkloop's side of bench/queue.sh: the bench-only no-op job kind (src/jobs/bench_noop.c) drained by the job
runner of one `inkloop serve` process (INKLOOP_ROLES=worker), measured as the graphile-worker anchor's bench.mjs
measures graphile-worker. Prints one RESULT line, tab-separated like bench.mjs's.

  queue.py enqueue N BATCH      N bench_noop jobs in batches of BATCH (one INSERT each), no worker running
  queue.py drain N              start inkloop on the N queued jobs; jobs/s from the first claim to the last done
  queue.py latency SAMPLES      idle inkloop; SAMPLES sequential INSERT -> job start samples

Environment: QUEUE_DSN (the database, already migrated and widened for bench_noop), INKLOOP_BIN, QUEUE_WORKDIR
(logs), QUEUE_PGDATA (the cluster's data directory, for its CPU), INKLOOP_ENV (space-separated NAME=VALUE settings for the server). Needs asyncpg (python3-asyncpg).
"""
import asyncio
import os
import signal
import subprocess
import sys
import time

import asyncpg

DSN = os.environ["QUEUE_DSN"]
BIN = os.environ["INKLOOP_BIN"]
WORK = os.environ["QUEUE_WORKDIR"]
# Bound every wait: nothing here may hang the bench.
DRAIN_TIMEOUT_S = float(os.environ.get("QUEUE_TIMEOUT_S", "300"))


def result(*cols):
    print("\t".join(["RESULT", *map(str, cols)]), flush=True)


def pct(sorted_values, p):
    i = min(len(sorted_values) - 1, max(0, -(-int(p * len(sorted_values)) // 100) - 1))
    return sorted_values[i]


def server_env(extra):
    env = dict(os.environ)
    for kv in os.environ.get("INKLOOP_ENV", "").split():
        k, _, v = kv.partition("=")
        env[k] = v
    env.update(extra)
    return env


def pg_cpu_s():
    """CPU seconds of the cluster: the postmaster (with its reaped children) and its live children (QUEUE_PGDATA)."""
    tick = os.sysconf("SC_CLK_TCK")
    with open(os.path.join(os.environ["QUEUE_PGDATA"], "postmaster.pid")) as f:
        postmaster = int(f.readline())

    def fields(pid):
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()

    f = fields(postmaster)
    total = sum(int(x) for x in f[11:15])
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != postmaster:
            try:
                g = fields(d)
            except OSError:
                continue
            if int(g[1]) == postmaster:
                total += int(g[11]) + int(g[12])
    return total / tick


class Server:
    """One `inkloop serve` process, stopped with SIGTERM (then SIGKILL) whatever happens."""

    def __init__(self, extra_env, name):
        self.log_path = os.path.join(WORK, f"inkloop-{name}.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([BIN, "serve"], env=server_env(extra_env), stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def cpu_s(self):
        """User + system CPU seconds of the process so far (from /proc; CLK_TCK = 100)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def check(self):
        if self.proc.poll() is not None:
            sys.stderr.write(open(self.log_path).read()[-3000:])
            sys.exit(f"queue.py: inkloop exited with status {self.proc.returncode}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


async def enqueue(n, batch):
    conn = await asyncpg.connect(DSN)
    try:
        t0 = time.perf_counter()
        for start in range(0, n, batch):
            await conn.execute("INSERT INTO jobs (kind, payload) SELECT 'bench_noop', jsonb_build_object('id', i) "
                               "FROM generate_series($1::int, $2::int) AS i", start, min(n, start + batch) - 1)
        secs = time.perf_counter() - t0
        queued = await conn.fetchval("SELECT count(*) FROM jobs WHERE kind = 'bench_noop' AND state = 'queued'")
        if queued != n:
            sys.exit(f"queue.py: expected {n} queued jobs, found {queued}")
    finally:
        await conn.close()
    result("enqueue", "sql", n, batch, f"{secs:.3f}", f"{n / secs:.0f}")


async def drain(n):
    conn = await asyncpg.connect(DSN)
    try:
        queued = await conn.fetchval("SELECT count(*) FROM jobs WHERE kind = 'bench_noop' AND state = 'queued'")
        if queued != n:
            sys.exit(f"queue.py: expected {n} queued jobs, found {queued}")
        pg0 = pg_cpu_s()
        server = Server({}, "drain")
        try:
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            # The timed window is read from the rows afterwards (first claim's locked_at to the last job's
            # finished_at, both PostgreSQL's now()), so this poll only has to notice the end; every 20 ms, with
            # probes of the two partial indexes (jobs_claim_idx, jobs_lease_idx).
            while True:
                server.check()
                left = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'queued') "
                                           "OR EXISTS (SELECT 1 FROM jobs WHERE state = 'running')")
                if not left:
                    break
                if time.monotonic() > deadline:
                    sys.exit(f"queue.py: the queue was not drained within {DRAIN_TIMEOUT_S:.0f} s")
                await asyncio.sleep(0.02)
            cpu = server.cpu_s()
            pg_cpu = pg_cpu_s() - pg0
        finally:
            rc = server.stop()
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE state = 'done') AS done, count(*) FILTER (WHERE state <> 'done') AS other, "
            "extract(epoch FROM max(finished_at) - min(locked_at))::float8 AS secs, "
            "max(attempts) AS max_attempts FROM jobs WHERE kind = 'bench_noop'")
    finally:
        await conn.close()
    if rc != 0:
        sys.exit(f"queue.py: inkloop stopped with status {rc}; see {server.log_path}")
    if row["done"] != n or row["other"] != 0 or row["max_attempts"] != 1:
        sys.exit(f"queue.py: after the drain {row['done']} done, {row['other']} not done, "
                 f"max attempts {row['max_attempts']} (expected {n}, 0, 1)")
    secs = row["secs"]
    # CPU in cores over the process's life (start-up included) and the cluster's over the same span.
    result("drain", n, f"{secs:.3f}", f"{n / secs:.0f}", f"{cpu / secs:.2f}", f"{pg_cpu / secs:.2f}")


async def latency(samples):
    log_path = os.path.join(WORK, "starts.log")
    open(log_path, "w").close()
    server = Server({"INKLOOP_BENCH_NOOP_LOG": log_path}, "latency")
    starts = {}
    log = open(log_path)

    def read_starts():
        while True:
            line = log.readline()
            if not line:
                return
            if not line.endswith("\n"):  # a partial line: read it again whole next time
                log.seek(log.tell() - len(line))
                return
            job_id, at = line.split()
            starts[int(job_id)] = float(at)

    async def wait_start(job_id, timeout_s=10.0):
        deadline = time.monotonic() + timeout_s
        while job_id not in starts:
            read_starts()
            if job_id in starts:
                break
            server.check()
            if time.monotonic() > deadline:
                sys.exit(f"queue.py: job {job_id} did not start within {timeout_s:.0f} s")
            await asyncio.sleep(0.0002)

    conn = await asyncpg.connect(DSN)
    try:
        # Warm-up as bench.mjs does: 100 jobs (the first waits for the runner to come up), then 1 s of rest.
        ids = await conn.fetch("INSERT INTO jobs (kind) SELECT 'bench_noop' FROM generate_series(1, 100) "
                               "RETURNING id")
        for r in ids:
            await wait_start(r["id"], 20.0)
        await asyncio.sleep(1.0)
        insert = await conn.prepare("INSERT INTO jobs (kind) VALUES ('bench_noop') RETURNING id")
        lat, rtt = [], []
        for _ in range(samples):
            t0 = time.time()
            job_id = await insert.fetchval()
            rtt.append((time.time() - t0) * 1000)
            await wait_start(job_id)
            lat.append((starts[job_id] - t0) * 1000)
    finally:
        await conn.close()
        rc = server.stop()
        log.close()
    if rc != 0:
        sys.exit(f"queue.py: inkloop stopped with status {rc}; see {server.log_path}")
    s, r = sorted(lat), sorted(rtt)
    result("latency", samples, f"{s[0]:.2f}", f"{pct(s, 50):.2f}", f"{pct(s, 99):.2f}", f"{s[-1]:.2f}",
           f"{sum(s) / len(s):.2f}", f"{pct(r, 50):.2f}")


def main():
    # bench/queue.sh stops this driver with SIGTERM: exit through the finally blocks, which stop inkloop.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    mode, args = sys.argv[1], [int(a) for a in sys.argv[2:]]
    if mode == "enqueue" and len(args) == 2:
        asyncio.run(enqueue(*args))
    elif mode == "drain" and len(args) == 1:
        asyncio.run(drain(*args))
    elif mode == "latency" and len(args) == 1:
        asyncio.run(latency(*args))
    else:
        sys.exit(__doc__)


main()
