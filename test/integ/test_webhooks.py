"""Webhook delivery (API.md section 6) and the delivery endpoints of section 4, on the real binary against the
stub sink: signatures verified by the sink and again here with Python's hmac over a body full of non-ASCII and
emoji, the headers and body fields, retries with short delays (fails twice, always fails, 410, 301, a hanging
receiver, Retry-After), published_url, the campaign's articles_posted, POST /articles/{id}/deliver,
GET /articles/{id}/deliveries and the integration test deliveries."""
import datetime
import json
import os
import time

from harness import free_port, run, tap
from webhooks_common import (BODY_FIELDS, article, body_bytes, completed_article, gaps, integration, parse_iso,
                             quiet_for, start, verify, wait_article, wait_received, whsec)

VERSION = os.environ.get("INKLOOP_VERSION", "")
TITLE = "Crème brûlée 🍮 at home: 日本語 tips \"quoted\""
# The body's title is the article's title: the content's H1, not the query it was created from.
CONTENT = ("# " + TITLE + "\n\nCafé-style desserts — without a torch 🚀. Größe, naïve, 日本語, emoji 😀 "
           "and a flag 🇫🇷.\n\nQuotes \"double\" and 'single', a backslash \\ and a tab\tand a control \u0001 char, "
           "</script> and a line separator \u2028 too [1].\n")
QUERY = "Crème brûlée without a torch"


def final(a):
    return a and a["status"] in ("posted", "delivery_failed")


def test_signed_body(env, a, stub):
    secret = whsec()
    url = stub.hook("sign", secret=secret)
    integ = integration(a, url, secret=secret, api_key="site-key-7Qx")
    t0 = time.time()
    aid = completed_article(env, a, integ, content=CONTENT, query=QUERY, category="Recipes & Food")
    recs = wait_received(stub, "sign", 1, 15)
    art = wait_article(a, aid, final, 10)
    if not tap.is_(len(recs), 1, "the signed article reaches the sink once"):
        return
    rec = recs[0]
    tap.is_(art["status"], "posted", "the article is posted")
    tap.is_((art["topic"], art["title"]), (QUERY, TITLE), "the article's topic is the query, its title the H1")
    tap.ok(art["posted_at"] is not None and art["posting_attempt_count"] == 0 and art["last_posting_error"] is None,
           "posted_at set, no failed attempt, no error", art)
    tap.is_((rec["sig_hex_raw"], rec["sig_hex_canonical"], rec["sig_standard"]), (True, True, True),
            "the sink verifies X-Webhook-Signature over the raw and canonical bodies, and webhook-signature")
    tap.is_(verify(rec, secret), (True, True, True), "Python's hmac agrees: hex raw, hex canonical, Standard Webhooks")
    raw = body_bytes(rec)
    tap.is_(raw, json.dumps(json.loads(raw), sort_keys=True).encode(),
            "the raw body is json.dumps(json.loads(body), sort_keys=True) byte for byte")
    tap.ok(rec["body_canonical"] is True and raw.isascii(), "the body is canonical and pure ASCII (\\u escapes)")
    tap.ok(b"\\ud83c\\udf6e" in raw and b"\\u00e8" in raw and b"\\u2028" in raw and b"\\u0001" in raw,
           "emoji as surrogate pairs, Latin-1, U+2028 and control characters escaped", raw[:400])
    h = rec["headers"]
    tap.is_(h.get("content-type"), "application/json", "Content-Type: application/json")
    tap.is_(h.get("user-agent"), "inkloop-webhook/" + VERSION, "User-Agent: inkloop-webhook/<version>")
    tap.is_(h.get("x-api-key"), "site-key-7Qx", "X-API-Key is the integration's api_key")
    tap.like(h.get("webhook-id", ""), r"^msg_[0-9A-Za-z_]+$", "webhook-id present")
    ts = int(h.get("webhook-timestamp", "0"))
    tap.ok(abs(ts - rec["received_at"]) <= 5 and ts >= int(t0) - 1, "webhook-timestamp is close to now",
           (ts, rec["received_at"]))
    tap.like(h.get("x-webhook-signature", ""), r"^[0-9a-f]{64}$", "X-Webhook-Signature is lowercase hex")
    tap.like(h.get("webhook-signature", ""), r"^v1,[A-Za-z0-9+/]{43}=$", "webhook-signature is v1,<base64>")

    body = json.loads(raw)
    tap.is_(set(body), BODY_FIELDS, "the body has exactly the fields of section 6")
    want = {"event": "article.published", "id": aid, "article_id": aid, "campaign_id": None, "title": TITLE,
            "content": CONTENT, "content_html": art["content_html"], "category": "Recipes & Food",
            "meta_description": art["meta_description"], "slug": art["slug"], "scheduled_at": None,
            "created_at": art["created_at"]}
    tap.is_({k: body.get(k) for k in want}, want, "body values: event, ids, title, content (round trip), ...")
    tap.ok(isinstance(body.get("keywords"), list) and isinstance(body.get("sources"), list)
           and all(set(s) == {"url", "title"} for s in body.get("sources", [])), "keywords and sources are lists",
           body.get("sources"))
    tap.ok(isinstance(body.get("word_count"), int) and body["word_count"] == (art["word_count"] or 0),
           "word_count is the article's", (body.get("word_count"), art["word_count"]))
    d = a.req("GET", "/articles/%s/deliveries" % aid).json
    tap.ok(isinstance(d, list) and len(d) == 1 and d[0]["attempt"] == 1 and d[0]["status_code"] == 200
           and d[0]["error"] is None and d[0]["integration_id"] == integ and d[0]["url"] == url
           and isinstance(d[0]["duration_ms"], int), "one delivery recorded: attempt 1, 200, no error", d)


def test_fails_twice(env, a, stub, cid):
    """Receiver fails twice then succeeds; a campaign article with a published URL; then re-delivered."""
    secret = "plain secret, not whsec"
    url = stub.hook("twice", fail_times=2, secret=secret, reply={"url": "https://site.example/p/42"})
    integ = integration(a, url, secret=secret)
    aid = a.create("Fails twice then works", webhook_integration_id=integ).json["id"]
    env.sql("UPDATE articles SET campaign_id = '%s' WHERE id = '%s'" % (cid, aid))
    from webhooks_common import complete
    complete(env, aid)
    recs = wait_received(stub, "twice", 3, 20)
    art = wait_article(a, aid, final, 10)
    tap.is_([r["response_status"] for r in recs], [503, 503, 200], "503, 503, then 200 at the sink")
    tap.is_(art["status"], "posted", "posted on attempt 3")
    tap.is_((art["posting_attempt_count"], art["last_posting_error"]), (2, None),
            "posting_attempt_count 2 (failures counted), last_posting_error cleared by the success")
    tap.is_(art["published_url"], "https://site.example/p/42", "the {\"url\"} reply is stored as published_url")
    tap.is_(len({r["headers"].get("webhook-id") for r in recs}), 1, "webhook-id is the same on all three attempts")
    tap.ok(all(r["sig_standard"] and r["sig_hex_raw"] for r in recs), "each attempt is signed (raw secret key)",
           [(r["sig_hex_raw"], r["sig_standard"]) for r in recs])
    tap.ok(all(0.9 <= g <= 4.0 for g in gaps(recs)), "attempts WEBHOOK_RETRY_DELAY_S (1 s) apart", gaps(recs))
    d = a.req("GET", "/articles/%s/deliveries" % aid).json
    tap.is_([(x["attempt"], x["status_code"], x["error"]) for x in d],
            [(3, 200, None), (2, 503, "HTTP 503"), (1, 503, "HTTP 503")],
            "GET /articles/{id}/deliveries: three attempts newest first, with status codes and errors")
    c = a.req("GET", "/campaigns/" + cid).json
    tap.is_(c["articles_posted"], 1, "the campaign's articles_posted is 1")

    # POST /articles/{id}/deliver re-delivers a posted article and resets the attempt count.
    r = a.req("POST", "/articles/%s/deliver" % aid)
    tap.is_((r.status, r.json), (200, {"success": True, "message": "Delivery scheduled"}), "re-deliver: 200")
    recs2 = wait_received(stub, "twice", 4, 10)
    art = wait_article(a, aid, lambda x: x["status"] == "posted" and x["posted_at"] != art["posted_at"], 10)
    tap.is_(len(recs2), 4, "the re-delivery reaches the sink")
    tap.is_((art["status"], art["posting_attempt_count"], art["last_posting_error"]), ("posted", 0, None),
            "posted again, attempt count reset to 0")
    tap.is_(recs2[-1]["headers"].get("webhook-id"), recs[0]["headers"].get("webhook-id"),
            "the re-delivery keeps the article's webhook-id")
    d = a.req("GET", "/articles/%s/deliveries" % aid).json
    tap.is_([(x["attempt"], x["status_code"]) for x in d], [(1, 200), (3, 200), (2, 503), (1, 503)],
            "the re-delivery is listed first, as attempt 1")
    stamps = [parse_iso(x["created_at"]) for x in d]
    tap.ok(stamps == sorted(stamps, reverse=True), "deliveries are newest first by created_at", stamps)
    c = a.req("GET", "/campaigns/" + cid).json
    tap.is_(c["articles_posted"], 1, "re-delivering a posted article does not count it twice in articles_posted")


def test_always_fails(env, a, stub):
    url = stub.hook("always", status=503)
    integ = integration(a, url)
    aid = completed_article(env, a, integ, query="Always failing receiver")
    recs = wait_received(stub, "always", 3, 20)
    art = wait_article(a, aid, final, 10)
    tap.is_((art["status"], art["posting_attempt_count"], art["last_posting_error"]),
            ("delivery_failed", 3, "HTTP 503"), "always 503: delivery_failed after 3 attempts, HTTP 503")
    quiet_for(stub, "always", 3, 2.5)
    d = a.req("GET", "/articles/%s/deliveries" % aid).json
    tap.is_([(x["attempt"], x["status_code"], x["error"]) for x in d],
            [(3, 503, "HTTP 503"), (2, 503, "HTTP 503"), (1, 503, "HTTP 503")], "three failed attempts recorded")
    n = env.sql("SELECT count(*) FROM jobs WHERE article_id = '%s' AND state IN ('queued', 'running')" % aid)
    tap.is_(n, [["0"]], "no delivery job left")


def test_gone(env, a, stub):
    url = stub.hook("gone", status=410)
    integ = integration(a, url)
    aid = completed_article(env, a, integ, query="Receiver is gone")
    recs = wait_received(stub, "gone", 1, 15)
    art = wait_article(a, aid, final, 10)
    tap.is_(len(recs), 1, "410: one request")
    tap.is_((art["status"], art["posting_attempt_count"], art["last_posting_error"]),
            ("delivery_failed", 1, "HTTP 410"), "410: delivery_failed at once, HTTP 410")
    i = a.req("GET", "/integrations/" + integ).json
    tap.is_(i["is_active"], False, "410 disables the integration")
    quiet_for(stub, "gone", 1, 2.5)
    # A forced re-delivery to a disabled integration sends nothing and records why.
    r = a.req("POST", "/articles/%s/deliver" % aid)
    tap.is_(r.status, 200, "deliver to a disabled integration is accepted")
    art = wait_article(a, aid, lambda x: x["status"] == "delivery_failed", 10)
    tap.is_((art["status"], art["last_posting_error"]), ("delivery_failed", "integration is disabled"),
            "it fails with 'integration is disabled'")
    tap.is_(len(stub.received("gone")), 1, "and the disabled receiver gets no request")


def test_redirect(env, a, stub):
    url = stub.hook("moved", status=301, location=stub.url + "/hooks/moved-target")
    stub.hook("moved-target")
    integ = integration(a, url)
    aid = completed_article(env, a, integ, query="Receiver redirects")
    recs = wait_received(stub, "moved", 3, 20)
    art = wait_article(a, aid, final, 10)
    tap.is_([r["response_status"] for r in recs], [301, 301, 301], "301 three times (each a failure)")
    tap.is_(art["status"], "delivery_failed", "301 is a failure: delivery_failed")
    tap.like(art["last_posting_error"] or "", r"^HTTP 301", "last_posting_error HTTP 301")
    tap.is_(stub.received("moved-target"), [], "the redirect target never receives anything")


def test_hang(env, a, stub):
    url = stub.hook("hang", hang=6)
    integ = integration(a, url)
    aid = completed_article(env, a, integ, query="Receiver hangs")
    # While that receiver hangs, another delivery and the API go on as usual.
    wait_received(stub, "hang", 1, 10)
    fast = integration(a, stub.hook("beside-hang"), name="beside")
    t0 = time.time()
    completed_article(env, a, fast, query="Delivered beside a hanging one")
    recs = wait_received(stub, "beside-hang", 1, 5)
    t1 = time.time()
    tap.ok(len(recs) == 1 and recs[0]["received_at"] - t0 < 1.0 and stub.received("hang")[0]["response_status"]
           is None, "a hanging receiver does not delay another delivery", [r["received_at"] - t0 for r in recs])
    r = env.srv.request("GET", "/health")
    tap.ok(r.status == 200 and time.time() - t1 < 0.5, "nor the API")
    art = wait_article(a, aid, lambda x: x["posting_attempt_count"] >= 1, 15)
    tap.is_((art["posting_attempt_count"], art["last_posting_error"]), (1, "timeout after 2s"),
            "a receiver hanging past WEBHOOK_TIMEOUT_S=2: timeout after 2s")
    d = a.req("GET", "/articles/%s/deliveries" % aid).json
    tap.ok(len(d) == 1 and d[0]["status_code"] is None and 1900 <= d[0]["duration_ms"] <= 4000,
           "the attempt is recorded without status, after about 2 s", d)
    stub.hook("hang", hang=0)  # the next attempt is answered at once
    art = wait_article(a, aid, final, 10)
    tap.is_((art["status"], art["posting_attempt_count"]), ("posted", 1), "the next attempt posts it")
    return aid


def test_retry_after(env, a, stub):
    url = stub.hook("later", fail_times=1, retry_after=3)
    integ = integration(a, url)
    aid = completed_article(env, a, integ, query="Receiver says Retry-After")
    recs = wait_received(stub, "later", 2, 15)
    art = wait_article(a, aid, final, 10)
    tap.is_(len(recs), 2, "503 with Retry-After: 3, then 200")
    g = gaps(recs)
    tap.ok(g and 3.0 <= g[0] <= 5.0, "the second attempt waits Retry-After (>= 3 s, not the 1 s delay)", g)
    tap.is_(art["status"], "posted", "then posted")


def test_integration_endpoints(env, a, stub):
    secret = whsec()
    ok_url = stub.hook("t-ok", secret=secret)
    bad_url = stub.hook("t-bad", status=503)
    refused = "http://127.0.0.1:%d/hook" % free_port()
    r = a.req("POST", "/integrations/test", body={"webhook_url": ok_url, "webhook_secret": secret})
    j = r.json if isinstance(r.json, dict) else {}
    tap.is_((r.status, set(j), j.get("success"), j.get("message"), j.get("status_code")),
            (200, {"success", "message", "status_code", "duration_ms"}, True, "Success", 200),
            "POST /integrations/test to a 200 receiver: success")
    tap.ok(isinstance(j.get("duration_ms"), int) and j["duration_ms"] >= 0, "duration_ms is an integer", j)
    recs = stub.received("t-ok")
    body = json.loads(body_bytes(recs[-1])) if recs else {}
    tap.ok(recs and body.get("test") is True and isinstance(body.get("timestamp"), str)
           and recs[-1]["sig_hex_raw"] and recs[-1]["sig_standard"],
           "the test delivery {test: true, timestamp} is signed with the given secret",
           recs[-1] if recs else None)
    r = a.req("POST", "/integrations/test", body={"webhook_url": bad_url})
    tap.is_((r.status, r.json.get("success"), r.json.get("message"), r.json.get("status_code")),
            (200, False, "HTTP 503", 503), "POST /integrations/test to a 503 receiver: HTTP 503")
    r = a.req("POST", "/integrations/test", body={"webhook_url": refused})
    tap.is_((r.status, r.json.get("success"), r.json.get("message"), r.json.get("status_code")),
            (200, False, "connection refused", None), "POST /integrations/test to a closed port: connection refused")

    integ = integration(a, ok_url, secret=secret, api_key="k-1", name="tested")
    before = time.time()
    r = a.req("POST", "/integrations/%s/test" % integ)
    tap.is_((r.status, r.json.get("success"), r.json.get("message"), r.json.get("status_code")),
            (200, True, "Success", 200), "POST /integrations/{id}/test: success")
    rec = stub.received("t-ok")[-1]
    tap.ok(rec["sig_hex_raw"] and rec["sig_standard"] and rec["headers"].get("x-api-key") == "k-1",
           "signed with the stored secret, X-API-Key sent", rec["headers"])
    i = a.req("GET", "/integrations/" + integ).json
    tap.ok(i["last_test_status"] == "success" and i["last_test_at"] and parse_iso(i["last_test_at"]) >= before - 1,
           "last_test_at / last_test_status success recorded", i)
    r = a.req("PATCH", "/integrations/" + integ, body={"webhook_url": bad_url})
    r = a.req("POST", "/integrations/%s/test" % integ)
    tap.is_((r.json.get("success"), r.json.get("message"), r.json.get("status_code")), (False, "HTTP 503", 503),
            "POST /integrations/{id}/test to a failing receiver")
    i = a.req("GET", "/integrations/" + integ).json
    tap.is_(i["last_test_status"], "failure", "last_test_status failure recorded")
    r = a.req("PATCH", "/integrations/" + integ, body={"webhook_url": refused})
    r = a.req("POST", "/integrations/%s/test" % integ)
    tap.is_((r.json.get("success"), r.json.get("message"), r.json.get("status_code")),
            (False, "connection refused", None), "POST /integrations/{id}/test: connection refused")
    b = env.signup("bob")
    r = b.req("POST", "/integrations/%s/test" % integ)
    tap.is_((r.status, r.json), (404, {"detail": "Integration not found"}), "another user's integration: 404")


def main():
    env, stub = start()
    a = env.signup("alice")
    next_year = (datetime.date.today() + datetime.timedelta(days=400)).isoformat()
    r = a.req("POST", "/campaigns", body={"name": "c", "topic": "desserts", "articles_per_day": 1,
                                          "posting_times": ["09:00"], "start_date": next_year})
    tap.is_(r.status, 201, "a campaign (starting next year, so the scheduler leaves it alone)")
    cid = r.json["id"]

    test_signed_body(env, a, stub)
    test_fails_twice(env, a, stub, cid)
    test_always_fails(env, a, stub)
    test_gone(env, a, stub)
    test_redirect(env, a, stub)
    test_hang(env, a, stub)
    test_retry_after(env, a, stub)
    test_integration_endpoints(env, a, stub)
    env.stop_clean()


run(main)
