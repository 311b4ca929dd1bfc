"""CORS (contract section 2): preflight on any path, headers on every response to an allowed origin."""
from harness import Postgres, Server, run, tap

ALLOWED = "http://localhost:3000"
ALLOWED2 = "http://localhost:3001"
EVIL = "http://evil.example"
METHODS = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"


def header_set(v):
    return sorted(x.strip().lower() for x in (v or "").split(",") if x.strip())


def preflight(srv, path, origin, req_headers="authorization,content-type", method="POST"):
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if req_headers is not None:
        h["Access-Control-Request-Headers"] = req_headers
    return srv.request("OPTIONS", path, headers=h)


def main():
    pg = Postgres.shared()
    srv = Server(pg.fresh_database(), env={"CORS_ORIGINS": ALLOWED + "," + ALLOWED2}).start()

    r = preflight(srv, "/articles", ALLOWED)
    h = r.headers
    tap.is_(r.status, 200, "preflight OPTIONS /articles from an allowed origin is 200")
    tap.is_(h.get("access-control-allow-origin"), ALLOWED, "preflight Allow-Origin is the exact origin")
    tap.is_(h.get("access-control-allow-credentials"), "true", "preflight Allow-Credentials: true")
    tap.ok("origin" in header_set(h.get("vary")), "preflight Vary includes Origin", h.get("vary"))
    tap.is_(h.get("access-control-allow-methods"), METHODS, "preflight Allow-Methods as the contract lists")
    tap.is_(header_set(h.get("access-control-allow-headers")), ["authorization", "content-type"],
            "preflight Allow-Headers echoes the requested headers")
    tap.is_(h.get("access-control-max-age"), "600", "preflight Max-Age: 600")

    r = preflight(srv, "/health", ALLOWED2, req_headers="X-Custom-Thing", method="GET")
    tap.is_(r.status, 200, "preflight on another path from the second allowed origin is 200")
    tap.is_(r.headers.get("access-control-allow-origin"), ALLOWED2, "Allow-Origin is that second origin")
    tap.is_(header_set(r.headers.get("access-control-allow-headers")), ["x-custom-thing"],
            "Allow-Headers echoes a custom header")

    r = preflight(srv, "/no/such/route/at/all", ALLOWED)
    tap.is_(r.status, 200, "preflight on a path no route has is 200 too")

    r = preflight(srv, "/articles", EVIL)
    tap.is_(r.status, 400, "preflight from a disallowed origin is 400")
    tap.ok("access-control-allow-origin" not in r.headers, "disallowed preflight has no Allow-Origin",
           r.headers)

    r = srv.request("GET", "/nope", headers={"Origin": ALLOWED})
    tap.is_(r.status, 404, "GET /nope with an allowed origin is 404")
    tap.is_(r.headers.get("access-control-allow-origin"), ALLOWED, "the 404 carries Allow-Origin")
    tap.is_(r.headers.get("access-control-allow-credentials"), "true", "the 404 carries Allow-Credentials")

    r = srv.request("DELETE", "/health", headers={"Origin": ALLOWED})
    tap.is_(r.status, 405, "DELETE /health with an allowed origin is 405")
    tap.is_(r.headers.get("access-control-allow-origin"), ALLOWED, "the 405 carries Allow-Origin")

    r = srv.request("GET", "/health", headers={"Origin": ALLOWED})
    tap.is_(r.status, 200, "GET /health with an allowed origin is 200")
    tap.is_(r.headers.get("access-control-allow-origin"), ALLOWED, "the 200 carries Allow-Origin")
    tap.is_(r.headers.get("access-control-allow-credentials"), "true", "the 200 carries Allow-Credentials")
    tap.ok("origin" in header_set(r.headers.get("vary")), "the 200 has Vary: Origin", r.headers.get("vary"))

    r = srv.request("GET", "/health", headers={"Origin": EVIL})
    tap.is_(r.status, 200, "GET /health with a disallowed origin is still served")
    tap.ok("access-control-allow-origin" not in r.headers, "a disallowed origin gets no Allow-Origin",
           r.headers)
    tap.ok("access-control-allow-credentials" not in r.headers, "a disallowed origin gets no Allow-Credentials",
           r.headers)

    r = srv.request("GET", "/health")
    tap.ok("access-control-allow-origin" not in r.headers, "no Origin header, no Allow-Origin", r.headers)

    code, took = srv.stop()
    tap.is_(code, 0, "SIGTERM exits 0 (took %.2f s)" % took)


run(main)
