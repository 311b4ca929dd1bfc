"""Campaigns (API.md sections 4 and 8): create with the credit check and validation, next_run_at in the campaign's
timezone (checked against Python's zoneinfo), list/get/patch/pause/resume/cancel, integrations created from a
webhook_url, 404s and isolation between users, on the real binary over HTTP."""
import datetime as dt
import uuid
from zoneinfo import ZoneInfo

from harness import Postgres, Server, run, tap

FIELDS = {"id", "user_id", "name", "description", "topic", "category", "articles_per_day", "posting_times",
          "timezone", "start_date", "end_date", "total_articles", "target_length", "source_count", "status",
          "pause_reason", "articles_generated", "articles_posted", "credits_used", "webhook_url",
          "webhook_integration_id", "created_at", "updated_at", "last_run_at", "next_run_at", "last_error"}
ADMIN = "admin-token-for-tests"
UTC = dt.timezone.utc


def signup(srv, name):
    r = srv.request("POST", "/auth/signup", {"email": name + "@example.com", "username": name,
                                             "password": "correct horse battery"})
    if r.status != 200:
        raise RuntimeError("signup of %s failed: %r" % (name, r))
    return {"Authorization": "Bearer " + r.json["access_token"]}, r.json["user"]["id"]


def loc_of(r):
    if r.status != 422 or not isinstance(r.json, dict) or not isinstance(r.json.get("detail"), list):
        return []
    return [tuple(d.get("loc", [])) for d in r.json["detail"]]


def msgs(r):
    return [d.get("msg", "") for d in r.json["detail"]] if loc_of(r) else []


def iso(t):
    """A datetime as the API writes it."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def next_slot(times, per_day, tz, start, end, after):
    """API.md section 8 in Python: the first slot at or after `after`. For a time that does not exist (spring
    forward) zoneinfo with fold=0 uses the offset before the change, as PostgreSQL does."""
    zone = ZoneInfo(tz)
    day = max(start, after.astimezone(zone).date() - dt.timedelta(days=1))
    best = None
    for k in range(5):
        d = day + dt.timedelta(days=k)
        if end is not None and d > end:
            break
        for i in range(per_day):
            h, m = map(int, times[i % len(times)].split(":"))
            s = dt.datetime(d.year, d.month, d.day, h, m, tzinfo=zone).astimezone(UTC)
            if s >= after and (best is None or s < best):
                best = s
    return best


def base(**kw):
    b = {"name": "Garden weekly", "topic": "organic gardening", "articles_per_day": 2,
         "posting_times": ["09:00", "17:30"], "start_date": "2026-01-01"}
    b.update(kw)
    return b


def main():
    pg = Postgres.shared()
    dburl = pg.fresh_database()
    srv = Server(dburl, env={"ADMIN_TOKEN": ADMIN}).start()
    alice, alice_id = signup(srv, "alice")
    bob, _ = signup(srv, "bob")

    def sql(q):
        return pg.query(q, url=dburl)

    # -- authentication --
    some = str(uuid.uuid4())
    for method, path in (("POST", "/campaigns"), ("GET", "/campaigns"), ("GET", "/campaigns/" + some),
                         ("PATCH", "/campaigns/" + some), ("POST", "/campaigns/%s/pause" % some),
                         ("POST", "/campaigns/%s/resume" % some), ("DELETE", "/campaigns/" + some)):
        r = srv.request(method, path, {} if method in ("POST", "PATCH") else None)
        tap.is_((r.status, r.json), (401, {"detail": "Not authenticated"}),
                "%s %s without credentials is 401" % (method, path.replace(some, "{id}")))

    # -- create: America/New_York, next_run_at from zoneinfo --
    tz = "America/New_York"
    now_ny = dt.datetime.now(ZoneInfo(tz))
    # Posting times well away from "now", so a slot cannot pass while the request runs.
    t1 = (now_ny + dt.timedelta(hours=3)).strftime("%H:%M")
    t2 = (now_ny - dt.timedelta(hours=3)).strftime("%H:%M")
    start = now_ny.date()
    body = base(name="NY daily", description="Two a day", category="Home", posting_times=[t1, t2],
                timezone=tz, start_date=start.isoformat(), total_articles=30, target_length=2000, source_count=7)
    before = dt.datetime.now(UTC)
    r = srv.request("POST", "/campaigns", body, headers=alice)
    tap.is_(r.status, 201, "POST /campaigns is 201")
    c1 = r.json if isinstance(r.json, dict) else {}
    tap.is_(set(c1), FIELDS, "201 has exactly the Campaign fields")
    want = {"user_id": alice_id, "name": "NY daily", "description": "Two a day", "topic": "organic gardening",
            "category": "Home", "articles_per_day": 2, "posting_times": [t1, t2], "timezone": tz,
            "start_date": start.isoformat(), "end_date": None, "total_articles": 30, "target_length": 2000,
            "source_count": 7, "status": "active", "pause_reason": None, "articles_generated": 0,
            "articles_posted": 0, "credits_used": 0, "webhook_url": None, "webhook_integration_id": None,
            "last_run_at": None, "last_error": None}
    tap.is_({k: c1.get(k) for k in want}, want, "201 values are the request's, counters zero")
    expect = next_slot([t1, t2], 2, tz, start, None, before)
    tap.is_(c1.get("next_run_at"), iso(expect), "next_run_at is the first slot from now in America/New_York")
    c1id = c1.get("id", "")
    got = sql("SELECT next_slot_at = next_run_at, next_slot_at IS NOT NULL FROM campaigns WHERE id = '%s'" % c1id)
    tap.is_(got, [["t", "t"]], "the scheduler cursor next_slot_at equals next_run_at")
    r = srv.request("GET", "/credits", headers=alice)
    tap.is_((r.json or {}).get("credits"), 10, "creating a campaign charges nothing (articles are charged later)")

    # Defaults, and a start date in the future: the first slot is on start_date, in the campaign's zone.
    r = srv.request("POST", "/campaigns", base(start_date="2030-06-15"), headers=alice)
    c2 = r.json or {}
    tap.is_((r.status, c2.get("category"), c2.get("target_length"), c2.get("source_count"), c2.get("timezone"),
             c2.get("total_articles"), c2.get("description")), (201, "General", 1500, 5, "UTC", None, None),
            "defaults: category General, target_length 1500, source_count 5, timezone UTC")
    tap.is_(c2.get("next_run_at"), "2030-06-15T09:00:00.000000Z", "future start: first slot 09:00 UTC on start_date")
    c2id = c2.get("id", "")

    # DST: the spring-forward day in New York (2030-03-10): 02:30 does not exist and is read as 03:30 EDT.
    r = srv.request("POST", "/campaigns", base(posting_times=["02:30"], articles_per_day=1, timezone=tz,
                                               start_date="2030-03-10"), headers=alice)
    spring = next_slot(["02:30"], 1, tz, dt.date(2030, 3, 10), None, dt.datetime.now(UTC))
    tap.is_((r.json or {}).get("next_run_at"), iso(spring), "a time skipped by DST maps like zoneinfo does")
    tap.is_((r.json or {}).get("next_run_at"), "2030-03-10T07:30:00.000000Z", "... which is 07:30Z")
    dst_id = (r.json or {}).get("id", "")
    # And in autumn (2030-11-03) the first slot on a summer-time day vs. after the change differ by an hour.
    r = srv.request("POST", "/campaigns", base(posting_times=["09:00"], articles_per_day=1, timezone=tz,
                                               start_date="2030-11-03"), headers=alice)
    tap.is_((r.json or {}).get("next_run_at"), "2030-11-03T14:00:00.000000Z", "09:00 EST after the autumn change")
    r = srv.request("POST", "/campaigns", base(posting_times=["09:00"], articles_per_day=1, timezone=tz,
                                               start_date="2030-11-02"), headers=alice)
    tap.is_((r.json or {}).get("next_run_at"), "2030-11-02T13:00:00.000000Z", "09:00 EDT the day before")
    # articles_per_day below the number of times: only the first articles_per_day times are used.
    r = srv.request("POST", "/campaigns", base(posting_times=["18:00", "06:00"], articles_per_day=1,
                                               start_date="2030-01-01"), headers=alice)
    tap.is_((r.json or {}).get("next_run_at"), "2030-01-01T18:00:00.000000Z",
            "slot i uses posting_times[i mod len]: with one a day only the first time counts")
    # An end date already passed: no slot will ever come, so it is completed at once.
    r = srv.request("POST", "/campaigns", base(start_date="2020-01-01", end_date="2020-01-31"), headers=alice)
    tap.is_((r.status, (r.json or {}).get("status"), (r.json or {}).get("next_run_at"),
             (r.json or {}).get("end_date")), (201, "completed", None, "2020-01-31"),
            "a campaign whose end_date has passed is created completed, without next_run_at")
    done_id = (r.json or {}).get("id", "")

    # -- validation --
    def invalid(b, loc, desc, msg=None):
        r = srv.request("POST", "/campaigns", b, headers=alice)
        ok = tap.is_((r.status, loc_of(r)), (422, [("body", loc)]), desc)
        if ok and msg is not None:
            tap.like(msgs(r)[0], msg, desc + ": message")
        return r

    invalid(base(posting_times=["9:00"]), "posting_times", "posting time '9:00' is 422", r"'9:00'.*HH:MM")
    invalid(base(posting_times=["24:00"]), "posting_times", "posting time '24:00' is 422", r"'24:00'")
    invalid(base(posting_times=["09:60"]), "posting_times", "posting time '09:60' is 422")
    invalid(base(posting_times=["09:00:00"]), "posting_times", "posting time with seconds is 422")
    invalid(base(posting_times=["09:00", "09:00"]), "posting_times", "duplicate posting times are 422",
            r"distinct.*'09:00'")
    invalid(base(posting_times=[]), "posting_times", "an empty posting_times is 422",
            r"^List should have at least 1 item")
    many = ["%02d:%02d" % (h, m) for h in range(24) for m in (0, 30)][:25]
    invalid(base(posting_times=many), "posting_times", "25 posting times are 422", r"at most 24 items.*not 25")
    r = srv.request("POST", "/campaigns", base(posting_times=many[:24]), headers=alice)
    tap.is_(r.status, 201, "24 distinct posting times are fine")
    invalid(base(posting_times="09:00"), "posting_times", "posting_times as a string is 422",
            r"valid list")
    invalid(base(posting_times=[900]), "posting_times", "a number in posting_times is 422")
    invalid(base(posting_times=[None]), "posting_times", "null in posting_times is 422")
    invalid(base(articles_per_day=0), "articles_per_day", "articles_per_day 0 is 422",
            r"^Input should be greater than or equal to 1$")
    invalid(base(articles_per_day=11), "articles_per_day", "articles_per_day 11 is 422",
            r"^Input should be less than or equal to 10$")
    invalid(base(articles_per_day="two"), "articles_per_day", "articles_per_day 'two' is 422")
    invalid(base(start_date="2026-03-10", end_date="2026-03-09"), "end_date", "end_date before start_date is 422",
            r"end_date must be on or after start_date")
    r = srv.request("POST", "/campaigns", base(start_date="2026-03-10", end_date="2026-03-10"), headers=alice)
    tap.is_(r.status, 201, "end_date equal to start_date is fine")
    invalid(base(timezone="Mars/Olympus"), "timezone", "timezone Mars/Olympus is 422", r"Unknown timezone")
    invalid(base(timezone="america/new_york"), "timezone", "timezone names are exact-case IANA names")
    invalid(base(timezone="UTC+3"), "timezone", "a POSIX offset string is not an IANA name")
    invalid(base(webhook_url="ftp://x"), "webhook_url", "webhook_url ftp://x is 422", r"http or https")
    invalid(base(webhook_url="http://"), "webhook_url", "webhook_url http:// is 422")
    invalid(base(start_date="2026-02-30"), "start_date", "start_date 2026-02-30 is 422", r"valid date")
    invalid(base(start_date="2026-03-10T00:00"), "start_date", "a datetime is not a start_date")
    invalid(base(end_date="tomorrow"), "end_date", "end_date 'tomorrow' is 422")
    invalid(base(target_length=299), "target_length", "target_length 299 is 422")
    invalid(base(target_length=5001), "target_length", "target_length 5001 is 422")
    invalid(base(source_count=11), "source_count", "source_count 11 is 422")
    invalid(base(total_articles=0), "total_articles", "total_articles 0 is 422")
    invalid(base(webhook_integration_id="xyz"), "webhook_integration_id", "a malformed integration id is 422")
    invalid(base(name=""), "name", "an empty name is 422")
    r = srv.request("POST", "/campaigns", {"timezone": "Mars/Olympus"}, headers=alice)
    tap.is_((r.status, sorted(loc_of(r))),
            (422, sorted([("body", f) for f in ("name", "articles_per_day", "posting_times", "topic", "start_date",
                                                "timezone")])),
            "every problem is reported at once (missing fields and a bad timezone)")
    r = srv.request("POST", "/campaigns", None, headers=alice)
    tap.is_(r.status, 422, "POST /campaigns without a body is 422")
    r = srv.request("POST", "/campaigns", b'{"name": "x", "posting_times": ["09:0',
                    headers={**alice, "Content-Type": "application/json"})
    tap.is_((r.status, (r.json or {}).get("detail", [{}])[0].get("type")), (422, "json_invalid"),
            "truncated JSON is 422 json_invalid")
    r = srv.request("POST", "/campaigns", b'{"a":' * 3000 + b'1' + b'}' * 3000,
                    headers={**alice, "Content-Type": "application/json"})
    tap.is_(r.status, 422, "deeply nested JSON is 422")
    r = srv.request("POST", "/campaigns", base(posting_times=["09:00"] * 20000), headers=alice, timeout=60)
    tap.is_((r.status, loc_of(r)), (422, [("body", "posting_times")]), "20000 posting times are 422, not a crash")
    r = srv.request("POST", "/campaigns", base(name="\u00e9" * 200, extra={"ignored": [1, 2, 3]}), headers=alice)
    tap.is_((r.status, (r.json or {}).get("name")), (201, "\u00e9" * 200),
            "200 non-ASCII characters fit the name; unknown members are ignored")

    # -- 402: not enough credits for one day --
    r = srv.request("POST", "/admin/credits", {"user_id": alice_id, "amount": -8, "description": "test"},
                    headers={"Authorization": "Bearer " + ADMIN})
    tap.is_((r.status, (r.json or {}).get("credits")), (200, 2), "admin takes alice down to 2 credits")
    count_before = sql("SELECT (SELECT count(*) FROM campaigns), (SELECT count(*) FROM webhook_integrations)")
    r = srv.request("POST", "/campaigns", base(articles_per_day=3, webhook_url="https://x.example.com/h"),
                    headers=alice)
    tap.is_((r.status, r.json), (402, {"detail": "Insufficient credits. Need 3, have 2"}),
            "articles_per_day 3 with 2 credits is 402 with the contract's message")
    tap.is_(sql("SELECT (SELECT count(*) FROM campaigns), (SELECT count(*) FROM webhook_integrations)"),
            count_before, "a 402 creates neither the campaign nor its integration")
    r = srv.request("POST", "/campaigns", base(articles_per_day=2), headers=alice)
    tap.is_(r.status, 201, "articles_per_day 2 with 2 credits is fine")
    srv.request("POST", "/admin/credits", {"user_id": alice_id, "amount": 50}, headers={"Authorization": "Bearer "
                                                                                          + ADMIN})

    # -- webhook_url creates an integration; webhook_integration_id must be the caller's --
    r = srv.request("POST", "/campaigns", base(name="Hooked", webhook_url="https://hooks.example.com/in"),
                    headers=alice)
    hooked = r.json or {}
    tap.is_(r.status, 201, "POST with webhook_url is 201")
    iid = hooked.get("webhook_integration_id")
    tap.ok(isinstance(iid, str) and len(iid) == 36, "the campaign points at a new integration", hooked)
    tap.is_(hooked.get("webhook_url"), "https://hooks.example.com/in", "the campaign shows the webhook_url")
    r = srv.request("GET", "/integrations", headers=alice)
    made = [i for i in (r.json or []) if i.get("id") == iid]
    tap.is_([(i.get("name"), i.get("webhook_url")) for i in made], [("Hooked webhook", "https://hooks.example.com/in")],
            "the integration is in GET /integrations, named after the campaign")
    r = srv.request("GET", "/integrations/%s/secret" % iid, headers=alice)
    tap.ok(r.status == 200 and str((r.json or {}).get("webhook_secret", "")).startswith("whsec_"),
           "it got a generated whsec_ secret, readable via /secret", r)
    r = srv.request("POST", "/campaigns", base(name="Hooked 2", webhook_url="https://h2.example.com/in",
                                               webhook_secret="given-secret"), headers=alice)
    iid2 = (r.json or {}).get("webhook_integration_id")
    r = srv.request("GET", "/integrations/%s/secret" % iid2, headers=alice)
    tap.is_((r.json or {}).get("webhook_secret"), "given-secret", "a given webhook_secret becomes its secret")

    r = srv.request("POST", "/integrations", {"name": "Mine", "webhook_url": "https://mine.example.com/x"},
                    headers=alice)
    own = (r.json or {}).get("id")
    r = srv.request("POST", "/campaigns", base(name="Own integ", webhook_integration_id=own.upper()),
                    headers=alice)
    tap.is_((r.status, (r.json or {}).get("webhook_integration_id"), (r.json or {}).get("webhook_url")),
            (201, own, "https://mine.example.com/x"), "an own integration id (any case) is used, its URL shown")
    own_camp = (r.json or {}).get("id", "")
    r = srv.request("POST", "/integrations", {"name": "Bob's", "webhook_url": "https://bob.example.com/x"},
                    headers=bob)
    bobs_integ = (r.json or {}).get("id")
    n_before = sql("SELECT count(*) FROM campaigns")
    r = srv.request("POST", "/campaigns", base(webhook_integration_id=bobs_integ), headers=alice)
    tap.is_((r.status, r.json), (404, {"detail": "Integration not found"}), "another user's integration is 404")
    r = srv.request("POST", "/campaigns", base(webhook_integration_id=str(uuid.uuid4())), headers=alice)
    tap.is_((r.status, r.json), (404, {"detail": "Integration not found"}), "an unknown integration is 404")
    tap.is_(sql("SELECT count(*) FROM campaigns"), n_before, "neither created a campaign")
    r = srv.request("POST", "/campaigns", base(webhook_integration_id=""), headers=alice)
    tap.is_((r.status, (r.json or {}).get("webhook_integration_id")), (201, None), "an empty id counts as none")

    # -- list and get --
    r = srv.request("GET", "/campaigns", headers=alice)
    lst = r.json if isinstance(r.json, list) else []
    tap.is_(r.status, 200, "GET /campaigns is 200")
    ids = [c.get("id") for c in lst]
    created = [x[0] for x in sql("SELECT id FROM campaigns WHERE user_id = '%s' ORDER BY created_at DESC, id DESC"
                                 % alice_id)]
    tap.is_(ids, created, "the list holds all of alice's campaigns, newest first")
    tap.ok(all(set(c) == FIELDS for c in lst), "list items have exactly the Campaign fields")
    r = srv.request("GET", "/campaigns?skip=1&limit=2", headers=alice)
    tap.is_([c.get("id") for c in (r.json or [])], created[1:3], "?skip=1&limit=2 pages")
    r = srv.request("GET", "/campaigns?limit=0", headers=alice)
    tap.is_((r.status, loc_of(r)), (422, [("query", "limit")]), "limit=0 is 422")
    r = srv.request("GET", "/campaigns/" + c1id, headers=alice)
    tap.is_((r.status, r.json), (200, c1), "GET /campaigns/{id} returns what POST returned")

    # -- PATCH --
    r = srv.request("PATCH", "/campaigns/" + c2id, {"name": "Renamed", "description": "new text",
                                                   "articles_per_day": 3}, headers=alice)
    tap.is_((r.status, (r.json or {}).get("name"), (r.json or {}).get("description"),
             (r.json or {}).get("articles_per_day")), (200, "Renamed", "new text", 3), "PATCH changes fields")
    tap.is_(set(r.json or {}), FIELDS, "PATCH replies with the Campaign")
    r = srv.request("PATCH", "/campaigns/" + c2id, {"posting_times": ["07:15", "12:00"], "timezone": "Asia/Tokyo"},
                    headers=alice)
    tap.is_(((r.json or {}).get("posting_times"), (r.json or {}).get("timezone")),
            (["07:15", "12:00"], "Asia/Tokyo"), "PATCH posting_times and timezone")
    tap.is_((r.json or {}).get("next_run_at"), "2030-06-14T22:15:00.000000Z",
            "next_run_at recomputed: 07:15 in Tokyo on 2030-06-15")
    r = srv.request("PATCH", "/campaigns/" + c2id, {"end_date": "2030-07-01"}, headers=alice)
    tap.is_((r.status, (r.json or {}).get("end_date")), (200, "2030-07-01"), "PATCH end_date")
    r = srv.request("PATCH", "/campaigns/" + c2id, {"end_date": "2030-06-14"}, headers=alice)
    tap.is_((r.status, loc_of(r)), (422, [("body", "end_date")]), "PATCH end_date before start_date is 422")
    tap.like(msgs(r)[0] if loc_of(r) else "", r"on or after start_date \(2030-06-15\)", "... naming the start_date")
    r = srv.request("PATCH", "/campaigns/" + c2id, {"status": "completed"}, headers=alice)
    tap.is_((r.status, loc_of(r)), (422, [("body", "status")]), "PATCH status completed is 422")
    tap.is_(msgs(r), ["Input should be 'active' or 'paused'"], "... saying which statuses are allowed")
    r = srv.request("PATCH", "/campaigns/" + c2id, {"status": "cancelled"}, headers=alice)
    tap.is_((r.status, loc_of(r)), (422, [("body", "status")]), "PATCH status cancelled is 422")
    r = srv.request("PATCH", "/campaigns/" + c2id, {"timezone": "Mars/Olympus", "posting_times": ["25:00"],
                                                   "articles_per_day": 0}, headers=alice)
    tap.is_((r.status, sorted(loc_of(r))), (422, [("body", "articles_per_day"), ("body", "posting_times"),
                                                  ("body", "timezone")]), "PATCH validates like POST")
    r = srv.request("PATCH", "/campaigns/" + c2id, {"webhook_integration_id": bobs_integ}, headers=alice)
    tap.is_((r.status, r.json), (404, {"detail": "Integration not found"}), "PATCH to bob's integration is 404")
    r = srv.request("PATCH", "/campaigns/" + c2id, {"webhook_integration_id": own}, headers=alice)
    tap.is_(((r.json or {}).get("webhook_integration_id"), (r.json or {}).get("webhook_url")),
            (own, "https://mine.example.com/x"), "PATCH to an own integration")
    r = srv.request("PATCH", "/campaigns/" + c2id, {"status": "paused"}, headers=alice)
    tap.is_(((r.json or {}).get("status"), (r.json or {}).get("next_run_at")), ("paused", None),
            "PATCH status paused: no next run")
    tap.is_(sql("SELECT next_slot_at IS NULL FROM campaigns WHERE id = '%s'" % c2id), [["t"]],
            "a paused campaign has no scheduler cursor")
    r = srv.request("PATCH", "/campaigns/" + c2id, {"status": "active"}, headers=alice)
    tap.is_(((r.json or {}).get("status"), (r.json or {}).get("next_run_at")),
            ("active", "2030-06-14T22:15:00.000000Z"), "PATCH status active: next run again")
    r = srv.request("PATCH", "/campaigns/" + c2id, {"name": None, "description": None}, headers=alice)
    tap.is_(((r.json or {}).get("name"), (r.json or {}).get("description")), ("Renamed", "new text"),
            "null in PATCH leaves a field as it is")
    r = srv.request("PATCH", "/campaigns/" + c2id, {"end_date": "2020-01-01"}, headers=alice)
    tap.is_(r.status, 422, "PATCH end_date before a 2030 start is 422")

    # -- pause / resume --
    r = srv.request("POST", "/campaigns/%s/pause" % c1id, None, headers=alice)
    tap.is_((r.status, (r.json or {}).get("success"), (r.json or {}).get("message")), (200, True, "Campaign paused"),
            "POST /pause without a body is 200")
    camp = (r.json or {}).get("campaign") or {}
    tap.is_((camp.get("status"), camp.get("next_run_at"), set(camp) == FIELDS), ("paused", None, True),
            "... with the paused Campaign")
    sql("UPDATE campaigns SET pause_reason = 'insufficient_credits' WHERE id = '%s'" % c1id)
    r = srv.request("GET", "/campaigns/" + c1id, headers=alice)
    tap.is_((r.json or {}).get("pause_reason"), "insufficient_credits", "pause_reason is shown")
    before = dt.datetime.now(UTC)
    r = srv.request("POST", "/campaigns/%s/resume" % c1id, None, headers=alice)
    camp = (r.json or {}).get("campaign") or {}
    tap.is_((r.status, (r.json or {}).get("message"), camp.get("status"), camp.get("pause_reason")),
            (200, "Campaign resumed", "active", None), "resume: active again, pause_reason cleared")
    tap.is_(camp.get("next_run_at"), iso(next_slot([t1, t2], 2, tz, start, None, before)),
            "resume recomputes next_run_at from now")
    r = srv.request("POST", "/campaigns/%s/pause" % c1id, {"ignored": True}, headers=alice)
    tap.is_(r.status, 200, "a body sent to /pause anyway is ignored")
    r = srv.request("POST", "/campaigns/%s/pause" % c1id, None, headers=alice)
    tap.is_(((r.json or {}).get("campaign") or {}).get("status"), "paused", "pausing a paused campaign is fine")
    r = srv.request("POST", "/campaigns/%s/pause" % done_id, None, headers=alice)
    tap.is_((r.status, r.json), (400, {"detail": "Cannot pause a completed campaign"}),
            "pausing a completed campaign is 400")
    r = srv.request("POST", "/campaigns/%s/resume" % done_id, None, headers=alice)
    tap.is_((r.status, r.json), (400, {"detail": "Cannot resume a completed campaign"}),
            "resuming a completed campaign is 400")

    # -- cancel --
    r = srv.request("DELETE", "/campaigns/" + dst_id, headers=alice)
    tap.is_((r.status, r.json), (200, {"success": True, "message": "Campaign cancelled"}), "DELETE cancels")
    r = srv.request("GET", "/campaigns/" + dst_id, headers=alice)
    tap.is_((r.status, (r.json or {}).get("status"), (r.json or {}).get("next_run_at")), (200, "cancelled", None),
            "a cancelled campaign is still readable, with no next run")
    for path, verb in (("pause", "pause"), ("resume", "resume")):
        r = srv.request("POST", "/campaigns/%s/%s" % (dst_id, path), None, headers=alice)
        tap.is_((r.status, r.json), (400, {"detail": "Cannot %s a cancelled campaign" % verb}),
                "%s of a cancelled campaign is 400" % verb)
    r = srv.request("PATCH", "/campaigns/" + dst_id, {"status": "active"}, headers=alice)
    tap.is_((r.status, r.json), (400, {"detail": "Cannot resume a cancelled campaign"}),
            "PATCH status active on a cancelled campaign is 400")
    r = srv.request("PATCH", "/campaigns/" + dst_id, {"name": "still editable"}, headers=alice)
    tap.is_((r.status, (r.json or {}).get("status")), (200, "cancelled"), "other fields stay editable, status stays")

    # -- deleting the integration leaves the campaign without one --
    srv.request("DELETE", "/integrations/" + own, headers=alice)
    r = srv.request("GET", "/campaigns/" + own_camp, headers=alice)
    tap.is_(((r.json or {}).get("webhook_integration_id"), (r.json or {}).get("webhook_url")), (None, None),
            "after DELETE /integrations/{id} the campaign has no integration")

    # -- 404 and malformed ids --
    missing = str(uuid.uuid4())
    routes = (("GET", "/campaigns/%s"), ("PATCH", "/campaigns/%s"), ("POST", "/campaigns/%s/pause"),
              ("POST", "/campaigns/%s/resume"), ("DELETE", "/campaigns/%s"))
    for method, path in routes:
        r = srv.request(method, path % missing, {} if method == "PATCH" else None, headers=alice)
        tap.is_((r.status, r.json), (404, {"detail": "Campaign not found"}),
                "%s %s of an unknown id is 404" % (method, path % "{id}"))
        r = srv.request(method, path % "nope", {} if method == "PATCH" else None, headers=alice)
        tap.is_((r.status, loc_of(r)), (422, [("path", "campaign_id")]),
                "%s %s with a malformed id is 422 on path.campaign_id" % (method, path % "{id}"))

    # -- bob sees and changes nothing of alice's --
    r = srv.request("GET", "/campaigns", headers=bob)
    tap.is_((r.status, r.json), (200, []), "bob's list is empty")
    snapshot = sql("SELECT name, status, next_run_at, updated_at FROM campaigns WHERE id = '%s'" % c2id)
    for method, path in routes:
        r = srv.request(method, path % c2id, {"name": "pwned", "status": "paused"} if method == "PATCH" else None,
                        headers=bob)
        tap.is_((r.status, r.json), (404, {"detail": "Campaign not found"}),
                "bob: %s %s of alice's campaign is 404" % (method, path % "{id}"))
    tap.is_(sql("SELECT name, status, next_run_at, updated_at FROM campaigns WHERE id = '%s'" % c2id), snapshot,
            "alice's campaign is unchanged by bob's attempts")
    r = srv.request("POST", "/campaigns", base(name="Bob's own"), headers=bob)
    bob_camp = (r.json or {}).get("id")
    r = srv.request("GET", "/campaigns", headers=alice)
    tap.ok(bob_camp is not None and bob_camp not in [c.get("id") for c in (r.json or [])],
           "bob's campaign is not in alice's list")
    r = srv.request("PATCH", "/campaigns/" + bob_camp, {"webhook_integration_id": iid}, headers=bob)
    tap.is_((r.status, r.json), (404, {"detail": "Integration not found"}),
            "bob cannot attach alice's integration to his campaign")

    tap.ok(srv.alive, "server still running")
    code, _ = srv.stop()
    tap.is_(code, 0, "SIGTERM: clean exit (under ASan: no leak, no sanitizer report)")
    tap.ok(not any(s in srv.log() for s in ("AddressSanitizer", "LeakSanitizer", "runtime error:")),
           "no sanitizer report in the server log")


run(main)
