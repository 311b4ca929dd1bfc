"""Operations endpoints (contract section 5): /metrics, /queue/stats, /openapi.json, /docs."""
import json
import re

from harness import Postgres, Server, run, tap
from routes_table import problems, route_table

LINE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{name: {frozenset(labels.items()): value}} plus {name: type}; raises ValueError on a malformed line."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
            continue
        if line.startswith("#") or not line:
            continue
        m = LINE_RE.match(line)
        if m is None:
            raise ValueError("malformed sample line: %r" % line)
        labels = dict(LABEL_RE.findall(m.group(3) or ""))
        samples.setdefault(m.group(1), {})[frozenset(labels.items())] = float(m.group(4))
    return samples, types


def value(samples, name, **labels):
    return samples.get(name, {}).get(frozenset(labels.items()))


def scrape(srv):
    r = srv.request("GET", "/metrics")
    return r, parse_metrics(r.raw.decode("utf-8"))


def check_histograms(samples, name):
    """Every series of histogram name: buckets cumulative in le order, ending with +Inf == _count."""
    series = {}
    for labels, v in samples.get(name + "_bucket", {}).items():
        d = dict(labels)
        le = d.pop("le")
        series.setdefault(frozenset(d.items()), []).append((float(le), v))
    bad = []
    for key, buckets in series.items():
        buckets.sort()
        counts = [v for _, v in buckets]
        count = samples.get(name + "_count", {}).get(key)
        if buckets[-1][0] != float("inf") or counts != sorted(counts) or counts[-1] != count \
                or samples.get(name + "_sum", {}).get(key) is None:
            bad.append((dict(key), buckets, count))
    return len(series), bad


def main():
    pg = Postgres.shared()
    url = pg.fresh_database()
    # api only: no worker may pick up the jobs this test inserts.
    srv = Server(url, env={"INKLOOP_ROLES": "api"}).start()

    # --- /metrics: format and request counting ---
    r, (samples, types) = scrape(srv)
    tap.is_(r.status, 200, "GET /metrics is 200")
    ct = r.headers.get("content-type", "")
    tap.ok(ct.startswith("text/plain") and "version=0.0.4" in ct, "/metrics is text/plain; version=0.0.4", ct)
    tap.is_(types.get("inkloop_http_requests_total"), "counter", "requests_total is a counter")
    tap.is_(types.get("inkloop_http_request_duration_seconds"), "histogram", "request duration is a histogram")

    before = value(samples, "inkloop_http_requests_total", route="/health", method="GET", status="200") or 0
    for _ in range(3):
        srv.request("GET", "/health")
    srv.request("GET", "/no/such/route")
    srv.request("DELETE", "/health")
    srv.request("OPTIONS", "/articles", headers={"Origin": "http://localhost:3000",
                                                   "Access-Control-Request-Method": "POST"})
    srv.request("POST", "/auth/login", body=b"x" * (1024 * 1024 + 1), headers={"Content-Type": "application/json"})
    srv.request("POST", "/auth/login", body=b"x" * (4 * 1024 * 1024), headers={"Content-Type": "application/json"})
    srv.request("GET", "/queue/stats")
    srv.request("BREW", "/health")

    r, (samples, types) = scrape(srv)
    after = value(samples, "inkloop_http_requests_total", route="/health", method="GET", status="200")
    tap.is_(after, before + 3, "three GET /health show up as route=/health method=GET status=200")
    def count(route, method, status):
        return value(samples, "inkloop_http_requests_total", route=route, method=method, status=status)

    tap.is_(count("unmatched", "GET", "404"), 1, "a 404 is counted under route=unmatched")
    tap.is_(count("unmatched", "DELETE", "405"), 1, "a 405 is counted (no route matched the method)")
    tap.is_(count("unmatched", "OPTIONS", "200"), 1, "a CORS preflight is counted")
    tap.is_(count("unmatched", "POST", "413"), 2, "413s are counted once each, also the one h2o answers itself")
    tap.is_(count("/queue/stats", "GET", "401"), 1, "a 401 is counted under its route")
    tap.is_(count("unmatched", "other", "405"), 1, "an unknown method is counted as \"other\"")
    tap.ok(all(dict(k).get("method") in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other")
               for k in samples.get("inkloop_http_requests_total", {})),
           "method label is bounded (unknown methods are \"other\")")
    tap.ok((value(samples, "inkloop_http_requests_total", route="/metrics", method="GET", status="200") or 0) >= 1,
           "scrapes count themselves")

    srv.request("GET", "/health")
    _, (samples2, _) = scrape(srv)
    tap.is_(value(samples2, "inkloop_http_requests_total", route="/health", method="GET", status="200"), after + 1,
            "the counter increases by one per request")
    n, bad = check_histograms(samples2, "inkloop_http_request_duration_seconds")
    tap.ok(n >= 3 and not bad, "%d latency series: buckets cumulative, last is +Inf == _count, _sum present" % n,
           bad[:3])
    les = sorted(float(dict(k)["le"]) for k in samples2.get("inkloop_http_request_duration_seconds_bucket", {})
                 if dict(k).get("route") == "/health")
    tap.is_(les, [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, float("inf")],
            "latency buckets are .005 .. 10 and +Inf")
    tap.is_(value(samples2, "inkloop_http_request_duration_seconds_count", route="/health", method="GET"),
            after + 1, "latency count matches the request count")

    for name, labels in (("inkloop_llm_tokens_total", {"kind": "prompt"}),
                         ("inkloop_llm_tokens_total", {"kind": "completion"}),
                         ("inkloop_webhook_deliveries_total", {"outcome": "success"}),
                         ("inkloop_webhook_deliveries_total", {"outcome": "failure"}),
                         ("inkloop_db_pool_connections", {"state": "ready"}),
                         ("inkloop_db_pool_connections", {"state": "configured"}),
                         ("inkloop_db_queries_total", {"result": "ok"}),
                         ("inkloop_db_pool_in_flight", {}), ("inkloop_db_pool_waiting", {}),
                         ("inkloop_build_info", {"version": __import__("os").environ.get("INKLOOP_VERSION", "")}),
                         ("process_start_time_seconds", {}), ("inkloop_jobs_scrape_ok", {})):
        tap.ok(value(samples2, name, **labels) is not None, "%s%s is exported" % (name, labels or ""))
    tap.is_(types.get("inkloop_pipeline_stage_duration_seconds"), "histogram", "pipeline stage histogram is declared")
    tap.ok(value(samples2, "inkloop_db_pool_connections", state="ready") >= 1, "at least one pool connection ready")

    # --- jobs at scrape time, and /queue/stats ---
    r = srv.request("POST", "/auth/signup", body={"email": "ops@example.com", "username": "opsuser",
                                                   "password": "password123"})
    tap.is_(r.status, 200, "signup for the authenticated checks")
    token = (r.json or {}).get("access_token", "")
    auth = {"Authorization": "Bearer " + token}

    r = srv.request("GET", "/queue/stats")
    tap.is_((r.status, r.json), (401, {"detail": "Not authenticated"}), "/queue/stats without credentials is 401")
    r = srv.request("GET", "/queue/stats", headers={"Authorization": "Bearer nope"})
    tap.is_(r.status, 401, "/queue/stats with a bad token is 401")
    r = srv.request("GET", "/queue/stats", headers=auth)
    tap.is_(r.status, 200, "/queue/stats with a token is 200")
    b = r.json if isinstance(r.json, dict) else {}
    tap.is_(sorted(b), ["delayed", "failed", "in_progress", "queue_name", "queued"], "queue stats has the five fields")
    tap.ok(isinstance(b.get("queue_name"), str) and b["queue_name"], "queue_name is a non-empty string")
    tap.is_([b.get(k) for k in ("queued", "in_progress", "delayed", "failed")], [0, 0, 0, 0], "empty queue is zeros")

    pg.query("""
        WITH u AS (SELECT id FROM users LIMIT 1),
             a AS (INSERT INTO articles (user_id, topic, raw_query) SELECT id, 't', 'q' FROM u RETURNING id)
        INSERT INTO jobs (kind, article_id, state, run_at)
        SELECT k, a.id, s, now() + d FROM a,
               (VALUES ('generate_article', 'queued', interval '0'),
                       ('deliver_webhook', 'queued', interval '1 hour'),
                       ('generate_article', 'failed', interval '0')) v(k, s, d)""", url=url)
    r = srv.request("GET", "/queue/stats", headers=auth)
    b = r.json if isinstance(r.json, dict) else {}
    tap.is_([b.get(k) for k in ("queued", "in_progress", "delayed", "failed")], [1, 0, 1, 1],
            "queue stats: due, running, delayed and failed jobs counted apart")
    _, (samples3, types3) = scrape(srv)
    tap.is_(types3.get("inkloop_jobs"), "gauge", "inkloop_jobs is a gauge")
    tap.is_([value(samples3, "inkloop_jobs", kind=k, state=s) for k, s in
             (("generate_article", "queued"), ("deliver_webhook", "queued"), ("generate_article", "failed"),
              ("generate_article", "running"), ("deliver_webhook", "done"))],
            [1, 1, 1, 0, 0], "inkloop_jobs by kind and state, zeros included")
    tap.is_(value(samples3, "inkloop_jobs_scrape_ok"), 1, "jobs scrape ok")

    # --- /openapi.json ---
    r = srv.request("GET", "/openapi.json")
    tap.is_(r.status, 200, "GET /openapi.json is 200")
    tap.ok(r.headers.get("content-type", "").startswith("application/json"), "/openapi.json is application/json")
    try:
        doc = json.loads(r.raw)
    except ValueError as e:
        doc = {}
        tap.ok(False, "the document parses as JSON", str(e))
    else:
        tap.ok(isinstance(doc, dict), "the document parses as a JSON object")
    tap.like(str(doc.get("openapi")), r"^3\.1\.\d+$", "openapi is 3.1.x")
    tap.is_((doc.get("info") or {}).get("version"), __import__("os").environ.get("INKLOOP_VERSION"),
            "info.version is the build's version")
    routes = route_table()
    tap.ok(len(routes) >= 15, "read %d routes from src/http/routes.c" % len(routes))
    found = problems(doc, routes)
    tap.ok(not found, "every route of routes.c is documented with its method and security", "\n".join(found))
    schemes = ((doc.get("components") or {}).get("securitySchemes") or {})
    tap.ok({"bearerAuth", "apiKeyHeader", "refreshCookie"} <= set(schemes),
           "security schemes: bearer JWT, X-API-Key, refresh cookie", sorted(schemes))
    tap.is_((schemes.get("apiKeyHeader") or {}).get("name"), "X-API-Key", "API key scheme is the X-API-Key header")
    schemas = (doc.get("components") or {}).get("schemas") or {}
    want = ["User", "Article", "Campaign", "Integration", "CreditTransaction", "ApiKey", "Delivery", "Title",
            "Health", "QueueStats", "HTTPError", "HTTPValidationError"]
    tap.is_([s for s in want if s not in schemas], [], "response schemas are defined")
    art = (schemas.get("Article") or {}).get("properties") or {}
    fields = ("id topic title raw_query status scheduled_at timezone created_at updated_at completed_at posted_at category "
              "target_length source_count language content content_html word_count meta_description slug sources "
              "brief campaign_id webhook_integration_id is_recurring tokens_used prompt_tokens completion_tokens "
              "error_message retry_count posting_attempt_count last_posting_error published_url").split()
    tap.is_([f for f in fields if f not in art], [], "Article documents every field of the contract")

    # --- /docs ---
    r = srv.request("GET", "/docs")
    tap.is_(r.status, 200, "GET /docs is 200")
    tap.ok(r.headers.get("content-type", "").startswith("text/html"), "/docs is text/html", r.headers)
    tap.ok(b"/openapi.json" in r.raw, "/docs references /openapi.json")


run(main)
