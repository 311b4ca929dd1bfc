"""The generation pipeline end to end over HTTP against the stub peers (API.md sections 4 and 7): an article
goes queued -> researching -> scraping -> analyzing -> writing -> completed with everything the contract
promises; each failure kind ends as the contract says with the credit refunded; a retry resumes from the last
completed stage and charges again; an LLM that hangs fails the article with a timeout."""

import time

from harness import Postgres, run, tap, wait_until
from pipeline_common import STAGES, Site, check_stopped, status_order_ok
from stubutil import Stub


def delta(before, after, *path):
    a, b = before, after
    for p in path:
        a, b = a[p], b[p]
    return b - a


def check_refunded(user, aid, balance_before, desc):
    """The balance is back where it was before the create, and the ledger has the charge and its refund."""
    tap.is_(user.credits(), balance_before, desc + ": the credit is back")
    rows = [t for t in user.ledger() if t["reference_id"] == aid]
    kinds = sorted(t["type"] for t in rows)
    tap.is_(kinds, ["refund", "usage"], desc + ": a usage row and a refund row for the article")
    tap.is_(sum(t["amount"] for t in rows), 0, desc + ": they cancel out")


def expect_failure(site, stub, user, desc, message_re, timeout=30, **faults):
    """Creates an article with the stub's faults set; it must fail with message_re and be refunded."""
    stub.reset()
    stub.control(**faults)
    bal = user.credits()
    r = user.create("Growing tomatoes on a balcony in a cold climate")
    tap.is_(r.status, 201, desc + ": created")
    aid = r.json["id"]
    # The article may already have failed and been refunded when the balance is read (a fault that fails it
    # at once, a slow test process): then the balance is back, and the ledger check below proves the charge.
    now = user.credits()
    got = user.article(aid)
    st = got.json if got.status == 200 else None
    tap.ok(now == bal - 1 or (now == bal and st is not None and st.get("status") == "failed"),
           desc + ": charged on create (balance %s -> %s)" % (bal, now))
    a = user.wait_final(aid, timeout=timeout)
    tap.is_(a and a["status"], "failed", desc + ": failed")
    tap.like(a and a["error_message"] or "", message_re, desc + ": error_message says why")
    tap.ok(a is not None and a["content"] is None and a["completed_at"] is None, desc + ": no content", a)
    check_refunded(user, aid, bal, desc)
    tap.is_(site.generate_jobs().get(aid), ["failed"], desc + ": its one generation job ended failed")
    stats = stub.stats()
    stub.control(reset=True)
    return aid, a, stats


def main():
    pg = Postgres.shared()
    stub = Stub().start()
    site = Site(pg, pg.fresh_database())
    srv = site.start(stub)
    alice = site.signup("alice")
    tap.is_(alice.credits(), 10, "alice starts with 10 credits")

    # ---- the happy path, every stage observable (each provider call takes 150 ms) ----
    stub.reset()
    stub.control(latency_ms=150)
    r = alice.create("How to keep sourdough starter alive", category="Baking", target_length=800, source_count=4)
    tap.is_(r.status, 201, "article created")
    aid = r.json["id"]
    seen = [r.json["status"]]
    deadline = time.monotonic() + 30
    a = r.json
    while time.monotonic() < deadline:
        a = alice.article(aid).json
        if a["status"] != seen[-1]:
            seen.append(a["status"])
        if a["status"] in ("completed", "failed"):
            break
        time.sleep(0.05)
    tap.diag("statuses seen: %s" % " -> ".join(seen))
    tap.ok(status_order_ok(seen), "statuses only move forward and end in completed", seen)
    tap.is_(seen, STAGES, "every stage was observed, in order")
    tap.is_(a["error_message"], None, "no error message")
    content = a["content"] or ""
    tap.ok(content.startswith("# "), "content is Markdown starting with a '# ' title", content[:200])
    html = a["content_html"] or ""
    tap.ok("<h1>" in html and "<h2>" in html, "content_html has <h1> and <h2>", html[:300])
    words = len(content.split())
    tap.ok(a["word_count"] > 0 and abs(a["word_count"] - words) <= words // 5,
           "word_count is positive and near the content's (%d vs %d)" % (a["word_count"], words))
    tap.ok(500 <= a["word_count"] <= 1200, "about the 800 words asked for (%d)" % a["word_count"])
    src = a["sources"] or []
    tap.ok(1 <= len(src) <= 4, "1..source_count sources (%d)" % len(src), src)
    tap.ok(all(s.get("url", "").startswith(stub.url + "/pages/") and s.get("title") and s.get("source_origin")
               for s in src), "each source has url, title and source_origin", src)
    tap.is_(len(set(s["url"] for s in src)), len(src), "sources are distinct")
    tap.ok(all(s["url"] in content for s in src), "every source is in the article's references")
    brief = a["brief"] or {}
    tap.ok(15 <= len(brief.get("keywords", [])) <= 20, "brief has 15-20 keywords", brief.get("keywords"))
    outline = brief.get("outline", [])
    tap.ok(5 <= len(outline) <= 8, "brief has 5-8 outline sections", outline)
    tap.ok(all(o.get("heading") and o.get("level") == 2 and isinstance(o.get("points"), list) and
               isinstance(o.get("citations"), list) and isinstance(o.get("subsections"), list) for o in outline),
           "outline sections have heading, level 2, points, citations, subsections")
    tap.ok(all(("## " + o["heading"]) in content for o in outline), "the article follows the outline's headings")
    tap.ok(isinstance(brief.get("strategy"), str) and brief["strategy"], "brief has a strategy")
    md = a["meta_description"] or ""
    tap.ok(0 < len(md) <= 160, "meta_description is 1-160 characters (%d)" % len(md), md)
    tap.like(a["slug"] or "", r"^[a-z0-9]+(-[a-z0-9]+)*$", "slug is lowercase words joined by hyphens")
    tap.is_(a["topic"], "How to keep sourdough starter alive", "topic stays the query (never rewritten)")
    tap.is_(a["title"], content.splitlines()[0][2:].strip(), "title is the article's H1")
    tap.ok(a["completed_at"] is not None, "completed_at set")
    st = stub.stats()
    tap.is_(st["llm_replies"]["brief"], 1, "one brief was paid for")
    tap.is_(st["llm_replies"]["article"], 1, "one article was paid for")
    tap.ok(a["prompt_tokens"] > 0 and a["completion_tokens"] > 0, "prompt and completion tokens counted")
    tap.is_(a["tokens_used"], a["prompt_tokens"] + a["completion_tokens"], "tokens_used = prompt + completion")
    tap.is_([a["prompt_tokens"], a["completion_tokens"]], [st["tokens"]["prompt"], st["tokens"]["completion"]],
            "token counts equal what the LLM's usage reported")
    usage = [t for t in alice.ledger() if t["reference_id"] == aid]
    tap.is_([(t["type"], t["amount"]) for t in usage], [("usage", -1)], "one usage row for the article")
    tap.is_(usage and usage[0]["tokens_consumed"], a["tokens_used"], "its tokens_consumed = tokens_used")
    tap.is_(alice.credits(), 9, "one credit spent")
    tap.is_(site.generate_jobs().get(aid), ["done"], "one generation job, done")

    # ---- failure kinds, each refunded ----
    _, _, st = expect_failure(site, stub, alice, "search empty", r"^No sources could be scraped$", search_empty=True)
    tap.is_(sum(st["llm_calls"].values()), 0, "search empty: the LLM was never called")
    _, _, st = expect_failure(site, stub, alice, "pages unusable", r"^No sources could be scraped$",
                              pages_unusable=True)
    tap.ok(st["page_fetches"] >= 1, "pages unusable: pages were fetched (%d)" % st["page_fetches"])
    tap.is_(sum(st["llm_calls"].values()), 0, "pages unusable: the LLM was never called")

    # The brief and its repair are both cut in half: not JSON, and no third try.
    bad_id, _, st = expect_failure(site, stub, alice, "invalid JSON twice", r"(?i)brief.*not valid JSON",
                                   invalid_json_every=1)
    tap.is_(st["llm_faults"]["invalid_json"], 2, "invalid JSON twice: the brief and its repair were broken")
    tap.is_(st["llm_calls"]["brief"], 2, "invalid JSON twice: exactly one repair try")
    tap.is_(st["llm_calls"]["article"], 0, "invalid JSON twice: nothing was written")

    # ---- 429 then success: the second LLM call (the article) is rate limited once ----
    stub.reset()
    stub.control(rate_limit_every=2, retry_after=1)
    bal = alice.credits()
    r = alice.create("Choosing a beginner road bike on a budget")
    a = alice.wait_final(r.json["id"], timeout=30)
    tap.is_(a and a["status"], "completed", "429 then success: completed")
    st = stub.stats()
    tap.is_(st["llm_faults"]["rate_limited"], 1, "429 then success: one call was rate limited")
    tap.is_(st["llm_replies"]["article"], 1, "429 then success: the article was paid once")
    tap.is_(a["tokens_used"], st["tokens"]["prompt"] + st["tokens"]["completion"],
            "429 then success: tokens are those of the successful replies")
    tap.is_(alice.credits(), bal - 1, "429 then success: charged once, no refund")
    stub.control(reset=True)

    # ---- retry of the failed article: resumes after the scrape, charges again ----
    stub.reset()
    bal = alice.credits()
    before = alice.article(bad_id).json
    r = alice.req("POST", "/articles/%s/retry" % bad_id)
    tap.is_(r.status, 200, "retry accepted")
    tap.is_(r.json["article"]["status"], "queued", "retried article is queued")
    a = alice.wait_final(bad_id, timeout=30)
    tap.is_(a and a["status"], "completed", "the retried article completes")
    st = stub.stats()
    tap.is_(st["search_calls"], 0, "retry: research was not redone")
    tap.is_(st["page_fetches"], 0, "retry: scraping was not redone")
    tap.is_([st["llm_replies"]["brief"], st["llm_replies"]["article"]], [1, 1], "retry: analyze and write ran")
    tap.is_([s["url"] for s in a["sources"]], [s["url"] for s in before["sources"]], "retry: same sources kept")
    tap.is_(a["retry_count"], 1, "retry_count is 1")
    tap.is_(alice.credits(), bal - 1, "retry charged again")
    rows = sorted((t["type"], t["amount"]) for t in alice.ledger() if t["reference_id"] == bad_id)
    tap.is_(rows, [("refund", 1), ("usage", -1), ("usage", -1)], "retry: ledger has charge, refund, charge")
    tap.is_(site.generate_jobs().get(bad_id), ["failed", "done"], "retry: a second job, done")
    r = alice.req("POST", "/articles/%s/retry" % bad_id)
    tap.is_((r.status, r.json.get("detail")), (400, "Can only retry failed articles"), "a completed one cannot")

    # ---- a reply cut off by the length limit is continued, and both calls' tokens count ----
    stub.reset()
    stub.control(llm_truncate_every=1)
    r = alice.create("Caring for a fiddle leaf fig indoors")
    a = alice.wait_final(r.json["id"], timeout=30)
    tap.is_(a and a["status"], "completed", "cut-off reply: completed")
    st = stub.stats()
    tap.is_([st["llm_faults"]["truncated"], st["llm_replies"]["continuation"]], [1, 1],
            "cut-off reply: truncated once, continued once")
    content = a["content"] or ""
    tap.ok(content.startswith("# ") and content.count("\n# ") == 0 and "## References" in content,
           "cut-off reply: one title, the rest joined on, references at the end")
    tap.is_(a["tokens_used"], st["tokens"]["prompt"] + st["tokens"]["completion"],
            "cut-off reply: tokens of all three calls are counted")
    stub.control(reset=True)
    check_stopped(srv, "first server exits 0 on SIGTERM")

    # ---- LLM timeout: every call hangs; 1 s per attempt, 2 attempts, then failed and refunded ----
    srv = site.start(stub, LLM_TIMEOUT_S=1, LLM_MAX_ATTEMPTS=2)
    t0 = time.monotonic()
    _, a, st = expect_failure(site, stub, alice, "LLM timeout", r"(?i)timeout|timed out", hang_every=1,
                              hang_seconds=15)
    tap.like(a["error_message"], r"^Analysis failed: llm:", "LLM timeout: the message names the stage and provider")
    tap.like(a["error_message"], r"timeout", "LLM timeout: the message contains 'timeout'")
    tap.is_(st["llm_faults"]["hang"], 2, "LLM timeout: two attempts, both hung")
    tap.ok(time.monotonic() - t0 < 20, "LLM timeout: gave up within seconds, not after the hang")

    # ---- a failure while writing; the retry keeps the stored brief and only writes ----
    stub.reset()
    stub.control(latency_ms=500)
    bal = alice.credits()
    r = alice.create("Storing winter squash through the cold months")
    wid = r.json["id"]
    # The brief's call has reached the LLM (its fault was decided on arrival): every later call is a 500.
    tap.ok(wait_until(lambda: stub.stats()["llm_calls"]["brief"] == 1, 30, 0.02), "write failure: brief asked")
    stub.control(error_rate=1.0)
    a = alice.wait_final(wid, timeout=30)
    tap.is_(a and a["status"], "failed", "write failure: failed")
    tap.like(a and a["error_message"] or "", r"^Writing failed: llm: HTTP 500", "write failure: says so")
    tap.ok(a["brief"] is not None and a["prompt_tokens"] > 0, "write failure: the brief and its tokens are kept")
    check_refunded(alice, wid, bal, "write failure")
    stub.reset()
    r = alice.req("POST", "/articles/%s/retry" % wid)
    tap.is_(r.status, 200, "write failure: retry accepted")
    a = alice.wait_final(wid, timeout=30)
    tap.is_(a and a["status"], "completed", "write failure: the retry completes")
    st = stub.stats()
    tap.is_([st["search_calls"], st["page_fetches"], st["llm_calls"]["brief"], st["llm_replies"]["article"]],
            [0, 0, 0, 1], "write failure: the retry only wrote (no research, scrape or brief again)")
    tap.is_(alice.credits(), bal - 1, "write failure: the retry charged again")
    check_stopped(srv, "second server exits 0 on SIGTERM")


run(main)
