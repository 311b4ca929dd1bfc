"""Exactly-once delivery at scale (API.md sections 1 and 6): two server processes on one database, 500 articles
completed from outside as fast as a thread pool can (half through each process); every article reaches the
sink exactly once and webhook_deliveries holds one successful attempt per article."""
import collections
import json
import time
from concurrent.futures import ThreadPoolExecutor

from articles_common import ADMIN_TOKEN, INTERNAL_SECRET, Env, User
from harness import Postgres, Server, run, tap, wait_until
from webhooks_common import body_bytes, integration, server_env, stub_stalled

N = 500


class Pair:
    """Two servers on one database (articles_common.User needs srv and sql)."""

    def __init__(self, pg, db, servers):
        self.pg, self.db, self.servers = pg, db, servers
        self.srv = servers[0]

    def sql(self, q):
        return self.pg.query(q, url=self.db)


def main():
    stub = stub_stalled()
    pg = Postgres.shared()
    db = pg.fresh_database()
    env = server_env(stub, {"SIGNUP_CREDITS": str(N + 10), "INTERNAL_SECRET": INTERNAL_SECRET,
                            "ADMIN_TOKEN": ADMIN_TOKEN, "JWT_SECRET": "scale-test-" + "s" * 24,
                            "LOG_LEVEL": "info", "WEBHOOK_SWEEP_INTERVAL_S": "5"})
    servers = [Server(db, env=env).start(), Server(db, env=env).start()]
    pair = Pair(pg, db, servers)
    r = servers[0].request("POST", "/auth/signup", body={"email": "s@example.com", "username": "scale",
                                                        "password": "correct horse battery"})
    user = User(pair, r.json["user"]["id"], r.json["access_token"])
    integ = integration(user, stub.hook("scale"))

    def create(i):
        srv = servers[i % 2]
        return srv.request("POST", "/articles", body={"query": "Scale article number %d" % i,
                                                      "webhook_integration_id": integ},
                           headers={"Authorization": "Bearer " + user.token}, timeout=30)

    def complete(i_aid):
        i, aid = i_aid
        return servers[i % 2].request("POST", "/internal/article-complete",
                                      body={"article_id": aid, "tokens_used": 5, "status": "completed",
                                            "content": "# Scale %d\n\nbody" % i},
                                      headers={"X-Internal-Secret": INTERNAL_SECRET}, timeout=30)

    with ThreadPoolExecutor(16) as pool:
        made = list(pool.map(create, range(N)))
        ok = [r for r in made if r.status == 201]
        tap.is_(len(ok), N, "%d articles created through both servers" % N)
        ids = [r.json["id"] for r in ok]
        t0 = time.time()
        done = list(pool.map(complete, enumerate(ids)))
    tap.is_(sum(1 for r in done if r.status == 200), len(ids), "all completed via POST /internal/article-complete "
            "(%.1f s)" % (time.time() - t0))

    def received():
        recs = stub.received("scale")
        return recs if len(recs) >= len(ids) else None

    recs = wait_until(received, 90, 0.5) or stub.received("scale")
    tap.diag("%d deliveries %.1f s after the first completion" % (len(recs), time.time() - t0))
    time.sleep(2)  # a duplicate would arrive now
    recs = stub.received("scale")
    got = collections.Counter(json.loads(body_bytes(r))["article_id"] for r in recs)
    tap.is_(len(recs), len(ids), "the sink received exactly %d requests" % len(ids))
    tap.is_(set(got), set(ids), "one per article: %d distinct article ids" % len(set(got)))
    tap.is_([k for k, v in got.items() if v > 1], [], "no article delivered twice")
    tap.is_(len({r["headers"].get("webhook-id") for r in recs}), len(ids), "distinct webhook-ids")
    rows = pair.sql("SELECT count(*), count(DISTINCT article_id), coalesce(bool_and(success), false)::text,"
                    " count(*) FILTER (WHERE attempt = 1) FROM webhook_deliveries")
    tap.is_(rows, [[str(len(ids)), str(len(ids)), "true", str(len(ids))]],
            "webhook_deliveries: %d rows, one per article, all successful first attempts" % len(ids))
    tap.diag("attempt durations ms (avg, max) and span of deliveries s: %s" % pair.sql(
        "SELECT round(avg(duration_ms)), max(duration_ms), round(extract(epoch FROM max(created_at) - min(created_at)), 2)"
        " FROM webhook_deliveries"))
    tap.diag("delivery jobs: %s" % pair.sql("SELECT state, count(*), round(avg(attempts), 2) FROM jobs"
                                            " WHERE kind = 'deliver_webhook' GROUP BY state"))
    rows = pair.sql("SELECT status, count(*) FROM articles GROUP BY status")
    tap.is_(rows, [["posted", str(len(ids))]], "every article is posted")
    per = [sum(1 for line in s.log_lines() if "posted (attempt" in line) for s in servers]
    tap.is_(sum(per), len(ids), "the servers' logs report %d postings in all" % len(ids))
    tap.diag("postings per server: %s" % per)
    for i, s in enumerate(servers):
        code, _ = s.stop()
        tap.is_(code, 0, "server %d exits 0 on SIGTERM" % (i + 1))


run(main)
