"""The title a user approved is the article's title (issue 9, point 1; API.md sections 4 and 6), end to end
with the stub LLM told to write a headline of its own (its article_title setting), as a model that ignores
the prompt would:
- an article created from an approved title (POST /generate/batch) keeps that title as topic and title, and
  the stored Markdown's H1 says it (replaced in place, one H1); the webhook body's title is it;
- a free-form POST /articles keeps the query as topic; its title is the H1 the model wrote;
- without the override the writer is told the approved title and uses it;
- PATCHed content brings its H1 as the title, and topic stays."""

import json

from harness import Postgres, run, tap, wait_until
from pipeline_common import Site, check_stopped
from stubutil import Stub
from webhooks_common import integration

OTHER = "A Headline Nobody Approved: Ten Things"


def h1_lines(content):
    return [ln for ln in (content or "").splitlines() if ln.startswith("# ")]


def approved_title(site, user, text):
    return site.sql("INSERT INTO titles (user_id, description, title, status) VALUES ('%s', 'd', '%s', 'approved')"
                    " RETURNING id" % (user.id, text.replace("'", "''")))[0][0]


def batch(user, title_ids, **fields):
    body = {"title_ids": title_ids, "target_length": 600, "source_count": 2}
    body.update(fields)
    r = user.req("POST", "/generate/batch", body=body)
    if r.status != 200:
        raise RuntimeError("POST /generate/batch failed: %r" % (r,))
    return r.json["article_ids"]


def main():
    pg = Postgres.shared()
    stub = Stub().start()
    site = Site(pg, pg.fresh_database())
    srv = site.start(stub, WEBHOOK_RETRY_DELAY_S=1)
    u = site.signup("tia")
    stub.reset()
    stub.control(article_title=OTHER)

    # ---- free-form: topic is the query, title is the model's H1 ----
    query = "how to keep a sourdough starter alive through the winter"
    r = u.create(query, target_length=600, source_count=2)
    tap.is_((r.status, r.json.get("title")), (201, None), "free-form: created without a title yet")
    a = u.wait_final(r.json["id"], timeout=40)
    tap.is_(a and a["status"], "completed", "free-form: completed")
    tap.is_((a["topic"], a["raw_query"]), (query, query), "free-form: topic and raw_query stay the query")
    tap.is_(a["title"], OTHER, "free-form: title is the H1 the model wrote")
    tap.is_(h1_lines(a["content"]), ["# " + OTHER], "free-form: the model's H1 is kept as written")

    # ---- from an approved title: the model writes another H1, the approved one wins everywhere ----
    approved = 'Why "Cold Retard" Makes Better Sourdough (and How to Do It)'
    url = stub.hook("titled")
    integ = integration(u, url)
    [aid] = batch(u, [approved_title(site, u, approved)], webhook_integration_id=integ)
    a = u.wait_final(aid, timeout=40)
    tap.ok(a is not None and a["status"] in ("completed", "posted"), "titled: generated", a and a["status"])
    tap.is_((a["topic"], a["raw_query"], a["title"]), (approved, approved, approved),
            "titled: topic = raw_query = title = the approved title, though the model wrote another")
    content = a["content"] or ""
    tap.is_(content.split("\n", 1)[0], "# " + approved, "titled: the Markdown's first line is '# <approved title>'")
    tap.is_(h1_lines(content), ["# " + approved], "titled: the model's H1 was replaced, not kept beside it")
    tap.ok(OTHER not in content, "titled: the model's headline is gone from the content")
    tap.ok(("<h1>" + approved.replace('"', "&quot;") + "</h1>") in (a["content_html"] or ""),
           "titled: content_html's <h1> is the approved title", (a["content_html"] or "")[:200])
    tap.ok("## References" in content and a["word_count"] > 300, "titled: the rest of the article is kept")
    recs = wait_until(lambda: stub.received("titled") or None, 20, 0.2) or []
    body = recs[0]["body"] if recs else None
    tap.is_(body and json.loads(body).get("title"), approved, "titled: the webhook body's title is the approved one")

    # ---- from an approved title, a model that follows the prompt: it was told the title ----
    stub.control(article_title=None)
    plain = "Seven Sourdough Mistakes Beginners Make"
    [aid2] = batch(u, [approved_title(site, u, plain)])
    a2 = u.wait_final(aid2, timeout=40)
    tap.is_(a2 and a2["status"], "completed", "titled, obedient model: completed")
    tap.is_((a2["topic"], a2["title"], (a2["content"] or "").split("\n", 1)[0]), (plain, plain, "# " + plain),
            "titled, obedient model: the title it was given is topic, title and H1")

    # ---- PATCHed content brings its H1 as the title; topic stays ----
    r = u.req("PATCH", "/articles/" + aid2, body={"content": "# Edited headline\n\nNew body."})
    got = r.json.get("article", {})
    tap.is_((r.status, got.get("title"), got.get("topic")), (200, "Edited headline", plain),
            "PATCH content: title follows the new H1, topic unchanged")
    r = u.req("PATCH", "/articles/" + aid2, body={"content": "No heading at all."})
    tap.is_(r.json.get("article", {}).get("title"), "Edited headline", "PATCH content without an H1: title kept")

    check_stopped(srv, "server exits 0 on SIGTERM")


if __name__ == "__main__":
    run(main)
