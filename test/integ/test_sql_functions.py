"""The SQL functions the statements share (sql/0010_sql_functions.sql): what they return, and that the planner
inlines them, so the statements that use them keep the plans of the text written out (the generation sweep
still reads only articles_generating_idx)."""
from harness import Postgres, run, run_binary, tap


def main():
    pg = Postgres.shared()
    url = pg.fresh_database()
    p = run_binary(["migrate"], {"DATABASE_URL": url, "INKLOOP_DEV": "1"}, timeout=60)
    tap.is_(p.returncode, 0, "migrate exits 0")
    if p.returncode != 0:
        tap.diag(p.stderr[-3000:])
        return

    def one(sql):
        return pg.query("SET TimeZone = 'UTC'; " + sql, url=url)

    tap.is_(one("SELECT inkloop_ts('2026-01-02 03:04:05', false, 'Europe/Paris')"),
            [["2026-01-02 02:04:05+00"]], "a local time is read in the timezone given")
    tap.is_(one("SELECT inkloop_ts('2026-07-02 03:04:05.25', false, 'America/New_York')"),
            [["2026-07-02 07:04:05.25+00"]], "with that zone's daylight saving time on that date")
    tap.is_(one("SELECT inkloop_ts('2026-01-02 03:04:05+05:30', true, 'Europe/Paris')"),
            [["2026-01-01 21:34:05+00"]], "a time with an offset ignores the timezone")
    tap.is_(one("SELECT inkloop_ts(NULL, NULL, 'UTC') IS NULL"), [["t"]], "no timestamp is NULL")
    try:
        one("SELECT inkloop_ts('2026-01-02 03:04:05', false, 'Mars/Olympus')")
        tap.ok(False, "an unknown timezone is refused")
    except RuntimeError as e:
        tap.like(str(e), r"time zone .*not recognized", "an unknown timezone is refused by PostgreSQL")

    statuses = ["queued", "researching", "scraping", "analyzing", "writing", "completed", "failed", "posted",
                "delivery_failed"]
    got = one("SELECT s, article_is_generating(s) FROM unnest(ARRAY['%s']) AS s" % "', '".join(statuses))
    tap.is_(got, [[s, "t" if i < 5 else "f"] for i, s in enumerate(statuses)],
            "generating: queued, researching, scraping, analyzing, writing; no other status")

    plan = "\n".join(r[0] for r in one(
        "EXPLAIN (VERBOSE, COSTS OFF) SELECT article_is_generating(status),"
        " inkloop_ts(topic, true, timezone) FROM articles"))
    tap.ok("article_is_generating" not in plan and "inkloop_ts" not in plan and "ANY" in plan,
           "both functions are inlined into the statement", plan)

    sweep = run_binary(["sql", "gen_sweep"], {"INKLOOP_DEV": "1"}).stdout.strip()
    tap.like(sweep, r"article_is_generating\(a\.status\)", "the sweep filters with article_is_generating")
    plan = "\n".join(r[0] for r in one("SET enable_seqscan = off; EXPLAIN (COSTS OFF) " + sweep))
    tap.like(plan, r"articles_generating_idx", "the sweep reads articles_generating_idx, whose predicate is "
             "written with the same function")


run(main)
