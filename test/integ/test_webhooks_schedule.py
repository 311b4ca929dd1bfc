"""Webhook delivery timing and policy (API.md section 6): an article with a future scheduled_at is delivered at
that time to the second (a timer, not the sweep), one with a past scheduled_at at once; a due delivery whose
job vanished is picked up by POST /admin/deliveries/sweep; a loopback target is refused when
ALLOW_PRIVATE_URLS=0, with a clear last_posting_error and no request sent."""
import threading
import time

from articles_common import ADMIN_TOKEN, INTERNAL_SECRET, Env
from harness import Server, run, tap
from webhooks_common import (admin, article, complete, completed_article, integration, iso_utc, parse_iso,
                             server_env, stub_stalled, wait_article, wait_received)


def final(a):
    return a and a["status"] in ("posted", "delivery_failed")


def test_scheduled(env, a, stub):
    # Three forms of the same kind of time: UTC with Z, an explicit offset, and no offset read in the article's
    # timezone. Each is 3-4 s ahead; all are completed at once, so only the delivery timer can be on time.
    now = time.time()
    cases = []
    for i, form in enumerate(("Z", "offset", "naive")):
        at = now + 3 + i * 0.5
        if form == "Z":
            text, tz = iso_utc(at), "UTC"
        elif form == "offset":
            text, tz = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at + 5.5 * 3600)) + \
                "%s+05:30" % ("%.6f" % (at % 1))[1:], "UTC"
        else:
            text, tz = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at + 9 * 3600)) + \
                ("%.6f" % (at % 1))[1:], "Asia/Tokyo"
        sink = "sched-" + form
        integ = integration(a, stub.hook(sink), name=sink)
        r = a.create("Scheduled delivery " + form, webhook_integration_id=integ, scheduled_at=text, timezone=tz)
        if not tap.is_(r.status, 201, "article scheduled at %s (%s)" % (text, form)):
            continue
        tap.ok(abs(parse_iso(r.json["scheduled_at"]) - at) < 0.001, "scheduled_at read as the intended instant",
               (r.json["scheduled_at"], iso_utc(at)))
        cases.append((form, sink, r.json["id"], parse_iso(r.json["scheduled_at"])))
    for form, sink, aid, at in cases:
        complete(env, aid)
    lead = min(at for _, _, _, at in cases) - time.time()
    tap.ok(lead > 1.0, "completed well before scheduled_at (%.2f s ahead)" % lead)
    for form, sink, aid, at in cases:
        recs = wait_received(stub, sink, 1, at - time.time() + 10)
        if not tap.is_(len(recs), 1, "scheduled (%s): delivered once" % form):
            continue
        late = recs[0]["received_at"] - at
        tap.ok(0 <= late < 1.0, "scheduled (%s): received %.3f s after scheduled_at (within a second, not before)"
               % (form, late), late)
        art = wait_article(a, aid, final, 5)
        tap.ok(art["status"] == "posted" and parse_iso(art["posted_at"]) >= at, "scheduled (%s): posted at or"
               " after scheduled_at" % form, art)


def test_past_schedule(env, a, stub):
    integ = integration(a, stub.hook("past"), name="past")
    aid = a.create("Scheduled in the past", webhook_integration_id=integ,
                   scheduled_at=iso_utc(time.time() - 3600)).json["id"]
    t0 = time.time()
    complete(env, aid)
    recs = wait_received(stub, "past", 1, 10)
    tap.ok(len(recs) == 1 and recs[0]["received_at"] - t0 < 1.5, "a past scheduled_at is delivered at once",
           [r["received_at"] - t0 for r in recs])


def test_sweep(env, a, stub):
    integ = integration(a, stub.hook("swept"), name="swept")
    at = time.time() + 4
    aid = a.create("Delivery whose job vanished", webhook_integration_id=integ,
                   scheduled_at=iso_utc(at)).json["id"]
    complete(env, aid)
    rows = env.sql("DELETE FROM jobs WHERE article_id = '%s' AND kind = 'deliver_webhook' AND state = 'queued'"
                   " RETURNING id" % aid)
    tap.is_(len(rows), 1, "the queued delivery job is deleted before it is due")
    time.sleep(max(0, at - time.time()) + 1.5)
    tap.is_(stub.received("swept"), [], "without its job nothing is delivered at scheduled_at")
    r = env.srv.request("POST", "/admin/deliveries/sweep")
    tap.is_(r.status, 403, "the sweep endpoint needs the admin token")
    r = admin(env, "POST", "/admin/deliveries/sweep")
    tap.is_((r.status, r.json), (200, {"success": True, "enqueued": 1}), "the sweep queues the due delivery")
    recs = wait_received(stub, "swept", 1, 5)
    tap.is_(len(recs), 1, "and it is delivered")
    art = wait_article(a, aid, final, 5)
    tap.is_(art["status"], "posted", "the swept article is posted")
    r = admin(env, "POST", "/admin/deliveries/sweep")
    tap.is_((r.status, r.json), (200, {"success": True, "enqueued": 0}), "a second sweep finds nothing")
    time.sleep(1)
    tap.is_(len(stub.received("swept")), 1, "delivered exactly once")


class Shared:
    """Two servers on one database: what articles_common.User needs (srv, sql)."""

    def __init__(self, pg, db, srv):
        self.pg, self.db, self.srv = pg, db, srv

    def sql(self, q):
        return self.pg.query(q, url=self.db)

    def signup(self, name):
        return Env.signup(self, name)

    def internal(self, body):
        return Env.internal(self, body)


def test_loopback_refused(env, stub):
    # The articles are created and completed on an api-only process (no job runs there), then a worker with
    # ALLOW_PRIVATE_URLS=0 starts on the same database and picks up their deliveries.
    db = env.pg.fresh_database()
    # One JWT secret for both, so a token from one is valid on the other.
    common = {"INTERNAL_SECRET": INTERNAL_SECRET, "ADMIN_TOKEN": ADMIN_TOKEN,
              "JWT_SECRET": "schedule-test-" + "j" * 24}
    api = Server(db, env=dict(server_env(stub), INKLOOP_ROLES="api", **common)).start()
    s = Shared(env.pg, db, api)
    u = s.signup("carol")
    port = stub.url.rsplit(":", 1)[1]
    by_ip = integration(u, stub.hook("private-ip"), name="ip")
    by_name = integration(u, "http://localhost:%s/hooks/private-name" % port, name="name")
    a1 = completed_article(s, u, by_ip, query="Loopback by address")
    a2 = completed_article(s, u, by_name, query="Loopback by name")
    worker = Server(db, env=dict(server_env(stub, {"ALLOW_PRIVATE_URLS": "0"}), **common)).start()
    s.srv = worker
    art1 = wait_article(u, a1, final, 15)
    art2 = wait_article(u, a2, final, 15)
    tap.is_((art1["status"], art1["last_posting_error"]),
            ("delivery_failed", "target not allowed: resolves to a loopback address"),
            "ALLOW_PRIVATE_URLS=0: a 127.0.0.1 target is refused with a clear last_posting_error")
    tap.ok(art2["status"] == "delivery_failed" and (art2["last_posting_error"] or "").startswith(
        "target not allowed:") and "loopback" in art2["last_posting_error"],
        "a name (localhost) that resolves to loopback is refused too", art2["last_posting_error"])
    d = u.req("GET", "/articles/%s/deliveries" % a1).json
    tap.ok(len(d) == 3 and all(x["status_code"] is None and x["error"] == art1["last_posting_error"] for x in d),
           "every refused attempt is recorded, without a status code", d)
    tap.is_((stub.received("private-ip"), stub.received("private-name")), ([], []), "no request reached the sink")
    for srv, name in ((worker, "worker"), (api, "api-only")):
        code, _ = srv.stop()
        tap.is_(code, 0, "the %s server exits 0 on SIGTERM" % name)


def test_stop_while_hanging(stub):
    """SIGTERM while a delivery and a test delivery wait on receivers that hang past the shutdown deadline: the
    process still exits 0 in time, the delivery's attempt is recorded as interrupted and its next one queued."""
    env = Env(server_env(stub, {"WEBHOOK_TIMEOUT_S": "30", "SHUTDOWN_TIMEOUT_S": "2"}))
    u = env.signup("dave")
    url = stub.hook("hang-at-stop", hang=40)
    integ = integration(u, url, name="hang")
    aid = completed_article(env, u, integ, query="Delivery in flight at shutdown")
    wait_received(stub, "hang-at-stop", 1, 10)
    result = {}

    def test_call():
        try:
            result["r"] = u.req("POST", "/integrations/test", body={"webhook_url": url}, timeout=60)
        except OSError as e:
            result["r"] = e
    th = threading.Thread(target=test_call)
    th.start()
    wait_received(stub, "hang-at-stop", 2, 10)
    code, took = env.srv.stop(timeout=20)
    th.join(30)
    tap.is_(code, 0, "SIGTERM with a delivery and a test delivery hanging: exit 0")
    tap.ok(took < 8, "within the shutdown deadline (%.1f s)" % took)
    r = result.get("r")
    tap.ok(getattr(r, "status", None) == 503 and r.json == {"detail": "Service is shutting down"},
           "the waiting POST /integrations/test is answered 503 at the shutdown deadline", r)
    # The receiver got the request, so it is not resent as if it never happened (issue 9): the attempt is
    # recorded as interrupted, and the next attempt is queued.
    rows = env.sql("SELECT state FROM jobs WHERE article_id = '%s' AND kind = 'deliver_webhook' ORDER BY id" % aid)
    tap.is_(rows, [["done"], ["queued"]], "the running delivery ends, its next attempt is queued")
    rows = env.sql("SELECT attempt, success::text, error FROM webhook_deliveries WHERE article_id = '%s'" % aid)
    tap.is_(rows, [["1", "false", "interrupted by shutdown"]],
            "and the interrupted send is recorded once, as 'interrupted by shutdown'")
    log = env.srv.log()
    tap.ok(all(x not in log for x in ("AddressSanitizer", "LeakSanitizer", "runtime error:")),
           "no sanitizer report", log[-3000:])


def main():
    stub = stub_stalled()
    env = Env(server_env(stub, {"WEBHOOK_SWEEP_INTERVAL_S": "3600"}))
    a = env.signup("alice")
    test_scheduled(env, a, stub)
    test_past_schedule(env, a, stub)
    test_sweep(env, a, stub)
    test_loopback_refused(env, stub)
    test_stop_while_hanging(stub)
    env.stop_clean()


run(main)
