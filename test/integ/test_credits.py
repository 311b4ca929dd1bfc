"""Credits (contract section 4 "Credits" and POST /admin/credits of section 5): balance, ledger consistency,
purchase 501, admin grants and corrections, isolation, on the real binary and PostgreSQL."""
import threading

from authutil import ADMIN_TOKEN, ISO_Z_RE, UUID_RE, server_env, signup, stop_clean
from harness import Postgres, Server, run, tap

SIGNUP_CREDITS = 4
ADMIN = {"Authorization": "Bearer " + ADMIN_TOKEN}
LEDGER_KEYS = ["amount", "balance_after", "created_at", "description", "id", "reference_id", "reference_type",
               "tokens_consumed", "type"]


def ledger(acct, query=""):
    r = acct.get("/credits/transactions" + query)
    return r.json if r.status == 200 and isinstance(r.json, list) else None


def check_consistent(acct, desc):
    """The ledger explains the balance: oldest to newest, each balance_after is the running sum."""
    bal = acct.get("/credits").json or {}
    rows = ledger(acct, "?limit=200") or []
    running, ok = 0, True
    for e in reversed(rows):
        running += e.get("amount", 0)
        ok = ok and e.get("balance_after") == running
    tap.ok(ok and running == bal.get("credits") and (not rows or rows[0]["balance_after"] == bal.get("credits")),
           desc + ": every balance_after is the running sum and the last equals the balance",
           {"balance": bal, "ledger": rows})


def grant(srv, body, headers=ADMIN):
    return srv.request("POST", "/admin/credits", body=body, headers=headers)


def main():
    pg = Postgres.shared()
    db = pg.fresh_database()
    srv = Server(db, env=server_env(SIGNUP_CREDITS=SIGNUP_CREDITS)).start()
    a = signup(srv)
    b = signup(srv)

    r = a.get("/credits")
    tap.is_((r.status, r.json), (200, {"credits": SIGNUP_CREDITS, "plan": "free"}), "GET /credits is {credits, plan}")
    tap.is_(srv.request("GET", "/credits").status, 401, "GET /credits without credentials is 401")
    rows = ledger(a)
    tap.is_(len(rows or []), 1, "a new user's ledger has one entry")
    e = (rows or [{}])[0]
    tap.is_(sorted(e), LEDGER_KEYS, "ledger entries have exactly the contract's fields")
    tap.like(e.get("id"), UUID_RE, "ledger id is a UUID")
    tap.like(e.get("created_at"), ISO_Z_RE, "ledger created_at is ISO-8601 UTC with Z")
    tap.is_({k: e.get(k) for k in ("amount", "balance_after", "type", "reference_type", "reference_id",
                                   "tokens_consumed", "description")},
            {"amount": SIGNUP_CREDITS, "balance_after": SIGNUP_CREDITS, "type": "grant", "reference_type": None,
             "reference_id": None, "tokens_consumed": None, "description": "Signup credits"},
            "the signup credits are a grant in the ledger")

    r = a.post("/credits/purchase", {"package": "pro", "amount": 100})
    tap.is_((r.status, r.json), (501, {"detail": "Payments are not configured"}), "POST /credits/purchase is 501")
    r = a.post("/credits/purchase")
    tap.is_(r.status, 501, "POST /credits/purchase without a body is 501")
    tap.is_(srv.request("POST", "/credits/purchase").status, 401, "POST /credits/purchase without credentials is 401")
    tap.is_(a.get("/credits").json, {"credits": SIGNUP_CREDITS, "plan": "free"}, "purchase changed nothing")

    # Admin grants, by id and by email (any case).
    r = grant(srv, {"user_id": a.id, "amount": 5, "description": "Beta tester"})
    tap.is_(r.status, 200, "POST /admin/credits by user_id is 200")
    tap.is_(r.json, {"success": True, "user_id": a.id, "amount": 5, "credits": SIGNUP_CREDITS + 5},
            "grant answer names the user, amount and new balance")
    r = grant(srv, {"email": a.email.upper(), "amount": 3})
    tap.is_((r.status, (r.json or {}).get("credits"), (r.json or {}).get("user_id")),
            (200, SIGNUP_CREDITS + 8, a.id), "POST /admin/credits by email (other case) is 200")
    r = grant(srv, {"user_id": a.id.upper(), "amount": 1, "description": ""})
    tap.is_((r.status, (r.json or {}).get("credits")), (200, SIGNUP_CREDITS + 9), "user_id in upper case works")
    tap.is_(a.get("/credits").json, {"credits": SIGNUP_CREDITS + 9, "plan": "free"}, "GET /credits shows the grants")
    rows = ledger(a) or []
    tap.is_([(x["amount"], x["balance_after"], x["type"], x["description"]) for x in rows],
            [(1, SIGNUP_CREDITS + 9, "grant", "Admin grant"), (3, SIGNUP_CREDITS + 8, "grant", "Admin grant"),
             (5, SIGNUP_CREDITS + 5, "grant", "Beta tester"), (SIGNUP_CREDITS, SIGNUP_CREDITS, "grant", "Signup credits")],
            "ledger lists the grants newest first with type grant and their descriptions")
    check_consistent(a, "after grants")

    # Corrections: negative amounts, never below zero.
    bal = SIGNUP_CREDITS + 9
    r = grant(srv, {"user_id": a.id, "amount": -2, "description": "Correction"})
    tap.is_((r.status, (r.json or {}).get("credits")), (200, bal - 2), "a negative grant within the balance is 200")
    bal -= 2
    n_before = len(ledger(a, "?limit=200") or [])
    r = grant(srv, {"user_id": a.id, "amount": -(bal + 1)})
    tap.is_(r.status, 400, "a negative grant below zero is 400")
    tap.ok(isinstance(r.json, dict) and isinstance(r.json.get("detail"), str), "... with a detail message", r)
    tap.is_(a.get("/credits").json.get("credits"), bal, "... and the balance is unchanged")
    tap.is_(len(ledger(a, "?limit=200") or []), n_before, "... and no ledger row was written")
    r = grant(srv, {"user_id": a.id, "amount": -bal})
    tap.is_((r.status, (r.json or {}).get("credits")), (200, 0), "a negative grant to exactly zero is 200")
    check_consistent(a, "after corrections")
    r = grant(srv, {"user_id": a.id, "amount": 10})
    bal = 10

    # Overflow of the balance is refused, not a 500.
    pg.query("UPDATE users SET credits = 2147483000 WHERE id = '%s'" % b.id, url=db)
    r = grant(srv, {"user_id": b.id, "amount": 1000000})
    tap.is_(r.status, 400, "a grant that would overflow the balance is 400")
    pg.query("UPDATE users SET credits = %d WHERE id = '%s'" % (SIGNUP_CREDITS, b.id), url=db)

    # Errors.
    r = grant(srv, {"user_id": "00000000-0000-4000-8000-000000000000", "amount": 1})
    tap.is_((r.status, r.json), (404, {"detail": "User not found"}), "unknown user_id is 404")
    r = grant(srv, {"email": "nobody@example.com", "amount": 1})
    tap.is_((r.status, r.json), (404, {"detail": "User not found"}), "unknown email is 404")
    for body, field, what in (({"amount": 1}, "user_id", "neither user_id nor email"),
                              ({"user_id": "x", "amount": 1}, "user_id", "a malformed user_id"),
                              ({"user_id": a.id}, "amount", "no amount"),
                              ({"user_id": a.id, "amount": 0}, "amount", "amount 0"),
                              ({"user_id": a.id, "amount": 1.5}, "amount", "a fractional amount"),
                              ({"user_id": a.id, "amount": "lots"}, "amount", "a text amount"),
                              ({"user_id": a.id, "amount": 10 ** 12}, "amount", "a huge amount"),
                              ({"email": 7, "amount": 1}, "email", "a numeric email")):
        r = grant(srv, body)
        d = (r.json or {}).get("detail") if isinstance(r.json, dict) else None
        locs = [e.get("loc") for e in d] if isinstance(d, list) else d
        tap.ok(r.status == 422 and isinstance(locs, list) and ["body", field] in locs,
               "POST /admin/credits with %s is 422 at body.%s" % (what, field), r)
    tap.is_(grant(srv, "[1]", headers=dict(ADMIN, **{"Content-Type": "application/json"})).status, 422,
            "POST /admin/credits with a JSON array is 422")
    tap.is_(a.get("/credits").json.get("credits"), bal, "no refused grant changed the balance")

    forbidden = (403, {"detail": "Forbidden"})
    for hdrs, what in (({}, "no Authorization"), ({"Authorization": "Bearer wrong"}, "a wrong token"),
                       ({"Authorization": "Bearer " + ADMIN_TOKEN + "x"}, "the token plus a character"),
                       ({"Authorization": "Bearer " + ADMIN_TOKEN[:-1]}, "a prefix of the token"),
                       ({"Authorization": ADMIN_TOKEN}, "the token without Bearer"),
                       ({"X-Admin-Token": ADMIN_TOKEN}, "the token in another header"),
                       ({"Authorization": "Bearer " + a.token}, "a user's access token")):
        r = grant(srv, {"user_id": a.id, "amount": 100}, headers=hdrs)
        tap.is_((r.status, r.json), forbidden, "POST /admin/credits with %s is 403" % what)
    tap.is_(a.get("/credits").json.get("credits"), bal, "no forbidden grant changed the balance")

    # Concurrent grants: every one lands, the ledger stays exact.
    out = []

    def one():
        out.append(grant(srv, {"user_id": b.id, "amount": 1}).status)
    ts = [threading.Thread(target=one) for _ in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    tap.is_(out, [200] * 20, "20 concurrent grants all 200")
    tap.is_(b.get("/credits").json.get("credits"), SIGNUP_CREDITS + 20, "balance is signup + 20")
    bl = ledger(b, "?limit=200") or []
    tap.is_(sorted(x["balance_after"] for x in bl), list(range(SIGNUP_CREDITS, SIGNUP_CREDITS + 21)),
            "balance_after values are distinct and consecutive")
    check_consistent(b, "after concurrent grants")

    # Paging and isolation.
    rows = ledger(b, "?limit=2")
    tap.is_(len(rows or []), 2, "?limit=2 returns two entries")
    tap.is_([x["balance_after"] for x in rows or []], [SIGNUP_CREDITS + 20, SIGNUP_CREDITS + 19], "newest first")
    rows = ledger(b, "?skip=20&limit=5")
    tap.is_([x["balance_after"] for x in rows or []], [SIGNUP_CREDITS], "?skip=20 reaches the signup grant")
    tap.is_(b.get("/credits/transactions?limit=201").status, 422, "?limit=201 is 422")
    tap.is_(b.get("/credits/transactions?skip=-1").status, 422, "?skip=-1 is 422")
    a_ids = {x["id"] for x in ledger(a, "?limit=200") or []}
    b_ids = {x["id"] for x in ledger(b, "?limit=200") or []}
    tap.ok(a_ids and b_ids and not (a_ids & b_ids), "A's and B's ledgers share no entry")
    tap.is_(pg.query("SELECT count(*) FROM credit_transactions WHERE user_id = '%s'" % b.id, url=db), [[str(len(b_ids))]],
            "B's ledger lists exactly B's rows")
    key = (b.post("/api-keys", {"name": "k"}).json or {}).get("key", "")
    r = srv.request("GET", "/credits/transactions?limit=200", headers={"X-API-Key": key})
    tap.is_({x["id"] for x in r.json or []}, b_ids, "through B's API key the ledger is B's")

    # A server without ADMIN_TOKEN refuses every admin call; SIGNUP_CREDITS=0 gives no credits and no ledger row.
    srv2 = Server(db, env=server_env(ADMIN_TOKEN=None, SIGNUP_CREDITS=0)).start()
    for hdrs, what in (({"Authorization": "Bearer " + ADMIN_TOKEN}, "the other server's token"),
                       ({"Authorization": "Bearer "}, "an empty token"), ({}, "nothing")):
        r = srv2.request("POST", "/admin/credits", body={"user_id": a.id, "amount": 1}, headers=hdrs)
        tap.is_((r.status, r.json), forbidden, "without ADMIN_TOKEN configured, %s is 403" % what)
    c = signup(srv2)
    tap.is_(c.get("/credits").json, {"credits": 0, "plan": "free"}, "SIGNUP_CREDITS=0: a new user has 0 credits")
    tap.is_(ledger(c), [], "SIGNUP_CREDITS=0: the ledger is empty")
    tap.ok(srv.alive and srv2.alive, "servers still running")
    stop_clean(srv)
    stop_clean(srv2, "second server")


run(main)
