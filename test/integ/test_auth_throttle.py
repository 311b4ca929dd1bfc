"""Throttling of failed logins and signups (issue 9 point 6, contract section 3): per account and per client
address, 10 failures per 15 minutes, then 429 with Retry-After; shared by processes through PostgreSQL; a
success clears the account; a locked-out account answers exactly like an unknown email."""
import threading
import time

from authutil import PASSWORD, server_env, signup, stop_clean, unique
from harness import Postgres, Server, run, tap

FAIL = (401, {"detail": "Incorrect email or password"})
THROTTLED = {"detail": "Too many failed attempts, try again later"}


def login(srv, email, password, headers=None):
    return srv.request("POST", "/auth/login", body={"email": email, "password": password}, headers=headers,
                       timeout=60)


def retry_after(r):
    v = r.headers.get("retry-after", "")
    return int(v) if v.isdigit() else None


def is_throttled(r, desc, window=900):
    ra = retry_after(r)
    tap.ok(r.status == 429 and r.json == THROTTLED and ra is not None and 1 <= ra <= window,
           "%s: 429 with Retry-After (got %s, Retry-After %r)" % (desc, r.status, r.headers.get("retry-after")), r)


def fail_n(srv, email, n, password="wrong password!", headers=None):
    """n failed logins in a row; returns their (status, body) pairs."""
    return [(r.status, r.json) for r in (login(srv, email, password, headers) for _ in range(n))]


def in_parallel(*fns):
    out = [None] * len(fns)

    def run_one(i, fn):
        out[i] = fn()
    ts = [threading.Thread(target=run_one, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def check_account_limit(srv, srv2, pg, db):
    known = signup(srv)
    unknown = "nobody-" + unique() + "@example.com"
    # Two sequences at once (bcrypt takes a while): a known account whose failures alternate between two
    # processes, and an unknown email.
    k, u = in_parallel(lambda: [(r.status, r.json) for r in
                                (login(srv if i % 2 == 0 else srv2, known.email, "wrong password!")
                                 for i in range(10))],
                       lambda: fail_n(srv, unknown, 10))
    tap.is_(k, [FAIL] * 10, "10 wrong passwords for a known account, spread over two processes, are all 401")
    tap.is_(u, [FAIL] * 10, "10 attempts with an unknown email are all 401")

    rk = login(srv2, known.email, "wrong password!")
    is_throttled(rk, "the 11th failure for a known account (counted over two processes, on the second)")
    ru = login(srv2, unknown, "wrong password!")
    is_throttled(ru, "the 11th attempt with an unknown email")
    tap.is_((ru.status, ru.json, sorted(h for h, _ in ru.header_list)),
            (rk.status, rk.json, sorted(h for h, _ in rk.header_list)),
            "a locked-out account and an unknown email get the same answer (status, body, header names)")
    is_throttled(login(srv, known.email, "wrong password!"), "the 12th on the first process")
    r = login(srv, known.email, known.password)
    is_throttled(r, "the right password of a locked-out account")
    r = login(srv, known.email.upper(), "wrong password!")
    is_throttled(r, "the locked-out account's email in another case")

    # Signups: failures (an email already registered) count on the account too, and a locked-out signup never
    # says whether the email is taken.
    r = srv.request("POST", "/auth/signup", body={"email": known.email, "username": unique(), "password": PASSWORD})
    is_throttled(r, "a signup with the locked-out account's email")
    r = srv.request("POST", "/auth/signup", body={"email": unknown, "username": unique(), "password": PASSWORD})
    is_throttled(r, "a signup with the locked-out unknown email (not created)")
    tap.is_(pg.query("SELECT count(*) FROM users WHERE lower(email) = lower('%s')" % unknown, url=db), [["0"]],
            "the throttled signup created no user")
    taken = signup(srv)
    outs = [srv.request("POST", "/auth/signup", timeout=60,
                        body={"email": taken.email, "username": unique(), "password": PASSWORD}).status
            for _ in range(11)]
    tap.is_(outs, [400] * 10 + [429], "10 signups with a taken email are 400, the 11th is 429")


def check_success_clears(pg):
    # A limit of 3 on a database of its own keeps the password checks few; the default 10 is checked above.
    db = pg.fresh_database()
    srv = Server(db, env=server_env(LOGIN_MAX_FAILURES=3)).start()
    acct = signup(srv)
    tap.is_(fail_n(srv, acct.email, 3), [FAIL] * 3, "limit 3: 3 failures are 401")
    r = login(srv, acct.email, acct.password)
    is_throttled(r, "limit 3: the right password as the 4th attempt")
    srv2 = Server(db, env=server_env(LOGIN_MAX_FAILURES=3)).start()
    acct2 = signup(srv2)
    tap.is_(fail_n(srv, acct2.email, 2), [FAIL] * 2, "another account: 2 failures")
    r = login(srv2, acct2.email, acct2.password)
    tap.is_(r.status, 200, "the right password after 2 failures logs in (on the other process)")
    tap.is_(pg.query("SELECT count(*) FROM auth_throttle WHERE key = 'account:' || lower('%s')" % acct2.email,
                     url=db), [["0"]], "the success deleted the account's count")
    got = in_parallel(*[lambda: login(srv, acct2.email, "wrong password!").status for _ in range(3)])
    tap.is_(got, [401] * 3, "after it, 3 more failures are allowed again (401, sent at once)")
    is_throttled(login(srv, acct2.email, "wrong password!"), "and the next one is refused")
    stop_clean(srv, "limit-3 server")
    stop_clean(srv2, "second limit-3 server")


def check_address_limit(pg):
    # A low per-address limit on a database of its own (every test client is 127.0.0.1).
    db = pg.fresh_database()
    env = server_env(LOGIN_MAX_FAILURES_PER_ADDRESS=4, LOGIN_MAX_FAILURES=3)
    proxied = Server(db, env=dict(env, TRUST_PROXY=1)).start()
    direct = Server(db, env=env).start()

    def xff(a):
        return {"X-Forwarded-For": "198.51.100.1, " + a}
    emails = [unique() + "@example.com" for _ in range(5)]
    got = in_parallel(*[lambda e=e: login(proxied, e, "wrong password!", xff("203.0.113.7")).status
                        for e in emails[:4]])
    tap.is_(got, [401] * 4, "behind a trusted proxy: 4 failures from one client (4 emails) are 401")
    is_throttled(login(proxied, emails[4], "wrong password!", xff("203.0.113.7")),
                 "the 5th failure from that client, with a fresh email")
    tap.is_(login(proxied, emails[4], "wrong password!", xff("203.0.113.8")).status, 401,
            "another client address behind the proxy is not affected")
    rows = pg.query("SELECT key FROM auth_throttle WHERE key LIKE 'address:%' ORDER BY key", url=db)
    tap.is_(rows, [["address:203.0.113.7"], ["address:203.0.113.8"]],
            "the address counted is the last X-Forwarded-For entry, not the client-supplied first one")

    got = in_parallel(*[lambda i=i: login(direct, emails[i], "wrong password!", xff("192.0.2.%d" % i)).status
                        for i in range(4)])
    tap.is_(got, [401] * 4, "without TRUST_PROXY: 4 failures with 4 different X-Forwarded-For values are 401")
    is_throttled(login(direct, emails[0], "wrong password!", xff("192.0.2.99")),
                 "the 5th is refused: X-Forwarded-For is ignored, the peer address counts")
    r = direct.request("POST", "/auth/signup", body={"email": unique() + "@example.com", "username": unique(),
                                                    "password": PASSWORD})
    is_throttled(r, "a signup from the throttled address")
    stop_clean(proxied, "proxied server")
    stop_clean(direct, "direct server")


def check_window_ends(pg):
    # One failure allowed in an 8 s window (the first attempt's password check may take seconds under ASan).
    srv = Server(pg.fresh_database(), env=server_env(LOGIN_MAX_FAILURES=1, LOGIN_FAILURE_WINDOW_S=8)).start()
    email = unique() + "@example.com"
    tap.is_(login(srv, email, "wrong password!").status, 401, "window test: the first failure is 401")
    r = login(srv, email, "wrong password!")
    is_throttled(r, "window test: the second", 8)
    ra = retry_after(r) or 8
    time.sleep(ra + 0.5)
    tap.is_(login(srv, email, "wrong password!").status, 401,
            "after Retry-After (%d s) the window has ended: 401 again, not 429" % ra)
    acct = signup(srv)
    tap.ok(acct.id is not None, "and a signup goes through")
    stop_clean(srv, "window test server")


def main():
    pg = Postgres.shared()
    db = pg.fresh_database()
    srv = Server(db, env=server_env()).start()
    srv2 = Server(db, env=server_env()).start()
    for check, args in ((check_account_limit, (srv, srv2, pg, db)), (check_success_clears, (pg,)),
                        (check_address_limit, (pg,)), (check_window_ends, (pg,))):
        t0 = time.monotonic()
        check(*args)
        tap.diag("%s took %.1f s" % (check.__name__, time.monotonic() - t0))
    stop_clean(srv, "first server")
    stop_clean(srv2, "second server")


run(main)
