"""kill -9 of the server with 50 articles in flight, then a restart on the same database: every article
completes exactly once, resumed from its last persisted stage, each LLM stage paid once (a reply that was in
flight at the kill instant is the only possible extra), one usage row per article and no refunds."""

import signal
import time

from harness import Postgres, run, tap, wait_until
from pipeline_common import Site, check_stopped
from stubutil import Stub

N = 50


def main():
    pg = Postgres.shared()
    stub = Stub().start()
    site = Site(pg, pg.fresh_database())
    # Every provider call takes 300 ms, so at the kill the articles are spread over the stages.
    env = dict(WORKER_CONCURRENCY=64, JOB_LEASE_S=3, LOG_LEVEL="info")
    srv = site.start(stub, **env)
    bob = site.signup("bob")
    site.grant(bob.id, N)
    tap.is_(bob.credits(), N + 10, "bob has %d credits" % (N + 10))
    stub.reset()
    stub.control(latency_ms=300)

    ids = []
    for i in range(N):
        r = bob.create("Restart resilience topic number %d for home gardeners" % i, source_count=3,
                       target_length=600)
        if r.status != 201:
            tap.ok(False, "create article %d" % i, r)
            return
        ids.append(r.json["id"])
    tap.is_(len(ids), N, "%d articles created" % N)

    # Kill once a handful of briefs were paid for: some articles are writing, others still researching.
    got = wait_until(lambda: stub.stats()["llm_replies"]["brief"] >= 8, 30, 0.02)
    tap.ok(got, "the pipeline got going before the kill")
    srv.send_signal(signal.SIGKILL)
    srv.proc.wait(10)
    tap.ok(not srv.alive, "server killed with SIGKILL")

    rows = site.sql("SELECT status, count(*) FROM articles GROUP BY status ORDER BY status")
    at_kill = {s: int(n) for s, n in rows}
    tap.diag("statuses at the kill: %s" % at_kill)
    mid = sum(n for s, n in at_kill.items() if s in ("researching", "scraping", "analyzing", "writing"))
    tap.ok(mid >= 10, "at least 10 articles were mid-pipeline at the kill (%d)" % mid)
    tap.ok(at_kill.get("completed", 0) < N, "not all were completed before the kill")
    running = int(site.sql("SELECT count(*) FROM jobs WHERE state = 'running'")[0][0])
    tap.ok(running >= 10, "their jobs were left running by the dead process (%d)" % running)

    # What the dead process had persisted: research results, briefs, finished articles.
    persisted = dict(zip(("research", "brief", "article"), (int(x) for x in site.sql(
        "SELECT count(*) FILTER (WHERE research_results IS NOT NULL), count(*) FILTER (WHERE brief IS NOT NULL),"
        "       count(*) FILTER (WHERE status = 'completed') FROM articles")[0])))
    tap.diag("persisted at the kill: %s" % persisted)
    # Calls the stub had accepted still get answered (and counted) after the client died; wait for them.
    def settled():
        s = stub.stats()
        return s if all(s["llm_calls"][k] == s["llm_replies"][k] for k in s["llm_calls"]) else None
    s_kill = wait_until(settled, 10, 0.05)
    tap.ok(s_kill is not None, "the stub answered every call the dead process made")
    tap.diag("stub at the kill: calls %s replies %s search %d" % (s_kill["llm_calls"], s_kill["llm_replies"],
                                                                 s_kill["search_calls"]))

    srv = site.start(stub, **env)
    done = bob.wait_all_final(ids, timeout=60)
    statuses = {}
    for a in done.values():
        statuses[a["status"]] = statuses.get(a["status"], 0) + 1
    tap.is_(statuses, {"completed": N}, "all %d articles completed after the restart" % N)
    tap.is_(len(done), N, "every article is listed")
    tap.ok(all((a["content"] or "").startswith("# ") and a["word_count"] > 0 for a in done.values()),
           "each has its content")
    tap.ok(all(a["tokens_used"] == a["prompt_tokens"] + a["completion_tokens"] > 0 for a in done.values()),
           "each has consistent token counts")
    tap.ok(all(1 <= len(a["sources"]) <= 3 for a in done.values()), "each has 1-3 sources")

    jobs = site.generate_jobs()
    tap.is_(sorted(jobs), sorted(ids), "every article has generation job rows")
    bad = {k: v for k, v in jobs.items() if v != ["done"]}
    tap.is_(bad, {}, "each article has exactly one generate job, done (a rescued job is the same row, re-run)")

    s = stub.stats()
    # Every stage that had not been persisted at the kill was paid for exactly once after the restart.
    for kind in ("brief", "article"):
        tap.is_(s["llm_replies"][kind] - s_kill["llm_replies"][kind], N - persisted[kind],
                "after the restart: one %s per article that had not stored one (%d)" % (kind, N - persisted[kind]))
    tap.is_(s["search_calls"] - s_kill["search_calls"], N - persisted["research"],
            "after the restart: research only for articles that had not stored it")
    tap.is_(s["llm_calls"]["continuation"], 0, "no continuations")
    # Overall: each LLM stage once per article, plus only replies the dead process had asked for and not yet
    # stored at the kill instant (the stub answers a call even after its client is gone). Those in-flight
    # replies are exactly s_kill's replies minus what was persisted.
    # The LLM client holds at most 32 calls in flight (src/pipeline/llm.c), which bounds the loss.
    lost = 0
    for kind in ("brief", "article"):
        wasted = s_kill["llm_replies"][kind] - persisted[kind]
        lost += wasted
        tap.diag("%s: %d replies for %d articles; %d of them were in flight at the kill" %
                 (kind, s["llm_replies"][kind], N, wasted))
        tap.ok(wasted >= 0, "%s: no stored stage without its reply" % kind)
        tap.is_(s["llm_replies"][kind], N + wasted, "%s: paid once per article, plus only the in-flight ones" % kind)
    tap.ok(lost <= 32, "replies lost with the dead process (%d) are within the LLM's in-flight limit (32)" % lost)

    counts = site.ledger_counts(bob.id)
    tap.is_(counts.get("usage"), N, "the ledger has exactly %d usage rows" % N)
    tap.is_(counts.get("refund", 0), 0, "and no refunds")
    tap.is_(bob.credits(), 10, "bob paid exactly %d credits" % N)
    usage_refs = site.sql("SELECT count(DISTINCT reference_id) FROM credit_transactions WHERE user_id = '%s'"
                          " AND type = 'usage'" % bob.id)
    tap.is_(usage_refs[0][0], str(N), "one usage row per article")
    untokened = site.sql("SELECT count(*) FROM credit_transactions t JOIN articles a ON a.charge_txn_id = t.id"
                         " WHERE t.tokens_consumed IS DISTINCT FROM a.tokens_used")
    tap.is_(untokened[0][0], "0", "each usage row's tokens_consumed is its article's tokens_used")
    check_stopped(srv, "the restarted server exits 0 on SIGTERM")


run(main)
