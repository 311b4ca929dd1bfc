"""Error shapes (contract section 2) and GET /health (section 5) on the real binary."""
import re

from harness import Postgres, Server, run, tap

ISO_Z = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$"
LIMIT = 1024 * 1024


def is_json(r):
    return r.headers.get("content-type", "").split(";")[0].strip() == "application/json"


def main():
    pg = Postgres.shared()
    srv = Server(pg.fresh_database()).start()

    r = srv.request("GET", "/health")
    tap.is_(r.status, 200, "GET /health is 200")
    tap.ok(is_json(r), "GET /health is application/json", r.headers)
    b = r.json if isinstance(r.json, dict) else {}
    tap.is_(b.get("status"), "healthy", "health status is healthy")
    tap.is_(b.get("database"), "ok", "health database is ok")
    tap.ok(isinstance(b.get("timestamp"), str) and re.match(ISO_Z, b["timestamp"]) is not None,
           "health timestamp is ISO-8601 UTC with Z", b.get("timestamp"))
    q = b.get("queue")
    tap.ok(isinstance(q, dict) and all(isinstance(q.get(k), int) and not isinstance(q.get(k), bool)
                                       for k in ("queued", "in_progress", "delayed")),
           "health queue has integer queued, in_progress, delayed", q)

    r = srv.request("GET", "/nope")
    tap.is_(r.status, 404, "unknown route is 404")
    tap.is_(r.json, {"detail": "Not Found"}, "404 body is {\"detail\":\"Not Found\"}")
    tap.ok(is_json(r), "404 is application/json", r.headers)

    r = srv.request("GET", "/health/extra")
    tap.is_((r.status, r.json), (404, {"detail": "Not Found"}), "a longer path than a route is 404")

    r = srv.request("DELETE", "/health")
    tap.is_(r.status, 405, "wrong method is 405")
    tap.is_(r.json, {"detail": "Method Not Allowed"}, "405 body is {\"detail\":\"Method Not Allowed\"}")
    tap.ok(is_json(r), "405 is application/json", r.headers)

    r = srv.request("POST", "/health", body=b"{}", headers={"Content-Type": "application/json"})
    tap.is_((r.status, r.json), (405, {"detail": "Method Not Allowed"}), "POST /health is 405")

    big = b"x" * (LIMIT + 1)
    r = srv.request("POST", "/auth/login", body=big, headers={"Content-Type": "application/json"})
    tap.is_(r.status, 413, "body of 1 MiB + 1 byte (Content-Length) is 413")
    tap.ok(isinstance(r.json, dict) and isinstance(r.json.get("detail"), str) and r.json["detail"],
           "413 body is JSON with a detail message", r.raw[:300])
    tap.ok(is_json(r), "413 is application/json", r.headers)

    r = srv.request("POST", "/nope", body=b"y" * (4 * LIMIT), headers={"Content-Type": "application/json"})
    tap.is_(r.status, 413, "body of 4 MiB to an unknown route is 413 (the limit is checked before routing)")

    # The same limit when the length is not announced up front.
    c = srv.connection()
    try:
        c.putrequest("POST", "/auth/login", skip_accept_encoding=True)
        c.putheader("Content-Type", "application/json")
        c.putheader("Transfer-Encoding", "chunked")
        c.endheaders()
        chunk = b"z" * 65536
        try:
            for _ in range(LIMIT // len(chunk) + 2):
                c.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            c.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = c.getresponse()
        status = resp.status
        resp.read()
    finally:
        c.close()
    tap.is_(status, 413, "chunked body over 1 MiB is 413")

    r = srv.request("GET", "/health")
    tap.is_(r.status, 200, "still healthy after oversized bodies")

    code, took = srv.stop()
    tap.is_(code, 0, "SIGTERM exits 0 (took %.2f s)" % took)


run(main)
