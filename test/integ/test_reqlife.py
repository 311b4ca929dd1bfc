"""A request's lifetime owns its backend operation (http_req_set_cancel): when the client goes away, or the
shutdown deadline answers 503, the outbound call serving the request is cancelled (the stub sink sees its
connection closed), the request is counted as 499 (client gone), and nothing is left waiting or leaked (the
drain does not wait for abandoned work; the ASan build checks leaks at exit). A normal completion still
replies as before."""

import re
import signal
import threading
import time

from harness import Postgres, Server, run, tap, wait_until
from stubutil import Stub

SINK_HANG_S = 30  # far longer than any wait below: only a cancel ends these sends early


def signup(srv, name):
    r = srv.request("POST", "/auth/signup", {"email": name + "@example.com", "username": name,
                                              "password": "correct horse battery"})
    if r.status != 200:
        raise RuntimeError("signup of %s failed: %r" % (name, r))
    return {"Authorization": "Bearer " + r.json["access_token"]}


def requests_count(srv, route, status):
    text = srv.request("GET", "/metrics").body.decode()
    pat = r'^inkloop_http_requests_total\{route="%s",method="POST",status="%d"\} (\S+)$' % (re.escape(route),
                                                                                          status)
    m = re.search(pat, text, re.M)
    return float(m.group(1)) if m else 0.0


def abandon(srv, path, body, auth):
    """Sends a request, then closes the connection without reading the answer: a client that went away."""
    import json
    c = srv.connection(10)
    data = json.dumps(body).encode()
    c.putrequest("POST", path, skip_accept_encoding=True)
    c.putheader("Content-Type", "application/json")
    c.putheader("Content-Length", str(len(data)))
    for k, v in auth.items():
        c.putheader(k, v)
    c.endheaders()
    c.send(data)
    return c


def sink_record(stub, name):
    recs = stub.received(name)
    return recs[-1] if recs else None


def no_sanitizer_report(srv):
    bad = [line for line in srv.log().splitlines()
           if "Sanitizer" in line or "runtime error:" in line or "ERROR: " in line]
    tap.ok(not bad, "server log has no sanitizer report", "\n".join(bad[:20]))


def main():
    pg = Postgres.shared()
    stub = Stub().start()
    env = dict(stub.server_env(), WEBHOOK_TIMEOUT_S="60", LLM_TIMEOUT_S="60", SHUTDOWN_TIMEOUT_S="20")
    srv = Server(pg.fresh_database(), env=env).start()
    alice = signup(srv, "alice")

    # -- (c) a normal completion still replies, and is not counted as cancelled --
    ok_url = stub.hook("ok")
    r = srv.request("POST", "/integrations/test", {"webhook_url": ok_url}, headers=alice)
    tap.is_((r.status, (r.json or {}).get("success")), (200, True), "a test send to a 200 sink answers 200")
    slow_ok = stub.hook("slow-ok", hang=1)
    r = srv.request("POST", "/integrations", {"name": "Blog", "webhook_url": slow_ok}, headers=alice)
    iid = (r.json or {}).get("id", "")
    r = srv.request("POST", "/integrations/%s/test" % iid, {}, headers=alice)
    tap.is_((r.status, (r.json or {}).get("success")), (200, True),
            "a stored integration's test send that takes 1 s answers 200 (query, send, query)")
    r = srv.request("GET", "/integrations/" + iid, headers=alice)
    tap.is_((r.json or {}).get("last_test_status"), "success", "and its outcome is recorded")
    r = srv.request("POST", "/generate/titles", {"description": "home espresso for beginners", "count": 2},
                    headers=alice)
    tap.is_((r.status, len(r.json or [])), (200, 2), "title generation answers 200 with two titles")
    r = srv.request("GET", "/integrations", headers=alice)
    tap.is_((r.status, len(r.json or [])), (200, 1), "a list through kit_user_page (a query owned by its "
            "request) answers 200")
    tap.is_(requests_count(srv, "/integrations/test", 499), 0.0, "nothing counted as cancelled so far")

    # -- (a) a client that goes away during a slow test send cancels the outbound request --
    slow = stub.hook("slow", hang=SINK_HANG_S)
    c = abandon(srv, "/integrations/test", {"webhook_url": slow}, alice)
    tap.ok(wait_until(lambda: sink_record(stub, "slow"), 10, 0.05), "the slow sink got the test send")
    t0 = time.monotonic()
    c.close()
    rec = wait_until(lambda: (sink_record(stub, "slow") or {}).get("client_closed_at"), 10, 0.05)
    tap.ok(rec, "the sink sees its connection closed once the client went away (the send was cancelled)")
    tap.ok(time.monotonic() - t0 < 5, "within seconds, not at the sink's %d s or the 60 s timeout"
           % SINK_HANG_S, "%.1f s" % (time.monotonic() - t0))
    tap.ok(wait_until(lambda: requests_count(srv, "/integrations/test", 499) == 1.0, 5, 0.1),
           "the request is counted as 499 (client closed request)")
    tap.ok(any("test delivery cancelled: its request ended first" in line for line in srv.log_lines()),
           "the log says the test delivery was cancelled")

    # The same for a stored integration (its query, then the send).
    slow2 = stub.hook("slow2", hang=SINK_HANG_S)
    r = srv.request("POST", "/integrations", {"name": "Slow", "webhook_url": slow2}, headers=alice)
    iid2 = (r.json or {}).get("id", "")
    c = abandon(srv, "/integrations/%s/test" % iid2, {}, alice)
    tap.ok(wait_until(lambda: sink_record(stub, "slow2"), 10, 0.05), "the stored integration's sink got it")
    c.close()
    tap.ok(wait_until(lambda: (sink_record(stub, "slow2") or {}).get("client_closed_at"), 10, 0.05),
           "its send is cancelled too when the client goes away")
    tap.ok(wait_until(lambda: requests_count(srv, "/integrations/{integration_id}/test", 499) == 1.0, 5, 0.1),
           "and counted as 499")

    # Title generation: the LLM call is cancelled when the client goes away.
    stub.control(hang_every=1, hang_seconds=SINK_HANG_S)
    before = stub.stats()["llm_calls"]["titles"]
    c = abandon(srv, "/generate/titles", {"description": "cold brew at scale", "count": 2}, alice)
    tap.ok(wait_until(lambda: stub.stats()["llm_calls"]["titles"] > before, 10, 0.05), "the LLM got the call")
    c.close()
    tap.ok(wait_until(lambda: requests_count(srv, "/generate/titles", 499) == 1.0, 5, 0.1),
           "an abandoned title generation is counted as 499")
    tap.ok(wait_until(lambda: any("LLM call cancelled: its request ended first" in line
                                  for line in srv.log_lines()), 5, 0.1),
           "the log says its LLM call was cancelled")
    stub.control(hang_every=0)

    # Nothing abandoned is left in flight: the drain (up to 20 s) ends at once and the process exits cleanly.
    code, secs = srv.stop(signal.SIGTERM, 30)
    tap.is_(code, 0, "SIGTERM after abandoned requests exits 0")
    tap.ok(secs < 8, "promptly: the drain does not wait for work whose client is gone", "%.1f s" % secs)
    no_sanitizer_report(srv)

    # -- (b) SIGTERM during a slow test send and a slow title generation, clients still waiting --
    env_b = dict(env, SHUTDOWN_TIMEOUT_S="2")
    srv2 = Server(pg.fresh_database(), env=env_b).start()
    bob = signup(srv2, "bob")
    slow3 = stub.hook("slow3", hang=SINK_HANG_S)
    stub.control(hang_every=1, hang_seconds=SINK_HANG_S)
    before = stub.stats()["llm_calls"]["titles"]
    answers = {}

    def call(key, path, body):
        try:
            answers[key] = srv2.request("POST", path, body, headers=bob, timeout=30).status
        except OSError as e:
            answers[key] = repr(e)

    threads = [threading.Thread(target=call, args=("send", "/integrations/test", {"webhook_url": slow3})),
               threading.Thread(target=call, args=("titles", "/generate/titles",
                                                   {"description": "iced coffee at home", "count": 2}))]
    for t in threads:
        t.start()
    tap.ok(wait_until(lambda: sink_record(stub, "slow3") and stub.stats()["llm_calls"]["titles"] > before,
                      10, 0.05), "the sink and the LLM both wait")
    t0 = time.monotonic()
    srv2.send_signal(signal.SIGTERM)
    closed = wait_until(lambda: (sink_record(stub, "slow3") or {}).get("client_closed_at"), 10, 0.05)
    closed_after = time.monotonic() - t0
    for t in threads:
        t.join(30)
    code, secs = srv2.stop(signal.SIGTERM, 30)
    total = time.monotonic() - t0
    tap.is_(answers, {"send": 503, "titles": 503}, "both clients get 503 at the 2 s shutdown deadline")
    tap.ok(closed and closed_after < 6, "the sink sees the send cancelled at the deadline",
           "closed=%r after %.1f s" % (closed, closed_after))
    tap.is_(code, 0, "the process exits 0")
    tap.ok(total < 8, "promptly after the deadline (not after the sink's %d s)" % SINK_HANG_S, "%.1f s" % total)
    log = srv2.log()
    tap.ok("test delivery cancelled: its request ended first" in log and
           "LLM call cancelled: its request ended first" in log,
           "the log says the request's send and LLM call were cancelled with it")
    no_sanitizer_report(srv2)
    stub.control(hang_every=0)


run(main)
