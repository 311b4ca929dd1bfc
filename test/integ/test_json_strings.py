"""Request JSON strings (issue 9 point 5): an unpaired UTF-16 surrogate escape is refused with the same 422 as
any other invalid string (invalid UTF-8 bytes), never stored as '?'; a proper surrogate pair is a character."""
from authutil import server_env, signup, stop_clean
from harness import Postgres, Server, run, tap


def main():
    pg = Postgres.shared()
    db = pg.fresh_database()
    srv = Server(db, env=server_env()).start()
    a = signup(srv)
    hdr = dict(a.auth, **{"Content-Type": "application/json"})

    # The reference: a string with bytes that are not UTF-8.
    ref = srv.request("POST", "/api-keys", body=b'{"name": "bad \xff byte"}', headers=hdr)
    tap.is_(ref.status, 422, "a name with invalid UTF-8 bytes is 422 (the reference refusal)")

    lone = {
        "a lone high surrogate": r'{"name": "k\ud800"}',
        "a lone low surrogate": r'{"name": "k\udc00"}',
        "a high surrogate followed by a letter": r'{"name": "\ud83dx"}',
        "a high surrogate at the end of the string": r'{"name": "ok \ud83d"}',
        "a high surrogate followed by a non-low escape": r'{"name": "\ud83d\u0041"}',
        "two high surrogates": r'{"name": "\ud83d\ud83d"}',
        "a low then a high surrogate": r'{"name": "\ude00\ud83d"}',
        "a lone surrogate in an ignored field": r'{"name": "fine", "extra": "\ud800"}',
    }
    for what, body in lone.items():
        r = srv.request("POST", "/api-keys", body=body.encode(), headers=hdr)
        tap.is_((r.status, r.json), (ref.status, ref.json), "a name with %s gets the same 422 as invalid UTF-8" % what)
    r = srv.request("POST", "/auth/login", body=r'{"email": "x\udfff@example.com", "password": "whatever!"}',
                    headers={"Content-Type": "application/json"})
    tap.is_(r.status, 422, "login with a lone surrogate in the email is 422")
    rows = pg.query("SELECT count(*) FROM api_keys WHERE name LIKE '%?%'", url=db)
    tap.is_(rows, [["0"]], "no key was stored with a '?' in its name")

    r = srv.request("POST", "/api-keys", body=r'{"name": "smile \ud83d\ude00 \u00e9"}'.encode(), headers=hdr)
    tap.is_(r.status, 201, "a proper surrogate pair is accepted")
    tap.is_((r.json or {}).get("name"), "smile \U0001F600 \u00e9", "and decodes to U+1F600")
    rows = pg.query("SELECT name FROM api_keys", url=db)
    tap.is_(rows, [["smile \U0001F600 \u00e9"]], "the stored name is the character, the only key stored")
    r = srv.request("POST", "/api-keys", body=r'{"name": "slash \\ud800"}'.encode(), headers=hdr)
    tap.is_((r.status, (r.json or {}).get("name")), (201, "slash \\ud800"),
            "an escaped backslash before ud800 is plain text, accepted")
    stop_clean(srv)


run(main)
