"""Authentication (contract section 3): signup, login, refresh rotation and its races, logout, me, google, the
ROUTE_USER gate's 401s, and JWT tampering, on the real binary against PostgreSQL."""
import re
import threading
import time

from authutil import (ACCESS_TTL, COOKIE_RE, ISO_Z_RE, JWT_SECRET, PASSWORD, UUID_RE, access_payload, b64u,
                      b64u_decode, bearer, cookie_header, make_jwt, refresh_cookie, server_env, set_cookies,
                      sha256_hex, signup, stop_clean, unique)
from harness import Postgres, Server, run, tap

SIGNUP_CREDITS = 7
NOT_AUTH = {"detail": "Not authenticated"}
BAD_CRED = {"detail": "Could not validate credentials"}


def is_401(r, body, desc):
    tap.is_((r.status, r.json), (401, body), desc)
    tap.is_(r.headers.get("www-authenticate"), "Bearer", desc + ": WWW-Authenticate: Bearer")


def loc_of(r):
    """The locs of a 422 answer, as tuples."""
    if r.status != 422 or not isinstance(r.json, dict) or not isinstance(r.json.get("detail"), list):
        return None
    return sorted(tuple(e.get("loc", [])) for e in r.json["detail"])


def check_signup(srv, db, pg):
    name = unique("Sig")
    email = name + "@Example.COM"
    r = srv.request("POST", "/auth/signup",
                    body={"email": email, "username": name, "password": PASSWORD, "plan": "enterprise",
                          "credits": 9999, "is_admin": True})
    tap.is_(r.status, 200, "signup is 200 (extra fields ignored)")
    b = r.json if isinstance(r.json, dict) else {}
    tap.is_(sorted(b), ["access_token", "token_type", "user"], "signup body has exactly user, access_token, token_type")
    tap.is_(b.get("token_type"), "bearer", "token_type is bearer")
    u = b.get("user") if isinstance(b.get("user"), dict) else {}
    tap.is_(sorted(u), ["credits", "email", "id", "plan", "username"], "user has exactly id, email, username, credits, plan")
    tap.like(u.get("id"), UUID_RE, "user id is a lowercase UUID")
    tap.is_((u.get("email"), u.get("username")), (email, name), "user email and username as given")
    tap.is_((u.get("credits"), u.get("plan")), (SIGNUP_CREDITS, "free"),
            "new user has SIGNUP_CREDITS credits and plan free (extra plan/credits ignored)")
    cs = set_cookies(r)
    tap.is_(len(cs), 1, "signup sets one cookie")
    tap.like(cs[0] if cs else "", COOKIE_RE, "Set-Cookie is exactly refresh_token=<token>; HttpOnly; "
             "Max-Age=604800; Path=/; SameSite=Lax")
    tok = b.get("access_token") or ""
    parts = tok.split(".")
    tap.is_(len(parts), 3, "access token is a three-part JWT")
    if len(parts) == 3:
        import json as _json
        hdr = _json.loads(b64u_decode(parts[0]))
        pay = _json.loads(b64u_decode(parts[1]))
        tap.is_(hdr.get("alg"), "HS256", "access token alg is HS256")
        tap.is_(pay.get("sub"), u.get("id"), "access token sub is the user id")
        tap.is_(pay.get("exp", 0) - pay.get("iat", 0), ACCESS_TTL, "access token lives 30 minutes")
        tap.ok(abs(pay.get("iat", 0) - time.time()) < 30, "access token iat is now", pay)
        want = make_jwt(pay, JWT_SECRET, header=hdr)
        tap.is_(tok, want, "access token is HMAC-SHA256 over header.payload with JWT_SECRET")
    r2 = srv.request("GET", "/auth/me", headers=bearer(tok))
    tap.is_((r2.status, r2.json), (200, u), "GET /auth/me with the new token is the user object")

    # Storage: a bcrypt hash, never the password; the refresh token only as its SHA-256.
    rows = pg.query("SELECT password_hash, credits, plan FROM users WHERE id = '%s'" % u.get("id"), url=db)
    tap.ok(len(rows) == 1 and rows[0][0].startswith("$2") and PASSWORD not in rows[0][0],
           "password stored as a bcrypt hash, not in clear", rows)
    tap.is_(rows[0][1:] if rows else None, [str(SIGNUP_CREDITS), "free"], "stored credits and plan")
    c = refresh_cookie(r) or ""
    rows = pg.query("SELECT encode(token_hash, 'hex') FROM refresh_tokens WHERE user_id = '%s'" % u.get("id"), url=db)
    tap.is_(rows, [[sha256_hex(c)]], "refresh token stored only as its SHA-256")
    tap.is_(pg.query("SELECT count(*) FROM refresh_tokens r, users u WHERE u.id = '%s' AND "
                     "(position('%s' in r::text) > 0 OR position('%s' in u::text) > 0)" % (u.get("id"), c, PASSWORD),
                     url=db), [["0"]], "neither the cookie nor the password appears in any stored column")

    # Duplicates, case-insensitive, and a race of identical signups.
    for body, what in (({"email": email.lower(), "username": unique(), "password": PASSWORD}, "same email, other case"),
                       ({"email": unique() + "@example.com", "username": name.upper(), "password": PASSWORD},
                        "same username, other case"),
                       ({"email": email, "username": name, "password": PASSWORD}, "same email and username")):
        r = srv.request("POST", "/auth/signup", body=body)
        tap.is_((r.status, r.json), (400, {"detail": "Email or username already registered"}),
                "duplicate signup (%s) is 400" % what)
        tap.is_(set_cookies(r), [], "duplicate signup (%s) sets no cookie" % what)

    race = unique("race")
    results = []

    def one(i):
        results.append(srv.request("POST", "/auth/signup", timeout=30, body={
            "email": race + "@example.com", "username": race + str(i), "password": PASSWORD}).status)
    ts = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    tap.is_(sorted(results), [200] + [400] * 5, "6 racing signups with one email: one 200, five 400")
    tap.is_(pg.query("SELECT count(*) FROM users WHERE lower(email) = '%s@example.com'" % race, url=db), [["1"]],
            "the race created one user")

    # Validation: 422 with the field's loc.
    good = {"email": unique() + "@example.com", "username": unique(), "password": PASSWORD}
    cases = [
        ({"email": "not-an-email"}, "email", "email without @"),
        ({"email": "a@b"}, "email", "email without a dot in the domain"),
        ({"email": "@example.com"}, "email", "email without local part"),
        ({"email": "a@@example.com"}, "email", "email with two @"),
        ({"email": "a b@example.com"}, "email", "email with a space"),
        ({"email": "a@example."}, "email", "email ending in a dot"),
        ({"email": ""}, "email", "empty email"),
        ({"email": "a\u00a0b@example.com"}, "email", "email with a no-break space"),
        ({"email": 42}, "email", "email a number"),
        ({"username": "ab"}, "username", "username of 2 characters"),
        ({"username": "a" * 51}, "username", "username of 51 characters"),
        ({"username": "bad name"}, "username", "username with a space"),
        ({"username": "bad!"}, "username", "username with !"),
        ({"username": "caf\u00e9"}, "username", "username with a non-ASCII letter"),
        ({"password": "1234567"}, "password", "password of 7 characters"),
        ({"password": None}, "password", "password null"),
    ]
    for patch, field, what in cases:
        body = dict(good)
        body.update(patch)
        r = srv.request("POST", "/auth/signup", body=body)
        tap.is_(loc_of(r), [("body", field)], "signup with %s is 422 at body.%s" % (what, field))
    r = srv.request("POST", "/auth/signup", body=dict(good, username="a" * 50, email=unique() + "@x.example.org"))
    tap.is_(r.status, 200, "username of exactly 50 characters is accepted")
    r = srv.request("POST", "/auth/signup", body=dict(good, username="a.b-c_" + unique()[:5], password="12345678",
                                                     email=unique() + "@example.com"))
    tap.is_(r.status, 200, "username with . - _ and a password of exactly 8 characters are accepted")
    r = srv.request("POST", "/auth/signup", body={})
    tap.is_(loc_of(r), [("body", "email"), ("body", "password"), ("body", "username")],
            "signup {} is 422 naming all three fields")
    r = srv.request("POST", "/auth/signup", body={"email": good["email"]})
    tap.is_(loc_of(r), [("body", "password"), ("body", "username")], "signup without username and password is 422")
    r = srv.request("POST", "/auth/signup", body="this is not json", headers={"Content-Type": "application/json"})
    tap.is_(r.status, 422, "signup with a non-JSON body is 422")
    tap.ok(isinstance(r.json, dict) and isinstance(r.json.get("detail"), list), "non-JSON 422 has a detail list", r)
    r = srv.request("POST", "/auth/signup", body=[good])
    tap.is_(r.status, 422, "signup with a JSON array body is 422")
    r = srv.request("POST", "/auth/signup", body=b"", headers={"Content-Type": "application/json"})
    tap.is_(r.status, 422, "signup without a body is 422")
    r = srv.request("POST", "/auth/signup", body='{"email": "x@example.com", "username": "abc"',
                    headers={"Content-Type": "application/json"})
    tap.is_(r.status, 422, "signup with truncated JSON is 422")
    tap.is_(pg.query("SELECT count(*) FROM users WHERE email = '%s'" % good["email"], url=db), [["0"]],
            "no failed signup created a user")
    return u


def check_login(srv, acct):
    r = srv.request("POST", "/auth/login", body={"email": acct.email, "password": acct.password, "remember": True})
    tap.is_(r.status, 200, "login is 200 (extra fields ignored)")
    b = r.json if isinstance(r.json, dict) else {}
    tap.is_(sorted(b), ["access_token", "token_type", "user"], "login body has exactly user, access_token, token_type")
    tap.is_(b.get("user"), {"id": acct.id, "email": acct.email, "username": acct.username, "credits": SIGNUP_CREDITS,
                            "plan": "free"}, "login user object")
    tap.is_(b.get("token_type"), "bearer", "login token_type is bearer")
    tap.ok(refresh_cookie(r) is not None, "login sets the refresh cookie in the contract's form", set_cookies(r))
    tap.ok(refresh_cookie(r) != acct.cookie, "login issues a new refresh token")
    r2 = srv.request("GET", "/auth/me", headers=bearer(b.get("access_token", "")))
    tap.is_(r2.status, 200, "login's access token works")
    r = srv.request("POST", "/auth/login", body={"email": acct.email.upper(), "password": acct.password})
    tap.is_(r.status, 200, "login with the email in other case is 200")

    # Password checks run on the thread pool: while 8 logins hash, the loop still answers at once.
    outs = []

    def slow():
        outs.append(srv.request("POST", "/auth/login", body={"email": acct.email, "password": acct.password},
                                timeout=30).status)
    ts = [threading.Thread(target=slow) for _ in range(8)]
    for t in ts:
        t.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    h = srv.request("GET", "/health")
    h2 = srv.request("GET", "/auth/me", headers=bearer(acct.token or ""))
    took = time.monotonic() - t0
    for t in ts:
        t.join()
    tap.is_(outs, [200] * 8, "8 concurrent logins all 200")
    tap.ok(h2.status == 200 and took < 0.2, "requests answered within 0.2 s while 8 logins were hashing "
           "(took %.3f s, /health %d)" % (took, h.status))

    fail = {"detail": "Incorrect email or password"}
    r = srv.request("POST", "/auth/login", body={"email": acct.email, "password": acct.password + "x"})
    tap.is_((r.status, r.json), (401, fail), "login with a wrong password is 401")
    tap.is_(set_cookies(r), [], "failed login sets no cookie")
    r = srv.request("POST", "/auth/login", body={"email": "nobody-" + unique() + "@example.com", "password": PASSWORD})
    tap.is_((r.status, r.json), (401, fail), "login with an unknown email is 401")
    r = srv.request("POST", "/auth/login", body={"email": acct.email, "password": acct.password[:-1]})
    tap.is_((r.status, r.json), (401, fail), "login with a prefix of the password is 401")
    r = srv.request("POST", "/auth/login", body={"email": acct.email})
    tap.is_(loc_of(r), [("body", "password")], "login without password is 422")
    r = srv.request("POST", "/auth/login", body={"password": PASSWORD})
    tap.is_(loc_of(r), [("body", "email")], "login without email is 422")
    r = srv.request("POST", "/auth/login", body="[]", headers={"Content-Type": "application/json"})
    tap.is_(r.status, 422, "login with a JSON array is 422")


def check_refresh(srv, db, pg):
    acct = signup(srv)
    r = srv.request("POST", "/auth/refresh", headers=cookie_header(acct.cookie))
    tap.is_(r.status, 200, "refresh with the cookie is 200 (no body)")
    b = r.json if isinstance(r.json, dict) else {}
    tap.is_(sorted(b), ["access_token", "token_type", "user"], "refresh answers like login")
    tap.is_((b.get("user") or {}).get("id"), acct.id, "refresh is for the cookie's user")
    new = refresh_cookie(r)
    tap.ok(new is not None and new != acct.cookie, "refresh rotates the cookie", set_cookies(r))
    tap.is_(srv.request("GET", "/auth/me", headers=bearer(b.get("access_token", ""))).status, 200,
            "refreshed access token works")
    rows = pg.query("SELECT o.rotated_at IS NOT NULL, o.replaced_by = n.id, o.family_id = n.family_id"
                    "  FROM refresh_tokens o, refresh_tokens n WHERE o.token_hash = decode('%s', 'hex')"
                    "   AND n.token_hash = decode('%s', 'hex')" % (sha256_hex(acct.cookie), sha256_hex(new or "")),
                    url=db)
    tap.is_(rows, [["t", "t", "t"]], "old token marked rotated, replaced_by the new one, same family")

    r = srv.request("POST", "/auth/refresh", headers={"Cookie": "theme=dark; refresh_token=%s; x=1" % new})
    tap.is_(r.status, 200, "refresh finds the cookie among others")
    latest = refresh_cookie(r)
    r = srv.request("POST", "/auth/refresh", headers={"Cookie": 'refresh_token="%s"' % latest})
    tap.is_(r.status, 200, "refresh accepts a quoted cookie value")
    latest = refresh_cookie(r) or latest

    is_401(srv.request("POST", "/auth/refresh"), {"detail": "Refresh token not found"}, "refresh without cookie")
    is_401(srv.request("POST", "/auth/refresh", headers={"Cookie": "other=1"}), {"detail": "Refresh token not found"},
           "refresh without the refresh_token cookie")
    is_401(srv.request("POST", "/auth/refresh", headers={"Cookie": "refresh_token=garbage"}),
           {"detail": "Invalid token"}, "refresh with a garbage cookie")
    is_401(srv.request("POST", "/auth/refresh", headers={"Cookie": "refresh_token=" + "A" * 600}),
           {"detail": "Invalid token"}, "refresh with an oversized cookie")
    is_401(srv.request("POST", "/auth/refresh", headers={"Cookie": "refresh_token=" + acct.token}),
           {"detail": "Invalid token"}, "refresh with an access token as the cookie")

    # Ten refreshes racing with one cookie all succeed, each with a distinct working token.
    acct2 = signup(srv)
    out = [None] * 10

    def one(i):
        out[i] = srv.request("POST", "/auth/refresh", headers=cookie_header(acct2.cookie), timeout=30)
    ts = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    tap.is_([x.status if x else None for x in out], [200] * 10, "10 concurrent refreshes with one cookie all 200")
    toks = [refresh_cookie(x) for x in out if x is not None]
    tap.ok(None not in toks and len(set(toks)) == 10, "10 distinct rotated cookies", toks)
    tap.ok(all((x.json or {}).get("user", {}).get("id") == acct2.id for x in out if x), "all for the same user")
    rows = pg.query("SELECT count(*), count(DISTINCT family_id) FROM refresh_tokens WHERE user_id = '%s'" % acct2.id,
                    url=db)
    tap.is_(rows, [["11", "1"]], "the race stored 10 new tokens in the login's family")
    # Any of them works (the browser keeps whichever Set-Cookie came last).
    r = srv.request("POST", "/auth/refresh", headers=cookie_header(toks[3] if len(toks) > 3 else ""))
    tap.is_(r.status, 200, "one of the raced tokens refreshes")
    survivor = refresh_cookie(r)

    # Past the grace window the rotated cookie is refused; its successors are not.
    r = srv.request("POST", "/auth/refresh", headers=cookie_header(acct2.cookie))
    tap.is_(r.status, 200, "a rotated cookie still refreshes within the grace window")
    pg.query("UPDATE refresh_tokens SET rotated_at = now() - interval '2 minutes' WHERE token_hash = decode('%s', 'hex')"
             % sha256_hex(acct2.cookie), url=db)
    is_401(srv.request("POST", "/auth/refresh", headers=cookie_header(acct2.cookie)), {"detail": "Invalid token"},
           "a rotated cookie after the grace window")
    r = srv.request("POST", "/auth/refresh", headers=cookie_header(survivor or ""))
    tap.is_(r.status, 200, "the latest cookie still refreshes")
    pg.query("UPDATE refresh_tokens SET rotated_at = now() - interval '59 seconds' WHERE token_hash = decode('%s', 'hex')"
             % sha256_hex(survivor or ""), url=db)
    r = srv.request("POST", "/auth/refresh", headers=cookie_header(survivor or ""))
    tap.is_(r.status, 200, "a cookie rotated 59 s ago still refreshes (grace is 60 s)")
    r2 = srv.request("POST", "/auth/refresh", headers=cookie_header(survivor or ""))
    tap.is_(r2.status, 200, "reusing it does not extend the window (first rotation time kept)")
    rows = pg.query("SELECT rotated_at < now() - interval '58 seconds' FROM refresh_tokens "
                    "WHERE token_hash = decode('%s', 'hex')" % sha256_hex(survivor or ""), url=db)
    tap.is_(rows, [["t"]], "rotated_at keeps the first rotation time")

    # Expired refresh tokens are refused.
    acct3 = signup(srv)
    pg.query("UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE user_id = '%s'" % acct3.id, url=db)
    is_401(srv.request("POST", "/auth/refresh", headers=cookie_header(acct3.cookie)), {"detail": "Invalid token"},
           "an expired refresh token")
    return latest, acct


def check_logout(srv, db, pg):
    acct = signup(srv)
    r = srv.request("POST", "/auth/refresh", headers=cookie_header(acct.cookie))
    rotated = refresh_cookie(r) or ""
    r = srv.request("POST", "/auth/logout", headers=cookie_header(rotated))
    tap.is_(r.status, 200, "logout is 200")
    cs = set_cookies(r)
    tap.ok(len(cs) == 1 and re.match(r'^refresh_token=(""|); .*Max-Age=0; Path=/', cs[0]) is not None,
           "logout clears the cookie (empty value, Max-Age=0, Path=/)", cs)
    is_401(srv.request("POST", "/auth/refresh", headers=cookie_header(rotated)), {"detail": "Invalid token"},
           "refresh with the logged-out cookie")
    is_401(srv.request("POST", "/auth/refresh", headers=cookie_header(acct.cookie)), {"detail": "Invalid token"},
           "refresh with the earlier cookie of the logged-out session (within its grace window)")
    rows = pg.query("SELECT count(*) FILTER (WHERE revoked_at IS NULL) FROM refresh_tokens WHERE user_id = '%s'"
                    % acct.id, url=db)
    tap.is_(rows, [["0"]], "logout revoked every token of the session")
    r = srv.request("POST", "/auth/logout")
    tap.is_(r.status, 200, "logout without a cookie is 200")
    tap.is_(len(set_cookies(r)), 1, "logout without a cookie still clears it")
    r = srv.request("POST", "/auth/logout", headers={"Cookie": "refresh_token=garbage"})
    tap.is_(r.status, 200, "logout with an unknown cookie is 200")
    # Another login of the same user is not affected.
    other = srv.request("POST", "/auth/login", body={"email": acct.email, "password": acct.password})
    c2 = refresh_cookie(other) or ""
    acct_b = signup(srv)
    srv.request("POST", "/auth/logout", headers=cookie_header(acct_b.cookie))
    tap.is_(srv.request("POST", "/auth/refresh", headers=cookie_header(c2)).status, 200,
            "logging out one session leaves the user's other sessions (and other users) alone")


def check_gate(srv, db, pg, u):
    uid = u["id"]
    is_401(srv.request("GET", "/auth/me"), NOT_AUTH, "GET /auth/me without credentials")
    is_401(srv.request("GET", "/credits"), NOT_AUTH, "GET /credits without credentials")
    is_401(srv.request("GET", "/auth/me", headers={"Authorization": "Bearer "}), NOT_AUTH, "an empty Bearer")
    is_401(srv.request("GET", "/auth/me", headers={"Authorization": "Bearer garbage"}), BAD_CRED, "Bearer garbage")
    is_401(srv.request("GET", "/auth/me", headers={"Authorization": "Basic dXNlcjpwYXNz"}), BAD_CRED,
           "Basic credentials")
    is_401(srv.request("GET", "/auth/me", headers={"Authorization": "Bearer sk_" + "A" * 43}), BAD_CRED,
           "an unknown API key")
    is_401(srv.request("GET", "/auth/me", headers={"X-API-Key": "sk_nope"}), BAD_CRED, "an unknown X-API-Key")

    good = make_jwt(access_payload(uid))
    tap.is_(srv.request("GET", "/auth/me", headers=bearer(good)).status, 200,
            "a token made by the test with JWT_SECRET is accepted (so the refusals below mean something)")
    tap.is_(srv.request("GET", "/auth/me", headers={"authorization": "bearer " + good}).status, 200,
            "the Bearer scheme is case-insensitive")
    tap.is_(srv.request("GET", "/auth/me", headers={"X-API-Key": good}).status, 401,
            "an access token in X-API-Key is refused")
    tap.is_(srv.request("GET", "/auth/me", headers=bearer(make_jwt(access_payload(uid, ttl=ACCESS_TTL)))).status,
            200, "a hand-signed token of exactly the configured lifetime is accepted")

    hdr, pay, sig = good.split(".")
    other_pay = b64u('{"sub":"%s","iat":%d,"exp":%d,"type":"access","admin":true}' %
                     (uid, int(time.time()), int(time.time()) + 600))
    tampered = {
        "payload modified, signature kept": hdr + "." + other_pay + "." + sig,
        "signature of another payload": make_jwt(access_payload(uid, ttl=900)).rsplit(".", 1)[0] + "." + sig,
        "signature removed": hdr + "." + pay + ".",
        "signature truncated": hdr + "." + pay + "." + sig[:-2],
        "alg none, no signature": make_jwt(access_payload(uid), alg="none", sign=False),
        "alg none, HS256 signature": make_jwt(access_payload(uid), header={"alg": "none"}).rsplit(".", 1)[0] + "." + sig,
        "alg HS512 signed with JWT_SECRET": make_jwt(access_payload(uid), alg="HS512"),
        "alg HS384 signed with JWT_SECRET": make_jwt(access_payload(uid), alg="HS384"),
        "alg RS256 header": make_jwt(access_payload(uid), header={"alg": "RS256", "typ": "JWT"}),
        "alg missing": make_jwt(access_payload(uid), header={"typ": "JWT"}),
        "alg hs256 lowercase": make_jwt(access_payload(uid), header={"alg": "hs256"}),
        "expired 10 s ago": make_jwt(access_payload(uid, ttl=-10)),
        "expiring now": make_jwt(access_payload(uid, ttl=0)),
        "no exp": make_jwt({"sub": uid, "type": "access"}),
        "exp a string": make_jwt({"sub": uid, "exp": "9999999999", "type": "access"}),
        "signed with another secret": make_jwt(access_payload(uid), secret="another-secret-0123456789abcdef"),
        "signed with an empty secret": make_jwt(access_payload(uid), secret=""),
        "type refresh": make_jwt(access_payload(uid, type="refresh")),
        "no sub": make_jwt({"exp": int(time.time()) + 600, "type": "access"}),
        "sub a number": make_jwt(access_payload(12345)),
        "four parts": good + ".x",
        "two parts": hdr + "." + pay,
        "header not base64": "!!!." + pay + "." + sig,
        "payload not JSON": make_jwt(access_payload(uid)).split(".")[0] + "." + b64u("not json") + ".x",
        "very long": "a" * 5000 + "." + pay + "." + sig,
        # Lifetime bounds (issue 9 point 7): valid signatures, but exp further than the access token lifetime.
        "a ten-year lifetime": make_jwt(access_payload(uid, ttl=10 * 365 * 86400)),
        "exp an hour past the lifetime after iat": make_jwt(access_payload(uid, ttl=ACCESS_TTL + 3600)),
        "no iat and exp a day ahead": make_jwt({"sub": uid, "exp": int(time.time()) + 86400, "type": "access"}),
        "iat and exp both a day ahead": make_jwt(access_payload(uid, iat=int(time.time()) + 86400 - 600,
                                                                exp=int(time.time()) + 86400)),
        "iat a string": make_jwt(access_payload(uid, iat="yesterday")),
    }
    for what, tok in tampered.items():
        is_401(srv.request("GET", "/auth/me", headers=bearer(tok)), BAD_CRED, "JWT with %s" % what)

    # Valid signature, but the subject is not a user: 401 everywhere, never 500.
    ghost = "00000000-0000-4000-8000-000000000000"
    for sub, what in ((ghost, "an unknown user id"), ("not-a-uuid", "not a UUID"), ("", "empty"),
                      ("'; DROP TABLE users; --", "SQL"), (uid.upper(), "the user id in upper case")):
        tok = make_jwt(access_payload(sub))
        r = srv.request("GET", "/auth/me", headers=bearer(tok))
        if sub == uid.upper():
            tap.is_((r.status, (r.json or {}).get("id")), (200, uid), "JWT sub %s: /auth/me is the user" % what)
            continue
        is_401(r, BAD_CRED, "JWT sub %s: /auth/me" % what)
        for method, path, body in (("GET", "/credits", None), ("GET", "/credits/transactions", None),
                                   ("POST", "/api-keys", {"name": "k"}), ("GET", "/api-keys", None)):
            r = srv.request(method, path, body=body, headers=bearer(tok))
            tap.ok(r.status in (401,) or (r.status == 200 and r.json == [] and method == "GET"),
                   "JWT sub %s: %s %s is 401 (or an empty list), not %d" % (what, method, path, r.status), r)
    tap.is_(pg.query("SELECT count(*) FROM users", url=db)[0][0] != "0", True, "users table intact")

    r = srv.request("POST", "/auth/google", body={"token": "x"})
    tap.is_((r.status, r.json), (501, {"detail": "Google sign-in is not configured"}), "POST /auth/google is 501")
    r = srv.request("POST", "/auth/google")
    tap.is_(r.status, 501, "POST /auth/google without a body is 501")


def main():
    pg = Postgres.shared()
    db = pg.fresh_database()
    srv = Server(db, env=server_env(SIGNUP_CREDITS=SIGNUP_CREDITS)).start()
    u = check_signup(srv, db, pg)
    acct = signup(srv)
    check_login(srv, acct)
    check_refresh(srv, db, pg)
    check_logout(srv, db, pg)
    check_gate(srv, db, pg, u)
    tap.ok(srv.alive, "server still running")
    stop_clean(srv)


run(main)
