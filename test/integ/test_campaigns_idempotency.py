"""Idempotency-Key on POST /campaigns (API.md section 2): a replay answers the first response and creates no
second campaign nor a second integration for its webhook_url; another body with the key is 409; concurrent
duplicates create one campaign; keys are per user; a refused first request (402, 404) does not bind the key."""
import threading

from articles_common import Env
from harness import run, tap

CONFLICT = {"detail": "Idempotency-Key reused with a different request"}


def base(**kw):
    b = {"name": "Garden weekly", "topic": "organic gardening", "articles_per_day": 2,
         "posting_times": ["09:00", "17:30"], "start_date": "2030-06-15"}
    b.update(kw)
    return b


def count(env, user, table="campaigns"):
    return int(env.sql("SELECT count(*) FROM %s WHERE user_id = '%s'" % (table, user.id))[0][0])


def main():
    env = Env()
    a = env.signup("alice")
    b = env.signup("bob")
    key = {"Idempotency-Key": "camp-1"}

    # -- replay --
    r1 = a.req("POST", "/campaigns", body=base(), headers=key)
    tap.is_((r1.status, r1.headers.get("idempotent-replayed")), (201, None), "first request with a key is 201")
    r2 = a.req("POST", "/campaigns", body=base(), headers=key)
    tap.is_((r2.status, r2.raw), (201, r1.raw), "the same key and body replay the first response byte for byte")
    tap.is_(r2.headers.get("idempotent-replayed"), "true", "a replay says so in a header")
    r = a.req("GET", "/campaigns")
    tap.is_([c["id"] for c in r.json], [r1.json["id"]], "GET /campaigns shows one campaign")
    r = a.req("POST", "/campaigns", body=base(name="Other name"), headers=key)
    tap.is_((r.status, r.json), (409, CONFLICT), "the same key with a different body is 409")
    r = a.req("POST", "/articles", body={"query": "Something else"}, headers=key)
    tap.is_((r.status, r.json), (409, CONFLICT), "the same key on POST /articles is 409")
    tap.is_(count(env, a), 1, "the 409s created nothing")

    # -- keys are per user --
    r = b.req("POST", "/campaigns", body=base(), headers=key)
    tap.is_((r.status, r.json.get("user_id"), r.json.get("id") != r1.json["id"]), (201, b.id, True),
            "another user's same key creates that user's own campaign")
    tap.is_((count(env, a), count(env, b)), (1, 1), "one campaign each")

    # -- with a webhook_url: the replay creates no second integration --
    hooked = base(name="Hooked", webhook_url="https://hooks.example.com/in")
    r1 = a.req("POST", "/campaigns", body=hooked, headers={"Idempotency-Key": "hooked"})
    tap.is_((r1.status, r1.json.get("webhook_url")), (201, "https://hooks.example.com/in"),
            "a campaign with a webhook_url and a key")
    r2 = a.req("POST", "/campaigns", body=hooked, headers={"Idempotency-Key": "hooked"})
    tap.is_((r2.status, r2.raw), (201, r1.raw), "its replay is identical")
    tap.is_((count(env, a), count(env, a, "webhook_integrations")), (2, 1),
            "two campaigns in all, one integration created")

    # -- the window between commit and the stored response: the campaign is rendered from the database --
    env.sql("UPDATE idempotency_keys SET response_status = NULL, response_body = NULL"
            " WHERE key = 'hooked' AND user_id = '%s'" % a.id)
    r = a.req("POST", "/campaigns", body=hooked, headers={"Idempotency-Key": "hooked"})
    tap.is_((r.status, r.json, r.headers.get("idempotent-replayed")), (201, r1.json, "true"),
            "a key without a stored response renders its campaign (201, the same Campaign)")
    tap.is_(count(env, a), 2, "rendering created nothing")

    # -- refused first requests do not bind the key --
    env.sql("UPDATE users SET credits = 0 WHERE id = '%s'" % a.id)
    r = a.req("POST", "/campaigns", body=base(name="Broke"), headers={"Idempotency-Key": "broke"})
    tap.is_(r.status, 402, "402 with a key")
    env.grant(a.id, 10)
    r1 = a.req("POST", "/campaigns", body=base(name="Broke"), headers={"Idempotency-Key": "broke"})
    tap.is_(r1.status, 201, "after a 402 the same key runs afresh")
    r2 = a.req("POST", "/campaigns", body=base(name="Broke"), headers={"Idempotency-Key": "broke"})
    tap.is_((r2.status, r2.raw), (201, r1.raw), "and is then replayed")
    bobs = b.integration()
    r = a.req("POST", "/campaigns", body=base(webhook_integration_id=bobs), headers={"Idempotency-Key": "foreign"})
    tap.is_((r.status, r.json), (404, {"detail": "Integration not found"}), "another user's integration is 404")
    tap.is_(env.sql("SELECT count(*) FROM idempotency_keys WHERE key = 'foreign'"), [["0"]],
            "... and the 404 left no key behind")
    own = a.integration()
    r = a.req("POST", "/campaigns", body=base(webhook_integration_id=own), headers={"Idempotency-Key": "foreign"})
    tap.is_((r.status, r.json.get("webhook_integration_id")), (201, own), "the key is free for an own integration")
    r = a.req("POST", "/campaigns", body=base(), headers={"Idempotency-Key": "k" * 256})
    tap.is_((r.status, r.json["detail"][0]["loc"] if r.status == 422 else r.json), (422, ["header", "idempotency-key"]),
            "a key over 255 characters is 422")

    # -- concurrent duplicates: one campaign, one integration --
    before_camps, before_integs = count(env, a), count(env, a, "webhook_integrations")
    raced = base(name="Raced", webhook_url="https://race.example.com/in")
    results = []
    lock = threading.Lock()

    def worker():
        rr = a.req("POST", "/campaigns", body=raced, headers={"Idempotency-Key": "race"}, timeout=30)
        with lock:
            results.append(rr)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ids = {rr.json.get("id") for rr in results if rr.status == 201}
    tap.is_(([rr.status for rr in results], len(ids)), ([201] * 10, 1),
            "10 concurrent requests with one key all answer 201 with the same campaign")
    tap.is_((count(env, a) - before_camps, count(env, a, "webhook_integrations") - before_integs), (1, 1),
            "exactly one campaign and one integration were created")
    r = a.req("GET", "/campaigns?limit=200")
    tap.is_(sum(1 for c in r.json if c["name"] == "Raced"), 1, "GET /campaigns lists the raced campaign once")

    tap.ok(env.srv.alive, "the server is still running")
    env.stop_clean()


run(main)
