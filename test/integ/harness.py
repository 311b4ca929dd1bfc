"""Harness for inkloop's integration tests: TAP output, a PostgreSQL to test against, the real binary.

Standard library only. Each test file does:

    from harness import tap, Postgres, Server, run
    def main():
        pg = Postgres.shared()           # fresh database on INKLOOP_TEST_DATABASE_URL (or skip / fail in CI)
        srv = Server(pg.fresh_database()).start()
        r = srv.request("GET", "/health")
        tap.is_(r.status, 200, "GET /health is 200")
    run(main)

`run` prints the plan at the end, turns an unexpected exception into a failed check, dumps the logs of the
servers that were started when anything failed, and cleans up databases, clusters and processes.
"""

import ctypes
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from urllib.parse import urlsplit

PSQL_CANDIDATES = ("/usr/lib/postgresql/15/bin/psql", "psql")
SOURCE_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Environment variables passed through to every child process (sanitizer settings above all); everything else
# is dropped so a developer's shell (a DATABASE_URL, a JWT_SECRET) cannot change what a test sees.
PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
               "MSAN_OPTIONS", "MALLOC_PERTURB_", "ASAN_SYMBOLIZER_PATH")


class Bail(Exception):
    """Raised to stop a test file early; the message is reported as a failed check."""


class Tap:
    def __init__(self):
        self.count = 0
        self.failed = 0
        self.planned = False

    def _emit(self, line, also_stderr=False):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        if also_stderr:
            # meson's --print-errorlogs shows stderr only; failures must be readable there.
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    def diag(self, msg):
        for line in str(msg).splitlines() or [""]:
            self._emit("# " + line, also_stderr=True)

    def ok(self, cond, desc, diag=None):
        self.count += 1
        desc = desc.replace("#", "\\#")
        if cond:
            self._emit("ok %d - %s" % (self.count, desc))
        else:
            self.failed += 1
            self._emit("not ok %d - %s" % (self.count, desc), also_stderr=True)
            if diag is not None:
                self.diag(diag)
        return bool(cond)

    def is_(self, got, want, desc):
        return self.ok(got == want, desc, "  got:  %r\n  want: %r" % (got, want))

    def like(self, text, pattern, desc):
        text = text if isinstance(text, str) else repr(text)
        return self.ok(re.search(pattern, text) is not None, desc,
                       "  %r\n  does not match /%s/" % (text[-2000:], pattern))

    def plan(self, n):
        self.planned = True
        self._emit("1..%d" % n)

    def skip_all(self, reason):
        self._emit("1..0 # SKIP " + reason)
        sys.exit(0)

    def done(self):
        if not self.planned:
            self.plan(self.count)
        return 1 if self.failed else 0


tap = Tap()
_cleanups = []      # callables run at exit, last registered first
_servers = []       # every Server started, to dump logs on failure


def at_exit(fn):
    _cleanups.append(fn)


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL if this test process dies, so no server outlives a killed test."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def child_env(extra):
    env = {k: v for k, v in os.environ.items() if k in PASSTHROUGH}
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary():
    path = os.environ.get("INKLOOP_BIN")
    if not path or not os.access(path, os.X_OK):
        raise Bail("INKLOOP_BIN is not set to an executable (got %r)" % path)
    return path


def wait_until(fn, timeout, interval=0.2):
    """Calls fn until it returns a true value or timeout seconds pass; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def no_database(reason):
    """No PostgreSQL for a test that needs one: fatal in CI, a skip elsewhere."""
    if os.environ.get("CI"):
        tap.ok(False, "a PostgreSQL to test against (CI is set, so this is a failure): " + reason)
        tap.done()
        sys.exit(1)
    tap.skip_all("no PostgreSQL: " + reason)


def _psql():
    for p in PSQL_CANDIDATES:
        if os.path.isabs(p) and os.access(p, os.X_OK):
            return p
        if not os.path.isabs(p) and shutil.which(p):
            return shutil.which(p)
    raise Bail("psql not found (run deps/install.sh)")


def with_dbname(url, dbname):
    u = urlsplit(url)
    return u._replace(path="/" + dbname).geturl()


class Postgres:
    """A PostgreSQL server to test against: either the shared throwaway cluster (INKLOOP_TEST_DATABASE_URL) on
    which each test file gets fresh databases, or a private cluster (via INKLOOP_PG_SH) the test may stop."""

    def __init__(self, admin_url, datadir=None, port=None):
        self.admin_url = admin_url      # a URL to the maintenance database "postgres"
        self.datadir = datadir          # set for private clusters only
        self.port = port
        self.databases = []

    # -- constructors --

    @classmethod
    def shared(cls):
        url = os.environ.get("INKLOOP_TEST_DATABASE_URL")
        if not url:
            if os.environ.get("INKLOOP_PG_SH"):
                return cls.private()
            no_database("INKLOOP_TEST_DATABASE_URL is not set (scripts/test.sh sets it)")
        pg = cls(url)
        try:
            pg.query("SELECT 1")
        except Exception as e:  # noqa: BLE001 - any failure means no database
            no_database("cannot reach %s: %s" % (url, e))
        return pg

    @classmethod
    def private(cls):
        script = os.environ.get("INKLOOP_PG_SH")
        if not script or not os.access(script, os.X_OK):
            no_database("INKLOOP_PG_SH is not set to scripts/pg.sh (scripts/test.sh sets it)")
        top = tempfile.mkdtemp(prefix="inkloop-integ-pg-")
        # The cluster may run as the `postgres` user, which must be able to traverse this directory.
        os.chmod(top, 0o755)
        datadir = os.path.join(top, "pg")
        port = free_port()
        pg = cls(None, datadir=datadir, port=port)
        pg._script = script
        pg._top = top
        at_exit(pg.destroy)
        try:
            pg.start()
        except Exception as e:  # noqa: BLE001
            no_database("could not start a private cluster: %s" % e)
        pg.admin_url = "postgresql://postgres@127.0.0.1:%d/postgres" % port
        return pg

    # -- private cluster control --

    def _pg_sh(self, *args, timeout=90):
        p = subprocess.run([self._script] + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, text=True)
        if p.returncode != 0:
            raise RuntimeError("%s %s failed (exit %d): %s" % (self._script, " ".join(args), p.returncode,
                                                               p.stderr.strip()))
        return p.stdout.strip()

    def start(self):
        """Starts the private cluster; returns the URL of its database `inkloop`."""
        return self._pg_sh("start", self.datadir, str(self.port), "--fast")

    def stop(self):
        self._pg_sh("stop", self.datadir)

    def destroy(self):
        try:
            self._pg_sh("destroy", self.datadir)
        finally:
            shutil.rmtree(self._top, ignore_errors=True)

    # -- SQL --

    def query(self, sql, url=None, timeout=30):
        """Runs SQL with psql; returns rows as lists of strings (tab-separated, unaligned)."""
        p = subprocess.run([_psql(), "-X", "-q", "-t", "-A", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                            "-d", url or self.admin_url, "-c", sql],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, text=True, env=child_env({"PGCONNECT_TIMEOUT": "5"}))
        if p.returncode != 0:
            raise RuntimeError("psql: %s" % p.stderr.strip())
        return [line.split("\t") for line in p.stdout.splitlines() if line != ""]

    def fresh_database(self):
        """Creates an empty database (dropped at exit) and returns its URL."""
        name = "t_" + secrets.token_hex(6)
        self.query("CREATE DATABASE %s" % name)
        self.databases.append(name)
        if len(self.databases) == 1:
            at_exit(self.drop_databases)
        return with_dbname(self.admin_url, name)

    def drop_databases(self):
        for name in self.databases:
            try:
                self.query("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
            except Exception as e:  # noqa: BLE001
                tap.diag("could not drop database %s: %s" % (name, e))
        self.databases = []


class Response:
    def __init__(self, status, header_list, raw):
        self.status = status
        self.header_list = header_list            # [(name, value)] as received
        self.headers = {}                         # lowercase name -> values joined with ", "
        for k, v in header_list:
            k = k.lower()
            self.headers[k] = self.headers[k] + ", " + v if k in self.headers else v
        self.raw = raw
        self.json = None
        if raw:
            try:
                self.json = json.loads(raw)
            except ValueError:
                pass
        self.body = self.json if self.json is not None else raw

    def __iter__(self):  # status, headers, body = srv.request(...)
        return iter((self.status, self.headers, self.body))

    def __repr__(self):
        return "<%d %r %r>" % (self.status, self.headers, self.raw[:300])


class Server:
    """The real inkloop binary on a free port, its stderr and stdout captured in a log file."""

    def __init__(self, database_url, env=None, args=("serve",)):
        self.port = free_port()
        self.env = {
            "DATABASE_URL": database_url,
            "HOST": "127.0.0.1",
            "PORT": self.port,
            "INKLOOP_DEV": "1",
            "CORS_ORIGINS": "http://localhost:3000",
            "LOG_LEVEL": "debug",
        }
        self.env.update(env or {})
        self.args = list(args)
        self.proc = None
        self.logdir = tempfile.mkdtemp(prefix="inkloop-integ-")
        self.logpath = os.path.join(self.logdir, "server.log")
        at_exit(self._cleanup)

    def start(self, wait=20.0):
        self._log = open(self.logpath, "ab")
        self.proc = subprocess.Popen([binary()] + self.args, env=child_env(self.env), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        _servers.append(self)

        def up():
            if self.proc.poll() is not None:
                return "exited"
            try:
                return self.request("GET", "/health", timeout=2)
            except OSError:
                return None

        r = wait_until(up, wait, 0.1)
        if r == "exited":
            raise Bail("server exited during start-up with code %s" % self.proc.returncode)
        if r is None:
            raise Bail("server did not answer GET /health within %.0f s" % wait)
        return self

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def connection(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=10, conn=None):
        """Sends one request; returns a Response (also unpackable as status, headers, body). body may be
        bytes, str, a dict/list (sent as JSON) or None. A server that answers before reading the whole body
        (413) is handled: the response is read even when sending the rest fails."""
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        own = conn is None
        c = conn or self.connection(timeout)
        try:
            c.putrequest(method, path, skip_accept_encoding=True)
            if body is not None and "Content-Length" not in headers and \
                    headers.get("Transfer-Encoding") != "chunked":
                headers["Content-Length"] = str(len(body))
            for k, v in headers.items():
                c.putheader(k, v)
            c.endheaders()
            if body:
                try:
                    view = memoryview(body)
                    for i in range(0, len(body), 65536):
                        c.send(view[i:i + 65536])
                except (BrokenPipeError, ConnectionResetError):
                    pass
            resp = c.getresponse()
            raw = resp.read()
            return Response(resp.status, resp.getheaders(), raw)
        finally:
            if own:
                c.close()

    def send_signal(self, signum):
        self.proc.send_signal(signum)

    def stop(self, signum=signal.SIGTERM, timeout=10):
        """Signals the process and waits; returns (exit code or None if it had to be killed, seconds taken)."""
        if self.proc is None:
            return None, 0.0
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        return code, time.monotonic() - t0

    def log(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_lines(self):
        return [line for line in self.log().splitlines() if line.strip()]

    def dump_log(self, last=60):
        lines = self.log_lines()
        tap.diag("---- server log (%s, last %d of %d lines) ----" % (self.logpath, min(last, len(lines)),
                                                                    len(lines)))
        for line in lines[-last:]:
            tap.diag(line)
        tap.diag("---- end of server log ----")

    def _cleanup(self):
        # Every server a test leaves running is stopped the way production stops it, and must exit cleanly:
        # code 0 and no sanitizer report (under ASan the leak check only runs at a normal exit).
        if self.alive:
            code, _ = self.stop(signal.SIGTERM, 15)
            tap.is_(code, 0, "server exits 0 on SIGTERM at the end of the test")
            bad = [line for line in self.log().splitlines()
                   if "Sanitizer" in line or "runtime error:" in line or "ERROR: " in line]
            tap.ok(not bad, "server log has no sanitizer report", "\n".join(bad[:20]))
        if getattr(self, "_log", None):
            self._log.close()
        if not tap.failed:
            shutil.rmtree(self.logdir, ignore_errors=True)


def run_binary(args, env, timeout=20):
    """Runs the binary to completion; returns CompletedProcess (text). A hang counts as exit code None."""
    try:
        return subprocess.run([binary()] + list(args), env=child_env(env), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, text=True)
    except subprocess.TimeoutExpired as e:
        def s(x):
            return x.decode("utf-8", "replace") if isinstance(x, bytes) else (x or "")
        return subprocess.CompletedProcess(e.cmd, None, s(e.stdout), s(e.stderr) + "\n(timed out)")


def migration_versions():
    """The versions of the migration files in sql/ (NNNN_name.sql)."""
    d = os.path.join(SOURCE_ROOT, "sql")
    out = []
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        m = re.match(r"^(\d+)_.*\.sql$", name)
        if m:
            out.append(int(m.group(1)))
    return out


def run(main):
    """Runs a test file's main, then cleans up and exits with the TAP status."""
    def on_sigterm(signum, frame):
        raise Bail("test killed by SIGTERM (meson timeout?)")

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        main()
    except Bail as e:
        tap.ok(False, str(e))
    except SystemExit:
        raise
    except BaseException:  # noqa: BLE001 - report, then clean up
        tap.ok(False, "unexpected exception", traceback.format_exc())
    finally:
        if tap.failed:
            for s in _servers:
                s.dump_log()
        for fn in reversed(_cleanups):
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                tap.diag("cleanup failed: %s" % e)
    sys.exit(tap.done())
