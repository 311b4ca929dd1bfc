"""POST /generate/titles against the stub LLM: one call, distinct 50-80 character titles, errors as 503."""

import time

from harness import Postgres, Server, run, tap
from stubutil import Stub


def signup(srv, name):
    r = srv.request("POST", "/auth/signup", {"email": name + "@example.com", "username": name,
                                              "password": "password-" + name})
    tap.is_(r.status, 200, "signup %s" % name)
    return {"Authorization": "Bearer " + r.json["access_token"]}


def main():
    pg = Postgres.shared()
    stub = Stub().start()
    db = pg.fresh_database()
    srv = Server(db, env=stub.server_env()).start()
    alice = signup(srv, "alice")

    r = srv.request("POST", "/generate/titles", {"description": "home espresso for beginners", "count": 3},
                    headers=alice)
    tap.is_(r.status, 200, "titles generated")
    titles = r.json
    tap.is_(len(titles), 3, "three titles, as asked")
    texts = [t["title"] for t in titles]
    tap.is_(len(set(x.lower() for x in texts)), 3, "distinct")
    tap.ok(all(50 <= len(x) <= 80 for x in texts), "each 50-80 characters", repr(texts))
    tap.ok(all(t["status"] == "generated" and t["description"] == "home espresso for beginners" for t in titles),
           "stored as generated with the description")
    tap.ok(all(t["created_at"].endswith("Z") for t in titles), "timestamps in UTC")
    tap.is_(stub.stats()["llm_calls"]["titles"], 1, "one LLM call")

    r = srv.request("POST", "/generate/titles", {"description": "x"}, headers=alice)
    tap.is_(r.status, 422, "description too short")
    r = srv.request("POST", "/generate/titles", {"description": "coffee", "count": 6}, headers=alice)
    tap.is_(r.status, 422, "count over 5")
    tap.is_(r.json["detail"][0]["loc"], ["body", "count"], "loc names count")
    r = srv.request("POST", "/generate/titles", {"description": "coffee"})
    tap.is_(r.status, 401, "needs authentication")

    # Every second call is a 429 with Retry-After: 1: the first request passes at once, the second is retried
    # after the delay and still succeeds.
    stub.control(rate_limit_every=2, retry_after=1)
    r = srv.request("POST", "/generate/titles", {"description": "cold brew at scale", "count": 2}, headers=alice)
    tap.is_(r.status, 200, "first call passes")
    t0 = time.monotonic()
    r = srv.request("POST", "/generate/titles", {"description": "iced coffee", "count": 2}, headers=alice,
                    timeout=30)
    tap.is_(r.status, 200, "succeeds after a rate-limited attempt")
    tap.ok(time.monotonic() - t0 >= 0.9, "Retry-After was honoured before the retry")
    tap.is_(stub.stats()["llm_calls"]["titles"], 4, "1 + 1 + 2 attempts reached the LLM")
    stub.control(rate_limit_every=0)

    # A key the provider refuses is not retried and the caller learns why.
    stub.control(llm_key="another-key")
    r = srv.request("POST", "/generate/titles", {"description": "latte art basics", "count": 2}, headers=alice)
    tap.is_(r.status, 503, "provider refusal answers 503")
    tap.like(r.json["detail"], r"Title generation failed: llm: HTTP 401", "detail carries the provider's error")
    stub.control(llm_key=None)

    # Replies that are not JSON fail clearly, never with placeholder titles.
    stub.control(invalid_json_every=1)
    r = srv.request("POST", "/generate/titles", {"description": "pour over", "count": 2}, headers=alice)
    tap.is_(r.status, 503, "broken JSON answers 503")
    tap.like(r.json["detail"], r"not JSON", "and says so")
    stub.control(invalid_json_every=0)

    rows = pg.query("SELECT count(*) FROM titles", url=db)
    tap.is_(rows[0][0], "7", "only successful generations were stored (3 + 2 + 2)")


run(main)
