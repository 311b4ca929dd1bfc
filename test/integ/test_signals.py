"""SIGTERM/SIGINT: stop accepting, drain, close every handle, exit 0 promptly."""
import signal
import socket
import time

from harness import Postgres, Server, run, tap


def last_line_says_stopped(srv, what):
    lines = srv.log_lines()
    last = lines[-1] if lines else ""
    tap.like(last, r"(?i)stopped", "%s: the log's last line says it stopped" % what)


def main():
    pg = Postgres.shared()
    url = pg.fresh_database()

    srv = Server(url).start()
    code, took = srv.stop(signal.SIGTERM)
    tap.is_(code, 0, "SIGTERM while idle exits 0")
    tap.ok(took < 3, "SIGTERM while idle exits within 3 s (took %.2f s)" % took)
    last_line_says_stopped(srv, "SIGTERM idle")

    srv = Server(url).start()
    conn = srv.connection(timeout=10)
    r = srv.request("GET", "/health", conn=conn)
    tap.is_(r.status, 200, "a keep-alive request is served")
    tap.ok(r.headers.get("connection", "").lower() != "close", "the connection is kept alive", r.headers)
    code, took = srv.stop(signal.SIGTERM)
    tap.is_(code, 0, "SIGTERM with an idle keep-alive connection open exits 0")
    tap.ok(took < 3, "and within 3 s (took %.2f s)" % took)
    last_line_says_stopped(srv, "SIGTERM keep-alive")
    try:
        conn.sock.settimeout(2)
        data = conn.sock.recv(1)
        tap.is_(data, b"", "the idle connection was closed by the server")
    except (ConnectionResetError, socket.timeout, OSError) as e:
        tap.ok(not isinstance(e, socket.timeout), "the idle connection was closed by the server", repr(e))
    conn.close()

    srv = Server(url).start()
    code, took = srv.stop(signal.SIGINT)
    tap.is_(code, 0, "SIGINT while idle exits 0")
    tap.ok(took < 3, "SIGINT exits within 3 s (took %.2f s)" % took)
    last_line_says_stopped(srv, "SIGINT idle")

    srv = Server(url).start()
    for _ in range(20):
        srv.request("GET", "/health")
    srv.request("GET", "/nope")
    code, took = srv.stop(signal.SIGTERM)
    tap.is_(code, 0, "SIGTERM after serving requests exits 0 (took %.2f s)" % took)
    tap.ok(took < 3, "and within 3 s")

    # An operator (or an orchestrator) may signal again while the process is already stopping; every later
    # signal, up to the moment it exits, must be absorbed, never fatal.
    srv = Server(url).start()
    t0 = time.monotonic()
    sent = 0
    while srv.alive and time.monotonic() - t0 < 5:
        try:
            srv.send_signal(signal.SIGTERM)
            sent += 1
        except ProcessLookupError:
            break
        time.sleep(0.0005)
    code, took = srv.stop(signal.SIGTERM)
    tap.is_(code, 0, "SIGTERM repeated until exit (%d sent) still exits 0" % sent)
    tap.ok(time.monotonic() - t0 < 3, "and within 3 s")
    refused = False
    try:
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
    except OSError:
        refused = True
    tap.ok(refused, "the port no longer accepts connections after exit")

run(main)
