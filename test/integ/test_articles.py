"""Articles (API.md section 4) over HTTP against the real binary: create, list, stats, get, patch, delete,
retry, deliver, deliveries, campaign articles, /internal/article-complete, cross-user isolation, and
concurrent credit spending."""
import re
import threading
import uuid

from articles_common import ARTICLE_FIELDS, Env, check_422, ledger_consistent
from harness import run, tap

ISO_Z = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"
NOBODY = "3f1c2a4e-9b8d-4c7a-8e6f-0a1b2c3d4e5f"


def test_auth_required(env, aid):
    routes = [("POST", "/articles"), ("POST", "/generate"), ("GET", "/articles"), ("GET", "/articles/stats"),
              ("GET", "/articles/" + aid), ("PATCH", "/articles/" + aid), ("DELETE", "/articles/" + aid),
              ("POST", "/articles/%s/retry" % aid), ("POST", "/articles/%s/deliver" % aid),
              ("GET", "/articles/%s/deliveries" % aid), ("GET", "/campaigns/%s/articles" % NOBODY)]
    for method, path in routes:
        r = env.srv.request(method, path, body={} if method in ("POST", "PATCH") else None)
        tap.is_((r.status, r.json, r.headers.get("www-authenticate")),
                (401, {"detail": "Not authenticated"}, "Bearer"), "%s %s without credentials is 401" % (method, path))
    r = env.srv.request("GET", "/articles", headers={"Authorization": "Bearer not.a.token"})
    tap.is_((r.status, r.json), (401, {"detail": "Could not validate credentials"}), "bad token is 401")


def test_create(env, a, integ):
    r = a.create("How to keep sourdough starter alive")
    tap.is_(r.status, 201, "POST /articles is 201")
    art = r.json if isinstance(r.json, dict) else {}
    tap.is_(set(art), ARTICLE_FIELDS, "the Article has exactly the contract's fields")
    tap.is_((art.get("topic"), art.get("raw_query"), art.get("status"), art.get("category"),
             art.get("target_length"), art.get("source_count"), art.get("timezone"), art.get("language")),
            ("How to keep sourdough starter alive", "How to keep sourdough starter alive", "queued", "General",
             1500, 5, "UTC", "en"), "defaults and topic = query")
    tap.is_((art.get("sources"), art.get("brief"), art.get("content"), art.get("scheduled_at"),
             art.get("tokens_used"), art.get("retry_count"), art.get("is_recurring")),
            ([], None, None, None, 0, 0, False), "a new article has no sources, brief, content, schedule")
    tap.is_(art.get("title"), None, "a free-form article has no title until it is generated")
    tap.ok(re.match(ISO_Z, art.get("created_at") or "") is not None, "created_at is ISO-8601 UTC", art.get("created_at"))
    tap.is_(a.credits(), 9, "one credit charged")
    jobs = env.sql("SELECT kind, state FROM jobs WHERE article_id = '%s'" % art["id"])
    tap.is_(jobs, [["generate_article", "queued"]], "a generate job was enqueued with the article")
    led = a.ledger()
    tap.is_((led[0]["type"], led[0]["amount"], led[0]["reference_id"], led[0]["balance_after"]),
            ("usage", -1, art["id"], 9), "the ledger has the usage row for the article")

    r = a.req("POST", "/generate", body={"query_explanation": "Alias of the query field", "category": "Food",
                                         "target_length": 300, "source_count": 10, "language": "fr",
                                         "timezone": "Europe/Paris", "scheduled_at": "2030-01-01T09:00",
                                         "webhook_integration_id": integ})
    art2 = r.json if isinstance(r.json, dict) else {}
    tap.is_((r.status, art2.get("raw_query"), art2.get("category"), art2.get("target_length"),
             art2.get("source_count"), art2.get("language"), art2.get("webhook_integration_id")),
            (201, "Alias of the query field", "Food", 300, 10, "fr", integ),
            "POST /generate with query_explanation and every option")
    tap.is_(art2.get("scheduled_at"), "2030-01-01T08:00:00.000000Z",
            "scheduled_at without offset is read in the article's timezone (09:00 Paris = 08:00Z)")
    r = a.create(scheduled_at="2030-01-01T09:00:00+05:30", timezone="America/New_York", webhook_integration_id="",
                 category=None)
    tap.is_((r.status, r.json.get("scheduled_at"), r.json.get("webhook_integration_id"), r.json.get("category")),
            (201, "2030-01-01T03:30:00.000000Z", None, "General"),
            "an explicit offset wins; \"\" integration and null category count as absent")
    return art


def test_create_errors(env, a, b):
    b_integ = b.integration()
    before = a.credits()
    r = a.create(webhook_integration_id=b_integ)
    tap.is_((r.status, r.json), (404, {"detail": "Integration not found"}), "another user's integration is 404")
    r = a.create(webhook_integration_id=NOBODY)
    tap.is_((r.status, r.json), (404, {"detail": "Integration not found"}), "an unknown integration is 404")
    tap.is_(a.credits(), before, "refused creates charge nothing")
    check_422(a.req("POST", "/articles", body={}), ("body", "query"), "missing query is 422", "missing")
    check_422(a.create("ab"), ("body", "query"), "query of 2 chars is 422", "string_too_short")
    check_422(a.create("x" * 2001), ("body", "query"), "query of 2001 chars is 422", "string_too_long")
    tap.is_(a.create("é" * 2000).status, 201, "query of 2000 (two-byte) characters is fine")
    check_422(a.create(query=123), ("body", "query"), "a number as query is 422", "string_type")
    check_422(a.create(target_length=299), ("body", "target_length"), "target_length 299 is 422")
    check_422(a.create(target_length=5001), ("body", "target_length"), "target_length 5001 is 422")
    check_422(a.create(target_length="lots"), ("body", "target_length"), "target_length text is 422")
    check_422(a.create(source_count=0), ("body", "source_count"), "source_count 0 is 422")
    check_422(a.create(source_count=11), ("body", "source_count"), "source_count 11 is 422")
    check_422(a.create(scheduled_at="tomorrow"), ("body", "scheduled_at"), "bad scheduled_at is 422")
    check_422(a.create(timezone="Mars/Olympus_Mons"), ("body", "timezone"), "unknown timezone is 422")
    check_422(a.create(timezone="abc+3"), ("body", "timezone"), "a POSIX zone string is not an IANA name: 422")
    check_422(a.create(webhook_integration_id="nope"), ("body", "webhook_integration_id"), "bad integration id is 422")
    r = a.req("POST", "/articles", body={"query": "ab", "target_length": 1, "timezone": "Nowhere/Land"})
    tap.is_(sorted(e["loc"][1] for e in r.json["detail"]) if r.status == 422 else r.status,
            ["query", "target_length", "timezone"], "every problem is reported at once")
    r = a.req("POST", "/articles", body=b'{"query": "abc"', headers={"Content-Type": "application/json"})
    check_422(r, ("body",), "truncated JSON is 422")
    r = a.req("POST", "/articles", body=[1, 2])
    check_422(r, ("body",), "a JSON array body is 422")
    r = a.req("POST", "/articles", body=b"[" * 10000 + b"]" * 10000, headers={"Content-Type": "application/json"})
    tap.is_(r.status, 422, "deeply nested JSON is 422 (no crash)")
    tap.is_(a.credits(), before - 1, "only the valid create was charged")


def test_read(env, a, b, first):
    ids = [a.create("Ordered article number %d" % i).json["id"] for i in range(3)]
    r = a.req("GET", "/articles")
    tap.is_(r.status, 200, "GET /articles is 200")
    listed = [x["id"] for x in r.json]
    tap.is_(listed[:3], ids[::-1], "GET /articles is newest first")
    tap.ok(first["id"] in listed and all(set(x) == ARTICLE_FIELDS for x in r.json), "every item is an Article")
    r = a.req("GET", "/articles?skip=1&limit=2")
    tap.is_([x["id"] for x in r.json], ids[::-1][1:3], "skip and limit page the list")
    tap.is_(len(a.req("GET", "/articles?status=failed").json), 0, "status filter: no failed articles yet")
    tap.ok(all(x["status"] == "queued" for x in a.req("GET", "/articles?status=queued").json), "status=queued filter")
    check_422(a.req("GET", "/articles?status=bogus"), ("query", "status"), "bad status filter is 422", "enum")
    check_422(a.req("GET", "/articles?campaign_id=xyz"), ("query", "campaign_id"), "bad campaign_id is 422")
    check_422(a.req("GET", "/articles?limit=201"), ("query", "limit"), "limit over 200 is 422")
    tap.is_(a.req("GET", "/articles?campaign_id=" + NOBODY).json, [], "campaign filter with no match is []")

    r = a.req("GET", "/articles/" + first["id"])
    tap.is_((r.status, r.json.get("id"), r.json.get("topic")), (200, first["id"], first["topic"]), "GET /articles/{id}")
    tap.is_(r.json, first | {"updated_at": r.json.get("updated_at")}, "GET returns what POST returned")
    r = a.req("GET", "/articles/" + NOBODY)
    tap.is_((r.status, r.json), (404, {"detail": "Article not found"}), "unknown article is 404")
    r = a.req("GET", "/articles/not-a-uuid")
    check_422(r, ("path", "article_id"), "malformed article id is 422 in path")
    r = a.req("GET", "/articles/" + first["id"].upper())
    tap.is_(r.status, 200, "an uppercase UUID names the same article")

    # isolation
    r = b.req("GET", "/articles/" + first["id"])
    tap.is_((r.status, r.json), (404, {"detail": "Article not found"}), "user B gets 404 for A's article")
    tap.is_(b.req("GET", "/articles").json, [], "user B's list does not show A's articles")
    tap.is_(b.req("GET", "/articles/stats").json,
            {"total": 0, "queued": 0, "in_progress": 0, "completed": 0, "scheduled": 0, "posted": 0, "failed": 0},
            "user B's stats do not count A's articles")
    for method, path in (("PATCH", ""), ("DELETE", ""), ("POST", "/retry"), ("POST", "/deliver"),
                         ("GET", "/deliveries")):
        r = b.req(method, "/articles/" + first["id"] + path, body={"topic": "mine now"} if method == "PATCH" else None)
        tap.is_((r.status, r.json), (404, {"detail": "Article not found"}), "user B: %s /articles/{A's id}%s is 404"
                % (method, path))
    tap.is_(a.req("GET", "/articles/" + first["id"]).json.get("topic"), first["topic"], "A's article is unchanged")


def test_stats(env, a):
    env.sql("UPDATE articles SET status = 'writing' WHERE id IN (SELECT id FROM articles WHERE user_id = '%s'"
            " AND status = 'queued' ORDER BY created_at LIMIT 1)" % a.id)
    aid = a.create("Completed and scheduled later").json["id"]
    env.sql("UPDATE articles SET status = 'completed', completed_at = now(), scheduled_at = now() + interval '1 day'"
            " WHERE id = '%s'" % aid)
    aid = a.create("Completed and posted").json["id"]
    env.sql("UPDATE articles SET status = 'posted', completed_at = now(), posted_at = now() WHERE id = '%s'" % aid)
    want = {}
    rows = env.sql("SELECT status, (scheduled_at > now())::text FROM articles WHERE user_id = '%s'" % a.id)
    want["total"] = len(rows)
    want["queued"] = sum(1 for s, _ in rows if s == "queued")
    want["in_progress"] = sum(1 for s, _ in rows if s in ("researching", "scraping", "analyzing", "writing"))
    want["completed"] = sum(1 for s, _ in rows if s == "completed")
    want["scheduled"] = sum(1 for s, f in rows if s == "completed" and f == "true")
    want["posted"] = sum(1 for s, _ in rows if s == "posted")
    want["failed"] = sum(1 for s, _ in rows if s == "failed")
    r = a.req("GET", "/articles/stats")
    tap.is_((r.status, r.json), (200, want), "GET /articles/stats counts per status")
    tap.ok(want["in_progress"] == 1 and want["scheduled"] == 1 and want["posted"] == 1, "the fixture covers them", want)


def test_patch(env, a, b, integ):
    art = a.create("Patch me").json
    r = a.req("PATCH", "/articles/" + art["id"], body={"topic": "New topic", "category": "Tech",
                                                      "content": "# Hello", "scheduled_at": "2031-05-05T10:00"})
    tap.is_((r.status, r.json.get("success"), r.json.get("message")), (200, True, "Article updated"), "PATCH is 200")
    got = r.json.get("article", {})
    tap.is_((got.get("topic"), got.get("category"), got.get("content"), got.get("scheduled_at"), got.get("status")),
            ("New topic", "Tech", "# Hello", "2031-05-05T10:00:00.000000Z", "queued"), "PATCH changes the fields")
    tap.is_(set(got), ARTICLE_FIELDS, "PATCH returns the Article")
    tap.is_((got.get("content_html"), got.get("word_count")), ("<h1>Hello</h1>\n", 1),
            "new content brings its HTML and word count")
    r = a.req("PATCH", "/articles/" + art["id"], body={"status": None, "category": "Tech"})
    tap.is_((r.status, r.json.get("article", {}).get("status")), (200, "queued"),
            "\"status\": null counts as absent (not 422)")
    r = a.req("PATCH", "/articles/" + art["id"], body={"status": "completed"})
    check_422(r, ("body", "status"), "status is not writable (422)", "extra_forbidden")
    tap.is_(a.req("GET", "/articles/" + art["id"]).json["status"], "queued", "the status did not change")
    r = a.req("PATCH", "/articles/" + art["id"], body={"topic": None, "category": None})
    tap.is_((r.status, r.json["article"]["topic"]), (200, "New topic"), "null means unchanged")
    r = a.req("PATCH", "/articles/" + art["id"], body={"webhook_integration_id": b.integration()})
    tap.is_((r.status, r.json), (404, {"detail": "Integration not found"}), "PATCH to another user's integration: 404")
    env.sql("UPDATE articles SET webhook_id = 'msg_old' WHERE id = '%s'" % art["id"])
    r = a.req("PATCH", "/articles/" + art["id"], body={"webhook_integration_id": integ})
    tap.is_((r.status, r.json["article"]["webhook_integration_id"]), (200, integ), "PATCH sets an own integration")
    tap.is_(env.sql("SELECT webhook_id IS NULL FROM articles WHERE id = '%s'" % art["id"]), [["t"]],
            "a new integration resets webhook_id")
    check_422(a.req("PATCH", "/articles/" + art["id"], body={"topic": ""}), ("body", "topic"), "empty topic is 422")
    check_422(a.req("PATCH", "/articles/" + art["id"], body={"scheduled_at": "soon"}), ("body", "scheduled_at"),
              "bad scheduled_at in PATCH is 422")
    r = a.req("PATCH", "/articles/" + NOBODY, body={"topic": "x"})
    tap.is_((r.status, r.json), (404, {"detail": "Article not found"}), "PATCH of an unknown article is 404")


def test_delete(env, a):
    before = a.credits()
    art = a.create("Delete me while queued").json
    tap.is_(a.credits(), before - 1, "charged on create")
    r = a.req("DELETE", "/articles/" + art["id"])
    tap.is_((r.status, r.json), (200, {"success": True, "message": "Article deleted"}), "DELETE is 200")
    tap.is_(a.credits(), before, "deleting a queued article refunds its credit")
    led = a.ledger()
    tap.is_((led[0]["type"], led[0]["amount"], led[0]["reference_id"], led[0]["description"]),
            ("refund", 1, art["id"], "Article cancelled"), "the refund is a ledger row")
    tap.is_(a.req("GET", "/articles/" + art["id"]).status, 404, "the article is gone")
    tap.is_(env.sql("SELECT count(*) FROM jobs WHERE article_id = '%s'" % art["id"]), [["0"]], "its job is gone too")
    r = a.req("DELETE", "/articles/" + art["id"])
    tap.is_((r.status, r.json), (404, {"detail": "Article not found"}), "deleting again is 404")
    art = a.create("Completed, deleted without refund").json
    env.sql("UPDATE articles SET status = 'completed', completed_at = now() WHERE id = '%s'" % art["id"])
    bal = a.credits()
    tap.is_(a.req("DELETE", "/articles/" + art["id"]).status, 200, "deleting a completed article")
    tap.is_(a.credits(), bal, "a completed article is not refunded")
    ok, info = ledger_consistent(a)
    tap.ok(ok, "ledger sums to the balance after deletes", info)


def test_internal_and_retry(env, a):
    art = a.create("Will fail several times").json
    aid = art["id"]
    body = {"article_id": aid, "tokens_used": 1234, "status": "failed", "error_message": "No sources could be scraped"}
    r = env.internal(body, secret="wrong")
    tap.is_((r.status, r.json), (403, {"detail": "Forbidden"}), "internal call with a wrong secret is 403")
    r = env.internal(body, secret=None)
    tap.is_((r.status, r.json), (403, {"detail": "Forbidden"}), "internal call without the secret is 403")
    r = env.internal({"article_id": NOBODY, "tokens_used": 1})
    tap.is_((r.status, r.json), (404, {"detail": "Article not found"}), "internal call for an unknown article is 404")
    check_422(env.internal({"article_id": aid}), ("body", "tokens_used"), "tokens_used is required")
    check_422(env.internal({"article_id": aid, "tokens_used": -1}), ("body", "tokens_used"), "negative tokens: 422")
    check_422(env.internal({"article_id": aid, "tokens_used": 1, "status": "posted"}), ("body", "status"),
              "internal status other than completed|failed is 422")
    check_422(env.internal({"article_id": "x", "tokens_used": 1}), ("body", "article_id"), "bad article_id is 422")

    r = env.internal({"article_id": aid, "tokens_used": 5, "status": "completed"})
    tap.is_((r.status, r.json), (400, {"detail": "Cannot complete an article without content"}),
            "completing an article that has no content is refused")
    tap.is_(a.req("GET", "/articles/" + aid).json["status"], "queued", "and changes nothing")

    bal = a.credits()
    r = env.internal(body)
    tap.is_((r.status, r.json), (200, {"success": True}), "internal failed is 200")
    got = a.req("GET", "/articles/" + aid).json
    tap.is_((got["status"], got["error_message"], got["tokens_used"]), ("failed", "No sources could be scraped", 1234),
            "the article is failed with the error and tokens")
    tap.is_(a.credits(), bal + 1, "failure refunds the credit")
    ledger = a.ledger()
    tap.is_((ledger[0]["type"], ledger[0]["amount"], ledger[0]["reference_id"]), ("refund", 1, aid), "refund row")
    tap.is_(env.sql("SELECT state FROM jobs WHERE article_id = '%s'" % aid), [["cancelled"]],
            "the in-process generation job is cancelled")
    snapshot = (a.credits(), len(a.ledger()), a.req("GET", "/articles/" + aid).json)
    r = env.internal(body)
    tap.is_((r.status, (a.credits(), len(a.ledger()), a.req("GET", "/articles/" + aid).json)), (200, snapshot),
            "repeating the internal call changes nothing (balance, ledger, article incl. updated_at)")

    r = a.req("POST", "/articles/%s/retry" % aid)
    tap.is_((r.status, r.json.get("success"), r.json.get("article", {}).get("status"),
             r.json.get("article", {}).get("retry_count"), r.json.get("article", {}).get("error_message")),
            (200, True, "queued", 1, None), "retry of a failed article queues it again")
    tap.is_(a.credits(), bal, "retry charges again")
    tap.is_(env.sql("SELECT charge_seq FROM credit_transactions WHERE reference_id = '%s' AND type = 'usage'"
                    " ORDER BY charge_seq" % aid), [["1"], ["2"]], "the retry is charge attempt 2")
    tap.is_(env.sql("SELECT state FROM jobs WHERE article_id = '%s' AND kind = 'generate_article' ORDER BY id" % aid),
            [["cancelled"], ["queued"]], "retry enqueues a new generate job")
    r = a.req("POST", "/articles/%s/retry" % aid)
    tap.is_((r.status, r.json), (400, {"detail": "Can only retry failed articles"}), "retry of a queued article is 400")
    env.sql("UPDATE articles SET last_stage_done = 'scrape' WHERE id = '%s'" % aid)
    for i in (2, 3):
        env.internal({"article_id": aid, "tokens_used": 10 * i, "status": "failed"})
        r = a.req("POST", "/articles/%s/retry" % aid)
        tap.is_((r.status, r.json["article"]["retry_count"] if r.status == 200 else r.json), (200, i),
                "retry number %d" % i)
    tap.is_(env.sql("SELECT last_stage_done FROM articles WHERE id = '%s'" % aid), [["scrape"]],
            "a retry keeps last_stage_done (resumes after the last stage)")
    env.internal({"article_id": aid, "tokens_used": 99, "status": "failed"})
    got = a.req("GET", "/articles/" + aid).json
    tap.is_((got["status"], got["error_message"]), ("failed", "Generation failed"), "default error_message")
    bal = a.credits()
    r = a.req("POST", "/articles/%s/retry" % aid)
    tap.is_((r.status, r.json), (400, {"detail": "Maximum retry limit reached"}), "a fourth retry is 400")
    tap.is_(a.credits(), bal, "the refused retry charged nothing")
    tap.is_(env.sql("SELECT count(*) FILTER (WHERE type = 'usage'), count(*) FILTER (WHERE type = 'refund')"
                    " FROM credit_transactions WHERE reference_id = '%s'" % aid), [["4", "4"]],
            "four charges, four refunds")
    r = a.req("POST", "/articles/%s/retry" % NOBODY)
    tap.is_((r.status, r.json), (404, {"detail": "Article not found"}), "retry of an unknown article is 404")

    # retry with no credits left
    art = a.create("Fails when the user is broke").json
    env.internal({"article_id": art["id"], "tokens_used": 0, "status": "failed"})
    spend = a.credits()
    env.sql("UPDATE users SET credits = 0 WHERE id = '%s'" % a.id)
    r = a.req("POST", "/articles/%s/retry" % art["id"])
    tap.is_((r.status, r.json), (402, {"detail": "Insufficient credits. Need 1, have 0"}), "retry without credits: 402")
    tap.is_(a.req("GET", "/articles/" + art["id"]).json["status"], "failed", "the article stays failed")
    env.sql("UPDATE users SET credits = %d WHERE id = '%s'" % (spend, a.id))

    # completion
    art = a.create("Completes externally").json
    r = env.internal({"article_id": art["id"], "tokens_used": 4321, "status": "completed", "content": "# Done\n\nBody"})
    tap.is_(r.status, 200, "internal completed is 200")
    got = a.req("GET", "/articles/" + art["id"]).json
    tap.is_((got["status"], got["content"], got["tokens_used"], got["error_message"]),
            ("completed", "# Done\n\nBody", 4321, None), "completed with content and tokens")
    tap.is_((got["content_html"], got["word_count"]), ("<h1>Done</h1>\n<p>Body</p>\n", 2),
            "the content's HTML and word count are recorded with it")
    tap.ok(re.match(ISO_Z, got["completed_at"] or ""), "completed_at is set", got["completed_at"])
    again = env.internal({"article_id": art["id"], "tokens_used": 4321, "status": "completed",
                          "content": "# Done\n\nBody"})
    tap.is_((again.status, a.req("GET", "/articles/" + art["id"]).json), (200, got), "repeated completion changes nothing")
    r = env.internal({"article_id": art["id"], "tokens_used": 4321, "status": "failed"})
    tap.is_((r.status, a.req("GET", "/articles/" + art["id"]).json["status"]), (200, "completed"),
            "a late 'failed' does not undo a completion (and refunds nothing)")
    r = env.internal({"article_id": art["id"], "tokens_used": 5000})
    tap.is_(a.req("GET", "/articles/" + art["id"]).json["tokens_used"], 5000, "tokens alone can be recorded")
    return art


def test_deliver(env, a, integ, completed):
    art = a.create("Not generated yet").json
    r = a.req("POST", "/articles/%s/deliver" % art["id"])
    tap.is_((r.status, r.json), (400, {"detail": "Article has not been generated yet"}), "deliver before generation: 400")
    r = a.req("POST", "/articles/%s/deliver" % completed["id"])
    tap.is_((r.status, r.json), (400, {"detail": "Article has no webhook integration"}),
            "deliver without an integration: 400")
    art = a.create("Generated with an integration", webhook_integration_id=integ).json
    env.internal({"article_id": art["id"], "tokens_used": 1, "status": "completed", "content": "# Hi"})
    rows = env.sql("SELECT kind, state, (run_at <= now())::text FROM jobs WHERE article_id = '%s' AND"
                   " kind = 'deliver_webhook'" % art["id"])
    tap.is_(rows, [["deliver_webhook", "queued", "true"]], "completion with an integration queues a delivery")
    tap.is_(env.sql("SELECT next_delivery_at IS NOT NULL FROM articles WHERE id = '%s'" % art["id"]), [["t"]],
            "completion sets next_delivery_at")
    env.sql("UPDATE jobs SET state = 'done', finished_at = now() WHERE article_id = '%s'" % art["id"])
    env.sql("UPDATE articles SET status = 'delivery_failed', posting_attempt_count = 3, last_posting_error = 'HTTP 503',"
            " next_delivery_at = NULL WHERE id = '%s'" % art["id"])
    r = a.req("POST", "/articles/%s/deliver" % art["id"])
    tap.is_((r.status, r.json), (200, {"success": True, "message": "Delivery scheduled"}), "deliver is 200")
    got = a.req("GET", "/articles/" + art["id"]).json
    tap.is_((got["status"], got["posting_attempt_count"], got["last_posting_error"]), ("completed", 0, None),
            "deliver resets the attempts and the status")
    tap.is_(env.sql("SELECT count(*) FROM jobs WHERE article_id = '%s' AND kind = 'deliver_webhook'"
                    " AND state = 'queued'" % art["id"]), [["1"]], "a delivery job is queued")
    tap.is_(a.req("POST", "/articles/%s/deliver" % art["id"]).status, 200, "deliver twice")
    tap.is_(env.sql("SELECT count(*) FROM jobs WHERE article_id = '%s' AND kind = 'deliver_webhook'"
                    " AND state = 'queued'" % art["id"]), [["1"]], "still one queued delivery job")

    r = a.req("GET", "/articles/%s/deliveries" % art["id"])
    tap.is_((r.status, r.json), (200, []), "no deliveries yet")
    env.sql("INSERT INTO webhook_deliveries (article_id, integration_id, attempt, url, status_code, error, duration_ms,"
            " created_at) VALUES ('%s', '%s', 1, 'https://example.com/hook', 503, 'HTTP 503', 120, now() - interval '1 minute'),"
            " ('%s', '%s', 2, 'https://example.com/hook', NULL, 'timeout after 30s', 30000, now())"
            % (art["id"], integ, art["id"], integ))
    r = a.req("GET", "/articles/%s/deliveries" % art["id"])
    d = r.json if isinstance(r.json, list) else []
    tap.is_([(x["attempt"], x["status_code"], x["error"], x["duration_ms"], x["integration_id"], x["url"]) for x in d],
            [(2, None, "timeout after 30s", 30000, integ, "https://example.com/hook"),
             (1, 503, "HTTP 503", 120, integ, "https://example.com/hook")], "deliveries newest first")
    tap.ok(all(set(x) == {"id", "attempt", "integration_id", "url", "status_code", "error", "duration_ms", "created_at"}
               for x in d), "delivery fields", d)
    r = a.req("GET", "/articles/%s/deliveries" % NOBODY)
    tap.is_((r.status, r.json), (404, {"detail": "Article not found"}), "deliveries of an unknown article: 404")


def test_campaign_articles(env, a, b):
    cid = env.sql("INSERT INTO campaigns (user_id, name, topic, articles_per_day, posting_times, start_date)"
                  " VALUES ('%s', 'c', 'gardening', 1, '{09:00}', current_date) RETURNING id" % a.id)[0][0]
    ids = [a.create("Campaign article %d" % i).json["id"] for i in range(2)]
    env.sql("UPDATE articles SET campaign_id = '%s', is_recurring = true WHERE id IN ('%s', '%s')" % (cid, ids[0], ids[1]))
    r = a.req("GET", "/campaigns/%s/articles" % cid)
    tap.is_((r.status, [x["id"] for x in r.json] if r.status == 200 else r.json), (200, ids[::-1]),
            "GET /campaigns/{id}/articles lists the campaign's articles newest first")
    tap.ok(all(x["campaign_id"] == cid and x["is_recurring"] is True for x in r.json), "with campaign_id set")
    tap.is_([x["id"] for x in a.req("GET", "/articles?campaign_id=" + cid).json], ids[::-1],
            "GET /articles?campaign_id= filters")
    r = b.req("GET", "/campaigns/%s/articles" % cid)
    tap.is_((r.status, r.json), (404, {"detail": "Campaign not found"}), "another user's campaign is 404")
    tap.is_(b.req("GET", "/articles?campaign_id=" + cid).json, [], "B filtering by A's campaign sees nothing")
    r = a.req("GET", "/campaigns/%s/articles" % NOBODY)
    tap.is_((r.status, r.json), (404, {"detail": "Campaign not found"}), "unknown campaign is 404")
    check_422(a.req("GET", "/campaigns/xyz/articles"), ("path", "campaign_id"), "malformed campaign id is 422")


def test_concurrent_spending(env):
    c = env.signup("spender")
    env.sql("UPDATE users SET credits = 0 WHERE id = '%s'" % c.id)  # start from a known ledger state below
    env.sql("DELETE FROM credit_transactions WHERE user_id = '%s'" % c.id)
    tap.is_(env.grant(c.id, 10), 10, "admin grant sets a balance of 10")
    results = []
    lock = threading.Lock()

    def worker(i):
        try:
            r = c.create("Parallel article number %d" % i)
            with lock:
                results.append((r.status, r.json))
        except Exception as e:  # noqa: BLE001
            with lock:
                results.append((None, str(e)))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    statuses = sorted(s for s, _ in results)
    tap.is_((statuses.count(201), statuses.count(402), len(statuses)), (10, 30, 40),
            "40 parallel creates with 10 credits: exactly 10 are 201 and 30 are 402")
    msgs = {j["detail"] for s, j in results if s == 402}
    tap.is_(msgs, {"Insufficient credits. Need 1, have 0"}, "the 402s carry the contract's message")
    tap.is_(c.credits(), 0, "the balance ends at 0")
    ok, info = ledger_consistent(c)
    tap.ok(ok, "the ledger sums to the balance", info)
    tap.is_(sorted(t["balance_after"] for t in c.ledger() if t["type"] == "usage"), list(range(10)),
            "each charge's balance_after is a distinct step from 9 down to 0")
    tap.is_(env.sql("SELECT count(*), coalesce(sum(amount), 0) FROM credit_transactions WHERE user_id = '%s'"
                    " AND type = 'usage'" % c.id), [["10", "-10"]], "ten usage rows in the database")
    tap.is_(env.sql("SELECT count(*) FROM articles WHERE user_id = '%s'" % c.id), [["10"]], "ten articles exist")
    tap.is_(env.sql("SELECT count(*) FROM jobs j JOIN articles a ON a.id = j.article_id WHERE a.user_id = '%s'" % c.id),
            [["10"]], "ten generate jobs exist")


def main():
    env = Env()
    a = env.signup("alice")
    b = env.signup("bob")
    test_auth_required(env, str(uuid.uuid4()))
    integ = a.integration()
    first = test_create(env, a, integ)
    env.grant(a.id, 100)
    test_create_errors(env, a, b)
    test_read(env, a, b, first)
    test_stats(env, a)
    test_patch(env, a, b, integ)
    test_delete(env, a)
    completed = test_internal_and_retry(env, a)
    test_deliver(env, a, integ, completed)
    test_campaign_articles(env, a, b)
    ok, info = ledger_consistent(a)
    tap.ok(ok, "A's ledger sums to A's balance at the end", info)
    test_concurrent_spending(env)
    tap.ok(env.srv.alive, "the server is still running")
    env.stop_clean()


run(main)
