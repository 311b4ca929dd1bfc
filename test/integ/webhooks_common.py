"""Helpers shared by the webhook delivery tests: a server with short delivery delays pointed at the stub sink,
users with integrations, articles completed from outside (POST /internal/article-complete), and an independent
verifier of what the sink received (Python's hmac, hashlib, base64, json)."""
import base64
import datetime
import hashlib
import hmac
import json
import time

from articles_common import ADMIN_TOKEN, Env
from harness import tap, wait_until
from stubutil import Stub

# API.md section 6: the body's fields, exactly.
BODY_FIELDS = {"event", "id", "article_id", "campaign_id", "title", "content", "content_html", "category",
               "keywords", "meta_description", "slug", "sources", "word_count", "scheduled_at", "created_at"}


def whsec():
    import secrets
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


# Search answers after this long (search's own timeout and retries make that over a minute), so an article
# created with POST /articles stays in `researching` until the test completes it from outside: the in-process
# generation can neither finish nor fail it first.
STALL_MS = 150000


def stub_stalled():
    stub = Stub().start()
    stub.control(latency_ms=STALL_MS)
    return stub


def server_env(stub, extra_env=None):
    env = stub.server_env()
    # Deliveries need a worker (articles_common.Env alone starts an API-only process).
    env.update({"WEBHOOK_RETRY_DELAY_S": "1", "WEBHOOK_TIMEOUT_S": "2", "WEBHOOK_MAX_ATTEMPTS": "3",
                "SIGNUP_CREDITS": "200", "ALLOW_PRIVATE_URLS": "1", "INKLOOP_ROLES": "api,worker"})
    env.update(extra_env or {})
    return env


def start(extra_env=None):
    """A stub (sink; its search stalled) and one server with short delivery delays; returns (env, stub)."""
    stub = stub_stalled()
    return Env(server_env(stub, extra_env)), stub


def integration(user, url, secret=None, api_key=None, name="site"):
    body = {"name": name, "webhook_url": url}
    if secret is not None:
        body["webhook_secret"] = secret
    if api_key is not None:
        body["api_key"] = api_key
    r = user.req("POST", "/integrations", body=body)
    if r.status != 201:
        raise RuntimeError("POST /integrations failed: %r" % (r,))
    return r.json["id"]


def completed_article(env, user, integ, content="# Title\n\nbody", query=None, **fields):
    """Creates an article with the integration and completes it from outside; returns its id."""
    r = user.create(query or "How to keep sourdough starter alive", webhook_integration_id=integ, **fields)
    if r.status != 201:
        raise RuntimeError("POST /articles failed: %r" % (r,))
    aid = r.json["id"]
    complete(env, aid, content)
    return aid


def complete(env, aid, content="# Title\n\nbody"):
    r = env.internal({"article_id": aid, "tokens_used": 10, "status": "completed", "content": content})
    if r.status != 200:
        raise RuntimeError("internal/article-complete failed: %r" % (r,))


def article(user, aid):
    return user.req("GET", "/articles/" + aid).json


def wait_received(stub, sink, n, timeout):
    """Polls the sink until it holds at least n records (or the deadline); returns the records."""
    return wait_until(lambda: (lambda recs: recs if len(recs) >= n else None)(stub.received(sink)), timeout, 0.1) \
        or stub.received(sink)


def wait_article(user, aid, pred, timeout):
    """Polls GET /articles/{id} until pred(article) holds (or the deadline); returns the last article."""
    last = [None]

    def probe():
        last[0] = article(user, aid)
        return pred(last[0])
    wait_until(probe, timeout, 0.1)
    return last[0]


def body_bytes(rec):
    return base64.b64decode(rec["body_base64"])


def verify(rec, secret):
    """Independent verification of one received request: (hex over raw, hex over canonical, standard)."""
    raw = body_bytes(rec)
    h = rec["headers"]
    sig = h.get("x-webhook-signature", "")
    hex_raw = hmac.compare_digest(hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest(), sig)
    canon = json.dumps(json.loads(raw), sort_keys=True).encode()
    hex_canon = hmac.compare_digest(hmac.new(secret.encode(), canon, hashlib.sha256).hexdigest(), sig)
    key = base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode()
    signed = ("%s.%s." % (h.get("webhook-id", ""), h.get("webhook-timestamp", ""))).encode() + raw
    want = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    std = any(hmac.compare_digest(want, s) for s in h.get("webhook-signature", "").split())
    return hex_raw, hex_canon, std


def iso_utc(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def admin(env, method, path, body=None):
    return env.srv.request(method, path, body=body, headers={"Authorization": "Bearer " + ADMIN_TOKEN})


def gaps(recs):
    return [round(b["received_at"] - a["received_at"], 3) for a, b in zip(recs, recs[1:])]


def quiet_for(stub, sink, n, seconds):
    """True when the sink still holds exactly n records after `seconds` (no further attempt came)."""
    time.sleep(seconds)
    got = len(stub.received(sink))
    return tap.is_(got, n, "no further request reaches sink %s" % sink)
