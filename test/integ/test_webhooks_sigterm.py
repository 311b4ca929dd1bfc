"""SIGTERM never sends a webhook twice (issue 9, point 2). Webhooks already sent when SIGTERM arrives wait for
the receiver's answer, up to SHUTDOWN_TIMEOUT_S, and are recorded like any attempt: after a restart nothing is
sent again. One still unanswered at that deadline is recorded as a failed attempt, "interrupted by shutdown",
and its next attempt is queued (the restarted process sends it)."""
import collections
import json
import time
from concurrent.futures import ThreadPoolExecutor

from articles_common import Env
from harness import Server, run, tap, wait_until
from webhooks_common import body_bytes, complete, integration, server_env, stub_stalled, wait_received


def restart(env):
    """A new server process on the same database with the same settings."""
    settings = {k: v for k, v in env.srv.env.items() if k not in ("PORT", "DATABASE_URL")}
    env.srv = Server(env.db, env=settings).start()
    return env.srv


def in_flight(env, user, integ, sink, stub, n):
    """n completed articles whose deliveries all reached the sink (which holds its answers): returns the ids."""
    ids = []
    for i in range(n):
        r = user.create("Shutdown delivery article number %d" % i, webhook_integration_id=integ)
        if r.status != 201:
            raise RuntimeError("POST /articles failed: %r" % (r,))
        ids.append(r.json["id"])
    # Completed together, so every delivery is in flight at once.
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(lambda aid: complete(env, aid, "# Shutdown\n\nbody"), ids))
    recs = wait_received(stub, sink, n, 15)
    tap.is_(len(recs), n, "%s: all %d deliveries reached the receiver" % (sink, n))
    return ids


def per_article(env, sql_where=""):
    return env.sql("SELECT article_id, attempt, success::text, coalesce(error, '') FROM webhook_deliveries %s"
                   " ORDER BY article_id, attempt" % sql_where)


def answered(env, user, stub):
    """20 deliveries in flight to a receiver answering after 3 s; SIGTERM with SHUTDOWN_TIMEOUT_S=10."""
    n = 20
    integ = integration(user, stub.hook("slow", hang=3))
    ids = in_flight(env, user, integ, "slow", stub, n)
    rows_before = env.sql("SELECT count(*) FROM webhook_deliveries")[0][0]
    tap.is_(rows_before, "0", "no attempt is answered yet when SIGTERM arrives")
    code, took = env.srv.stop()
    tap.is_(code, 0, "SIGTERM: the server exits 0")
    tap.ok(2 <= took <= 10, "it waited for the receiver's answers, within the shutdown timeout (%.1f s)" % took)
    log = env.srv.log()
    tap.ok("waiting for the receiver's answer" in log, "the log says deliveries wait for their answers")
    rows = per_article(env)
    tap.is_(len(rows), n, "every answered attempt is recorded before the process exits (%d rows)" % len(rows))
    tap.ok(all(r[2] == "true" for r in rows), "all recorded as successful", rows[:3])
    posted = env.sql("SELECT count(*) FROM articles WHERE status = 'posted'")[0][0]
    tap.is_(posted, str(n), "all %d articles are posted" % n)

    restart(env)
    time.sleep(4)  # a re-sent delivery (retry delay 1 s, or the hand-back) would have arrived by now
    recs = stub.received("slow")
    got = collections.Counter(json.loads(body_bytes(r))["article_id"] for r in recs)
    tap.diag("receipts after SIGTERM and restart: %d for %d articles" % (len(recs), n))
    tap.is_(len(recs), n, "exactly %d receipts after SIGTERM and a restart" % n)
    tap.is_({k: v for k, v in got.items() if v != 1}, {}, "each article received once")
    tap.is_(set(got), set(ids), "one per article")
    rows = per_article(env)
    tap.is_(len(rows), n, "webhook_deliveries: still %d rows" % n)
    tap.is_(len({r[0] for r in rows}), n, "each article recorded once")
    code, _ = env.srv.stop()
    tap.is_(code, 0, "the restarted server exits 0 on SIGTERM")


def interrupted(stub):
    """Deliveries still unanswered at the shutdown deadline: recorded as interrupted, sent again after."""
    n = 5
    env = Env(server_env(stub, {"SHUTDOWN_TIMEOUT_S": "2", "WEBHOOK_TIMEOUT_S": "20", "LOG_LEVEL": "info"}))
    user = env.signup("hung")
    integ = integration(user, stub.hook("stuck", hang=8))
    ids = in_flight(env, user, integ, "stuck", stub, n)
    code, took = env.srv.stop()
    tap.is_(code, 0, "deadline: the server exits 0")
    tap.ok(took < 6, "it stopped at the shutdown deadline, not at the receiver's answer (%.1f s)" % took)
    rows = per_article(env)
    tap.is_(rows, sorted([aid, "1", "false", "interrupted by shutdown"] for aid in ids),
            "each unanswered attempt is recorded once, as 'interrupted by shutdown'")
    arts = env.sql("SELECT count(*) FROM articles WHERE status = 'completed' AND posting_attempt_count = 1"
                   " AND last_posting_error = 'interrupted by shutdown'")[0][0]
    tap.is_(arts, str(n), "the articles wait for their next attempt, one attempt used")
    queued = env.sql("SELECT count(*) FROM jobs WHERE kind = 'deliver_webhook' AND state = 'queued'")[0][0]
    tap.is_(queued, str(n), "their next attempts are queued")

    stub.hook("stuck", hang=0)
    restart(env)
    done = wait_until(lambda: env.sql("SELECT count(*) FROM articles WHERE status = 'posted'")[0][0] == str(n),
                      20, 0.2)
    tap.ok(done, "after the restart every article is posted")
    rows = per_article(env)
    tap.is_([r[1:] for r in rows], [["1", "false", "interrupted by shutdown"], ["2", "true", ""]] * n,
            "per article: the interrupted attempt, then one successful attempt")
    tap.is_(len(stub.received("stuck")), 2 * n, "the receiver got each article twice (sent, interrupted, resent)")
    env.stop_clean()


def main():
    stub = stub_stalled()
    env = Env(server_env(stub, {"SHUTDOWN_TIMEOUT_S": "10", "WEBHOOK_TIMEOUT_S": "8", "LOG_LEVEL": "info",
                                "SIGNUP_CREDITS": "50"}))
    user = env.signup("sigterm")
    answered(env, user, stub)
    interrupted(stub)


run(main)
