"""GET /articles/{id}/events: Server-Sent Events of an article's progress, across processes.

Statuses are changed directly in SQL (the trigger announces each change, as the pipeline's own updates do) or
through another server's API, and the frames must arrive in order with the right JSON, ending with done.
"""
import json
import re
import signal
import socket
import time

from articles_common import INTERNAL_SECRET, Env, check_422
from harness import Server, run, tap, wait_until

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Stream:
    """One raw HTTP/1.1 GET of an event stream, its chunked body decoded and split into SSE blocks."""

    def __init__(self, srv, path, token=None, headers=None, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
        h = {"Host": "127.0.0.1", "Accept": "text/event-stream"}
        if token:
            h["Authorization"] = "Bearer " + token
        h.update(headers or {})
        req = "GET %s HTTP/1.1\r\n%s\r\n" % (path, "".join("%s: %s\r\n" % kv for kv in h.items()))
        self.sock.sendall(req.encode())
        self.raw = b""      # received, not yet decoded
        self.body = b""     # decoded, not yet split into blocks
        self.ended = False  # the terminal chunk arrived
        self.closed = False
        head = self._read_until(b"\r\n\r\n", timeout)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                self.headers[k.strip().lower()] = v.strip()
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        if not self.chunked:  # a whole reply (errors): read it
            n = int(self.headers.get("content-length", "0"))
            while len(self.raw) < n:
                self._recv(timeout)
            self.reply = self.raw[:n]
            self.json = json.loads(self.reply) if n else None

    def _recv(self, timeout):
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        if not data:
            self.closed = True
            raise EOFError("connection closed")
        self.raw += data

    def _read_until(self, sep, timeout):
        while sep not in self.raw:
            self._recv(timeout)
        head, self.raw = self.raw.split(sep, 1)
        return head

    def _decode(self):
        while not self.ended:
            i = self.raw.find(b"\r\n")
            if i < 0:
                return
            size = int(self.raw[:i].split(b";")[0], 16)
            if len(self.raw) < i + 2 + size + 2:
                return
            self.body += self.raw[i + 2:i + 2 + size]
            self.raw = self.raw[i + 2 + size + 2:]
            if size == 0:
                self.ended = True

    def next_block(self, timeout=10):
        """The next SSE block as (event or None, data or None, comment lines); None once the stream ended."""
        deadline = time.monotonic() + timeout
        while b"\n\n" not in self.body:
            self._decode()
            if b"\n\n" in self.body:
                break
            if self.ended:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no event within %.0f s" % timeout)
            self._recv(left)
        block, self.body = self.body.split(b"\n\n", 1)
        event, data, comments = None, None, []
        for line in block.decode().split("\n"):
            if line.startswith(":"):
                comments.append(line[1:].strip())
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:].strip())
        return event, data, comments

    def next_event(self, timeout=10):
        """The next block that is an event (keep-alive comments skipped)."""
        while True:
            b = self.next_block(timeout)
            if b is None or b[0] is not None:
                return b

    def wait_end(self, timeout=10):
        """True when the response ends (terminal chunk) within timeout, with no further event."""
        try:
            b = self.next_event(timeout)
        except (socket.timeout, EOFError):
            return self.ended
        return b is None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def new_article(env, user, status="queued", extra=""):
    sets = ", completed_at = now()" if status in ("completed", "posted", "delivery_failed") else ""
    sets += ", posted_at = now()" if status == "posted" else ""
    aid = env.sql("INSERT INTO articles (user_id, topic, raw_query) VALUES ('%s', 'Sourdough', 'Sourdough')"
                  " RETURNING id" % user.id)[0][0]
    if status != "queued" or extra:
        env.sql("UPDATE articles SET status = '%s'%s%s WHERE id = '%s'" % (status, sets, extra, aid))
    return aid


def set_status(env, aid, status, detail=None):
    sets = ", completed_at = now()" if status in ("completed", "posted", "delivery_failed") else ""
    sets += ", posted_at = now()" if status == "posted" else ""
    d = "NULL" if detail is None else "'%s'" % detail.replace("'", "''")
    env.sql("UPDATE articles SET status = '%s', progress_detail = %s%s WHERE id = '%s'" % (status, d, sets, aid))


def frame_ok(ev, want_event, status, stage, detail):
    return (ev is not None and ev[0] == want_event and isinstance(ev[1], dict) and ev[1].get("status") == status
            and ev[1].get("stage") == stage and ev[1].get("detail") == detail
            and isinstance(ev[1].get("at"), str) and ISO.match(ev[1]["at"]) is not None
            and set(ev[1]) == {"status", "stage", "detail", "at"})


def kill_listen_connections(env):
    """Terminates the servers' LISTEN connections (jobs' and events'); they reconnect and re-read."""
    env.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'inkloop-listen'")


def main():
    env = Env()
    srv = env.srv
    alice = env.signup("alice_ev")
    bob = env.signup("bob_ev")

    # --- errors ---
    r = alice.req("GET", "/articles/not-a-uuid/events")
    check_422(r, ["path", "article_id"], "a malformed id is 422 loc path/article_id")
    r = alice.req("GET", "/articles/00000000-0000-0000-0000-000000000000/events")
    tap.ok(r.status == 404 and r.json == {"detail": "Article not found"}, "an unknown article is 404", r)
    bobs = new_article(env, bob)
    r = alice.req("GET", "/articles/%s/events" % bobs)
    tap.ok(r.status == 404 and r.json == {"detail": "Article not found"}, "another user's article is 404", r)
    r = srv.request("GET", "/articles/%s/events" % bobs)
    tap.is_(r.status, 401, "no credentials: 401")

    # --- an article already final answers at once ---
    done_id = new_article(env, alice, "failed", ", error_message = 'boom'")
    t0 = time.monotonic()
    s = Stream(srv, "/articles/%s/events" % done_id, alice.token)
    tap.is_(s.status, 200, "a final article's stream: 200")
    tap.like(s.headers.get("content-type", ""), r"^text/event-stream", "content type text/event-stream")
    ev1 = s.next_event()
    tap.ok(frame_ok(ev1, "status", "failed", None, None), "one status frame with the current status", ev1)
    ev2 = s.next_event()
    tap.ok(frame_ok(ev2, "done", "failed", None, None), "then the done frame", ev2)
    tap.ok(s.wait_end(5) and time.monotonic() - t0 < 3, "and the response ends at once")
    s.close()

    # --- a stream through every status, with a second stream on the same article ---
    aid = new_article(env, alice)
    s1 = Stream(srv, "/articles/%s/events" % aid, alice.token, headers={"Origin": "http://localhost:3000"})
    s2 = Stream(srv, "/articles/%s/events" % aid, alice.token)
    tap.is_(s1.status, 200, "stream: 200")
    tap.is_(s1.headers.get("access-control-allow-origin"), "http://localhost:3000", "CORS on the stream response")
    tap.is_(s1.headers.get("cache-control"), "no-cache", "Cache-Control: no-cache")
    for s in (s1, s2):
        ev = s.next_event()
        tap.ok(frame_ok(ev, "status", "queued", None, None), "the first frame is the current status (queued)", ev)
    steps = [("researching", "research", "Searching the web"), ("scraping", "scrape", "Reading 5 pages"),
             ("analyzing", "analyze", None), ("writing", "write", "Writing \"the\" draft\nline 2")]
    for status, stage, detail in steps:
        set_status(env, aid, status, detail)
        for name, s in (("first", s1), ("second", s2)):
            ev = s.next_event()
            tap.ok(frame_ok(ev, "status", status, stage, detail), "%s stream: %s frame" % (name, status), ev)
    set_status(env, aid, "completed")
    for name, s in (("first", s1), ("second", s2)):
        ev = s.next_event()
        tap.ok(frame_ok(ev, "status", "completed", None, None), "%s stream: completed frame" % name, ev)
        ev = s.next_event()
        tap.ok(frame_ok(ev, "done", "completed", None, None), "%s stream: done frame" % name, ev)
        tap.ok(s.wait_end(5), "%s stream: the response ends after done" % name)
        s.close()

    # --- resync after the LISTEN connection comes back: changes it could not hear are read again ---
    aid = new_article(env, alice)
    s = Stream(srv, "/articles/%s/events" % aid, alice.token)
    tap.ok(frame_ok(s.next_event(), "status", "queued", None, None), "resync stream: queued")
    # An update that notifies nobody (triggers off in this session), then the LISTEN connection drops.
    env.sql("SET session_replication_role = replica; UPDATE articles SET status = 'writing' WHERE id = '%s'" % aid)
    kill_listen_connections(env)
    ev = s.next_event(15)
    tap.ok(frame_ok(ev, "status", "writing", "write", None), "after the reconnect the missed status is pushed", ev)
    # A deleted article (no notification at all) ends its stream without done at the next re-read.
    env.sql("DELETE FROM articles WHERE id = '%s'" % aid)
    kill_listen_connections(env)
    tap.ok(s.wait_end(15), "a deleted article's stream ends (without done) after the re-read")
    s.close()

    # --- per-user limit ---
    aid = new_article(env, alice)
    streams = [Stream(srv, "/articles/%s/events" % aid, alice.token) for _ in range(20)]
    tap.ok(all(s.status == 200 for s in streams), "20 streams for one user are served")
    extra = Stream(srv, "/articles/%s/events" % aid, alice.token)
    tap.ok(extra.status == 429 and extra.json == {"detail": "Too many event streams for this user"},
           "the 21st is 429", getattr(extra, "reply", None))
    extra.close()
    bob_aid = new_article(env, bob)
    other = Stream(srv, "/articles/%s/events" % bob_aid, bob.token)
    tap.is_(other.status, 200, "another user is not limited by it")
    other.close()
    # Clients that go away mid-stream: the server notices at its next write and frees them.
    # The first write after a close still succeeds (the peer answers it with a reset), the second fails.
    for s in streams:
        s.close()
    set_status(env, aid, "scraping")
    set_status(env, aid, "researching")
    ok = wait_until(lambda: Stream(srv, "/articles/%s/events" % aid, alice.token).status == 200 or None, 10, 0.5)
    tap.ok(ok, "after the clients left, their streams were released (a new one is served)")

    # --- keep-alive comment ---
    s = Stream(srv, "/articles/%s/events" % aid, alice.token)
    ev = s.next_event()
    tap.ok(frame_ok(ev, "status", "researching", "research", None), "keep-alive stream: current status", ev)
    b = s.next_block(20)
    tap.ok(b is not None and b[0] is None and "keep-alive" in b[2], "a ': keep-alive' comment within 15 s", b)
    s.close()

    # --- across processes: subscribed on A, changed through B's API ---
    srv_b = Server(env.db, env={"INTERNAL_SECRET": INTERNAL_SECRET}).start()
    aid = new_article(env, alice, "writing")
    s = Stream(srv, "/articles/%s/events" % aid, alice.token)
    tap.ok(frame_ok(s.next_event(), "status", "writing", "write", None), "cross-process: current status on A")
    r = srv_b.request("POST", "/internal/article-complete",
                      body={"article_id": aid, "tokens_used": 10, "status": "failed", "error_message": "x"},
                      headers={"X-Internal-Secret": INTERNAL_SECRET})
    tap.is_(r.status, 200, "B marks the article failed")
    ev = s.next_event()
    tap.ok(ev is not None and ev[0] == "status" and ev[1]["status"] == "failed", "A's stream gets B's change", ev)
    ev = s.next_event()
    tap.ok(ev is not None and ev[0] == "done", "and ends with done", ev)
    s.close()
    code, _ = srv_b.stop()
    tap.is_(code, 0, "server B exits 0")
    log_b = srv_b.log()
    tap.ok(all(x not in log_b for x in ("AddressSanitizer", "LeakSanitizer", "runtime error:")),
           "no sanitizer report in server B's log", log_b[-3000:])

    # --- a client that does not read is dropped once its backlog passes the cap (256 KiB beyond the socket) ---
    aid = new_article(env, alice, "writing")
    slow = Stream(srv, "/articles/%s/events" % aid, alice.token)
    slow.next_event()
    # 12000 notifications in one transaction (the trigger fires for every SET status), ~560 bytes each.
    env.sql("DO $$ BEGIN FOR i IN 1..12000 LOOP UPDATE articles SET status = 'writing',"
            " progress_detail = repeat('x', 400) || i WHERE id = '%s'; END LOOP; END $$" % aid, timeout=180)
    tap.ok(wait_until(lambda: "dropping it" in srv.log() or None, 20, 0.5),
           "a client that stops reading is dropped", srv.log()[-2000:])
    slow.close()
    again = Stream(srv, "/articles/%s/events" % aid, alice.token)
    tap.is_(again.status, 200, "the server still serves streams after dropping one")
    again.close()

    # --- SIGTERM with open streams: prompt, clean exit; the streams end ---
    aid = new_article(env, alice)
    s = Stream(srv, "/articles/%s/events" % aid, alice.token)
    s.next_event()
    gone = Stream(srv, "/articles/%s/events" % aid, alice.token)
    gone.next_event()
    gone.close()  # a client gone without the server having noticed yet
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    tap.ok(s.wait_end(5), "SIGTERM: the open stream is ended (without done)")
    s.close()
    try:
        srv.proc.wait(10)
    except Exception:  # noqa: BLE001 (a hang is reported by stop_clean, which then kills it)
        pass
    took = time.monotonic() - t0
    env.stop_clean()  # the process has exited: no second signal, only the exit code and the log are checked
    tap.ok(took < 5, "SIGTERM with open streams exits within 5 s (%.2f s)" % took)


run(main)
