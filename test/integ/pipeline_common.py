"""Helpers shared by the generation pipeline tests (test_pipeline*.py): a server pointed at the stub peers,
users with credits, polling articles to a final state, reading jobs and the ledger straight from SQL."""
import re
import secrets
import time

from articles_common import ADMIN_TOKEN, INTERNAL_SECRET, User
from harness import Server, tap

STAGES = ["queued", "researching", "scraping", "analyzing", "writing", "completed"]
FINAL = {"completed", "failed", "cancelled", "posted", "delivery_failed"}


# One signing key for every server of a test file: tokens stay valid across restarts and between processes.
JWT_SECRET = "jwt-" + secrets.token_hex(16)


def server_env(stub, **extra):
    env = {"INTERNAL_SECRET": INTERNAL_SECRET, "ADMIN_TOKEN": ADMIN_TOKEN, "SIGNUP_CREDITS": "10",
           "JWT_SECRET": JWT_SECRET}
    env.update(stub.server_env())
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Site:
    """A database with one or more servers on it (all pointed at one stub), and direct SQL."""

    def __init__(self, pg, db):
        self.pg = pg
        self.db = db
        self.srv = None

    def start(self, stub, **extra):
        self.srv = Server(self.db, env=server_env(stub, **extra)).start()
        return self.srv

    def sql(self, q):
        return self.pg.query(q, url=self.db)

    def signup(self, name, srv=None):
        srv = srv or self.srv
        r = srv.request("POST", "/auth/signup", body={"email": name + "@example.com", "username": name,
                                                     "password": "correct horse battery"})
        if r.status != 200:
            raise RuntimeError("signup of %s failed: %r" % (name, r))
        return SiteUser(self, r.json["user"]["id"], r.json["access_token"])

    def grant(self, user_id, amount, srv=None):
        srv = srv or self.srv
        r = srv.request("POST", "/admin/credits", body={"user_id": user_id, "amount": amount, "description": "test"},
                        headers={"Authorization": "Bearer " + ADMIN_TOKEN})
        if r.status != 200:
            raise RuntimeError("grant failed: %r" % (r,))
        return r.json["credits"]

    def generate_jobs(self):
        """{article_id: [job state, ...]} of the generate_article jobs."""
        out = {}
        for aid, state in self.sql("SELECT article_id, state FROM jobs WHERE kind = 'generate_article' ORDER BY id"):
            out.setdefault(aid, []).append(state)
        return out

    def ledger_counts(self, user_id):
        """{type: count} of the user's ledger rows."""
        return {t: int(n) for t, n in self.sql("SELECT type, count(*) FROM credit_transactions WHERE user_id = '%s'"
                                               " GROUP BY type" % user_id)}


class SiteUser(User):
    """articles_common.User on whichever server of the site is current."""

    def __init__(self, site, uid, token):
        self.site = site
        self.id = uid
        self.token = token

    @property
    def env(self):
        return self

    @property
    def srv(self):
        return self.site.srv

    def article(self, aid):
        return self.req("GET", "/articles/" + aid)

    def wait_final(self, aid, timeout=60, interval=0.1):
        """Polls until the article reaches a final state; returns the last Article (or None)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            r = self.article(aid)
            if r.status == 200:
                last = r.json
                if last["status"] in FINAL:
                    return last
            time.sleep(interval)
        return last

    def all_articles(self):
        """Every article of the user (GET /articles, 200 a page)."""
        out = []
        while True:
            r = self.req("GET", "/articles?limit=200&skip=%d" % len(out), timeout=30)
            if r.status != 200:
                raise RuntimeError("GET /articles: %r" % (r,))
            out.extend(r.json)
            if len(r.json) < 200:
                return out

    def wait_all_final(self, ids, timeout=120, interval=0.5):
        """Polls GET /articles until every id is final; returns {id: Article}."""
        ids = set(ids)
        deadline = time.monotonic() + timeout
        seen = {}
        while time.monotonic() < deadline:
            seen = {a["id"]: a for a in self.all_articles() if a["id"] in ids}
            if len(seen) == len(ids) and all(a["status"] in FINAL for a in seen.values()):
                return seen
            time.sleep(interval)
        return seen


def status_order_ok(seen):
    """seen (consecutive duplicates removed) only moves forward through STAGES and ends in completed."""
    idx = [STAGES.index(s) if s in STAGES else -1 for s in seen]
    return bool(seen) and -1 not in idx and idx == sorted(idx) and len(set(idx)) == len(idx) and \
        seen[-1] == "completed"


def attempts_in_log(srv):
    """Article ids this server started a generation attempt for (its 'article <id>: attempt N' lines)."""
    out = []
    for line in srv.log_lines():
        m = re.search(r"article ([0-9a-f-]{36}): attempt \d+", line)
        if m:
            out.append(m.group(1))
    return out


def check_stopped(srv, desc):
    code, _ = srv.stop()
    tap.is_(code, 0, desc)
    log = srv.log()
    tap.ok(all(s not in log for s in ("AddressSanitizer", "LeakSanitizer", "runtime error:")),
           "no sanitizer report in that server's log", log[-3000:])
