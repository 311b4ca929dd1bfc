"""Integrations (API.md section 4): CRUD, the secret shown once then only via /secret, URL validation, 404s and
isolation between users, on the real binary over HTTP."""
import base64
import uuid

from harness import Postgres, Server, run, tap

FIELDS = {"id", "name", "webhook_url", "platform_type", "is_active", "last_test_at", "last_test_status",
          "last_success_at", "consecutive_failures", "created_at"}
ISO_Z = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"


def signup(srv, name):
    r = srv.request("POST", "/auth/signup", {"email": name + "@example.com", "username": name,
                                             "password": "correct horse battery"})
    if r.status != 200:
        raise RuntimeError("signup of %s failed: %r" % (name, r))
    return {"Authorization": "Bearer " + r.json["access_token"]}


def loc_of(r):
    """The loc of each 422 problem, as tuples."""
    if r.status != 422 or not isinstance(r.json, dict) or not isinstance(r.json.get("detail"), list):
        return []
    return [tuple(d.get("loc", [])) for d in r.json["detail"]]


def whsec_ok(secret):
    if not isinstance(secret, str) or not secret.startswith("whsec_"):
        return False
    try:
        raw = base64.b64decode(secret[6:], validate=True)
    except ValueError:
        return False
    return 24 <= len(raw) <= 64


def main():
    pg = Postgres.shared()
    srv = Server(pg.fresh_database()).start()
    alice = signup(srv, "alice")
    bob = signup(srv, "bob")

    # -- authentication on every route --
    some = str(uuid.uuid4())
    for method, path in (("POST", "/integrations"), ("GET", "/integrations"), ("GET", "/integrations/" + some),
                         ("GET", "/integrations/%s/secret" % some), ("PATCH", "/integrations/" + some),
                         ("DELETE", "/integrations/" + some)):
        r = srv.request(method, path, {} if method in ("POST", "PATCH") else None)
        tap.is_((r.status, r.json), (401, {"detail": "Not authenticated"}), "%s %s without credentials is 401"
                % (method, path.replace(some, "{id}")))

    # -- create with a generated secret --
    r = srv.request("POST", "/integrations", {"name": "Blog", "webhook_url": "https://blog.example.com/hook"},
                    headers=alice)
    tap.is_(r.status, 201, "POST /integrations is 201")
    a1 = r.json if isinstance(r.json, dict) else {}
    tap.is_(set(a1), FIELDS | {"webhook_secret"}, "201 has the Integration fields plus webhook_secret, nothing else")
    tap.is_((a1.get("name"), a1.get("webhook_url"), a1.get("platform_type"), a1.get("is_active"),
             a1.get("consecutive_failures"), a1.get("last_test_at"), a1.get("last_test_status"),
             a1.get("last_success_at")),
            ("Blog", "https://blog.example.com/hook", "custom", True, 0, None, None, None),
            "201 values: platform_type defaults to custom, active, never tested")
    tap.like(a1.get("created_at"), ISO_Z, "created_at is ISO-8601 UTC with Z")
    tap.ok(whsec_ok(a1.get("webhook_secret")), "a missing secret is generated as whsec_ + base64 of 24-64 bytes",
           a1.get("webhook_secret"))
    secret1 = a1.get("webhook_secret")
    tap.is_(len(base64.b64decode(secret1[6:])) if whsec_ok(secret1) else None, 32, "generated key is 32 bytes")
    a1id = a1.get("id", "")

    r = srv.request("GET", "/integrations/" + a1id, headers=alice)
    tap.is_(r.status, 200, "GET /integrations/{id} is 200")
    tap.is_(set(r.json or {}), FIELDS, "GET shows exactly the Integration fields (no secret, no api_key)")
    tap.is_((r.json or {}).get("webhook_url"), "https://blog.example.com/hook", "GET shows the stored URL")

    r = srv.request("GET", "/integrations/%s/secret" % a1id, headers=alice)
    tap.is_((r.status, r.json), (200, {"webhook_secret": secret1}), "GET /secret returns the generated secret")

    # -- create with a given secret, an api_key and a platform --
    r = srv.request("POST", "/integrations", {"name": "Shop", "webhook_url": "http://shop.example.com:8080/in?x=1",
                                              "webhook_secret": "my-own-secret", "platform_type": "wordpress",
                                              "api_key": "site-key-123"}, headers=alice)
    tap.is_(r.status, 201, "POST with secret, api_key and platform_type is 201")
    a2 = r.json if isinstance(r.json, dict) else {}
    tap.is_((a2.get("webhook_secret"), a2.get("platform_type")), ("my-own-secret", "wordpress"),
            "a given secret is kept and shown once; platform_type stored")
    tap.ok("api_key" not in a2, "the api_key is never returned, not even in the 201", sorted(a2))
    a2id = a2.get("id", "")

    r = srv.request("POST", "/integrations", {"name": "Empty secret", "webhook_url": "https://e.example.com",
                                              "webhook_secret": ""}, headers=alice)
    tap.ok(r.status == 201 and whsec_ok((r.json or {}).get("webhook_secret")),
           "an empty secret counts as missing: one is generated", r)
    a3id = (r.json or {}).get("id", "")
    r = srv.request("POST", "/integrations", {"name": "Null secret", "webhook_url": "https://n.example.com",
                                              "webhook_secret": None, "api_key": None}, headers=alice)
    tap.ok(r.status == 201 and whsec_ok((r.json or {}).get("webhook_secret")),
           "a null secret counts as missing: one is generated", r)
    a4id = (r.json or {}).get("id", "")
    tap.ok(len({secret1, a2.get("webhook_secret")}) == 2, "secrets differ between integrations")

    # -- list: newest first, never a secret, paging --
    r = srv.request("GET", "/integrations", headers=alice)
    tap.is_(r.status, 200, "GET /integrations is 200")
    lst = r.json if isinstance(r.json, list) else []
    tap.is_([i.get("id") for i in lst], [a4id, a3id, a2id, a1id], "list is newest first")
    tap.ok(all(set(i) == FIELDS for i in lst), "list items have exactly the Integration fields (no secrets)")
    tap.ok("my-own-secret" not in r.raw.decode() and "site-key-123" not in r.raw.decode() and
           secret1 not in r.raw.decode(), "no secret or api_key anywhere in the list body")
    r = srv.request("GET", "/integrations?skip=1&limit=2", headers=alice)
    tap.is_([i.get("id") for i in (r.json or [])], [a3id, a2id], "?skip=1&limit=2 pages")
    r = srv.request("GET", "/integrations?limit=201", headers=alice)
    tap.is_((r.status, loc_of(r)), (422, [("query", "limit")]), "limit over 200 is 422 on query.limit")

    # -- validation --
    for url, why in (("ftp://x", "ftp scheme"), ("http://", "no host"), ("not a url", "no scheme"),
                     ("https://user:pw@example.com/", "user info"), ("", "empty")):
        r = srv.request("POST", "/integrations", {"name": "Bad", "webhook_url": url}, headers=alice)
        tap.is_((r.status, loc_of(r)), (422, [("body", "webhook_url")]), "webhook_url %r (%s) is 422" % (url, why))
    r = srv.request("POST", "/integrations", {"name": "Bad", "webhook_url": "ftp://x"}, headers=alice)
    d = (r.json or {}).get("detail", [{}])[0]
    tap.is_(d.get("type"), "value_error", "bad webhook_url type is value_error")
    tap.like(d.get("msg", ""), "http or https", "bad webhook_url message says http or https")
    r = srv.request("POST", "/integrations", {}, headers=alice)
    tap.is_((r.status, sorted(loc_of(r))), (422, [("body", "name"), ("body", "webhook_url")]),
            "missing name and webhook_url: both reported")
    tap.is_([d.get("msg") for d in r.json["detail"]] if r.status == 422 else None,
            ["Field required", "Field required"], "both say Field required")
    r = srv.request("POST", "/integrations", {"name": 5, "webhook_url": ["https://x.example.com"]}, headers=alice)
    tap.is_((r.status, sorted(loc_of(r))), (422, [("body", "name"), ("body", "webhook_url")]),
            "wrong types are 422 on each field")
    r = srv.request("POST", "/integrations", {"name": "x" * 201, "webhook_url": "https://x.example.com"},
                    headers=alice)
    tap.is_((r.status, loc_of(r)), (422, [("body", "name")]), "a name over 200 characters is 422")
    r = srv.request("POST", "/integrations", b"{\"name\": \"x\", ", headers={**alice, "Content-Type":
                                                                             "application/json"})
    tap.is_(r.status, 422, "truncated JSON is 422")
    r = srv.request("POST", "/integrations", b"[" * 5000 + b"]" * 5000, headers={**alice, "Content-Type":
                                                                                 "application/json"})
    tap.is_(r.status, 422, "deeply nested JSON is 422")
    r = srv.request("POST", "/integrations", "[1, 2]", headers={**alice, "Content-Type": "application/json"})
    tap.is_(r.status, 422, "a JSON array body is 422")

    # -- PATCH --
    r = srv.request("PATCH", "/integrations/" + a1id, {"name": "Blog 2", "webhook_url": "https://new.example.com/h",
                                                       "is_active": False}, headers=alice)
    tap.is_(r.status, 200, "PATCH /integrations/{id} is 200")
    tap.is_(((r.json or {}).get("name"), (r.json or {}).get("webhook_url"), (r.json or {}).get("is_active")),
            ("Blog 2", "https://new.example.com/h", False), "PATCH changed name, url, is_active")
    tap.is_(set(r.json or {}), FIELDS, "PATCH reply has no secret")
    r = srv.request("GET", "/integrations/%s/secret" % a1id, headers=alice)
    tap.is_((r.json or {}).get("webhook_secret"), secret1, "PATCH without a secret keeps it")
    r = srv.request("PATCH", "/integrations/" + a1id, {"webhook_secret": "", "api_key": ""}, headers=alice)
    tap.is_(r.status, 200, "PATCH with empty secret and api_key is 200")
    r = srv.request("GET", "/integrations/%s/secret" % a1id, headers=alice)
    tap.is_((r.json or {}).get("webhook_secret"), secret1, "an empty secret in PATCH keeps the stored one")
    r = srv.request("PATCH", "/integrations/" + a1id, {"webhook_secret": "rotated", "is_active": True,
                                                       "platform_type": "ghost"}, headers=alice)
    tap.is_(((r.json or {}).get("is_active"), (r.json or {}).get("platform_type")), (True, "ghost"),
            "PATCH re-enables and changes platform_type")
    r = srv.request("GET", "/integrations/%s/secret" % a1id, headers=alice)
    tap.is_((r.json or {}).get("webhook_secret"), "rotated", "PATCH sets a new secret, readable via /secret")
    r = srv.request("PATCH", "/integrations/" + a1id, None, headers=alice)
    tap.is_((r.status, (r.json or {}).get("name")), (200, "Blog 2"), "PATCH without a body changes nothing")
    r = srv.request("PATCH", "/integrations/" + a1id, {"webhook_url": "http://"}, headers=alice)
    tap.is_((r.status, loc_of(r)), (422, [("body", "webhook_url")]), "PATCH with a bad URL is 422")
    r = srv.request("PATCH", "/integrations/" + a1id, {"is_active": "maybe", "name": ""}, headers=alice)
    tap.is_((r.status, sorted(loc_of(r))), (422, [("body", "is_active"), ("body", "name")]),
            "PATCH with a non-boolean is_active and an empty name is 422 on both")
    rows = pg.query("SELECT api_key FROM webhook_integrations WHERE id = '%s'" % a2id, url=srv.env["DATABASE_URL"])
    tap.is_(rows, [["site-key-123"]], "the api_key is stored for delivery")

    # -- 404 and 422 on ids --
    missing = str(uuid.uuid4())
    for method, path in (("GET", "/integrations/%s"), ("GET", "/integrations/%s/secret"),
                         ("PATCH", "/integrations/%s"), ("DELETE", "/integrations/%s")):
        r = srv.request(method, path % missing, {} if method == "PATCH" else None, headers=alice)
        tap.is_((r.status, r.json), (404, {"detail": "Integration not found"}),
                "%s %s of an unknown id is 404" % (method, path % "{id}"))
        r = srv.request(method, path % "not-a-uuid", {} if method == "PATCH" else None, headers=alice)
        tap.is_((r.status, loc_of(r)), (422, [("path", "integration_id")]),
                "%s %s with a malformed id is 422 on path.integration_id" % (method, path % "{id}"))

    # -- another user sees nothing of alice's --
    r = srv.request("GET", "/integrations", headers=bob)
    tap.is_((r.status, r.json), (200, []), "bob's list is empty")
    for method, path in (("GET", "/integrations/%s"), ("GET", "/integrations/%s/secret"),
                         ("PATCH", "/integrations/%s"), ("DELETE", "/integrations/%s")):
        r = srv.request(method, path % a2id, {"name": "pwned"} if method == "PATCH" else None, headers=bob)
        tap.is_((r.status, r.json), (404, {"detail": "Integration not found"}),
                "bob: %s %s of alice's integration is 404" % (method, path % "{id}"))
    r = srv.request("GET", "/integrations/" + a2id, headers=alice)
    tap.is_((r.status, (r.json or {}).get("name")), (200, "Shop"), "alice's integration is untouched by bob")
    r = srv.request("POST", "/integrations", {"name": "Bob's", "webhook_url": "https://bob.example.com"},
                    headers=bob)
    bid = (r.json or {}).get("id")
    r = srv.request("GET", "/integrations", headers=alice)
    tap.ok(bid is not None and bid not in [i.get("id") for i in (r.json or [])], "bob's integration is not in "
           "alice's list")

    # -- DELETE --
    r = srv.request("DELETE", "/integrations/" + a3id, headers=alice)
    tap.is_((r.status, r.json), (200, {"success": True, "message": "Integration deleted"}), "DELETE is 200")
    r = srv.request("GET", "/integrations/" + a3id, headers=alice)
    tap.is_((r.status, r.json), (404, {"detail": "Integration not found"}), "a deleted integration is 404")
    r = srv.request("DELETE", "/integrations/" + a3id, headers=alice)
    tap.is_(r.status, 404, "deleting twice is 404")
    r = srv.request("GET", "/integrations", headers=alice)
    tap.is_([i.get("id") for i in (r.json or [])], [a4id, a2id, a1id], "the deleted one left the list")

    tap.ok(srv.alive, "server still running")
    code, _ = srv.stop()
    tap.is_(code, 0, "SIGTERM: clean exit (under ASan: no leak, no sanitizer report)")
    tap.ok(not any(s in srv.log() for s in ("AddressSanitizer", "LeakSanitizer", "runtime error:")),
           "no sanitizer report in the server log")


run(main)
