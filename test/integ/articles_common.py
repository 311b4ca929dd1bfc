"""Helpers shared by the article, title-batch and idempotency tests: users, authenticated requests, direct SQL
on the server's database for rows other issues' endpoints create (integrations, campaigns, titles)."""
import secrets

from harness import Postgres, Server, tap

INTERNAL_SECRET = "internal-" + secrets.token_hex(8)
ADMIN_TOKEN = "admin-" + secrets.token_hex(8)

ARTICLE_FIELDS = {
    "id", "topic", "title", "raw_query", "status", "scheduled_at", "timezone", "created_at", "updated_at", "completed_at",
    "posted_at", "category", "target_length", "source_count", "language", "content", "content_html",
    "word_count", "meta_description", "slug", "sources", "brief", "campaign_id", "webhook_integration_id",
    "is_recurring", "tokens_used", "prompt_tokens", "completion_tokens", "error_message", "retry_count",
    "posting_attempt_count", "last_posting_error", "published_url",
}


class Env:
    """One server on a fresh database, plus the database URL for direct SQL."""

    def __init__(self, extra_env=None):
        self.pg = Postgres.shared()
        self.db = self.pg.fresh_database()
        # An API-only process, as the resource rules are tested: articles stay as the API left them (no worker
        # picks up their generation or delivery jobs; the pipeline and delivery have their own tests).
        env = {"INTERNAL_SECRET": INTERNAL_SECRET, "ADMIN_TOKEN": ADMIN_TOKEN, "SIGNUP_CREDITS": "10",
               "INKLOOP_ROLES": "api"}
        env.update(extra_env or {})
        self.srv = Server(self.db, env=env).start()

    def stop_clean(self):
        """SIGTERM: the server must exit 0 with no sanitizer report (under ASan this is the leak check)."""
        code, _ = self.srv.stop()
        tap.is_(code, 0, "the server exits 0 on SIGTERM")
        log = self.srv.log()
        tap.ok(all(s not in log for s in ("AddressSanitizer", "LeakSanitizer", "runtime error:")),
               "no sanitizer report in the server log", log[-3000:])

    def sql(self, q, timeout=30):
        return self.pg.query(q, url=self.db, timeout=timeout)

    def signup(self, name):
        r = self.srv.request("POST", "/auth/signup", body={"email": name + "@example.com", "username": name,
                                                          "password": "correct horse battery"})
        if r.status != 200:
            raise RuntimeError("signup of %s failed: %r" % (name, r))
        return User(self, r.json["user"]["id"], r.json["access_token"])

    def internal(self, body, secret=INTERNAL_SECRET):
        headers = {} if secret is None else {"X-Internal-Secret": secret}
        return self.srv.request("POST", "/internal/article-complete", body=body, headers=headers)

    def grant(self, user_id, amount):
        r = self.srv.request("POST", "/admin/credits", body={"user_id": user_id, "amount": amount,
                                                             "description": "test"},
                             headers={"Authorization": "Bearer " + ADMIN_TOKEN})
        if r.status != 200:
            raise RuntimeError("grant failed: %r" % (r,))
        return r.json["credits"]


class User:
    def __init__(self, env, uid, token):
        self.env = env
        self.id = uid
        self.token = token

    def req(self, method, path, body=None, headers=None, **kw):
        h = {"Authorization": "Bearer " + self.token}
        h.update(headers or {})
        return self.env.srv.request(method, path, body=body, headers=h, **kw)

    def credits(self):
        return self.req("GET", "/credits").json["credits"]

    def ledger(self):
        return self.req("GET", "/credits/transactions?limit=200").json

    def integration(self, url="https://example.com/hook"):
        """An integration row for this user (the integrations endpoints belong to another issue)."""
        return self.env.sql("INSERT INTO webhook_integrations (user_id, name, webhook_url, webhook_secret)"
                            " VALUES ('%s', 'site', '%s', 'whsec_x') RETURNING id" % (self.id, url))[0][0]

    def title(self, text, status="approved"):
        return self.env.sql("INSERT INTO titles (user_id, description, title, status)"
                            " VALUES ('%s', 'desc', '%s', '%s') RETURNING id" % (self.id, text, status))[0][0]

    def create(self, query="How to keep sourdough starter alive", **fields):
        body = {"query": query}
        body.update(fields)
        return self.req("POST", "/articles", body=body)


def ledger_consistent(user):
    """The ledger explains the balance: amounts sum to it, and it is one of the rows' balance_after. (Not
    necessarily the first row's: created_at is the transaction's start, so rows of concurrent or batched
    transactions are not listed in the order their balances were computed.)"""
    led = user.ledger()
    bal = user.credits()
    return sum(t["amount"] for t in led) == bal and (not led or bal in {t["balance_after"] for t in led}), (led, bal)


def detail_locs(r):
    d = r.json.get("detail") if isinstance(r.json, dict) else None
    return [tuple(e.get("loc", [])) for e in d] if isinstance(d, list) else []


def check_422(r, loc, desc, type_=None):
    ok = r.status == 422 and tuple(loc) in detail_locs(r)
    if ok and type_ is not None:
        ok = any(tuple(e["loc"]) == tuple(loc) and e["type"] == type_ for e in r.json["detail"])
    return tap.ok(ok, desc, r)
