"""GET /health reports 503 while PostgreSQL is down and 200 once it is back; the process survives."""
import time

from harness import Postgres, Server, run, tap


def health(srv):
    try:
        return srv.request("GET", "/health", timeout=5)
    except OSError as e:
        tap.diag("GET /health failed: %s" % e)
        return None


def wait_for_status(srv, status, timeout):
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        last = health(srv)
        if last is not None and last.status == status:
            return last, time.monotonic() - t0
        if not srv.alive:
            break
        time.sleep(0.2)
    return last, time.monotonic() - t0


def main():
    pg = Postgres.private()
    url = pg.start()
    srv = Server(url).start()

    r = health(srv)
    tap.is_(r and r.status, 200, "/health is 200 with the database up")
    tap.is_(r and isinstance(r.json, dict) and r.json.get("database"), "ok", "database is ok")

    pg.stop()
    r, took = wait_for_status(srv, 503, 8)
    tap.ok(r is not None and r.status == 503 and took <= 6,
           "/health is 503 within ~5 s of PostgreSQL stopping (took %.1f s)" % took, r)
    b = r.json if r is not None and isinstance(r.json, dict) else {}
    tap.is_(b.get("status"), "unhealthy", "status is unhealthy")
    tap.ok(isinstance(b.get("database"), str) and b.get("database") not in ("", "ok"),
           "database carries the error text", b.get("database"))
    tap.ok("queue" in b and b["queue"] is None, "queue is null", b)
    tap.ok(r is not None and r.headers.get("content-type", "").startswith("application/json"),
           "the 503 is application/json", r and r.headers)

    time.sleep(1.5)
    r = health(srv)
    tap.is_(r and r.status, 503, "still 503 a while later (no crash, no hang)")
    tap.ok(srv.alive, "the process is still running while PostgreSQL is down")

    pg.start()
    r, took = wait_for_status(srv, 200, 15)
    tap.ok(r is not None and r.status == 200 and took <= 11,
           "/health is 200 again within ~10 s of PostgreSQL restarting (took %.1f s)" % took, r)
    tap.is_(r and isinstance(r.json, dict) and r.json.get("database"), "ok", "database is ok again")

    statuses = [r.status if r is not None else None for r in (health(srv) for _ in range(5))]
    ok_count = statuses.count(200)
    tap.ok(ok_count == 5, "five more /health calls after the restart are all 200", statuses)

    code, took = srv.stop()
    tap.is_(code, 0, "SIGTERM after a reconnect exits 0 (took %.2f s)" % took)
    tap.ok(took < 5, "and promptly")


run(main)
