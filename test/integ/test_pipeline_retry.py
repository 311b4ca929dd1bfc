"""A retry retries every stage that produced nothing (issue 9, point 3; API.md sections 4 and 7), against the
stub peers: a search that found nothing is not a finished research stage, so /retry searches again and the
article completes; pages that gave no usable text are not a finished scrape, so /retry scrapes again from the
stored candidates (research kept) and completes; an empty research result stored by an older version is
searched again too."""

from harness import Postgres, run, tap
from pipeline_common import Site, check_stopped
from stubutil import Stub

QUERY = "Growing tomatoes on a balcony in a cold climate"


def stored(site, aid):
    """(last_stage_done, research_results as text) of the article, straight from SQL ('' for NULL)."""
    return tuple(site.sql("SELECT coalesce(last_stage_done, ''), coalesce(research_results::text, '')"
                          " FROM articles WHERE id = '%s'" % aid)[0])


def fail_with(site, stub, user, desc, **faults):
    stub.reset()
    stub.control(**faults)
    r = user.create(QUERY, target_length=600, source_count=2)
    aid = r.json["id"]
    a = user.wait_final(aid, timeout=30)
    tap.is_((a and a["status"], a and a["error_message"]), ("failed", "No sources could be scraped"),
            desc + ": the article fails")
    return aid


def retry_completes(site, stub, user, aid, desc):
    """Providers healthy again; /retry; returns the stub's stats of the retry."""
    stub.reset()
    r = user.req("POST", "/articles/%s/retry" % aid)
    tap.is_((r.status, r.json.get("article", {}).get("status")), (200, "queued"), desc + ": retry accepted")
    a = user.wait_final(aid, timeout=30)
    tap.is_((a and a["status"], a and a["error_message"]), ("completed", None),
            desc + ": the retried article completes")
    tap.ok(a is not None and len(a["sources"]) >= 1 and (a["content"] or "").startswith("# "),
           desc + ": with sources and content", a and a["sources"])
    tap.is_(a and a["retry_count"], 1, desc + ": retry_count 1")
    return stub.stats()


def main():
    pg = Postgres.shared()
    stub = Stub().start()
    site = Site(pg, pg.fresh_database())
    srv = site.start(stub)
    u = site.signup("rey")

    # ---- the search found nothing: not stored as done; the retry searches again ----
    aid = fail_with(site, stub, u, "search empty", search_empty=True)
    tap.is_(stored(site, aid), ("", ""), "search empty: no research stage stored (last_stage_done and results null)")
    st = retry_completes(site, stub, u, aid, "search empty")
    tap.ok(st["search_calls"] >= 1, "search empty: the retry searched again (%d calls)" % st["search_calls"])
    tap.ok(st["page_fetches"] >= 1, "search empty: and scraped what it found")
    tap.is_(site.generate_jobs().get(aid), ["failed", "done"], "search empty: two jobs, failed then done")

    # ---- the pages gave nothing usable: research kept, the scrape is redone ----
    aid = fail_with(site, stub, u, "pages unusable", pages_unusable=True)
    stage, research = stored(site, aid)
    tap.ok(stage == "research" and research.startswith("[{"),
           "pages unusable: the research (its candidates) is stored, the scrape is not", (stage, research[:80]))
    st = retry_completes(site, stub, u, aid, "pages unusable")
    tap.is_(st["search_calls"], 0, "pages unusable: the retry kept the research (no search)")
    tap.ok(st["page_fetches"] >= 1, "pages unusable: the retry scraped again (%d fetches)" % st["page_fetches"])

    # ---- an empty research result stored as done (what older versions did): searched again ----
    aid = fail_with(site, stub, u, "stored empty research", search_empty=True)
    site.sql("UPDATE articles SET last_stage_done = 'research', research_results = '[]' WHERE id = '%s'" % aid)
    st = retry_completes(site, stub, u, aid, "stored empty research")
    tap.ok(st["search_calls"] >= 1, "stored empty research: the retry searched again")

    check_stopped(srv, "server exits 0 on SIGTERM")


if __name__ == "__main__":
    run(main)
