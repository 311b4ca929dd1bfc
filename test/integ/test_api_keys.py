"""API keys (contract section 4 "API keys" and the gate of section 3): create, use as Bearer and X-API-Key, list,
last_used_at, storage as SHA-256 only, revoke, isolation between users, on the real binary and PostgreSQL."""
import re
import threading
import time

from authutil import ISO_Z_RE, UUID_RE, server_env, sha256_hex, signup, stop_clean
from harness import Postgres, Server, run, tap, wait_until

KEY_RE = r"^sk_[A-Za-z0-9_-]{43}$"
BAD_CRED = (401, {"detail": "Could not validate credentials"})
NOT_FOUND = (404, {"detail": "API key not found"})


def main():
    pg = Postgres.shared()
    db = pg.fresh_database()
    srv = Server(db, env=server_env()).start()
    a = signup(srv)
    b = signup(srv)

    r = a.post("/api-keys", {"name": "ci runner", "scopes": ["all"]})
    tap.is_(r.status, 201, "POST /api-keys is 201 (extra fields ignored)")
    k = r.json if isinstance(r.json, dict) else {}
    tap.is_(sorted(k), ["created_at", "id", "key", "name", "prefix"], "body has exactly id, name, key, prefix, created_at")
    tap.like(k.get("id"), UUID_RE, "id is a lowercase UUID")
    tap.is_(k.get("name"), "ci runner", "name as given")
    key = k.get("key") or ""
    tap.like(key, KEY_RE, "key is sk_ + 43 url-safe characters")
    tap.is_(k.get("prefix"), key[:12], "prefix is the key's first 12 characters")
    tap.like(k.get("created_at"), ISO_Z_RE, "created_at is ISO-8601 UTC with Z")
    r2 = a.post("/api-keys", {"name": "second"})
    key2 = (r2.json or {}).get("key", "")
    tap.ok(r2.status == 201 and key2 != key and re.match(KEY_RE, key2), "a second key is different", r2)

    # Storage: only the SHA-256; the key appears in no column of any row.
    rows = pg.query("SELECT encode(key_hash, 'hex'), prefix, user_id FROM api_keys WHERE id = '%s'" % k.get("id"), url=db)
    tap.is_(rows, [[sha256_hex(key), key[:12], a.id]], "the row holds the SHA-256 of the key, its prefix, the owner")
    tap.is_(pg.query("SELECT count(*) FROM api_keys t WHERE position('%s' in t::text) > 0 OR "
                     "position('%s' in encode(key_hash, 'escape')) > 0" % (key[12:], key[12:]), url=db), [["0"]],
            "no stored column contains the key (beyond its 12-character prefix)")
    dump = "\n".join("\t".join(x) for x in pg.query(
        "SELECT t::text FROM users t UNION ALL SELECT t::text FROM refresh_tokens t UNION ALL "
        "SELECT t::text FROM credit_transactions t", url=db))
    tap.ok(key[12:] not in dump, "the key appears nowhere else in the database either")

    # Using the key: Bearer and X-API-Key, as the same user.
    me = srv.request("GET", "/auth/me", headers={"Authorization": "Bearer " + key})
    tap.is_((me.status, (me.json or {}).get("id")), (200, a.id), "the key works as Authorization: Bearer")
    me = srv.request("GET", "/auth/me", headers={"X-API-Key": key})
    tap.is_((me.status, (me.json or {}).get("id")), (200, a.id), "the key works as X-API-Key")
    r = srv.request("GET", "/credits", headers={"X-API-Key": key})
    tap.is_(r.status, 200, "the key works on another route (GET /credits)")
    for bad, what in ((key[:-1], "one character short"), (key + "A", "one character long"),
                      (key[:-1] + ("A" if key[-1] != "A" else "B"), "last character changed"),
                      ("SK_" + key[3:], "upper-case prefix"), (key[12:], "without its prefix"),
                      ("sk_" + "x" * 300, "300 characters long")):
        r = srv.request("GET", "/auth/me", headers={"X-API-Key": bad})
        tap.is_((r.status, r.json), BAD_CRED, "a key %s is refused" % what)
        tap.is_(r.headers.get("www-authenticate"), "Bearer", "a key %s: WWW-Authenticate: Bearer" % what)

    # List: active keys of the caller, never the key itself; last_used_at set by the first use.
    r = a.get("/api-keys")
    tap.is_(r.status, 200, "GET /api-keys is 200")
    lst = r.json if isinstance(r.json, list) else []
    tap.is_([x.get("name") for x in lst], ["second", "ci runner"], "list shows the two keys, newest first")
    tap.ok(all(sorted(x) == ["created_at", "id", "last_used_at", "name", "prefix", "revoked_at"] for x in lst),
           "list items have exactly id, name, prefix, created_at, last_used_at, revoked_at", lst)
    tap.ok(key not in r.raw.decode() and key2 not in r.raw.decode(), "the list does not contain the keys")
    tap.ok(all(x.get("revoked_at") is None for x in lst), "active keys have revoked_at null")
    first = next((x for x in lst if x.get("id") == k.get("id")), {})
    tap.is_(first.get("prefix"), key[:12], "list shows the prefix")

    def used_at(key_id):
        for x in a.get("/api-keys").json or []:
            if x.get("id") == key_id:
                return x.get("last_used_at")
        return None
    t1 = wait_until(lambda: used_at(k.get("id")), 5, 0.1)
    tap.like(t1, ISO_Z_RE, "last_used_at is set after the key was used")
    tap.is_(used_at(r2.json.get("id") if isinstance(r2.json, dict) else None), None,
            "last_used_at stays null for the unused key")
    for _ in range(5):
        srv.request("GET", "/auth/me", headers={"X-API-Key": key})
    time.sleep(0.5)
    tap.is_(used_at(k.get("id")), t1, "more uses within a minute do not rewrite last_used_at (debounced)")
    # (A later use rewrites it once it is a minute old; the test does not wait that long.)

    # A burst of concurrent requests with a key all succeed.
    out = []

    def use():
        out.append(srv.request("GET", "/credits", headers={"Authorization": "Bearer " + key2}).status)
    ts = [threading.Thread(target=use) for _ in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    tap.is_(out, [200] * 20, "20 concurrent requests with one key all 200")

    # Isolation: B sees none of A's keys and cannot revoke them.
    r = b.get("/api-keys")
    tap.is_((r.status, r.json), (200, []), "another user's list is empty")
    r = b.delete("/api-keys/" + k.get("id", ""))
    tap.is_((r.status, r.json), NOT_FOUND, "DELETE of another user's key is 404")
    tap.is_(srv.request("GET", "/auth/me", headers={"X-API-Key": key}).status, 200, "... and the key still works")
    r = b.post("/api-keys", {"name": "b's"})
    kb = r.json if isinstance(r.json, dict) else {}
    me = srv.request("GET", "/auth/me", headers={"X-API-Key": kb.get("key", "")})
    tap.is_((me.json or {}).get("id"), b.id, "B's key authenticates B")
    tap.is_([x.get("name") for x in a.get("/api-keys").json or []], ["second", "ci runner"], "A's list unchanged")

    # Revoke: 401 at once, gone from the list, a second DELETE is 404.
    r = a.delete("/api-keys/" + k.get("id", "").upper())
    tap.is_((r.status, (r.json or {}).get("success")), (200, True), "DELETE /api-keys/{id} (id in upper case) is 200")
    r = srv.request("GET", "/auth/me", headers={"X-API-Key": key})
    tap.is_((r.status, r.json), BAD_CRED, "the revoked key is refused immediately (X-API-Key)")
    r = srv.request("GET", "/auth/me", headers={"Authorization": "Bearer " + key})
    tap.is_((r.status, r.json), BAD_CRED, "the revoked key is refused immediately (Bearer)")
    tap.is_([x.get("name") for x in a.get("/api-keys").json or []], ["second"], "the revoked key left the list")
    tap.is_(pg.query("SELECT revoked_at IS NOT NULL FROM api_keys WHERE id = '%s'" % k.get("id"), url=db), [["t"]],
            "the row is kept with revoked_at set")
    r = a.delete("/api-keys/" + k.get("id", ""))
    tap.is_((r.status, r.json), NOT_FOUND, "DELETE of an already revoked key is 404")
    r = a.delete("/api-keys/00000000-0000-4000-8000-000000000000")
    tap.is_((r.status, r.json), NOT_FOUND, "DELETE of an unknown id is 404")
    r = a.delete("/api-keys/not-a-uuid")
    tap.is_(r.status, 422, "DELETE of a malformed id is 422")
    d = (r.json or {}).get("detail") if isinstance(r.json, dict) else None
    tap.is_([e.get("loc") for e in d] if isinstance(d, list) else d, [["path", "key_id"]], "loc is [path, key_id]")
    r = srv.request("DELETE", "/api-keys/" + kb.get("id", ""))
    tap.is_(r.status, 401, "DELETE without credentials is 401")
    # A key can revoke itself; afterwards it is refused.
    r = srv.request("DELETE", "/api-keys/" + kb.get("id", ""), headers={"X-API-Key": kb.get("key", "")})
    tap.is_(r.status, 200, "a key can revoke itself")
    tap.is_(srv.request("GET", "/auth/me", headers={"X-API-Key": kb.get("key", "")}).status, 401,
            "... and is refused afterwards")

    # Validation of the name.
    for body, what in (({}, "no name"), ({"name": ""}, "an empty name"), ({"name": "x" * 201}, "a name of 201 characters"),
                       ({"name": 5}, "a numeric name"), ({"name": None}, "a null name")):
        r = a.post("/api-keys", body)
        d = (r.json or {}).get("detail") if isinstance(r.json, dict) else None
        tap.is_((r.status, [e.get("loc") for e in d] if isinstance(d, list) else d), (422, [["body", "name"]]),
                "POST /api-keys with %s is 422 at body.name" % what)
    r = a.post("/api-keys", {"name": "\u00e9" * 200})
    tap.is_(r.status, 201, "a name of 200 non-ASCII characters is accepted")
    r = srv.request("POST", "/api-keys", body={"name": "x"})
    tap.is_(r.status, 401, "POST /api-keys without credentials is 401")
    r = a.get("/api-keys?limit=1")
    tap.is_((r.status, len(r.json or [])), (200, 1), "GET /api-keys?limit=1 returns one key")
    r = a.get("/api-keys?limit=500")
    tap.is_(r.status, 422, "GET /api-keys?limit=500 is 422")

    tap.ok(srv.alive, "server still running")
    stop_clean(srv)


run(main)
