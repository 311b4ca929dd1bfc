"""Idempotency-Key on POST /articles, /generate and /generate/batch (API.md section 2): replays return the first
response and create nothing; another body or endpoint with the key is 409; concurrent duplicates create one."""
import json
import threading

from articles_common import Env
from harness import run, tap

CONFLICT = {"detail": "Idempotency-Key reused with a different request"}


def count(env, user, table="articles"):
    return int(env.sql("SELECT count(*) FROM %s WHERE user_id = '%s'" % (table, user.id))[0][0])


def main():
    env = Env()
    a = env.signup("alice")
    b = env.signup("bob")
    body = {"query": "Idempotent article about tea", "category": "Drinks", "target_length": 800}

    r1 = a.req("POST", "/articles", body=body, headers={"Idempotency-Key": "key-1"})
    tap.is_(r1.status, 201, "first request with a key is 201")
    bal = a.credits()
    r2 = a.req("POST", "/articles", body=body, headers={"Idempotency-Key": "key-1"})
    tap.is_((r2.status, r2.raw), (201, r1.raw), "the same key and body replay the first response byte for byte")
    tap.is_(r2.headers.get("idempotent-replayed"), "true", "a replay says so in a header")
    tap.is_((count(env, a), a.credits()), (1, bal), "the replay created nothing and charged nothing")
    tap.is_(env.sql("SELECT count(*) FROM credit_transactions WHERE user_id = '%s' AND type = 'usage'" % a.id),
            [["1"]], "one charge in the ledger")

    # the same JSON serialized differently is the same request
    reordered = json.dumps({"target_length": 800, "category": "Drinks", "query": "Idempotent article about tea"},
                           indent=2)
    r = a.req("POST", "/articles", body=reordered, headers={"Idempotency-Key": "key-1",
                                                            "Content-Type": "application/json"})
    tap.is_((r.status, r.raw), (201, r1.raw), "reordered keys and whitespace still replay")

    r = a.req("POST", "/articles", body=dict(body, target_length=900), headers={"Idempotency-Key": "key-1"})
    tap.is_((r.status, r.json), (409, CONFLICT), "the same key with a different body is 409")
    r = a.req("POST", "/generate", body=body, headers={"Idempotency-Key": "key-1"})
    tap.is_((r.status, r.json), (409, CONFLICT), "the same key on another endpoint is 409")
    tap.is_(count(env, a), 1, "409s created nothing")

    # keys are per user
    r = b.req("POST", "/articles", body=body, headers={"Idempotency-Key": "key-1"})
    tap.is_((r.status, r.json.get("id") != r1.json["id"]), (201, True), "another user's same key is independent")

    # no key: two creates
    a.req("POST", "/articles", body=body)
    a.req("POST", "/articles", body=body)
    tap.is_(count(env, a), 3, "without a key every request creates")

    # a request that failed (402) does not bind the key
    env.sql("UPDATE users SET credits = 0 WHERE id = '%s'" % a.id)
    r = a.req("POST", "/articles", body=body, headers={"Idempotency-Key": "broke"})
    tap.is_(r.status, 402, "402 with a key")
    env.grant(a.id, 5)
    r = a.req("POST", "/articles", body=body, headers={"Idempotency-Key": "broke"})
    tap.is_(r.status, 201, "after a 402 the same key runs afresh once credits exist")
    r2 = a.req("POST", "/articles", body=body, headers={"Idempotency-Key": "broke"})
    tap.is_((r2.status, r2.raw), (201, r.raw), "and is then replayed")

    # validation errors do not bind the key either
    r = a.req("POST", "/articles", body={"query": "x"}, headers={"Idempotency-Key": "invalid-first"})
    tap.is_(r.status, 422, "422 with a key")
    r = a.req("POST", "/articles", body=body, headers={"Idempotency-Key": "invalid-first"})
    tap.is_(r.status, 201, "a key used by a 422 can be used for a valid request")

    r = a.req("POST", "/articles", body=body, headers={"Idempotency-Key": "k" * 256})
    tap.is_((r.status, r.json["detail"][0]["loc"] if r.status == 422 else r.json), (422, ["header", "idempotency-key"]),
            "a key over 255 characters is 422")
    r = a.req("POST", "/articles", body=body, headers={"Idempotency-Key": "k" * 255})
    tap.is_(r.status, 201, "a key of 255 characters is fine")

    # expiry: a key older than 24 h no longer binds
    env.sql("UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'key-1'"
            " AND user_id = '%s'" % a.id)
    n = count(env, a)
    r = a.req("POST", "/articles", body=body, headers={"Idempotency-Key": "key-1"})
    tap.is_((r.status, r.json.get("id") != r1.json["id"], count(env, a)), (201, True, n + 1),
            "after 24 h the key creates a new article")

    # the window between commit and the stored response: duplicates render the created resource
    env.sql("UPDATE idempotency_keys SET response_status = NULL, response_body = NULL WHERE key = 'key-1'"
            " AND user_id = '%s'" % a.id)
    r2 = a.req("POST", "/articles", body=body, headers={"Idempotency-Key": "key-1"})
    tap.is_((r2.status, r2.json.get("id")), (201, r.json["id"]), "a key without a stored response renders its article")

    # concurrent duplicates with one key: exactly one article, one charge
    env.grant(a.id, 20)
    before_articles, before_credits = count(env, a), a.credits()
    results = []
    lock = threading.Lock()

    def worker():
        rr = a.req("POST", "/articles", body={"query": "Raced article"}, headers={"Idempotency-Key": "race"})
        with lock:
            results.append(rr)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ids = {rr.json.get("id") for rr in results if rr.status == 201}
    tap.is_(([rr.status for rr in results].count(201), len(ids)), (16, 1),
            "16 concurrent requests with one key all answer 201 with the same article")
    tap.is_((count(env, a) - before_articles, before_credits - a.credits()), (1, 1), "one article, one credit")

    # /generate/batch
    t1, t2 = a.title("A title for the batch replay one"), a.title("A title for the batch replay two")
    bbody = {"title_ids": [t1, t2], "category": "Batch"}
    r1 = a.req("POST", "/generate/batch", body=bbody, headers={"Idempotency-Key": "batch-1"})
    tap.is_((r1.status, r1.json.get("message")), (200, "Created 2 articles"), "batch with a key")
    n, bal = count(env, a), a.credits()
    r2 = a.req("POST", "/generate/batch", body=bbody, headers={"Idempotency-Key": "batch-1"})
    tap.is_((r2.status, r2.raw, count(env, a), a.credits()), (200, r1.raw, n, bal), "batch replay creates nothing")
    r = a.req("POST", "/generate/batch", body={"title_ids": [t1]}, headers={"Idempotency-Key": "batch-1"})
    tap.is_((r.status, r.json), (409, CONFLICT), "batch key with another body is 409")
    tap.ok(env.srv.alive, "the server is still running")
    env.stop_clean()


run(main)
