"""Helpers shared by the auth, API key and credit tests: accounts, cookies, hand-made JWTs. Standard library only.

    from authutil import JWT_SECRET, ADMIN_TOKEN, signup, bearer, make_jwt
"""

import base64
import hashlib
import hmac
import json
import re
import secrets
import time

from harness import tap

JWT_SECRET = "test-jwt-secret-0123456789abcdef"
ADMIN_TOKEN = "test-admin-token-0123456789"
PASSWORD = "correct horse battery"
ACCESS_TTL = 30 * 60

UUID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
ISO_Z_RE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$"
COOKIE_RE = r"^refresh_token=([A-Za-z0-9_-]{43}); HttpOnly; Max-Age=604800; Path=/; SameSite=Lax$"


def server_env(**extra):
    """The environment every test server of these files gets (JWT_SECRET known to the test)."""
    env = {"JWT_SECRET": JWT_SECRET, "ADMIN_TOKEN": ADMIN_TOKEN}
    env.update(extra)
    return env


def unique(prefix="u"):
    return "%s%s" % (prefix, secrets.token_hex(5))


def bearer(token):
    return {"Authorization": "Bearer " + token}


def set_cookies(r):
    """Every Set-Cookie header value of a response, as received."""
    return [v for k, v in r.header_list if k.lower() == "set-cookie"]


def refresh_cookie(r):
    """The refresh token of the one Set-Cookie that has the exact contract form, or None."""
    cs = set_cookies(r)
    if len(cs) != 1:
        return None
    m = re.match(COOKIE_RE, cs[0])
    return m.group(1) if m else None


def cookie_header(token):
    return {"Cookie": "refresh_token=" + token}


class Account:
    """A signed-up user: its id, email, username, access token and refresh cookie."""

    def __init__(self, srv, email, username, password, resp):
        self.srv = srv
        self.email = email
        self.username = username
        self.password = password
        self.resp = resp
        body = resp.json if isinstance(resp.json, dict) else {}
        user = body.get("user") if isinstance(body.get("user"), dict) else {}
        self.id = user.get("id")
        self.token = body.get("access_token")
        self.cookie = refresh_cookie(resp)

    @property
    def auth(self):
        return bearer(self.token or "")

    def get(self, path, **kw):
        return self.srv.request("GET", path, headers=self.auth, **kw)

    def post(self, path, body=None, **kw):
        return self.srv.request("POST", path, body=body, headers=self.auth, **kw)

    def delete(self, path, **kw):
        return self.srv.request("DELETE", path, headers=self.auth, **kw)


def signup(srv, name=None, email=None, password=PASSWORD, check=True):
    """Signs a new user up; returns an Account. With check, a non-200 answer is a failed check."""
    name = name or unique()
    email = email or (name + "@example.com")
    r = srv.request("POST", "/auth/signup", body={"email": email, "username": name, "password": password})
    if check and r.status != 200:
        tap.ok(False, "signup of %s succeeds" % email, repr(r))
    return Account(srv, email, name, password, r)


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def make_jwt(payload, secret=JWT_SECRET, alg="HS256", header=None, sign=True):
    """A JWT made by hand. alg selects the header's alg and, for HS256/HS384/HS512, the HMAC used."""
    hdr = header if header is not None else {"alg": alg, "typ": "JWT"}
    signing_input = b64u(json.dumps(hdr, separators=(",", ":"))) + "." + \
        b64u(json.dumps(payload, separators=(",", ":")))
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}.get(alg)
    if not sign or digest is None:
        return signing_input + "."
    sig = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return signing_input + "." + b64u(sig)


def access_payload(sub, ttl=600, **extra):
    now = int(time.time())
    p = {"sub": sub, "iat": now, "exp": now + ttl, "type": "access"}
    p.update(extra)
    return p


def sha256_hex(s):
    return hashlib.sha256(s.encode()).hexdigest()


def stop_clean(srv, name="server"):
    """Stops srv with SIGTERM and checks a clean exit: code 0 and no sanitizer report (under ASan/LSan the leak
    check runs at exit, which the harness's SIGKILL cleanup would skip)."""
    code, _ = srv.stop()
    tap.is_(code, 0, "%s exits 0 on SIGTERM" % name)
    log = srv.log()
    bad = [line for line in log.splitlines()
           if "Sanitizer" in line or "runtime error:" in line or "ERROR: " in line]
    tap.ok(not bad, "%s log has no sanitizer report" % name, "\n".join(bad[:20]))
