"""PATCH /titles/{id}/verify and POST /generate/batch (API.md section 4): approval, isolation, all-or-nothing
charging."""
import uuid

from articles_common import Env, check_422, ledger_consistent
from harness import run, tap

NOBODY = str(uuid.uuid4())


def main():
    env = Env()
    a = env.signup("alice")
    b = env.signup("bob")

    for method, path in (("PATCH", "/titles/%s/verify" % NOBODY), ("POST", "/generate/batch")):
        r = env.srv.request(method, path, body={})
        tap.is_((r.status, r.json), (401, {"detail": "Not authenticated"}), "%s %s needs auth" % (method, path))

    t = a.title("Ten ways to grow tomatoes on a small city balcony", status="generated")
    r = a.req("PATCH", "/titles/%s/verify" % t, body={"title": "Ten ways to grow tomatoes on a balcony",
                                                       "status": "approved"})
    tap.is_((r.status, r.json.get("success")), (200, True), "verify is 200")
    got = r.json.get("title", {})
    tap.is_((set(got), got.get("id"), got.get("title"), got.get("status"), got.get("description")),
            ({"id", "title", "description", "status", "created_at"}, t, "Ten ways to grow tomatoes on a balcony",
             "approved", "desc"), "verify returns the title with the new wording and status")
    r = a.req("PATCH", "/titles/%s/verify" % t, body={"status": "rejected"})
    tap.is_((r.status, r.json["title"]["status"], r.json["title"]["title"]),
            (200, "rejected", "Ten ways to grow tomatoes on a balcony"), "reject keeps the title when none is sent")
    check_422(a.req("PATCH", "/titles/%s/verify" % t, body={"status": "maybe"}), ("body", "status"),
              "status other than approved|rejected is 422")
    check_422(a.req("PATCH", "/titles/%s/verify" % t, body={"title": "x"}), ("body", "status"), "status required")
    check_422(a.req("PATCH", "/titles/%s/verify" % t, body={"title": "", "status": "approved"}), ("body", "title"),
              "empty title is 422")
    check_422(a.req("PATCH", "/titles/nope/verify", body={"status": "approved"}), ("path", "title_id"),
              "malformed title id is 422")
    r = b.req("PATCH", "/titles/%s/verify" % t, body={"status": "approved"})
    tap.is_((r.status, r.json), (404, {"detail": "Title not found"}), "another user's title is 404")
    r = a.req("PATCH", "/titles/%s/verify" % NOBODY, body={"status": "approved"})
    tap.is_((r.status, r.json), (404, {"detail": "Title not found"}), "an unknown title is 404")
    tap.is_(env.sql("SELECT status FROM titles WHERE id = '%s'" % t), [["rejected"]], "B's attempt changed nothing")

    # batch
    titles = [a.title("Approved title number %d for the batch" % i) for i in range(3)]
    integ = a.integration()
    bal = a.credits()
    r = a.req("POST", "/generate/batch", body={"title_ids": titles, "category": "Garden", "target_length": 900,
                                               "source_count": 3, "timezone": "Europe/Berlin",
                                               "scheduled_at": "2030-06-01T12:00", "webhook_integration_id": integ})
    tap.is_((r.status, r.json.get("success"), r.json.get("message"), len(r.json.get("article_ids", []))),
            (200, True, "Created 3 articles", 3), "batch of 3 approved titles")
    ids = r.json.get("article_ids", [])
    tap.is_(a.credits(), bal - 3, "three credits charged")
    arts = [a.req("GET", "/articles/" + i).json for i in ids]
    tap.is_([(x["topic"], x["raw_query"], x["category"], x["target_length"], x["source_count"], x["timezone"],
              x["scheduled_at"], x["webhook_integration_id"], x["status"]) for x in arts],
            [("Approved title number %d for the batch" % i, "Approved title number %d for the batch" % i, "Garden",
              900, 3, "Europe/Berlin", "2030-06-01T10:00:00.000000Z", integ, "queued") for i in range(3)],
            "one article per title in order, with the batch's options")
    tap.is_([x["title"] for x in arts], ["Approved title number %d for the batch" % i for i in range(3)],
            "each article's title is its approved title from the start")
    tap.is_(env.sql("SELECT count(*) FROM jobs WHERE kind = 'generate_article' AND article_id IN ('%s')"
                    % "','".join(ids)), [["3"]], "a generate job per article")
    ok, info = ledger_consistent(a)
    tap.ok(ok, "ledger consistent after the batch", info)

    r = a.req("POST", "/generate/batch", body={"title_ids": [titles[0], titles[0]]})
    tap.is_((r.status, r.json.get("message")), (200, "Created 1 article"), "a title named twice makes one article")

    bal, n = a.credits(), len(a.req("GET", "/articles").json)
    for desc, ids_ in (("a rejected title", [titles[1], t]), ("another user's title", [titles[1], b.title("Bob owns this approved title")]),
                       ("an unknown title", [titles[1], NOBODY]),
                       ("a generated (unapproved) title", [a.title("Not approved yet", status="generated")])):
        r = a.req("POST", "/generate/batch", body={"title_ids": ids_})
        tap.is_((r.status, r.json), (400, {"detail": "Some titles not found"}), "batch with %s is 400" % desc)
    tap.is_((a.credits(), len(a.req("GET", "/articles").json)), (bal, n), "refused batches create and charge nothing")

    r = a.req("POST", "/generate/batch", body={"title_ids": titles, "webhook_integration_id": b.integration()})
    tap.is_((r.status, r.json), (404, {"detail": "Integration not found"}), "batch with B's integration is 404")
    check_422(a.req("POST", "/generate/batch", body={"title_ids": []}), ("body", "title_ids"), "empty title_ids: 422")
    check_422(a.req("POST", "/generate/batch", body={}), ("body", "title_ids"), "missing title_ids: 422")
    check_422(a.req("POST", "/generate/batch", body={"title_ids": "abc"}), ("body", "title_ids"), "not a list: 422")
    check_422(a.req("POST", "/generate/batch", body={"title_ids": ["x"]}), ("body", "title_ids"), "bad uuid: 422")
    check_422(a.req("POST", "/generate/batch", body={"title_ids": [NOBODY] * 101}), ("body", "title_ids"),
              "more than 100 ids: 422")
    check_422(a.req("POST", "/generate/batch", body={"title_ids": titles, "timezone": "Nowhere/Land"}),
              ("body", "timezone"), "bad timezone: 422")
    check_422(a.req("POST", "/generate/batch", body={"title_ids": titles, "source_count": 99}),
              ("body", "source_count"), "bad source_count: 422")

    # all or nothing: 3 titles, 2 credits
    env.sql("UPDATE users SET credits = 2 WHERE id = '%s'" % a.id)
    n = len(a.req("GET", "/articles?limit=200").json)
    r = a.req("POST", "/generate/batch", body={"title_ids": titles})
    tap.is_((r.status, r.json), (402, {"detail": "Insufficient credits. Need 3, have 2"}), "batch short of credits: 402")
    tap.is_((a.credits(), len(a.req("GET", "/articles?limit=200").json)), (2, n), "nothing created, nothing charged")
    tap.ok(env.srv.alive, "the server is still running")
    env.stop_clean()


run(main)
