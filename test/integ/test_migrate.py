"""`inkloop migrate`: applies pending migrations once, in order, safely from several processes at once."""
import re
import subprocess

from harness import Postgres, binary, child_env, migration_versions, run, run_binary, tap


def env_for(url):
    return {"DATABASE_URL": url, "INKLOOP_DEV": "1", "LOG_LEVEL": "debug"}


def versions(pg, url):
    return pg.query("SELECT version FROM schema_migrations ORDER BY version", url=url)


def main():
    pg = Postgres.shared()
    want = migration_versions()
    tap.ok(len(want) >= 1, "sql/ has migration files", want)
    want_rows = [[str(v)] for v in want]

    url = pg.fresh_database()
    p = run_binary(["migrate"], env_for(url), timeout=60)
    tap.is_(p.returncode, 0, "migrate on a fresh database exits 0")
    if p.returncode != 0:
        tap.diag(p.stderr[-3000:])
    tap.like(p.stderr, r"\b%d applied" % len(want), "it logs that it applied %d migration(s)" % len(want))
    tap.is_(versions(pg, url), want_rows, "schema_migrations lists every file's version once")
    before = pg.query("SELECT * FROM schema_migrations ORDER BY 1", url=url)

    p = run_binary(["migrate"], env_for(url), timeout=60)
    tap.is_(p.returncode, 0, "a second migrate exits 0")
    tap.like(p.stderr, r"\b0 applied", "it logs that it applied 0 migrations")
    tap.is_(pg.query("SELECT * FROM schema_migrations ORDER BY 1", url=url), before,
            "schema_migrations is unchanged by the second run")

    url = pg.fresh_database()
    procs = [subprocess.Popen([binary(), "migrate"], env=child_env(env_for(url)), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = []
    for pr in procs:
        try:
            out, err = pr.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            pr.kill()
            out, err = pr.communicate()
        results.append((pr.returncode, err))
    for i, (code, err) in enumerate(results):
        tap.is_(code, 0, "concurrent migrate #%d exits 0" % (i + 1))
        if code != 0:
            tap.diag(err[-3000:])
    applied = [int(m.group(1)) for _, err in results for m in [re.search(r"\b(\d+) applied", err)] if m]
    tap.is_(sum(applied), len(want), "together the concurrent runs applied each migration once (%r)" % applied)
    tap.is_(versions(pg, url), want_rows, "schema_migrations has each version exactly once")
    dup = pg.query("SELECT version FROM schema_migrations GROUP BY version HAVING count(*) > 1", url=url)
    tap.is_(dup, [], "no duplicate versions")


run(main)
