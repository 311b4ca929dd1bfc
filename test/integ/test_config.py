"""Configuration is validated at start: a bad value stops start-up with a message naming the variable."""
import os
import re

from harness import free_port, run, run_binary, tap

# Nothing listens there; a binary that wrongly accepted the config fails later, not by hanging forever.
BASE = {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/inkloop", "INKLOOP_DEV": "1", "HOST": "127.0.0.1",
        "PORT": str(free_port())}

CASES = [
    ("PORT", {"PORT": "abc"}),
    ("PORT", {"PORT": "70000"}),
    ("PORT", {"PORT": "-1"}),
    ("WEBHOOK_MAX_ATTEMPTS", {"WEBHOOK_MAX_ATTEMPTS": "0"}),
    ("LOG_LEVEL", {"LOG_LEVEL": "loud"}),
    ("JWT_SECRET", {"INKLOOP_DEV": None, "JWT_SECRET": None}),
    ("INKLOOP_ROLES", {"INKLOOP_ROLES": "api,cook"}),
]


def main():
    for var, change in CASES:
        env = dict(BASE)
        env.update(change)
        shown = ", ".join("%s=%s" % (k, v) if v is not None else "%s unset" % k for k, v in change.items())
        p = run_binary(["serve"], env, timeout=15)
        tap.is_(p.returncode, 2, "%s: exits with code 2" % shown)
        tap.ok(re.search(r"configuration error: .*%s" % re.escape(var), p.stderr) is not None,
               "%s: the message names %s" % (shown, var), "stderr: %r" % p.stderr[-1000:])

    for cmd in ("migrate",):
        env = dict(BASE, PORT="abc")
        p = run_binary([cmd], env)
        tap.is_(p.returncode, 2, "`inkloop %s` also validates the config (PORT=abc: exit 2)" % cmd)

    env = dict(BASE)
    del env["DATABASE_URL"]
    p = run_binary(["serve"], env)
    tap.is_(p.returncode, 2, "DATABASE_URL unset: exits with code 2")
    tap.ok("DATABASE_URL" in p.stderr, "DATABASE_URL unset: the message names it", p.stderr[-500:])

    p = run_binary(["version"], {})
    tap.is_(p.returncode, 0, "`inkloop version` exits 0 with an empty environment")
    want = os.environ.get("INKLOOP_VERSION", "")
    tap.ok(want != "" and want in p.stdout, "`inkloop version` prints the version (%s)" % want, p.stdout)

    # `inkloop sql` (bench/run.sh feeds it to pgbench): the registered SQL, one statement a line, and no
    # database: DATABASE_URL is unset and nothing could listen on it anyway.
    p = run_binary(["sql", "article_get", "auth_key"], {})
    lines = p.stdout.splitlines()
    tap.is_(p.returncode, 0, "`inkloop sql article_get auth_key` exits 0 without a database")
    tap.ok(len(lines) == 2 and all(line.startswith("SELECT ") for line in lines),
           "`inkloop sql article_get auth_key` prints two SELECT statements, one a line", p.stdout[-1000:])
    tap.ok(len(lines) == 2 and "FROM articles a WHERE a.id = $1 AND a.user_id = $2" in lines[0]
           and "FROM api_keys WHERE key_hash = $1::bytea" in lines[1], "in the order asked, with their $n parameters",
           p.stdout[-1000:])
    p = run_binary(["sql", "auth_key", "no_such_statement"], {})
    tap.is_(p.returncode, 2, "`inkloop sql` with an unknown name exits 2")
    tap.ok("no_such_statement" in p.stderr and p.stdout == "", "... names it on stderr and prints nothing",
           "stdout: %r stderr: %r" % (p.stdout[-300:], p.stderr[-300:]))
    p = run_binary(["sql"], {})
    tap.is_(p.returncode, 2, "`inkloop sql` without a name exits 2")

    p = run_binary(["bogus"], BASE)
    tap.ok(p.returncode not in (0, None), "`inkloop bogus` exits non-zero", p.returncode)
    tap.ok("usage" in (p.stderr + p.stdout).lower(), "`inkloop bogus` prints the usage", p.stderr)


run(main)
